"""Defects of the Train page found by an independent review (issue 19, item 8), each pinned."""

import pytest
import torch
import torch.nn.functional as F

from cnnviz.datasets.files import DATASETS
from cnnviz.training.config import TrainConfig
from cnnviz.training.results import smoothed_loss_floor
from cnnviz.ui.training.parts import mistake_width, smoothing_note, summary_rows


@pytest.mark.parametrize("smoothing, classes", [(0.1, 10), (0.2, 10), (0.3, 4)])
def test_the_smoothed_loss_floor_is_the_loss_of_a_net_that_answers_the_smoothed_targets(smoothing, classes):
    target = torch.full((classes,), smoothing / classes, dtype=torch.float64)
    target[2] += 1 - smoothing
    logits = target.log().unsqueeze(0)  # softmax(log p) = p: the best answer the smoothed loss allows
    best = F.cross_entropy(logits, torch.tensor([2]), label_smoothing=smoothing).item()
    assert smoothed_loss_floor(smoothing, classes) == pytest.approx(best, abs=1e-9)
    worse = F.cross_entropy(logits * 1.5, torch.tensor([2]), label_smoothing=smoothing).item()
    assert worse > best  # surer than the targets costs more
    assert smoothed_loss_floor(0.0, classes) == 0.0


def test_a_run_with_smoothing_says_why_its_training_loss_sits_above_the_validation_loss():
    assert smoothing_note(TrainConfig(label_smoothing=0.0), 10) is None
    note = smoothing_note(TrainConfig(label_smoothing=0.2), 10)
    assert "not one-hot" in note and "82%" in note and "dropout and augmentation" in note
    assert f"below {smoothed_loss_floor(0.2, 10):.2f}" in note and "below 0.87" in note


def test_the_layer_table_shows_the_formula_before_it_scrolls_out_of_sight():
    from cnnviz.networks.summary import summarize_spec

    rows = summary_rows(summarize_spec("C8 M F10", (1, 28, 28), 10))
    assert list(rows[0])[:4] == ["layer", "type", "parameters", "formula"]
    assert rows[0]["formula"] and rows[0]["parameters"] == 8 * 9 + 8


def test_mistake_captions_get_room_for_the_longest_class_name():
    cifar, mnist = DATASETS["cifar10"], DATASETS["mnist"]
    width = mistake_width(cifar.classes, 32)
    assert width % 32 == 0 and width >= 8 * len("automobile")  # 96: "automobile" on one line
    assert mistake_width(mnist.classes, 28) % 28 == 0 and mistake_width(mnist.classes, 28) >= 64


def _shipped_cifar10():
    from cnnviz.paths import MODELS_DIR
    from cnnviz.training.checkpoint import load_checkpoint

    return load_checkpoint(MODELS_DIR / "cifar10.pt")


def test_cifar10_shows_its_first_learned_convolution_seen_through_the_whitening_layer(real_data_dir):
    from cnnviz.datasets.files import load_dataset
    from cnnviz.training.results import composed_filters, first_layer_filters, first_learned_filters

    loaded = _shipped_cifar10()
    assert loaded.metadata["training"]["whiten"]
    model = loaded.model
    whitening, learned = model.features[0], model.features[2]
    assert torch.equal(whitening.weight[:12], -whitening.weight[12:])  # what the page showed before
    filters, whitened = first_learned_filters(model, whiten=True)
    assert whitened and filters.shape == (32, 3, 4, 4)
    assert filters.amin() == 0 and filters.amax() == 1
    # The composed filter computes the two layers at once (no biases, no ReLU between, no padding).
    test = load_dataset("cifar10", "test", real_data_dir)
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (loaded.mean, loaded.std))
    x = (test.images[:8].float() / 255 - mean) / std  # (8, 3, 32, 32), normalized as in training
    with torch.no_grad():  # in float64, so that only the composition is compared, not float32 rounding
        both = F.conv2d(F.conv2d(x.double(), whitening.weight.double()), learned.weight.double())
        once = F.conv2d(x.double(), composed_filters(whitening, learned).double())
    assert (once - both).abs().max() <= 1e-5 * both.abs().max()
    # A net without whitening shows its first convolution, as before.
    plain, whitened = first_learned_filters(model, whiten=False)
    assert not whitened and torch.equal(plain, first_layer_filters(model))


def _draw_cifar10_results() -> None:
    from cnnviz.datasets.files import load_dataset
    from cnnviz.paths import MODELS_DIR
    from cnnviz.training.checkpoint import load_checkpoint
    from cnnviz.training.config import TrainConfig
    from cnnviz.training.evaluate import evaluate
    from cnnviz.training.loop import TrainResult
    from cnnviz.ui.training.parts import results_block

    loaded = load_checkpoint(MODELS_DIR / "cifar10.pt")
    test = load_dataset("cifar10", "test")
    _, accuracy, predictions = evaluate(loaded.model, test.images[:100], test.labels[:100], test.info)
    config = TrainConfig(**{**loaded.metadata["training"], "test_subset": 100})
    results_block(TrainResult(loaded.model, config, test.info, [], accuracy, predictions, test.labels[:100],
                              False, 1.0, 10, "cpu"), key="fix_results")


