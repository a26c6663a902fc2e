"""Where work runs: the device a run asks for, how many CPU threads it uses, and the process's heap."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import torch

T = TypeVar("T")

DEVICES = ("auto", "cpu", "cuda")
# glibc gives every thread that allocates at once an arena of its own, up to 8 per core, and keeps what
# each one freed: a hostile class on 2 cores (30 + 3 + 3 students, load test) peaked at 2,829 MB with
# the default and 2,569 MB with 2 arenas, against a 2,658 MB budget.
MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # mallopt's parameter number (malloc.h)


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas for this process (a server: many threads train, decode and draw), unless
    the host set ``MALLOC_ARENA_MAX`` itself. True when the cap is in force; False off glibc."""
    libc = _libc()
    if libc is None:
        return False
    if os.environ.get("MALLOC_ARENA_MAX"):
        return True  # glibc read it at start
    return bool(libc.mallopt(_M_ARENA_MAX, arenas))


def release_free_memory() -> bool:
    """Give the heap's free pages back to the system (glibc ``malloc_trim``), e.g. after a training
    run: the next big allocation then starts from what is really in use. False when nothing was released
    or off glibc."""
    libc = _libc()
    return bool(libc.malloc_trim(0)) if libc is not None else False


def resolve_device(name: str = "auto") -> torch.device:
    """"auto" picks CUDA when available; asking for CUDA without one is a friendly error."""
    if name not in DEVICES:
        raise ValueError(f"Unknown device {name!r}: choose auto, cpu or cuda.")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("No CUDA GPU is available here; use --device cpu (or auto).")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def device_name(device: torch.device) -> str:
    """"cpu (N threads)" or the GPU's marketing name."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_name(torch.get_num_threads())


def cpu_name(threads: int) -> str:
    """"cpu (1 thread)", "cpu (2 threads)"."""
    return f"cpu ({threads} thread{'s' if threads != 1 else ''})"


def available_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def spare_cores() -> int:
    """Cores no other work used over the last minute: every core less the 1-minute load average (to the
    nearest whole core), at least 1. Two OpenMP threads on a 2-core machine where something else runs
    wait for each other: the CIFAR-10 top images took 24 s on 2 threads there, 9 s on 1."""
    cores = available_cores()
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # not on a Unix
        return 1
    return max(1, min(cores, int(cores - load + 0.5)))


def training_threads(threads: int | None = None) -> int:
    """The intra-op threads a CPU run uses: ``threads``, else $OMP_NUM_THREADS when set (on a shared
    machine one thread per job avoids threads waiting for each other), else every core this process
    may run on."""
    if threads is not None:
        return max(1, threads)
    setting = os.environ.get("OMP_NUM_THREADS", "")
    if setting.isdigit() and int(setting) > 0:
        return int(setting)
    return available_cores()


def configure_cpu_threads(threads: int | None = None) -> int:
    """Make the calling thread use :func:`training_threads` threads; returns how many.

    Set every time, never assumed: with OpenMP a thread starts with the count last set by any
    thread (the predict page sets 1 for its own work), not the process's default.
    """
    count = training_threads(threads)
    torch.set_num_threads(count)
    return count


LOW_PRIORITY_NICE = 10  # training and explorer threads yield the CPU to other students' page reruns


def lower_this_threads_priority(nice: int = LOW_PRIORITY_NICE) -> None:
    """Nice the calling thread to at least ``nice`` (Linux: a thread id is a process id to setpriority;
    never raised back: an unprivileged process cannot). Elsewhere, or where not allowed, a no-op."""
    if hasattr(os, "setpriority") and hasattr(threading, "get_native_id"):
        try:
            thread = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, thread, max(nice, os.getpriority(os.PRIO_PROCESS, thread)))
        except OSError:
            pass


def run_at_low_priority(fn: Callable[..., T], *args: Any, nice: int = LOW_PRIORITY_NICE,
                        threads: int | None = None, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` in a fresh thread niced to ``nice``; its result, or its error raised here.

    A fresh thread because a niced thread can never be given its priority back, and the OpenMP workers
    torch starts from it inherit its niceness: the whole computation gives way to page reruns. With
    ``threads``, the thread runs torch on that many CPU threads (else on the count last set).
    """
    outcome: list[Any] = []
    failure: list[BaseException] = []

    def work() -> None:
        previous = torch.get_num_threads()
        try:
            lower_this_threads_priority(nice)
            if threads is not None:
                torch.set_num_threads(max(1, threads))
            outcome.append(fn(*args, **kwargs))
        except BaseException as err:  # handed to the caller's thread
            failure.append(err)
        finally:
            torch.set_num_threads(previous)  # a thread started later starts from the last count set

    worker = threading.Thread(target=work, name="cnnviz-low-priority")
    worker.start()
    worker.join()
    if failure:
        raise failure[0]
    return outcome[0]
