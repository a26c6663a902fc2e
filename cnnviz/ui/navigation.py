"""The app's pages, in menu order: each page's script, title, icon and summary, on the url paths that
``cnnviz.pages`` names (the core knows the pages by those). A new page adds its url path there and
its spec here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cnnviz.pages import CONVOLUTION_PAGE, EXERCISES_PAGE, EXPLORE_PAGE, HOME_PAGE, PREDICT_PAGE, TRAIN_PAGE

UI_DIR = Path(__file__).parent


@dataclass(frozen=True)
class PageSpec:
    script: str  # the Streamlit script, relative to cnnviz/ui/
    title: str
    icon: str  # a Material icon, ":material/name:"
    url_path: str
    summary: str  # one line for the home page

    @property
    def path(self) -> Path:
        return UI_DIR / self.script


HOME = PageSpec("home_page.py", "Home", ":material/home:", HOME_PAGE, "What cnnviz shows and where to start.")

PAGES: list[PageSpec] = [
    PageSpec(
        "convolution/page.py",
        "Convolution",
        ":material/grid_on:",
        CONVOLUTION_PAGE,
        "Watch a kernel slide over a picture: every product, sum and pooled value on screen.",
    ),
    PageSpec("exercises/page.py", "Exercises", ":material/quiz:", EXERCISES_PAGE,
             "Test yourself on shapes, kernels, pooling and parameters: every answer checked and explained."),
    PageSpec("training/page.py", "Train", ":material/model_training:", TRAIN_PAGE,
             "Train a small CNN on MNIST or CIFAR-10 and watch it learn; compare runs and save one."),
    PageSpec("predict/page.py", "Inspect and predict", ":material/image_search:", PREDICT_PAGE,
             "Upload, draw or snap an image and follow it through a trained network, layer by layer."),
    PageSpec("explorer/page.py", "Explore the network", ":material/hub:", EXPLORE_PAGE,
             "Click any number inside a trained network and see the real arithmetic that made it."),
]


def page_spec(url_path: str) -> PageSpec:
    """The page served at ``url_path`` ("home", "convolution", "exercises", "train", ...)."""
    for spec in [HOME, *PAGES]:
        if spec.url_path == url_path:
            return spec
    raise KeyError(url_path)
