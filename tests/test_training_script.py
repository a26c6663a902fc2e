"""The training script cnnviz writes out: it compiles, its model is cnnviz's, its pieces compute what
cnnviz's trainer computes, and (slow) one epoch of it on MNIST scores what cnnviz's trainer scores."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from cnnviz.datasets.files import dataset_info
from cnnviz.networks.build import build_model, initialize_parameters
from cnnviz.networks.tta import TestTimeAugmentation, class_logits
from cnnviz.training.augment import shuffled_epoch
from cnnviz.training.config import TrainConfig
from cnnviz.training.loop import train
from cnnviz.training.recipes import recipe
from cnnviz.training.script import training_script
from cnnviz.training.step import learning_rate, make_optimizer, normalization_tensors, normalize
from cnnviz.training.tricks import dirac_init, freeze_batchnorm_scales
from cnnviz.training.whitening import init_whitening

PRESETS = ("mnist_fast", "cifar10_fast", "cifar10_speed", "cifar10_gpu", "cifar10_wide", "vgg_classic")
CUSTOM_SPECS = ("C8k4 C8k3s2p0 A M F16 D0.5", "C6k2 R6 R12 G", "C4nm3 C4k5p1 D0.1 F8 F8")


def script_namespace(config: TrainConfig) -> SimpleNamespace:
    """The generated script run as a module (its main() not called)."""
    namespace: dict = {"__name__": "cnnviz_generated_script"}
    exec(compile(training_script(config), "train_script.py", "exec"), namespace)  # noqa: S102
    return SimpleNamespace(**namespace)


def spec_net(config: TrainConfig, seed: int = 0) -> nn.Module:
    info = dataset_info(config.dataset)
    channels, size, _ = info.image_shape
    tta = TestTimeAugmentation(mirror=config.mirror_tta, shift=config.shift_tta)
    model = build_model(config.spec, channels, info.num_classes, size, tta=tta)
    initialize_parameters(model, torch.Generator().manual_seed(seed))
    return model


def configs() -> list[TrainConfig]:
    return [recipe(name) for name in PRESETS] + [
        recipe("custom", dataset=dataset, spec=spec)
        for dataset, spec in zip(("mnist", "cifar10", "mnist"), CUSTOM_SPECS, strict=True)
    ]


@pytest.mark.parametrize("config", configs(), ids=lambda c: f"{c.dataset}:{c.spec}")
def test_the_script_builds_cnnvizs_model_with_its_weights_and_forward(config):
    ns = script_namespace(config)
    torch.manual_seed(3)
    net = ns.Net()
    cnnviz_net = spec_net(config, seed=3)
    count = sum(p.numel() for p in net.parameters())
    assert count == sum(p.numel() for p in cnnviz_net.parameters())
    # The script seeds the global generator before Net(): the same initial weights as cnnviz's run.
    for (name, ours), theirs in zip(net.state_dict().items(), cnnviz_net.state_dict().values(), strict=True):
        assert torch.equal(ours, theirs), name
    info = dataset_info(config.dataset)
    x = torch.randn(1, *info.image_shape, generator=torch.Generator().manual_seed(1))
    cnnviz_net.train()  # BatchNorm's batch statistics; dropout draws differ, so compare in eval mode too
    with torch.no_grad():
        for p in cnnviz_net.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    cnnviz_net(x)  # move the running statistics off their start
    net.load_state_dict(cnnviz_net.state_dict())
    net.eval()
    cnnviz_net.eval()
    with torch.no_grad():
        torch.testing.assert_close(net(x), cnnviz_net(x), rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(ns.answer(net, x), class_logits(cnnviz_net, x), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("schedule", ["onecycle", "step", "exp", "constant"])
def test_the_scripts_learning_rate_is_cnnvizs(schedule):
    config = recipe("custom", schedule=schedule, lr=0.3, gamma=0.7, step_epochs=2, warmup_fraction=0.25)
    ns = script_namespace(config)
    steps_per_epoch, total = 17, 17 * 5
    ours = [ns.learning_rate(step, steps_per_epoch, total) for step in range(total)]
    theirs = [learning_rate(config, step, steps_per_epoch, total) for step in range(total)]
    assert ours == pytest.approx(theirs, rel=1e-12, abs=0)
    assert len(set(ours)) > 1 or schedule == "constant"


@pytest.mark.parametrize("preset", ["mnist_fast", "cifar10_fast", "cifar10_speed"])
def test_the_scripts_epoch_of_batches_is_cnnvizs(preset):
    """Same seed, same shuffled and augmented epoch, image for image (alternating flips included)."""
    config = recipe(preset)
    ns = script_namespace(config)
    info = dataset_info(config.dataset)
    images = torch.randint(0, 256, (300, *info.image_shape), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(5))
    labels = torch.arange(300) % 10
    mirror = torch.rand(300, generator=torch.Generator().manual_seed(6)) < 0.5
    mirror = mirror if config.alternating_flip else None
    shift = config.shift if config.shift is not None else 4 if info.name == "cifar10" else 2
    flip = info.name == "cifar10"
    ours = ns.shuffled_epoch(images, labels, torch.Generator().manual_seed(7), mirror, chunk=128)
    theirs = shuffled_epoch(images, labels, shift, flip, torch.Generator().manual_seed(7), chunk=128,
                            mirror=mirror)
    assert torch.equal(ours[0], theirs[0]) and torch.equal(ours[1], theirs[1])
    assert not torch.equal(ours[0], images)
    assert (shift, flip) == (ns.SHIFT, ns.FLIP)


def test_the_scripts_tricks_and_optimizer_are_cnnvizs():
    """cifar10_speed turns on every trick: whitening, frozen BatchNorm scales, Dirac kernels, faster
    BatchNorm shifts; the script's model after them, and its optimizer's groups, equal cnnviz's."""
    config = recipe("cifar10_speed")
    ns = script_namespace(config)
    info = dataset_info(config.dataset)
    images = torch.randint(0, 256, (64, *info.image_shape), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(2))
    torch.manual_seed(0)
    net = ns.Net()
    ns.init_whitening(net.features[0], ns.normalize(images))
    ns.freeze_batchnorm_scales(net)
    ns.dirac_init(net)
    ours = ns.make_optimizer(net)
    model = spec_net(config)
    mean, std = normalization_tensors(info, torch.device("cpu"))
    assert init_whitening(model.features[0], normalize(images, mean, std))
    freeze_batchnorm_scales(model)
    dirac_init(model)
    theirs = make_optimizer(config, model)
    for (name, a), b in zip(net.state_dict().items(), model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6, msg=name)
    assert [(g["lr_scale"], g["weight_decay"], len(g["params"])) for g in ours.param_groups] == [
        (g["lr_scale"], g["weight_decay"], len(g["params"])) for g in theirs.param_groups]
    assert type(ours) is type(theirs) and ours.defaults["nesterov"] and len(ours.param_groups) == 2


