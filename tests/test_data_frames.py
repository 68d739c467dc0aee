"""Events -> frames (SpikingJelly's split by number / by time) and the bilinear resize.

References are written here independently of snnjax.data.frames: the binning as SpikingJelly's
``cal_fixed_frames_number_segment_index`` defines it (one event at a time), the resize as
``jax.image.resize``, PIL's filter and torch's ``F.interpolate`` formula.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from snnjax.data import frames as frames_lib
from snnjax.data import synthetic


def spikingjelly_frames(ev, sensor_size, T, split_by="number"):
    """``[T, H, W, 2]`` counts: segment j = [j_l, j_r) as SpikingJelly cuts it, event by event."""
    w, h = sensor_size
    n = len(ev["t"])
    if split_by == "number":
        d = n // T
        j_l = [j * d for j in range(T)]
        j_r = [(j + 1) * d if j < T - 1 else n for j in range(T)]
    else:
        t = np.asarray(ev["t"])
        dt = (t[-1] - t[0]) // T
        j_l, j_r = [], []
        for j in range(T):
            inside = np.flatnonzero((t >= t[0] + dt * j) & (t < t[0] + dt * (j + 1)))
            j_l.append(inside[0])  # SpikingJelly: an empty segment is an error
            j_r.append(inside[-1] + 1 if j < T - 1 else n)
    out = np.zeros((T, h, w, 2), np.int64)
    for j in range(T):
        for k in range(j_l[j], j_r[j]):
            out[j, ev["y"][k], ev["x"][k], ev["p"][k]] += 1
    return out


@pytest.mark.parametrize("n, T", [(103, 4), (250, 7), (3, 4), (0, 5), (12, 4), (7, 1)])
def test_split_by_number_keeps_the_remainder_in_the_last_frame(n, T):
    ev = synthetic.random_events(n, (9, 6), np.random.default_rng(n))
    got = frames_lib.to_frames(ev, sensor_size=(9, 6), T=T)
    assert got.shape == (T, 6, 9, 2)
    np.testing.assert_array_equal(got, spikingjelly_frames(ev, (9, 6), T))
    assert got.sum() == n  # nothing dropped
    per_frame = got.sum(axis=(1, 2, 3))
    assert (per_frame[:-1] == n // T).all() and per_frame[-1] == n // T + n % T


def test_fewer_events_than_frames_all_land_in_the_last_frame():
    ev = synthetic.random_events(3, (9, 6), np.random.default_rng(0))
    got = frames_lib.to_frames(ev, sensor_size=(9, 6), T=5)
    assert got[:4].sum() == 0 and got[4].sum() == 3


def test_split_by_time_equal_durations():
    rng = np.random.default_rng(1)
    ev = synthetic.random_events(500, (9, 6), rng, t_max=10_000)
    got = frames_lib.to_frames(ev, sensor_size=(9, 6), T=6, split_by="time")
    np.testing.assert_array_equal(got, spikingjelly_frames(ev, (9, 6), 6, "time"))
    assert got.sum() == 500
    lo, hi = frames_lib.segment_bounds(ev["t"], 6, "time")
    dt = (ev["t"][-1] - ev["t"][0]) // 6
    for j in range(5):  # frame j holds exactly the events of its time window
        t = ev["t"][lo[j]:hi[j]]
        assert (t >= ev["t"][0] + j * dt).all() and (t < ev["t"][0] + (j + 1) * dt).all()


def test_split_by_time_edge_cases():
    ev = {"x": np.zeros(4, int), "y": np.zeros(4, int), "p": np.ones(4, int),
          "t": np.array([0, 0, 50, 50])}
    # A window without events is a zero frame (SpikingJelly raises there).
    got = frames_lib.to_frames(ev, sensor_size=(2, 2), T=4, split_by="time")
    np.testing.assert_array_equal(got[:, 0, 0, 1], [2, 0, 0, 2])
    # All events at one instant: Δ = 0, everything in the last frame.
    ev["t"] = np.full(4, 7)
    got = frames_lib.to_frames(ev, sensor_size=(2, 2), T=3, split_by="time")
    np.testing.assert_array_equal(got[:, 0, 0, 1], [0, 0, 4])
    ev["t"] = np.array([0, 5, 3, 9])
    with pytest.raises(ValueError, match="time order"):
        frames_lib.to_frames(ev, sensor_size=(2, 2), T=3, split_by="time")
    with pytest.raises(ValueError, match="split_by"):
        frames_lib.segment_bounds(ev["t"], 3, "duration")


def test_polarity_channels_and_rows_are_y():
    ev = {"x": np.array([2, 0]), "y": np.array([1, 0]), "p": np.array([0, 1]),
          "t": np.array([0, 1])}
    got = frames_lib.to_frames(ev, sensor_size=(3, 2), T=1)
    assert got[0, 1, 2, 0] == 1 and got[0, 0, 0, 1] == 1 and got.sum() == 2
    ev["x"][0] = 3
    with pytest.raises(ValueError, match="x outside"):
        frames_lib.to_frames(ev, sensor_size=(3, 2), T=1)


def test_resize_is_the_antialiased_bilinear_of_jax_and_pil():
    counts = np.random.default_rng(2).poisson(1.5, (3, 128, 128, 2)).astype(np.float32)
    ours = frames_lib.resize_frames(counts, (48, 48))
    ref = np.asarray(jax.image.resize(jnp.asarray(counts), (3, 48, 48, 2), "bilinear"))
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, atol=1e-4)
    # Values are averaged, not summed: the mean count per pixel is kept.
    assert ours.mean() == pytest.approx(counts.mean(), rel=1e-2)

    Image = pytest.importorskip("PIL.Image")
    pil = np.stack([
        np.stack([np.asarray(Image.fromarray(counts[t, :, :, c], "F").resize(
            (48, 48), Image.Resampling.BILINEAR)) for c in range(2)], axis=-1)
        for t in range(3)
    ])
    np.testing.assert_allclose(ours, pil, atol=1e-5)


def torch_interpolate_bilinear(img, out_h, out_w):
    """torch ``F.interpolate(mode='bilinear', align_corners=False)`` on one [H, W] image."""
    h, w = img.shape

    def source(i, n_in, n_out):
        s = max((i + 0.5) * n_in / n_out - 0.5, 0.0)
        i0 = int(np.floor(s))
        return i0, min(i0 + 1, n_in - 1), s - i0

    out = np.zeros((out_h, out_w))
    for i in range(out_h):
        y0, y1, ly = source(i, h, out_h)
        for j in range(out_w):
            x0, x1, lx = source(j, w, out_w)
            out[i, j] = ((1 - ly) * ((1 - lx) * img[y0, x0] + lx * img[y0, x1])
                         + ly * ((1 - lx) * img[y1, x0] + lx * img[y1, x1]))
    return out


@pytest.mark.parametrize("shape, size", [((40, 40), (15, 15)), ((5, 7), (9, 13))])
def test_resize_without_antialias_is_torch_interpolate(shape, size):
    img = np.random.default_rng(3).poisson(2.0, (1, *shape, 1)).astype(np.float32)
    ours = frames_lib.resize_frames(img, size, antialias=False)[0, :, :, 0]
    np.testing.assert_allclose(ours, torch_interpolate_bilinear(img[0, :, :, 0], *size), atol=1e-5)
    # Downsampling by 8/3 differs from the antialiased (papers') resize.
    if shape[0] > size[0]:
        assert not np.allclose(ours, frames_lib.resize_frames(img, size)[0, :, :, 0], atol=1e-2)
