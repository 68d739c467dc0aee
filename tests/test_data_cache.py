"""The frame cache: written atomically, leftovers of killed writers removed, keyed by content."""

import os
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

from snnjax import data
from snnjax.data import cache, synthetic

_CHILD = """
import sys
from snnjax import data
data.load("nmnist", "train", data_dir=sys.argv[1], T=4)
print("finished")
"""


def _wait_for(pattern_dir, suffix, proc, timeout=120.0, contains=""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pattern_dir.is_dir():
            found = [p for p in pattern_dir.iterdir()
                     if p.name.endswith(suffix) and contains in p.name]
            if found:
                return found
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the converter exited before writing its cache: {out}\n{err}")
        time.sleep(0.02)
    proc.kill()
    pytest.fail("no temporary cache file appeared")


def test_killed_cache_write_leaves_nothing_read_as_complete(tmp_path):
    written = synthetic.write_event_dataset(
        "nmnist", str(tmp_path), per_class=2, events=120, rng=np.random.default_rng(0),
        num_classes=3,
    )
    cache_dir = tmp_path / "snnjax_cache"
    env = {**os.environ, "JAX_PLATFORMS": "cpu", cache._PAUSE_ENV: "60"}
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(tmp_path)], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        # The frames' temporary file (the raw files' digests are also written atomically,
        # and not paused: their temporary file may be there for a moment too).
        (tmp_file,) = _wait_for(cache_dir, ".tmp", proc, contains=".npz~")
        # The writer is now paused halfway through the file: kill it there.
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert tmp_file.exists() and not list(cache_dir.glob("*.npz")), "a final cache name exists"
    with pytest.raises((OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile)):
        np.load(tmp_file)["x"]  # the half file really is incomplete

    # The next run removes the leftover, converts again and writes a complete cache.
    ds = data.load("nmnist", "train", data_dir=str(tmp_path), T=4)
    assert not tmp_file.exists() and not list(cache_dir.glob(".*.tmp"))
    (final,) = cache_dir.glob("nmnist-train-T4-34x34-*.npz")
    assert not final.name.startswith(".")
    expected = data.load("nmnist", "train", data_dir=str(tmp_path), T=4,
                         cache_dir=str(tmp_path / "c2"))
    np.testing.assert_array_equal(ds.x, expected.x)
    assert len(ds) == len(written["train"]) and ds.x.sum() > 0

    # A damaged file under the final name (e.g. copied by hand) is named and rebuilt.
    good = final.read_bytes()
    final.write_bytes(good[:1000])
    with pytest.warns(data.DamagedCacheWarning) as w:
        again = data.load("nmnist", "train", data_dir=str(tmp_path), T=4)
    assert str(final) in str(w[0].message) and "rebuilding" in str(w[0].message)
    assert final.read_bytes() == good
    np.testing.assert_array_equal(again.x, ds.x)


def test_stale_temporary_files_are_removed_live_ones_kept(tmp_path):
    host = cache._host()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    names = {
        f".a.npz~{host}~{dead}~x1.tmp": True,  # this host, process gone
        f".a.npz~{host}~{os.getpid()}~x2.tmp": False,  # this host, alive (us)
        ".a.npz~otherhost~123~x3.tmp": False,  # another host, recent: may be writing
        ".b.npz~otherhost~124~x4.tmp": True,  # another host, two days old
        "unrelated.tmp": False,
    }
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    old = time.time() - 2 * 24 * 3600
    os.utime(tmp_path / ".b.npz~otherhost~124~x4.tmp", (old, old))
    removed = cache.remove_stale_temps(str(tmp_path))
    assert sorted(os.path.basename(p) for p in removed) == sorted(n for n, s in names.items() if s)
    assert sorted(os.listdir(tmp_path)) == sorted(n for n, s in names.items() if not s)


def test_file_digests_follow_content_not_size_and_mtime(tmp_path):
    path, memo = tmp_path / "rec.bin", str(tmp_path / "memo.json")
    path.write_bytes(b"a" * 100)
    (first,) = cache.file_digests([str(path)], memo)
    assert cache.file_digests([str(path)], memo) == [first]
    st = os.stat(path)
    path.write_bytes(b"b" * 100)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    (second,) = cache.file_digests([str(path)], memo)
    assert second != first
    # The memo is only a shortcut: without it the digest is the same.
    assert cache.file_digests([str(path)]) == [second]


def test_atomic_write_round_trip_and_settings_check(tmp_path):
    path = str(tmp_path / "sub" / "a.npz")
    arrays = {"x": np.arange(12, dtype=np.int16).reshape(3, 4), "y": np.array([1, 2, 3])}
    cache.write_npz_atomic(path, arrays, {"T": 4})
    got = cache.read_npz(path, ("x", "y"), {"T": 4})
    np.testing.assert_array_equal(got["x"], arrays["x"])
    assert got["x"].dtype == np.int16
    assert os.listdir(tmp_path / "sub") == ["a.npz"]  # no temporary file left behind
    with pytest.raises(data.CorruptFileError, match="other settings"):
        cache.read_npz(path, ("x",), {"T": 5})
    with pytest.raises(data.CorruptFileError, match="missing"):
        cache.read_npz(path, ("x", "z"), {"T": 4})


def test_failed_write_removes_its_temporary_file(tmp_path):
    class Boom:
        def __array__(self, *args, **kwargs):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        cache.write_npz_atomic(str(tmp_path / "b.npz"), {"x": Boom()}, {})
    assert os.listdir(tmp_path) == []


def test_cache_key_is_stable_and_sensitive():
    a = cache.cache_key({"T": 4, "size": [48, 48]})
    assert a == cache.cache_key({"size": [48, 48], "T": 4})
    assert a != cache.cache_key({"T": 5, "size": [48, 48]})
