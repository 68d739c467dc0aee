"""Bad and misplaced event files: an error naming the file or folder, or a warning naming them.

Every case starts from a good dataset whose frames are already cached, breaks one thing and
checks the message names the path and the existing cache stays byte-identical.
"""

import os
import shutil
import stat

import numpy as np
import pytest

from snnjax import data
from snnjax.data import cache as cache_lib
from snnjax.data import synthetic

WRITE = {
    "nmnist": dict(per_class=2, num_classes=3),
    "dvs_gesture": dict(per_class=2, num_classes=3),
    "cifar10_dvs": dict(per_class=10, num_classes=3),
}


def make(tmp_path, name):
    """A good dataset, loaded once (its frames cached); returns the written files."""
    written = synthetic.write_event_dataset(
        name, str(tmp_path), events=(150, 250), rng=np.random.default_rng(0), **WRITE[name]
    )
    data.load(name, "train", data_dir=str(tmp_path), T=4)
    return next(iter(written.values()))


def snapshot(cache_dir):
    return {p.name: p.read_bytes() for p in sorted(cache_dir.glob("*.npz"))}


def root_of(tmp_path, name):
    return tmp_path / {"nmnist": "NMNIST", "dvs_gesture": "DVSGesture",
                       "cifar10_dvs": "CIFAR10DVS"}[name]


def truncate(path, cut):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - cut)


# Each case: (dataset, what it breaks -> the path the message must name, error, message part)
def zero_bytes(root, files):
    open(files[1][0], "wb").close()
    return files[1][0]


def cut_mid_event(root, files):
    truncate(files[0][0], 7)
    return files[0][0]


def empty_class_folder(root, files):
    (root / "Train" / "7").mkdir()
    return root / "Train" / "7"


def class_folder_10(root, files):
    (root / "Train" / "10").mkdir()
    shutil.copy(files[0][0], root / "Train" / "10" / "00000.bin")
    return root / "Train" / "10"


def unparsable_folder(root, files):
    (root / "Train" / "notes").mkdir()
    shutil.copy(files[0][0], root / "Train" / "notes" / "00000.bin")
    return root / "Train" / "notes"


def stray_recording(root, files):
    shutil.copy(files[0][0], root / "Train" / "00099.bin")
    return root / "Train" / "00099.bin"


def gesture_bad_name(root, files):
    path = root / "ibmGestureTrain" / "user01_fluorescent" / "wave.npy"
    shutil.copy(files[0][0], path)
    return path


def gesture_class_11(root, files):
    path = root / "ibmGestureTrain" / "user01_fluorescent" / "11.npy"
    shutil.copy(files[0][0], path)
    return path


def cifar_unknown_class(root, files):
    (root / "planes").mkdir()
    shutil.copy(files[0][0], root / "planes" / "cifar10_planes_0.aedat4")
    return root / "planes"


def cifar_misplaced(root, files):
    path = root / "airplane" / "cifar10_cat_3.aedat4"
    shutil.copy(files[0][0], path)
    return path


def cifar_unparsable(root, files):
    path = root / "bird" / "bird_3.aedat4"
    shutil.copy(files[-1][0], path)
    return path


def cifar_empty_class(root, files):
    (root / "truck").mkdir()
    return root / "truck"


CASES = [
    ("nmnist", zero_bytes, data.CorruptFileError, "0 bytes"),
    ("dvs_gesture", zero_bytes, data.CorruptFileError, "0 bytes"),
    ("cifar10_dvs", zero_bytes, data.CorruptFileError, "0 bytes"),
    ("nmnist", cut_mid_event, data.CorruptFileError, "truncated"),
    ("dvs_gesture", cut_mid_event, data.CorruptFileError, "unreadable"),
    ("cifar10_dvs", cut_mid_event, data.CorruptFileError, "unreadable AEDAT4"),
    ("nmnist", empty_class_folder, data.DatasetLayoutError, "empty folder"),
    ("nmnist", class_folder_10, data.DatasetLayoutError, "expected 0 … 9"),
    ("nmnist", unparsable_folder, data.DatasetLayoutError, "not an N-MNIST class folder"),
    ("nmnist", stray_recording, data.DatasetLayoutError, "outside the class folders"),
    ("dvs_gesture", gesture_bad_name, data.DatasetLayoutError, "does not parse"),
    ("dvs_gesture", gesture_class_11, data.DatasetLayoutError, "class 0 … 10"),
    ("cifar10_dvs", cifar_unknown_class, data.DatasetLayoutError, "not a CIFAR10-DVS class"),
    ("cifar10_dvs", cifar_misplaced, data.DatasetLayoutError, "a cat recording in the airplane"),
    ("cifar10_dvs", cifar_unparsable, data.DatasetLayoutError, "does not parse"),
    ("cifar10_dvs", cifar_empty_class, data.DatasetLayoutError, "empty folder"),
]


@pytest.mark.parametrize("name, breaks, error, reason", CASES,
                         ids=[f"{c[0]}-{c[1].__name__}" for c in CASES])
def test_bad_input_is_named_and_the_cache_is_untouched(tmp_path, name, breaks, error, reason):
    files = make(tmp_path, name)
    before = snapshot(tmp_path / "snnjax_cache")
    assert before
    bad = breaks(root_of(tmp_path, name), files)
    with pytest.raises(error) as e:
        data.load(name, "train", data_dir=str(tmp_path), T=4)
    assert e.value.path == str(bad) and str(bad) in str(e.value) and reason in str(e.value)
    assert snapshot(tmp_path / "snnjax_cache") == before


