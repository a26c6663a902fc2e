"""Hosting a class: limits from the environment or secrets, the training queue, session clean-up."""

from __future__ import annotations

import ast
import io
import shlex
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from cnnviz.hosting.limits import CPU_TRAININGS, HostLimits, load_limits
from cnnviz.hosting.server_process import free_port, stop_process, wait_healthy
from cnnviz.images.decode import MAX_IMAGE_BYTES, MAX_UPLOAD_MB
from cnnviz.pages import PAGE_NAMES
from cnnviz.training.config import TrainConfig
from cnnviz.training.jobs import TrainingJob, TrainingQueue
from cnnviz.ui.navigation import PAGES, page_spec
from tests.conftest import REPO, open_page, running_app

TRAIN_PAGE = str(page_spec("train").path)
CONVOLUTION_PAGE = str(page_spec("convolution").path)


# --- limits ---------------------------------------------------------------------------------

def test_defaults_suit_one_student_on_a_laptop():
    limits = load_limits({}, {})
    assert limits == HostLimits()
    assert limits.pages == PAGE_NAMES and limits.max_train_images is None
    assert limits.training_slots(gpu_count=0) == CPU_TRAININGS
    assert limits.training_slots(gpu_count=2) == 2  # one per GPU


def test_the_pages_a_host_may_switch_off_are_the_menu_pages():
    assert tuple(page.url_path for page in PAGES) == PAGE_NAMES
    assert all(page_spec(name).path.is_file() for name in PAGE_NAMES)


def test_one_upload_limit_for_the_server_the_uploaders_and_the_command_line():
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] == MAX_UPLOAD_MB == HostLimits().max_upload_mb
    assert MAX_IMAGE_BYTES == MAX_UPLOAD_MB * 2**20  # Streamlit counts maxUploadSize in MB of 2**20 bytes


def test_environment_wins_over_secrets_which_win_over_defaults():
    secrets = {"cnnviz": {"max_epochs": 5, "max_trainings": 3, "pages": ["train", "predict"]}}
    limits = load_limits({"CNNVIZ_MAX_EPOCHS": "2", "CNNVIZ_MAX_TRAIN_IMAGES": "10000"}, secrets)
    assert limits.max_epochs == 2 and limits.max_trainings == 3 and limits.max_train_images == 10_000
    assert limits.pages == ("train", "predict") and limits.training_slots(gpu_count=1) == 3
    assert load_limits({"CNNVIZ_PAGES": " Predict,convolution "}, {}).pages == ("predict", "convolution")


def test_a_host_sets_the_save_quotas():
    assert (HostLimits().max_saves_per_session, HostLimits().max_saved_models, HostLimits().max_saved_mb) \
        == (5, 50, 500)
    limits = load_limits({"CNNVIZ_MAX_SAVES_PER_SESSION": "1", "CNNVIZ_MAX_SAVED_MB": "20"},
                         {"cnnviz": {"max_saved_models": 8}})
    assert (limits.max_saves_per_session, limits.max_saved_models, limits.max_saved_mb) == (1, 8, 20)
    with pytest.raises(ValueError, match="CNNVIZ_MAX_SAVED_MB is '0': expected a whole number of megabytes"):
        load_limits({"CNNVIZ_MAX_SAVED_MB": "0"}, {})


@pytest.mark.parametrize(("environ", "secrets", "words"), [
    ({"CNNVIZ_MAX_EPOCHS": "lots"}, {}, ["CNNVIZ_MAX_EPOCHS", "'lots'", "whole number"]),
    ({"CNNVIZ_MAX_UPLOAD_MB": "0"}, {}, ["CNNVIZ_MAX_UPLOAD_MB", "at least 1"]),
    ({"CNNVIZ_PAGES": "train,admin"}, {}, ["CNNVIZ_PAGES", "convolution, exercises, train, predict"]),
    ({}, {"cnnviz": {"max_trainigs": 1}}, ["max_trainigs", "secrets.toml"]),
    ({}, {"cnnviz": {"max_queue": -3}}, ["max_queue in secrets.toml", "-3"]),
])
def test_a_wrong_setting_is_named_with_what_it_expects(environ, secrets, words):
    with pytest.raises(ValueError) as caught:
        load_limits(environ, secrets)
    assert all(word in str(caught.value) for word in words), str(caught.value)


