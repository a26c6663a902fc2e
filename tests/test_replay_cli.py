"""`python -m cnnviz replay` on a checkpoint saved with the snapshots of a real short run: one GIF frame
per snapshot, drawn from the stored filters; the strip and the map at their sizes; a model without
snapshots gets a sentence and exit status 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnviz.cli import main
from cnnviz.datasets.files import load_dataset
from cnnviz.replay.slides import (
    CAPTION_PX,
    CELL_PX,
    GAP_PX,
    LEGEND_ROW_PX,
    MAP_MARGIN,
    MAP_PX,
    STRIP_COLUMNS,
    cell_origin,
    filter_bound,
    filter_pixels,
    frame_size,
    legend_rows,
)
from cnnviz.training.checkpoint import load_checkpoint, save_checkpoint
from cnnviz.training.loop import train
from cnnviz.training.recipes import recipe
from cnnviz.training.snapshot_capture import SnapshotPlan

REPO = Path(__file__).resolve().parent.parent
MAP_IMAGES = 300


@pytest.fixture(scope="module")
def saved_run(real_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real 16-step MNIST run saved with its snapshots (its step 0 keeps the map's features of
    MAP_IMAGES test images)."""
    test = load_dataset("mnist", "test", data_dir=real_data_dir)
    config = recipe("mnist_fast", train_subset=1200, batch_size=64, test_subset=500, device="cpu")
    plan = SnapshotPlan(test.images[7], "test image 7", projection_images=MAP_IMAGES)
    result = train(config, data_dir=real_data_dir, snapshots=plan)
    assert result.snapshots is not None and result.snapshots.projection_before is not None
    path = tmp_path_factory.mktemp("replay") / "run.pt"
    save_checkpoint(path, result.model, result.metadata("run"), snapshots=result.snapshots)
    return path


@pytest.mark.slow  # a real 16-step run: about 20 s on the shared 2-core CPU
def test_replay_writes_one_gif_frame_per_snapshot_from_the_stored_filters(saved_run: Path, tmp_path: Path,
                                                                           real_data_dir: Path) -> None:
    out = tmp_path / "slides"
    assert main(["replay", "--model", str(saved_run), "--out", str(out),
                 "--data-dir", str(real_data_dir)]) == 0
    runs = load_checkpoint(saved_run).snapshots
    assert runs is not None and len(runs.snapshots) > 10
    bound = filter_bound(runs.snapshots)
    with Image.open(out / "filters.gif") as gif:
        assert gif.n_frames == len(runs.snapshots)
        for number, snapshot in enumerate(runs.snapshots):
            gif.seek(number)
            frame = np.asarray(gif.convert("L"))
            filters = snapshot.filters
            assert frame.shape[::-1] == frame_size(filters)
            expected = filter_pixels(filters, bound)[..., 0]  # (out, k, k)
            for index in range(filters.shape[0]):
                left, top = cell_origin(filters, index)
                centres = frame[top + CELL_PX // 2::CELL_PX, left + CELL_PX // 2::CELL_PX]
                k = filters.shape[-1]
                assert np.array_equal(centres[:k, :k], expected[index]), (number, index)
    # the weights moved: the last frame is not the first
    assert not torch.equal(runs.snapshots[0].filters, runs.snapshots[-1].filters)
    # a weight of w is grey round((w / bound + 1) * 127.5), so the largest weight of the run is white or black
    extreme = max(runs.snapshots, key=lambda s: float(s.filters.abs().max())).filters
    assert set(np.unique(filter_pixels(extreme, bound))) & {0, 255}

    width, height = frame_size(runs.snapshots[0].filters)
    columns = min(STRIP_COLUMNS, len(runs.snapshots))
    rows = -(-len(runs.snapshots) // columns)
    with Image.open(out / "filters_strip.png") as strip:
        assert strip.size == (columns * width + (columns - 1) * GAP_PX * 2, rows * height)
    legend = legend_rows(load_checkpoint(saved_run).classes, 2 * MAP_PX + MAP_MARGIN)
    with Image.open(out / "map.png") as projection:
        assert projection.size == (2 * MAP_PX + MAP_MARGIN,
                                   MAP_PX + CAPTION_PX + len(legend) * LEGEND_ROW_PX + GAP_PX)


def test_a_model_without_snapshots_gets_a_sentence_and_the_map_after(tmp_path: Path, real_data_dir: Path,
                                                                     capsys) -> None:
    out = tmp_path / "slides"
    assert main(["replay", "--model", str(REPO / "models" / "mnist.pt"), "--out", str(out),
                 "--data-dir", str(real_data_dir)]) == 2
    error = capsys.readouterr().err.strip()
    assert "without its training snapshots" in error
    assert len(error.splitlines()) == 1 and error.endswith("after training only.")  # one sentence
    assert sorted(p.name for p in out.iterdir()) == ["map.png"]
    legend = legend_rows([str(d) for d in range(10)], MAP_PX)
    with Image.open(out / "map.png") as projection:
        assert projection.size == (MAP_PX, MAP_PX + CAPTION_PX + len(legend) * LEGEND_ROW_PX + GAP_PX)


def test_out_that_is_a_file_is_refused(tmp_path: Path, capsys) -> None:
    path = tmp_path / "taken"
    path.write_text("x")
    assert main(["replay", "--model", "mnist", "--out", str(path)]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


@pytest.mark.bench
def test_bench_projection_reports_real_timings_and_scores(real_data_dir: Path, capsys) -> None:
    from cnnviz.replay.projection import knn_accuracy, project
    from cnnviz.training.features import penultimate_features, projection_sample

    assert main(["bench", "projection", "--points", "150", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    models = {entry["model"]: entry for entry in report["models"]}
    assert set(models) == {"mnist", "cifar10"} and report["load_average"] >= 0
    mnist = models["mnist"]
    assert mnist["points"] == 150 and mnist["features"] == 128
    assert all(mnist[f"{m}_s"] > 0 for m in ("pca", "tsne")) and mnist["features_s"] > 0
    loaded = load_checkpoint(REPO / "models" / "mnist.pt")
    test = load_dataset("mnist", "test", data_dir=real_data_dir)
    sample = projection_sample(test.labels, count=150)
    features = penultimate_features(loaded.model, test.images[sample], loaded.mean, loaded.std)
    for method in ("pca", "tsne"):
        assert mnist[f"{method}_knn"] == knn_accuracy(project(features, method), test.labels[sample])
