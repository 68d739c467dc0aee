"""The errors the data layer raises at its public boundary.

Both subclass the built-in errors the CLI already reports cleanly (``FileNotFoundError``,
``ValueError``), so callers that catch those keep working.
"""

from __future__ import annotations

__all__ = ["DatasetNotFoundError", "CorruptFileError"]


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are not where they should be; the message says what to get and where."""


class CorruptFileError(ValueError):
    """A dataset file (or a frame cache) is truncated or unreadable; the message names it."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        super().__init__(f"{self.path}: {reason}")
