"""Predictions, feature maps, Grad-CAM and filters of a small CNN trained here on real MNIST."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnviz.datasets import files as data
from cnnviz.images import inspection as ins
from cnnviz.images.preprocess import normalize_image
from cnnviz.networks.tta import TestTimeAugmentation

TRAIN_IMAGES = 10_000
TRAIN_EPOCHS = 2


class SmallCnn(nn.Module):
    """The shape of cnnviz.networks.build.SpecNet: features + classifier (global average pooling)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
        )
        self.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.1),
                                        nn.Linear(32, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def normalized(images: torch.Tensor) -> torch.Tensor:
    return (images.float() / 255 - data.MNIST_MEAN[0]) / data.MNIST_STD[0]


@pytest.fixture(scope="module")
def mnist_test():
    if not data.is_available("mnist"):
        pytest.skip("MNIST is not in the data directory")
    return data.load_dataset("mnist", "test")


@pytest.fixture(scope="module")
def model(mnist_test) -> SmallCnn:
    """Trained for a few seconds on real MNIST training images."""
    torch.manual_seed(0)
    train = data.load_dataset("mnist", "train")
    x, y = normalized(train.images[:TRAIN_IMAGES]), train.labels[:TRAIN_IMAGES]
    net = SmallCnn()
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    threads = torch.get_num_threads()
    # Small batches: one thread is faster, and on a busy machine two threads were 30x slower.
    torch.set_num_threads(1)
    try:
        for _ in range(TRAIN_EPOCHS):
            for start in range(0, TRAIN_IMAGES, 64):
                loss = F.cross_entropy(net(x[start:start + 64]), y[start:start + 64])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    finally:
        torch.set_num_threads(threads)
    net.eval()
    with torch.no_grad():
        accuracy = (net(normalized(mnist_test.images[:1000])).argmax(1) == mnist_test.labels[:1000]).float()
    assert accuracy.mean() > 0.75, accuracy.mean()  # 8 s of training: far from done
    net.zero_grad(set_to_none=True)
    return net


@pytest.fixture(scope="module")
def digit(mnist_test) -> torch.Tensor:
    return normalized(mnist_test.images[0:1])  # (1, 1, 28, 28), a 7


def test_probabilities_sum_to_one_and_match_the_forward_pass(model, mnist_test) -> None:
    classes = data.dataset_info("mnist").classes
    for index in range(20):
        x = normalized(mnist_test.images[index:index + 1])
        result = ins.inspect_image(model, x, classes)
        with torch.no_grad():
            logits = model(x)[0]
        torch.testing.assert_close(result.prediction.logits, logits)
        torch.testing.assert_close(result.prediction.probabilities, torch.softmax(logits, 0))
        assert float(result.prediction.probabilities.sum()) == pytest.approx(1.0, abs=1e-6)
        assert result.prediction.label == str(int(logits.argmax()))
        plain = ins.predict(model, x[0], classes)
        torch.testing.assert_close(plain.probabilities, result.prediction.probabilities)


def test_predict_batch_matches_single_predictions(model, mnist_test) -> None:
    x = normalized(mnist_test.images[:8])
    batch = ins.predict_batch(model, x)
    for i, prediction in enumerate(batch):
        torch.testing.assert_close(prediction.probabilities, ins.predict(model, x[i]).probabilities,
                                   rtol=1e-5, atol=1e-6)


def test_top_k(model, digit) -> None:
    prediction = ins.predict(model, digit)
    top = prediction.top(3)
    values, indices = torch.topk(prediction.probabilities, 3)
    assert [name for name, _ in top] == [str(int(i)) for i in indices]
    assert [p for _, p in top] == pytest.approx(values.tolist())
    assert top[0] == (prediction.label, pytest.approx(prediction.probability))
    assert len(prediction.top(50)) == 10
    line = ins.softmax_explained(prediction.logits, prediction.index)
    assert f"{prediction.probability:.4f}" in line


def test_activations_equal_the_layers_run_by_hand(model, digit) -> None:
    activations = ins.inspect_image(model, digit).activations
    assert [a.index for a in activations] == list(range(len(model.features)))
    for activation in activations:
        with torch.no_grad():
            expected = model.features[:activation.index + 1](digit.clone())[0]
        torch.testing.assert_close(activation.values, expected)
        assert activation.shape == tuple(expected.shape)
        assert activation.kind == type(model.features[activation.index]).__name__
    # The in-place ReLU after the first convolution must not have overwritten its output.
    assert activations[0].values.min() < 0 and activations[1].values.min() == 0
    assert [a.shape for a in activations] == ([(8, 28, 28)] * 2 + [(8, 14, 14)] + [(16, 14, 14)] * 3
                                              + [(16, 7, 7)] + [(32, 7, 7)] * 3)
    for a, b in zip(ins.layer_activations(model, digit), activations, strict=True):
        torch.testing.assert_close(a.values, b.values)


def test_grad_cam_equals_a_hook_based_reference(model, digit) -> None:
    layer = ins.last_conv_layer(model)
    assert layer == 9  # conv 7 -> batch norm 8 -> ReLU 9
    for class_index in (None, 3):
        cam = ins.inspect_image(model, digit, cam_class=class_index).grad_cam
        # Reference: forward hook on the layer, gradient by backward on a copy of the model.
        reference = SmallCnn()
        reference.load_state_dict(model.state_dict())
        reference.eval()
        kept = {}

        def keep_map_and_gradient(module, inputs, output, kept=kept):
            kept["map"] = output
            output.register_hook(lambda grad: kept.update(grad=grad))

        reference.features[layer].register_forward_hook(keep_map_and_gradient)
        logits = reference(digit)[0]
        target = int(logits.argmax()) if class_index is None else class_index
        logits[target].backward()
        weights = kept["grad"][0].mean(dim=(1, 2))
        coarse = F.relu((weights[:, None, None] * kept["map"][0].detach()).sum(0))
        assert cam.class_index == target and cam.layer_index == layer
        torch.testing.assert_close(cam.weights, weights)
        torch.testing.assert_close(cam.coarse, coarse)
        assert cam.coarse.shape == (7, 7) and cam.heatmap.shape == (28, 28)
        assert float(cam.heatmap.max()) == pytest.approx(1.0) and float(cam.heatmap.min()) >= 0


def test_grad_cam_highlights_the_digit(model, mnist_test) -> None:
    ratios = []
    for index in range(40):
        pixels = mnist_test.images[index, 0].float()
        heat = ins.grad_cam(model, normalized(mnist_test.images[index:index + 1])).heatmap
        rows = torch.nonzero(pixels.sum(1)).flatten()
        cols = torch.nonzero(pixels.sum(0)).flatten()
        inside = torch.zeros(28, 28, dtype=torch.bool)
        inside[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1] = True
        ratios.append(float(heat[inside].mean() / max(float(heat[~inside].mean()), 1e-6)))
    ratios = np.array(ratios)
    # The evidence lies where the digit is: more heat per pixel inside its box than around it.
    assert np.median(ratios) > 1.5, ratios
    assert (ratios > 1).mean() >= 0.85, ratios


def test_chosen_class_and_model_state_are_respected(model, digit) -> None:
    predicted = ins.inspect_image(model, digit)
    other = (predicted.prediction.index + 1) % 10
    chosen = ins.grad_cam(model, digit, class_index=other)
    assert chosen.class_index == other
    assert not torch.equal(chosen.coarse, predicted.grad_cam.coarse)
    model.train()
    try:
        in_training = ins.inspect_image(model, digit)  # run in eval mode, mode given back
        assert model.training
    finally:
        model.eval()
    torch.testing.assert_close(in_training.prediction.logits, predicted.prediction.logits)
    assert all(p.grad is None for p in model.parameters())  # Grad-CAM leaves no gradients behind
    with pytest.raises(ValueError, match="Class 10 does not exist"):
        ins.grad_cam(model, digit, class_index=10)
    with pytest.raises(ValueError, match="Layer 10 does not exist"):
        ins.grad_cam(model, digit, layer=10)
    with pytest.raises(ValueError, match="2 class names"):
        ins.predict(model, digit, classes=["a", "b"])


def test_first_layer_filters(model) -> None:
    name, weights = ins.first_conv_filters(model)
    assert name == "features.0"
    torch.testing.assert_close(weights, model.features[0].weight)
    weights += 1  # a copy: the model is untouched
    assert not torch.equal(weights, model.features[0].weight)


def test_layer_summaries(model) -> None:
    summaries = ins.layer_summaries(model, (1, 28, 28))
    assert [s.part for s in summaries] == ["features"] * 10 + ["classifier"] * 4
    assert [s.output_shape for s in summaries][-5:] == [(32, 7, 7), (32, 1, 1), (32,), (32,), (10,)]
    assert sum(s.parameters for s in summaries) == sum(p.numel() for p in model.parameters())
    assert summaries[0].kind == "Conv2d" and summaries[0].parameters == 8 * 1 * 3 * 3 + 8


def test_models_without_convolutions_get_a_sentence() -> None:
    flat = nn.Module()
    flat.features = nn.Sequential(nn.Flatten())
    flat.classifier = nn.Sequential(nn.Linear(784, 10))
    with pytest.raises(ValueError, match="no convolutional layer"):
        ins.last_conv_layer(flat)
    with pytest.raises(ValueError, match="no convolutional layer"):
        ins.first_conv_filters(flat)


def test_a_block_holding_convolutions_counts_as_a_conv_layer() -> None:
    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.conv(x)

    net = nn.Module()
    net.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), Block(), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
    net.classifier = nn.Sequential(nn.Flatten(), nn.Linear(4, 10))
    assert ins.last_conv_layer(net) == 2
    cam = ins.grad_cam(net, torch.randn(1, 3, 32, 32))
    assert cam.heatmap.shape == (32, 32)


