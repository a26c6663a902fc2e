"""The training page: a tiny real training run to the end, under AppTest and in a real browser."""

import time

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from cnnviz.training.checkpoint import load_checkpoint
from cnnviz.training.loop import STOPPED_TEST_IMAGES
from cnnviz.ui.navigation import page_spec
from tests.conftest import (
    NOTHING_BIG_MB,
    REPO,
    assert_no_exception,
    open_page,
    peak_rss_mb,
    save_screenshot,
    wait_until_idle,
)

TINY_SPEC = "C8n M C16n M F32"


def _open_training_page(monkeypatch, tmp_path, real_data_dir) -> AppTest:
    monkeypatch.setenv("CNNVIZ_DATA_DIR", str(real_data_dir))
    monkeypatch.setenv("CNNVIZ_MODELS_DIR", str(tmp_path))
    app = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    app.run()
    app.switch_page(str(page_spec("train").path))
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def test_bad_spec_points_at_the_token(monkeypatch, tmp_path, real_data_dir):
    app = _open_training_page(monkeypatch, tmp_path, real_data_dir)
    app.selectbox(key="train_preset_mnist").set_value("custom").run()
    app.text_input(key="train_spec").set_value("C8 M Q3 F10").run()
    assert not app.exception
    assert "Token 3 'Q3'" in app.error[0].value
    assert app.button(key="train_start").disabled


def test_the_estimate_uses_the_threads_a_run_will_get(monkeypatch, tmp_path, real_data_dir):
    import torch

    from cnnviz.runtime import cpu_name, training_threads
    from cnnviz.training import estimate

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the predict page leaves its script thread, and threads started after it
    try:
        app = _open_training_page(monkeypatch, tmp_path, real_data_dir)
        estimate.machine_speed("mnist", "auto", training_threads())  # waits for the background timing
        app.run()
        line = next(c.value for c in app.caption if c.value.startswith("Training on"))
        assert f"**{cpu_name(training_threads())}**" in line, line
        assert "for this run (estimated from this machine's speed: ~" in line, line
        assert "images/s for this net)." in line, line
        assert torch.get_num_threads() == 1  # the page thread got its own setting back
    finally:
        torch.set_num_threads(threads)


def test_the_first_page_run_never_waits_for_the_speed_timing(monkeypatch, tmp_path, real_data_dir):
    from cnnviz.runtime import training_threads
    from cnnviz.training import estimate
    from cnnviz.ui.training.parts import MEASURING_SPEED

    estimate._timed_machine_speed.cache_clear()  # as in a fresh server process
    estimate._BACKGROUND.clear()
    app = _open_training_page(monkeypatch, tmp_path, real_data_dir)
    line = next(c.value for c in app.caption if c.value.startswith("Training on"))
    assert MEASURING_SPEED in line, line  # the page ran on while the timing ran in the background
    estimate.machine_speed("mnist", "auto", training_threads())
    app.run()
    line = next(c.value for c in app.caption if c.value.startswith("Training on"))
    assert "estimated from this machine's speed: ~" in line, line


def test_durations_read_as_a_student_plans():
    from cnnviz.ui.training.parts import duration_text

    assert [duration_text(s) for s in (0.2, 7.4, 89, 95, 600, 9000)] == [
        "1 s", "7 s", "89 s", "2 min", "10 min", "2.5 h"]


def test_a_run_of_hours_gets_a_warning_and_a_quick_one_none(monkeypatch, tmp_path, real_data_dir):
    from cnnviz.runtime import training_threads
    from cnnviz.training import estimate

    app = _open_training_page(monkeypatch, tmp_path, real_data_dir)
    estimate.machine_speed("mnist", "auto", training_threads())  # the background timing, waited for
    app.run()
    assert not [w.value for w in app.warning if "This run would take about" in w.value]  # the fast preset
    app.selectbox(key="train_preset_mnist").set_value("custom").run()
    app.text_input(key="train_spec").set_value("C256 C256 M C256 F10").run()  # 0.6 G multiply-adds an image
    warnings = [w.value for w in app.warning if "This run would take about" in w.value]
    line = next(c.value for c in app.caption if c.value.startswith("Training on"))
    assert warnings and "Fewer epochs, fewer training images" in warnings[0], (warnings, line)


