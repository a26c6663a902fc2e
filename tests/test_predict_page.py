"""The inspect-and-predict page: every input kind under AppTest, and a real upload in a real browser."""

from __future__ import annotations

import io

import numpy as np
import pytest
import streamlit as st
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from cnnviz.datasets.samples import list_samples, load_sample
from cnnviz.images.decode import decode_image
from cnnviz.images.inspection import inspect_image, predict
from cnnviz.images.preprocess import prepare_dataset_pixels, preprocess
from cnnviz.paths import MODELS_DIR
from cnnviz.training.checkpoint import load_checkpoint
from cnnviz.ui.navigation import PAGES, page_spec
from tests.conftest import assert_no_exception, open_page, save_screenshot, wait_until_idle

PAGE = page_spec("predict").path
MNIST_MODEL = MODELS_DIR / "mnist.pt"
CIFAR_MODEL = MODELS_DIR / "cifar10.pt"

pytestmark = pytest.mark.skipif(not MNIST_MODEL.is_file(), reason="models/mnist.pt is missing")


@pytest.fixture
def page() -> AppTest:
    st.cache_resource.clear()
    st.cache_data.clear()
    app = AppTest.from_file(str(PAGE), default_timeout=60)
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    assert app.selectbox(key="predict_model").value.path == str(MNIST_MODEL)  # the default: digits
    return app


def choose_model(app: AppTest, stem: str) -> None:
    box = app.selectbox(key="predict_model")
    box.select_index(next(i for i, label in enumerate(box.options) if label.startswith(stem))).run()


def open_view(app: AppTest, label: str) -> None:
    app.session_state["predict_view"] = label  # as a click on that tab does
    app.run()


def upload(app: AppTest, data: bytes, name: str) -> None:
    app.file_uploader(key="predict_upload").set_value((name, data, "application/octet-stream")).run()


def staged_jpeg(real_data_dir) -> tuple[bytes, int]:
    from cnnviz.images.staged_photos import stage_photo_set

    photo = stage_photo_set(1, seed=3, data_dir=real_data_dir)[0]
    return photo.jpeg, photo.label


def test_page_is_registered_and_a_sample_is_predicted_like_the_model_does(page) -> None:
    assert any(spec.script == "predict/page.py" for spec in PAGES)
    loaded = load_checkpoint(MNIST_MODEL)
    sample_box = page.selectbox(key="predict_sample")
    assert page.metric[0].label == "Prediction"
    prepared = prepare_dataset_pixels(load_sample(sample_box.value), "mnist", loaded.mean, loaded.std)
    assert page.metric[0].value == predict(loaded.model, prepared.tensor, loaded.classes).label
    steps = len(prepared.steps)
    assert len(page.tabs) == 4 and len(page.get("image")) == steps  # only the open tab's content is sent

    open_view(page, "Layer by layer")
    assert not page.exception, [e.value for e in page.exception]
    layers = [a for a in inspect_image(loaded.model, prepared.tensor, loaded.classes).activations
              if a.kind not in ("BatchNorm2d", "Dropout", "Identity")]
    dense = [f"{len(loaded.model.features) + i} · {type(m).__name__}"
             for i, m in enumerate(loaded.model.classifier) if type(m).__name__ != "Dropout"]
    views = [t.label for t in page.tabs][:3]
    layer_tabs = [t.label for t in page.tabs if t.label not in views and t.label != "First-layer filters"]
    assert layer_tabs == [a.name for a in layers] + dense  # conv, ReLU, pool ..., then the dense layers
    assert len(page.get("image")) == 1  # the first layer's maps only
    assert str(layers[0].shape[0]) in page.get("image")[0].proto.imgs[0].caption


def test_broken_upload_gives_one_sentence_then_a_good_upload_works(page, real_data_dir) -> None:
    page.radio(key="predict_source").set_value("Upload").run()
    assert not page.exception and page.info  # asks for a file
    upload(page, b"\x89PNG\r\n\x1a\n\x00\x00 cut off", "digit.png")
    assert not page.exception, [e.value for e in page.exception]
    assert len(page.error) == 1 and "damaged" in page.error[0].value and not page.metric

    jpeg, label = staged_jpeg(real_data_dir)
    upload(page, jpeg, "photo.jpg")
    assert not page.exception and not page.error
    loaded = load_checkpoint(MNIST_MODEL)
    expected = predict(loaded.model, preprocess(decode_image(jpeg), "mnist").tensor, loaded.classes)
    assert page.metric[0].value == expected.label == str(label)


