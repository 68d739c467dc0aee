"""Event datasets: tiny recordings in each real on-disk format, through the real code path.

Frames are checked against events binned here by hand (tonic's ``ToFrame(n_event_bins=T)``:
``n // T`` events per frame in file order, the remainder dropped; coordinates scaled by
``floor(x · W'/W)``).
"""

import os
import socket

import numpy as np
import pytest

from snnjax import data
from snnjax.data import events as events_lib
from snnjax.data import synthetic


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any attempt to reach the network fails the test at once."""

    def refuse(*args, **kwargs):
        raise AssertionError("a data test tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def bin_by_hand(ev, sensor_size, size, T):
    """``[T, H', W', 2]`` counts, one event at a time."""
    (w, h), (out_h, out_w) = sensor_size, size
    per_frame = len(ev["t"]) // T
    frames = np.zeros((T, out_h, out_w, 2), dtype=np.int64)
    for k in range(T * per_frame):
        frames[k // per_frame, ev["y"][k] * out_h // h, ev["x"][k] * out_w // w, ev["p"][k]] += 1
    return frames


def check_frames(ds, expected, spec, size, T):
    assert ds.temporal and ds.x.shape == (len(expected), T, *size, 2)
    assert ds.num_classes == spec.num_classes
    np.testing.assert_array_equal(ds.y, [label for _, label, _ in expected])
    for i, (path, _, ev) in enumerate(expected):
        np.testing.assert_array_equal(
            ds.x[i], bin_by_hand(ev, spec.sensor_size, size, T), err_msg=path
        )


# Event counts: not multiples of T (remainder dropped), fewer than T, and none at all.
EVENTS = (0, 3, 97, 250)


def write(name, root, rng, per_class, num_classes=3):
    written = synthetic.write_event_dataset(
        name, str(root), per_class=per_class, events=(EVENTS[2], EVENTS[3]), rng=rng,
        num_classes=num_classes,
    )
    # Overwrite two recordings with degenerate ones: 3 events (< T) and none.
    spec = events_lib.SPECS[name]
    writer = {
        "nmnist": synthetic.write_nmnist_bin,
        "dvs_gesture": synthetic.write_dvs_gesture_npy,
        "cifar10_dvs": lambda p, ev: synthetic.write_aedat4(p, ev, spec.sensor_size),
    }[name]
    files = next(iter(written.values()))
    for j, n in ((0, EVENTS[0]), (1, EVENTS[1])):
        path, label, _ = files[j]
        ev = synthetic.random_events(n, spec.sensor_size, rng)
        ev["t"] = ev["t"] // 1000 * 1000
        writer(path, ev)
        files[j] = (path, label, ev)
    return written


def test_nmnist_frames_match_hand_binning(tmp_path):
    written = write("nmnist", tmp_path, np.random.default_rng(0), per_class=2)
    spec = events_lib.SPECS["nmnist"]
    for split in ("train", "test"):
        ds = data.load("nmnist", split, data_dir=str(tmp_path), T=4)
        check_frames(ds, written[split], spec, (34, 34), 4)


def test_dvs_gesture_frames_match_hand_binning_resized(tmp_path):
    written = write("dvs_gesture", tmp_path, np.random.default_rng(1), per_class=2)
    spec = events_lib.SPECS["dvs_gesture"]
    for split in ("train", "test"):
        ds = data.load("dvs-gesture", split, data_dir=str(tmp_path), T=5, size=32)
        check_frames(ds, written[split], spec, (32, 32), 5)
        assert ds.num_classes == 11


def test_cifar10_dvs_frames_48x48_and_first_90_percent_split(tmp_path):
    # 12 per class: the split must follow the recordings' numbers (…_2 before …_10), the
    # first round(0.9 · 12) = 11 of each class train, the last one tests.
    written = write("cifar10_dvs", tmp_path, np.random.default_rng(2), per_class=12)["all"]
    spec = events_lib.SPECS["cifar10_dvs"]
    by_class = {}
    for item in written:
        by_class.setdefault(item[1], []).append(item)
    train = [it for c in sorted(by_class) for it in by_class[c][:11]]
    test = [it for c in sorted(by_class) for it in by_class[c][11:]]
    ds = data.load("cifar10_dvs", "train", data_dir=str(tmp_path), T=3)
    check_frames(ds, train, spec, (48, 48), 3)
    ds = data.load("cifar10_dvs", "test", data_dir=str(tmp_path), T=3)
    check_frames(ds, test, spec, (48, 48), 3)
    assert [os.path.basename(p) for p, _, _ in test][0] == "cifar10_airplane_11.aedat4"


def test_frames_are_cached_and_the_cache_follows_settings_and_files(tmp_path, monkeypatch):
    written = write("nmnist", tmp_path, np.random.default_rng(3), per_class=1)
    first = data.load("nmnist", "train", data_dir=str(tmp_path), T=4)
    cache = tmp_path / "snnjax_cache"
    assert len(list(cache.glob("nmnist-train-T4-34x34-*.npz"))) == 1

    def no_conversion(*args, **kwargs):
        raise AssertionError("converted again although a cache exists")

    real_convert = events_lib._convert
    monkeypatch.setattr(events_lib, "_convert", no_conversion)
    again = data.load("nmnist", "train", data_dir=str(tmp_path), T=4)
    np.testing.assert_array_equal(again.x, first.x)
    np.testing.assert_array_equal(again.y, first.y)

    # Another T, or a changed recording, is converted afresh into its own cache file.
    monkeypatch.setattr(events_lib, "_convert", real_convert)
    data.load("nmnist", "train", data_dir=str(tmp_path), T=2)
    path, _, _ = written["train"][-1]
    new = synthetic.random_events(40, (34, 34), np.random.default_rng(4))
    synthetic.write_nmnist_bin(path, new)
    os.utime(path, ns=(1, 1))  # a different mtime even on coarse-clock file systems
    changed = data.load("nmnist", "train", data_dir=str(tmp_path), T=4)
    np.testing.assert_array_equal(changed.x[-1], bin_by_hand(new, (34, 34), (34, 34), 4))
    assert len(list(cache.glob("nmnist-train-*.npz"))) == 3


def test_missing_dataset_says_what_to_download_and_where(tmp_path):
    with pytest.raises(data.DatasetNotFoundError) as e:
        data.load("nmnist", "train", data_dir=str(tmp_path), T=4)
    msg = str(e.value)
    assert str(tmp_path / "NMNIST") in msg and "train.zip" in msg and "Train/0" in msg
    with pytest.raises(FileNotFoundError, match="--data-dir"):
        data.load("cifar10_dvs", "test", T=10)
    with pytest.raises(data.DatasetNotFoundError, match="ibmGestureTrain"):
        data.load("dvs_gesture", "train", data_dir=str(tmp_path), T=20)


@pytest.mark.parametrize("name", ["nmnist", "dvs_gesture", "cifar10_dvs"])
def test_truncated_recording_is_named(tmp_path, name):
    written = synthetic.write_event_dataset(
        name, str(tmp_path), per_class=10 if name == "cifar10_dvs" else 1, events=200,
        rng=np.random.default_rng(5), num_classes=2,
    )
    path = next(iter(written.values()))[1][0]
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - 7)
    with pytest.raises(data.CorruptFileError) as e:
        data.load(name, "train", data_dir=str(tmp_path), T=4)
    assert e.value.path == path and path in str(e.value)


def test_event_outside_the_sensor_is_reported_with_its_file(tmp_path):
    written = synthetic.write_event_dataset(
        "nmnist", str(tmp_path), per_class=1, events=50, rng=np.random.default_rng(6),
        num_classes=1,
    )
    path, _, ev = written["train"][0]
    ev["x"][7] = 200  # N-MNIST's sensor is 34 wide
    synthetic.write_nmnist_bin(path, ev)
    with pytest.raises(data.CorruptFileError, match="outside"):
        data.load("nmnist", "train", data_dir=str(tmp_path), T=4)


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


def test_event_batches_are_time_major(tmp_path):
    write("nmnist", tmp_path, np.random.default_rng(7), per_class=3)
    ds = data.load("nmnist", "train", data_dir=str(tmp_path), T=4)
    loader = data.Loader(ds, batch_size=5, T=4, shuffle=False)
    xs, ys = next(iter(loader))
    assert xs.shape == (4, 5, 34, 34, 2) and xs.dtype == np.float32 and ys.dtype == np.int32
    np.testing.assert_array_equal(xs[:, 1], ds.x[1].astype(np.float32))
    with pytest.raises(ValueError, match="frames per sample"):
        data.Loader(ds, batch_size=5, T=6)


def test_cli_trains_on_an_event_dataset(tmp_path, capsys):
    from snnjax.cli import main

    write("nmnist", tmp_path, np.random.default_rng(8), per_class=2, num_classes=10)
    argv = ["train", "--dataset", "nmnist", "--data-dir", str(tmp_path), "--T", "3",
            "--epochs", "1", "--batch-size", "4", "--no-progress"]
    assert main(argv) == 0
    assert "final test accuracy" in capsys.readouterr().out
    assert list((tmp_path / "snnjax_cache").glob("nmnist-train-T3-34x34-*.npz"))
    assert main(["train", "--dataset", "cifar10_dvs", "--data-dir", str(tmp_path)]) == 2
    assert "CIFAR10-DVS not found" in capsys.readouterr().err
