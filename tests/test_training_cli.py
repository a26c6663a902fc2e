"""`train`, `evaluate`, `summary` and `bench train`, run in this process through ``cnnviz.cli.main``."""

import json

import pytest
import torch

from cnnviz.networks.build import build_model
from cnnviz.networks.receptive_field import layer_fields
from cnnviz.training.checkpoint import load_checkpoint
from tests.test_cli import cli


def test_summary_json_counts_equal_torch(capsys):
    spec = "C32 C32 M D0.25 C64 C64 M D0.25 F128 D0.5"
    result = cli(capsys, "summary", spec, "--input", "1x28x28", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    model = build_model(spec, 1, 10, 28)
    assert report["total_params"] == sum(p.numel() for p in model.parameters())
    assert len(report["layers"]) == len(model.features) + len(model.classifier)
    assert report["layers"][0]["formula"] == "3*3*1*32 + 32" and report["layers"][0]["params"] == 320
    fields = layer_fields(model)
    assert [row["number"] for row in report["layers"]] == list(range(len(fields)))
    for row, field in zip(report["layers"], fields, strict=True):
        expected = (None, None, None) if field is None else (field.size, field.jump, field.start)
        assert (row["rf_size"], row["rf_jump"], row["rf_start"]) == expected, row
    assert (report["layers"][2]["rf_size"], report["layers"][2]["rf_jump"]) == (5, 1)  # two 3x3s


def test_summary_table_and_classes(capsys):
    result = cli(capsys, "summary", "C8n G", "--input", "3x32x32", "--classes", "4")
    assert result.returncode == 0, result.stderr
    assert "3*3*3*8" in result.stdout and "8*4 + 4" in result.stdout
    assert f"total parameters: {3 * 3 * 3 * 8 + 16 + 8 * 4 + 4:,}" in result.stdout
    header, *lines = result.stdout.splitlines()
    assert header.split()[:3] == ["layer", "part", "type"] and "field jump start" in header
    model = build_model("C8n G", 3, 4, 32)
    for number, (line, field) in enumerate(zip(lines, layer_fields(model), strict=False)):
        columns = line.split()
        assert columns[:2] == [str(number), "features" if field else "classifier"], line
        if field is None:
            assert "all" in columns
        else:
            at = columns.index(f"{field.size}x{field.size}")
            assert columns[at + 1:at + 3] == [str(field.jump), f"{field.start:g}"], line


def test_bad_spec_and_shape_are_friendly_errors(capsys):
    result = cli(capsys, "summary", "C32 Q F10", "--input", "1x28x28")
    assert result.returncode == 2
    assert result.stderr.startswith("error: Token 2 'Q'") and "Traceback" not in result.stderr
    result = cli(capsys, "summary", "C32", "--input", "28x28")
    assert result.returncode == 2 and "CxHxW" in result.stderr


@pytest.mark.slow
def test_train_then_evaluate(real_data_dir, tmp_path, capsys):
    out = tmp_path / "tiny.pt"
    result = cli(capsys, "train", "--dataset", "mnist", "--spec", "C8n M C16n M F32", "--epochs", "1",
                 "--batch-size", "64", "--train-subset", "2000", "--lr", "0.05", "--device", "cpu",
                 "--data-dir", str(real_data_dir), "--out", str(out), "--set", "lookahead_every=5")
    assert result.returncode == 0, result.stderr
    assert "test accuracy:" in result.stdout and out.is_file()
    assert load_checkpoint(out).metadata["training"]["lookahead_every"] == 5
    assert "val_acc" in result.stderr  # the progress lines
    printed = float(result.stdout.split("test accuracy:")[1].split()[0])
    assert printed > 0.7

    result = cli(capsys, "evaluate", "--model", str(out), "--data-dir", str(real_data_dir), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["dataset"] == "mnist" and report["images"] == 10_000
    assert abs(report["accuracy"] - printed) < 1e-4
    assert report["accuracy"] == report["recorded_test_accuracy"]


def test_evaluate_refuses_a_broken_file(tmp_path, capsys):
    broken = tmp_path / "broken.pt"
    torch.save({"weights": torch.zeros(2)}, broken)
    result = cli(capsys, "evaluate", "--model", str(broken))
    assert result.returncode == 2 and "not a cnnviz model" in result.stderr


def test_train_rejects_bad_settings(capsys):
    result = cli(capsys, "train", "--dataset", "mnist", "--epochs", "0")
    assert result.returncode == 2 and "epochs" in result.stderr
    result = cli(capsys, "train", "--dataset", "mnist", "--spec", "C8 F4 M")
    assert result.returncode == 2 and "Token 3 'M'" in result.stderr
    result = cli(capsys, "train", "--dataset", "mnist", "--set", "speed=11")
    assert result.returncode == 2 and "KEY=VALUE with KEY one of" in result.stderr
    result = cli(capsys, "train", "--dataset", "mnist", "--set", "dirac=maybe")
    assert result.returncode == 2 and "dirac takes a value of type bool" in result.stderr


@pytest.mark.slow
@pytest.mark.bench
def test_bench_train_json(real_data_dir, capsys):
    quick = ("--dataset", "mnist", "--target", "0.5", "--epochs", "2", "--train-subset", "3000",
             "--device", "cpu", "--data-dir", str(real_data_dir), "--json")
    # as speed records do: the whole schedule, the test set scored once at the end
    result = cli(capsys, "bench", "train", *quick)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["reached"] and report["epochs"] == 2 and report["per_epoch_test_accuracy"] is None

    result = cli(capsys, "bench", "train", *quick, "--every-epoch")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["reached"] and report["accuracy"] >= 0.5
    # it stops after the first epoch that reaches the target
    per_epoch = report["per_epoch_test_accuracy"]
    assert report["epochs"] == len(per_epoch) and per_epoch[-1] == report["accuracy"]
    assert all(accuracy < 0.5 for accuracy in per_epoch[:-1])
    assert report["seconds_to_target"] > 0 and report["device"].startswith("cpu")


def test_bench_train_refuses_a_preset_of_the_other_dataset(capsys):
    wrong = cli(capsys, "bench", "train", "--dataset", "mnist", "--preset", "cifar10_wide", "--target", "0.5")
    assert wrong.returncode == 2 and "made for cifar10, not mnist" in wrong.stderr


def test_the_fastest_preset_depends_on_the_device():
    from cnnviz.training.recipes import FASTEST_PRESET, fastest_preset

    assert fastest_preset("cifar10", "cpu") == "cifar10_speed"
    assert fastest_preset("mnist", "cpu") == "mnist_fast"
    assert FASTEST_PRESET["cifar10", "cuda"] == "cifar10_gpu"  # wide: a GPU is launch-bound on narrow nets


def test_summary_of_a_preset_by_name_explains_its_field_columns(capsys):
    from cnnviz.training.presets import NET_PRESETS

    by_name = cli(capsys, "summary", "mnist_fast", "--json")
    assert by_name.returncode == 0, by_name.stderr
    by_spec = cli(capsys, "summary", NET_PRESETS["mnist_fast"].spec, "--input", "1x28x28", "--json")
    assert json.loads(by_name.stdout) == json.loads(by_spec.stdout)  # the preset's spec, MNIST's shape
    assert json.loads(cli(capsys, "summary", "cifar10_fast", "--json").stdout)["input_shape"] == [3, 32, 32]
    table = cli(capsys, "summary", "cifar10_fast")
    assert table.returncode == 0, table.stderr
    assert "jump: input pixels between neighbouring cells' fields" in " ".join(table.stdout.split())
    missing = cli(capsys, "summary", "C8 G")
    assert missing.returncode == 2 and "--input is needed" in missing.stderr
