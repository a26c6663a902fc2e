"""The command-line tool: its start-up as a user runs it, every command's help, and the data commands.

Commands run in this process through ``cnnviz.cli.main`` (:func:`cli`); a fresh process is kept only
for ``python -m cnnviz`` itself (:func:`run_cli`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass

import pytest
import torch

from cnnviz.cli import build_parser, main
from tests.conftest import REPO


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m cnnviz ARGS`` in a fresh process."""
    return subprocess.run([sys.executable, "-m", "cnnviz", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env=env)


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def cli(capsys: pytest.CaptureFixture, *args: str) -> CliResult:
    """``python -m cnnviz ARGS`` in this process: its exit status and what it printed. An argparse
    error or ``--help`` (SystemExit) counts as its exit status, as it would in a process."""
    threads = torch.get_num_threads()  # predict and train set the thread count; the next test gets it back
    capsys.readouterr()  # what earlier steps printed is not this command's output
    try:
        code = main(list(args))
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 2
    finally:
        torch.set_num_threads(threads)
    out, err = capsys.readouterr()
    return CliResult(code, out, err)


def sub_parsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """A parser's sub-commands by name."""
    (action,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_python_m_cnnviz_starts_and_lists_every_command():
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    assert "usage: python -m cnnviz" in result.stdout
    commands = sub_parsers(build_parser())
    assert {"data", "bench", "train", "predict"} <= set(commands)
    listed = result.stdout.split()
    for name in commands:
        assert name in listed, f"{name} is missing from --help"


def test_every_command_and_benchmark_has_help(capsys):
    commands = sub_parsers(build_parser())
    benches = sub_parsers(commands["bench"])
    assert {"data", "conv", "train", "predict", "gpu"} <= set(benches)
    bench_help = cli(capsys, "bench", "--help")
    assert bench_help.returncode == 0
    for name in benches:
        assert name in bench_help.stdout.split(), f"bench {name} is missing from bench --help"
    for argv in [[name] for name in commands] + [["bench", name] for name in benches]:
        result = cli(capsys, *argv, "--help")
        assert result.returncode == 0, argv
        assert result.stdout.startswith(f"usage: python -m cnnviz {' '.join(argv)}"), argv


def test_data_status_on_real_data(real_data_dir, capsys):
    result = cli(capsys, "data", "--data-dir", str(real_data_dir))
    assert result.returncode == 0, result.stderr
    assert "MNIST: found" in result.stdout and "CIFAR-10: found" in result.stdout


def test_data_status_reports_missing(tmp_path, capsys):
    result = cli(capsys, "data", "--data-dir", str(tmp_path))
    assert result.returncode == 1
    assert "MNIST: missing" in result.stdout


@pytest.mark.bench
def test_bench_data_json(real_data_dir, capsys):
    result = cli(capsys, "bench", "data", "--data-dir", str(real_data_dir), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    by_name = {r["dataset"]: r for r in report["datasets"]}
    assert by_name["mnist"]["images"] == 70_000 and by_name["cifar10"]["images"] == 60_000
    assert by_name["mnist"]["seconds_cached"] < by_name["mnist"]["seconds_cold"]


def test_bench_data_without_data_is_one_clear_line(tmp_path, capsys):
    result = cli(capsys, "bench", "data", "--data-dir", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.startswith("error: MNIST was not found in")
    assert "Traceback" not in result.stderr
