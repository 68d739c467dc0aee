"""Prepared tensorflow-datasets directories, read without TensorFlow.

tfds's catalog builders (``mnist``, ``cifar10``, ``imagenet2012``, …) need TensorFlow to
*prepare* a dataset, but a dataset prepared in the ``array_record`` file format is read back
here with ``tfds.builder_from_directory(...).as_data_source(split)`` and NumPy/PIL only. We
never call ``tfds.load`` or a catalog builder: without network those retry DNS for minutes.

A prepared directory is ``<data_dir>/<name>/<version>/`` holding ``dataset_info.json``,
``features.json`` and ``<name>-<split>.array_record-NNNNN-of-NNNNN`` files, as written by
``tfds build <name> --data_dir <data_dir> --file_format array_record`` (with TensorFlow) or by
:func:`prepare_arrays` (without).
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from snnjax.data.errors import CorruptFileError

__all__ = ["find_prepared", "read_split", "LazyImages", "prepare_arrays"]

_CHUNK = 1024


def _version_key(name: str):
    try:
        return tuple(int(v) for v in name.split("."))
    except ValueError:
        return (-1,)


def find_prepared(name: str, data_dir: str | None) -> str | None:
    """The newest prepared version directory of ``name`` under ``data_dir``, or None.

    ``data_dir`` may be the tfds data dir (holding ``<name>/``), the dataset's own folder
    (holding versions) or a version folder itself.
    """
    if not data_dir:
        return None
    data_dir = os.path.expanduser(data_dir)
    if os.path.isfile(os.path.join(data_dir, "dataset_info.json")):
        return data_dir
    for top in (os.path.join(data_dir, name), data_dir):
        if not os.path.isdir(top):
            continue
        versions = [
            v for v in os.listdir(top)
            if os.path.isfile(os.path.join(top, v, "dataset_info.json"))
        ]
        if versions:
            return os.path.join(top, max(versions, key=_version_key))
    return None


def _builder(path: str):
    import tensorflow_datasets as tfds

    try:
        return tfds.builder_from_directory(path)
    except Exception as e:  # tfds raises various errors for a damaged directory
        raise CorruptFileError(path, f"not a readable tfds dataset directory ({e})") from e


def _source(builder, path: str, split: str, skip_image_decoding: bool):
    import tensorflow_datasets as tfds

    if split not in builder.info.splits:
        raise ValueError(f"{path} has splits {sorted(builder.info.splits)}, not {split!r}")
    decoders = {"image": tfds.decode.SkipDecoding()} if skip_image_decoding else None
    try:
        return builder.as_data_source(split, decoders=decoders)
    except (NotImplementedError, ValueError) as e:
        raise CorruptFileError(
            path,
            f"prepared as {builder.info.file_format}, which cannot be read without "
            "TensorFlow: prepare it again with --file_format array_record",
        ) from e


def _is_encoded_image(builder) -> bool:
    import tensorflow_datasets as tfds

    return isinstance(builder.info.features["image"], tfds.features.Image)


def decode_image(data: bytes, channels: int) -> np.ndarray:
    """PNG/JPEG bytes -> ``[H, W, channels]`` uint8 (PIL; no TensorFlow, no OpenCV)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        im = im.convert("L" if channels == 1 else "RGB")
        a = np.asarray(im, dtype=np.uint8)
    return a[..., None] if a.ndim == 2 else a


def _records(source, path: str, idx: Sequence[int]) -> list[dict]:
    try:
        return source.__getitems__(list(idx))
    except Exception as e:  # array_record raises on truncated or corrupted shards
        raise CorruptFileError(path, f"cannot read records ({e})") from e


def read_split(path: str, split: str) -> tuple[np.ndarray, np.ndarray, int]:
    """All images and labels of a split of a prepared directory, in memory.

    Returns:
      ``(images [N, H, W, C] uint8, labels [N] int32, num_classes)``.
    """
    builder = _builder(path)
    encoded = _is_encoded_image(builder)
    source = _source(builder, path, split, skip_image_decoding=encoded)
    shape = builder.info.features["image"].shape
    n = len(source)
    images: np.ndarray | None = None
    labels = np.empty(n, dtype=np.int32)
    for lo in range(0, n, _CHUNK):
        for i, rec in enumerate(_records(source, path, range(lo, min(n, lo + _CHUNK))), lo):
            img = decode_image(rec["image"], shape[-1]) if encoded else np.asarray(rec["image"])
            if images is None:
                images = np.empty((n, *img.shape), dtype=np.uint8)
            images[i] = img
            labels[i] = rec["label"]
    if images is None:
        raise CorruptFileError(path, f"split {split!r} is empty")
    return images, labels, builder.info.features["label"].num_classes