def test_camera_and_blank_canvas_and_grad_cam_class(page) -> None:
    page.radio(key="predict_source").set_value("Draw a digit").run()
    assert not page.exception and "empty" in page.info[0].value

    page.radio(key="predict_source").set_value("Camera").run()
    assert not page.exception and page.info  # waits for a picture
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (240, 240, 240)).save(buffer, "JPEG")  # a blank wall: nothing to read
    page.camera_input(key="predict_camera").set_value(("shot.jpg", buffer.getvalue(), "image/jpeg")).run()
    assert not page.exception
    assert len(page.error) == 1 and "blank" in page.error[0].value  # one sentence, no prediction

    page.radio(key="predict_source").set_value("Test-set sample").run()
    open_view(page, "Where it looked (Grad-CAM)")
    page.selectbox(key="predict_cam_class").set_value("3").run()
    assert not page.exception
    assert any("**3**" in c.value for c in page.caption)


@pytest.mark.skipif(not CIFAR_MODEL.is_file(), reason="models/cifar10.pt is not there yet")
def test_cifar_model_runs(page) -> None:
    choose_model(page, "cifar10")
    assert not page.exception, [e.value for e in page.exception]
    assert page.metric[0].value in load_checkpoint(CIFAR_MODEL).classes


def test_a_broken_upload_is_decoded_once_and_its_sentence_kept_for_every_rerun(page, monkeypatch) -> None:
    from cnnviz.ui.predict import parts as predict_parts

    decodes = []
    real_decode = predict_parts.decode_image

    def counted_decode(*args, **kwargs):
        decodes.append(1)
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(predict_parts, "decode_image", counted_decode)  # the real decoder, counted
    page.radio(key="predict_source").set_value("Upload").run()
    upload(page, b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "cut_off.png")
    for _ in range(2):
        page.run()
        assert not page.exception, [e.value for e in page.exception]
        assert any("damaged" in e.value for e in page.error)
    assert len(decodes) == 1


@pytest.mark.browser
def test_real_browser_upload_of_a_staged_photo(app_server, browser_page, real_data_dir) -> None:
    jpeg, label = staged_jpeg(real_data_dir)
    open_page(browser_page, f"{app_server}/predict")
    assert_no_exception(browser_page)
    main = browser_page.get_by_test_id("stMain")
    main.get_by_text("Upload", exact=True).click()
    wait_until_idle(browser_page)
    main.locator("input[type='file']").set_input_files(
        files=[{"name": "digit_photo.jpg", "mimeType": "image/jpeg", "buffer": jpeg}])
    wait_until_idle(browser_page)
    main.get_by_test_id("stMetricValue").wait_for()
    assert_no_exception(browser_page)
    assert main.get_by_test_id("stMetricValue").inner_text().strip() == str(label)
    assert main.get_by_test_id("stPlotlyChart").count() == 1  # probabilities; other views wait for a click
    save_screenshot(browser_page, "page-predict-upload")
    main.get_by_role("tab", name="Layer by layer").click()
    wait_until_idle(browser_page)
    main.get_by_text("Look closer: channel").wait_for()
    assert_no_exception(browser_page)
    assert main.get_by_test_id("stPlotlyChart").count() == 2  # probabilities, one map
    assert main.locator(".cnnviz-layer").count() > 5  # the architecture: input, conv, ReLU, ...
    rendering = main.locator("[class*='st-key-crisp_predict_maps'] img").first.evaluate(
        "img => getComputedStyle(img).imageRendering")
    assert rendering == "pixelated"  # the small grid is scaled up with square cells, not blurred
    source = main.locator("[class*='st-key-crisp_predict_maps'] img").first.get_attribute("src")
    assert source.split("?")[0].endswith(".png"), source  # lossless: JPEG shifted the colours of 1x1 maps
    save_screenshot(browser_page, "page-predict-layers")


