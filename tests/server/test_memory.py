"""The server's native memory policy (mcp_server/memory.py), checked in fresh processes against glibc itself."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
ENV = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}


ARENA_PROBE = """
import ctypes, sys, tempfile, threading
from mcp_server.memory import limit_malloc_arenas
capped = limit_malloc_arenas() if sys.argv[1] == "cap" else False
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.fopen.restype = ctypes.c_void_p
barrier = threading.Barrier(8)
def work():
    libc.malloc(4096)  # a thread's first malloc picks its arena
    barrier.wait()  # all 8 threads alive at once
threads = [threading.Thread(target=work) for _ in range(8)]
[t.start() for t in threads]
[t.join() for t in threads]
path = tempfile.NamedTemporaryFile(delete=False).name
fp = libc.fopen(path.encode(), b"w")
libc.malloc_info(0, ctypes.c_void_p(fp))
libc.fclose(ctypes.c_void_p(fp))
print(capped, open(path).read().count("<heap nr="))
"""


def test_the_server_caps_malloc_arenas_so_freed_memory_is_not_kept_per_thread():
    def heaps(mode: str) -> tuple[str, int]:
        out = subprocess.run(
            [sys.executable, "-c", ARENA_PROBE, mode], capture_output=True, text=True, env=ENV
        )
        capped, count = out.stdout.split()
        return capped, int(count)

    assert heaps("cap") == ("True", 2)
    assert heaps("none")[1] > 2  # without the cap, the 8 threads get arenas of their own


TRIM_PROBE = """
import ctypes
from mcp_server.memory import release_freed_memory
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
def rss_kb():
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS")).split()[1])
blocks = [libc.malloc(4000) for _ in range(50_000)]  # 200 MB of small blocks on the main heap
for b in blocks:
    ctypes.memset(b, 1, 4000)
for b in blocks[:-1]:  # all freed but the last: the heap's top stays in use, so free() alone gives nothing back
    libc.free(ctypes.c_void_p(b))
before = rss_kb()
release_freed_memory()
print(before, rss_kb())
"""


def test_releasing_freed_memory_after_a_call_gives_its_pages_back():
    out = subprocess.run(
        [sys.executable, "-c", TRIM_PROBE], capture_output=True, text=True, env=ENV, check=True
    )
    before, after = map(int, out.stdout.split())
    assert before - after > 150_000, (before, after)  # KB: most of the 200 MB freed in the middle of the heap
