"""What the network is shown: a few training images above, the same images as the recipe's
augmentation hands them to a training step below, each with what was done to it."""

from __future__ import annotations

import streamlit as st

from cnnviz.datasets import files as data
from cnnviz.training.augment import shown_batch
from cnnviz.training.config import TrainConfig
from cnnviz.ui.widgets import pixel_image

SHOWN_IMAGES = 8
SIZE = 72  # pixels per image on the page


def shown_block(config: TrainConfig, key: str) -> None:
    """An expander with :data:`SHOWN_IMAGES` training images and their augmented versions, and a
    "New batch" button (``key``) that draws another batch."""
    with st.expander("What the network is shown: a training batch after augmentation"):
        try:
            train = data.load_dataset(config.dataset, "train", download=False)
        except data.DataNotFoundError:
            st.caption("The training images are not here yet; they are downloaded when you press Train.")
            return
        seed_key = f"{key}_seed"
        st.session_state.setdefault(seed_key, 0)
        if st.button("New batch", key=key, icon=":material/shuffle:"):
            st.session_state[seed_key] += 1
        images = train.images[:config.train_subset] if config.train_subset else train.images
        batch = shown_batch(config, images, k=SHOWN_IMAGES, seed=st.session_state[seed_key])
        st.caption(_recipe_text(batch.shift, batch.flip, batch.alternating))
        st.markdown("**As they are**")
        names = [train.info.classes[int(train.labels[i])] for i in batch.indices]
        st.image([pixel_image(image, SIZE) for image in batch.originals], width=SIZE, caption=names,
                 output_format="PNG")
        st.markdown("**As this step sees them**")
        st.image([pixel_image(image, SIZE) for image in batch.augmented], width=SIZE,
                 caption=[batch.describe(i) for i in range(SHOWN_IMAGES)], output_format="PNG")


def _recipe_text(shift: int, flip: bool, alternating: bool) -> str:
    """One sentence on what this recipe does to each image, every time it is seen."""
    if not shift and not flip:
        return "This recipe shows the images as they are (no augmentation)."
    parts = [f"moves each image up to {shift} pixels each way (black comes in at the edges)"] if shift else []
    if flip:
        parts.append("mirrors half of them, a different half each epoch" if alternating
                     else "mirrors a random half of them")
    return ("Every time an image comes round, this recipe " + " and ".join(parts) + ": the network never "
            "sees quite the same picture twice, so it learns the object, not its exact pixels.")
