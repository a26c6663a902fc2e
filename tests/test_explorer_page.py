"""The explorer page under AppTest: the value it shows for a picked cell is the model's own forward
pass (forward hooks on nn.Sequential), the computation's kernels are the layer's weights, and odd models,
cells and uploads get a sentence, never a traceback."""

from __future__ import annotations

import json

import pytest
import streamlit as st
import torch
from streamlit.testing.v1 import AppTest

from cnnviz import pages
from cnnviz.datasets.files import load_dataset
from cnnviz.explorer.layers import net_layers
from cnnviz.images.preprocess import prepare_dataset_pixels
from cnnviz.networks.build import build_model
from cnnviz.paths import MODELS_DIR
from cnnviz.training.checkpoint import load_checkpoint, save_checkpoint
from cnnviz.ui.navigation import PAGES, page_spec
from tests.conftest import REPO

PAGE = page_spec(pages.EXPLORE_PAGE).path
MNIST_MODEL = MODELS_DIR / "mnist.pt"
CIFAR_MODEL = MODELS_DIR / "cifar10.pt"

pytestmark = pytest.mark.skipif(not MNIST_MODEL.is_file(), reason="models/mnist.pt is missing")


def hooked_outputs(model: torch.nn.Module, image: torch.Tensor) -> list[torch.Tensor]:
    """Every numbered layer's output from forward hooks while nn.Sequential runs features, then classifier."""
    outputs: list[torch.Tensor] = []
    layers = [*model.features, *model.classifier]
    handles = [m.register_forward_hook(lambda _m, _i, out: outputs.append(out.detach().clone()))
               for m in layers]
    try:
        model.eval()
        with torch.no_grad():
            model.classifier(model.features(image))
    finally:
        for handle in handles:
            handle.remove()
    return outputs


def normalized_test_image(dataset: str, index: int, model_path) -> tuple[torch.Tensor, object]:
    loaded = load_checkpoint(model_path)
    test = load_dataset(dataset, "test", download=False)
    return prepare_dataset_pixels(test.images[index], dataset, loaded.mean, loaded.std).tensor, loaded


@pytest.fixture
def page(real_data_dir, monkeypatch) -> AppTest:
    monkeypatch.setenv("CNNVIZ_DATA_DIR", str(real_data_dir))
    st.cache_resource.clear()
    st.cache_data.clear()
    app = AppTest.from_file(str(PAGE), default_timeout=60)
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def pick(app: AppTest, layer: int, channel: int, row: int = 0, col: int = 0) -> None:
    app.number_input(key=pages.EXPLORE_LAYER_KEY).set_value(layer).run()
    app.number_input(key=pages.EXPLORE_CHANNEL_KEY).set_value(channel)
    if not app.number_input(key=pages.EXPLORE_ROW_KEY).disabled:
        app.number_input(key=pages.EXPLORE_ROW_KEY).set_value(row)
        app.number_input(key=pages.EXPLORE_COL_KEY).set_value(col)
    app.run()
    assert not app.exception, [e.value for e in app.exception]


def shown_value(app: AppTest) -> float:
    metric = next(m for m in app.metric if m.label == pages.EXPLORE_VALUE_LABEL)
    return float(metric.value)


def choose_model(app: AppTest, stem: str) -> None:
    box = app.selectbox(key=pages.EXPLORE_MODEL_KEY)
    box.select_index(next(i for i, c in enumerate(box.options) if c.startswith(stem))).run()
    assert not app.exception, [e.value for e in app.exception]


def chart(app: AppTest, key: str) -> dict:
    element = next(e for e in app.get("plotly_chart") if e.proto.id and key in e.proto.id)
    return json.loads(element.proto.spec)


def test_page_is_registered_after_predict() -> None:
    assert [spec.url_path for spec in PAGES][-2:] == [pages.PREDICT_PAGE, pages.EXPLORE_PAGE]
    assert pages.PAGE_NAMES.index(pages.EXPLORE_PAGE) == pages.PAGE_NAMES.index(pages.PREDICT_PAGE) + 1


def test_the_answer_says_the_model_was_trained_with_label_smoothing(page) -> None:
    loaded = load_checkpoint(MNIST_MODEL)
    smoothing = loaded.metadata["training"]["label_smoothing"]  # 0.1: the right class is taught as 91%
    assert smoothing > 0
    assert any(f"label smoothing {smoothing:g}" in c.value for c in page.caption)


