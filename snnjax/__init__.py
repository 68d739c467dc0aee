"""snnjax: memory-efficient training rules for spiking neural networks in JAX."""

from snnjax import allocator as allocator
from snnjax import cost as cost
from snnjax import data as data
from snnjax import diagnostics as diagnostics
from snnjax import losses as losses
from snnjax import models as models
from snnjax import layers as layers
from snnjax import neuron as neuron
from snnjax import neurons as neurons
from snnjax import recurrent as recurrent
from snnjax import rules as rules
from snnjax import surrogate as surrogate
from snnjax import targets as targets
from snnjax.neuron import LIFParams as LIFParams
from snnjax.train import TrainState as TrainState
from snnjax.train import Trainer as Trainer

__version__ = "0.1.0"
