"""Keep the C heap fast and flat over a long video (glibc only; elsewhere nothing happens).

glibc's malloc hands blocks above ``M_MMAP_THRESHOLD`` to ``mmap`` and gives free memory at the
top of the heap back to the system above ``M_TRIM_THRESHOLD``; by default both thresholds move
with the sizes freed so far (mallopt(3)). For the default model's batches (activations of
8-32 MB, freed after every call) that means page faults on every call, and a heap that slowly
fragments: over the 10,000-frame tracktor video ``rodentseg segment`` ran at 24.9 frames/s and
its peak RSS rose from 781 MB after 1,000 frames to 872 MB (ratio 1.12; 2 CPU threads).

- :func:`bound_heap` fixes the thresholds (which also turns their adjustment off): blocks up to
  32 MiB come from the heap, and the heap keeps its free memory for the next call. The same
  run: 32.3 frames/s, but peak RSS 881 -> 970 MB (1.10): the kept memory fragments.
  (A 256 KiB mmap threshold keeps RSS flat, 633-638 MB, at half the speed: every activation
  is faulted in anew.)
- :func:`trim_heap` (``malloc_trim(0)``) gives every free page back, holes in the middle of the
  heap included. Called every 1,024 frames on top of :func:`bound_heap`: 31.2 frames/s and
  peak RSS 863 -> 876 MB (1.015); every 256 frames: 29.8 frames/s, 798 -> 817 MB.
  ``rodentseg segment`` trims every 256 frames; ``benchmarks/segment_throughput.py`` on the whole
  video then gave 28.7 frames/s and 801 -> 836 MB (1.043). With the later weights (quarter-
  resolution head) four runs gave ratios of 1.013 to 1.144: single runs vary by several percent.
- What varied was fragmentation: frames and masks that outlive a batch sat between the model's
  activations in the main arena. ``segment_video`` now decodes, and finds and writes the
  animals, on two other threads (each gets its own arena), so the main arena holds the model's
  activations alone. Four runs: peak RSS 691-711 -> 699-724 MB (ratios 1.002-1.048) at
  27.9-30.7 frames/s, against 768-771 -> 782-794 MB (1.018, 1.030) at 28.8-30.2 frames/s for
  the single-arena loop on the same day: about 75 MB lower, the ratio still varies.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

_M_TRIM_THRESHOLD = -1  # from glibc's <malloc.h>
_M_MMAP_THRESHOLD = -3


@functools.cache
def _libc():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        libc.malloc_trim.argtypes, libc.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
    except (OSError, AttributeError, TypeError):
        return None
    return libc


@functools.cache
def bound_heap(mmap_threshold: int = 32 << 20, trim_threshold: int = 1 << 30) -> bool:
    """Fix glibc's mmap and trim thresholds for this process (once; later calls do nothing).

    Args:
        mmap_threshold: bytes; smaller blocks come from the heap (32 MiB is glibc's maximum).
        trim_threshold: bytes of free memory at the top of the heap above which it is given
            back to the system by ``free`` (:func:`trim_heap` gives it back regardless).

    Returns:
        True when both were set; False on a C library without ``mallopt`` (musl, macOS,
        Windows), where nothing changes.
    """
    libc = _libc()
    return libc is not None and bool(libc.mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and \
        bool(libc.mallopt(_M_TRIM_THRESHOLD, trim_threshold))


def trim_heap() -> bool:
    """Return the free pages of every malloc arena to the system (glibc ``malloc_trim(0)``).

    Returns:
        True when memory was released; False when there was none, or without glibc.
    """
    libc = _libc()
    return libc is not None and bool(libc.malloc_trim(0))
