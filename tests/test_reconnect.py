"""A few seconds without network do not stop a run: the reaper waits for the session to be really gone."""

from __future__ import annotations

import re
import threading
import time

from cnnviz.hosting.server_process import url_port
from cnnviz.training.config import TrainConfig
from cnnviz.training.jobs import TrainingJob, TrainingQueue
from cnnviz.training.reaper import JobReaper
from tests.conftest import open_page, running_app, save_screenshot, wait_until_idle
from tests.cut_proxy import cutting_proxy


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _full_queue() -> tuple[TrainingQueue, int]:
    """A line whose one slot is taken (by the ticket returned), so the jobs queued behind it only wait."""
    queue = TrainingQueue(slots=1)
    ticket = queue.enter()
    assert ticket is not None and queue.wait_turn(ticket, threading.Event())
    return queue, ticket


def _queued_job(queue: TrainingQueue) -> TrainingJob:
    """A real job waiting in the full line: it never trains, and leaves the line when stopped."""
    job = TrainingJob(TrainConfig(dataset="mnist", epochs=1, train_subset=200), queue=queue)
    assert job.start()
    return job


def test_the_reaper_stops_runs_only_after_the_session_stayed_away_for_the_grace_period():
    (queue, slot), clock, connected = _full_queue(), _Clock(), set()
    reaper = JobReaper[TrainingJob](10.0, connected.__contains__, poll_s=3600, clock=clock)
    blip, gone = _queued_job(queue), _queued_job(queue)
    reaper.park("blip", [blip])
    reaper.park("gone", [gone])
    clock.now = 5.0
    connected.add("blip")  # reconnected, the page has not rerun yet
    assert reaper.reap() == 0
    clock.now = 12.0
    assert reaper.reap() == 1  # "gone" has been away 12 s; "blip" is connected
    assert gone.stop_event.is_set() and not blip.stop_event.is_set()
    connected.discard("blip")  # and now the tab is closed for good (last seen at 12 s)
    clock.now = 21.0
    assert reaper.reap() == 0 and reaper.parked() == {"blip": 1}
    clock.now = 22.0
    assert reaper.reap() == 1 and blip.stop_event.is_set() and reaper.parked() == {}
    for job in (blip, gone):
        job.join(10)
        assert job.snapshot().status == "cancelled"
    assert queue.counts() == (1, 0)  # only the slot-holder is left
    queue.leave(slot)


def test_a_session_that_comes_back_takes_its_runs_back():
    (queue, slot), clock = _full_queue(), _Clock()
    reaper = JobReaper[TrainingJob](10.0, lambda _: False, poll_s=3600, clock=clock)
    job = _queued_job(queue)
    reaper.park("s1", [job])
    reaper.park("s2", [])  # a session without runs leaves nothing to watch
    assert reaper.reclaim("s1") == [job] and reaper.reclaim("s1") == []
    clock.now = 60.0
    assert reaper.reap() == 0 and not job.stop_event.is_set()
    job.stop()
    job.join(10)
    queue.leave(slot)


def test_the_reapers_thread_stops_a_run_by_itself_and_then_ends():
    queue, slot = _full_queue()
    reaper = JobReaper[TrainingJob](0.2, lambda _: False, poll_s=0.05)
    job = _queued_job(queue)
    reaper.park("closed", [job])
    job.join(10)
    assert job.snapshot().status == "cancelled" and reaper.parked() == {}
    deadline = time.monotonic() + 5
    while reaper._thread is not None:
        assert time.monotonic() < deadline, "the reaper's thread outlived its last session"
        time.sleep(0.05)
    queue.leave(slot)


def test_a_run_survives_a_three_second_network_cut(browser, tmp_path):
    env = {"CNNVIZ_MODELS_DIR": str(tmp_path)}
    with running_app(tmp_path, env, ("--server.disconnectedSessionTTL", "30")) as (url, _), \
            cutting_proxy(url_port(url)) as proxy:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        open_page(page, f"{proxy.url}/train")
        main = page.get_by_test_id("stMain")
        # All 54,000 training images (the page's default): 5-20 s on a 2-core CPU, so the run is still
        # training when the cut comes (5,000 images were done within a second on a quiet machine).
        main.get_by_role("button", name="Train", exact=True).click()
        progress = main.get_by_test_id("stProgress")
        progress.filter(has_text="step ").wait_for(timeout=60_000)  # training, past loading the images
        assert "Done in" not in main.inner_text()
        connections = proxy.connections

        proxy.cut(3.0)  # every socket reset, new ones refused for 3 s
        page.wait_for_selector("[data-testid='stApp'][data-test-connection-state='CONNECTED']",
                               timeout=30_000)
        assert proxy.connections > connections  # the page came back through the proxy by itself
        assert "Press Train to start" not in main.inner_text()  # the same session, with its run
        main.get_by_text(re.compile("Done in|Stopped after")).wait_for(timeout=120_000)
        wait_until_idle(page)
        text = main.inner_text()
        save_screenshot(page, "page-train-after-network-cut", full_page=False)
        assert "Done in" in text and "Stopped after" not in text and "Results on the test set" in text
        context.close()
