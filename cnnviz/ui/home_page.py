"""Home: what cnnviz shows, where to start, and whether the datasets are here."""

import streamlit as st

from cnnviz.datasets import files as data
from cnnviz.datasets import samples
from cnnviz.ui.host import enabled_pages
from cnnviz.ui.widgets import sample_grid

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
    columns = st.columns(min(len(pages), 3))
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
