"""Tiny synthetic datasets written in each real on-disk format (tests, benchmarks, demos).

The event writers produce the files tonic's readers decode: N-MNIST's 5-byte ``.bin`` events,
DVS128 Gesture's ``[N, 4]`` ``.npy`` (tonic's preprocessed release) and CIFAR10-DVS's AEDAT4
(a flatbuffers container, written here byte by byte: the format's header, an ``IOHE``
description naming one ``EVTS`` stream, and uncompressed event packets). The static writer
prepares a tfds array_record directory (:func:`~snnjax.data.tfds_source.prepare_arrays`).
"""

from __future__ import annotations

import os
import struct

import numpy as np

from snnjax.data.events import SPECS as EVENT_SPECS

__all__ = [
    "random_events", "write_nmnist_bin", "write_dvs_gesture_npy", "write_aedat4",
    "write_event_dataset", "write_image_dataset",
]


def random_events(
    n: int, sensor_size: tuple[int, int], rng: np.random.Generator, *, t_max: int = 300_000
) -> dict[str, np.ndarray]:
    """``n`` random events in time order: ``{"x", "y", "t", "p"}`` int64 arrays."""
    w, h = sensor_size
    return {
        "x": rng.integers(0, w, n), "y": rng.integers(0, h, n),
        "t": np.sort(rng.integers(0, t_max, n)), "p": rng.integers(0, 2, n),
    }


def write_nmnist_bin(path: str, ev: dict[str, np.ndarray]) -> None:
    """N-MNIST's format: 5 bytes per event, ``x``, ``y``, then ``p`` (bit 7) and a 23-bit
    timestamp in microseconds, big-endian."""
    t = np.asarray(ev["t"], dtype=np.int64)
    if t.size and (t.min() < 0 or t.max() >= 2**23):
        raise ValueError("N-MNIST timestamps must fit in 23 bits")
    raw = np.empty((len(t), 5), dtype=np.uint8)
    raw[:, 0] = ev["x"]
    raw[:, 1] = ev["y"]
    raw[:, 2] = (np.asarray(ev["p"]) << 7) | ((t >> 16) & 0x7F)
    raw[:, 3] = (t >> 8) & 0xFF
    raw[:, 4] = t & 0xFF
    with open(path, "wb") as f:
        f.write(raw.tobytes())


