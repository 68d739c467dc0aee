"""Event-camera datasets: N-MNIST, DVS128 Gesture, CIFAR10-DVS, binned as the papers bin them.

Each dataset is read from ``--data-dir`` in the layout tonic's dataset classes download and
extract to (``<data_dir>/NMNIST/Train/3/00004.bin``, ``<data_dir>/DVSGesture/ibmGestureTrain/
user01_fluorescent/0.npy``, ``<data_dir>/CIFAR10DVS/airplane/cifar10_airplane_0.aedat4``), and
each file is decoded by tonic's own reader. We walk the folders ourselves instead of
instantiating tonic's classes because those start a download whenever their file-count
heuristic fails, which without network ends in a ``URLError``; here a missing dataset raises
:class:`~snnjax.data.errors.DatasetNotFoundError` saying what to download and where to put it,
and a misplaced or misnamed file or folder raises
:class:`~snnjax.data.errors.DatasetLayoutError` naming it (nothing is skipped silently;
hidden files, whose names start with ``.``, are ignored).

Recordings become ``T`` frames split by event number (or by time), counted at the sensor's
resolution (:func:`~snnjax.data.frames.to_frames`, SpikingJelly's rule) and, where ``size``
differs from the sensor, resized bilinearly as the papers' code resizes CIFAR10-DVS to 48×48
(:func:`~snnjax.data.frames.resize_frames`). They are stored as ``x [N, T, H, W, 2]``: int16
counts at the sensor's size, float32 averages when resized (``temporal=True``).

The frames of a split are converted once (:func:`~snnjax.data.conversion.convert`: worker
processes on all cores for large splits, a progress bar on a terminal) and cached in
``<cache_dir or data_dir/snnjax_cache>/<name>-<split>-T<T>-<H>x<W>-<key>.npz``, written
atomically (:mod:`snnjax.data.cache`); ``key`` hashes the settings and the recordings'
content digests, so a changed recording is converted again. A damaged cache file is rebuilt
with a :class:`~snnjax.data.errors.DamagedCacheWarning`. Recordings with far fewer events than
the rest of their split (``n < max(T, median / 20)``, e.g. cut short by an interrupted copy)
are kept, and named in a :class:`~snnjax.data.errors.ShortRecordingWarning`.
"""

from __future__ import annotations

import dataclasses
import os
import re
import warnings
from collections.abc import Callable

import numpy as np

from snnjax.data import cache
from snnjax.data.conversion import convert
from snnjax.data.dataset import ArrayDataset, register
from snnjax.data.errors import (
    CacheDirError,
    CorruptFileError,
    DamagedCacheWarning,
    DatasetLayoutError,
    DatasetNotFoundError,
    ShortRecordingWarning,
)
from snnjax.data.frames import SPLITS

__all__ = ["EventSpec", "SPECS", "load_events", "list_files", "read_events", "convert"]

# Bump when the conversion changes, so old caches are not reused.
_FORMAT = 2

Files = list[tuple[str, int]]


@dataclasses.dataclass(frozen=True)
class EventSpec:
    """Where one event dataset lives, how to read it, and its paper defaults.

    Attributes:
      name: registry name.
      title: human name, for messages.
      folder: the folder tonic extracts the dataset to, under ``data_dir``.
      sensor_size: ``(W, H)`` of the camera.
      size: default frame size ``(H, W)``.
      T: default number of frames.
      num_classes: number of classes.
      find: ``(root, split) -> [(path, label)]``, ``root = data_dir/folder``; raises
        :class:`DatasetLayoutError` for misplaced or misnamed entries.
      read: ``path -> events`` (structured, fields ``x, y, t, p``).
      download: what to download and how to lay it out (``{root}`` is filled in).
    """

    name: str
    title: str
    folder: str
    sensor_size: tuple[int, int]
    size: tuple[int, int]
    T: int
    num_classes: int
    find: Callable[[str, str], Files]
    read: Callable[[str], np.ndarray]
    download: str


def _natural_key(text: str):
    """Sort ``x_2`` before ``x_10``."""
    return [int(s) if s.isdigit() else s for s in re.split(r"(\d+)", text)]