def test_every_kind_of_layer_shows_the_models_own_value(page) -> None:
    image, loaded = normalized_test_image("mnist", 0, MNIST_MODEL)
    outputs = hooked_outputs(loaded.model, image)
    # the first view: layer 0, channel 0, the middle cell of test image 0
    middle = outputs[0].shape[2] // 2
    assert shown_value(page) == pytest.approx(float(outputs[0][0, 0, middle, middle]), abs=1e-4)
    for layer in net_layers(loaded.model):
        out = outputs[layer.number]
        channel = layer.number % out.shape[1]
        if out.dim() == 4:
            row, col = out.shape[2] - 1 - layer.number % out.shape[2], layer.number % out.shape[3]
            pick(page, layer.number, channel, row, col)
            expected = float(out[0, channel, row, col])
        else:
            pick(page, layer.number, channel)
            expected = float(out[0, channel])
        assert shown_value(page) == pytest.approx(expected, abs=1e-4), layer.name


def test_the_convolution_shown_is_the_layers_own_kernel_and_window(page) -> None:
    image, loaded = normalized_test_image("mnist", 0, MNIST_MODEL)
    pick(page, 3, 5, 6, 8)  # 3 · Conv2d C32n over layer 2's 16 channels: the top 4 shown
    figure = chart(page, "explore_step_0")
    kernels = [t for t in figure["data"] if t["name"] == "kernel"]
    windows = [t for t in figure["data"] if t["name"] == "window"]
    assert len(kernels) == 4
    relu = hooked_outputs(loaded.model, image)[2][0]  # (16, 14, 14): what layer 3 received
    weight = loaded.model.features[3].weight.detach()[5]  # (16, 3, 3)
    titles = [a["text"] for a in figure["layout"]["annotations"] if a["text"].startswith("input channel")]
    for kernel, window, title in zip(kernels, windows, titles, strict=True):
        channel = int(title.split()[2].rstrip(":"))
        assert torch.allclose(torch.tensor(kernel["z"]), weight[channel], atol=1e-6)
        assert torch.allclose(torch.tensor(window["z"]), relu[channel, 5:8, 7:10], atol=1e-6)
    text = " ".join(m.value for m in page.markdown)
    assert "the 4 of its 16 input channels" in text and "the other 12 channels" in text


def test_a_cell_beyond_a_newly_picked_layer_is_kept_at_its_edge(page) -> None:
    image, loaded = normalized_test_image("mnist", 0, MNIST_MODEL)
    outputs = hooked_outputs(loaded.model, image)
    pick(page, 0, 15, 13, 12)
    page.session_state[pages.EXPLORE_LAYER_KEY] = 6  # 32 x 7 x 7, set as a click on the overview sets it
    page.run()
    assert not page.exception, [e.value for e in page.exception]
    cell = [page.number_input(key=key).value for key in
            (pages.EXPLORE_CHANNEL_KEY, pages.EXPLORE_ROW_KEY, pages.EXPLORE_COL_KEY)]
    assert cell == [15, 6, 6]
    assert shown_value(page) == pytest.approx(float(outputs[6][0, 15, 6, 6]), abs=1e-4)
    page.session_state[pages.EXPLORE_LAYER_KEY] = 10  # the 10 logits: unit 15 does not exist
    page.run()
    assert page.number_input(key=pages.EXPLORE_CHANNEL_KEY).value == 9
    assert page.number_input(key=pages.EXPLORE_ROW_KEY).disabled
    assert shown_value(page) == pytest.approx(float(outputs[10][0, 9]), abs=1e-4)


def test_the_receptive_field_counts_the_pixels_autograd_reaches(page) -> None:
    image, loaded = normalized_test_image("mnist", 0, MNIST_MODEL)
    pool = hooked_outputs(loaded.model, image)[6][0, 2]  # after the max pool: (7, 7)
    row, col = divmod(int(pool.argmax()), pool.shape[1])  # a live cell (a cell at 0 reaches no pixel)
    pick(page, 6, 2, row, col)
    leaf = image.clone().requires_grad_(True)
    model = loaded.model.eval()
    with torch.enable_grad():
        hidden = model.features[:7](leaf)  # nn.Sequential: conv, BN, ReLU, conv, BN, ReLU, pool
        (gradient,) = torch.autograd.grad(hidden[0, 2, row, col], leaf)
    count = int(gradient.ne(0).sum())
    assert count > 0
    text = " ".join(m.value for m in page.markdown)
    assert f"non-zero on **{count}** input pixels" in text