def test_heatmap_overlay() -> None:
    base = np.full((28, 28), 100, dtype=np.uint8)
    heat = np.zeros((28, 28), dtype=np.float32)
    heat[10:14, 10:14] = 1.0
    overlay = ins.heatmap_overlay(base, heat)
    assert overlay.shape == (28, 28, 3) and overlay.dtype == np.uint8
    assert (overlay[0, 0] == 100).all()  # no heat: the image as it was
    red, green, blue = overlay[12, 12].astype(int)
    assert red > 150 and green > 120 and blue < 80  # full heat: yellow


def test_normalized_inputs_from_the_pipeline_work(model, mnist_test) -> None:
    pixels = mnist_test.images[0]  # (1, 28, 28) uint8
    x = normalize_image(pixels, data.MNIST_MEAN, data.MNIST_STD)
    torch.testing.assert_close(x, normalized(mnist_test.images[0:1]))
    assert ins.predict(model, x).label == "7"


def test_mirror_averaging_answers_with_the_mean_logits_of_image_and_mirror(model, mnist_test) -> None:
    x = normalized(mnist_test.images[:4])
    with torch.no_grad():
        plain, mirrored = model.eval()(x), model(x.flip(-1))
    model.tta = TestTimeAugmentation(mirror=True)
    try:
        batch = ins.predict_batch(model, x)
        single = ins.predict(model, x[:1])
        inspected = ins.inspect_image(model, x[:1])
    finally:
        del model.tta
    expected = (plain + mirrored) / 2
    assert torch.allclose(torch.stack([p.logits for p in batch]), expected, atol=1e-5)
    assert torch.allclose(single.logits, expected[0], atol=1e-5)
    assert torch.allclose(inspected.prediction.logits, expected[0], atol=1e-5)
    assert not torch.allclose(expected, plain, atol=1e-3)  # a digit's mirror is a different picture
    # the feature maps stay those of the image as given
    assert torch.equal(inspected.activations[0].values, ins.inspect_image(model, x[:1]).activations[0].values)


