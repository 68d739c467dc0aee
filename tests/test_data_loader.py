"""The one batch iterator: encodings, augmentation, normalisation, resumption, prefetch,
per-host shards."""

import gc
import threading

import numpy as np
import pytest

from snnjax import data
from snnjax.data import augment as aug


def _images(n=10, h=6, w=5, c=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, h, w, c), dtype=np.uint8), rng.integers(0, 4, n)


def test_random_crop_is_a_window_of_the_zero_padded_image():
    x = np.random.default_rng(0).random((7, 5, 6, 2)).astype(np.float32)
    out = aug.random_crop(x, 2, np.random.default_rng(1))
    rng = np.random.default_rng(1)  # the same draws, in the same order
    dy, dx = rng.integers(0, 5, size=7), rng.integers(0, 5, size=7)
    padded = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)))
    for i in range(7):
        np.testing.assert_array_equal(out[i], padded[i, dy[i]:dy[i] + 5, dx[i]:dx[i] + 6])
    assert aug.random_crop(x, 0, np.random.default_rng(1)) is x


def test_flip_and_cutout():
    x = np.random.default_rng(0).random((64, 4, 5, 1)).astype(np.float32)
    out = aug.random_flip(x, np.random.default_rng(2))
    flipped = [np.array_equal(o, i[:, ::-1]) for o, i in zip(out, x)]
    kept = [np.array_equal(o, i) for o, i in zip(out, x)]
    assert all(f or k for f, k in zip(flipped, kept)) and 10 < sum(flipped) < 54

    ones = np.ones((50, 8, 8, 3), np.float32)
    cut = aug.cutout(ones, 4, np.random.default_rng(3))
    zeros = (cut == 0).all(axis=-1).sum(axis=(1, 2))
    assert zeros.max() == 16 and zeros.min() >= 4  # clipped at the border, at least a corner
    for img in cut:  # the zeros form one axis-aligned rectangle
        rows, cols = np.nonzero((img == 0).all(-1))
        assert len(rows) == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)


def test_uint8_images_scaled_augmented_normalised_per_batch():
    x, y = _images()
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.5)
    ds = data.ArrayDataset(x, y, 4, "toy", mean=mean, std=std,
                           augment=data.Augment(crop_padding=1, flip=True))
    loader = data.Loader(ds, batch_size=4, T=3, shuffle=False, prefetch=0)
    xs, _ = next(loader.epoch(0))
    assert xs.shape == (3, 4, 6, 5, 3) and xs.dtype == np.float32
    rng = np.random.default_rng((0, 0, 0))
    draws = ds.augment.draw(rng, 4, (6, 5))
    expected = ds.augment.geometric(x[:4].astype(np.float32) / 255, draws)
    expected = (expected - np.array(mean, np.float32)) / np.array(std, np.float32)
    np.testing.assert_allclose(xs[2], expected, rtol=1e-6)
    np.testing.assert_array_equal(xs[0], xs[2])

    plain = data.Loader(ds, batch_size=4, T=2, shuffle=False, augment=False, normalize=False)
    np.testing.assert_allclose(next(iter(plain))[0][0], x[:4] / 255, rtol=1e-6)


def test_poisson_sees_unnormalised_intensities():
    x = np.ones((4, 3, 3, 1), np.uint8) * 255  # intensity 1: a spike at every step
    ds = data.ArrayDataset(x, np.zeros(4, int), 1, "white", mean=(0.5,), std=(0.1,))
    xs, _ = next(iter(data.Loader(ds, batch_size=4, T=5, encoding="poisson")))
    np.testing.assert_array_equal(xs, np.ones_like(xs))


def test_digits_batches_are_the_direct_encoding_of_the_stored_images():
    ds = data.load("digits", "train")
    assert ds.mean is None and ds.augment is None
    loader = data.Loader(ds, batch_size=32, T=4, seed=0)
    order = np.random.default_rng((0, 0)).permutation(len(ds))
    xs, ys = next(iter(loader))
    np.testing.assert_array_equal(xs[3], ds.x[order[:32]])
    np.testing.assert_array_equal(ys, ds.y[order[:32]])