class LazyImages:
    """A split's images, decoded and resized on indexing (for datasets too big for memory).

    Indexing with an integer array returns ``[B, S, S, 3]`` uint8: each image's shorter side
    is resized to ``round(S · 256/224)`` and the centre ``S``×``S`` crop kept (the usual
    ImageNet evaluation transform; training adds the loader's flips). A batch's images are
    decoded by ``workers`` threads (PIL releases the GIL while it decodes and resizes).
    """

    def __init__(self, path: str, split: str, image_size: int, workers: int | None = None):
        builder = _builder(path)
        self._path, self._size = path, int(image_size)
        self._source = _source(builder, path, split, skip_image_decoding=True)
        self._workers = workers or min(8, os.cpu_count() or 1)
        self._pool = None
        self.shape = (len(self._source), self._size, self._size, 3)
        self.dtype = np.dtype(np.uint8)

    def __len__(self) -> int:
        return self.shape[0]

    def _decode(self, data: Any) -> np.ndarray:
        from PIL import Image

        s = self._size
        with Image.open(io.BytesIO(data)) as im:
            im = im.convert("RGB")
            short = round(s * 256 / 224)
            w, h = im.size
            scale = short / min(w, h)
            im = im.resize((max(s, round(w * scale)), max(s, round(h * scale))), Image.BILINEAR)
            left, top = (im.size[0] - s) // 2, (im.size[1] - s) // 2
            return np.asarray(im.crop((left, top, left + s, top + s)), dtype=np.uint8)

    def __getitem__(self, idx) -> np.ndarray:
        idx = np.atleast_1d(np.asarray(idx))
        recs = _records(self._source, self._path, [int(i) for i in idx])
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="snnjax-decode")
        return np.stack(list(self._pool.map(self._decode, [r["image"] for r in recs])))

    def labels(self) -> np.ndarray:
        """All labels ``[N]`` int32 (reads every record, without decoding images)."""
        n = len(self)
        out = np.empty(n, dtype=np.int32)
        for lo in range(0, n, _CHUNK):
            recs = _records(self._source, self._path, range(lo, min(n, lo + _CHUNK)))
            out[lo:lo + len(recs)] = [r["label"] for r in recs]
        return out


def prepare_arrays(
    name: str,
    data_dir: str,
    splits: dict[str, tuple[np.ndarray, np.ndarray]],
    num_classes: int,
    *,
    version: str = "1.0.0",
    encode_png: bool = False,
) -> str:
    """Write arrays as a prepared tfds dataset (array_record), without TensorFlow.

    A builder of our own (not the catalog's) with an ``image`` and a ``label`` feature: the
    same feature names as tfds's image catalog, so :func:`read_split` reads either. With
    ``encode_png`` the images are stored PNG-encoded in a ``tfds.features.Image`` feature,
    byte-for-byte the catalog's layout; else as a raw ``Tensor``.

    Args:
      name: dataset name (the directory ``<data_dir>/<name>/<version>``).
      data_dir: tfds data directory.
      splits: split name -> ``(images [N, H, W, C] uint8, labels [N] int)``.
      num_classes: number of classes of the ``ClassLabel`` feature.
      version: dataset version, ``"x.y.z"``.
      encode_png: store PNG bytes in an ``Image`` feature (the catalog's format).

    Returns:
      The prepared version directory.
    """
    import tensorflow_datasets as tfds

    shape = next(iter(splits.values()))[0].shape[1:]

    def png(img: np.ndarray) -> bytes:
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img).save(buf, format="PNG")
        return buf.getvalue()

    class _ArrayBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        VERSION = tfds.core.Version(version)

        def _info(self):
            image = (
                tfds.features.Image(shape=shape) if encode_png
                else tfds.features.Tensor(shape=shape, dtype=np.uint8)
            )
            return tfds.core.DatasetInfo(
                builder=self,
                features=tfds.features.FeaturesDict({
                    "image": image, "label": tfds.features.ClassLabel(num_classes=num_classes),
                }),
            )

        def _split_generators(self, dl_manager):
            return {s: self._generate_examples(x, y) for s, (x, y) in splits.items()}

        def _generate_examples(self, x, y):
            for i in range(len(y)):
                yield i, {"image": png(x[i]) if encode_png else x[i], "label": int(y[i])}

    _ArrayBuilder.name = name
    builder = _ArrayBuilder(data_dir=os.path.expanduser(data_dir), file_format="array_record")
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False)
    )
    path = os.path.join(os.path.expanduser(data_dir), name, version)
    with open(os.path.join(path, "dataset_info.json")) as f:
        json.load(f)  # written and parseable
    return path
