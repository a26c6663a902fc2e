"""The Train page's "Take it with you": the chosen spec's architecture diagram (SVG and PNG), and for a
run of this session its ONNX file and the PyTorch script that trains it."""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from cnnviz import pages
from cnnviz.datasets.files import DatasetInfo
from cnnviz.networks.diagram import spec_diagram
from cnnviz.networks.diagram_draw import diagram_png, diagram_svg
from cnnviz.networks.onnx_export import ONNX_OPSET
from cnnviz.training.checkpoint import LoadedModel
from cnnviz.training.config import TrainConfig
from cnnviz.training.script import script_file_name, training_script
from cnnviz.training.takeaway import model_onnx_bytes, model_script, onnx_file_name
from cnnviz.ui.training.runs import RunRecord

DOWNLOADS_KEY = "train_takeaway_files"  # session state: {run label: (onnx bytes, script, script name)}
PNG_MIME = "image/png"
SVG_MIME = "image/svg+xml"
ONNX_MIME = "application/octet-stream"
# The main column is about 470 px wide in a window 800 px wide with the page menu open: the diagram on
# the page wraps to that width so that it is drawn 1:1 there; the downloads use the wider default.
PAGE_DIAGRAM_WIDTH = 460


@st.cache_data(show_spinner=False, max_entries=32)
def diagram_files(spec: str, input_shape: tuple[int, int, int],
                  classes: tuple[str, ...]) -> tuple[str, str, bytes]:
    """The spec's diagram for the page (SVG), and to download as SVG text and PNG bytes; drawn once per
    spec and dataset."""
    shown = spec_diagram(spec, input_shape, len(classes), classes, max_width=PAGE_DIAGRAM_WIDTH)
    diagram = spec_diagram(spec, input_shape, len(classes), classes)
    return diagram_svg(shown), diagram_svg(diagram), diagram_png(diagram)


def takeaway_block(spec: str | None, info: DatasetInfo, runs: Sequence[RunRecord],
                   config: TrainConfig | None = None) -> None:
    """Draw the block. ``spec``: the chosen architecture, None when it does not parse (no diagram);
    ``config``: the form's settings, whose training script is offered before any run (None: none)."""
    st.subheader("Take it with you")
    if spec is not None:
        shown, svg, png = diagram_files(spec, info.image_shape, tuple(info.classes))
        st.markdown("**The architecture**, drawn as in papers: each block is a layer's output, its side "
                    "the size of the feature maps, its depth the channels (`32@14x14`: 32 maps of 14x14).")
        with st.container(key="train_takeaway_diagram"):
            st.image(shown, width="content")
        row = st.container(horizontal=True)
        row.download_button("Diagram (SVG)", svg, file_name="architecture.svg", mime=SVG_MIME,
                            key="train_takeaway_svg", icon=":material/download:", on_click="ignore")
        row.download_button("Diagram (PNG)", png, file_name="architecture.png", mime=PNG_MIME,
                            key="train_takeaway_png", icon=":material/download:", on_click="ignore")
        if config is not None:
            _settings_script(config, row)
    if not runs:
        st.caption("After a run: its model as an ONNX file, and the PyTorch script of that run.")
        return
    _run_downloads(runs)


def _settings_script(config: TrainConfig, row) -> None:
    """The script that trains the form's settings (spec, recipe, epochs, images), before any run."""
    try:
        script = training_script(config)
    except ValueError as err:  # settings this cnnviz cannot write a script for
        st.caption(str(err))
        return
    row.download_button("Training script (these settings)", script, file_name=script_file_name(config),
                        mime="text/x-python", key="train_takeaway_settings_script",
                        icon=":material/download:", on_click="ignore",
                        help="One Python file that needs only torch and torchvision: this network, this "
                             "recipe and the settings above, trained and scored on the test set.")


def _run_downloads(runs: Sequence[RunRecord]) -> None:
    record = runs[-1]
    if len(runs) > 1:
        label = st.selectbox("Run to take", [r.label for r in runs], index=len(runs) - 1,
                             key=f"train_takeaway_run_{len(runs)}")  # a new run: the latest is chosen
        record = next(r for r in runs if r.label == label)
    try:
        onnx_bytes, script, script_name = _run_files(record)
    except ValueError as err:  # settings this cnnviz cannot write a script for
        st.warning(str(err))
        return
    st.markdown(f"**Run {record.label}** (`{record.spec}`, {record.dataset}): the trained model as **ONNX** "
                f"(opset {ONNX_OPSET}; open it in Netron or run it with onnxruntime: input `images` is a "
                "batch normalized as in training, output `logits`; the class names, mean and std are in "
                "its metadata), and a **training script** that needs only torch and torchvision and "
                "trains this spec with this recipe.")
    row = st.container(horizontal=True)
    row.download_button("Download ONNX", onnx_bytes, file_name=onnx_file_name(_loaded(record)),
                        mime=ONNX_MIME, key=pages.TRAIN_ONNX_KEY, icon=":material/download:",
                        on_click="ignore")
    row.download_button("Download the training script", script, file_name=script_name, mime="text/x-python",
                        key=pages.TRAIN_SCRIPT_KEY, icon=":material/download:", on_click="ignore")


def _loaded(record: RunRecord) -> LoadedModel:
    name = f"cnnviz_run{record.label[1:]}"
    return LoadedModel(model=record.model, metadata={"name": name, **record.metadata})


def _run_files(record: RunRecord) -> tuple[bytes, str, str]:
    """A run's ONNX bytes and script, made once per run in this session (an export takes 0.2 to 1.6 s)."""
    made: dict[str, tuple[bytes, str, str]] = st.session_state.setdefault(DOWNLOADS_KEY, {})
    if record.label not in made:
        loaded = _loaded(record)
        with st.spinner("Writing the ONNX file ..."):
            onnx_bytes = model_onnx_bytes(loaded)
        script, name = model_script(loaded)
        made[record.label] = (onnx_bytes, script, name)
    return made[record.label]
