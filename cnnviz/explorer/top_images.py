"""What excites a filter: the test-set images whose strongest response in one channel is highest.

:func:`layer_maxima` runs every test image through the layers up to the picked one only (in eval mode,
under ``torch.inference_mode``, in batches) and keeps, per image and channel, the strongest response and
where it is. That table is cached in the process per (model key, layer), so every later channel of the
layer is a sort of 10,000 numbers; :func:`layer_maxima_if_ready` computes it in a low-priority
background thread for a page that must not wait (:func:`maxima_progress` says how far it is).
:func:`top_images` takes the ``k`` highest;
:func:`crop_top_image` cuts a top image to the receptive field of its strongest cell
(``networks.receptive_field.cell_box``).

Memory: a layer's table is 8 bytes per image and channel (a float32 value and an int32 position):
10,000 images x 192 channels (the widest layer of the shipped CIFAR-10 net) is 15 MB. The cache keeps
at most :data:`CACHE_LAYERS` layers and :data:`CACHE_BYTES` bytes (least recently used go first).
A batch of :data:`BATCH_SIZE` images through the shipped nets peaks at about 50 MB.

Speed: the cost is the forward pass up to the layer (the shipped CIFAR-10 net's deepest maps: 400 G
multiply-adds for the test set, about 8 s of one core's time), so a caller with the machine to itself
gives it two threads (``threads``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from cnnviz.datasets.files import load_dataset
from cnnviz.explorer.layers import find_layer, net_layers
from cnnviz.networks.build import SpecNet, eval_mode
from cnnviz.networks.receptive_field import Box, cell_box, layer_fields
from cnnviz.runtime import lower_this_threads_priority
from cnnviz.training.checkpoint import LoadedModel
from cnnviz.training.step import normalize

TOP_K = 9  # images shown per channel
BATCH_SIZE = 100  # test images per forward pass: a batch's maps stay in the CPU's caches
CACHE_LAYERS = 4  # layers whose maxima are kept per process
CACHE_BYTES = 64 * 1024 * 1024  # and at most this many bytes of them (one oversized layer is still kept)


@dataclass(frozen=True)
class TestSet:
    """Images as a model was trained on them: uint8 pixels and the model's normalization."""

    __test__ = False  # not a pytest test class

    pixels: torch.Tensor  # (N, C, H, W) uint8
    mean: tuple[float, ...]
    std: tuple[float, ...]
    labels: torch.Tensor | None = None  # (N,) int64 when known

    def __len__(self) -> int:
        return int(self.pixels.shape[0])

    def normalized(self, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """Images ``start:stop`` as the network's input, (n, C, H, W) float32."""
        mean = torch.tensor(self.mean, dtype=torch.float32).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(1, -1, 1, 1)
        return normalize(self.pixels[start:stop], mean, std)


def load_test_set(loaded: LoadedModel, data_dir: str | None = None) -> TestSet:
    """The test split of the model's dataset (10,000 images), normalized with the model's own mean/std."""
    data = load_dataset(loaded.dataset, "test", data_dir=data_dir)
    return TestSet(data.images, loaded.mean, loaded.std, data.labels)


@dataclass(frozen=True)
class TopImage:
    """One test image's strongest response in a channel (a dense unit: its value, no position)."""

    index: int  # in the test set
    value: float
    row: int | None  # the strongest cell of the channel's map; None for a dense layer
    col: int | None

    def to_json(self) -> dict[str, int | float | None]:
        return {"index": self.index, "value": self.value, "row": self.row, "col": self.col}


@dataclass(frozen=True)
class LayerMaxima:
    """Every image's strongest response per channel of one layer, and where it is."""

    values: torch.Tensor  # (N, C) float32
    positions: torch.Tensor | None  # (N, C) int32: row * width + col of the strongest cell; None: dense
    width: int | None  # the maps' width (None for a dense layer)
    # Over all images, per channel: the mean and standard deviation of each image's channel mean
    # ("mean") and of its centre cell ("centre"); for a dense layer both are the unit's value.
    stats: dict[str, tuple[torch.Tensor, torch.Tensor]]

    @property
    def channels(self) -> int:
        return int(self.values.shape[1])

    @property
    def nbytes(self) -> int:
        extra = 0 if self.positions is None else self.positions.nelement() * self.positions.element_size()
        return self.values.nelement() * self.values.element_size() + extra


_CACHE: OrderedDict[tuple[Hashable, int], LayerMaxima] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_KEY_LOCKS: dict[tuple[Hashable, int], threading.Lock] = {}
_BACKGROUND: dict[tuple[Hashable, int], threading.Thread] = {}  # layer_maxima_if_ready's workers
_FAILURES: dict[tuple[Hashable, int], BaseException] = {}  # their errors, until raised
_PROGRESS: dict[tuple[Hashable, int], float] = {}  # computations under way: the fraction of images done


def clear_cache() -> None:
    """Forget every cached layer (tests; a model file that changed gets a new key anyway)."""
    with _CACHE_LOCK:
        _CACHE.clear()
        _FAILURES.clear()
        _PROGRESS.clear()


def cached_layers() -> list[tuple[Hashable, int]]:
    """The (model key, layer) pairs cached now, least recently used first."""
    with _CACHE_LOCK:
        return list(_CACHE)


def layer_maxima(model: SpecNet, images: TestSet, layer: int, *, key: Hashable | None = None,
                 batch_size: int = BATCH_SIZE, threads: int | None = None) -> LayerMaxima:
    """Per image and channel of layer ``layer``: the strongest response and its cell.

    Args:
        key: identifies the model's weights (a file's path and modification time, a session's run id):
            the result is cached under (key, layer). None: computed every time, not cached.
        threads: the torch CPU threads of the computation (this thread's count is restored after);
            None: the count set now.

    Raises:
        ValueError: when the layer does not exist.
    """
    find_layer(model, layer)
    if key is None:
        return _compute_maxima(model, images, layer, batch_size, threads)
    cache_key = (key, layer)
    with _CACHE_LOCK:
        lock = _KEY_LOCKS.setdefault(cache_key, threading.Lock())
    with lock:  # two sessions asking for the same layer at once compute it once
        with _CACHE_LOCK:
            if cache_key in _CACHE:
                _CACHE.move_to_end(cache_key)
                return _CACHE[cache_key]

        def progress(fraction: float) -> None:
            with _CACHE_LOCK:
                _PROGRESS[cache_key] = fraction

        try:
            maxima = _compute_maxima(model, images, layer, batch_size, threads, progress)
        except BaseException:
            with _CACHE_LOCK:  # a background worker's own error is recorded with its progress cleared
                if _BACKGROUND.get(cache_key) is not threading.current_thread():
                    _PROGRESS.pop(cache_key, None)
            raise
        with _CACHE_LOCK:  # in one step: no moment when it is neither under way nor cached
            _PROGRESS.pop(cache_key, None)
            _CACHE[cache_key] = maxima
            while len(_CACHE) > 1 and (len(_CACHE) > CACHE_LAYERS
                                       or sum(m.nbytes for m in _CACHE.values()) > CACHE_BYTES):
                _KEY_LOCKS.pop(next(iter(_CACHE)), None)
                _CACHE.popitem(last=False)
        return maxima


def layer_maxima_if_ready(model: SpecNet, images: TestSet, layer: int, *, key: Hashable,
                          threads: int | None = None) -> LayerMaxima | None:
    """The cached :func:`layer_maxima` of (key, layer), else None at once, with the computation started
    in a background thread at low priority (once per key and layer; a page polls, never waits) on
    ``threads`` torch threads (None: the count set when it starts).

    Raises:
        ValueError: for a layer that does not exist, or the error the background computation met
            (raised once; the next call starts it again).
    """
    find_layer(model, layer)
    cache_key = (key, layer)
    with _CACHE_LOCK:
        if cache_key in _CACHE:
            _CACHE.move_to_end(cache_key)
            return _CACHE[cache_key]
        failure = _FAILURES.pop(cache_key, None)
        if failure is not None:
            _BACKGROUND.pop(cache_key, None)
            raise failure
        worker = _BACKGROUND.get(cache_key)
        if worker is None or not worker.is_alive():
            worker = threading.Thread(target=_compute_in_background,
                                      args=(model, images, layer, key, threads), name="cnnviz-top-images",
                                      daemon=True)
            _BACKGROUND[cache_key] = worker
            _PROGRESS.setdefault(cache_key, 0.0)  # under way from now on, for maxima_progress
            worker.start()
    return None


def maxima_progress(key: Hashable, layer: int) -> float | None:
    """How far the computation of (key, layer)'s maxima is (0 to 1), or None when none is under way."""
    with _CACHE_LOCK:
        return _PROGRESS.get((key, layer))


def _compute_in_background(model: SpecNet, images: TestSet, layer: int, key: Hashable,
                           threads: int | None) -> None:
    try:
        lower_this_threads_priority()  # this thread is its own: it ends with the computation
        layer_maxima(model, images, layer, key=key, threads=threads)
    except Exception as err:  # raised by the next layer_maxima_if_ready, in the page's thread
        with _CACHE_LOCK:
            _FAILURES[(key, layer)] = err
            _PROGRESS.pop((key, layer), None)
    finally:
        with _CACHE_LOCK:
            _PROGRESS.pop((key, layer), None)
            if _BACKGROUND.get((key, layer)) is threading.current_thread() and (key, layer) not in _FAILURES:
                _BACKGROUND.pop((key, layer), None)


def _compute_maxima(model: SpecNet, images: TestSet, layer: int, batch_size: int, threads: int | None,
                    progress: Callable[[float], None] | None = None) -> LayerMaxima:
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(max(1, threads))
    try:
        return _maxima_in_batches(model, images, layer, batch_size, progress)
    finally:
        torch.set_num_threads(previous)  # with OpenMP a thread started later starts from the last count


def _maxima_in_batches(model: SpecNet, images: TestSet, layer: int, batch_size: int,
                       progress: Callable[[float], None] | None) -> LayerMaxima:
    modules = [entry.module for entry in net_layers(model)[: layer + 1]]
    values, positions, width = [], [], None
    sums = {"mean": [0.0, 0.0], "centre": [0.0, 0.0]}  # per objective: sum and sum of squares, (C,)
    with eval_mode(model), torch.inference_mode():
        for start in range(0, len(images), batch_size):
            # channels-last runs the CPU's convolutions about a quarter faster at this batch size
            hidden = images.normalized(start, start + batch_size)
            hidden = hidden.contiguous(memory_format=torch.channels_last)
            for module in modules:
                hidden = module(hidden)
            if hidden.dim() == 4:
                width = int(hidden.shape[3])
                best, where = hidden.flatten(2).max(dim=2)  # first (row-major) position on a tie
                positions.append(where.to(torch.int32))
                objectives = {"mean": hidden.double().mean(dim=(2, 3)),
                              "centre": hidden[:, :, hidden.shape[2] // 2, width // 2].double()}
            else:
                best = hidden.reshape(hidden.shape[0], -1)
                objectives = {"mean": best.double(), "centre": best.double()}
            values.append(best.float().clone())
            for name, per_image in objectives.items():
                sums[name][0] = sums[name][0] + per_image.sum(dim=0)
                sums[name][1] = sums[name][1] + (per_image ** 2).sum(dim=0)
            if progress is not None:
                progress(min(start + batch_size, len(images)) / len(images))
    count = len(images)
    stats = {}
    for name, (total, squares) in sums.items():
        mean = total / count
        spread = (squares / count - mean ** 2).clamp_min(0).sqrt()
        stats[name] = (mean.float(), spread.float())
    return LayerMaxima(torch.cat(values), torch.cat(positions) if positions else None, width, stats)


def top_images(model: SpecNet, images: TestSet, layer: int, channel: int, k: int = TOP_K, *,
               key: Hashable | None = None) -> list[TopImage]:
    """The ``k`` images whose strongest response in ``channel`` of ``layer`` is highest, highest first
    (equal values: the lower test-set index first). For a dense layer ``channel`` is the unit.

    Raises:
        ValueError: for a layer or channel that does not exist, or k < 1.
    """
    if k < 1:
        raise ValueError("Ask for at least one image (k >= 1).")
    maxima = layer_maxima(model, images, layer, key=key)
    if not 0 <= channel < maxima.channels:
        kind = "channels" if maxima.positions is not None else "units"
        raise ValueError(f"Channel {channel} does not exist: layer {layer} has {kind} 0 to "
                         f"{maxima.channels - 1}.")
    column = maxima.values[:, channel]
    order = torch.sort(-column, stable=True).indices[:k]  # stable: ties keep the lower index first
    result = []
    for index in order.tolist():
        row = col = None
        if maxima.positions is not None and maxima.width is not None:
            row, col = divmod(int(maxima.positions[index, channel]), maxima.width)
        result.append(TopImage(index, float(column[index]), row, col))
    return result


@dataclass(frozen=True)
class TopCrop:
    """A top image cut to the receptive field of its strongest cell."""

    top: TopImage
    box: Box  # the input rows and columns the cell depends on (inside the image)
    pixels: np.ndarray  # (h, w) for one channel, (h, w, 3) for colour: uint8, the box's pixels
    centre: tuple[float, float] | None  # the cell's field centre in crop coordinates (None: dense)


def crop_top_image(model: SpecNet, images: TestSet, layer: int, top: TopImage) -> TopCrop:
    """``top``'s image cut to the receptive field of its strongest cell, with that cell's centre."""
    row, col = (top.row, top.col) if top.row is not None else (0, 0)
    box = cell_box(model, layer, row, col, clip=True)
    rows, cols = box.slices()
    chw = images.pixels[top.index, :, rows, cols].numpy()
    pixels = chw[0] if chw.shape[0] == 1 else np.transpose(chw, (1, 2, 0))
    centre = None
    geometry = layer_fields(model)[layer]
    if geometry is not None and top.row is not None and top.col is not None:
        centre = (geometry.start + top.row * geometry.jump - box.top,
                  geometry.start + top.col * geometry.jump - box.left)
    return TopCrop(top, box, np.ascontiguousarray(pixels), centre)


def crop_top_images(model: SpecNet, images: TestSet, layer: int, tops: Sequence[TopImage]) -> list[TopCrop]:
    """:func:`crop_top_image` for each of ``tops``."""
    return [crop_top_image(model, images, layer, top) for top in tops]
