"""The errors and warnings the data layer raises at its public boundary.

The errors subclass the built-in errors the CLI already reports cleanly
(``FileNotFoundError``, ``ValueError``), so callers that catch those keep working.
"""

from __future__ import annotations

__all__ = [
    "DatasetNotFoundError", "CorruptFileError", "DatasetLayoutError", "CacheDirError",
    "ShortRecordingWarning", "DamagedCacheWarning",
]


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are not where they should be; the message says what to get and where."""


class _PathError(ValueError):
    """An error about one file or folder: ``path`` holds it, the message starts with it."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):  # picklable across worker processes despite the two-argument init
        return type(self), (self.path, str(self).removeprefix(f"{self.path}: "))


class CorruptFileError(_PathError):
    """A dataset file (or a frame cache) is empty, truncated or unreadable; the message names it."""


class DatasetLayoutError(_PathError):
    """A file or folder is misplaced or misnamed (unknown class folder, unparsable name, empty
    class folder, a split with no recordings); the message names it and says what is expected."""


class CacheDirError(ValueError):
    """The frame cache cannot be written where it would go; the message says how to move it."""


class ShortRecordingWarning(UserWarning):
    """Recordings with far fewer events than the rest of their split (truncated downloads)."""


class DamagedCacheWarning(UserWarning):
    """A frame cache file was unreadable and is being rebuilt."""
