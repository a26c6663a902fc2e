"""Checkpoints: a round trip keeps weights and metadata; broken or foreign files get a clear refusal."""

import sys

import pytest
import torch

from cnnviz.datasets.files import dataset_info
from cnnviz.networks.build import build_model
from cnnviz.networks.tta import TestTimeAugmentation
from cnnviz.paths import MODELS_DIR
from cnnviz.training.checkpoint import (
    SHIPPED_MODELS,
    CheckpointError,
    list_models,
    load_checkpoint,
    sanitize_model_name,
    save_checkpoint,
)
from cnnviz.training.progress import HistoryPoint, history_records

SPEC = "C8n M C16 M F32 D0.1"


def _metadata(**extra):
    info = dataset_info("mnist")
    return {"name": "tiny", "dataset": "mnist", "spec": SPEC, "classes": list(info.classes),
            "mean": list(info.mean), "std": list(info.std), "input_shape": [1, 28, 28],
            "test_accuracy": 0.5, **extra}


NO_TTA = TestTimeAugmentation()


def _saved(tmp_path, tta=NO_TTA, **extra):
    torch.manual_seed(0)
    model = build_model(SPEC, 1, 10, 28, tta=tta)
    model.features[1].running_mean.fill_(0.25)  # a buffer, so buffers are checked too
    path = save_checkpoint(tmp_path / "tiny.pt", model, _metadata(**extra))
    return model.eval(), path


def _saved_before_tta_was_stored(tmp_path, **extra):
    """A file as cnnviz wrote it before the metadata held the model's test-time augmentation."""
    _, path = _saved(tmp_path, **extra)
    payload = torch.load(path, weights_only=True)
    del payload["metadata"]["tta"]
    torch.save(payload, path)
    return path


def test_round_trip_keeps_weights_buffers_and_metadata(tmp_path):
    model, path = _saved(tmp_path, history=[{"step": 1, "train_loss": 2.0}])
    loaded = load_checkpoint(path)
    assert not loaded.model.training
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value), key
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(loaded.model(x), model(x))
    assert loaded.dataset == "mnist" and loaded.classes == [str(d) for d in range(10)]
    assert loaded.input_shape == (1, 28, 28) and loaded.spec == SPEC
    assert loaded.mean == (0.1307,) and loaded.test_accuracy == 0.5 and loaded.name == "tiny"
    assert loaded.metadata["history"] == [{"step": 1, "train_loss": 2.0}]
    # plain types only: the strict loader reads it
    assert torch.load(path, weights_only=True)["format"] == "cnnviz-checkpoint"


def test_mirror_averaging_comes_back_from_the_training_config(tmp_path):
    plain = _saved_before_tta_was_stored(tmp_path)
    assert not load_checkpoint(plain).model.tta.mirror
    path = _saved_before_tta_was_stored(tmp_path, training={"mirror_tta": True, "epochs": 1})
    assert load_checkpoint(path).model.tta.mirror and not load_checkpoint(path).model.tta.shift
    both = {"mirror_tta": True, "shift_tta": True, "epochs": 1}
    path = _saved_before_tta_was_stored(tmp_path, training=both)
    assert load_checkpoint(path).model.tta.shift


@pytest.mark.parametrize("tta", [TestTimeAugmentation(), TestTimeAugmentation(mirror=True),
                                 TestTimeAugmentation(mirror=True, shift=True)])
def test_the_models_test_time_augmentation_is_stored_with_it(tmp_path, tta):
    # The record the model was built with wins over a training config that says otherwise.
    _, path = _saved(tmp_path, tta=tta, training={"mirror_tta": not tta.mirror, "epochs": 1})
    stored = torch.load(path, weights_only=True)["metadata"]["tta"]
    assert stored == {"mirror": tta.mirror, "shift": tta.shift}
    assert load_checkpoint(path).model.tta == tta


@pytest.mark.parametrize("name", SHIPPED_MODELS)
def test_the_shipped_models_answer_with_the_views_they_were_trained_for(name):
    path = MODELS_DIR / f"{name}.pt"
    if not path.is_file():
        pytest.skip(f"models/{name}.pt is missing")
    training = torch.load(path, weights_only=True)["metadata"]["training"]
    tta = load_checkpoint(path).model.tta
    assert tta == TestTimeAugmentation(mirror=bool(training.get("mirror_tta")),
                                       shift=bool(training.get("shift_tta")))
    assert tta.mirror == (name == "cifar10")


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path):
    _, path = _saved(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["tiny.pt"]
    assert list_models(tmp_path) == [path]
    assert list_models(tmp_path / "missing") == []


@pytest.mark.parametrize("content", [b"", b"not a model at all", b"PK\x03\x04broken zip"])
def test_garbage_is_refused(tmp_path, content):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="not a readable cnnviz model"):
        load_checkpoint(path)


