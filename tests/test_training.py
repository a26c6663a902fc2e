"""The trainer on real data subsets: it learns, it stops on request and keeps what it learned."""

import threading

import pytest
import torch
import torch.nn.functional as F

from cnnviz.datasets.files import dataset_info, load_dataset
from cnnviz.networks.build import build_model
from cnnviz.runtime import available_cores, resolve_device, training_threads
from cnnviz.training.augment import random_crop_flip
from cnnviz.training.checkpoint import load_checkpoint, save_checkpoint
from cnnviz.training.config import TrainConfig
from cnnviz.training.evaluate import evaluate
from cnnviz.training.loop import STOPPED_TEST_IMAGES, train
from cnnviz.training.presets import NET_PRESETS
from cnnviz.training.recipes import recipe
from cnnviz.training.step import TrainingObjective, learning_rate, normalization_tensors, normalize
from cnnviz.training.whitening import init_whitening

TINY_SPEC = "C8n M C16n M F32"


def _tiny_config(**overrides) -> TrainConfig:
    base = dict(dataset="mnist", spec=TINY_SPEC, epochs=1, batch_size=64, optimizer="adam", lr=3e-3,
                weight_decay=0.0, train_subset=3000, test_subset=1000, val_fraction=0.1, device="cpu")
    return TrainConfig(**{**base, **overrides})


@pytest.mark.slow
def test_short_real_training_beats_chance_by_far(real_data_dir):
    events = []
    result = train(_tiny_config(evals_per_epoch=2), progress=events.append, data_dir=real_data_dir,
                   report_interval=0)
    assert result.test_accuracy > 0.7  # chance is 0.1
    assert not result.stopped and result.steps == 2700 // 64
    assert [e.phase for e in events][-1] == "done"
    assert sum(e.phase == "eval" for e in events) == 2 and len(result.history) == 2
    assert result.history[-1].val_accuracy > 0.6 and result.history[-1].epoch == 1.0
    assert all(e.images_per_second >= 0 and e.lr > 0 for e in events)
    # the stored predictions are the model's own on the first 1000 test images
    test = load_dataset("mnist", "test", real_data_dir)
    _, accuracy, predictions = evaluate(result.model, test.images[:1000], test.labels[:1000], test.info)
    assert accuracy == pytest.approx(result.test_accuracy)
    assert torch.equal(predictions, result.test_predictions)


@pytest.mark.slow
def test_same_seed_same_run(real_data_dir):
    config = _tiny_config(train_subset=640, epochs=1, test_subset=200)
    first, second = (train(config, data_dir=real_data_dir) for _ in range(2))
    for key, value in first.model.state_dict().items():
        assert torch.allclose(second.model.state_dict()[key], value), key


@pytest.mark.slow
def test_a_seed_gives_the_same_run_while_other_threads_use_the_global_generator(real_data_dir):
    # A hosted demo trains for several students at once; each run draws from its own generators.
    config = _tiny_config(spec="C8n M D0.25 C16n M F32 D0.5", train_subset=640, test_subset=200)
    alone = train(config, data_dir=real_data_dir)
    done = threading.Event()

    def meddle() -> None:
        seed = 0
        while not done.is_set():
            seed += 1
            torch.manual_seed(seed)
            torch.rand(1000)

    meddler = threading.Thread(target=meddle)
    meddler.start()
    try:
        crowded = train(config, data_dir=real_data_dir)
    finally:
        done.set()
        meddler.join()
    for key, value in alone.model.state_dict().items():
        assert torch.equal(crowded.model.state_dict()[key], value), key
    assert all(getattr(layer, "generator", None) is None for layer in crowded.model.modules())