def test_a_model_trained_in_this_session_can_be_picked(page) -> None:
    # The training page keeps finished runs in st.session_state.train_runs (see ui/training/runs.py).
    from cnnviz.ui.training.runs import RunRecord

    trained = load_checkpoint(MNIST_MODEL)
    page.session_state["train_runs"] = [RunRecord(
        label="#1", dataset="MNIST", spec=trained.spec, params=0, epochs=1.0, train_accuracy=None,
        val_accuracy=None, test_accuracy=trained.test_accuracy, seconds=1.0, device="cpu", stopped=False,
        history=(), model=trained.model, metadata=trained.metadata)]
    page.run()
    choose_model(page, "run #1")
    assert not page.exception, [e.value for e in page.exception]
    assert page.selectbox(key="predict_model").value.run == "#1"
    assert page.metric[0].label == "Prediction"
    assert page.caption[0].value.startswith("Run #1 of this session: ")  # not "mnist", the shipped one's name


def test_models_saved_beside_the_shipped_ones_are_labelled_saved(tmp_path, monkeypatch) -> None:
    import shutil

    from cnnviz.ui.predict import parts as predict_parts

    for name in ("cifar10", "mnist", "Zeta", "alpha", "audit_ok"):
        shutil.copy(MNIST_MODEL, tmp_path / f"{name}.pt")
    monkeypatch.setattr(predict_parts, "MODELS_DIR", tmp_path)  # the training page saves into models/
    monkeypatch.setenv("CNNVIZ_MODELS_DIR", str(tmp_path))
    labels = [choice.label for choice in predict_parts.model_choices()]
    assert labels == ["mnist  (shipped)", "cifar10  (shipped)", "alpha  (saved)", "audit_ok  (saved)",
                      "Zeta  (saved)"]


def test_a_models_name_from_its_file_is_shown_as_text_not_as_a_link(tmp_path, monkeypatch) -> None:
    from cnnviz.training.checkpoint import save_checkpoint

    shipped = load_checkpoint(MNIST_MODEL)
    save_checkpoint(tmp_path / "evil.pt", shipped.model, {**shipped.metadata, "name": "[click](http://evil)"})
    monkeypatch.setenv("CNNVIZ_MODELS_DIR", str(tmp_path))
    st.cache_resource.clear()
    app = AppTest.from_file(str(PAGE), default_timeout=60)
    app.run()
    choose_model(app, "evil")
    assert not app.exception, [e.value for e in app.exception]
    caption = app.caption[0].value  # the markdown body sent to the browser
    assert caption.startswith(r"\[click\]\(http\://evil\): C"), caption  # shown as typed, then the spec
    assert "[click](" not in caption and "http://" not in caption  # neither a link nor a bare url


@pytest.mark.browser
def test_real_browser_drawing_a_digit(app_server, browser_page) -> None:
    open_page(browser_page, f"{app_server}/predict")
    main = browser_page.get_by_test_id("stMain")
    main.get_by_text("Draw a digit", exact=True).click()
    wait_until_idle(browser_page)
    canvas = main.locator("canvas").last
    canvas.wait_for()
    box = canvas.bounding_box()
    assert box is not None
    # A "1": one stroke down the middle, as a student would draw it.
    mouse = browser_page.mouse
    mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.15)
    mouse.down()
    for step in range(1, 21):
        mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * (0.15 + 0.7 * step / 20))
    mouse.up()
    main.get_by_test_id("stMetricValue").wait_for(timeout=30_000)
    wait_until_idle(browser_page)
    assert_no_exception(browser_page)
    assert main.get_by_test_id("stMetricValue").inner_text().strip() == "1"
    save_screenshot(browser_page, "page-predict-drawing", full_page=False)