@pytest.mark.parametrize(("name", "highest"), [
    ("MAX_EPOCHS", "200"), ("MAX_QUEUE", "1,000"), ("MAX_TRAININGS", "64"), ("MAX_UPLOAD_MB", "200"),
    ("MAX_TRAIN_IMAGES", "60,000"), ("MAX_IMAGE_PIXELS", "100,000,000"), ("MAX_RUNS_PER_CLIENT", "100"),
])
def test_every_number_has_a_highest_value(name, highest):
    top = int(highest.replace(",", ""))
    assert getattr(load_limits({f"CNNVIZ_{name}": str(top)}, {}), name.lower()) == top
    for too_many in (str(top + 1), "99999999999999999999"):
        with pytest.raises(ValueError) as caught:
            load_limits({f"CNNVIZ_{name}": too_many}, {})
        message = str(caught.value)
        assert message.count(".") == 1 + highest.count(".") and message.endswith("."), message
        assert f"CNNVIZ_{name}" in message and f"at least 1 and at most {highest}" in message, message


def test_training_caps_are_checked():
    limits = HostLimits(max_epochs=3, max_train_images=5000)
    limits.check_training(3, 5000, 60_000)
    with pytest.raises(ValueError, match="at most 3 epochs"):
        limits.check_training(4, 5000, 60_000)
    with pytest.raises(ValueError, match="at most 5,000 training images"):
        limits.check_training(1, None, 60_000)  # None = the whole training set


# --- the queue ------------------------------------------------------------------------------

def test_queue_admits_in_order_and_keeps_places():
    queue = TrainingQueue(slots=1, max_waiting=2)
    first, second, third = queue.enter(), queue.enter(), None
    assert queue.position(first) == 1 and queue.position(second) == 2
    assert queue.enter() is None  # the line is full
    never = __import__("threading").Event()
    assert queue.wait_turn(first, never) and queue.position(first) == 0
    third = queue.enter()
    assert (queue.position(second), queue.position(third), queue.counts()) == (1, 2, (1, 2))
    queue.leave(first)
    assert queue.wait_turn(second, never) and queue.position(third) == 1
    stop = __import__("threading").Event()
    stop.set()
    assert not queue.wait_turn(third, stop)  # stopped while waiting: it leaves the line
    assert queue.position(third) is None and queue.counts() == (1, 0)


def test_one_client_has_at_most_its_share_of_the_line():
    queue = TrainingQueue(slots=1, max_waiting=30, max_per_client=2)
    mine = [queue.enter("browser a"), queue.enter("browser a")]  # one to train, one to wait
    with pytest.raises(ValueError) as caught:
        queue.enter("browser a")  # a third tab of the same browser
    message = str(caught.value)
    assert "This browser already has 2 training runs" in message and message.count(".") == 1, message
    assert queue.counts() == (0, 2)
    other = queue.enter("browser b")  # another student still gets a place
    assert other is not None and queue.position(other) == 3
    assert queue.enter(None) is not None  # no client known: only the line's own length limits it
    queue.leave(mine[0])
    assert queue.enter("browser a") is not None  # a run of hers ended: she may start another


def _tiny(epochs: int, images: int) -> TrainConfig:
    return TrainConfig(dataset="mnist", spec="C4 M F8", epochs=epochs, train_subset=images,
                       test_subset=200, val_fraction=0.0, batch_size=50, augment=False)


def _wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_jobs_wait_their_turn_and_a_stopped_one_leaves_the_line(real_data_dir):
    queue = TrainingQueue(slots=1)
    kwargs = dict(data_dir=real_data_dir, queue=queue, cpu_threads=1)
    long_run = TrainingJob(_tiny(epochs=200, images=2000), **kwargs)
    leaver, short_run = TrainingJob(_tiny(1, 200), **kwargs), TrainingJob(_tiny(2, 2000), **kwargs)
    for job in (long_run, leaver, short_run):
        assert job.start()
    _wait_for(lambda: long_run.snapshot().status == "running")
    assert [j.snapshot().queue_position for j in (leaver, short_run)] == [1, 2]
    assert leaver.snapshot().status == short_run.snapshot().status == "queued"

    leaver.stop()
    leaver.join(10)
    assert leaver.snapshot().status == "cancelled" and leaver.snapshot().result is None
    _wait_for(lambda: short_run.snapshot().queue_position == 1)

    long_run.stop()
    long_run.join(60)
    short_run.join(60)
    done = short_run.snapshot()
    assert long_run.snapshot().status == "stopped" and done.status == "done"
    assert done.queue_wait is not None and done.queue_wait > 0 and done.result.test_accuracy > 0.5
    assert queue.counts() == (0, 0)


# --- the pages under the host's limits ----------------------------------------------------

@pytest.fixture
def app_with(monkeypatch, tmp_path, real_data_dir):
    """AppTest of the app with some CNNVIZ_* settings (the process-wide caches start empty)."""
    def start(**settings: str) -> AppTest:
        monkeypatch.setenv("CNNVIZ_DATA_DIR", str(real_data_dir))
        monkeypatch.setenv("CNNVIZ_MODELS_DIR", str(tmp_path))
        for name, value in settings.items():
            monkeypatch.setenv(f"CNNVIZ_{name.upper()}", value)
        st.cache_resource.clear()
        app = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
        app.run()
        return app

    yield start
    st.cache_resource.clear()


