"""`bench gpu` and its parts: the datasets in parts, the pytest counts, the peer's data and output,
and the whole command end to end in its tiny CPU form (what keeps it working between GPU visits)."""

from __future__ import annotations

import json
import pickle
import textwrap

import numpy as np
import pytest
import torch

from cnnviz import gpu_check
from cnnviz.datasets import files as data
from cnnviz.datasets import parts
from tests.test_cli import cli


def write_tiny_datasets(root, per_batch: int = 10) -> dict[str, bytes]:
    """Small files under the names MNIST and CIFAR-10 have (CIFAR's in its real batch format);
    returns each file's bytes by its path inside ``root``."""
    rng = np.random.default_rng(0)
    written = {}
    for path in data.expected_files("mnist", root):
        written[f"MNIST/raw/{path.name}.gz"] = rng.bytes(3000)
    for index, path in enumerate(data.expected_files("cifar10", root)):
        batch = {b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 b"labels": [(index + i) % 10 for i in range(per_batch)]}
        written[f"cifar-10-batches-py/{path.name}"] = pickle.dumps(batch)
    written["cifar-10-batches-py/batches.meta"] = pickle.dumps({b"label_names": [b"airplane"]})
    for name, content in written.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    return written


def test_datasets_pack_into_parts_and_unpack_to_the_same_bytes(tmp_path, capsys):
    source, packed, target = tmp_path / "source", tmp_path / "parts", tmp_path / "target"
    written = write_tiny_datasets(source)
    result = cli(capsys, "data-pack", str(packed), "--data-dir", str(source), "--part-mib", str(4 / 1024))
    assert result.returncode == 0, result.stderr
    part_files = sorted(packed.glob(f"{parts.PART_PREFIX}*"))
    assert len(part_files) > 3 and all(p.stat().st_size <= 4096 for p in part_files)
    manifest = json.loads((packed / parts.MANIFEST).read_text())
    assert sorted(manifest["files"]) == sorted(written) and len(manifest["parts"]) == len(part_files)
    assert f"into {len(part_files)} parts" in result.stdout

    result = cli(capsys, "data-unpack", str(packed), "--data-dir", str(target))
    assert result.returncode == 0, result.stderr
    assert {name: (target / name).read_bytes() for name in written} == written
    assert data.is_available("mnist", target) and data.is_available("cifar10", target)


def test_unpacking_names_a_missing_or_damaged_part(tmp_path, capsys):
    source, packed = tmp_path / "source", tmp_path / "parts"
    write_tiny_datasets(source)
    parts.pack_datasets(source, packed, part_mib=4 / 1024)
    second = packed / f"{parts.PART_PREFIX}001"
    content = second.read_bytes()
    second.unlink()
    with pytest.raises(ValueError, match=f"1 of .* parts are not in .* yet: {second.name}"):
        parts.unpack_datasets(packed, tmp_path / "target")
    second.write_bytes(content[:-1] + bytes([content[-1] ^ 1]))
    result = cli(capsys, "data-unpack", str(packed), "--data-dir", str(tmp_path / "target"))
    assert result.returncode == 2 and f"{second.name} is damaged" in result.stderr
    assert not (tmp_path / "target" / "MNIST").exists()  # nothing written from damaged parts
    with pytest.raises(ValueError, match="MNIST is not complete"):
        parts.pack_datasets(tmp_path / "empty", packed)


def test_pytest_results_are_counted_from_its_report(tmp_path):
    tests = tmp_path / "test_three.py"
    tests.write_text(textwrap.dedent("""
        import pytest

        def test_passes():
            assert True

        def test_fails():
            assert 1 == 2

        @pytest.mark.skip(reason="not here")
        def test_skips():
            pass
    """))
    counts = gpu_check.run_pytest(tests, timeout=120)
    assert (counts.passed, counts.failed, counts.errors, counts.skipped) == (1, 1, 0, 1)
    assert counts.returncode == 1 and counts.failures == ["test_three::test_fails"]
    assert counts.to_json()["ran"] is True
    with pytest.raises(FileNotFoundError, match="come with the repository"):
        gpu_check.run_pytest(tmp_path / "none.py")


# A stand-in for airbench94.py, which this project never ships: it loads the tensors files as
# airbench does and checks their layout (CHECK_PEER_DATA), and prints a table as airbench does
# (a header, then an epoch row and an eval row a run, 5 runs).
CHECK_PEER_DATA = """
import torch
for split, count in (("train", 50), ("test", 10)):
    loaded = torch.load(f"cifar10/{split}.pt", map_location="cpu")
    images, labels = loaded["images"], loaded["labels"]
    assert images.dtype == torch.uint8 and tuple(images.shape) == (count, 32, 32, 3), images.shape
    assert labels.dtype == torch.int64 and len(labels) == count and len(loaded["classes"]) == 10
"""
STAND_IN_PEER = """
import sys, time
print("-" * 20)
print("|  run     |  epoch  |  train_loss  |  tta_val_acc  |  total_time_seconds  |")
print("-" * 20)
for run in range(5):
    print(f"|  {run:>6}  |  {1:>5}  |  {0.5:10.4f}  |  {'':>11}  |  {1.0:18.4f}  |")
    accuracy, seconds = 0.94 + run / 1000, 3.8 + run
    print(f"|  {'':>6}  |  {'eval':>5}  |  {0.1:10.4f}  |  {accuracy:11.4f}  |  {seconds:18.4f}  |")
    sys.stdout.flush()
    time.sleep(0.2)
"""


