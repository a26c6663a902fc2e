"""Home: what cnnviz shows, where to start, and whether the datasets are here."""

import streamlit as st

from cnnviz.datasets import files as data
from cnnviz.datasets import samples
from cnnviz.pages import CONVOLUTION_PAGE, EXERCISES_PAGE, EXPLORE_PAGE, PREDICT_PAGE, TRAIN_PAGE
from cnnviz.ui.host import enabled_pages
from cnnviz.ui.navigation import PageSpec
from cnnviz.ui.widgets import sample_grid

CARD_COLUMNS = 2  # three cards across cut "Inspect and predict" at 800 px wide
# the order a student new to CNNs meets the ideas: one convolution (and a check of it), a network learning,
# inside a trained one
START_ORDER = {
    CONVOLUTION_PAGE: "one kernel sliding over a picture",
    EXERCISES_PAGE: "check what you understood, answers explained",
    TRAIN_PAGE: "a small network learning while you watch",
    PREDICT_PAGE: "your own picture going through a trained network",
    EXPLORE_PAGE: "any number inside it, explained",
}


def start_with(pages: list[PageSpec]) -> str:
    """One line: of the pages this server offers, the order a newcomer should visit them in, and why."""
    offered = {spec.url_path: spec.title for spec in pages}
    steps = [f"**{offered[url]}** ({why})" for url, why in START_ORDER.items() if url in offered]
    if not steps:
        return "Pick a page below."
    return "New to CNNs? Start with " + ", then ".join(steps) + "."


st.title("cnnviz: see a convolutional network work")
st.markdown(
    "A convolutional neural network turns an image into a guess, one small multiplication at a "
    "time. cnnviz lets you **watch every one of those steps** on real images: a kernel sliding "
    "over pixels, feature maps and pooling, a network learning while you watch, and your own "
    "photo going through a trained model."
)

pages = enabled_pages()
if pages:
    st.subheader("Start here")
    st.markdown(start_with(pages))
    columns = st.columns(min(len(pages), CARD_COLUMNS))
    for i, spec in enumerate(pages):
        with columns[i % len(columns)], st.container(border=True):
            st.page_link(spec.path.as_posix(), label=spec.title, icon=spec.icon)
            st.caption(spec.summary)

st.subheader("The images we use")
st.markdown(
    "Two classic datasets. Every page can start from these real test-set images, bundled with "
    "the app, so nothing needs to be downloaded to explore."
)
for name, info in data.DATASETS.items():
    c, h, w = info.image_shape
    st.markdown(
        f"**{info.title}**: {info.train_size:,} training and {info.test_size:,} test images of "
        f"{h}x{w} pixels, {'grayscale' if c == 1 else 'colour (RGB)'}, {info.num_classes} classes: "
        f"{', '.join(info.classes)}."
    )
    sample_grid(samples.list_samples(name), per_row=10, per_class=1)

with st.expander("Where the full datasets live"):
    root = data.resolve_data_dir()
    st.markdown(
        f"Training and evaluation read the full datasets from `{root}` "
        f"(set the `{data.DATA_DIR_ENV}` environment variable to use another folder)."
    )
    for name, info in data.DATASETS.items():
        if data.is_available(name):
            st.success(f"{info.title} is available.", icon=":material/check_circle:")
        else:
            st.info(
                f"{info.title} is not there yet: it will be downloaded when first needed "
                "(this needs internet), or copy it there yourself.",
                icon=":material/download:",
            )
