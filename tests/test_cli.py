"""The command-line tool, run as a user runs it."""

import json
import subprocess
import sys

from tests.conftest import REPO


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cnnviz", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env=env)


def test_help_lists_the_commands():
    result = run_cli("--help")
    assert result.returncode == 0
    assert "usage: python -m cnnviz" in result.stdout
    for command in ("data", "bench"):
        assert command in result.stdout


def test_data_status_on_real_data(real_data_dir):
    result = run_cli("data", "--data-dir", str(real_data_dir))
    assert result.returncode == 0, result.stderr
    assert "MNIST: found" in result.stdout and "CIFAR-10: found" in result.stdout


def test_data_status_reports_missing(tmp_path):
    result = run_cli("data", "--data-dir", str(tmp_path))
    assert result.returncode == 1
    assert "MNIST: missing" in result.stdout


def test_bench_data_json(real_data_dir):
    result = run_cli("bench", "data", "--data-dir", str(real_data_dir), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    by_name = {r["dataset"]: r for r in report["datasets"]}
    assert by_name["mnist"]["images"] == 70_000 and by_name["cifar10"]["images"] == 60_000
    assert by_name["mnist"]["seconds_cached"] < by_name["mnist"]["seconds_cold"]


def test_bench_data_without_data_is_one_clear_line(tmp_path):
    result = run_cli("bench", "data", "--data-dir", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.startswith("error: MNIST was not found in")
    assert "Traceback" not in result.stderr