def _entries(folder: str) -> tuple[list[str], list[str]]:
    """``(sub-folders, files)`` of ``folder``, sorted, hidden names left out."""
    dirs, files = [], []
    for name in sorted(os.listdir(folder), key=_natural_key):
        if name.startswith("."):
            continue
        (dirs if os.path.isdir(os.path.join(folder, name)) else files).append(name)
    return dirs, files


def _class_folder(folder: str, suffix: str, what: str) -> list[str]:
    """The recordings (``*suffix``) of a folder that must hold only recordings."""
    dirs, files = _entries(folder)
    if dirs:
        raise DatasetLayoutError(os.path.join(folder, dirs[0]), f"unexpected folder inside {what}")
    for name in files:
        if not name.endswith(suffix):
            raise DatasetLayoutError(
                os.path.join(folder, name), f"not a {suffix} recording ({what} holds only those)"
            )
    if not files:
        raise DatasetLayoutError(folder, f"empty folder: no {suffix} recordings in {what}")
    return files


def _subfolders(top: str, stray: str) -> list[str]:
    """The folders inside a split folder ``top`` ([] when ``top`` is absent); a file there is
    refused with ``stray`` as the reason."""
    if not os.path.isdir(top):
        return []
    dirs, files = _entries(top)
    if files:
        raise DatasetLayoutError(os.path.join(top, files[0]), stray)
    return dirs


# ---- N-MNIST ---------------------------------------------------------------------------------

def _find_nmnist(root: str, split: str) -> Files:
    """``<root>/Train|Test/<digit>/*.bin``: the class folder's name is the label, 0 … 9."""
    top = os.path.join(root, "Train" if split == "train" else "Test")
    dirs = _subfolders(top, "a file outside the class folders 0 … 9 (label unknown)")
    out = []
    for name in dirs:
        folder = os.path.join(top, name)
        if name not in {str(c) for c in range(10)}:
            raise DatasetLayoutError(folder, "not an N-MNIST class folder (expected 0 … 9)")
        out += [(os.path.join(folder, f), int(name))
                for f in _class_folder(folder, ".bin", "an N-MNIST class folder")]
    return out


def _read_nmnist(path: str) -> np.ndarray:
    from tonic.datasets import NMNIST
    from tonic.io import read_mnist_file

    size = os.path.getsize(path)
    if size % 5:
        raise CorruptFileError(path, f"truncated N-MNIST file ({size} bytes, not 5 per event)")
    return read_mnist_file(path, dtype=NMNIST.dtype)


# ---- DVS128 Gesture (tonic's preprocessed release: one .npy per gesture) --------------------

_GESTURE_NAME = re.compile(r"^(\d+)\.npy$")


def _find_dvs_gesture(root: str, split: str) -> Files:
    """``<root>/ibmGestureTrain|ibmGestureTest/<user session>/<label>.npy``, labels 0 … 10."""
    top = os.path.join(root, "ibmGestureTrain" if split == "train" else "ibmGestureTest")
    dirs = _subfolders(top, "a file outside the user session folders (user01_…)")
    out = []
    for name in dirs:
        folder = os.path.join(top, name)
        for f in _class_folder(folder, ".npy", "a DVS Gesture session folder"):
            m = _GESTURE_NAME.match(f)
            if m is None or int(m[1]) > 10:
                raise DatasetLayoutError(
                    os.path.join(folder, f),
                    "name does not parse as <class>.npy with class 0 … 10",
                )
            out.append((os.path.join(folder, f), int(m[1])))
    return out


def _read_dvs_gesture(path: str) -> np.ndarray:
    from numpy.lib import recfunctions
    from tonic.datasets import DVSGesture

    try:
        raw = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise CorruptFileError(path, f"unreadable DVS Gesture recording ({e})") from e
    if raw.ndim != 2 or raw.shape[1] != 4:
        raise CorruptFileError(path, f"expected [N, 4] events (x, y, p, t), got {raw.shape}")
    raw = raw.copy()
    raw[:, 3] *= 1000  # ms -> us, as tonic's DVSGesture does
    return recfunctions.unstructured_to_structured(raw, DVSGesture.dtype)


