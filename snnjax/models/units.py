"""Helpers shared by the papers' networks."""

from __future__ import annotations

__all__ = ["scaled"]


def scaled(channels: int, width: float) -> int:
    """``channels × width``, at least 1 (the ``width`` multiplier of every factory)."""
    if not width > 0:
        raise ValueError(f"width multiplier must be > 0, got {width}")
    return max(1, int(round(channels * width)))
