"""Server time of the explorer's reruns: a student picks another cell, or another test image."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from cnnviz import pages

PAGE = Path(__file__).parent / "page.py"


def page_rerun_ms(model_path: Path, repeat: int = 10) -> dict[str, float]:
    """Median times (ms) of full page reruns under AppTest with this model.

    Returns:
        "cell": another cell of another layer is picked each time (the trace is reused: the value, the
        computation, the receptive field and the footprint are redone); "image": another test image each
        time (the trace and the overview are redone too).
    """
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    st.cache_resource.clear()
    app = AppTest.from_file(str(PAGE), default_timeout=60)
    app.run()
    models = app.selectbox(key=pages.EXPLORE_MODEL_KEY)
    index = next(i for i, label in enumerate(models.options) if label.startswith(model_path.stem))
    models.select_index(index)
    app.run()
    layers = int(app.number_input(key=pages.EXPLORE_LAYER_KEY).max) + 1

    def timed(change) -> list[float]:
        times = []
        for i in range(repeat + 1):
            change(i)
            start = time.perf_counter()
            app.run()
            times.append((time.perf_counter() - start) * 1000)
            assert not app.exception, [e.value for e in app.exception]
        return times[1:]  # the first run after switching loads lazily

    def new_cell(i: int) -> None:
        app.session_state[pages.EXPLORE_LAYER_KEY] = (i * 5 + 1) % layers  # as a click on a map sets it
        app.session_state[pages.EXPLORE_CHANNEL_KEY] = i

    def new_image(i: int) -> None:
        app.number_input(key=pages.EXPLORE_TEST_INDEX_KEY).set_value(i * 37 + 1)

    return {"cell": statistics.median(timed(new_cell)), "image": statistics.median(timed(new_image))}