@pytest.mark.slow
def test_every_preset_opens_with_its_recipe(monkeypatch, tmp_path, real_data_dir):
    from cnnviz.training.config import LR_INPUT_MIN, MAX_LR
    from cnnviz.training.presets import NET_PRESETS
    from cnnviz.training.recipes import recipe

    app = _open_training_page(monkeypatch, tmp_path, real_data_dir)
    for name, preset in NET_PRESETS.items():
        app.selectbox(key="train_dataset").set_value(preset.dataset).run()
        app.selectbox(key=f"train_preset_{preset.dataset}").set_value(name).run()
        assert not app.exception, (name, [e.value for e in app.exception])
        assert app.select_slider(key=f"train_{name}_batch").value == recipe(name).batch_size
        assert app.number_input(key=f"train_{name}_lr").value == recipe(name).lr
        assert (app.number_input(key=f"train_{name}_lr").min, app.number_input(key=f"train_{name}_lr").max) \
            == (LR_INPUT_MIN, MAX_LR)
        layers = app.dataframe[0].value  # the layer table: numbered as --layer, with the receptive field
        assert list(layers["layer"]) == list(range(len(layers))), name
        assert layers["receptive field"].iloc[-1] == "all" and layers["part"].iloc[-1] == "classifier"
        tricks = [c.value for c in app.caption if c.value.startswith("Speed-run tricks in this recipe")]
        assert len(tricks) == (1 if recipe(name).whiten else 0), name
        if recipe(name).dirac:
            assert "identity kernels" in tricks[0]


def test_the_layer_table_numbers_layers_as_the_explorer_and_shows_their_fields():
    from cnnviz.explorer.layers import find_layer
    from cnnviz.networks.build import build_model
    from cnnviz.networks.receptive_field import layer_fields
    from cnnviz.networks.summary import summarize_model
    from cnnviz.ui.training.parts import summary_rows

    model = build_model("C8p0 M C8 R8 G F16", 1, 10, 28)
    rows = summary_rows(summarize_model(model))
    for row, field in zip(rows, layer_fields(model), strict=True):
        layer = find_layer(model, row["layer"])
        assert (row["type"], row["part"], row["from"]) == (layer.kind, layer.part, layer.token)
        if field is None:
            assert (row["receptive field"], row["jump"], row["start"]) == ("all", "", "")
        else:
            assert (row["receptive field"], row["jump"], row["start"]) == \
                (f"{field.size}x{field.size}", str(field.jump), f"{field.start:g}")
    assert [row["receptive field"] for row in rows[:4]] == ["3x3", "3x3", "4x4", "8x8"]  # conv, pool, conv


@pytest.mark.slow
def test_tiny_training_runs_to_the_end_and_saves(monkeypatch, tmp_path, real_data_dir):
    app = _open_training_page(monkeypatch, tmp_path, real_data_dir)
    app.selectbox(key="train_preset_mnist").set_value("custom").run()
    app.text_input(key="train_spec").set_value(TINY_SPEC).run()
    app.selectbox(key="train_custom_subset").set_value("2,000").run()
    app.select_slider(key="train_custom_batch").set_value(64).run()
    assert "parameters" in app.expander[0].label
    app.button(key="train_start").click().run()
    job = app.session_state["train_job"]
    job.join(timeout=120)
    app.run()  # the fragment notices the end and reruns the page with the results
    assert not app.exception, [e.value for e in app.exception]
    result = job.snapshot().result
    assert result is not None and result.test_accuracy > 0.6
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Test accuracy"] == f"{result.test_accuracy:.2%}"
    history = app.dataframe[-1].value  # the run history table (the layer table comes first)
    assert list(history["spec"]) == [TINY_SPEC]
    assert history["test acc"][0] == pytest.approx(result.test_accuracy * 100)  # shown as 72.34%

    app.text_input(key="train_save_name").set_value("my tiny/net")
    app.button[-1].click().run()  # the form's submit button
    assert not app.exception
    saved = load_checkpoint(tmp_path / "my_tiny_net.pt")
    assert saved.spec == TINY_SPEC and saved.test_accuracy == result.test_accuracy
    assert saved.name == "my_tiny_net"

    app.button(key="train_start").click().run()  # a second run: the save form now offers it first
    app.session_state["train_job"].join(timeout=120)
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    assert list(app.dataframe[-1].value["run"]) == ["#1", "#2"]
    assert app.selectbox(key="train_save_run_2").value == "#2"