@pytest.mark.parametrize("name", ["nmnist", "cifar10_dvs"])
def test_recording_cut_at_an_event_boundary_is_named_in_a_warning(tmp_path, name):
    files = make(tmp_path, name)
    before = snapshot(tmp_path / "snnjax_cache")
    path, _, ev = files[2]
    few = {k: v[:5] for k, v in ev.items()}
    if name == "nmnist":
        synthetic.write_nmnist_bin(path, few)
    else:
        synthetic.write_aedat4(path, few, (128, 128))
    with pytest.warns(data.ShortRecordingWarning) as w:
        ds = data.load(name, "train", data_dir=str(tmp_path), T=4)
    msg = str(w[0].message)
    assert os.path.basename(path) in msg and "(5 events)" in msg and "1 of" in msg
    assert ds.x[2].sum() > 0  # kept, as it is
    # The old cache file is still there, unchanged; the new content got its own file.
    after = snapshot(tmp_path / "snnjax_cache")
    assert {k: after[k] for k in before} == before and len(after) == len(before) + 1


def test_a_split_without_test_recordings_says_so(tmp_path):
    synthetic.write_event_dataset("cifar10_dvs", str(tmp_path), per_class=2, events=100,
                                  rng=np.random.default_rng(1), num_classes=2)
    data.load("cifar10_dvs", "train", data_dir=str(tmp_path), T=4)
    before = snapshot(tmp_path / "snnjax_cache")
    with pytest.raises(data.DatasetLayoutError) as e:
        data.load("cifar10_dvs", "test", data_dir=str(tmp_path), T=4)
    folder = str(tmp_path / "CIFAR10DVS" / "airplane")
    assert e.value.path == folder
    assert "2 recording(s)" in str(e.value) and "no test recordings" in str(e.value)
    assert "download" not in str(e.value)
    assert snapshot(tmp_path / "snnjax_cache") == before


@pytest.fixture
def read_only(monkeypatch):
    """Make a folder tree read-only: chmod, and where that does not bind (root), refuse
    creating files under it in the cache module."""
    roots = []

    def protect(path):
        roots.append(os.path.abspath(path))
        for d, _, _ in os.walk(path):
            os.chmod(d, stat.S_IRUSR | stat.S_IXUSR)

    def under(path):
        path = os.path.abspath(path)
        return any(path == r or path.startswith(r + os.sep) for r in roots)

    real_mkstemp, real_makedirs = cache_lib.tempfile.mkstemp, cache_lib.os.makedirs

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and under(dir):
            raise PermissionError(13, "Permission denied", dir)
        return real_mkstemp(*args, dir=dir, **kwargs)

    def makedirs(path, *args, **kwargs):
        if under(path) and not os.path.isdir(path):
            raise PermissionError(13, "Permission denied", path)
        return real_makedirs(path, *args, **kwargs)

    if os.geteuid() == 0:
        monkeypatch.setattr(cache_lib.tempfile, "mkstemp", mkstemp)
        monkeypatch.setattr(cache_lib.os, "makedirs", makedirs)
    yield protect
    for r in roots:
        for d, _, _ in os.walk(r):
            os.chmod(d, stat.S_IRWXU)


def test_read_only_data_dir_needs_cache_dir(tmp_path, read_only):
    ro = tmp_path / "ro"
    synthetic.write_event_dataset("nmnist", str(ro), per_class=2, events=100,
                                  rng=np.random.default_rng(2), num_classes=2)
    read_only(ro)
    with pytest.raises(data.CacheDirError) as e:
        data.load("nmnist", "train", data_dir=str(ro), T=4)
    msg = str(e.value)
    assert "\n" not in msg and str(ro / "snnjax_cache") in msg and "--cache-dir" in msg
    ds = data.load("nmnist", "train", data_dir=str(ro), T=4, cache_dir=str(tmp_path / "c"))
    assert len(ds) == 4 and list((tmp_path / "c").glob("nmnist-train-*.npz"))


def test_read_only_data_dir_from_the_cli(tmp_path, read_only, capsys):
    from snnjax.cli import main

    ro = tmp_path / "ro"
    synthetic.write_event_dataset("nmnist", str(ro), per_class=2, events=100,
                                  rng=np.random.default_rng(3), num_classes=10)
    read_only(ro)
    argv = ["train", "--dataset", "nmnist", "--data-dir", str(ro), "--T", "3", "--epochs", "1",
            "--batch-size", "4", "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--cache-dir" in err and str(ro) in err
    assert main([*argv, "--cache-dir", str(tmp_path / "c")]) == 0
    assert list((tmp_path / "c").glob("nmnist-train-T3-*.npz"))


def test_damaged_cache_is_rebuilt_with_a_warning(tmp_path):
    make(tmp_path, "nmnist")
    (path,) = (tmp_path / "snnjax_cache").glob("nmnist-train-*.npz")
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])
    with pytest.warns(data.DamagedCacheWarning, match=str(path)):
        ds = data.load("nmnist", "train", data_dir=str(tmp_path), T=4)
    assert path.read_bytes() == good
    assert len(ds) == 6
