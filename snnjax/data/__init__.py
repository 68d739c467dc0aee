"""Datasets as NumPy arrays and one time-major batch iterator for all of them."""

from snnjax.data import digits as _digits  # noqa: F401  (registers "digits")
from snnjax.data.dataset import ArrayDataset as ArrayDataset
from snnjax.data.dataset import load as load
from snnjax.data.dataset import names as names
from snnjax.data.dataset import register as register
from snnjax.data.encoding import direct as direct
from snnjax.data.encoding import poisson as poisson
from snnjax.data.loader import Loader as Loader
