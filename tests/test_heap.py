"""rodentseg.heap: the heap keeps freed memory for the next batch, and trim_heap returns it."""

import subprocess
import sys
from pathlib import Path

import pytest

# After bound_heap, ten freed 4 MB blocks stay resident (the heap keeps them for reuse);
# trim_heap gives them back.
SCRIPT = """
import numpy as np
from rodentseg.heap import bound_heap, trim_heap
if not bound_heap():
    raise SystemExit(3)
def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
base = rss_mb()
blocks = [np.ones((4 << 20) // 8) for _ in range(10)]; del blocks
kept = rss_mb() - base
released = trim_heap()
print(kept, rss_mb() - base, released)
"""


@pytest.mark.skipif(sys.platform != "linux" or not Path("/proc/self/status").exists(),
                    reason="needs Linux /proc")
def test_heap_keeps_then_trims():
    r = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True)
    if r.returncode == 3:
        pytest.skip("this C library has no mallopt (not glibc)")
    assert r.returncode == 0, r.stderr
    kept, after, released = r.stdout.split()
    assert float(kept) > 30  # freed blocks stayed in the heap: the next batch reuses them
    assert float(after) < 5 and released == "True"  # and trim_heap returned them