def test_truncated_checkpoint_is_refused(tmp_path):
    _, path = _saved(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_foreign_torch_file_is_refused(tmp_path):
    path = tmp_path / "foreign.pt"
    torch.save({"model": torch.zeros(3)}, path)
    with pytest.raises(CheckpointError, match="not a cnnviz model checkpoint"):
        load_checkpoint(path)


def test_pickled_code_is_never_run(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "cnnviz-checkpoint", "payload": ValueError("x")}, path)
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_weights_that_do_not_match_the_spec(tmp_path):
    _, path = _saved(tmp_path)
    payload = torch.load(path, weights_only=True)
    payload["metadata"]["spec"] = "C8n M C32 M F32 D0.1"
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="do not match"):
        load_checkpoint(path)


def test_missing_file_and_metadata(tmp_path):
    with pytest.raises(CheckpointError, match="No model file"):
        load_checkpoint(tmp_path / "nope.pt")
    _, path = _saved(tmp_path)
    payload = torch.load(path, weights_only=True)
    del payload["metadata"]["classes"]
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="classes"):
        load_checkpoint(path)


@pytest.mark.parametrize(("name", "expected"), [
    ("my model", "my_model"), ("../../etc/passwd", "etc_passwd"), ("ok-name_2", "ok-name_2"),
    ("a" * 80, "a" * 40), ("Ünïcode ✓", "Ünïcode"), ("日本語モデル", "日本語モデル"),
    ("Mode\u0300le", "Modèle"), ("a/b\\c.d", "a_b_c_d"),
])
def test_sanitize_model_name(name, expected):
    assert sanitize_model_name(name) == expected


def test_sanitize_refuses_empty_names():
    with pytest.raises(ValueError, match="at least one letter"):
        sanitize_model_name(" ../ ")


def test_metadata_is_stored_as_plain_types(tmp_path):
    _, path = _saved(tmp_path, torch_version=torch.__version__, numbers=(1, 2.5), scalar=torch.tensor(0.5))
    metadata = load_checkpoint(path).metadata
    assert type(metadata["torch_version"]) is str and metadata["numbers"] == [1, 2.5]
    assert metadata["scalar"] == 0.5
    with pytest.raises(TypeError, match="cannot hold"):
        save_checkpoint(tmp_path / "x.pt", build_model(SPEC, 1, 10, 28), _metadata(bad=object()))


def test_torch_version_in_old_metadata_still_loads(tmp_path):
    _, path = _saved(tmp_path)
    payload = torch.load(path, weights_only=True)
    payload["metadata"]["torch_version"] = torch.__version__  # a TorchVersion, not a str
    torch.save(payload, path)
    metadata = load_checkpoint(path).metadata
    assert metadata["torch_version"] == str(torch.__version__) and type(metadata["torch_version"]) is str


def test_a_trained_model_keeps_the_views_its_config_asked_for(real_data_dir, tmp_path):
    from cnnviz.datasets.files import load_dataset
    from cnnviz.training.config import TrainConfig
    from cnnviz.training.evaluate import evaluate
    from cnnviz.training.loop import train

    config = TrainConfig(dataset="mnist", spec="C8n M C16n M F32", epochs=1, batch_size=64, optimizer="adam",
                         lr=3e-3, weight_decay=0.0, train_subset=1000, test_subset=500, device="cpu",
                         mirror_tta=True, shift_tta=True)
    result = train(config, data_dir=real_data_dir)
    assert result.model.tta == TestTimeAugmentation(mirror=True, shift=True)
    loaded = load_checkpoint(save_checkpoint(tmp_path / "run.pt", result.model, result.metadata("run")))
    assert loaded.model.tta == result.model.tta
    test = load_dataset("mnist", "test", real_data_dir)
    _, accuracy, _ = evaluate(loaded.model, test.images[:500], test.labels[:500], test.info)
    assert accuracy == pytest.approx(result.test_accuracy)  # scored with the same views as in training


@pytest.mark.parametrize("name", SHIPPED_MODELS)
def test_the_shipped_models_history_reads_as_points_and_is_stored_as_before(name):
    loaded = load_checkpoint(MODELS_DIR / f"{name}.pt")
    points = loaded.history
    assert points and all(isinstance(p, HistoryPoint) for p in points)
    assert points[-1].epoch == loaded.metadata["training"]["epochs"] and points[-1].step > points[0].step
    assert history_records(points) == loaded.metadata["history"]  # the same plain dicts a save writes