def test_resumed_epoch_repeats_augmentation_and_poisson_draws():
    x, y = _images(n=20)
    ds = data.ArrayDataset(x, y, 4, "toy", augment=data.Augment(crop_padding=2, flip=True,
                                                                 cutout=2))
    loader = data.Loader(ds, batch_size=3, T=2, encoding="poisson", seed=7)
    full = list(loader.epoch(4))
    resumed = list(loader.epoch(4, start=2))
    assert len(full) == 6 and len(resumed) == 4
    for (a, ay), (b, by) in zip(full[2:], resumed):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(ay, by)
    other = list(loader.epoch(5))
    assert not np.array_equal(full[0][0], other[0][0])


def test_drop_last_and_len():
    x, y = _images(n=10)
    ds = data.ArrayDataset(x, y, 4, "toy")
    assert len(data.Loader(ds, batch_size=4, T=1)) == 2
    keep = data.Loader(ds, batch_size=4, T=1, drop_last=False, shuffle=False)
    sizes = [len(b[1]) for b in keep.epoch(0)]
    assert sizes == [4, 4, 2]


def _prefetch_threads():
    return [t for t in threading.enumerate() if t.name == "snnjax-prefetch" and t.is_alive()]


def test_abandoned_epoch_stops_its_prefetch_thread():
    x, y = _images(n=64)
    loader = data.Loader(data.ArrayDataset(x, y, 4, "toy"), batch_size=2, T=2, prefetch=1)
    before = set(_prefetch_threads())
    it = loader.epoch(0)
    next(it)
    thread = it.thread
    assert thread.is_alive()  # blocked on a full queue, 30 batches to go
    it.close()
    assert not thread.is_alive()

    it = loader.epoch(1)
    next(it)
    thread = it.thread
    del it  # dropped without close(), as `next(loader.epoch(0))` does
    gc.collect()
    thread.join(5.0)
    assert not thread.is_alive()
    assert set(_prefetch_threads()) <= before


def test_producer_errors_reach_the_consumer():
    class Broken:
        shape = (6, 2, 2, 1)

        def __len__(self):
            return 6

        def __getitem__(self, idx):
            raise OSError("disk on fire")

    ds = data.ArrayDataset(Broken(), np.zeros(6, int), 1, "broken")
    it = data.Loader(ds, batch_size=2, T=1).epoch(0)
    with pytest.raises(OSError, match="disk on fire"):
        next(it)
    it.thread.join(5.0)
    assert not it.thread.is_alive()


def test_dataset_validation():
    x, y = _images(n=4)
    with pytest.raises(ValueError, match="labels"):
        data.ArrayDataset(x, y + 10, 4, "toy")
    with pytest.raises(ValueError, match="both mean and std"):
        data.ArrayDataset(x, y, 4, "toy", mean=(0.1,))
    with pytest.raises(ValueError, match=">= 0"):
        data.Augment(crop_padding=-1)


def test_augment_draws_match_the_single_functions():
    x = np.random.default_rng(0).random((9, 6, 5, 2)).astype(np.float32)
    a = data.Augment(crop_padding=2, flip=True, cutout=3)
    draws = a.draw(np.random.default_rng(4), 9, (6, 5))
    rng = np.random.default_rng(4)  # the same draws, in the same order
    expected = aug.random_flip(aug.random_crop(x, 2, rng), rng)
    np.testing.assert_array_equal(a.geometric(x, draws), expected)
    np.testing.assert_array_equal(a.erase(x, draws), aug.cutout(x, 3, rng))
    part = draws.take(slice(3, 6))
    np.testing.assert_array_equal(a.geometric(x[3:6], part), expected[3:6])


class Recorded:
    """An array-like that remembers which rows were read."""

    def __init__(self, x):
        self.x, self.read = x, []
        self.shape, self.dtype = x.shape, x.dtype

    def __len__(self):
        return len(self.x)

    def __getitem__(self, idx):
        self.read.extend(np.asarray(idx).tolist())
        return self.x[idx]


def _sharded(ds, hosts, **kw):
    return [data.Loader(ds, shard_index=i, shard_count=hosts, **kw) for i in range(hosts)]