# ---- CIFAR10-DVS (AEDAT4, one folder per class) ----------------------------------------------

_CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
_CIFAR10_NAME = re.compile(r"^cifar10_([a-z]+)_(\d+)\.aedat4$")
_CIFAR10_TRAIN_FRACTION = 0.9


def _find_cifar10_dvs(root: str, split: str) -> Files:
    """The first 90 % of each class's recordings (900 of 1,000) train, the rest test.

    Recordings are ``<root>/<class>/cifar10_<class>_<number>.aedat4``, ordered by number
    (``cifar10_cat_2`` before ``cifar10_cat_10``). Files directly in ``root`` (tonic leaves
    its zip archives there) are ignored.
    """
    if not os.path.isdir(root):
        return []
    dirs, _ = _entries(root)
    out = []
    for cls in dirs:
        folder = os.path.join(root, cls)
        if cls not in _CIFAR10_CLASSES:
            raise DatasetLayoutError(
                folder,
                f"not a CIFAR10-DVS class folder (expected one of {', '.join(_CIFAR10_CLASSES)})",
            )
        numbered = []
        for f in _class_folder(folder, ".aedat4", "a CIFAR10-DVS class folder"):
            m = _CIFAR10_NAME.match(f)
            if m is None or m[1] != cls:
                raise DatasetLayoutError(
                    os.path.join(folder, f),
                    f"name does not parse as cifar10_{cls}_<number>.aedat4"
                    + (f" (a {m[1]} recording in the {cls} folder)" if m else ""),
                )
            numbered.append((int(m[2]), f))
        names = [f for _, f in sorted(numbered)]
        n_train = int(round(_CIFAR10_TRAIN_FRACTION * len(names)))
        chosen = names[:n_train] if split == "train" else names[n_train:]
        if not chosen:
            raise DatasetLayoutError(
                folder,
                f"{len(names)} recording(s): the first 90 % ({n_train}) train, which leaves "
                f"no {split} recordings (the full dataset has 1,000 per class: 900 train, "
                "100 test)",
            )
        out += [(os.path.join(folder, n), _CIFAR10_CLASSES.index(cls)) for n in chosen]
    return out


def _read_cifar10_dvs(path: str) -> np.ndarray:
    from tonic.io import read_aedat4

    try:
        events = read_aedat4(path)
    except ImportError as e:
        raise ImportError(
            "reading CIFAR10-DVS (AEDAT4) needs the 'aedat' package: pip install 'snnjax[data]'"
        ) from e
    except Exception as e:  # aedat raises RuntimeError/OSError with a bare message
        raise CorruptFileError(path, f"unreadable AEDAT4 recording ({e})") from e
    events.dtype.names = ("t", "x", "y", "p")  # aedat calls the polarity "on", as tonic renames
    return events


SPECS: dict[str, EventSpec] = {
    "nmnist": EventSpec(
        name="nmnist", title="N-MNIST", folder="NMNIST", sensor_size=(34, 34), size=(34, 34),
        T=10, num_classes=10, find=_find_nmnist, read=_read_nmnist,
        download=(
            "download train.zip and test.zip from https://www.garrickorchard.com/datasets/"
            "n-mnist (or run tonic.datasets.NMNIST(save_to={data_dir}) on a machine with network) "
            "and extract them so that {root}/Train/0/*.bin and {root}/Test/0/*.bin exist"
        ),
    ),
    "dvs_gesture": EventSpec(
        name="dvs_gesture", title="DVS128 Gesture", folder="DVSGesture",
        sensor_size=(128, 128), size=(128, 128), T=20, num_classes=11,
        find=_find_dvs_gesture, read=_read_dvs_gesture,
        download=(
            "download tonic's preprocessed release ibmGestureTrain.tar.gz and "
            "ibmGestureTest.tar.gz (figshare files 38022171 and 38020584; or run "
            "tonic.datasets.DVSGesture(save_to={data_dir}) on a machine with network) and extract "
            "them so that {root}/ibmGestureTrain/user01_fluorescent/0.npy exists"
        ),
    ),
    "cifar10_dvs": EventSpec(
        name="cifar10_dvs", title="CIFAR10-DVS", folder="CIFAR10DVS",
        sensor_size=(128, 128), size=(48, 48), T=10, num_classes=10,
        find=_find_cifar10_dvs, read=_read_cifar10_dvs,
        download=(
            "download tonic's AEDAT4 release CIFAR10DVS.zip (figshare file 38023437; or run "
            "tonic.datasets.CIFAR10DVS(save_to={data_dir}) on a machine with network), extract it "
            "and the per-class zips in it so that {root}/airplane/*.aedat4 … {root}/truck/"
            "*.aedat4 exist"
        ),
    ),
}