def test_a_stopped_run_s_epochs_read_as_a_person_reads_them():
    from cnnviz.ui.training.runs import RunRecord

    record = RunRecord(label="#1", dataset="MNIST", spec="C8 F10", params=0, epochs=1.1544,
                       train_accuracy=None, val_accuracy=None, test_accuracy=None, seconds=1.0,
                       device="cpu", stopped=True, history=(), model=None, metadata={})
    row = record.table_row()
    assert row["epochs"] == 1.15 and row["time (s)"] == 1.0 and row["stopped"] is True


def _with_a_finished_run(app: AppTest) -> AppTest:
    """The page as after one finished run (the shipped MNIST model stands in for a trained one)."""
    from cnnviz.paths import MODELS_DIR
    from cnnviz.ui.training.runs import RunRecord

    trained = load_checkpoint(MODELS_DIR / "mnist.pt")
    app.session_state["train_runs"] = [RunRecord(
        label="#1", dataset="MNIST", spec=trained.spec, params=0, epochs=1.0, train_accuracy=None,
        val_accuracy=None, test_accuracy=trained.test_accuracy, seconds=1.0, device="cpu", stopped=False,
        history=(), model=trained.model, metadata=trained.metadata)]
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def test_saves_get_fresh_default_names_and_stop_at_the_sessions_quota(monkeypatch, tmp_path, real_data_dir):
    st.cache_resource.clear()  # the host's limits are read once per process
    monkeypatch.setenv("CNNVIZ_MAX_SAVES_PER_SESSION", "2")
    try:
        app = _with_a_finished_run(_open_training_page(monkeypatch, tmp_path, real_data_dir))
        names = []
        for _ in range(2):
            name = app.text_input(key="train_save_name").value
            assert name.startswith("mnist_") and name != "my_model" and name not in names, name
            app.button[-1].click().run()  # the form's submit button
            assert not app.exception and not app.error and app.success, [e.value for e in app.error]
            assert (tmp_path / f"{name}.pt").is_file()
            names.append(name)
            app.run()  # the next visit to the form offers a new name
        app.button[-1].click().run()
        assert not app.exception
        assert [e.value for e in app.error] == ["This server allows 2 saved models per session, and you have "
                                                "saved them all\\."]
        assert sorted(p.stem for p in tmp_path.glob("*.pt")) == sorted(names)
    finally:
        st.cache_resource.clear()


def test_a_models_folder_that_cannot_be_written_is_told_in_a_sentence(monkeypatch, tmp_path, real_data_dir):
    blocker = tmp_path / "models"
    blocker.write_text("a file where the models folder should be")
    app = _with_a_finished_run(_open_training_page(monkeypatch, blocker, real_data_dir))
    app.button[-1].click().run()
    assert not app.exception, [e.value for e in app.exception]
    assert len(app.error) == 1 and "could not write the model file" in app.error[0].value
    assert "tell your host" in app.error[0].value