def test_the_results_say_what_the_whitening_layer_is_and_show_its_filters_on_request(real_data_dir):
    from streamlit.testing.v1 import AppTest

    from cnnviz.ui.training.parts import WHITENING_TEXT

    app = AppTest.from_function(_draw_cifar10_results, default_timeout=60)
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    text = " ".join(m.value for m in app.markdown) + " ".join(c.value for c in app.caption)
    assert "filters of the first layer it learned" in text and WHITENING_TEXT in text
    assert "first-layer filters it learned" not in text  # the whitening filters are not called learned
    charts = lambda: [e for e in app.get("plotly_chart")]  # noqa: E731
    before = len(charts())
    app.toggle(key="fix_results_whitening_filters").set_value(True).run()
    assert not app.exception
    assert len(charts()) == before + 1
    assert any("computed from the data, not learned" in m.value for m in app.markdown)


def _two_runs(real_data_dir):
    """Two finished runs of this session, #1 and #2, that differ in their rate and schedule (the shipped
    MNIST model stands in for both; each is scored on its own share of the real test set)."""
    from cnnviz.datasets.files import load_dataset
    from cnnviz.paths import MODELS_DIR
    from cnnviz.training.checkpoint import load_checkpoint
    from cnnviz.training.evaluate import evaluate
    from cnnviz.training.progress import history_points
    from cnnviz.ui.training.runs import RunRecord

    loaded = load_checkpoint(MODELS_DIR / "mnist.pt")
    test = load_dataset("mnist", "test", real_data_dir)
    history = tuple(history_points(loaded.metadata["history"]))
    runs = []
    for number, (images, lr, schedule) in enumerate([(300, 0.05, "onecycle"), (200, 0.1, "step")], 1):
        labels = test.labels[:images]
        _, accuracy, predictions = evaluate(loaded.model, test.images[:images], labels, test.info)
        training = {**loaded.metadata["training"], "lr": lr, "schedule": schedule, "test_subset": images}
        record = RunRecord(
            label=f"#{number}", dataset="MNIST", spec=loaded.spec, params=1, epochs=1.0, train_accuracy=None,
            val_accuracy=None, test_accuracy=accuracy, seconds=1.0, device="cpu", stopped=False,
            history=history, model=loaded.model, metadata={**loaded.metadata, "training": training},
            test_predictions=predictions, test_labels=labels)
        runs.append(record)
    return runs


def test_the_run_history_shows_the_settings_that_differ_and_each_run_s_results(monkeypatch, tmp_path,
                                                                                real_data_dir):
    from tests.test_training_page import _open_training_page

    app = _open_training_page(monkeypatch, tmp_path, real_data_dir)
    runs = _two_runs(real_data_dir)
    app.session_state["train_runs"] = runs
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    table = app.dataframe[-1].value  # the Run history (the layer table comes first)
    for column in ("optimizer", "lr", "batch", "images", "smoothing", "seed", "schedule", "test subset"):
        assert column in table.columns, (column, list(table.columns))
    assert list(table["lr"]) == [0.05, 0.1] and list(table["schedule"]) == ["onecycle", "step"]
    assert "weight decay" not in table.columns  # the same in both runs: no column of its own
    # The latest run's results first; the earlier run's stay a choice away.
    metrics = lambda: {m.label: m.value for m in app.metric}  # noqa: E731
    assert metrics()["Test accuracy"] == f"{runs[1].test_accuracy:.2%}"
    assert any("of 200)" in m.value for m in app.markdown)
    app.selectbox(key="train_results_run_2").set_value("#1").run()
    assert not app.exception, [e.value for e in app.exception]
    assert metrics()["Test accuracy"] == f"{runs[0].test_accuracy:.2%}"
    assert any("of 300)" in m.value for m in app.markdown)


def test_the_run_comparison_overlays_losses_too():
    from cnnviz.training.progress import HistoryPoint
    from cnnviz.ui.training.figures import COMPARED, compare_runs

    history = [HistoryPoint(step=s, epoch=s / 10, train_loss=1 / s, train_accuracy=0.5, lr=0.1, elapsed=s,
                            val_loss=2 / s, val_accuracy=0.6) for s in (1, 2, 4)]
    alone = [HistoryPoint(step=1, epoch=0.1, train_loss=0.7, train_accuracy=0.5, lr=0.1, elapsed=1.0)]
    assert set(COMPARED) >= {"validation accuracy", "validation loss", "training loss"}
    figure = compare_runs([("#1", history), ("#2", alone)], "validation loss")
    assert list(figure.data[0].y) == [2.0, 1.0, 0.5] and figure.data[0].name == "#1"
    assert list(figure.data[1].y) == [0.7] and figure.data[1].name == "#2 (training)"  # nothing held out
    assert list(compare_runs([("#1", history)], "training loss").data[0].y) == [1.0, 0.5, 0.25]
    assert figure.layout.yaxis.title.text == "validation loss"