@pytest.mark.slow  # a fresh python importing torch: 19 s on the loaded 2-core CPU
def test_a_run_of_the_script_without_data_says_where_it_looked(tmp_path):
    path = tmp_path / "train_mnist.py"
    path.write_text(training_script(recipe("mnist_fast")))
    done = subprocess.run([sys.executable, str(path), "--data", str(tmp_path / "none")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    missing = tmp_path / "none" / "MNIST" / "raw" / "train-images-idx3-ubyte.gz"
    assert done.stderr.strip() == (f"{missing} is missing: point --data at MNIST in torchvision's layout, "
                                   "or add --download.")


def test_bad_settings_get_the_trainers_sentence():
    with pytest.raises(ValueError, match="epochs must be between 1 and 200"):
        training_script(replace(recipe("mnist_fast"), epochs=0))
    with pytest.raises(ValueError, match="Token 2 'X3'"):
        training_script(replace(recipe("mnist_fast"), spec="C8 X3"))


@pytest.mark.slow
def test_one_epoch_of_the_script_on_mnist_scores_what_cnnvizs_trainer_scores(real_data_dir, tmp_path):
    config = recipe("mnist_fast", epochs=1, seed=0, device="cpu")
    path = tmp_path / "train_mnist.py"
    path.write_text(training_script(config))
    started = time.perf_counter()
    done = subprocess.run([sys.executable, str(path), "--data", str(real_data_dir), "--device", "cpu"],
                          capture_output=True, text=True, timeout=900)
    script_seconds = time.perf_counter() - started
    assert done.returncode == 0, done.stderr
    script_accuracy = float(re.search(r"test accuracy (\d\.\d+) on 10000 images", done.stdout)[1])
    result = train(config, data_dir=real_data_dir)
    print(f"script {script_accuracy:.4f} in {script_seconds:.0f} s; cnnviz {result.test_accuracy:.4f} "
          f"in {result.seconds:.0f} s")
    assert result.test_accuracy > 0.97
    assert abs(script_accuracy - result.test_accuracy) <= 0.005


@pytest.mark.slow
def test_a_short_cifar10_speed_run_of_the_script_is_cnnvizs_run(real_data_dir, tmp_path):
    """Every trick of cifar10_speed (whitening with its bias frozen after epoch 1, frozen BatchNorm
    scales, Dirac kernels, faster shifts, lookahead, alternating flips, mirror and shift test-time
    augmentation) on real CIFAR-10: the same seed makes the same run, so the same test accuracy."""
    config = recipe("cifar10_speed", train_subset=600, test_subset=200, epochs=2, batch_size=100,
                    device="cpu")
    path = tmp_path / "train_cifar10.py"
    path.write_text(training_script(config))
    done = subprocess.run([sys.executable, str(path), "--data", str(real_data_dir), "--device", "cpu"],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    script_accuracy = float(re.search(r"test accuracy (\d\.\d+) on 200 images", done.stdout)[1])
    result = train(config, data_dir=real_data_dir)
    assert script_accuracy == pytest.approx(result.test_accuracy, abs=0.5 / 200)  # printed to 4 decimals


def test_the_script_takes_epochs_and_says_each_one(tmp_path, monkeypatch, capsys):
    from tests.test_data import write_tiny_mnist

    write_tiny_mnist(tmp_path, n=24)
    config = recipe("mnist_fast", epochs=6, seed=0, device="cpu")
    script = script_namespace(config)
    monkeypatch.setattr(sys, "argv", ["train_mnist.py", "--data", str(tmp_path), "--device", "cpu",
                                      "--epochs", "2"])
    script.main()
    lines = capsys.readouterr().out.splitlines()
    # one line per epoch even with nothing held out (a silent CPU run looked stuck), then the test score
    assert [line.split(":")[0] for line in lines[:-1]] == ["epoch 1/2", "epoch 2/2"]
    assert re.fullmatch(r"test accuracy \d\.\d{4} on 24 images, .*", lines[-1])
    monkeypatch.setattr(sys, "argv", ["train_mnist.py", "--data", str(tmp_path), "--epochs", "0"])
    with pytest.raises(SystemExit, match="--epochs must be at least 1"):
        script.main()
