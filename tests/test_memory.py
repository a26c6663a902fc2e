"""A run's peak memory is predicted before it allocates anything, and a run that does not fit is refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace

import pytest
import torch

from cnnviz.hosting.limits import load_limits
from cnnviz.networks.build import build_model
from cnnviz.training.config import TrainConfig
from cnnviz.training.memory import (
    MB,
    admission_problem,
    memory_config,
    memory_problem,
    predict_config_memory,
    saved_bytes_per_image,
)
from cnnviz.training.recipes import recipe
from tests.conftest import REPO

WIDE = "C1024k1n C1024k1"  # within the size gate, about 12 MB of saved activations an image


def test_saved_activations_are_what_autograd_keeps_for_one_more_image():
    model = build_model("C8n M F16", 1, 10, 28)
    per_image, largest = saved_bytes_per_image(model, (1, 28, 28))
    # Saved per image: the input (784 floats), the conv's output for BatchNorm (8x28x28), BatchNorm's
    # output (ReLU in place keeps it), the pool's int64 indices (8x14x14) and its output for the
    # Linear (8x14x14, flattened: the same storage), the ReLU'd dense output for the classifier (16).
    expected = 4 * (784 + 2 * 8 * 28 * 28 + 8 * 14 * 14 + 16) + 8 * (8 * 14 * 14)
    assert per_image == expected
    assert largest == 4 * 8 * 28 * 28


def test_a_batch_too_big_for_the_budget_is_refused_with_the_batch_that_fits():
    config = TrainConfig(spec=WIDE, batch_size=1024)
    estimate = predict_config_memory(config)
    assert estimate.total > 9 * 2**30  # over 9 GB: the activations of 1,024 images of 1,024 maps of 28x28
    problem = memory_problem(estimate, 2 * 2**30)
    assert problem is not None and "use a batch of at most" in problem
    fitting = estimate.largest_batch_within(2 * 2**30)
    assert predict_config_memory(replace(config, batch_size=fitting)).total <= 2 * 2**30
    assert predict_config_memory(replace(config, batch_size=fitting + 8)).total > 2 * 2**30
    assert memory_problem(predict_config_memory(replace(config, batch_size=fitting)), 2 * 2**30) is None


def test_a_net_over_the_size_gate_is_refused_without_being_built():
    problem = admission_problem(TrainConfig(spec="C4096 F4096"), 10**12)
    assert problem is not None and "too big to train here" in problem


def test_memory_config_keeps_only_what_memory_depends_on():
    config = recipe("cifar10_speed")
    assert memory_config(replace(config, lr=0.01, seed=3)) == memory_config(config)
    assert memory_config(replace(config, batch_size=256)) != memory_config(config)


def test_the_per_run_budget_is_the_servers_training_memory_shared_by_its_slots():
    limits = load_limits({"CNNVIZ_TRAINING_MEMORY_MB": "3000", "CNNVIZ_MAX_TRAININGS": "3"}, {})
    assert limits.run_memory_budget(gpu_count=0) == 1000 * MB
    with pytest.raises(ValueError, match="CNNVIZ_TRAINING_MEMORY_MB"):
        load_limits({"CNNVIZ_TRAINING_MEMORY_MB": "lots"}, {})


MEASURE = """
import dataclasses, json, sys, torch
from cnnviz.training.config import TrainConfig
from cnnviz.training.memory import measure_run_peak, predict_config_memory
torch.set_num_threads(2)
config = TrainConfig(**json.loads(sys.argv[1]))
print(json.dumps({"predicted": predict_config_memory(config).total,
                  "measured": measure_run_peak(config, sys.argv[2], steps=3)}))
"""


LINUX_PEAK = os.path.exists("/proc/self/clear_refs")  # Linux resets and reports a process's peak memory


@pytest.mark.slow
@pytest.mark.skipif(not LINUX_PEAK, reason="reads the kernel's memory high-water mark")
@pytest.mark.parametrize("settings", [
    {"spec": "C16k5s2p2n C32n M F128", "batch_size": 128, "train_subset": 20_000},
    {"spec": WIDE, "batch_size": 64, "train_subset": 2_000},
    {"dataset": "cifar10", "spec": "C24k2p0 C32nm C32n C64nm C64n C128nm C128n G", "batch_size": 128,
     "train_subset": 10_000, "whiten": True},
])
def test_the_prediction_is_within_a_quarter_of_a_real_runs_peak(settings, real_data_dir):
    config = {**settings, "epochs": 1, "test_subset": 200, "device": "cpu"}
    result = subprocess.run([sys.executable, "-c", MEASURE, json.dumps(config), str(real_data_dir)],
                            cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    numbers = json.loads(result.stdout.strip().splitlines()[-1])
    assert 0.75 <= numbers["predicted"] / numbers["measured"] <= 1.25, numbers


CAPPED = """
import resource, sys, psutil
from cnnviz.training.config import TrainConfig
from cnnviz.training.jobs import TrainingJob
rss = psutil.Process().memory_info().rss
_, hard = resource.getrlimit(resource.RLIMIT_DATA)
resource.setrlimit(resource.RLIMIT_DATA, (rss + 1500 * 2**20, hard))  # this process may grow 1.5 GB
config = TrainConfig(spec="C1024k1n C1024k1", batch_size=1024, epochs=1, train_subset=2000, test_subset=100,
                     device="cpu")
job = TrainingJob(config, data_dir=sys.argv[1], memory_budget=int(sys.argv[2]))
job.start(); job.join()
snapshot = job.snapshot()
print(snapshot.status, "|", snapshot.error)
"""


@pytest.mark.parametrize("budget", [1000 * MB])
def test_a_run_that_would_exhaust_memory_is_refused_before_it_allocates(budget, real_data_dir):
    # Without the admission check this run needs ~10 GB: in a process capped at 1.5 GB more, its first
    # step fails with PyTorch's "can't allocate memory" instead of a sentence.
    result = subprocess.run([sys.executable, "-c", CAPPED, str(real_data_dir), str(budget)], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    status, error = result.stdout.strip().splitlines()[-1].split(" | ")
    assert status == "failed"
    assert "this server allows 1.0 GB per run" in error and "use a batch of at most" in error
    assert "allocate" not in error


def test_an_admitted_run_is_not_refused(real_data_dir):
    from cnnviz.training.jobs import TrainingJob

    config = TrainConfig(spec="C8n M F16", epochs=1, train_subset=500, test_subset=100, device="cpu")
    job = TrainingJob(config, data_dir=real_data_dir, memory_budget=2 * 2**30)
    assert job.start()
    job.join()
    assert job.snapshot().status == "done", job.snapshot().error
    assert torch.get_num_threads() >= 1
