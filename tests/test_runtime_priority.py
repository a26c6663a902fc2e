"""run_at_low_priority: the work runs in a niced thread (and so do the torch threads it starts), its
result and its errors come back, and the caller's own priority is untouched."""

from __future__ import annotations

import os
import threading

import pytest
import torch

from cnnviz.runtime import LOW_PRIORITY_NICE, run_at_low_priority

pytestmark = pytest.mark.skipif(not hasattr(os, "setpriority"), reason="thread priorities are Linux's")


def _nice(thread_id: int) -> int:
    return os.getpriority(os.PRIO_PROCESS, thread_id)


def _task_ids() -> set[int]:
    return {int(name) for name in os.listdir("/proc/self/task")}


def test_runs_niced_and_returns_its_result() -> None:
    caller = _nice(threading.get_native_id())
    nice, thread = run_at_low_priority(lambda: (_nice(threading.get_native_id()), threading.get_native_id()))
    assert nice == max(LOW_PRIORITY_NICE, caller)
    assert thread != threading.get_native_id()
    assert _nice(threading.get_native_id()) == caller


def test_never_raises_a_priority_back() -> None:
    caller = _nice(threading.get_native_id())
    assert run_at_low_priority(lambda: _nice(threading.get_native_id()), nice=1) == max(1, caller)


def test_torch_threads_started_from_it_inherit_the_priority() -> None:
    def convolve() -> dict[int, int]:
        before = _task_ids()
        torch.nn.functional.conv2d(torch.randn(64, 32, 32, 32), torch.randn(32, 32, 3, 3)).sum()
        return {task: _nice(task) for task in _task_ids() - before}

    workers = run_at_low_priority(convolve, threads=2)
    assert workers, "torch started no worker thread for a 2-thread convolution"
    assert all(nice >= LOW_PRIORITY_NICE for nice in workers.values())


def test_errors_come_back_and_threads_are_restored() -> None:
    before = torch.get_num_threads()

    def fail(message: str) -> None:
        raise ValueError(message)

    with pytest.raises(ValueError, match="no such layer"):
        run_at_low_priority(fail, "no such layer", threads=1)
    assert run_at_low_priority(torch.get_num_threads, threads=1) == 1
    assert torch.get_num_threads() == before
