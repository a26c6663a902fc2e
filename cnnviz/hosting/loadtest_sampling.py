"""What the load test reads from the server's process and the machine, through psutil, and the
server's health check.

Memory is the resident set size. CPU time is split by thread niceness: Python does not name its OS
threads, but the training threads lower their own priority (``nice``), so the nice value tells
training work from page work.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from urllib.parse import urlsplit

import psutil

MEMORY_SAMPLE_SECONDS = 0.25
_GONE = (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess)


def rss_mb(pid: int | None) -> float | None:
    """The process's resident memory in MB (2**20 bytes), or None when it cannot be read."""
    if pid is None:
        return None
    try:
        return psutil.Process(pid).memory_info().rss / 2**20
    except _GONE:
        return None


def process_cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds of a process so far (its children not counted), or None."""
    if pid is None:
        return None
    try:
        times = psutil.Process(pid).cpu_times()
    except _GONE:
        return None
    return times.user + times.system


def machine_busy_seconds() -> float | None:
    """CPU seconds the whole machine has spent busy (all cores, all processes) since boot.

    Busy is everything but idle and I/O wait; guest time is already inside user time.
    """
    try:
        times = psutil.cpu_times()
    except (OSError, RuntimeError):
        return None
    busy = ("user", "nice", "system", "irq", "softirq", "steal")
    return sum(getattr(times, name, 0.0) for name in busy)


def thread_cpu(pid: int | None) -> dict[int, tuple[int, float]]:
    """Each live thread of a process: thread id -> (its nice value, its CPU seconds so far)."""
    if pid is None:
        return {}
    try:
        threads = psutil.Process(pid).threads()
    except _GONE:
        return {}
    found: dict[int, tuple[int, float]] = {}
    for thread in threads:
        # Linux gives each thread its own priority; a thread that ended meanwhile is left out.
        with contextlib.suppress(OSError):
            found[thread.id] = (os.getpriority(os.PRIO_PROCESS, thread.id),
                                thread.user_time + thread.system_time)
    return found


class ServerSampler:
    """Samples the server in the background: RSS (keeping the peak) and CPU time by thread niceness."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        self.peak: float | None = None
        self.cpu_by_nice: dict[int, float] = {}  # CPU seconds used since start, by thread nice value
        self._threads: dict[int, tuple[int, float]] = {}
        self._task: asyncio.Task | None = None

    def sample(self) -> float | None:
        """Read the server once; its RSS in MB (None when unreadable)."""
        value = rss_mb(self.pid)
        if value is not None:
            self.peak = value if self.peak is None else max(self.peak, value)
        threads = thread_cpu(self.pid)
        for tid, (nice, seconds) in threads.items():
            # A thread seen for the first time counts from zero (script threads come and go).
            used = seconds - self._threads.get(tid, (nice, 0.0 if self._threads else seconds))[1]
            self.cpu_by_nice[nice] = self.cpu_by_nice.get(nice, 0.0) + max(0.0, used)
        self._threads = threads
        return value

    def start(self) -> None:
        """Sample every MEMORY_SAMPLE_SECONDS on the running event loop until :meth:`stop`."""
        async def loop() -> None:
            while True:
                self.sample()
                await asyncio.sleep(MEMORY_SAMPLE_SECONDS)

        if self.pid is not None:
            self._task = asyncio.create_task(loop(), name="server-sampler")

    async def stop(self) -> None:
        """End the background sampling, with one last sample."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.sample()


async def probe_health(url: str, latencies: list[float], every: float = 0.5) -> None:
    """Time ``/_stcore/health`` again and again: it does no work, so a slow answer means the server's
    event loop itself is waiting (for the CPU or for Python's GIL), not any page script."""
    parts = urlsplit(url)
    request = (f"GET {parts.path.rstrip('/')}/_stcore/health HTTP/1.1\r\nHost: {parts.netloc}\r\n"
               "Connection: close\r\n\r\n").encode()
    while True:
        start = time.perf_counter()
        with contextlib.suppress(OSError):
            reader, writer = await asyncio.open_connection(parts.hostname, parts.port or 80)
            writer.write(request)
            await reader.read()
            writer.close()
            latencies.append(time.perf_counter() - start)
        await asyncio.sleep(every)


async def server_answers(url: str) -> bool:
    """Whether ``/_stcore/health`` answers 200 within 10 s."""
    parts = urlsplit(url)
    request = (f"GET {parts.path.rstrip('/')}/_stcore/health HTTP/1.1\r\nHost: {parts.netloc}\r\n"
               "Connection: close\r\n\r\n").encode()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(parts.hostname, parts.port or 80), 10)
        writer.write(request)
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
    except (OSError, TimeoutError):
        return False
    return answer.split(b"\r\n", 1)[0].split()[1:2] == [b"200"]