def write_dvs_gesture_npy(path: str, ev: dict[str, np.ndarray]) -> None:
    """tonic's DVS Gesture release: an ``[N, 4]`` array of ``(x, y, p, t in ms)``."""
    np.save(path, np.stack([ev["x"], ev["y"], ev["p"], ev["t"] // 1000], axis=1))


_AEDAT4_MAGIC = b"#!AER-DAT4.0\r\n"


def _aedat4_header(width: int, height: int) -> bytes:
    """The size-prefixed ``IOHE`` flatbuffer: no compression, one ``EVTS`` stream, id 0."""
    description = (
        '<dv version="2.0"><node name="outInfo"><node name="0">'
        '<attr key="typeIdentifier" type="string">EVTS</attr><node name="info">'
        f'<attr key="sizeX" type="int">{width}</attr>'
        f'<attr key="sizeY" type="int">{height}</attr>'
        "</node></node></node></dv>"
    ).encode()
    # Offsets from the start of the buffer (after the size prefix):
    # 0 root offset -> table at 20, 4 identifier, 8 vtable (3 fields: compression and
    # file_data_position left at their defaults, description at +4), 20 table, 28 string.
    body = struct.pack("<I4s", 20, b"IOHE")
    body += struct.pack("<HHHHH", 10, 8, 0, 0, 4) + b"\0\0"
    body += struct.pack("<iI", 20 - 8, 4)
    body += struct.pack("<I", len(description)) + description + b"\0"
    body += b"\0" * (-len(body) % 8)
    return struct.pack("<I", len(body)) + body


def _aedat4_events_packet(ev: dict[str, np.ndarray], lo: int, hi: int) -> bytes:
    """One packet: stream id 0, its size, and a size-prefixed ``EVTS`` flatbuffer."""
    n = hi - lo
    # struct Event {t: int64; x: int16; y: int16; on: bool} is 16 bytes with its padding.
    elements = np.zeros(n, np.dtype([("t", "<i8"), ("x", "<i2"), ("y", "<i2"),
                                     ("on", "u1"), ("pad", "V3")]))
    elements["t"], elements["x"] = ev["t"][lo:hi], ev["x"][lo:hi]
    elements["y"], elements["on"] = ev["y"][lo:hi], ev["p"][lo:hi]
    # Offsets from the size prefix: 4 root offset -> table at 20, 8 identifier, 12 vtable
    # (one field at +4), 20 table, 28 vector length, 32 elements (8-byte aligned).
    buf = struct.pack("<I4s", 16, b"EVTS")
    buf += struct.pack("<HHH", 6, 8, 4) + b"\0\0"
    buf += struct.pack("<iI", 20 - 12, 4)
    buf += struct.pack("<I", n) + elements.tobytes()
    payload = struct.pack("<I", len(buf)) + buf
    return struct.pack("<II", 0, len(payload)) + payload


def write_aedat4(
    path: str, ev: dict[str, np.ndarray], sensor_size: tuple[int, int], packet_size: int = 4096
) -> None:
    """An uncompressed AEDAT4 file holding ``ev`` in packets of ``packet_size`` events."""
    with open(path, "wb") as f:
        f.write(_AEDAT4_MAGIC + _aedat4_header(*sensor_size))
        n = len(ev["t"])
        for lo in range(0, max(n, 1), packet_size):
            f.write(_aedat4_events_packet(ev, lo, min(n, lo + packet_size)))


def write_event_dataset(
    name: str,
    data_dir: str,
    *,
    per_class: int,
    events: int | tuple[int, int],
    rng: np.random.Generator,
    num_classes: int | None = None,
) -> dict[str, list[tuple[str, int, dict]]]:
    """Write a tiny ``nmnist``/``dvs_gesture``/``cifar10_dvs`` in tonic's layout.

    Args:
      name: the dataset.
      data_dir: the ``--data-dir`` to write under (tonic's folder is created in it).
      per_class: recordings per class and split (CIFAR10-DVS: per class in all; its loader
        takes the first 90 % for training).
      events: events per recording, or a ``(low, high)`` range to draw from.
      rng: the random generator.
      num_classes: classes to write (default: all of the dataset's).

    Returns:
      ``{split: [(path, label, events)]}`` (CIFAR10-DVS: all files under ``"all"``).
    """
    spec = EVENT_SPECS[name]
    root = os.path.join(data_dir, spec.folder)
    classes = range(num_classes or spec.num_classes)

    def draw():
        n = events if isinstance(events, int) else int(rng.integers(events[0], events[1] + 1))
        return random_events(n, spec.sensor_size, rng)

    written: dict[str, list] = {}
    if name == "nmnist":
        for split, folder in (("train", "Train"), ("test", "Test")):
            for c in classes:
                os.makedirs(os.path.join(root, folder, str(c)), exist_ok=True)
                for i in range(per_class):
                    path = os.path.join(root, folder, str(c), f"{i:05d}.bin")
                    ev = draw()
                    write_nmnist_bin(path, ev)
                    written.setdefault(split, []).append((path, c, ev))
    elif name == "dvs_gesture":
        for split, folder in (("train", "ibmGestureTrain"), ("test", "ibmGestureTest")):
            for u in range(per_class):
                user = os.path.join(root, folder, f"user{u + 1:02d}_fluorescent")
                os.makedirs(user, exist_ok=True)
                for c in classes:
                    ev = draw()
                    ev["t"] = ev["t"] // 1000 * 1000  # the release stores milliseconds
                    path = os.path.join(user, f"{c}.npy")
                    write_dvs_gesture_npy(path, ev)
                    written.setdefault(split, []).append((path, c, ev))
    elif name == "cifar10_dvs":
        from snnjax.data.events import _CIFAR10_CLASSES

        for c in classes:
            folder = os.path.join(root, _CIFAR10_CLASSES[c])
            os.makedirs(folder, exist_ok=True)
            for i in range(per_class):
                path = os.path.join(folder, f"cifar10_{_CIFAR10_CLASSES[c]}_{i}.aedat4")
                ev = draw()
                write_aedat4(path, ev, spec.sensor_size)
                written.setdefault("all", []).append((path, c, ev))
    else:
        raise ValueError(f"no synthetic writer for {name!r}")
    return written


def write_image_dataset(
    name: str,
    data_dir: str,
    *,
    shape: tuple[int, int, int],
    sizes: dict[str, int],
    num_classes: int,
    rng: np.random.Generator,
    version: str = "1.0.0",
    encode_png: bool = True,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Prepare random uint8 images as a tfds array_record dataset ``<data_dir>/<name>/``.

    Returns:
      ``{split: (images [N, *shape] uint8, labels [N] int64)}`` as written.
    """
    from snnjax.data.tfds_source import prepare_arrays

    splits = {
        s: (rng.integers(0, 256, (n, *shape), dtype=np.uint8), rng.integers(0, num_classes, n))
        for s, n in sizes.items()
    }
    prepare_arrays(name, data_dir, splits, num_classes, version=version, encode_png=encode_png)
    return splits
