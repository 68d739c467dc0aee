"""An on-disk cache of converted arrays, written atomically.

A cache file is ``<dir>/<stem>-<key>.npz`` where ``key`` hashes every setting that shaped its
content (and the raw files' names, sizes and times). It is written to a temporary file in the
same directory, flushed and fsynced, then renamed over the final name with ``os.replace``, so
a conversion killed at any point leaves either no file under the final name or a complete
one: never a half file that a later run reads as good. Leftover temporary files
(``.*.tmp``) are never read.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
import zipfile

import numpy as np

from snnjax.data.errors import CorruptFileError

__all__ = ["cache_key", "write_npz_atomic", "read_npz"]

# Test hook (set only by the test suite): seconds to pause halfway through writing a cache
# file, so a test can kill the writer while the temporary file is incomplete.
_PAUSE_ENV = "SNNJAX_TEST_CACHE_WRITE_PAUSE"


def cache_key(settings: dict) -> str:
    """A short stable hash of JSON-serialisable ``settings``."""
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class _PausingFile:
    """A file wrapper that sleeps once, after the first write (the test hook above)."""

    def __init__(self, f, pause: float):
        self._f, self._pause, self._paused = f, pause, False

    def write(self, data) -> int:
        n = self._f.write(data)
        if not self._paused:
            self._paused = True
            self._f.flush()
            time.sleep(self._pause)
        return n

    def __getattr__(self, name):
        return getattr(self._f, name)


def _fsync_dir(directory: str) -> None:
    # Makes the rename itself durable; not possible on every platform, hence best effort.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_npz_atomic(path: str, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """Write ``arrays`` and ``meta`` (JSON) to ``path`` as an uncompressed ``.npz``, atomically.

    Args:
      path: the final file name; its directory is created if needed.
      arrays: name -> array (names must not be ``"meta"``).
      meta: settings stored alongside and checked by :func:`read_npz`.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            pause = float(os.environ.get(_PAUSE_ENV, "0") or 0)
            out = _PausingFile(f, pause) if pause > 0 else f
            np.savez(out, meta=np.array(json.dumps(meta, sort_keys=True)), **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a cache is as readable as the data
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)


def read_npz(path: str, keys: tuple[str, ...], meta: dict) -> dict[str, np.ndarray]:
    """Read ``keys`` from a cache file written by :func:`write_npz_atomic`.

    Raises:
      CorruptFileError: the file is unreadable, lacks a key, or was written for other
        settings (the message names the file and says to delete it).
    """
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("meta", *keys) if k not in z.files]
            if missing:
                raise ValueError(f"missing arrays {missing}")
            if json.loads(str(z["meta"])) != json.loads(json.dumps(meta, sort_keys=True)):
                raise ValueError("written for other settings")
            return {k: z[k] for k in keys}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as e:
        raise CorruptFileError(path, f"unreadable frame cache ({e}); delete it to rebuild") from e
