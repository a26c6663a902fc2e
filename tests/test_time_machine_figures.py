"""The time machine's pictures draw a moment's own numbers: the shipped MNIST model and real test
images stand in for one snapshot (the page test checks them on a real run's snapshots)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnviz.datasets.files import load_dataset
from cnnviz.images.inspection import grad_cam, heatmap_overlay, network_activations
from cnnviz.images.preprocess import normalize_image
from cnnviz.paths import MODELS_DIR
from cnnviz.training.checkpoint import load_checkpoint
from cnnviz.training.results import confusion_matrix
from cnnviz.ui.predict.figures import COLOUR_TABLE
from cnnviz.ui.training import timeline_figures as tf
from cnnviz.ui.training.figures import learning_curves
from tests.test_training_figures import HISTORY


@pytest.fixture(scope="module")
def mnist(real_data_dir):
    loaded = load_checkpoint(MODELS_DIR / "mnist.pt")
    test = load_dataset("mnist", "test", data_dir=real_data_dir)
    return loaded, test


def test_the_curves_mark_the_chosen_moment_on_both_charts() -> None:
    figure = learning_curves(HISTORY, epochs=2, mark_epoch=0.75)
    lines = figure.layout.shapes
    assert [(s.xref, s.x0, s.x1, s.yref, s.y0, s.y1) for s in lines] == [
        ("x", 0.75, 0.75, "paper", 0, 1), ("x2", 0.75, 0.75, "paper", 0, 1)]
    assert not learning_curves(HISTORY, epochs=2).layout.shapes


def test_filters_are_scaled_each_to_its_own_range(mnist) -> None:
    loaded, _ = mnist
    weights = loaded.model.features[0].weight.detach()  # (out, 1, k, k): the first convolution
    scaled = tf.scaled_filters(weights)
    for raw, tile in zip(weights, scaled, strict=True):
        expected = (raw - raw.min()) / (raw.max() - raw.min())
        torch.testing.assert_close(tile, expected, atol=1e-6, rtol=0)
    assert float(scaled.amin()) == 0.0 and float(scaled.amax()) == 1.0


def test_the_probe_maps_picture_is_the_layer_s_values_on_its_colour_scale(mnist) -> None:
    loaded, test = mnist
    image = normalize_image(test.images[7], loaded.mean, loaded.std)
    maps = network_activations(loaded.model, image)[0].values[:8].half()  # as a snapshot keeps them
    picture, low, high = tf.probe_maps_image(maps)
    values = maps.float()
    assert (low, high) == (float(values.min()), float(values.max()))
    side = values.shape[-1]
    assert picture.shape == (side, 8 * side + 7, 3)  # one row of 8 maps, 1 px between them
    for channel in (0, 5):
        left = channel * (side + 1)
        cell = picture[3, left + 4]
        index = int(np.clip((float(values[channel, 3, 4]) - low) / (high - low) * 255, 0, 255))
        assert tuple(cell) == tuple(COLOUR_TABLE[index])


def test_a_dense_layer_s_units_are_cells_in_rows(mnist) -> None:
    loaded, test = mnist
    image = normalize_image(test.images[0], loaded.mean, loaded.std)
    units = network_activations(loaded.model, image)[-1].values  # (10,) logits
    picture, low, high = tf.probe_maps_image(units)
    assert picture.shape == (1, 2 * 10 - 1, 3) and (low, high) == (float(units.min()), float(units.max()))
    top = int(units.argmax())
    assert tuple(picture[0, 2 * top]) == tuple(COLOUR_TABLE[255])


def test_answer_bars_and_cam_show_the_probe_s_numbers(mnist) -> None:
    loaded, test = mnist
    image = normalize_image(test.images[3], loaded.mean, loaded.std)
    logits = loaded.model.eval()(image)[0].detach()
    probabilities = torch.softmax(logits, dim=0)
    bars = tf.figure(tf.probe_answer_bars(probabilities, loaded.classes))
    assert list(bars.data[0].x) == pytest.approx(probabilities.tolist(), abs=1e-7)
    colours = list(bars.data[0].marker.color)
    assert colours.index(tf.PREDICTED_COLOUR) == int(probabilities.argmax())
    assert colours.count(tf.PREDICTED_COLOUR) == 1
    # the percentages are drawn outside their bars: the right margin holds the longest ("100.0%")
    assert bars.data[0].textposition == "outside" and bars.layout.margin.r >= 40
    cam = grad_cam(loaded.model, image).heatmap
    picture = tf.cam_picture(test.images[3], cam)
    np.testing.assert_array_equal(picture, heatmap_overlay(test.images[3][0].numpy(), cam.numpy()))


def test_class_accuracy_bars_are_the_confusion_s_diagonal_shares(mnist) -> None:
    loaded, test = mnist
    images = torch.cat([normalize_image(p, loaded.mean, loaded.std) for p in test.images[:300]])
    with torch.inference_mode():
        predictions = loaded.model.eval()(images).argmax(dim=1)
    matrix = confusion_matrix(predictions, test.labels[:300], 10)
    accuracy = matrix.diagonal().float() / matrix.sum(dim=1).clamp_min(1)
    bars = tf.figure(tf.class_accuracy_bars(accuracy, matrix.sum(dim=1), loaded.classes))
    expected = [float((predictions[test.labels[:300] == c] == c).float().mean()) for c in range(10)]
    assert list(bars.data[0].y) == pytest.approx(expected, abs=1e-6)
    assert list(bars.data[0].customdata) == matrix.sum(dim=1).tolist()
    assert bars.layout.xaxis.dtick == 1  # every class named under its bar, in a narrow column too