def test_a_cell_whose_relu_is_off_says_why_its_footprint_is_empty(page) -> None:
    image, loaded = normalized_test_image("mnist", 0, MNIST_MODEL)
    relu = hooked_outputs(loaded.model, image)[5][0]  # 5 · ReLU: (32, 14, 14)
    channel, row, col = (int(i) for i in (relu == 0).nonzero()[0])
    pick(page, 5, channel, row, col)
    leaf = image.clone().requires_grad_(True)
    with torch.enable_grad():
        (gradient,) = torch.autograd.grad(loaded.model.eval().features[:6](leaf)[0, channel, row, col], leaf)
    assert int(gradient.ne(0).sum()) == 0  # autograd agrees: nothing reaches the input
    text = " ".join(m.value for m in page.markdown)
    assert "0 on every input pixel" in text and "non-zero on **0**" not in text


def test_cifar_residual_cell_and_test_image_choice(page) -> None:
    choose_model(page, "cifar10")
    page.number_input(key=pages.EXPLORE_TEST_INDEX_KEY).set_value(17).run()
    image, loaded = normalized_test_image("cifar10", 17, CIFAR_MODEL)
    outputs = hooked_outputs(loaded.model, image)
    pick(page, 11, 40, 2, 5)  # 11 · ResidualBlock (R96)
    assert shown_value(page) == pytest.approx(float(outputs[11][0, 40, 2, 5]), abs=1e-4)
    assert any("Shortcut + body" in m.value for m in page.markdown)
    last = len(outputs) - 1
    pick(page, last, 3)
    assert shown_value(page) == pytest.approx(float(outputs[last][0, 3]), abs=1e-4)
    assert any("**Softmax** (cat)" in m.value for m in page.markdown)
    pick(page, 0, 7, 4, 9)  # the first layer over the colour image: its channels named R, G, B
    assert "the image's red, green and blue" in " ".join(m.value for m in page.markdown)
    figure = chart(page, "explore_step_0")
    titles = sorted(a["text"].split(":")[0] for a in figure["layout"]["annotations"]
                    if a["text"].startswith("input channel"))
    assert titles == ["input channel 0 (R)", "input channel 1 (G)", "input channel 2 (B)"]
    kernels = [t["z"] for t in figure["data"] if t["name"] == "kernel"]
    weight = loaded.model.features[0].weight.detach()[7]  # (3, 2, 2): its own slices, in the shown order
    assert sorted(map(tuple, (torch.tensor(k).flatten().tolist() for k in kernels))) == sorted(
        tuple(weight[c].flatten().tolist()) for c in range(3))


def save_model(folder, spec: str, name: str) -> None:
    torch.manual_seed(0)
    model = build_model(spec, 1, 10, 28)
    shipped = load_checkpoint(MNIST_MODEL)
    save_checkpoint(folder / f"{name}.pt", model, {**shipped.metadata, "spec": spec, "name": name})


@pytest.mark.parametrize("spec", ["F64", "C4k14s14p0 C4k2p0 F16", "C6 G"])
def test_odd_models_run_without_a_traceback(page, tmp_path, monkeypatch, spec) -> None:
    name = "odd_" + "".join(c for c in spec if c.isalnum())
    save_model(tmp_path, spec, name)
    monkeypatch.setenv("CNNVIZ_MODELS_DIR", str(tmp_path))
    page.run()
    choose_model(page, name)
    loaded = load_checkpoint(tmp_path / f"{name}.pt")
    image, _ = normalized_test_image("mnist", 0, MNIST_MODEL)
    outputs = hooked_outputs(loaded.model, image)
    for layer in net_layers(loaded.model):
        pick(page, layer.number, 0)
        out = outputs[layer.number]
        expected = float(out[0, 0, 0, 0] if out.dim() == 4 else out[0, 0])
        assert shown_value(page) == pytest.approx(expected, abs=1e-4), layer.name
        if out.dim() == 4 and out.shape[2] == 1:
            assert page.number_input(key=pages.EXPLORE_ROW_KEY).disabled
    if spec == "F64":
        assert any("is not one" in c.value for c in page.caption)  # no convolution to hand over