def _not_found(spec: EventSpec, data_dir: str | None, split: str) -> DatasetNotFoundError:
    root = os.path.join(data_dir, spec.folder) if data_dir else f"DATA_DIR/{spec.folder}"
    where = f"no {split} recordings under {root}" if data_dir else "no --data-dir given"
    return DatasetNotFoundError(
        f"{spec.title} not found ({where}): "
        f"{spec.download.format(root=root, data_dir=data_dir or 'DATA_DIR')}, then pass "
        f"--data-dir {data_dir or 'DATA_DIR'}"
    )


def list_files(spec: EventSpec, data_dir: str | None, split: str) -> Files:
    """The ``(path, label)`` recordings of a split, in a fixed order.

    Raises:
      DatasetNotFoundError: no recordings found.
      DatasetLayoutError: a misplaced or misnamed file or folder (named in the message).
      CorruptFileError: an empty (0-byte) recording.
    """
    if not data_dir:
        raise _not_found(spec, data_dir, split)
    root = os.path.join(os.path.expanduser(data_dir), spec.folder)
    files = spec.find(root, split) if os.path.isdir(root) else []
    if not files:
        raise _not_found(spec, data_dir, split)
    for path, _ in files:
        if os.path.getsize(path) == 0:
            raise CorruptFileError(path, f"empty {spec.title} recording (0 bytes)")
    return files


def read_events(spec: EventSpec, path: str) -> np.ndarray:
    """One recording's events (fields ``x, y, t, p``), read by tonic's reader for ``spec``."""
    return spec.read(path)


def _warn_short(spec: EventSpec, split: str, files: Files, n_events: np.ndarray, T: int,
                root: str) -> None:
    """Name the recordings with far fewer events than their split's median."""
    if not len(n_events):
        return
    threshold = max(T, float(np.median(n_events)) / 20)
    short = np.flatnonzero(n_events < threshold)
    if not len(short):
        return
    listed = ", ".join(
        f"{os.path.relpath(files[i][0], root)} ({n_events[i]} events)" for i in short[:10]
    )
    more = f" and {len(short) - 10} more" if len(short) > 10 else ""
    warnings.warn(
        f"{spec.title} {split}: {len(short)} of {len(files)} recordings under {root} have fewer "
        f"than {threshold:g} events (T={T}, or 1/20 of the median {np.median(n_events):g}), cut "
        f"short? {listed}{more}; they are used as they are",
        ShortRecordingWarning, stacklevel=3,
    )


def _as_size(size) -> tuple[int, int]:
    size = (size, size) if isinstance(size, int) else tuple(size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"frame size must be an int or (H, W) of positive ints, got {size}")
    return int(size[0]), int(size[1])


