"""The map of what a network learned: penultimate features of test images projected to 2-D, and the
nearest neighbours of a point in feature space.

:func:`project` runs scikit-learn's PCA or t-SNE (Barnes-Hut, initialised with PCA, seeded), so a map
is the same for the same features and seed, whatever the number of threads. t-SNE's settings are tuned
to the time budget (2,000 points in <= 15 s, PCA <= 1 s on a 2-core CPU): see :data:`TSNE_ITERATIONS`
and ``python -m cnnviz bench projection``.

t-SNE has no progress callback, so :func:`projection_if_ready` runs it in a low-priority background
thread once per key and the page polls: :func:`projection_progress` gives the elapsed seconds and the
expected ones (the last measured speed in this process, else :data:`EXPECTED_SECONDS`).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from sklearn.neighbors import NearestNeighbors
from threadpoolctl import threadpool_limits

from cnnviz.runtime import lower_this_threads_priority

METHODS = ("pca", "tsne")
METHOD_NAMES = {"pca": "PCA", "tsne": "t-SNE"}
# Tuned on 2,000 test images of the shipped nets (2-D 5-NN accuracy, MNIST / CIFAR-10): 1,000
# iterations (scikit-learn's default) took 12.6 s for MNIST; 500 with angle 0.5 kept 0.992 / 0.859,
# 400 with angle 0.7 0.990-0.992 / 0.857-0.862 in about two thirds of the time.
TSNE_ITERATIONS = 400  # scikit-learn's least is 250 (its early exaggeration); 150 then settle the map
TSNE_ANGLE = 0.7  # Barnes-Hut's coarseness (default 0.5): far groups of points count as one sooner
TSNE_PERPLEXITY = 30.0  # scikit-learn's default: about how many neighbours each point keeps close
NEIGHBOURS = 5  # nearest neighbours shown for a clicked point
# Seconds for 2,000 points, measured on this shared 2-core CPU (one thread), until one is measured here.
EXPECTED_SECONDS = {"pca": 0.2, "tsne": 4.0}
# One thread: on this shared 2-core CPU (load average 6) the CIFAR-10 t-SNE took 7.2 s on one thread,
# 34.6 s on two (threads spinning while they wait for each other) and PCA 0.03 s against 0.5-1.0 s.
PROJECTION_THREADS = 1
CACHE_MAPS = 16  # projections kept per process (2,000 points: 16 KB each)


def _as_array(features: torch.Tensor | np.ndarray) -> np.ndarray:
    array = features.detach().cpu().numpy() if isinstance(features, torch.Tensor) else np.asarray(features)
    if array.ndim != 2:
        raise ValueError("The features must be a table of one row per image, shaped (N, D).")
    return np.ascontiguousarray(array, dtype=np.float32)


def _check(method: str, points: int, width: int) -> None:
    if method not in METHODS:
        raise ValueError(f"Unknown projection {method!r}: choose pca or tsne.")
    if points < 3 or width < 2:
        raise ValueError("A map needs at least 3 images with at least 2 features each.")


def project(features: torch.Tensor | np.ndarray, method: str = "pca", seed: int = 0,
            threads: int | None = PROJECTION_THREADS) -> torch.Tensor:
    """(N, 2) float32: ``features`` (N, D) projected to 2-D, the same for the same features and seed.

    Args:
        method: "pca" (the two directions of largest variance) or "tsne" (keeps neighbours together;
            PCA start, ``random_state=seed``, :data:`TSNE_ITERATIONS` iterations).
        threads: the OpenMP and BLAS threads scikit-learn may use (None: its default); the result does
            not depend on it.

    Raises:
        ValueError: for an unknown method, or fewer than 3 points or 2 features.
    """
    array = _as_array(features)
    _check(method, *array.shape)
    with threadpool_limits(threads):
        if method == "pca":
            points = PCA(n_components=2, svd_solver="full", random_state=seed).fit_transform(array)
        else:
            perplexity = min(TSNE_PERPLEXITY, (len(array) - 1) / 3)  # t-SNE needs fewer than N neighbours
            points = TSNE(n_components=2, init="pca", random_state=seed, perplexity=perplexity,
                          max_iter=TSNE_ITERATIONS, angle=TSNE_ANGLE, n_jobs=1).fit_transform(array)
    return torch.from_numpy(np.ascontiguousarray(points, dtype=np.float32))


def nearest_neighbours(features: torch.Tensor | np.ndarray, index: int, k: int = NEIGHBOURS) -> torch.Tensor:
    """(min(k, N - 1),) int64: the rows of ``features`` nearest to row ``index`` (Euclidean, nearest
    first), never ``index`` itself (a duplicate of it may be one).

    Raises:
        ValueError: for an index outside the table or k below 1.
    """
    array = _as_array(features)
    if not 0 <= index < len(array):
        raise ValueError(f"Point {index} is not on the map: it has points 0 to {len(array) - 1}.")
    if k < 1:
        raise ValueError("Ask for at least one neighbour (k >= 1).")
    k = min(k, len(array) - 1)
    if k == 0:
        return torch.empty(0, dtype=torch.int64)
    search = NearestNeighbors(n_neighbors=k + 1, algorithm="brute").fit(array)
    found = search.kneighbors(array[index:index + 1], return_distance=False)[0]
    return torch.tensor([int(i) for i in found if i != index][:k], dtype=torch.int64)


def knn_accuracy(points: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray,
                 k: int = NEIGHBOURS) -> float:
    """How well a map sorts the classes (0..1): the share of points whose ``k`` nearest other points
    (Euclidean) vote for their own class (ties: the lower class), leaving each point itself out."""
    array = _as_array(points)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    k = min(k, len(array) - 1)
    if k < 1:
        raise ValueError("A map needs at least 2 points to score.")
    found = NearestNeighbors(n_neighbors=k + 1, algorithm="brute").fit(array).kneighbors(
        array, return_distance=False)
    # A row's own point is among its k + 1 nearest unless k + 1 duplicates of it tie: drop it, else the last.
    rows = np.arange(len(array))[:, None]
    own = found == rows
    own[~own.any(axis=1), -1] = True
    neighbours = found[~own].reshape(len(array), k)  # (N, k)
    votes = np.zeros((len(array), int(labels.max()) + 1), dtype=np.int64)
    np.add.at(votes, (np.repeat(np.arange(len(array)), k), labels[neighbours].reshape(-1)), 1)
    return float((votes.argmax(axis=1) == labels).mean())


@dataclass(frozen=True)
class MapProgress:
    """A projection under way: seconds since it started and the seconds it is expected to take."""

    elapsed: float
    expected: float

    @property
    def line(self) -> str:
        """"2.1 s of about 4 s"."""
        return f"{self.elapsed:.1f} s of about {self.expected:.0f} s"


_LOCK = threading.Lock()
_MAPS: OrderedDict[tuple[Hashable, str, int], torch.Tensor] = OrderedDict()
_STARTED: dict[tuple[Hashable, str, int], tuple[float, float]] = {}  # under way: start time, expected s
_FAILURES: dict[tuple[Hashable, str, int], BaseException] = {}
_SECONDS_PER_POINT: dict[str, float] = {}  # the last measured speed of each method in this process


def expected_seconds(method: str, points: int) -> float:
    """How long :func:`project` should take for ``points`` points here: the last measured speed in this
    process, else the one measured on the 2-core CPU (:data:`EXPECTED_SECONDS`)."""
    per_point = _SECONDS_PER_POINT.get(method, EXPECTED_SECONDS[method] / 2000)
    return per_point * points


def clear_maps() -> None:
    """Forget every cached map (tests)."""
    with _LOCK:
        _MAPS.clear()
        _FAILURES.clear()


def projection_if_ready(features: torch.Tensor | np.ndarray, method: str, seed: int = 0, *,
                        key: Hashable, threads: int | None = PROJECTION_THREADS) -> torch.Tensor | None:
    """The cached :func:`project` of (key, method, seed), else None at once, with the projection started
    in a low-priority background thread (once per key; a page polls, never waits).

    Args:
        key: identifies the features (a run id and "before" or "after", a model file and its time).

    Raises:
        ValueError: for bad input, or the error the background projection met (raised once; the next
            call starts it again).
    """
    array = _as_array(features)
    _check(method, *array.shape)
    cache_key = (key, method, seed)
    with _LOCK:
        if cache_key in _MAPS:
            _MAPS.move_to_end(cache_key)
            return _MAPS[cache_key]
        failure = _FAILURES.pop(cache_key, None)
        if failure is not None:
            raise failure
        if cache_key in _STARTED:
            return None
        _STARTED[cache_key] = (time.perf_counter(), expected_seconds(method, len(array)))
    worker = threading.Thread(target=_project_in_background, args=(array, method, seed, cache_key, threads),
                              name="cnnviz-projection", daemon=True)
    worker.start()
    return None


def projection_progress(key: Hashable, method: str, seed: int = 0) -> MapProgress | None:
    """How far the background projection of (key, method, seed) is, or None when none is under way."""
    with _LOCK:
        started = _STARTED.get((key, method, seed))
    if started is None:
        return None
    return MapProgress(time.perf_counter() - started[0], started[1])


def _project_in_background(array: np.ndarray, method: str, seed: int, cache_key: tuple[Hashable, str, int],
                           threads: int | None) -> None:
    lower_this_threads_priority()  # this thread is its own: it ends with the projection
    start = time.perf_counter()
    try:
        points = project(array, method, seed, threads=threads)
    except Exception as err:  # raised by the next projection_if_ready, in the page's thread
        with _LOCK:
            _FAILURES[cache_key] = err
            _STARTED.pop(cache_key, None)
        return
    with _LOCK:  # in one step: no moment when it is neither under way nor cached
        _SECONDS_PER_POINT[method] = (time.perf_counter() - start) / len(array)
        _STARTED.pop(cache_key, None)
        _MAPS[cache_key] = points
        while len(_MAPS) > CACHE_MAPS:
            _MAPS.popitem(last=False)
