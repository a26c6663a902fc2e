"""The server under test: start one (``streamlit run app.py``) or find a running one, and read its memory.

Memory is the resident set size from ``/proc/PID/status`` (Linux). A server given only by URL is
found from its listening port: ``/proc/net/tcp*`` maps the port to a socket inode, and the process
holding that inode is the one with a ``/proc/PID/fd`` link to ``socket:[inode]``.
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

from cnnviz import paths

HEALTH_TIMEOUT_S = 90.0
LISTEN_STATE = "0A"  # TCP_LISTEN in /proc/net/tcp
LOG_LINES_KEPT = 40  # of a started server's output, for the error message when it fails


@dataclass(frozen=True)
class Server:
    """A server under test: its base URL, and its process id when known."""

    url: str
    pid: int | None
    started_here: bool = False


def rss_mb(pid: int | None) -> float | None:
    """The process's resident memory in MB (2**20 bytes), or None when it cannot be read."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024  # kB -> MB
    except OSError:
        return None
    return None


def machine_busy_seconds() -> float | None:
    """CPU seconds the whole machine has spent busy (all cores, all processes) since boot, from /proc/stat."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def thread_cpu(pid: int | None) -> dict[int, tuple[int, float]]:
    """Each live thread of a process: thread id -> (its nice value, its CPU seconds so far).

    Python 3.11 does not name its OS threads, but the training threads lower their own priority
    (``nice``), so the nice value tells training work from page work.
    """
    threads: dict[int, tuple[int, float]] = {}
    if pid is None:
        return threads
    ticks = os.sysconf("SC_CLK_TCK")
    with contextlib.suppress(OSError):
        for task in os.scandir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError, IndexError, ValueError), open(f"{task.path}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()  # after "pid (name)": state is fields[0]
                threads[int(task.name)] = (int(fields[16]), (int(fields[11]) + int(fields[12])) / ticks)
    return threads


def find_listening_pid(port: int) -> int | None:
    """The process listening on a local TCP port (via /proc), or None where that cannot be read."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as lines:
            next(lines)  # the header
            for line in lines:
                fields = line.split()
                local_port = int(fields[1].rsplit(":", 1)[1], 16)
                if local_port == port and fields[3] == LISTEN_STATE:
                    inodes.add(fields[9])
    if not inodes:
        return None
    targets = {f"socket:[{inode}]" for inode in inodes}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in os.scandir(f"/proc/{entry.name}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(fd.path) in targets:
                        return int(entry.name)
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