def test_the_peer_gets_cifar10_as_it_loads_it_and_its_runs_are_read(tmp_path):
    write_tiny_datasets(tmp_path / "data")
    work = tmp_path / "work"
    written = gpu_check.prepare_peer_data(work, tmp_path / "data")
    assert [p.relative_to(work).as_posix() for p in written] == ["cifar10/train.pt", "cifar10/test.pt"]
    train = torch.load(written[0])
    ours = data.load_dataset("cifar10", "train", tmp_path / "data")
    assert torch.equal(train["images"], ours.images.permute(0, 2, 3, 1))  # (N, H, W, C) as airbench reads
    assert torch.equal(train["labels"], ours.labels) and train["classes"][0] == "airplane"

    (tmp_path / "peer").mkdir()
    (tmp_path / "peer" / gpu_check.PEER_SCRIPT).write_text(CHECK_PEER_DATA + STAND_IN_PEER)
    report = gpu_check.run_peer(gpu_check.find_peer_script(tmp_path / "peer"), work, runs=2, timeout=60)
    assert report["first_run"]["accuracy"] == 0.94 and report["first_run"]["seconds"] == 3.8
    assert [run["accuracy"] for run in report["runs"]] == [0.941, 0.942]
    assert report["mean_seconds"] == 5.3 and report["mean_wall_seconds"] > 0
    assert not report["timed_out"] and "output_tail" not in report  # stopped after the runs it needed


def test_a_peer_that_ends_early_or_runs_too_long_is_reported_so(tmp_path):
    script = tmp_path / gpu_check.PEER_SCRIPT
    script.write_text(STAND_IN_PEER)
    report = gpu_check.run_peer(script, tmp_path, runs=10, timeout=60)  # it ends after 5 runs
    assert len(report["runs"]) == 4 and report["returncode"] == 0 and report["output_tail"]
    report = gpu_check.run_peer(script, tmp_path, runs=10, timeout=0.5)
    assert report["timed_out"] and len(report["runs"]) < 4
    with pytest.raises(FileNotFoundError, match="KellerJordan/airbench"):
        gpu_check.find_peer_script(tmp_path / "elsewhere")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is here")
def test_bench_gpu_refuses_without_cuda_in_one_sentence(capsys):
    result = cli(capsys, "bench", "gpu")
    assert result.returncode == 2
    assert result.stderr.startswith("error: No CUDA GPU is available here") and result.stderr.count("\n") == 1
    result = cli(capsys, "bench", "gpu", "--device", "cpu")  # the CPU only for --quick
    assert result.returncode == 2 and "error: No CUDA GPU" in result.stderr


@pytest.mark.slow
@pytest.mark.bench
def test_bench_gpu_quick_on_the_cpu_writes_the_whole_report(real_data_dir, tmp_path, capsys):
    out = tmp_path / "report" / "gpu.json"
    result = cli(capsys, "bench", "gpu", "--quick", "--device", "cpu", "--data-dir", str(real_data_dir),
                 "--out", str(out), "--peer", str(tmp_path))
    report = json.loads(out.read_text())
    assert result.returncode == (0 if report["ok"] else 1) == 0, report
    assert "report written to" in result.stderr and result.stdout == ""
    assert report["quick"] is True and report["seeds"] == 1 and report["device"].startswith("cpu")
    assert report["torch"] == torch.__version__ and 0 < report["seconds"] < report["budget_seconds"]
    assert report["cuda_tests"] == {"ran": False, "reason": "--quick skips the CUDA tests"}
    assert report["peer"] == {"ran": False, "reason": "--quick skips the peer"}
    assert set(report["train"]) == {"mnist", "cifar10"}
    for name, section in report["train"].items():
        (run,) = section["runs"]
        assert run["dataset"] == name and run["seed"] == 0 and run["device"].startswith("cpu")
        assert section["reached"] and section["warmup_seconds"] is None  # a CPU makes no warm-up run
        assert section["mean_accuracy"] == round(run["accuracy"], 4) >= section["target"]
        assert section["min_seconds"] == section["max_seconds"] == run["seconds"] > 0
    assert report["train"]["mnist"]["preset"] == "mnist_fast"
    assert report["train"]["cifar10"]["preset"] == "cifar10_speed"
    models = {model["dataset"]: model for model in report["predict"]["models"]}
    assert set(models) == {"mnist", "cifar10"} and report["predict"]["threads"] == 1
    for model in models.values():
        assert model["inspect_ms"] > 0 and model["page_rerun_ms"] > 0
        assert model["verdict"] in ("ok", "slow") and model["page_verdict"] in ("ok", "slow")
    assert models["mnist"]["staged_photos"] == 20
    conv = report["conv"]
    assert conv["ran"] and conv["output_cells"] == 64 * 64 and conv["frames"] == 64
    assert set(conv["verdicts"]) == set(conv["targets_ms"]) and conv["apptest_rerun_ms"] > 0


def test_the_peer_is_looked_for_before_anything_runs(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # as on a GPU machine, up to the peer
    result = cli(capsys, "bench", "gpu", "--peer", str(tmp_path))
    assert result.returncode == 2 and f"{tmp_path / gpu_check.PEER_SCRIPT} is missing" in result.stderr
    assert "[bench gpu]" not in result.stderr  # nothing started