def test_odd_uploads_each_get_a_prediction_or_one_sentence(page, real_data_dir) -> None:
    from tests.test_image_io import encode, png_header

    sample = next(s for s in list_samples("mnist") if s.label == 3)
    ink = Image.fromarray(load_sample(sample)[0].numpy()).resize((84, 84))  # white digit on black
    paper = Image.eval(ink, lambda v: 255 - v)  # dark ink on white
    sixteen = Image.fromarray((np.asarray(paper, dtype=np.uint16) * 257).astype(np.uint16))  # I;16
    see_through = paper.convert("P")
    see_through.info["transparency"] = 255  # the white paper is transparent
    refused = {
        "empty.png": b"",
        "notes.png": b"just some text, not a picture",
        "bomb.png": png_header(50_000, 50_000),
        "cut.jpg": encode(paper, "JPEG")[:200],
        "one_pixel.png": encode(Image.new("L", (1, 1), 0), "PNG"),
        "blank.png": encode(Image.new("RGB", (200, 150), (255, 255, 255)), "PNG"),
    }
    predicted = {
        "sixteen_bit.png": encode(sixteen, "PNG"),
        "cmyk.jpg": encode(paper.convert("CMYK"), "JPEG"),
        "palette_transparent.png": encode(see_through, "PNG"),
        "animated.gif": encode(paper.convert("P"), "GIF", save_all=True, append_images=[ink.convert("P")]),
        "sideways.tif": encode(paper.rotate(90, expand=True), "TIFF"),
    }
    page.radio(key="predict_source").set_value("Upload").run()
    for name, data in {**refused, **predicted}.items():
        upload(page, data, name)
        assert not page.exception, (name, [e.value for e in page.exception])
        sentences = [e.value for e in page.error]
        if name in refused:
            assert len(sentences) == 1 and ". " not in sentences[0] and not page.metric, (name, sentences)
        else:
            assert not sentences and len(page.metric) == 1, (name, sentences)
            if name != "sideways.tif":  # no EXIF tag: it really is a sideways 3
                assert page.metric[0].value == sample.class_name, name
        print(name, "->", sentences[0] if sentences else f"predicted {page.metric[0].value}")

    jpeg, label = staged_jpeg(real_data_dir)
    upload(page, jpeg, "photo.jpg")
    assert not page.error and page.metric[0].value == str(label)


@pytest.mark.skipif(not CIFAR_MODEL.is_file(), reason="models/cifar10.pt is missing")
def test_a_mirror_averaging_model_says_so_and_answers_that_way(page) -> None:
    choose_model(page, "cifar10")
    assert not page.exception, [e.value for e in page.exception]
    loaded = load_checkpoint(CIFAR_MODEL)
    assert loaded.model.tta.mirror
    assert any("mirror image (test-time augmentation)" in c.value for c in page.caption)
    sample = page.selectbox(key="predict_sample").value
    x = prepare_dataset_pixels(load_sample(sample), "cifar10", loaded.mean, loaded.std).tensor
    with torch.inference_mode():
        logits = (loaded.model(x) + loaded.model(x.flip(-1)))[0] / 2
    assert page.metric[0].value == loaded.classes[int(logits.argmax())]
    assert page.metric[0].delta == f"{float(torch.softmax(logits, 0).max()):.1%} sure"


