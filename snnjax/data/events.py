"""Event-camera datasets through tonic: N-MNIST, DVS128 Gesture, CIFAR10-DVS.

Each dataset is read from ``--data-dir`` in the layout tonic's dataset classes download and
extract to (``<data_dir>/NMNIST/Train/3/00004.bin``, ``<data_dir>/DVSGesture/ibmGestureTrain/
user01_fluorescent/0.npy``, ``<data_dir>/CIFAR10DVS/airplane/cifar10_airplane_0.aedat4``), and
each file is decoded by tonic's own reader. We walk the folders ourselves instead of
instantiating tonic's classes because those start a download whenever their file-count
heuristic fails, which without network ends in a ``URLError``; here a missing dataset raises
:class:`~snnjax.data.errors.DatasetNotFoundError` saying what to download and where to put it.

Recordings become ``T`` frames of equal event count, 2 polarities, resized
(:func:`~snnjax.data.frames.to_frames`), stored as ``x [N, T, H, W, 2]`` int16 counts
(``temporal=True``). The frames of a split are converted once and cached in
``<cache_dir or data_dir/snnjax_cache>/<name>-<split>-T<T>-<H>x<W>-<key>.npz``, written
atomically (:mod:`snnjax.data.cache`); ``key`` hashes the settings and the raw files' names,
sizes and modification times, so a changed dataset is converted again.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable

import numpy as np

from snnjax.data.cache import cache_key, read_npz, write_npz_atomic
from snnjax.data.dataset import ArrayDataset, register
from snnjax.data.errors import CorruptFileError, DatasetNotFoundError
from snnjax.data.frames import to_frames

__all__ = ["EventSpec", "SPECS", "load_events", "list_files", "read_events"]

# Bump when the conversion changes, so old caches are not reused.
_FORMAT = 1

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
      find: ``(root, split) -> [(path, label)]``, ``root = data_dir/folder``.
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


def _walk(top: str, suffix: str, label: Callable[[str, str], int], *, key=None,
          skip_top: bool = False) -> Files:
    """``(path, label(folder, name))`` for the files under ``top`` ending in ``suffix``,
    folders in sorted order and names sorted by ``key``; ``skip_top``: not those directly
    in ``top``."""
    files = []
    for path, dirs, names in os.walk(top):
        dirs.sort()
        if skip_top and os.path.relpath(path, top) == ".":
            continue
        for name in sorted(names, key=key):
            if name.endswith(suffix):
                files.append((os.path.join(path, name), label(path, name)))
    return files


# ---- N-MNIST ---------------------------------------------------------------------------------

def _find_nmnist(root: str, split: str) -> Files:
    top = os.path.join(root, "Train" if split == "train" else "Test")
    # tonic's rule: the folder's last character is the label
    return _walk(top, "bin", lambda folder, name: int(folder[-1]))


def _read_nmnist(path: str) -> np.ndarray:
    from tonic.datasets import NMNIST
    from tonic.io import read_mnist_file

    size = os.path.getsize(path)
    if size % 5:
        raise CorruptFileError(path, f"truncated N-MNIST file ({size} bytes, not 5 per event)")
    return read_mnist_file(path, dtype=NMNIST.dtype)


# ---- DVS128 Gesture (tonic's preprocessed release: one .npy per gesture) --------------------

def _find_dvs_gesture(root: str, split: str) -> Files:
    top = os.path.join(root, "ibmGestureTrain" if split == "train" else "ibmGestureTest")
    # tonic's rule: recordings live in user<NN>_<lighting>/<label>.npy
    return _walk(top, "npy", lambda folder, name: int(name[:-4]), key=_natural_key,
                 skip_top=True)


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


def _find_cifar10_dvs(root: str, split: str) -> Files:
    """The first 90 % of each class's recordings (900 of 1,000) train, the rest test.

    Recordings are ordered by their number (``cifar10_cat_2`` before ``cifar10_cat_10``).
    """
    files = []
    for label, cls in enumerate(_CIFAR10_CLASSES):
        folder = os.path.join(root, cls)
        if not os.path.isdir(folder):
            continue
        names = sorted((n for n in os.listdir(folder) if n.endswith("aedat4")), key=_natural_key)
        n_train = int(round(0.9 * len(names)))
        chosen = names[:n_train] if split == "train" else names[n_train:]
        files += [(os.path.join(folder, n), label) for n in chosen]
    return files


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
    """
    if not data_dir:
        raise _not_found(spec, data_dir, split)
    root = os.path.join(os.path.expanduser(data_dir), spec.folder)
    files = spec.find(root, split) if os.path.isdir(root) else []
    if not files:
        raise _not_found(spec, data_dir, split)
    return files