def test_threads_of_a_run(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert training_threads() == available_cores()
    assert (training_threads(3), training_threads(0)) == (3, 1)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert training_threads() == 1 and training_threads(2) == 2


@pytest.mark.slow
def test_stop_keeps_what_was_learned(real_data_dir):
    stop = threading.Event()

    def stop_after_twelve_steps(event):
        if event.step >= 12:
            stop.set()

    result = train(_tiny_config(test_subset=None), progress=stop_after_twelve_steps, stop=stop,
                   data_dir=real_data_dir, report_interval=0)
    assert result.stopped and result.steps == 12
    assert result.history[-1].step == 12  # the curves end where it stopped
    assert result.test_accuracy > 0.3  # 12 steps of Adam already learn a lot
    assert len(result.test_labels) == STOPPED_TEST_IMAGES  # of 10,000: a stopped run frees its slot sooner
    torch.manual_seed(0)
    untrained = build_model(TINY_SPEC, 1, 10, 28)
    assert not torch.equal(untrained.features[0].weight, result.model.features[0].weight)


def test_stop_before_the_first_step(real_data_dir):
    stop = threading.Event()
    stop.set()
    result = train(_tiny_config(), stop=stop, data_dir=real_data_dir)
    assert result.stopped and result.steps == 0 and result.test_accuracy is None


def test_trained_model_round_trips_through_a_checkpoint(real_data_dir, tmp_path):
    result = train(_tiny_config(train_subset=1000), data_dir=real_data_dir)
    path = save_checkpoint(tmp_path / "run.pt", result.model, result.metadata("run"))
    loaded = load_checkpoint(path)
    assert loaded.test_accuracy == result.test_accuracy
    assert loaded.metadata["training"]["spec"] == TINY_SPEC
    assert loaded.metadata["device"].startswith("cpu") and loaded.metadata["created"]
    test = load_dataset("mnist", "test", real_data_dir)
    _, accuracy, _ = evaluate(loaded.model, test.images[:1000], test.labels[:1000], test.info)
    assert accuracy == pytest.approx(result.test_accuracy)


def test_crop_and_flip_are_real_crops_of_the_padded_image():
    images = torch.randint(0, 256, (16, 3, 6, 6), dtype=torch.uint8)
    out = random_crop_flip(images, pad=2, flip=True, generator=torch.Generator().manual_seed(1))
    assert out.shape == images.shape and out.dtype == torch.uint8
    padded = F.pad(images, (2, 2, 2, 2))
    for i in range(16):
        candidates = [
            padded[i, :, dy:dy + 6, dx:dx + 6] for dy in range(5) for dx in range(5)
        ]
        candidates += [c.flip(2) for c in candidates]
        assert any(torch.equal(out[i], c) for c in candidates)
    assert torch.equal(random_crop_flip(images, 0, False, torch.Generator()), images)


def test_an_augmented_epoch_keeps_every_image_with_its_label():
    from cnnviz.training.augment import shuffled_epoch

    labels = torch.arange(1, 26)  # image i is filled with its label, so a pixel tells whose image it is
    images = labels.to(torch.uint8)[:, None, None, None].expand(25, 1, 8, 8).contiguous()
    for shift, flip in ((0, False), (3, True)):
        generator = torch.Generator().manual_seed(0)
        out, out_labels = shuffled_epoch(images, labels, shift, flip, generator, chunk=7)
        assert sorted(out_labels.tolist()) == labels.tolist() and not torch.equal(out_labels, labels)
        for image, label in zip(out, out_labels, strict=True):
            values = set(image.unique().tolist()) - {0}  # 0: the border a shift brings in
            assert values == {label.item()} and (image > 0).sum() >= (8 - shift) ** 2


def test_whitening_decorrelates_patches():
    torch.manual_seed(0)
    # correlated channels, like real images
    base = torch.randn(200, 1, 12, 12)
    images = torch.cat([base, 0.8 * base + 0.2 * torch.randn_like(base), torch.randn_like(base)], dim=1)
    conv = torch.nn.Conv2d(3, 24, 2, padding=0)
    assert init_whitening(conv, images)
    with torch.no_grad():
        out = conv(images)[:, :12]  # (N, 12, 11, 11), the positive half
    flat = out.permute(0, 2, 3, 1).reshape(-1, 12)
    covariance = torch.cov(flat.T)
    assert torch.allclose(covariance, torch.eye(12), atol=0.05)
    assert not conv.weight.requires_grad
    assert not init_whitening(torch.nn.Conv2d(3, 16, 3), images)  # wrong shape: left alone


def test_schedules():
    config = TrainConfig(lr=1.0, schedule="onecycle", warmup_fraction=0.25)
    assert learning_rate(config, 0, 10, 100) == pytest.approx(0.1)
    assert learning_rate(config, 25, 10, 100) == pytest.approx(1.0)
    assert learning_rate(config, 100, 10, 100) == pytest.approx(0.0)
    step = TrainConfig(lr=1.0, schedule="step", step_epochs=2, gamma=0.1)
    assert [learning_rate(step, s, 10, 100) for s in (0, 19, 20, 45)] == pytest.approx([1, 1, 0.1, 0.01])
    exp = TrainConfig(lr=1.0, schedule="exp", gamma=0.5)
    assert learning_rate(exp, 35, 10, 100) == pytest.approx(0.125)


@pytest.mark.parametrize(("field", "value", "words"), [
    ("epochs", 0, "epochs"), ("optimizer", "rmsprop", "optimizer"), ("lr", -1.0, "learning rate"),
    ("val_fraction", 0.95, "validation"), ("dataset", "imagenet", "Unknown dataset"),
    ("shift", 9, "shift"), ("whiten_bias_epochs", -1, "whiten_bias_epochs"),
    ("batchnorm_shift_lr", 0.0, "batchnorm_shift_lr"), ("lookahead_every", -5, "lookahead_every"),
    ("lookahead_start", 1.0, "lookahead_start"),
])
def test_bad_settings_are_friendly_errors(field, value, words):
    with pytest.raises(ValueError, match=words):
        TrainConfig(**{field: value}).validate()


def test_recipes_and_devices():
    assert recipe("cifar10_fast").dataset == "cifar10" and recipe("cifar10_fast").whiten
    speed = recipe("cifar10_speed")
    assert speed.whiten and speed.mirror_tta and speed.shift_tta and speed.shift == 0  # flips only
    assert speed.alternating_flip and speed.dirac and speed.lookahead_every and speed.whiten_bias_epochs
    assert recipe("mnist_fast", epochs=3).epochs == 3
    assert resolve_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="No CUDA GPU"):
            resolve_device("cuda")


