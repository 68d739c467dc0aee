"""Spiking models: flax modules over chunks of time that train under every rule."""

from snnjax.models.base import Block as Block
from snnjax.models.base import ConvUnit as ConvUnit
from snnjax.models.base import DenseUnit as DenseUnit
from snnjax.models.base import SpikingSequential as SpikingSequential
from snnjax.models.zoo import VGG11_CFG as VGG11_CFG
from snnjax.models.zoo import cnn as cnn
from snnjax.models.zoo import mlp as mlp
from snnjax.models.zoo import vgg11_sws as vgg11_sws
from snnjax.models.alexnet import alexnet as alexnet
from snnjax.models.resnet import preact_resnet as preact_resnet
from snnjax.models.resnet import resnet18 as resnet18
from snnjax.models.resnet import resnet34 as resnet34
from snnjax.models.rsnn import rsnn as rsnn
from snnjax.models.rsnn import rsnn_alif as rsnn_alif
from snnjax.models.vgg import vgg11_bn as vgg11_bn
from snnjax.models.vgg import vgg11f_sws as vgg11f_sws

_REGISTRY = {"mlp": mlp, "cnn": cnn, "vgg11_sws": vgg11_sws}
# The papers' networks (issue 6).
_REGISTRY.update(
    resnet18=resnet18, resnet34=resnet34, vgg11_bn=vgg11_bn, vgg11f_sws=vgg11f_sws,
    alexnet=alexnet,
)
# Recurrent networks (issue 25).
_REGISTRY.update(rsnn=rsnn, rsnn_alif=rsnn_alif)


def names() -> tuple[str, ...]:
    """The model names accepted by :func:`get` and the CLI."""
    return tuple(_REGISTRY)


def register(name: str, factory) -> None:
    """Make ``factory(num_classes=..., **kwargs)`` available as ``get(name)``."""
    _REGISTRY[name] = factory


def factory(name: str):
    """The factory registered as ``name`` (``"vgg11-sws"`` and ``"vgg11_sws"`` both work)."""
    key = name.replace("-", "_").lower()
    if key not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(_REGISTRY)}")
    return _REGISTRY[key]


def get(name: str, num_classes: int, **kwargs) -> SpikingSequential:
    """A model by name, built by its factory with ``num_classes`` and ``kwargs``."""
    return factory(name)(num_classes=num_classes, **kwargs)