def read_events(spec: EventSpec, path: str) -> np.ndarray:
    """One recording's events (fields ``x, y, t, p``), read by tonic's reader for ``spec``."""
    return spec.read(path)


def _convert(spec: EventSpec, files: Files, T: int, size: tuple[int, int]) -> np.ndarray:
    frames = np.zeros((len(files), T, *size, 2), dtype=np.int16)
    for i, (path, _) in enumerate(files):
        events = spec.read(path)
        try:
            frames[i] = to_frames(events, sensor_size=spec.sensor_size, size=size, T=T)
        except ValueError as e:
            raise CorruptFileError(path, f"bad events for {spec.title} ({e})") from e
    return frames


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
    cache_dir: str | None = None,
) -> ArrayDataset:
    """Load an event dataset split as frames, converting and caching them on first use.

    Args:
      name: ``"nmnist"``, ``"dvs_gesture"`` or ``"cifar10_dvs"``.
      split: ``"train"`` or ``"test"``.
      data_dir: the folder holding tonic's dataset folder (``NMNIST``, ``DVSGesture``,
        ``CIFAR10DVS``).
      T: frames per sample (default: the papers', 10 / 20 / 10).
      size: frame size ``(H, W)`` or an int (default: 34, 128 and 48).
      cache_dir: where frame caches go (default ``<data_dir>/snnjax_cache``).

    Returns:
      ``ArrayDataset`` with ``x [N, T, H, W, 2]`` int16 counts, ``temporal=True``.

    Raises:
      DatasetNotFoundError: the recordings are missing (says what to download, where).
      CorruptFileError: a recording or the cache is truncated or unreadable (names it).
    """
    spec = SPECS[name]
    T = spec.T if T is None else int(T)
    if T < 1:
        raise ValueError(f"T (frames) must be >= 1, got {T}")
    size = spec.size if size is None else _as_size(size)
    files = list_files(spec, data_dir, split)
    root = os.path.join(os.path.expanduser(data_dir), spec.folder)
    stats = [os.stat(p) for p, _ in files]
    meta = {
        "format": _FORMAT, "dataset": name, "split": split, "T": T, "size": list(size),
        "files": cache_key({
            "files": [[os.path.relpath(p, root), lab, s.st_size, s.st_mtime_ns]
                      for (p, lab), s in zip(files, stats)],
        }),
    }
    cache_dir = cache_dir or os.path.join(os.path.expanduser(data_dir), "snnjax_cache")
    path = os.path.join(
        cache_dir, f"{name}-{split}-T{T}-{size[0]}x{size[1]}-{cache_key(meta)}.npz"
    )
    if os.path.exists(path):
        arrays = read_npz(path, ("x", "y"), meta)
    else:
        arrays = {
            "x": _convert(spec, files, T, size),
            "y": np.array([lab for _, lab in files], dtype=np.int32),
        }
        write_npz_atomic(path, arrays, meta)
    return ArrayDataset(arrays["x"], arrays["y"], spec.num_classes, name, temporal=True)


def _loader(name: str):
    def load(
        split: str = "train", data_dir: str | None = None, T: int | None = None,
        size: int | tuple[int, int] | None = None, cache_dir: str | None = None,
    ) -> ArrayDataset:
        return load_events(name, split, data_dir, T=T, size=size, cache_dir=cache_dir)

    load.__doc__ = f"{SPECS[name].title} frames; see :func:`load_events`."
    return load


register("nmnist", _loader("nmnist"), aliases=("n_mnist",))
register("dvs_gesture", _loader("dvs_gesture"), aliases=("dvs128_gesture", "dvsgesture"))
register("cifar10_dvs", _loader("cifar10_dvs"), aliases=("cifar10dvs",))
