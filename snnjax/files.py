"""Folders a run will write to, checked before any work: by writing, not by reading
permission bits (root ignores them; a read-only mount does not show in them)."""

from __future__ import annotations

import os
import tempfile

__all__ = ["check_writable_folder"]


def check_writable_folder(folder: str | os.PathLike, *, what: str, create: bool = False) -> None:
    """Raise ValueError, in one line naming ``folder``, unless a file can be created in it.

    Creates and removes a probe file in ``folder``; with ``create``, first creates the
    folder (and its parents) if missing, as a checkpoint directory is. ``what`` says what
    the folder is for (``"checkpoints"``, ``"--out"``), for the message.
    """
    folder = os.path.abspath(os.fspath(folder))
    if create:
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as e:
            raise ValueError(f"cannot create the folder for {what}, {folder}: "
                             f"{e.strerror or e}") from None
    elif not os.path.isdir(folder):
        raise ValueError(f"cannot write {what}: directory {folder} does not exist")
    try:
        fd, probe = tempfile.mkstemp(prefix=".snnjax-write-probe-", dir=folder)
    except OSError as e:
        raise ValueError(f"cannot write {what} to {folder}: {e.strerror or e}") from None
    os.close(fd)
    os.remove(probe)