def test_step_frames_are_square_and_big_photos_are_shrunk() -> None:
    from cnnviz.ui.predict.parts import EDGE_RGB, FRAME_RGB, STEP_PX, square_frame

    digit = np.full((20, 12), 200, dtype=np.uint8)  # (H, W) tall and thin
    framed = square_frame(digit)
    assert framed.shape == (20, 20, 3) and (framed[:, 4:16] == 200).all()
    assert (framed[:, :3] == FRAME_RGB).all() and (framed[:, 17:] == FRAME_RGB).all()
    assert (framed[:, [3, 16]] == EDGE_RGB).all()  # the image's edges, even when it is as pale as the page
    photo = np.zeros((480, 640, 3), dtype=np.uint8)  # a landscape photo: black
    small = square_frame(photo)
    assert small.shape == (STEP_PX, STEP_PX, 3)
    middle, top = small[STEP_PX // 2, STEP_PX // 2], small[2, STEP_PX // 2]
    assert (middle == 0).all() and (top == FRAME_RGB).all()  # the photo in the middle, bands above and below


# --- issue 18 part 6: the defects an independent review found -------------------------------------

def dense_checkpoint(tmp_path, monkeypatch, spec: str = "F64") -> str:
    """A real model without a convolution, saved where the page lists models; returns its file stem."""
    from cnnviz.networks.build import build_model
    from cnnviz.training.checkpoint import save_checkpoint

    shipped = load_checkpoint(MNIST_MODEL)
    torch.manual_seed(0)
    model = build_model(spec, 1, 10, 28).eval()
    metadata = {key: shipped.metadata[key] for key in ("dataset", "classes", "mean", "std", "input_shape")}
    save_checkpoint(tmp_path / "dense.pt", model, {**metadata, "spec": spec, "name": "dense"})
    monkeypatch.setenv("CNNVIZ_MODELS_DIR", str(tmp_path))
    return "dense"


def page_text(app: AppTest) -> str:
    return "\n".join(e.value for kind in ("markdown", "caption", "info", "warning")
                     for e in app.get(kind) if isinstance(getattr(e, "value", None), str))


def plotly_figures(app: AppTest) -> list[dict]:
    """The figures sent to the browser, their arrays decoded (Plotly sends numbers base64-packed)."""
    import base64
    import json

    def decoded(value):
        if isinstance(value, dict) and "bdata" in value:
            array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
            return array.reshape([int(n) for n in str(value.get("shape", len(array))).split(",")])
        if isinstance(value, dict):
            return {key: decoded(item) for key, item in value.items()}
        if isinstance(value, list):
            return [decoded(item) for item in value]
        return value

    return [decoded(json.loads(chart.proto.spec)) for chart in app.get("plotly_chart")]


def test_a_net_without_a_convolution_says_why_and_shows_its_dense_layers(page, tmp_path, monkeypatch) -> None:
    stem = dense_checkpoint(tmp_path, monkeypatch)
    page.run()
    choose_model(page, stem)
    assert not page.exception, [e.value for e in page.exception]
    open_view(page, "Where it looked (Grad-CAM)")
    assert not page.exception, [e.value for e in page.exception]
    assert "Grad-CAM needs a convolutional" in page_text(page)

    open_view(page, "Layer by layer")
    assert not page.exception, [e.value for e in page.exception]
    labels = [t.label for t in page.tabs]
    assert {"1 · Linear", "2 · ReLU", "3 · Linear"} <= set(labels), labels
    page.session_state[f"predict_layer_{page.selectbox(key='predict_model').value.label}"] = "1 · Linear"
    page.run()
    assert not page.exception, [e.value for e in page.exception]
    loaded = load_checkpoint(tmp_path / "dense.pt")
    x = prepare_dataset_pixels(load_sample(page.selectbox(key="predict_sample").value), "mnist").tensor
    with torch.no_grad():
        hidden = loaded.model.classifier[1](loaded.model.classifier[0](x))[0]  # the Linear's own output
    shown = [f for f in plotly_figures(page) if "units" in f["layout"].get("title", {}).get("text", "")]
    assert len(shown) == 1
    values = np.array(shown[0]["data"][0]["x" if shown[0]["data"][0]["type"] == "bar" else "z"],
                      dtype=float).ravel()
    values = values[~np.isnan(values)]
    np.testing.assert_allclose(values, hidden.numpy(), atol=1e-5)


def test_dense_layers_of_a_cnn_get_their_own_tabs_with_the_models_numbers(page) -> None:
    loaded = load_checkpoint(MNIST_MODEL)
    open_view(page, "Layer by layer")
    labels = [t.label for t in page.tabs]
    first_dense = len(loaded.model.features)
    logits = f"{len(loaded.model.features) + len(loaded.model.classifier) - 1} · Linear"
    assert f"{first_dense} · Flatten" in labels and logits in labels, labels
    page.session_state[f"predict_layer_{page.selectbox(key='predict_model').value.label}"] = logits
    page.run()
    assert not page.exception, [e.value for e in page.exception]
    x = prepare_dataset_pixels(load_sample(page.selectbox(key="predict_sample").value), "mnist",
                               loaded.mean, loaded.std).tensor
    with torch.no_grad():
        expected = loaded.model(x)[0]
    bars = [f for f in plotly_figures(page) if "units" in f["layout"].get("title", {}).get("text", "")]
    assert len(bars) == 1 and list(bars[0]["data"][0]["y"]) == loaded.classes  # the logits, by class
    np.testing.assert_allclose(bars[0]["data"][0]["x"], expected.numpy(), atol=1e-5)


@pytest.mark.skipif(not CIFAR_MODEL.is_file(), reason="models/cifar10.pt is missing")
def test_the_student_picks_grad_cams_layer(page) -> None:
    from cnnviz.explorer.layers import net_layers
    from cnnviz.images.inspection import last_conv_layer

    choose_model(page, "cifar10")
    open_view(page, "Where it looked (Grad-CAM)")
    assert not page.exception, [e.value for e in page.exception]
    loaded = load_checkpoint(CIFAR_MODEL)
    box = page.selectbox(key="predict_cam_layer")
    last = last_conv_layer(loaded.model)
    assert box.value == last and len(box.options) >= 5
    names = {layer.number: layer.name for layer in net_layers(loaded.model)}
    assert box.options[-1].startswith(names[last]) and "3 x 3" in box.options[-1]
    assert "most specific to the class" in page_text(page)
    early = next(i for i, label in enumerate(box.options) if "31 x 31" in label)
    box.select_index(early).run()
    assert not page.exception, [e.value for e in page.exception]
    sample = page.selectbox(key="predict_sample").value
    x = prepare_dataset_pixels(load_sample(sample), "cifar10", loaded.mean, loaded.std).tensor
    layer = page.selectbox(key="predict_cam_layer").value
    cam = inspect_image(loaded.model, x, loaded.classes, cam_layer=layer).grad_cam
    assert tuple(cam.coarse.shape) == (31, 31)
    assert any("31 x 31 feature maps" in c.value for c in page.caption)
    assert "earlier layers are sharper" in page_text(page)  # 31 x 31 against the last block's 3 x 3


def test_grad_cam_does_not_call_a_layer_of_the_same_size_sharper(page) -> None:
    from cnnviz.explorer.layers import net_layers

    open_view(page, "Where it looked (Grad-CAM)")  # the shipped MNIST net: both of its choices are 14 x 14
    loaded = load_checkpoint(MNIST_MODEL)
    box = page.selectbox(key="predict_cam_layer")
    sample = page.selectbox(key="predict_sample").value
    x = prepare_dataset_pixels(load_sample(sample), "mnist", loaded.mean, loaded.std).tensor
    numbers = [int(label.split(" · ")[0]) for label in box.options]  # "2 · ReLU (C16k5s2p2n): 14 x 14"
    assert all(net_layers(loaded.model)[n].kind == "ReLU" for n in numbers)
    shapes = {tuple(inspect_image(loaded.model, x, loaded.classes, cam_layer=n).grad_cam.coarse.shape)
              for n in numbers}
    assert len(numbers) >= 2 and len(shapes) == 1  # the model's own maps: one size
    text = page_text(page)
    assert "most specific to the class" in text and "sharper" not in text


def test_the_explained_class_goes_back_to_the_prediction_for_a_new_image(page) -> None:
    open_view(page, "Where it looked (Grad-CAM)")
    page.selectbox(key="predict_cam_class").set_value("3").run()
    assert any("**3**" in c.value for c in page.caption)
    samples = page.selectbox(key="predict_sample")
    new = next(i for i, s in enumerate(list_samples("mnist")) if s.label not in (3, samples.value.label))
    samples.select_index(new).run()
    assert not page.exception, [e.value for e in page.exception]
    assert page.selectbox(key="predict_cam_class").value == "predicted class"
    predicted = page.metric[0].value
    assert any(f"**{predicted}**" in c.value for c in page.caption)


def test_an_upload_is_kept_while_the_uploader_is_not_shown(page, real_data_dir) -> None:
    jpeg, label = staged_jpeg(real_data_dir)
    page.radio(key="predict_source").set_value("Upload").run()
    upload(page, jpeg, "photo.jpg")
    assert page.metric[0].value == str(label)
    page.radio(key="predict_source").set_value("Test-set sample").run()  # the uploader is not drawn:
    page.radio(key="predict_source").set_value("Upload").run()  # as after a visit to another page
    assert not page.exception, [e.value for e in page.exception]
    assert page.metric and page.metric[0].value == str(label)
    assert r"photo\.jpg, kept from before" in page_text(page)
    page.button(key="predict_forget_upload").click().run()
    assert not page.exception, [e.value for e in page.exception]
    assert not page.metric and page.info  # asks for a file again
    upload(page, jpeg, "photo.jpg")
    page.file_uploader(key="predict_upload").set_value(None).run()  # removed from the uploader itself
    page.radio(key="predict_source").set_value("Test-set sample").run()
    page.radio(key="predict_source").set_value("Upload").run()
    assert not page.metric and page.info


def test_a_camera_frame_without_one_digit_is_answered_with_a_doubt(page) -> None:
    from tests.test_image_io import encode

    digits = [load_sample(s)[0].numpy() for s in list_samples("mnist")[:16]]
    sheet = np.block([[digits[4 * r + c] for c in range(4)] for r in range(4)])  # 16 digits, 112 x 112
    page.radio(key="predict_source").set_value("Camera").run()
    page.camera_input(key="predict_camera").set_value(
        ("shot.jpg", encode(Image.fromarray(255 - sheet), "JPEG"), "image/jpeg")).run()
    assert not page.exception, [e.value for e in page.exception]
    assert page.metric and len(page.warning) == 1 and "one digit" in page.warning[0].value


def test_label_smoothing_is_named_beside_the_probabilities(page, tmp_path, monkeypatch) -> None:
    text = page_text(page)
    assert "label smoothing 0.1" in text and "91%" in text, text
    stem = dense_checkpoint(tmp_path, monkeypatch)  # its metadata has no training config
    page.run()
    choose_model(page, stem)
    assert not page.exception and "label smoothing" not in page_text(page)


def overlaps(a: dict, b: dict) -> bool:
    """Whether two bounding boxes (x, y, width, height) share any area."""
    return (a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"]
            and a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"])


@pytest.mark.browser
@pytest.mark.parametrize("width", [412, 1400])
def test_real_browser_the_drawing_toolbar_sits_clear_of_the_input_choices(app_server, browser, width) -> None:
    context = browser.new_context(viewport={"width": width, "height": 1000})
    page = context.new_page()
    try:
        open_page(page, f"{app_server}/predict")
        main = page.get_by_test_id("stMain")
        main.get_by_text("Draw a digit", exact=True).click()
        wait_until_idle(page)
        canvas = main.locator("canvas.upper-canvas")
        canvas.wait_for()
        canvas.hover()  # the toolbar used to slide up over the radio buttons on hover
        page.wait_for_timeout(500)
        toolbar = main.locator(".dc-toolbar")
        assert toolbar.is_visible()
        boxes = {"toolbar": toolbar.bounding_box(), "canvas": canvas.bounding_box(),
                 "input": main.get_by_test_id("stRadio").first.bounding_box()}
        assert not overlaps(boxes["toolbar"], boxes["input"]), boxes
        assert not overlaps(boxes["toolbar"], boxes["canvas"]), boxes
        assert boxes["toolbar"]["x"] + boxes["toolbar"]["width"] <= width, boxes
        assert not main.get_by_role("button", name="Update the app with this drawing").is_visible()
        assert main.get_by_role("button", name="Undo").is_visible()  # the useful buttons stay
        save_screenshot(page, f"page-predict-draw-{width}", full_page=False)
    finally:
        context.close()


@pytest.mark.browser
def test_real_browser_layers_fit_a_phone(app_server, browser) -> None:
    width = 412
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    try:
        open_page(page, f"{app_server}/predict")
        main = page.get_by_test_id("stMain")
        main.get_by_role("tab", name="Layer by layer").click()
        wait_until_idle(page)
        main.get_by_text("Look closer: channel").wait_for()
        assert_no_exception(page)
        grid = main.locator("[class*='st-key-crisp_predict_maps'] img").first
        box = grid.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= width, box  # the whole grid on the screen
        shape = grid.evaluate("img => img.naturalHeight / img.naturalWidth")
        assert abs(box["height"] / box["width"] - shape) < 0.02  # shrunk, not squashed
        layers = main.locator(".cnnviz-layer")
        boxes = [layers.nth(i).bounding_box() for i in range(layers.count())]
        model = load_checkpoint(MNIST_MODEL).model
        assert len(boxes) == 1 + len(model.features) + len(model.classifier)  # the input, every layer
        for i, a in enumerate(boxes):
            assert a["x"] >= 0 and a["x"] + a["width"] <= width, (i, a)
            assert not any(overlaps(a, b) for b in boxes[i + 1:]), (i, a)
        save_screenshot(page, "page-predict-layers-412")
    finally:
        context.close()
