"""Training students who look back at their run while the class predicts: the time slider, a click on
a confusion-matrix cell, and the map of what it learned.

After "Test accuracy" shows, each such student moves the time slider to ``moves`` moments of the run
(from the start onwards) and waits for each redraw, then clicks ``moves`` cells of the results'
confusion matrix (the diagonal: the cells with the most images, so the most Grad-CAM work) and waits
for each listing. The click is the selection event a browser sends for the invisible marker over the
cell (see ``cnnviz.ui.training.confusion_view``). Last, it switches the map to t-SNE (the heavy one,
in a niced background thread on the server), waits for it, and clicks a dot to see its neighbours.
"""

from __future__ import annotations

import json
import time

from cnnviz import pages
from cnnviz.hosting.loadtest_report import TrainingRecord
from cnnviz.hosting.session_client import SessionError, StreamlitSession

CLASSES = 10  # MNIST and CIFAR-10 alike
LISTED_TEXT = "answered"  # in the line over a clicked cell's images: "711 images of a 3 answered 3 ..."


MAP_METHOD_KEY = f"{pages.TRAIN_PROJECTION_KEY}_method"  # the map's PCA / t-SNE choice
TSNE_OPTION = "t-SNE"
MAP_POINT = 0  # the dot clicked: the first of the map's 2,000 test images


def map_click(position: int) -> str:
    """The widget value a browser sends for a click on the map's dot at ``position`` (its customdata is
    [position, test index]; the page reads only the position)."""
    point = {"curve_number": 0, "point_number": 0, "point_index": 0, "customdata": [position, 0]}
    return json.dumps({"selection": {"points": [point], "point_indices": [0], "box": [], "lasso": []}})


def cell_click(true: int, predicted: int, classes: int = CLASSES) -> str:
    """The widget value a browser sends for a click on cell (true, predicted) of the clickable matrix
    (trace 1 holds one marker per cell, row-major)."""
    index = true * classes + predicted
    point = {"curve_number": 1, "point_number": index, "point_index": index, "x": str(predicted),
             "y": str(true), "customdata": [true, predicted]}
    return json.dumps({"selection": {"points": [point], "point_indices": [index], "box": [], "lasso": []}})


async def _timed_run(session: StreamlitSession) -> tuple[float, int]:
    """Send a rerun with the widget values set; seconds to the run's end, and the run counter before."""
    before = session.runs_started
    timing = await session.run()
    return timing.finished - timing.sent, before


async def replay_run(session: StreamlitSession, record: TrainingRecord, moves: int) -> None:
    """Scrub ``moves`` moments and click ``moves`` diagonal cells; fill in the record's seconds."""
    if moves < 1 or record.outcome != "done":
        return
    try:
        # The results come in one run; the time machine under them once the page has seen the run end.
        await session.wait_until(lambda: pages.TRAIN_TIME_KEY in session.widget_keys()
                                 and pages.TRAIN_CONFUSION_KEY in session.widget_keys(),
                                 "the time slider and the confusion matrix")
        slider = session.widget(pages.TRAIN_TIME_KEY)
        options = list(slider.proto.options)  # the moments as the slider shows them
        for move in range(moves):
            moment = round(move * (len(options) - 1) / max(1, moves - 1)) if moves > 1 else 0
            # a select slider sends its chosen option's text (Streamlit 1.67)
            session.set_value(pages.TRAIN_TIME_KEY, string_array_value={"data": [options[moment]]})
            seconds, _ = await _timed_run(session)
            record.replay_seconds.append(seconds)
        for move in range(moves):
            cell = move % CLASSES
            session.set_value(pages.TRAIN_CONFUSION_KEY, string_value=cell_click(cell, cell))
            sent = time.perf_counter()
            seconds, before = await _timed_run(session)
            listed = session.find("markdown", LISTED_TEXT, since_run=before)
            if not any(f"of a {cell} answered {cell}" in e.text for e in listed):
                raise SessionError(f"{session.name}: no images listed for the cell ({cell}, {cell}) "
                                   f"{time.perf_counter() - sent:.1f} s after the click")
            record.pick_seconds.append(seconds)
        await _tsne_map(session, record)
    except SessionError as err:
        record.outcome, record.error = "error", str(err)


async def _tsne_map(session: StreamlitSession, record: TrainingRecord) -> None:
    """Switch the map to t-SNE, wait for it, click a dot and wait for its image; fill in the seconds."""
    await session.wait_until(lambda: MAP_METHOD_KEY in session.widget_keys(), "the map of what it learned")
    sent, before = time.perf_counter(), session.runs_started
    await session.choose(MAP_METHOD_KEY, TSNE_OPTION)
    await session.wait_for_element(
        lambda e: e.run > before and e.key == pages.TRAIN_PROJECTION_KEY and TSNE_OPTION in e.proto.spec,
        "the t-SNE map")
    record.map_seconds.append(time.perf_counter() - sent)
    session.set_value(pages.TRAIN_PROJECTION_KEY, string_value=map_click(MAP_POINT))
    seconds, before = await _timed_run(session)
    if not session.find("markdown", "Test image", since_run=before):
        raise SessionError(f"{session.name}: a click on the map showed no image")
    record.point_seconds.append(seconds)