def test_shift_averaging_adds_the_images_moved_one_pixel_each_way(model, mnist_test) -> None:
    x = normalized(mnist_test.images[:4])
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
    down_right, up_left = padded[..., :28, :28], padded[..., 2:, 2:]
    assert torch.equal(down_right[..., 1:, 1:], x[..., :-1, :-1])
    assert torch.equal(up_left[..., :-1, :-1], x[..., 1:, 1:])

    def both(images: torch.Tensor) -> torch.Tensor:
        return (model(images) + model(images.flip(-1))) / 2

    with torch.no_grad():
        model.eval()
        expected = both(x) / 2 + (both(down_right) + both(up_left)) / 4
    model.tta = TestTimeAugmentation(mirror=True, shift=True)
    try:
        batch = ins.predict_batch(model, x)
        inspected = ins.inspect_image(model, x[:1])
    finally:
        del model.tta
    assert torch.allclose(torch.stack([p.logits for p in batch]), expected, atol=1e-5)
    assert torch.allclose(inspected.prediction.logits, expected[0], atol=1e-5)
    with torch.no_grad():
        assert not torch.allclose(expected, both(x), atol=1e-3)  # the shifts change the answer


def test_every_layer_including_the_dense_ones_equals_the_models_own_forward_pass(model, digit) -> None:
    seen = []
    layers = [*model.features, *model.classifier]
    hooks = [layer.register_forward_hook(lambda _m, _i, out: seen.append(out.detach().clone()))
             for layer in layers]
    try:
        with torch.no_grad():
            logits = model(digit)[0]
    finally:
        for hook in hooks:
            hook.remove()
    activations = ins.network_activations(model, digit)
    assert [a.index for a in activations] == list(range(len(layers)))
    assert [a.is_map for a in activations] == [out.dim() == 4 for out in seen]
    for activation, out in zip(activations, seen, strict=True):
        torch.testing.assert_close(activation.values, out[0], atol=1e-5, rtol=0)
    assert activations[-1].name == f"{len(layers) - 1} · Linear"
    torch.testing.assert_close(activations[-1].values, logits, atol=1e-5, rtol=0)


def test_grad_cam_layers_are_the_rectified_outputs_of_each_convolution(model, digit) -> None:
    from cnnviz.networks.build import build_model

    assert ins.cam_layers(model) == [1, 5, 9]  # each conv moved past its batch norm and ReLU
    assert ins.cam_layers(model)[-1] == ins.last_conv_layer(model)
    for layer in ins.cam_layers(model):
        cam = ins.inspect_image(model, digit, cam_layer=layer).grad_cam
        assert cam.layer_index == layer and cam.heatmap.shape == (28, 28)
    dense = build_model("F64", 1, 10, 28)
    assert ins.cam_layers(dense) == []
    with pytest.raises(ValueError, match="no convolutional layer"):
        ins.last_conv_layer(dense)
    assert [a.name for a in ins.network_activations(dense, digit)] == [
        "0 · Flatten", "1 · Linear", "2 · ReLU", "3 · Linear"]