def test_a_broken_upload_gets_one_sentence(page) -> None:
    page.radio(key=pages.EXPLORE_SOURCE_KEY).set_value(pages.UPLOAD_INPUT).run()
    page.file_uploader(key=pages.EXPLORE_UPLOAD_KEY).set_value(("digit.png", b"not a picture",
                                                                 "image/png")).run()
    assert not page.exception, [e.value for e in page.exception]
    assert len(page.error) == 1 and page.error[0].value.rstrip().endswith(".")
    assert not [m for m in page.metric if m.label == pages.EXPLORE_VALUE_LABEL]


def test_open_on_the_convolution_page_hands_over_the_real_layer(real_data_dir, monkeypatch) -> None:
    monkeypatch.setenv("CNNVIZ_DATA_DIR", str(real_data_dir))
    st.cache_resource.clear()
    app = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    app.run()
    app.switch_page(str(PAGE))
    app.run()
    app.number_input(key=pages.EXPLORE_LAYER_KEY).set_value(3).run()
    app.number_input(key=pages.EXPLORE_CHANNEL_KEY).set_value(7).run()
    app.button(key="explore_open_convolution").click().run()
    assert not app.exception, [e.value for e in app.exception]
    learned = app.session_state[pages.CONVOLUTION_HANDOFF_KEY]
    image, loaded = normalized_test_image("mnist", 0, MNIST_MODEL)
    outputs = hooked_outputs(loaded.model, image)
    assert learned.layer_number == 3 and learned.out_channel == 7
    assert torch.allclose(torch.from_numpy(learned.output), outputs[3][0, 7], atol=1e-5)
    assert torch.allclose(torch.from_numpy(learned.input), outputs[2][0], atol=1e-6)


def test_an_upload_is_explained_and_kept_after_a_visit_to_another_page(real_data_dir, monkeypatch) -> None:
    import io

    from PIL import Image

    from cnnviz.images.decode import decode_image
    from cnnviz.images.preprocess import preprocess

    monkeypatch.setenv("CNNVIZ_DATA_DIR", str(real_data_dir))
    test = load_dataset("mnist", "test", download=False)
    buffer = io.BytesIO()
    Image.fromarray(test.images[3, 0].numpy()).resize((140, 140)).save(buffer, format="PNG")
    data = buffer.getvalue()
    st.cache_resource.clear()
    app = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    app.run()
    app.switch_page(str(PAGE)).run()
    app.radio(key=pages.EXPLORE_SOURCE_KEY).set_value(pages.UPLOAD_INPUT).run()
    app.file_uploader(key=pages.EXPLORE_UPLOAD_KEY).set_value(("three.png", data, "image/png")).run()
    assert not app.exception, [e.value for e in app.exception]
    loaded = load_checkpoint(MNIST_MODEL)
    image = preprocess(decode_image(data), "mnist", loaded.mean, loaded.std).tensor
    outputs = hooked_outputs(loaded.model, image)
    pick(app, 8, 17)
    assert shown_value(app) == pytest.approx(float(outputs[8][0, 17]), abs=1e-4)

    app.switch_page(str(page_spec(pages.CONVOLUTION_PAGE).path)).run()
    app.switch_page(str(PAGE)).run()
    assert not app.exception, [e.value for e in app.exception]
    assert any("three\\.png, kept from before" in c.value for c in app.caption)  # the name as text
    assert shown_value(app) == pytest.approx(float(outputs[8][0, 17]), abs=1e-4)  # same image, same cell


