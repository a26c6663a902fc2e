"""Server time of the inspect-and-predict page's reruns, for `python -m cnnviz bench predict`."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

PAGE = Path(__file__).parent / "page.py"


def page_rerun_ms(model_path: Path, repeat: int = 10) -> float:
    """Median time of a full page rerun under AppTest with this model, a new test-set sample each
    time (preprocessing, prediction, feature maps, Grad-CAM and every figure are redone)."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    st.cache_resource.clear()
    app = AppTest.from_file(str(PAGE), default_timeout=60)
    app.run()
    models = app.selectbox(key="predict_model")
    index = next(i for i, label in enumerate(models.options) if label.startswith(model_path.stem))
    models.select_index(index)
    app.run()
    samples = app.selectbox(key="predict_sample")
    count = len(samples.options)
    times = []
    for i in range(repeat + 1):
        app.selectbox(key="predict_sample").select_index((i * 7 + 1) % count)
        start = time.perf_counter()
        app.run()
        times.append((time.perf_counter() - start) * 1000)
        assert not app.exception, [e.value for e in app.exception]
    return statistics.median(times[1:])  # the first run after switching loads lazily