def test_the_training_objective_is_the_loss_of_the_normalized_batch():
    info = dataset_info("cifar10")
    torch.manual_seed(0)
    model = build_model(NET_PRESETS["cifar10_speed"].spec, 3, 10, 32).train()
    mean, std = normalization_tensors(info, torch.device("cpu"))
    images = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    labels = torch.randint(0, 10, (16,))
    loss, correct = TrainingObjective(model, mean, std, label_smoothing=0.2)(images, labels)
    logits = model(normalize(images, mean, std))  # the same batch statistics: BatchNorm in train mode
    assert torch.allclose(loss, F.cross_entropy(logits, labels, label_smoothing=0.2), atol=1e-5)
    assert correct.item() == (logits.argmax(dim=1) == labels).sum().item()


@pytest.mark.parametrize("spec", [NET_PRESETS["mnist_fast"].spec, NET_PRESETS["cifar10_speed"].spec,
                                  NET_PRESETS["cifar10_gpu"].spec, "C16n M D0.25 C32n M F64 D0.5"])
def test_the_training_objective_compiles_to_one_graph(spec):
    # On a GPU, torch.compile turns the objective into one CUDA graph per step; a graph break would
    # split every step into pieces launched one by one again. Tracing alone needs no GPU.
    info = dataset_info("cifar10" if spec.startswith("C24k2p0") else "mnist")
    channels, size, _ = info.image_shape
    model = build_model(spec, channels, info.num_classes, size).to(memory_format=torch.channels_last)
    mean, std = normalization_tensors(info, torch.device("cpu"))
    objective = TrainingObjective(model, mean, std, label_smoothing=0.1)
    images = torch.randint(0, 256, (8, channels, size, size), dtype=torch.uint8)
    explanation = torch._dynamo.explain(objective)(images, torch.randint(0, 10, (8,)))
    assert (explanation.graph_count, explanation.graph_break_count) == (1, 0), explanation.break_reasons


def test_the_meter_averages_its_window_and_restarts_after_a_check():
    import time

    from cnnviz.training.progress import Meter

    meter = Meter(torch.device("cpu"))
    meter.add(torch.tensor(2.0), torch.tensor(3), 4)
    meter.add(torch.tensor(1.0), torch.tensor(1), 4)
    assert (meter.loss, meter.accuracy, meter.images) == (1.5, 0.5, 8)
    meter.update_rate(time.perf_counter())  # under a second since it started: the rate waits
    assert meter.images_per_second == 0.0
    meter.update_rate(time.perf_counter() + 1.0)  # a second later: 8 images in just over a second
    assert 7.0 < meter.images_per_second <= 8.0
    meter.restart()
    assert (meter.loss, meter.accuracy, meter.images) == (0.0, 0.0, 0)
    meter.add(torch.tensor(1.0), torch.tensor(2), 2)
    meter.update_rate(time.perf_counter() + 2.0, force=True)  # the check's time before restart() is left out
    assert meter.images_per_second <= 1.0 and meter.accuracy == 1.0


def test_jobs_are_told_apart_by_identity_and_their_states_read_as_words():
    from cnnviz.training.jobs import JobStatus, TrainingJob

    first, second = TrainingJob(_tiny_config()), TrainingJob(_tiny_config())
    assert first != second and first == first and len({first, second}) == 2
    assert JobStatus.DONE == "done" and f"{JobStatus.CANCELLED}" == "cancelled"


def test_history_points_come_from_validation_reports():
    from cnnviz.training.progress import HistoryPoint, Phase, Progress

    report = Progress(phase=Phase.EVAL, step=7, total_steps=21, epoch=1 / 3, epochs=1, loss=2.0,
                      accuracy=0.25, lr=0.01, images_per_second=100.0, elapsed=1.23456, val_loss=1.5,
                      val_accuracy=0.5)
    point = HistoryPoint.from_progress(report)
    assert point == HistoryPoint(step=7, epoch=0.3333, train_loss=2.0, train_accuracy=0.25, lr=0.01,
                                 elapsed=1.235, val_loss=1.5, val_accuracy=0.5)
    assert report.phase == "eval" and point.test_accuracy is None
