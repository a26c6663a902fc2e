"""The parts of `python -m cnnviz bench gpu` that run in a process of their own.

- the CUDA tests (``tests/test_training_gpu.py``) under pytest, counted from its JUnit XML report;
- a peer's training script (airbench94.py from the public KellerJordan/airbench repository, which
  this project never ships) on the same CIFAR-10 copy, so its time stands beside ours.

airbench94 reads ``cifar10/train.pt`` and ``cifar10/test.pt`` below its working folder, each a dict
``{"images": uint8 (N, 32, 32, 3), "labels": int64 (N,), "classes": [names]}`` (it downloads through
torchvision where they are missing, which a machine without internet cannot), runs 25 trainings in
a row and prints one table row per epoch and an ``eval`` row per run with ``tta_val_acc`` and
``total_time_seconds`` (GPU time of training and test-time augmentation, by CUDA events). It makes no
warm-up run of its own, so its first run pays for CUDA's start and cuDNN's kernel choice: that run is
reported apart, as ``bench train`` reports its warm-up.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from cnnviz.datasets import files as data
from cnnviz.hosting.server_process import stop_process

REPO = Path(__file__).resolve().parent.parent
CUDA_TESTS = REPO / "tests" / "test_training_gpu.py"
PEER_SCRIPT = "airbench94.py"
PEER_DATA_FOLDER = "cifar10"  # below the peer's working folder
PEER_COLUMNS = ("tta_val_acc", "total_time_seconds")  # the columns of its table read here


@dataclass
class TestCounts:
    """How a pytest run went."""

    passed: int
    failed: int
    errors: int
    skipped: int
    seconds: float
    returncode: int
    failures: list[str] = field(default_factory=list)  # "file::test" of each failed or broken test

    def to_json(self) -> dict:
        return {"ran": True, **asdict(self)}


def run_pytest(test_path: Path = CUDA_TESTS, timeout: float = 300.0,
               env: dict[str, str] | None = None) -> TestCounts:
    """Run one test file under pytest in a fresh process and count its results.

    Raises:
        FileNotFoundError: the test file is not there (cnnviz installed without its tests).
    """
    if not test_path.is_file():
        raise FileNotFoundError(f"{test_path} is not here: the CUDA tests come with the repository.")
    with tempfile.TemporaryDirectory(prefix="cnnviz-pytest-") as scratch:
        xml_path = Path(scratch) / "junit.xml"
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_path),
                   f"--junitxml={xml_path}"]
        started = time.perf_counter()
        try:
            result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                                    timeout=timeout)
            returncode = result.returncode
        except subprocess.TimeoutExpired:
            returncode = 124
        seconds = round(time.perf_counter() - started, 1)
        if not xml_path.is_file():
            broken = [f"pytest wrote no report (exit {returncode})"]
            return TestCounts(0, 0, 1, 0, seconds, returncode, broken)
        return _count_junit(xml_path, seconds, returncode)


def _count_junit(xml_path: Path, seconds: float, returncode: int) -> TestCounts:
    failed, errors, skipped, passed, failures = 0, 0, 0, 0, []
    for case in ET.parse(xml_path).getroot().iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        outcomes = {child.tag for child in case}
        if "failure" in outcomes:
            failed += 1
            failures.append(name)
        elif "error" in outcomes:
            errors += 1
            failures.append(name)
        elif "skipped" in outcomes:
            skipped += 1
        else:
            passed += 1
    return TestCounts(passed, failed, errors, skipped, seconds, returncode, failures)


# --- the peer ------------------------------------------------------------------------------

def find_peer_script(folder: str | os.PathLike) -> Path:
    """``folder/airbench94.py``, with a friendly error when it is not there."""
    path = Path(folder) / PEER_SCRIPT
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: put {PEER_SCRIPT} from github.com/KellerJordan/airbench in that folder."
        )
    return path


def prepare_peer_data(work_dir: Path, data_dir: str | os.PathLike | None = None) -> list[Path]:
    """Write CIFAR-10 from cnnviz's data directory as the tensors files the peer loads.

    Returns:
        The files written (``work_dir/cifar10/train.pt`` and ``test.pt``).
    """
    folder = Path(work_dir) / PEER_DATA_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for split in data.SPLITS:
        images = data.load_dataset("cifar10", split, data_dir, download=False)
        path = folder / f"{split}.pt"
        torch.save({
            "images": images.images.permute(0, 2, 3, 1).contiguous(),  # (N, C, H, W) -> (N, H, W, C)
            "labels": images.labels,
            "classes": list(images.info.classes),
        }, path)
        written.append(path)
    return written


@dataclass
class PeerRun:
    """One of the peer's trainings, as it printed it."""

    accuracy: float  # its tta_val_acc
    seconds: float  # its total_time_seconds
    wall_seconds: float  # from the previous run's end (or the process's start) to this run's end


def parse_peer_line(line: str, columns: list[str] | None) -> tuple[list[str] | None, PeerRun | None]:
    """Read one line of the peer's table: a header gives the column names, an ``eval`` row a run.

    Returns:
        (the columns known after this line, the run's accuracy and seconds or None); the run's
        wall_seconds is left at 0 for the caller.
    """
    text = line.strip()
    if not text.startswith("|"):
        return columns, None
    cells = [cell.strip() for cell in text.strip("|").split("|")]
    if all(name in cells for name in PEER_COLUMNS):
        return cells, None
    if columns is None or len(cells) != len(columns) or "eval" not in cells:
        return columns, None
    try:
        accuracy, seconds = (float(cells[columns.index(name)]) for name in PEER_COLUMNS)
    except ValueError:
        return columns, None
    return columns, PeerRun(accuracy, seconds, 0.0)


def run_peer(script: Path, work_dir: Path, runs: int, timeout: float) -> dict:
    """Run the peer's script in ``work_dir`` until it has printed ``runs`` + 1 runs (the first is its
    warm-up) or ``timeout`` seconds have passed, then stop it.

    Returns:
        The report: its first run apart, the timed runs, their mean accuracy and seconds.
    """
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, str(Path(script).resolve())], cwd=work_dir, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(target=_read_lines, args=(process, lines), daemon=True)
    reader.start()
    columns, found, tail = None, [], []
    last_end, timed_out = started, False
    while len(found) < runs + 1:
        left = timeout - (time.perf_counter() - started)
        if left <= 0:
            timed_out = True
            break
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            continue
        if line is None:  # the script ended
            break
        tail = (tail + [line.rstrip()])[-20:]
        columns, run = parse_peer_line(line, columns)
        if run:
            now = time.perf_counter()
            run.wall_seconds, last_end = round(now - last_end, 2), now
            found.append(run)
    if process.poll() is None:
        stop_process(process, timeout=10)
    reader.join(timeout=5)
    first, timed = (found[0], found[1:]) if found else (None, [])
    report = {
        "ran": True, "script": str(script), "runs_asked": runs, "timed_out": timed_out,
        "returncode": process.returncode, "seconds": round(time.perf_counter() - started, 1),
        "first_run": asdict(first) if first else None, "runs": [asdict(run) for run in timed],
        "mean_accuracy": _mean([run.accuracy for run in timed]),
        "mean_seconds": _mean([run.seconds for run in timed]),
        "mean_wall_seconds": _mean([run.wall_seconds for run in timed]),
    }
    if len(timed) < runs:
        report["output_tail"] = tail
    return report


def _read_lines(process: subprocess.Popen, lines: queue.Queue) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        lines.put(line)
    lines.put(None)


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None