def test_a_typo_in_a_setting_is_shown_instead_of_the_app(app_with):
    app = app_with(max_epochs="lots")
    assert not app.exception
    assert "cnnviz cannot start: CNNVIZ_MAX_EPOCHS is 'lots'" in app.error[0].value


def test_disabled_pages_are_gone_from_the_menu_and_the_home_page(app_with):
    app = app_with(pages="predict")
    assert not app.exception
    links = [link.proto.label for link in app.get("page_link")]
    assert links == ["Inspect and predict"]


def test_training_form_respects_the_caps(app_with):
    app = app_with(max_epochs="3", max_train_images="10000")
    app.switch_page(TRAIN_PAGE).run()
    assert not app.exception, [e.value for e in app.exception]
    assert app.slider(key="train_mnist_fast_epochs").max == 3
    assert app.selectbox(key="train_mnist_fast_subset").options == ["10,000", "5,000", "2,000"]


def test_the_train_page_opens_at_the_highest_epochs(app_with):
    app = app_with(max_epochs="200")
    app.switch_page(TRAIN_PAGE).run()
    assert not app.exception, [e.value for e in app.exception]
    assert app.slider(key="train_mnist_fast_epochs").max == 200


def _png_of(width: int, height: int) -> bytes:
    from PIL import Image  # a flat colour: tens of megapixels compress to a few hundred kB

    buffer = io.BytesIO()
    Image.new("L", (width, height), 90).save(buffer, "PNG")
    return buffer.getvalue()


def test_the_hosts_pixel_limit_is_the_one_applied_and_quoted(app_with):
    app = app_with(max_image_pixels="50000000")
    app.switch_page(CONVOLUTION_PAGE).run()
    app.radio(key="conv_source").set_value("your picture").run()
    app.file_uploader(key="conv_upload").set_value(("big.png", _png_of(9000, 5000), "image/png")).run()
    assert not app.exception and not app.warning, [w.value for w in app.warning]  # 45 M pixels: accepted
    app.file_uploader(key="conv_upload").set_value(("huge.png", _png_of(11000, 5000), "image/png")).run()
    assert not app.exception
    assert any("11000 x 5000 pixels" in w.value and "50,000,000" in w.value for w in app.warning), \
        [w.value for w in app.warning]


def test_a_second_student_waits_in_line_and_sees_the_position(app_with):
    first = app_with(max_trainings="1")
    first.switch_page(TRAIN_PAGE).run()
    first.slider(key="train_mnist_fast_epochs").set_value(30).run()
    first.button(key="train_start").click().run()
    running = first.session_state["train_job"]
    _wait_for(lambda: running.snapshot().status == "running")

    second = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)  # same server, new session
    second.run()
    second.switch_page(TRAIN_PAGE).run()
    second.selectbox(key="train_mnist_fast_subset").set_value("2,000").run()
    second.button(key="train_start").click().run()
    assert not second.exception, [e.value for e in second.exception]
    assert any("In line for a training slot: position 1" in i.value for i in second.info)
    assert any("1 of 1 slots in use, 1 run waiting" in c.value for c in second.caption)

    second.button(key="train_stop").click().run()  # leaving the line
    assert second.session_state["train_job"].snapshot().status == "cancelled"
    running.stop()
    running.join(60)
    assert running.snapshot().status == "stopped"


# --- a real server: closing the tab stops the run ------------------------------------------

@pytest.mark.browser
def test_closing_the_tab_stops_its_training_and_frees_the_slot(browser, tmp_path):
    env = {"CNNVIZ_MAX_TRAININGS": "1", "CNNVIZ_MODELS_DIR": str(tmp_path)}
    with running_app(tmp_path, env, ("--server.disconnectedSessionTTL", "1")) as (url, _):
        student = browser.new_context()
        page = student.new_page()
        open_page(page, f"{url}/train")
        main = page.get_by_test_id("stMain")
        main.get_by_role("button", name="Train", exact=True).click()
        main.get_by_test_id("stProgress").wait_for(timeout=60_000)
        assert "1 of 1 slots in use" in main.inner_text()
        student.close()  # the student closes the tab mid-run

        teacher = browser.new_context()
        watcher = teacher.new_page()
        deadline = time.monotonic() + 60
        while True:
            open_page(watcher, f"{url}/train")
            text = watcher.get_by_test_id("stMain").inner_text()
            if "0 of 1 slots in use, 0 runs waiting" in text:
                break
            assert time.monotonic() < deadline, text[-400:]
            time.sleep(1)
        teacher.close()


