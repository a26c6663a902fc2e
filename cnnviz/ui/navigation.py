"""The app's pages, in menu order. A capability adds its page here, and nowhere else."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PAGES_DIR = Path(__file__).parent / "pages"


@dataclass(frozen=True)
class PageSpec:
    script: str  # file name in cnnviz/ui/pages/
    title: str
    icon: str  # a Material icon, ":material/name:"
    url_path: str
    summary: str  # one line for the home page

    @property
    def path(self) -> Path:
        return PAGES_DIR / self.script


HOME = PageSpec("home.py", "Home", ":material/home:", "home", "What cnnviz shows and where to start.")

PAGES: list[PageSpec] = [
    PageSpec(
        "convolution.py",
        "Convolution",
        ":material/grid_on:",
        "convolution",
        "Watch a kernel slide over a picture: every product, sum and pooled value on screen.",
    ),
    PageSpec("training.py", "Train", ":material/model_training:", "train",
             "Train a small CNN on MNIST or CIFAR-10 and watch it learn; compare runs and save one."),
    PageSpec("predict.py", "Inspect and predict", ":material/image_search:", "predict",
             "Upload, draw or snap an image and follow it through a trained network, layer by layer."),
]