def test_stop_keeps_the_partly_trained_network(monkeypatch, tmp_path, real_data_dir):
    app = _open_training_page(monkeypatch, tmp_path, real_data_dir)
    app.selectbox(key="train_preset_mnist").set_value("custom").run()
    app.text_input(key="train_spec").set_value(TINY_SPEC).run()
    app.selectbox(key="train_custom_subset").set_value("5,000").run()
    app.slider(key="train_custom_epochs").set_value(10).run()
    app.button(key="train_start").click().run()
    assert not app.button(key="train_stop").disabled
    job = app.session_state["train_job"]
    deadline = time.monotonic() + 60
    while (job.snapshot().latest is None or job.snapshot().latest.step < 3) and time.monotonic() < deadline:
        time.sleep(0.05)
    app.button(key="train_stop").click().run()
    assert app.button(key="train_stop").disabled  # pressed once is enough
    job.join(timeout=60)
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    result = job.snapshot().result
    assert result is not None and result.stopped and 3 <= result.steps < 10 * (4500 // 64)
    assert any(f"Stopped after {result.steps} steps" in w.value for w in app.warning)
    assert app.dataframe[-1].value["stopped"][0]
    assert len(result.test_labels) == STOPPED_TEST_IMAGES  # not all 10,000: the slot frees sooner
    assert any("Scored on 1,000 of the 10,000 test images because it was stopped" in c.value
               for c in app.caption), [c.value for c in app.caption]


def _progress_app(job) -> AppTest:
    def script(job):
        from cnnviz.ui.training.parts import progress_block

        progress_block(job.snapshot())

    return AppTest.from_function(script, args=(job,), default_timeout=30).run()


def test_a_run_stopped_before_its_first_step_says_so_and_is_not_a_run(real_data_dir):
    from cnnviz.training.config import TrainConfig
    from cnnviz.training.jobs import TrainingJob

    job = TrainingJob(TrainConfig(spec=TINY_SPEC, train_subset=500), data_dir=real_data_dir)
    job.stop()  # pressed before training began
    job.start()
    job.join(timeout=60)
    snapshot = job.snapshot()
    assert snapshot.status == "stopped" and snapshot.result.steps == 0
    app = _progress_app(job)
    assert not app.exception
    assert any("before the first training step" in w.value for w in app.warning)
    assert not app.metric  # no "Training loss 0.000" for a run that never trained


@pytest.mark.browser
def test_training_in_the_browser(app_server, browser_page):
    page = browser_page
    open_page(page, f"{app_server}/train")
    main = page.get_by_test_id("stMain")
    # A small custom net on 2,000 MNIST images keeps this to seconds on a laptop CPU.
    main.get_by_test_id("stSelectbox").filter(has_text="Architecture").click()
    page.get_by_role("option", name="Custom spec...").click()
    wait_until_idle(page)
    spec_box = main.get_by_label("Spec", exact=True).and_(main.get_by_test_id("stTextInputField"))
    spec_box.fill(TINY_SPEC)
    spec_box.press("Enter")
    wait_until_idle(page)
    main.get_by_test_id("stSelectbox").filter(has_text="Training images").click()
    page.get_by_role("option", name="2,000").click()
    wait_until_idle(page)
    main.get_by_role("button", name="Train", exact=True).click()
    main.get_by_test_id("stProgress").wait_for(timeout=60_000)  # the live progress bar
    # This tiny run can finish within a second on an idle machine; while it trains, Train is disabled.
    train_disabled = main.get_by_role("button", name="Train", exact=True).is_disabled()
    still_training = main.get_by_text("Results on the test set").count() == 0  # read after: no race
    assert train_disabled or not still_training
    save_screenshot(page, "page-train-running", full_page=False)
    main.get_by_text("Results on the test set").wait_for(timeout=180_000)
    wait_until_idle(page)
    assert_no_exception(page)
    text = main.inner_text()
    assert "Test accuracy" in text and "Run history" in text and "predicted / true" in text
    accuracy = float(text.split("Test accuracy")[1].split("%")[0].strip())
    assert accuracy > 60
    assert main.get_by_test_id("stPlotlyChart").count() >= 4  # curves, confusion, filters, comparison
    save_screenshot(page, "page-train-finished")
    for heading, name in (("Results on the test set", "results"), ("Run history", "history")):
        main.get_by_text(heading, exact=True).scroll_into_view_if_needed()
        page.mouse.wheel(0, 250)
        page.wait_for_timeout(500)
        save_screenshot(page, f"page-train-{name}", full_page=False)



def test_missing_dataset_gets_one_sentence_and_no_training(monkeypatch, tmp_path):
    """No data and no way to download it: the page says where it looked, in one sentence."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    unwritable = blocker / "data"  # a folder inside a file: the download fails, online or not
    app = _open_training_page(monkeypatch, tmp_path, unwritable)
    app.button(key="train_start").click().run()
    assert not app.exception, [e.value for e in app.exception]
    errors = " ".join(e.value for e in app.error)
    assert "was not found in" in errors and str(unwritable) in errors
    assert app.session_state["train_job"] is None


def test_each_dataset_opens_with_its_own_default_net(monkeypatch, tmp_path, real_data_dir):
    app = _open_training_page(monkeypatch, tmp_path, real_data_dir)
    assert app.selectbox(key="train_preset_mnist").value == "mnist_fast"
    app.selectbox(key="train_dataset").set_value("cifar10").run()
    assert not app.exception, [e.value for e in app.exception]
    assert app.selectbox(key="train_preset_cifar10").value == "cifar10_fast"  # not the MNIST net
    assert not any("on MNIST" in c.value for c in app.caption)


def test_settings_survive_a_visit_to_another_page(monkeypatch, tmp_path, real_data_dir):
    app = _open_training_page(monkeypatch, tmp_path, real_data_dir)
    app.selectbox(key="train_preset_mnist").set_value("custom").run()
    app.text_input(key="train_spec").set_value(TINY_SPEC).run()
    app.selectbox(key="train_custom_subset").set_value("5,000").run()
    app.switch_page(str(page_spec("predict").path)).run()
    assert not app.exception, [e.value for e in app.exception]
    app.switch_page(str(page_spec("train").path)).run()
    assert not app.exception, [e.value for e in app.exception]
    assert app.selectbox(key="train_preset_mnist").value == "custom"
    assert app.text_input(key="train_spec").value == TINY_SPEC
    assert app.selectbox(key="train_custom_subset").value == "5,000"


def test_a_net_too_big_is_refused_as_typed_without_timing_it(monkeypatch, tmp_path, real_data_dir):
    from cnnviz.training.config import TrainConfig
    from cnnviz.training.loop import train

    app = _open_training_page(monkeypatch, tmp_path, real_data_dir)
    app.selectbox(key="train_preset_mnist").set_value("custom").run()
    peak_before = peak_rss_mb()
    app.text_input(key="train_spec").set_value("C4096 F4096").run()  # 13 G parameters
    assert peak_rss_mb() - peak_before < NOTHING_BIG_MB  # nothing built, so nothing timed either
    assert not app.exception, [e.value for e in app.exception]
    assert any("too big to train here" in e.value for e in app.error)
    assert app.button(key="train_start").disabled
    with pytest.raises(ValueError, match="too big to train here"):  # the command line says the same
        train(TrainConfig(spec="C64 F4096 F4096"), data_dir=real_data_dir)


def _form_values(main) -> tuple[str, str]:
    """(epochs, learning rate) as the Train page's form shows them."""
    epochs = main.get_by_test_id("stSlider").filter(has_text="Epochs").get_by_test_id("stSliderThumbValue")
    lr = main.get_by_label("Learning rate", exact=True)
    return epochs.inner_text(), lr.input_value()


@pytest.mark.browser
def test_the_form_survives_a_visit_to_another_page_while_a_run_trains(app_server, browser_page):
    """Set epochs 3 and rate 0.05, Train, look at another page and come back while it trains: the form
    still says 3 and 0.05 (it came back as 1 and 0.1, with Streamlit's default-value warning)."""
    page = browser_page
    open_page(page, f"{app_server}/train")
    main = page.get_by_test_id("stMain")
    main.get_by_test_id("stSlider").filter(has_text="Epochs").get_by_role("slider").focus()
    for _ in range(2):
        page.keyboard.press("ArrowRight")
        wait_until_idle(page)
    lr = main.get_by_label("Learning rate", exact=True)
    lr.fill("0.05")
    lr.press("Enter")
    wait_until_idle(page)
    assert _form_values(main) == ("3", "0.0500")
    main.get_by_role("button", name="Train", exact=True).click()
    main.get_by_test_id("stProgress").wait_for(timeout=60_000)
    try:
        page.wait_for_timeout(3_000)  # the live view (a fragment that reruns every 2 s) has redrawn
        page.locator("[data-testid='stSidebarNavLink']", has_text="Inspect and predict").click()
        page.wait_for_timeout(3_000)
        page.locator("[data-testid='stSidebarNavLink']", has_text="Train").click()
        wait_until_idle(page)
        page.wait_for_timeout(2_500)  # and once more on the Train page
        assert main.get_by_text("Results on the test set").count() == 0, "the run ended too soon"
        assert_no_exception(page)
        assert "Session State API" not in main.inner_text()
        assert _form_values(main) == ("3", "0.0500")
    finally:
        stop = main.get_by_role("button", name="Stop", exact=True)
        if stop.is_enabled():
            stop.click()