@pytest.mark.browser
def test_many_tabs_of_one_browser_get_two_places_in_line(browser, tmp_path):
    env = {"CNNVIZ_MAX_TRAININGS": "1", "CNNVIZ_MODELS_DIR": str(tmp_path)}
    with running_app(tmp_path, env) as (url, _):
        student, other = browser.new_context(), browser.new_context()  # a context's tabs share cookies
        expected = [(student, "1 of 1 slots in use, 0 runs waiting"),
                    (student, "In line for a training slot: position 1"),
                    (student, "This browser already has 2 training runs on this server"),
                    (other, "In line for a training slot: position 2")]  # another student still gets in
        for context, text in expected:
            tab = context.new_page()
            open_page(tab, f"{url}/train")
            main = tab.get_by_test_id("stMain")
            main.get_by_role("button", name="Train", exact=True).click()
            main.get_by_text(text).first.wait_for(timeout=30_000)
        student.close()
        other.close()


def _hosting_command() -> list[str]:
    """The options of the README's hosting command (its first code block under 'One machine')."""
    text = (REPO / "README.md").read_text().split("### One machine", 1)[1].split("```bash", 1)[1]
    return shlex.split(text.split("```", 1)[0].replace("\\\n", " "))


@pytest.mark.browser
def test_the_hosted_command_shows_no_traceback(browser, tmp_path):
    command = _hosting_command()
    assert command[1:4] == ["streamlit", "run", "app.py"], command
    (tmp_path / "boom.py").write_text("raise RuntimeError('secret detail from the server')\n")
    port = free_port()
    options = [*command[4:], "--server.address", "127.0.0.1", "--server.port", str(port),
               "--server.headless", "true", "--browser.gatherUsageStats", "false"]  # the later flag wins
    with open(tmp_path / "server.log", "w") as log:  # run in the repository: its .streamlit/ applies
        server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(tmp_path / "boom.py"),
                                   *options], cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", server, timeout=60)
        page = browser.new_page()
        open_page(page, f"http://127.0.0.1:{port}")
        shown = page.get_by_test_id("stException").inner_text()
        assert "error" in shown.lower(), shown  # Streamlit's generic sentence
        assert "secret detail" not in shown and "RuntimeError" not in shown and "boom.py" not in shown, shown
        page.close()
    finally:
        stop_process(server, timeout=10)
    assert "secret detail from the server" in (tmp_path / "server.log").read_text()  # the host still sees it


# --- security ---------------------------------------------------------------------------------

WRITERS = {"write_bytes", "write_text", "save", "mkstemp", "NamedTemporaryFile", "rename", "urlretrieve",
           "download_and_extract_archive", "download_url"}
# models dir, data dir, and the developer command that re-creates the bundled samples
# memory.py writes only /proc/self/clear_refs (it resets the kernel's count of a process's peak memory).
# top_images_commands.py writes the PNGs a teacher asks for with --out (a command, never an upload).
# onnx_export.py writes the ONNX file `export --onnx F` names (the page downloads bytes from a buffer);
# diagram_draw.py the diagram `summary SPEC --diagram F` names (the page downloads its text and bytes);
# export_commands.py the training script `export --code F` names.
ALLOWED_WRITERS = {"checkpoint.py", "files.py", "samples.py", "parts.py", "gpu_check.py", "gpu_commands.py",
                   "memory.py", "top_images_commands.py",
                   "slides.py", "replay_commands.py",  # `replay --out DIR`: a model's slides, never an upload
                   "onnx_export.py", "diagram_draw.py", "export_commands.py"}


def _in_memory_buffers(tree: ast.AST) -> set[str]:
    """Names assigned ``io.BytesIO()``: saving into them writes nothing to disk."""
    return {
        target.id for node in ast.walk(tree) if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Call) and getattr(node.value.func, "attr", None) == "BytesIO"
        for target in node.targets if isinstance(target, ast.Name)
    }


def test_only_the_model_and_data_modules_write_files():
    """Uploads stay in memory: no module that handles them writes anything to disk."""
    offenders = []
    for path in sorted(Path(REPO / "cnnviz").rglob("*.py")):
        tree = ast.parse(path.read_text())
        buffers = _in_memory_buffers(tree)
        for node in ast.walk(tree):
            name = None
            if isinstance(node, ast.Call):
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
                if name == "open" and any(
                    isinstance(a, ast.Constant) and isinstance(a.value, str) and set(a.value) & set("wax+")
                    for a in [*node.args[1:2], *(k.value for k in node.keywords if k.arg == "mode")]
                ):
                    name = "open-for-writing"
                if name == "save" and node.args and getattr(node.args[0], "id", None) in buffers:
                    name = None
            if name in WRITERS | {"open-for-writing"} and path.name not in ALLOWED_WRITERS:
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno} {name}")
    assert not offenders, offenders
