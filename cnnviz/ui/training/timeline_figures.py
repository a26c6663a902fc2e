"""Pictures of one moment of a run for the time machine: the filters then, the probe's maps, its
answer and Grad-CAM, and the per-class accuracy on the check images.

Each builder takes a snapshot's own tensors and draws them as they are (no recomputation), so what
the slider shows at a moment is exactly what the run stored at that step.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
import torch

from cnnviz.images.inspection import heatmap_overlay
from cnnviz.ui.predict.figures import OTHER_COLOUR, PREDICTED_COLOUR, feature_map_image

MAPS_PER_ROW = 8  # the probe's maps of one layer: PROBE_CHANNELS of them in one row
UNITS_PER_ROW = 16  # a dense layer's kept units, in rows of this many cells
RIGHT_COLOUR = "#2e9e6a"  # a class answered mostly right
WRONG_COLOUR = "#d9534f"


def scaled_filters(filters: torch.Tensor) -> torch.Tensor:
    """(out, C, k, k) weights -> each filter scaled to 0..1 on its own (as the results block scales the
    final filters), so an early, nearly flat filter still shows its pattern."""
    weights = filters.float()
    low = weights.amin(dim=(1, 2, 3), keepdim=True)
    high = weights.amax(dim=(1, 2, 3), keepdim=True)
    return (weights - low) / (high - low).clamp_min(1e-12)


def probe_maps_image(maps: torch.Tensor) -> tuple[np.ndarray, float, float]:
    """One layer's kept maps of the probe, (C, H, W) or a dense layer's (D,) units, as one picture at
    one pixel per value on the layer's own colour scale (dark purple low, yellow high).

    Returns:
        (H, W, 3) uint8, and the lowest and highest value shown.
    """
    values = maps.float()
    if values.dim() == 1:  # (D,) -> rows of UNITS_PER_ROW cells, each a 1x1 "map"
        return feature_map_image(values.view(-1, 1, 1), shared_scale=True, per_row=UNITS_PER_ROW)
    return feature_map_image(values, shared_scale=True, per_row=MAPS_PER_ROW)


def probe_answer_bars(probabilities: torch.Tensor, classes: Sequence[str]) -> dict:
    """The probe's probabilities at one moment as horizontal bars, the answer in the page's blue.

    Built as one dict (no validation pass): the slider redraws it at every step."""
    values = [float(p) for p in probabilities]
    answer = int(probabilities.argmax())
    colours = [PREDICTED_COLOUR if i == answer else OTHER_COLOUR for i in range(len(values))]
    names = [str(name) for name in classes]
    return {
        "data": [{
            "type": "bar", "x": values, "y": names, "orientation": "h", "marker": {"color": colours},
            "text": [f"{v:.1%}" for v in values], "textposition": "outside", "cliponaxis": False,
            "hovertemplate": "%{y}: probability %{x:.4f}<extra></extra>",
        }],
        "layout": {
            # the right margin holds the largest bar's "100.0%" (drawn outside the bar)
            "height": 40 + 22 * len(values), "margin": {"l": 10, "r": 40, "t": 10, "b": 30},
            "xaxis": {"range": [0, 1.25], "tickformat": ".0%", "tickvals": [0, 0.5, 1.0]},
            "yaxis": {"autorange": "reversed", "type": "category"}, "bargap": 0.25,
        },
    }


def cam_picture(probe_pixels: torch.Tensor, cam: torch.Tensor) -> np.ndarray:
    """The probe image (C, H, W) uint8 with a snapshot's Grad-CAM (H, W, 0..1) blended over it.

    Returns:
        (H, W, 3) uint8.
    """
    base = probe_pixels.permute(1, 2, 0).numpy()  # (C, H, W) -> (H, W, C)
    base = base[:, :, 0] if base.shape[2] == 1 else base
    return heatmap_overlay(base, cam.float().numpy())


def class_accuracy_bars(accuracy: torch.Tensor, counts: torch.Tensor, classes: Sequence[str]) -> dict:
    """Each class's share of its check images answered right, as bars (green at 50% or more)."""
    values = [float(a) for a in accuracy]
    return {
        "data": [{
            "type": "bar", "x": [str(c) for c in classes], "y": values,
            "marker": {"color": [RIGHT_COLOUR if v >= 0.5 else WRONG_COLOUR for v in values]},
            "customdata": [int(n) for n in counts],
            "hovertemplate": "%{x}: %{y:.1%} of %{customdata} check images right<extra></extra>",
        }],
        "layout": {
            "height": 220, "margin": {"l": 40, "r": 10, "t": 10, "b": 40},
            "xaxis": {"type": "category", "title": {"text": "true class"}, "dtick": 1},  # every class named
            "yaxis": {"range": [0, 1], "tickformat": ".0%", "title": {"text": "right"}},
        },
    }


def figure(spec: dict) -> go.Figure:
    """A figure from a dict built here; the one Plotly validation pass happens now."""
    return go.Figure(spec)
