"""Wall-clock timing for the benchmark commands."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_ms(work: Callable[[], object], repeats: int) -> float:
    """Median milliseconds of ``repeats`` calls of ``work``, after one warm-up call (imports, allocations)."""
    work()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)
