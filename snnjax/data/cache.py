"""An on-disk cache of converted arrays: written atomically, keyed by content, self-cleaning.

A cache file is ``<dir>/<stem>-<key>.npz`` where ``key`` hashes every setting that shaped its
content and the raw files' content digests (:func:`file_digests`). It is written to a
temporary file in the same directory, flushed and fsynced, then renamed over the final name
with ``os.replace``, so a conversion killed at any point leaves either no file under the
final name or a complete one: never a half file that a later run reads as good. Temporary
files are named ``.<name>~<host>~<pid>~<random>.tmp``; :func:`remove_stale_temps` deletes
those whose process is gone (or, from another host, that are a day old) and leaves the ones
a live conversion is still writing.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import json
import os
import re
import socket
import tempfile
import time
import zipfile

import numpy as np

from snnjax.data.errors import CacheDirError, CorruptFileError

__all__ = [
    "cache_key", "write_npz_atomic", "read_npz", "file_digests", "remove_stale_temps",
    "ensure_writable",
]

# Test hook (set only by the test suite): seconds to pause halfway through writing a cache
# file, so a test can kill the writer while the temporary file is incomplete.
_PAUSE_ENV = "SNNJAX_TEST_CACHE_WRITE_PAUSE"

_TEMP = re.compile(r"^\..+~(?P<host>[^~]*)~(?P<pid>\d+)~[^~]*\.tmp$")
# A temporary file of another machine (shared file system) is only removed once it is this
# old: its writer cannot be asked whether it is alive.
_FOREIGN_TEMP_AGE_S = 24 * 3600


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


def _host() -> str:
    return socket.gethostname().replace("~", "-")


def _write_atomic(path: str, write) -> None:
    """Call ``write(file)`` on a temporary file next to ``path``, then rename it to ``path``."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=directory, prefix=f".{os.path.basename(path)}~{_host()}~{os.getpid()}~", suffix=".tmp"
    )
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a cache is as readable as the data
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)


def write_npz_atomic(path: str, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """Write ``arrays`` and ``meta`` (JSON) to ``path`` as an uncompressed ``.npz``, atomically.

    Args:
      path: the final file name; its directory is created if needed.
      arrays: name -> array (names must not be ``"meta"``).
      meta: settings stored alongside and checked by :func:`read_npz`.
    """

    def write(f):
        pause = float(os.environ.get(_PAUSE_ENV, "0") or 0)
        out = _PausingFile(f, pause) if pause > 0 else f
        np.savez(out, meta=np.array(json.dumps(meta, sort_keys=True)), **arrays)

    _write_atomic(path, write)


def read_npz(path: str, keys: tuple[str, ...], meta: dict) -> dict[str, np.ndarray]:
    """Read ``keys`` from a cache file written by :func:`write_npz_atomic`.

    Raises:
      CorruptFileError: the file is unreadable, lacks a key, or was written for other
        settings (the message names the file).
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
        raise CorruptFileError(path, f"unreadable cache file ({e})") from e


def _digest(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, lambda: hashlib.blake2b(digest_size=16)).hexdigest()


def _stat_key(st: os.stat_result) -> list[int]:
    # ctime changes with every write and no user-level tool can set it back (unlike mtime),
    # so an unchanged stat means unchanged content.
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def file_digests(paths: list[str], memo: str | None = None, *, threads: int = 8) -> list[str]:
    """Content digests (BLAKE2b-128, hex) of ``paths``, remembered across calls in ``memo``.

    A file is read again only when its size, mtime, ctime or inode differ from the memo's
    record, so a dataset is hashed once; a recording rewritten with its old size and mtime
    still gets a new digest (its ctime moved). The memo is a JSON file written atomically;
    an unreadable or unwritable memo only costs rehashing.
    """
    known: dict = {}
    if memo is not None:
        with contextlib.suppress(OSError, ValueError):
            with open(memo) as f:
                known = json.load(f)
    records = {}
    todo = []
    paths = [os.path.abspath(p) for p in paths]
    for p in paths:
        key = _stat_key(os.stat(p))
        rec = known.get(p)
        if isinstance(rec, list) and len(rec) == 5 and rec[:4] == key:
            records[p] = rec
        else:
            records[p] = [*key, None]
            todo.append(p)
    if todo:
        with concurrent.futures.ThreadPoolExecutor(max(1, min(threads, len(todo)))) as pool:
            for p, d in zip(todo, pool.map(_digest, todo)):
                records[p][4] = d
        if memo is not None:
            known.update(records)
            with contextlib.suppress(OSError):
                _write_atomic(memo, lambda f: f.write(json.dumps(known).encode()))
    return [records[p][4] for p in paths]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_temps(directory: str, *, now: float | None = None) -> list[str]:
    """Delete the temporary files that killed writers left in ``directory``; return them.

    A temporary file of this host is stale when its process no longer runs; one of another
    host when it is older than a day. Files that do not follow the naming scheme are kept.
    """
    now = time.time() if now is None else now
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    host = _host()
    for name in names:
        m = _TEMP.match(name)
        if m is None:
            continue
        path = os.path.join(directory, name)
        stale = False
        if m["host"] == host:
            stale = not _alive(int(m["pid"]))
        else:
            with contextlib.suppress(OSError):
                stale = now - os.stat(path).st_mtime > _FOREIGN_TEMP_AGE_S
        if stale:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
                removed.append(path)
    return removed


def ensure_writable(
    directory: str, *, flag: str = "--cache-dir DIR (Python: cache_dir=...)"
) -> None:
    """Create ``directory`` and check that files can be created in it.

    Raises:
      CacheDirError: one line naming the directory, the reason and ``flag`` to choose another.
    """
    try:
        os.makedirs(directory, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=directory, prefix=f".probe~{_host()}~{os.getpid()}~",
                                     suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise CacheDirError(
            f"cannot write the frame cache to {directory} ({reason}): pass {flag} to put it "
            "in a writable folder"
        ) from None