def load_events(
    name: str,
    split: str = "train",
    data_dir: str | None = None,
    *,
    T: int | None = None,
    size: int | tuple[int, int] | None = None,
    split_by: str = "number",
    cache_dir: str | None = None,
    workers: int | None = None,
) -> ArrayDataset:
    """Load an event dataset split as frames, converting and caching them on first use.

    Args:
      name: ``"nmnist"``, ``"dvs_gesture"`` or ``"cifar10_dvs"``.
      split: ``"train"`` or ``"test"``.
      data_dir: the folder holding tonic's dataset folder (``NMNIST``, ``DVSGesture``,
        ``CIFAR10DVS``).
      T: frames per sample (default: the papers', 10 / 20 / 10).
      size: frame size ``(H, W)`` or an int (default: 34, 128 and 48); a size other than the
        sensor's is a bilinear resize of the sensor-size count frames.
      split_by: ``"number"`` (equal event counts, the remainder in the last frame: the papers')
        or ``"time"`` (equal durations); see :mod:`snnjax.data.frames`.
      cache_dir: where frame caches go (default ``<data_dir>/snnjax_cache``; the CLI's
        ``--cache-dir``), e.g. when the data directory is read-only.
      workers: conversion processes (default: all cores, one for small splits).

    Returns:
      ``ArrayDataset`` with ``x [N, T, H, W, 2]`` (int16 counts at the sensor's size, float32
      when resized), ``temporal=True``.

    Raises:
      DatasetNotFoundError: the recordings are missing (says what to download, where).
      DatasetLayoutError: a misplaced or misnamed file or folder, an empty class folder, or
        a split left without recordings (names it).
      CorruptFileError: an empty, truncated or unreadable recording (names it).
      CacheDirError: the cache cannot be written (says to pass ``--cache-dir``).
    """
    spec = SPECS[name]
    T = spec.T if T is None else int(T)
    if T < 1:
        raise ValueError(f"T (frames) must be >= 1, got {T}")
    if split_by not in SPLITS:
        raise ValueError(f"split_by must be one of {SPLITS}, got {split_by!r}")
    size = spec.size if size is None else _as_size(size)
    files = list_files(spec, data_dir, split)
    root = os.path.join(os.path.expanduser(data_dir), spec.folder)
    cache_dir = os.path.expanduser(cache_dir or os.path.join(data_dir, "snnjax_cache"))
    digests = cache.file_digests([p for p, _ in files],
                                 os.path.join(cache_dir, f"{name}-digests.json"))
    w, h = spec.sensor_size
    meta = {
        "format": _FORMAT, "dataset": name, "split": split, "T": T, "size": list(size),
        "split_by": split_by, "resize": "none" if size == (h, w) else "bilinear-antialias",
        "files": cache.cache_key({
            "files": [[os.path.relpath(p, root), lab, d] for (p, lab), d in zip(files, digests)],
        }),
    }
    path = os.path.join(
        cache_dir, f"{name}-{split}-T{T}-{size[0]}x{size[1]}-{cache.cache_key(meta)}.npz"
    )
    arrays = None
    if os.path.exists(path):
        try:
            arrays = cache.read_npz(path, ("x", "y", "n_events"), meta)
        except CorruptFileError as e:
            warnings.warn(f"{e}; rebuilding it", DamagedCacheWarning, stacklevel=3)
    if arrays is None:
        flag = "--cache-dir DIR (Python: cache_dir=...)"
        cache.ensure_writable(cache_dir, flag=flag)
        cache.remove_stale_temps(cache_dir)
        x, n_events = convert(spec, files, T=T, size=size, split_by=split_by, workers=workers,
                              desc=f"{spec.title} {split} → frames")
        arrays = {"x": x, "y": np.array([lab for _, lab in files], dtype=np.int32),
                  "n_events": n_events}
        try:
            cache.write_npz_atomic(path, arrays, meta)
        except OSError as e:
            raise CacheDirError(
                f"cannot write the frame cache {path} ({e.strerror or e}): pass {flag} to put "
                "it in a writable folder with room"
            ) from None
    _warn_short(spec, split, files, arrays["n_events"], T, root)
    return ArrayDataset(arrays["x"], arrays["y"], spec.num_classes, name, temporal=True)


def _loader(name: str):
    def load(
        split: str = "train", data_dir: str | None = None, T: int | None = None,
        size: int | tuple[int, int] | None = None, split_by: str = "number",
        cache_dir: str | None = None, workers: int | None = None,
    ) -> ArrayDataset:
        return load_events(name, split, data_dir, T=T, size=size, split_by=split_by,
                           cache_dir=cache_dir, workers=workers)

    load.__doc__ = f"{SPECS[name].title} frames; see :func:`load_events`."
    return load


register("nmnist", _loader("nmnist"), aliases=("n_mnist",))
register("dvs_gesture", _loader("dvs_gesture"), aliases=("dvs128_gesture", "dvsgesture"))
register("cifar10_dvs", _loader("cifar10_dvs"), aliases=("cifar10dvs",))
