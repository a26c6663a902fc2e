"""The server's heap: glibc's malloc arenas capped, and freed pages given back after a run."""

import subprocess
import sys
import textwrap

import pytest

from cnnviz.runtime import _libc

pytestmark = pytest.mark.skipif(_libc() is None, reason="glibc's malloc only")


def _run(code: str, env: dict | None = None) -> str:
    import os

    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                            env={**os.environ, **(env or {})}, timeout=120, check=True)
    return result.stdout.strip()


def test_the_arena_cap_is_set_unless_the_host_set_it():
    code = "from cnnviz.runtime import limit_malloc_arenas; print(limit_malloc_arenas())"
    assert _run(code) == "True"
    assert _run(code, {"MALLOC_ARENA_MAX": "4"}) == "True"


def test_freed_pages_in_the_middle_of_the_heap_go_back_to_the_system():
    # 100 MB of 1 KB blocks freed but the last: glibc keeps them (the last block pins the heap's top)
    # until malloc_trim hands the free pages back.
    code = """
        import ctypes
        import psutil
        from cnnviz.runtime import _libc, release_free_memory
        libc = _libc()
        libc.malloc.restype = ctypes.c_void_p
        libc.free.argtypes = [ctypes.c_void_p]
        blocks = [libc.malloc(1024) for _ in range(100_000)]
        for address in blocks:
            ctypes.memset(address, 1, 1024)
        for address in blocks[:-1]:
            libc.free(address)
        before = psutil.Process().memory_info().rss
        release_free_memory()
        after = psutil.Process().memory_info().rss
        print((before - after) // 2**20)
    """
    assert int(_run(code)) >= 50  # MB given back of the ~100 MB freed