def test_top_images_are_the_strongest_responses_and_the_optimized_image_is_labelled(page) -> None:
    import re
    import time

    from cnnviz.explorer.top_images import clear_cache

    clear_cache()  # the first time for this layer
    pick(page, 3, 5, 0, 0)
    page.button(key=pages.EXPLORE_TOP_IMAGES_KEY).click().run()
    assert not any(pages.TOP_IMAGES_DONE_TEXT in c.value for c in page.caption)
    assert any("10,000 test images" in p.proto.text for p in page.get("progress"))
    # the page run never waits for the 10,000 images: it shows progress and polls (a browser's fragment
    # timer; here a rerun) until the layer's maxima are ready
    deadline = time.monotonic() + 60
    while not any(pages.TOP_IMAGES_DONE_TEXT in c.value for c in page.caption):
        assert not page.exception, [e.value for e in page.exception]
        assert time.monotonic() < deadline, "the top images never came"
        time.sleep(0.2)
        page.run()
    assert not page.exception, [e.value for e in page.exception]
    captions = [i.caption for element in page.get("image") for i in element.proto.imgs
                if i.caption.startswith("test image")]
    assert len(captions) == 9
    loaded = load_checkpoint(MNIST_MODEL)
    test = load_dataset("mnist", "test", download=False)
    model = loaded.model.eval()
    shown = []
    for caption in captions:
        pattern = r"test image ([\d,]+): ([-\d.]+) at row (\d+), column (\d+)"
        index, value, row, col = re.match(pattern, caption).groups()
        image = prepare_dataset_pixels(test.images[int(index.replace(",", ""))], "mnist", loaded.mean,
                                       loaded.std).tensor
        with torch.no_grad():
            maps = model.features[:4](image)[0, 5]  # nn.Sequential up to layer 3
        assert float(maps[int(row), int(col)]) == pytest.approx(float(value), abs=1e-3)
        assert float(maps.max()) == pytest.approx(float(value), abs=1e-3)  # its strongest cell
        shown.append(float(value))
    assert shown == sorted(shown, reverse=True)

    page.radio(key="explore_objective").set_value("centre").run()
    page.button(key=pages.EXPLORE_OPTIMIZE_KEY).click().run()
    assert not page.exception, [e.value for e in page.exception]
    labels = [i.caption for element in page.get("image") for i in element.proto.imgs]
    assert any(label.startswith("Optimized image, not a photo") for label in labels)


def test_random_picks_another_test_image_and_its_values_follow(page) -> None:
    page.button(key="explore_random").click().run()
    assert not page.exception, [e.value for e in page.exception]
    index = int(page.number_input(key=pages.EXPLORE_TEST_INDEX_KEY).value)
    image, loaded = normalized_test_image("mnist", index, MNIST_MODEL)
    outputs = hooked_outputs(loaded.model, image)
    pick(page, 5, 9, 4, 10)
    assert shown_value(page) == pytest.approx(float(outputs[5][0, 9, 4, 10]), abs=1e-4)
    label = load_dataset("mnist", "test", download=False).labels[index]
    captions = [i.caption for element in page.get("image") for i in element.proto.imgs]
    assert f"The network's input: test image {index:,} (labelled {int(label)})." in captions


def test_the_wording_a_first_year_student_reads(page) -> None:
    image, loaded = normalized_test_image("mnist", 0, MNIST_MODEL)
    outputs = hooked_outputs(loaded.model, image)
    pick(page, 3, 5, 6, 8)  # four channels' partial sums, some negative: written "a - b", never "+ -b"
    text = " ".join(m.value for m in page.markdown)
    assert "+ -" not in text and "Sum: " in text
    pick(page, 0, 0, 7, 7)  # one input channel: no "1 input channel(s)"
    assert "its one input channel" in " ".join(m.value for m in page.markdown)
    pool = outputs[6][0, 1]
    row, col = divmod(int(pool.argmax()), pool.shape[1])
    pick(page, 6, 1, row, col)
    text = " ".join(m.value for m in page.markdown)
    assert "the largest of each 2 x 2 window" in text and "its window on layer 5's output" in text
    pick(page, 10, 3)  # the output: its value is a logit, and the page says so
    assert "the logits" in " ".join(m.value for m in page.markdown)
    assert shown_value(page) == pytest.approx(float(outputs[10][0, 3]), abs=1e-4)


def test_a_typed_cell_outside_the_layer_is_moved_in_with_a_sentence(page) -> None:
    image, loaded = normalized_test_image("mnist", 0, MNIST_MODEL)
    outputs = hooked_outputs(loaded.model, image)
    pick(page, 3, 5, 99, -4)  # layer 3: 32 x 14 x 14
    cell = [page.number_input(key=key).value for key in
            (pages.EXPLORE_CHANNEL_KEY, pages.EXPLORE_ROW_KEY, pages.EXPLORE_COL_KEY)]
    assert cell == [5, 13, 0]
    assert shown_value(page) == pytest.approx(float(outputs[3][0, 5, 13, 0]), abs=1e-4)
    notes = " ".join(c.value for c in page.caption)
    assert "Row 99 is not in this layer (0 to 13): showing row 13" in notes
    assert "column -4 is not in this layer (0 to 13): showing column 0" in notes
    page.run()  # the next run: the numbers are inside, no sentence
    assert not any("is not in this layer" in c.value for c in page.caption)
