"""The server under test: start one (``streamlit run app.py``) or find a running one.

A server given only by URL is found from its listening port (through psutil), so that the load
test can read its memory and CPU time (:mod:`cnnviz.hosting.loadtest_sampling`).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import psutil

from cnnviz import paths

HEALTH_TIMEOUT_S = 90.0
LOG_LINES_KEPT = 40  # of a started server's output, for the error message when it fails


@dataclass(frozen=True)
class Server:
    """A server under test: its base URL, and its process id when known."""

    url: str
    pid: int | None
    started_here: bool = False


def find_listening_pid(port: int) -> int | None:
    """The process listening on a local TCP port, or None where that cannot be seen (another
    user's process, a system that hides its sockets)."""
    try:
        connections = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, OSError):
        return None
    for connection in connections:
        if connection.status == psutil.CONN_LISTEN and connection.laddr and connection.laddr.port == port:
            return connection.pid
    return None


def url_port(url: str) -> int:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not a server address like http://127.0.0.1:8501.")
    return parts.port or (443 if parts.scheme == "https" else 80)


def is_local(url: str) -> bool:
    return urlsplit(url).hostname in ("127.0.0.1", "localhost", "::1", socket.gethostname())


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(
    url: str, process: subprocess.Popen | None = None, timeout: float = HEALTH_TIMEOUT_S,
) -> None:
    """Poll ``/_stcore/health`` until it answers ``ok``; ValueError when it never does.

    Without ``process`` (a server someone else started) a refused connection fails at once.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ValueError(
                f"The Streamlit server exited with status {process.returncode} before it was ready.")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=5) as answer:
                if answer.read().strip() == b"ok":
                    return
        except OSError as err:
            if process is None and isinstance(getattr(err, "reason", err), ConnectionRefusedError):
                raise ValueError(f"Nothing answers at {url}: start the server first (streamlit run app.py), "
                                 "or leave out --url to let the load test start one.") from None
        time.sleep(0.3)
    raise ValueError(f"No Streamlit server answered at {url} within {timeout:.0f} s.")


@contextlib.contextmanager
def attach(url: str, pid: int | None = None) -> Iterator[Server]:
    """A server someone else started; its pid from ``pid`` or, for a local one, from its port."""
    url = url.rstrip("/")
    port = url_port(url)
    wait_healthy(url, timeout=30)
    if pid is None and is_local(url):
        pid = find_listening_pid(port)
    yield Server(url, pid)


@contextlib.contextmanager
def start(env: dict[str, str] | None = None) -> Iterator[Server]:
    """``streamlit run app.py`` on a free local port, as a teacher would run it; stopped at the end.

    Its output is kept in memory (the last lines), never written to disk, and shown when the
    server fails to start.
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable, "-m", "streamlit", "run", str(paths.APP_SCRIPT), "--server.headless", "true",
        "--server.port", str(port), "--server.address", "127.0.0.1",
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
    ]
    process = subprocess.Popen(command, cwd=paths.REPO_DIR, env={**os.environ, **(env or {})},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
    output: deque[str] = deque(maxlen=LOG_LINES_KEPT)
    reader = threading.Thread(target=lambda: output.extend(process.stdout), daemon=True)  # drains the pipe
    reader.start()
    try:
        try:
            wait_healthy(url, process)
        except ValueError as err:
            raise ValueError(f"{err} Its last output:\n{''.join(output)}") from None
        yield Server(url, process.pid, started_here=True)
    finally:
        stop_process(process)
        reader.join(timeout=5)


def stop_process(process: subprocess.Popen, timeout: float = 15) -> None:
    """Ask a server to stop; kill it if it has not within ``timeout`` seconds."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
