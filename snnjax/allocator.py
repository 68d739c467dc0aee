"""Keeping host memory between XLA:CPU calls (glibc only).

XLA:CPU allocates an executable's temporaries at every call and frees them when it returns.
glibc serves a block above its mmap threshold (at most 32 MiB) with a fresh ``mmap`` and
unmaps it on ``free``, so a step whose temporaries exceed that faults every page of them in
again at every call (docs/schedules.md and BENCHMARKS.md give the cost).
:func:`retain_freed_memory` tells glibc to serve every block from its heaps and to keep
what is freed, so the next call reuses the same pages.

The setting is the whole process's: the library never makes it on its own. Call it once, at
the start of a training script or notebook; it changes no computed value.
"""

from __future__ import annotations

import ctypes

# glibc's malloc.h
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_INT_MAX = 2**31 - 1


def retain_freed_memory() -> bool:
    """Make glibc keep freed memory in the process instead of returning it to the system.

    Sets ``M_MMAP_MAX = 0`` (no block is served by its own ``mmap``; large ones come from
    malloc's heaps) and ``M_TRIM_THRESHOLD`` to its largest value (freed memory at a heap's
    top is kept, up to 2 GiB), with ``mallopt``. The process's resident memory then stays at
    its peak once reached, and repeated jitted steps on the CPU stop page-faulting their
    temporaries in. Environment variables made before Python starts do the same
    (``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=2147483647``);
    ``GLIBC_TUNABLES=glibc.malloc.hugetlb=1`` (huge pages, glibc ≥ 2.35) cuts the faults too.

    Returns:
        True if both settings were made; False where the C library is not glibc (macOS,
        musl, Windows): nothing is changed there.
    """
    try:
        libc = ctypes.CDLL(None)  # the process's own symbols
    except (OSError, TypeError):  # Windows has no such handle
        return False
    if not hasattr(libc, "gnu_get_libc_version") or not hasattr(libc, "mallopt"):
        return False
    return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(
        libc.mallopt(_M_TRIM_THRESHOLD, _INT_MAX))
