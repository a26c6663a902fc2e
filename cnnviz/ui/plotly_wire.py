"""The wire format of the app's Plotly figures: numbers as typed arrays, animation frames as dicts.

Plotly validates every property it is given, about a millisecond per array; an animation of 64
frames paid that on every page rerun. Frames built here are plain dicts whose arrays travel as
float32 bytes in base64 (the compact form Plotly itself writes for numpy arrays), and the figure's
data and layout are validated once as usual.
"""

from __future__ import annotations

import base64

import numpy as np
import plotly.graph_objects as go


def typed_array(values) -> dict | list:
    """Numbers (None for a gap) -> plotly.js's typed-array spec: float32 bytes in base64.

    This is the compact form Plotly itself writes for numpy arrays (4 bytes a number instead of
    up to 20 characters), built directly since the frames skip Plotly's property machinery.
    """
    array = np.ascontiguousarray(np.asarray(values, dtype=np.float32))
    if array.size == 0:
        return []
    spec = {"dtype": "f4", "bdata": base64.b64encode(array.tobytes()).decode("ascii")}
    if array.ndim > 1:
        spec["shape"] = ", ".join(str(n) for n in array.shape)
    return spec


def decode_typed_array(spec: dict | list) -> np.ndarray:
    """The inverse of :func:`typed_array` (NaN where a gap was)."""
    if not isinstance(spec, dict):
        return np.asarray(spec, dtype=np.float64)
    values = np.frombuffer(base64.b64decode(spec["bdata"]), dtype=np.dtype(spec["dtype"]))
    shape = spec.get("shape")
    return values.reshape([int(n) for n in shape.split(",")]) if shape else values


def encode_frames(frames: list[dict]) -> list[dict]:
    """Every coordinate and colour array of the frames as a typed array."""
    for frame in frames:
        frame["data"] = [
            {key: typed_array(value) if key in ("x", "y", "z") else value for key, value in trace.items()}
            for trace in frame["data"]
        ]
    return frames


class AnimatedFigure(go.Figure):
    """A Plotly figure whose animation frames stay plain dicts of numpy arrays.

    Plotly validates a frame property by property (about a millisecond per array), which made
    building and serialising a 64-frame figure cost several hundred ms per page rerun. The data
    and layout here are validated as usual; the frames are built by the figure builders from the same
    trace types, and the tests pass the whole figure through Plotly's validator.
    """

    def __init__(self, data: list, layout: dict, frames: list[dict]) -> None:
        super().__init__(data=data, layout=layout)
        self._animation_frames = encode_frames(frames)

    @property
    def frame_dicts(self) -> list[dict]:
        """The frames: {"name", "traces", "data": [partial trace dicts]}."""
        return self._animation_frames

    def to_dict(self) -> dict:
        figure = super().to_dict()
        figure["frames"] = self._animation_frames
        return figure
