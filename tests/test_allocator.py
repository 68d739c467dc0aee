"""snnjax.allocator: glibc keeps freed large blocks, so they do not fault in again."""

import ctypes
import subprocess
import sys

import pytest

try:
    GLIBC = hasattr(ctypes.CDLL(None), "gnu_get_libc_version")
except (OSError, TypeError):  # no handle for the process's own symbols (Windows)
    GLIBC = False

# A 64 MiB block (above glibc's largest mmap threshold, as a large step's XLA temporaries
# are) is allocated, written, freed, then allocated and written again: the minor page faults
# of the second round. Run in a fresh process, since the setting is the whole process's.
SCRIPT = """
import resource, sys
import numpy as np
if sys.argv[1] == "retain":
    from snnjax.allocator import retain_freed_memory
    assert retain_freed_memory()
n = 16 * 2**20
a = np.ones(n, np.float32); del a
r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
a = np.ones(n, np.float32)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0)
"""


def _faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True,
                         text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_retained_block_does_not_fault_in_again():
    default, retained = _faults("default"), _faults("retain")
    # Unmapped and mapped afresh: at least one fault per page, 2 MiB pages at the largest
    # (numpy asks for transparent huge pages).
    assert default >= 64 // 2
    assert retained < default / 10


@pytest.mark.skipif(GLIBC, reason="only where the C library is not glibc")
def test_returns_false_without_glibc():
    from snnjax.allocator import retain_freed_memory

    assert retain_freed_memory() is False
