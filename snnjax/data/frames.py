"""Event streams to frames as the papers' code makes them (SpikingJelly's rules), and resizing.

Binning (SpikingJelly's ``integrate_events_by_fixed_frames_number``): the ``N`` events of a
recording, in file order, are cut into ``T`` consecutive segments ``[lo_j, hi_j)`` and each
segment is counted per pixel and polarity.

- ``split_by="number"``: ``d = N // T``; segment ``j < T-1`` is ``[j·d, (j+1)·d)``, the last
  is ``[(T-1)·d, N)``: the remainder ``N mod T`` goes into the last frame and no event is
  dropped (with ``N < T`` every event lands in the last frame).
- ``split_by="time"``: ``Δ = (t_{N-1} - t_0) // T``; segment ``j < T-1`` holds the events
  with ``t_0 + j·Δ <= t < t_0 + (j+1)·Δ`` and the last one everything from ``t_0 + (T-1)·Δ``
  on. Timestamps must be non-decreasing. SpikingJelly raises on a segment without events;
  here that frame is zero.

Resizing (:func:`resize_frames`) averages count frames: the papers' CIFAR10-DVS code passes
each 128×128 frame through torchvision's ``Resize(48)`` on a PIL image, i.e. PIL's bilinear
filter, which on downsampling widens its triangle to the scale factor (antialiasing, the same
kernel as ``jax.image.resize(..., "bilinear")``). ``antialias=False`` gives torch's
``F.interpolate(mode="bilinear", align_corners=False)`` instead (two taps per axis). The
papers' pipeline also converts counts to 8-bit images first (``ToPILImage``: ×255 into
uint8, which overflows for counts above 1, and two channels taken as luminance + alpha);
we resize the counts themselves, in float.
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = ["SPLITS", "segment_bounds", "to_frames", "resize_weights", "resize_frames"]

SPLITS = ("number", "time")


def segment_bounds(
    t: np.ndarray, T: int, split_by: str = "number"
) -> tuple[np.ndarray, np.ndarray]:
    """The event index range ``[lo_j, hi_j)`` of each of the ``T`` frames.

    Args:
      t: ``[N]`` timestamps in file order (used by ``"time"``; ``"number"`` needs only N).
      T: number of frames, >= 1.
      split_by: ``"number"`` (equal event counts, remainder in the last frame) or ``"time"``
        (equal durations); see the module docstring.

    Returns:
      ``(lo [T], hi [T])`` int64, a partition of ``[0, N)``: ``lo[0] = 0``,
      ``hi[j] = lo[j+1]``, ``hi[T-1] = N``.

    Raises:
      ValueError: an unknown ``split_by``, ``T < 1``, or timestamps out of order (``"time"``).
    """
    if T < 1:
        raise ValueError(f"T (frames) must be >= 1, got {T}")
    n = len(t)
    if split_by == "number":
        lo = np.arange(T, dtype=np.int64) * (n // T)
    elif split_by == "time":
        t = np.asarray(t, dtype=np.int64)
        if n and (np.diff(t) < 0).any():
            raise ValueError("timestamps are not in time order (split_by='time' needs them sorted)")
        t0 = t[0] if n else 0
        dt = (t[-1] - t0) // T if n else 0
        lo = np.searchsorted(t, t0 + np.arange(T, dtype=np.int64) * dt, side="left")
        lo[0] = 0
    else:
        raise ValueError(f"split_by must be one of {SPLITS}, got {split_by!r}")
    hi = np.append(lo[1:], n).astype(np.int64)
    return lo.astype(np.int64), hi


def to_frames(
    events: np.ndarray,
    *,
    sensor_size: tuple[int, int],
    T: int,
    split_by: str = "number",
) -> np.ndarray:
    """Count one recording's events into ``T`` frames at the sensor's resolution.

    Args:
      events: structured array (or dict of arrays) with fields ``x``, ``y``, ``t``, ``p``
        (polarity 0/1 or bool), in file order.
      sensor_size: ``(W, H)`` of the sensor.
      T: number of frames.
      split_by: ``"number"`` or ``"time"`` (:func:`segment_bounds`).

    Returns:
      ``[T, H, W, 2]`` int64 counts; channel 0 counts polarity 0 (OFF), 1 counts ON; rows are y.

    Raises:
      ValueError: an event lies outside the sensor, a polarity is not 0/1, or (``"time"``)
        timestamps are out of order.
    """
    w, h = sensor_size
    x, y, p = (np.asarray(events[k]) for k in ("x", "y", "p"))
    n = len(x)
    if n:
        for name, v, top in (("x", x, w), ("y", y, h), ("p", p, 2)):
            if v.min() < 0 or v.max() >= top:
                raise ValueError(f"event {name} outside [0, {top}): [{v.min()}, {v.max()}]")
    lo, hi = segment_bounds(np.asarray(events["t"]) if split_by == "time" else x, T, split_by)
    # One bincount over (frame, y, x, p) flattened; built in place, as conversion speed is
    # bound by memory traffic.
    flat = y.astype(np.int64)
    flat *= w
    flat += x
    flat *= 2
    flat += p
    per_frame = h * w * 2
    for j in range(1, T):
        flat[lo[j]:hi[j]] += j * per_frame
    return np.bincount(flat, minlength=T * per_frame).reshape(T, h, w, 2)


def resize_weights(n_in: int, n_out: int, *, antialias: bool = True) -> np.ndarray:
    """The ``[n_out, n_in]`` matrix of 1-D bilinear resampling (rows sum to 1).

    Output pixel ``i`` is centred at ``c = (i + 0.5)·s`` in input coordinates (``s =
    n_in / n_out``) and weighs input pixel ``k`` by the triangle ``max(0, 1 - |k + 0.5 - c| /
    σ)``, normalised, with ``σ = max(s, 1)`` when ``antialias`` (PIL's ``BILINEAR``,
    ``jax.image.resize``) and ``σ = 1`` otherwise (torch ``F.interpolate(mode="bilinear",
    align_corners=False)``: the two nearest pixels, the source clamped at the first pixel).
    """
    if n_in < 1 or n_out < 1:
        raise ValueError(f"sizes must be >= 1, got {n_in} -> {n_out}")
    s = n_in / n_out
    centre = (np.arange(n_out) + 0.5) * s
    if not antialias:
        # torch clamps a source position left of the first pixel centre onto it.
        centre = np.maximum(centre, 0.5)
    support = max(s, 1.0) if antialias else 1.0
    dist = np.abs(np.arange(n_in)[None, :] + 0.5 - centre[:, None]) / support
    weights = np.maximum(0.0, 1.0 - dist)
    return weights / weights.sum(axis=1, keepdims=True)


@functools.lru_cache(maxsize=16)
def _cached_weights(n_in: int, n_out: int, antialias: bool) -> np.ndarray:
    weights = resize_weights(n_in, n_out, antialias=antialias)
    weights.flags.writeable = False  # shared between calls
    return weights


def resize_frames(
    frames: np.ndarray, size: tuple[int, int], *, antialias: bool = True
) -> np.ndarray:
    """Resize ``[..., H, W, C]`` frames to ``[..., H', W', C]`` bilinearly (values averaged).

    Separable: ``out = A_y · frame · A_xᵀ`` per frame and channel with
    :func:`resize_weights`, in float64, returned as float32. ``antialias=True`` is the
    papers' resize (PIL's bilinear filter, as torchvision's ``Resize`` applies it to PIL
    images); ``False`` is torch's ``F.interpolate(mode="bilinear", align_corners=False)``.

    Args:
      frames: ``[..., H, W, C]`` (counts or any numeric dtype).
      size: ``(H', W')``.
      antialias: widen the filter to the scale factor when downsampling.

    Returns:
      ``[..., H', W', C]`` float32.
    """
    h, w = frames.shape[-3], frames.shape[-2]
    out_h, out_w = size
    if (out_h, out_w) == (h, w):
        return frames.astype(np.float32)
    a_y = _cached_weights(h, out_h, antialias)
    a_x = _cached_weights(w, out_w, antialias)
    x = np.moveaxis(frames, -1, -3).astype(np.float64)  # [..., C, H, W]: matmul's layout
    out = a_y @ x @ a_x.T
    return np.ascontiguousarray(np.moveaxis(out, -3, -1), dtype=np.float32)