def test_history_points_are_saved_as_plain_dicts_without_the_numbers_not_taken(tmp_path):
    points = [HistoryPoint(step=5, epoch=0.5, train_loss=1.5, train_accuracy=0.4, lr=0.1, elapsed=2.0),
              HistoryPoint(step=10, epoch=1.0, train_loss=1.0, train_accuracy=0.6, lr=0.05, elapsed=4.0,
                           val_loss=0.9, val_accuracy=0.7, test_accuracy=0.71)]
    _, path = _saved(tmp_path, history=history_records(points))
    stored = torch.load(path, weights_only=True)["metadata"]["history"]
    assert stored[0] == {"step": 5, "epoch": 0.5, "train_loss": 1.5, "train_accuracy": 0.4, "lr": 0.1,
                         "elapsed": 2.0}
    assert stored[1]["test_accuracy"] == 0.71
    assert load_checkpoint(path).history == points


def _rewritten(path, **metadata):
    """The saved file with some metadata replaced, as a host or a third party could write it."""
    payload = torch.load(path, weights_only=True)
    payload["metadata"].update(metadata)
    torch.save(payload, path)
    return path


def test_a_small_file_that_describes_a_huge_net_is_refused_before_it_is_built(tmp_path):
    path = tmp_path / "huge.pt"
    metadata = {**_metadata(), "spec": "C64 M F4096"}  # 51 M weights (205 MB) from a few bytes of text
    torch.save({"format": "cnnviz-checkpoint", "version": 1, "state_dict": {}, "metadata": metadata}, path)
    assert path.stat().st_size < 5_000
    with pytest.raises(CheckpointError, match="huge.pt describes a network too big for this server"):
        load_checkpoint(path)


def test_a_net_within_the_parameter_limit_but_over_the_memory_limit_is_refused(tmp_path):
    wide = "C4096 G"  # 41 k weights, but 4096 maps of 28x28 twice over: 6.4 M activations per image
    path = save_checkpoint(tmp_path / "wide.pt", build_model(wide, 1, 10, 28), {**_metadata(), "spec": wide})
    with pytest.raises(CheckpointError, match="wide.pt describes a network too big for this server"):
        load_checkpoint(path)


def test_deeply_nested_metadata_is_a_broken_checkpoint(tmp_path):
    _, path = _saved(tmp_path)
    nested: list = []
    for _ in range(5000):
        nested = [nested]
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(50_000)  # what it takes to write such a file
    try:
        _rewritten(path, notes=nested)
    finally:
        sys.setrecursionlimit(limit)
    with pytest.raises(CheckpointError, match="tiny.pt is not a readable cnnviz model"):
        load_checkpoint(path)


@pytest.mark.parametrize(("metadata", "problem"), [
    ({"mean": "abc"}, "its mean is not 1 finite number"),
    ({"std": [0.0]}, "its std has a value that is not above 0"),
    ({"std": [-0.3]}, "its std has a value that is not above 0"),
    ({"std": [float("nan")]}, "its std is not 1 finite number"),
    ({"mean": [0.1, 0.2, 0.3]}, "its mean is not 1 finite number"),
    ({"mean": [True]}, "its mean is not 1 finite number"),
    ({"input_shape": [1, 28]}, "its input shape is not three whole numbers"),
    ({"input_shape": [1, 4096, 4096]}, "its input shape 1x4096x4096 is not that of mnist.s images"),
    ({"input_shape": [3, 32, 32]}, "its input shape 3x32x32 is not that of mnist.s images"),
    ({"classes": "0123456789"}, "it does not list between 1 and 1000 classes"),
    ({"dataset": "../../etc"}, "its dataset is not one of mnist, cifar10"),
])
def test_metadata_that_cannot_describe_the_model_is_refused_with_a_sentence(tmp_path, metadata, problem):
    _, path = _saved(tmp_path)
    _rewritten(path, **metadata)
    with pytest.raises(CheckpointError, match=f"tiny.pt cannot be used: {problem}"):
        load_checkpoint(path)


def test_an_exclusive_save_never_replaces_a_file(tmp_path):
    _, path = _saved(tmp_path)
    before = path.read_bytes()
    with pytest.raises(FileExistsError):
        save_checkpoint(path, build_model(SPEC, 1, 10, 28), _metadata(), exclusive=True)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["tiny.pt"]