@pytest.mark.parametrize("kind", ["events", "augmented", "poisson", "partial_last"])
def test_hosts_read_disjoint_rows_whose_union_is_the_global_batch(kind):
    rng = np.random.default_rng(0)
    kw = dict(batch_size=6, T=3, seed=5, prefetch=0)
    if kind == "events":
        ds = data.ArrayDataset(Recorded(rng.integers(0, 4, (20, 3, 4, 4, 2)).astype(np.int16)),
                               rng.integers(0, 3, 20), 3, "ev", temporal=True)
    else:
        x, y = _images(n=20)
        ds = data.ArrayDataset(Recorded(x), y, 4, "toy", mean=(0.5,) * 3, std=(0.2,) * 3,
                               augment=data.Augment(crop_padding=1, flip=True, cutout=2))
        if kind == "poisson":
            kw["encoding"] = "poisson"
        if kind == "partial_last":
            kw["drop_last"] = False
            kw["batch_size"] = 9  # 20 = 9 + 9 + 2: the last batch splits 1 + 1 + 0
    one = list(data.Loader(ds, **kw).epoch(3))
    ds.x.read.clear()
    hosts = _sharded(ds, 3, **kw)
    parts = []
    for h in hosts:
        ds.x.read.clear()
        parts.append(list(h.epoch(3)))
        reads = list(ds.x.read)
        # This host read only its own rows: a third of every batch.
        order, B = np.random.default_rng((5, 3)).permutation(20), kw["batch_size"]
        mine = [order[b * B:(b + 1) * B][h._rows(len(ys))] for b, (_, ys) in enumerate(one)]
        assert reads == np.concatenate(mine).tolist()
    assert all(len(p) == len(one) for p in parts)
    for b, (xs, ys) in enumerate(one):
        sizes = [len(p[b][1]) for p in parts]
        assert sum(sizes) == len(ys)
        np.testing.assert_array_equal(np.concatenate([p[b][1] for p in parts]), ys)
        np.testing.assert_array_equal(np.concatenate([p[b][0] for p in parts], axis=1), xs)
    if kind == "partial_last":
        assert [len(p[-1][1]) for p in parts] == [1, 1, 0]


def test_process_shard_reads_jax_process_index(monkeypatch):
    import jax

    x, y = _images(n=16)
    ds = data.ArrayDataset(x, y, 4, "toy")
    glob = list(data.Loader(ds, batch_size=8, T=2, seed=1).epoch(0))
    got = []
    for pid in range(2):
        monkeypatch.setattr(jax, "process_index", lambda pid=pid: pid)
        monkeypatch.setattr(jax, "process_count", lambda: 2)
        assert data.process_shard() == {"shard_index": pid, "shard_count": 2}
        got.append(list(data.Loader(ds, batch_size=8, T=2, seed=1, **data.process_shard())
                        .epoch(0)))
    for b, (xs, ys) in enumerate(glob):
        np.testing.assert_array_equal(np.concatenate([got[0][b][0], got[1][b][0]], axis=1), xs)
        np.testing.assert_array_equal(np.concatenate([got[0][b][1], got[1][b][1]]), ys)
    # Resuming a host's epoch mid-way gives the same batches.
    h1 = data.Loader(ds, batch_size=8, T=2, seed=1, shard_index=1, shard_count=2)
    np.testing.assert_array_equal(next(h1.epoch(0, start=1))[0], got[1][1][0])


def test_loader_with_data_parallel_yields_global_arrays():
    class Stub:
        """Host 1 of 2 (devices owning rows 4:8 of 8); from_local records what it got."""

        def local_rows(self, batch_size):
            return slice(batch_size // 2, batch_size)

        def from_local(self, xs, ys, batch_size):
            return ("global", xs, batch_size), ("global", ys, batch_size)

    x, y = _images(n=16)
    ds = data.ArrayDataset(x, y, 4, "toy")
    loader = data.Loader(ds, batch_size=8, T=2, data_parallel=Stub(), prefetch=0)
    assert (loader.shard_index, loader.shard_count) == (1, 2)
    (tag, xs, B), (_, ys, _) = next(loader.epoch(0))
    full_xs, full_ys = next(data.Loader(ds, batch_size=8, T=2, prefetch=0).epoch(0))
    assert tag == "global" and B == 8
    np.testing.assert_array_equal(xs, full_xs[:, 4:])
    np.testing.assert_array_equal(ys, full_ys[4:])
    with pytest.raises(ValueError, match="drop_last"):
        data.Loader(ds, batch_size=8, T=2, data_parallel=Stub(), drop_last=False)


def test_shard_validation():
    x, y = _images(n=16)
    ds = data.ArrayDataset(x, y, 4, "toy")
    with pytest.raises(ValueError, match="multiple of the host count"):
        data.Loader(ds, batch_size=6, T=2, shard_count=4)
    with pytest.raises(ValueError, match="shard_index"):
        data.Loader(ds, batch_size=8, T=2, shard_index=2, shard_count=2)
