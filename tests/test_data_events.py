"""Event datasets: tiny recordings in each real on-disk format, through the real code path.

Frames are checked against a reference computed here from the written events: SpikingJelly's
split by number (``d = N // T`` events per frame, the remainder ``N mod T`` in the last one),
counted one event at a time at the sensor's size, then, where the frame size differs, resized
with ``jax.image.resize(..., "bilinear")`` (PIL's antialiased bilinear: the papers' resize).
"""

import os
import socket

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from snnjax import data
from snnjax.data import events as events_lib
from snnjax.data import frames as frames_lib
from snnjax.data import synthetic


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any attempt to reach the network fails the test at once."""

    def refuse(*args, **kwargs):
        raise AssertionError("a data test tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def reference_frames(ev, sensor_size, size, T):
    """``[T, H', W', 2]``: SpikingJelly's split by number, then the papers' bilinear resize."""
    w, h = sensor_size
    n = len(ev["t"])
    d = n // T
    counts = np.zeros((T, h, w, 2), dtype=np.float64)
    for k in range(n):
        j = min(k // d, T - 1) if d else T - 1
        counts[j, ev["y"][k], ev["x"][k], ev["p"][k]] += 1
    if tuple(size) == (h, w):
        return counts
    return np.asarray(jax.image.resize(jnp.asarray(counts, jnp.float32), (T, *size, 2),
                                       "bilinear"))


def check_frames(ds, expected, spec, size, T):
    assert ds.temporal and ds.x.shape == (len(expected), T, *size, 2)
    assert ds.num_classes == spec.num_classes
    np.testing.assert_array_equal(ds.y, [label for _, label, _ in expected])
    resized = tuple(size) != spec.sensor_size[::-1]
    assert ds.x.dtype == (np.float32 if resized else np.int16)
    for i, (path, _, ev) in enumerate(expected):
        ref = reference_frames(ev, spec.sensor_size, size, T)
        if resized:
            np.testing.assert_allclose(ds.x[i], ref, atol=1e-4, err_msg=path)
        else:
            np.testing.assert_array_equal(ds.x[i], ref, err_msg=path)


WRITERS = {
    "nmnist": synthetic.write_nmnist_bin,
    "dvs_gesture": synthetic.write_dvs_gesture_npy,
    "cifar10_dvs": lambda p, ev: synthetic.write_aedat4(p, ev, (128, 128)),
}


def write(name, root, rng, per_class, num_classes=3, counts=(3, 0, 97, 250)):
    """A dataset whose first recordings have exactly ``counts`` events (the rest 120–300).

    With T = 4: 3 < T (all in the last frame), none, and 97, 250 not multiples of T.
    """
    written = synthetic.write_event_dataset(
        name, str(root), per_class=per_class, events=(120, 300), rng=rng, num_classes=num_classes,
    )
    spec = events_lib.SPECS[name]
    files = next(iter(written.values()))
    for j, n in enumerate(counts):
        path, label, _ = files[j]
        ev = synthetic.random_events(n, spec.sensor_size, rng)
        ev["t"] = ev["t"] // 1000 * 1000  # DVS Gesture's release stores milliseconds
        WRITERS[name](path, ev)
        files[j] = (path, label, ev)
    return written


def test_nmnist_frames_split_by_number_keep_the_remainder(tmp_path):
    written = write("nmnist", tmp_path, np.random.default_rng(0), per_class=2,
                    counts=(3, 97, 250))  # (no 0-event N-MNIST file: that is 0 bytes, refused)
    spec = events_lib.SPECS["nmnist"]
    with pytest.warns(data.ShortRecordingWarning, match="00000.bin \\(3 events\\)"):
        ds = data.load("nmnist", "train", data_dir=str(tmp_path), T=4)
    check_frames(ds, written["train"], spec, (34, 34), 4)
    # Frames hold every event; the 3-event recording has them all in its last frame.
    for i, (_, _, ev) in enumerate(written["train"]):
        assert ds.x[i].sum() == len(ev["t"])
    assert ds.x[0, :3].sum() == 0 and ds.x[0, 3].sum() == 3
    ds = data.load("nmnist", "test", data_dir=str(tmp_path), T=4)
    check_frames(ds, written["test"], spec, (34, 34), 4)


def test_dvs_gesture_frames_resized_bilinearly(tmp_path):
    written = write("dvs_gesture", tmp_path, np.random.default_rng(1), per_class=2)
    spec = events_lib.SPECS["dvs_gesture"]
    with pytest.warns(data.ShortRecordingWarning):
        ds = data.load("dvs-gesture", "train", data_dir=str(tmp_path), T=4, size=32)
    check_frames(ds, written["train"], spec, (32, 32), 4)
    assert ds.num_classes == 11
    ds = data.load("dvs-gesture", "test", data_dir=str(tmp_path), T=5)  # sensor size: counts
    check_frames(ds, written["test"], spec, (128, 128), 5)


def test_cifar10_dvs_48x48_is_a_bilinear_resize_and_first_90_percent_train(tmp_path):
    # 12 per class: the split must follow the recordings' numbers (…_2 before …_10), the
    # first round(0.9 · 12) = 11 of each class train, the last one tests.
    written = write("cifar10_dvs", tmp_path, np.random.default_rng(2), per_class=12)["all"]
    spec = events_lib.SPECS["cifar10_dvs"]
    by_class = {}
    for item in written:
        by_class.setdefault(item[1], []).append(item)
    train = [it for c in sorted(by_class) for it in by_class[c][:11]]
    test = [it for c in sorted(by_class) for it in by_class[c][11:]]
    with pytest.warns(data.ShortRecordingWarning):
        ds = data.load("cifar10_dvs", "train", data_dir=str(tmp_path), T=4)
    check_frames(ds, train, spec, (48, 48), 4)
    # A resize averages: a frame keeps its mean count per pixel (re-binning would sum).
    full = reference_frames(train[5][2], spec.sensor_size, (128, 128), 4)
    assert ds.x[5].mean() == pytest.approx(full.mean(), rel=0.05)
    ds = data.load("cifar10_dvs", "test", data_dir=str(tmp_path), T=3)
    check_frames(ds, test, spec, (48, 48), 3)
    assert [os.path.basename(p) for p, _, _ in test][0] == "cifar10_airplane_11.aedat4"


def test_split_by_time_through_the_loader(tmp_path):
    written = synthetic.write_event_dataset(
        "nmnist", str(tmp_path), per_class=1, events=400, rng=np.random.default_rng(3),
        num_classes=2,
    )
    by_time = data.load("nmnist", "train", data_dir=str(tmp_path), T=5, split_by="time")
    by_number = data.load("nmnist", "train", data_dir=str(tmp_path), T=5)
    for i, (_, _, ev) in enumerate(written["train"]):
        np.testing.assert_array_equal(
            by_time.x[i], frames_lib.to_frames(ev, sensor_size=(34, 34), T=5, split_by="time")
        )
    assert not np.array_equal(by_time.x, by_number.x)
    with pytest.raises(ValueError, match="split_by"):
        data.load("nmnist", "train", data_dir=str(tmp_path), T=5, split_by="duration")


def test_frames_are_cached_and_the_cache_follows_settings_and_content(tmp_path, monkeypatch):
    written = write("nmnist", tmp_path, np.random.default_rng(3), per_class=1, counts=())
    first = data.load("nmnist", "train", data_dir=str(tmp_path), T=4)
    cache = tmp_path / "snnjax_cache"
    assert len(list(cache.glob("nmnist-train-T4-34x34-*.npz"))) == 1

    def no_conversion(*args, **kwargs):
        raise AssertionError("converted again although a cache exists")

    real_convert = events_lib.convert
    monkeypatch.setattr(events_lib, "convert", no_conversion)
    again = data.load("nmnist", "train", data_dir=str(tmp_path), T=4)
    np.testing.assert_array_equal(again.x, first.x)
    np.testing.assert_array_equal(again.y, first.y)
    monkeypatch.setattr(events_lib, "convert", real_convert)

    # Another T, or a recording rewritten with the same size and mtime, converts afresh.
    data.load("nmnist", "train", data_dir=str(tmp_path), T=2)
    path, _, old = written["train"][-1]
    st = os.stat(path)
    new = synthetic.random_events(len(old["t"]), (34, 34), np.random.default_rng(4))
    synthetic.write_nmnist_bin(path, new)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (os.stat(path).st_size, os.stat(path).st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    changed = data.load("nmnist", "train", data_dir=str(tmp_path), T=4)
    np.testing.assert_array_equal(changed.x[-1], reference_frames(new, (34, 34), (34, 34), 4))
    assert len(list(cache.glob("nmnist-train-*.npz"))) == 3


def test_worker_processes_give_the_same_frames(tmp_path):
    write("cifar10_dvs", tmp_path, np.random.default_rng(5), per_class=4, num_classes=2,
          counts=())
    one = data.load("cifar10_dvs", "train", data_dir=str(tmp_path), T=3, workers=1,
                    cache_dir=str(tmp_path / "one"))
    two = data.load("cifar10_dvs", "train", data_dir=str(tmp_path), T=3, workers=2,
                    cache_dir=str(tmp_path / "two"))
    np.testing.assert_array_equal(one.x, two.x)
    np.testing.assert_array_equal(one.y, two.y)


def test_missing_dataset_says_what_to_download_and_where(tmp_path):
    with pytest.raises(data.DatasetNotFoundError) as e:
        data.load("nmnist", "train", data_dir=str(tmp_path), T=4)
    msg = str(e.value)
    assert str(tmp_path / "NMNIST") in msg and "train.zip" in msg and "Train/0" in msg
    with pytest.raises(FileNotFoundError, match="--data-dir"):
        data.load("cifar10_dvs", "test", T=10)
    with pytest.raises(data.DatasetNotFoundError, match="ibmGestureTrain"):
        data.load("dvs_gesture", "train", data_dir=str(tmp_path), T=20)


def test_event_outside_the_sensor_is_reported_with_its_file(tmp_path):
    written = synthetic.write_event_dataset(
        "nmnist", str(tmp_path), per_class=1, events=50, rng=np.random.default_rng(6),
        num_classes=1,
    )
    path, _, ev = written["train"][0]
    ev["x"][7] = 200  # N-MNIST's sensor is 34 wide
    synthetic.write_nmnist_bin(path, ev)
    with pytest.raises(data.CorruptFileError, match="outside") as e:
        data.load("nmnist", "train", data_dir=str(tmp_path), T=4)
    assert e.value.path == path


def test_unknown_names_and_options():
    with pytest.raises(ValueError, match="unknown dataset 'nmnistt'.*cifar10_dvs"):
        data.load("nmnistt")
    with pytest.raises(ValueError, match="no option"):
        data.load("nmnist", "train", data_dir="/nonexistent", frames=3)
    with pytest.raises(ValueError, match="split"):
        data.load("nmnist", "validation")
    for name in ("digits", "mnist", "fashion_mnist", "cifar10", "cifar100", "imagenet2012",
                 "nmnist", "dvs_gesture", "cifar10_dvs"):
        assert name in data.names()
    data.load("digits", "train", cache_dir=None)  # None suits datasets that keep no cache


def test_event_batches_are_time_major(tmp_path):
    write("nmnist", tmp_path, np.random.default_rng(7), per_class=3, counts=())
    ds = data.load("nmnist", "train", data_dir=str(tmp_path), T=4)
    loader = data.Loader(ds, batch_size=5, T=4, shuffle=False)
    xs, ys = next(iter(loader))
    assert xs.shape == (4, 5, 34, 34, 2) and xs.dtype == np.float32 and ys.dtype == np.int32
    np.testing.assert_array_equal(xs[:, 1], ds.x[1].astype(np.float32))
    with pytest.raises(ValueError, match="frames per sample"):
        data.Loader(ds, batch_size=5, T=6)


def test_cli_trains_on_an_event_dataset(tmp_path, capsys):
    from snnjax.cli import main

    write("nmnist", tmp_path, np.random.default_rng(8), per_class=2, num_classes=10, counts=())
    argv = ["train", "--dataset", "nmnist", "--data-dir", str(tmp_path), "--T", "3",
            "--epochs", "1", "--batch-size", "4", "--no-progress"]
    assert main(argv) == 0
    assert "final test accuracy" in capsys.readouterr().out
    assert list((tmp_path / "snnjax_cache").glob("nmnist-train-T3-34x34-*.npz"))
    assert main(["train", "--dataset", "cifar10_dvs", "--data-dir", str(tmp_path)]) == 2
    assert "CIFAR10-DVS not found" in capsys.readouterr().err
