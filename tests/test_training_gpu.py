"""The trainer's CUDA path (channels_last, bf16 autocast, cuDNN autotuning): run where a GPU is.

CI has no GPU, so these skip there; they run on a GPU machine with the same real data.
"""

import json

import pytest
import torch

from cnnviz.cli import main
from cnnviz.datasets.files import load_dataset
from cnnviz.training.config import TrainConfig
from cnnviz.training.evaluate import evaluate
from cnnviz.training.loop import train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_cuda_training_learns_and_agrees_with_the_cpu(real_data_dir):
    config = TrainConfig(dataset="mnist", spec="C16n M C32n M F64", epochs=1, batch_size=128, lr=0.1,
                         train_subset=12000, test_subset=2000, val_fraction=0.1, device="cuda")
    result = train(config, data_dir=real_data_dir)
    assert result.device == torch.cuda.get_device_name()
    assert result.test_accuracy > 0.8  # chance is 0.1
    # The model comes back on the CPU; scored there in float32 it answers as it did on the GPU in bf16.
    test = load_dataset("mnist", "test", real_data_dir)
    _, cpu_accuracy, cpu_predictions = evaluate(result.model, test.images[:2000], test.labels[:2000],
                                                result.info)
    agreement = (cpu_predictions == result.test_predictions).float().mean().item()
    assert agreement > 0.97 and abs(cpu_accuracy - result.test_accuracy) < 0.01


def test_cuda_whitened_cifar_net_with_test_time_averaging(real_data_dir):
    config = TrainConfig(dataset="cifar10", spec="C24k2p0 C32n M C64n M C64n G", epochs=2, batch_size=256,
                         lr=0.2, label_smoothing=0.2, whiten=True, mirror_tta=True, shift_tta=True,
                         train_subset=10000, test_subset=2000, val_fraction=0.0, device="cuda")
    result = train(config, data_dir=real_data_dir)
    assert result.test_accuracy > 0.4  # chance is 0.1
    assert not result.model.features[0].weight.requires_grad  # the whitening layer stayed frozen


@pytest.mark.parametrize("compile_", [False, True])
def test_cuda_dropout_runs_repeat_with_their_seed(real_data_dir, compile_):
    # Two steps: different dropout masks would already move the weights by far more than cuDNN's
    # float rounding does.
    config = TrainConfig(dataset="mnist", spec="C16n M D0.25 C32n M F64 D0.5", epochs=1, batch_size=128,
                         lr=0.1, train_subset=256, test_subset=500, val_fraction=0.0, device="cuda",
                         compile=compile_)
    first, second = (train(config, data_dir=real_data_dir) for _ in range(2))
    for key, value in first.model.state_dict().items():
        assert torch.allclose(second.model.state_dict()[key], value, atol=1e-4), key
    assert all(getattr(layer, "generator", None) is None for layer in first.model.modules())


@pytest.mark.bench
def test_bench_on_cuda_warms_up_first(real_data_dir, capsys):
    code = main(["bench", "train", "--dataset", "mnist", "--target", "0.5", "--device", "cuda",
                 "--train-subset", "12000", "--runs", "2", "--no-compile", "--data-dir", str(real_data_dir),
                 "--json"])
    runs = json.loads(capsys.readouterr().out)["runs"]
    assert code == 0 and len(runs) == 2 and [run["seed"] for run in runs] == [0, 1]
    assert all(run["warmup_seconds"] > 0 and run["accuracy"] >= 0.5 and not run["compiled"] for run in runs)


def test_a_failing_compiled_step_falls_back_to_eager(real_data_dir):
    # Batch 256 made torch 2.11's CUDA-graph recording fail on an H100 ("invalid argument"); where it
    # does, training warns and goes on eagerly, and where it does not, the compiled run just works.
    config = TrainConfig(dataset="mnist", spec="C16k5s2p2n C32n M F128", epochs=1, batch_size=256, lr=0.1,
                         train_subset=12000, test_subset=2000, val_fraction=0.0, device="cuda", compile=True)
    result = train(config, data_dir=real_data_dir)
    assert result.steps == 12000 // 256 and result.test_accuracy > 0.5  # chance is 0.1


def test_cuda_speed_tricks_with_compile(real_data_dir):
    # cifar10_speed's tricks change the model between epochs (the whitening bias freezes) and write the
    # averaged weights back in place (lookahead): both must work under CUDA graphs.
    from cnnviz.training.recipes import recipe

    config = recipe("cifar10_speed", epochs=2, train_subset=10240, test_subset=2000, val_fraction=0.0,
                    device="cuda", compile=True)
    result = train(config, data_dir=real_data_dir)
    assert result.steps == 2 * (10240 // 128) and result.test_accuracy > 0.4  # chance is 0.1
    assert torch.count_nonzero(result.model.features[0].bias) > 0  # it learned in the first epoch
