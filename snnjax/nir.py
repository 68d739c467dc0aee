"""Export to and import from NIR, the Neuromorphic Intermediate Representation.

NIR (package ``nir``; Pedersen et al., *Nature Communications*, 2024) is the graph
format snnTorch, spyx, norse, Sinabs, Lava and several neuromorphic chips read and write.
:func:`export` writes a :class:`~snnjax.models.SpikingSequential` of
:class:`~snnjax.models.DenseUnit` and :class:`~snnjax.models.ConvUnit` as a chain of NIR
nodes; :func:`import_` reads such a chain back into a model and its parameters::

    graph = snnjax.nir.export(model, params, input_shape=(32, 32, 3))
    nir.write("net.nir", graph)
    model, params = snnjax.nir.import_(nir.read("net.nir"))

It needs the optional extra ``nir`` (``pip install "snnjax[nir]"``).

Neurons: NIR's are continuous in time, ``τ·dv/dt = (v_leak - v) + R·I`` (LIF) and
``dv/dt = R·I`` (IF), firing when ``v > v_threshold`` and then setting ``v = v_reset``.
Forward Euler with step ``dt`` gives ``v[t] = (1 - dt/τ)·v[t-1] + (dt/τ)·v_leak +
(dt·R/τ)·I[t]``, which is snnjax's ``u[t] = λ·v[t-1] + I[t]`` for

    τ = dt / (1 - λ),    R = τ / dt,    v_leak = 0,    v_threshold = V_th,  v_reset = 0

and, for IF (λ = 1), ``R = 1/dt``. These are snnTorch's relations (its export writes
``dt = 1e-4``); snnjax writes ``dt = 1`` by default, so τ is in time steps and
``λ = 1 - 1/τ`` as in :meth:`~snnjax.neuron.LIFParams.from_tau`. A PLIF (λ = sigmoid(w)) is
written as the LIF of its current λ, ``τ = dt·(1 + eᵂ)``. The graph's metadata records
``dt``; :func:`import_` reads it (or takes ``dt=`` for graphs from other tools).

Reset: NIR's neurons reset to ``v_reset``, which is snnjax's hard reset
(``v = u·(1 - s)``). In continuous time a soft (subtractive) reset is the same thing (the
potential never overshoots the threshold), but a time-stepped simulator of the graph sets
the potential to ``v_reset`` and loses the overshoot that snnjax's soft reset keeps, so the
spikes differ. snnTorch's export writes its subtract-reset ``Leaky`` as this same node and
its import runs it with reset to zero. :func:`export` refuses a soft reset unless
``allow_soft_reset=True``, which writes the NIR neuron with ``v_reset = 0`` and records
the subtraction in the node's metadata: :func:`import_` restores it exactly, other tools
reset to zero. Two more differences at the boundary: NIR fires for ``v > v_threshold``,
snnjax for ``u >= V_th`` (they differ only when the potential equals the threshold
exactly), and surrogate gradients are training-only (kept in metadata for the round trip).

Layers (NIR is channels-first, snnjax channels-last):

- input ``(H, W, C)`` → ``Input (C, H, W)`` (other ranks as they are);
- ``Dense`` → ``Affine`` with weight ``kernelᵀ`` (``[out, in]``); on a spatial map a
  ``Flatten`` first, the weight's columns reordered from snnjax's ``H, W, C`` to ``C, H, W``;
- ``Conv`` (stride s, SAME padding) → ``Conv2d`` with weight ``[out, in, kh, kw]`` and the
  symmetric padding SAME amounts to (refused when SAME pads one side more);
- scaled weight standardisation: the standardised kernel
  :func:`~snnjax.layers.standardize_weight` ``(kernel, gain)`` (imported as a plain kernel);
- BatchNorm: folded, with the running statistics (``batch_stats=``), into the synapse:
  ``W' = W·a``, ``b' = β - μ·a``, ``a = γ/√(σ² + ε)`` (exact in real arithmetic; float32
  rounding differs);
- ``× scale`` after the neuron → ``Scale``;
- 2×2 average pooling → ``AvgPool2d``; 2×2 max pooling of spikes → ``SumPool2d`` then
  ``Threshold(0.5)`` (a window's maximum of 0/1 spikes is whether its sum exceeds 0.5),
  then the unit's ``Scale``, valid for a scale > 0;
- dropout: the identity (the exported function is the model at ``train=False``);
- the readout: ``AvgPool2d`` over the whole map (when it is larger than 1×1), ``Flatten``,
  ``Affine``: the graph's output is the logits of each step.

Refused with a ValueError naming the layer: units other than ``DenseUnit``/``ConvUnit``
(ResNet units, VGG-F's feedback), neurons other than LIF/IF/PLIF, Local's auxiliary heads
in ``params`` (training-only: export the model's own parameters), BatchNorm without
running statistics, asymmetric SAME padding, max pooling after a non-positive scale, and a
soft reset unless allowed. OTTT's traces are training state, not part of the function, so a
traced synapse exports like any other.

:func:`import_` reads the chains :func:`export` writes, and those of other tools that fit
the same grammar: ``[Flatten] Affine|Linear → LIF|IF`` (a dense unit), ``Conv2d → LIF|IF →
[Scale] → [AvgPool2d 2×2 | SumPool2d 2×2 [→ Threshold 0.5]] → [Scale]`` (a conv unit; a
lone sum pool is an average pool with the scale ×4), and ``[AvgPool2d over the map]
[Flatten] Affine|Linear`` before the ``Output`` (the readout). A neuron's parameters must
be the same for all its neurons, with ``v_leak = 0`` and ``v_reset = 0``; an input gain
``g = dt·R/τ`` (or ``dt·R`` for IF) other than 1 is taken into the threshold
(``V_th = v_threshold/g``), as snnTorch's import does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

try:
    import nir
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "snnjax.nir needs the `nir` package: pip install 'snnjax[nir]' (or pip install nir)"
    ) from err

from snnjax import surrogate as surrogate_lib
from snnjax.layers import BatchNorm, standardize_weight
from snnjax.models.base import ConvUnit, DenseUnit, SpikingSequential
from snnjax.neuron import LIFParams
from snnjax.neurons import IF, LIF, PLIF, SpikingNeuron

__all__ = ["export", "import_"]

PyTree = Any
Shape = tuple[int, ...]

_POOL = 2  # ConvUnit pools 2×2 with stride 2 (snnjax.layers.pool_layer)
_MAX_THRESHOLD = 0.5  # max of 0/1 spikes over a window = H(sum - 0.5)


# ---------------------------------------------------------------------------- layouts


def _nir_shape(shape: Sequence[int]) -> Shape:
    """snnjax's per-sample shape as NIR's: ``(H, W, C) -> (C, H, W)``, others unchanged."""
    shape = tuple(int(n) for n in shape)
    return (shape[2], shape[0], shape[1]) if len(shape) == 3 else shape


def _dense_to_nir(kernel: np.ndarray, in_shape: Shape) -> np.ndarray:
    """A Dense kernel ``[prod(in_shape), F]`` on snnjax's flattened input as an NIR weight
    ``[F, prod]`` on NIR's flattened input (rows reordered ``H, W, C -> C, H, W``)."""
    if len(in_shape) == 3:
        h, w, c = in_shape
        kernel = kernel.reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(h * w * c, -1)
    return np.ascontiguousarray(kernel.T)


def _dense_from_nir(weight: np.ndarray, nir_in_shape: Shape) -> np.ndarray:
    """The inverse of :func:`_dense_to_nir`: NIR weight ``[F, prod]`` → kernel ``[prod, F]``."""
    kernel = np.asarray(weight).T
    if len(nir_in_shape) == 3:
        c, h, w = nir_in_shape
        kernel = kernel.reshape(c, h, w, -1).transpose(1, 2, 0, 3).reshape(c * h * w, -1)
    return np.ascontiguousarray(kernel)


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """The ``(low, high)`` padding of XLA's SAME on one spatial axis."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


# ---------------------------------------------------------------------------- export


def _float32(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


def _neuron_node(where: str, neuron, unit_params: Mapping, shape: Shape, *, dt: float,
                 allow_soft_reset: bool) -> nir.NIRNode:
    """The NIR LIF/IF node of a unit's neuron (``shape``: NIR's per-sample shape)."""
    if isinstance(neuron, LIFParams):
        kind, p, tau = "LIF", neuron, None
    elif type(neuron) is IF:
        kind, p, tau = "IF", neuron.neuron, None
    elif type(neuron) is LIF:
        kind, p, tau = "LIF", neuron.neuron, None
    elif type(neuron) is PLIF:
        w = float(np.asarray(unit_params["neuron"]["w"], np.float64))
        kind, p, tau = "PLIF", neuron.neuron, dt * (1.0 + math.exp(w))
    else:
        raise ValueError(
            f"{where}: neuron {type(neuron).__name__} has no NIR export (LIF, IF and PLIF do)"
        )
    if p.reset == "soft" and not allow_soft_reset:
        raise ValueError(
            f"{where}: {kind} with a soft (subtractive) reset has no exact NIR equivalent: "
            "NIR's neurons reset to v_reset, and a time-stepped simulator of the graph loses "
            "the overshoot a soft reset keeps (snnTorch writes its subtract-reset neurons "
            "the same way and reads them back with reset to zero). Use "
            "LIFParams(reset='hard') for an exact export, or pass allow_soft_reset=True to "
            "write the reset-to-zero neuron with the soft reset recorded in its metadata "
            "(snnjax.nir.import_ restores it; other tools reset to zero)"
        )
    meta = {
        "snnjax_neuron": kind,
        "reset": p.reset,
        "detach_reset": bool(p.detach_reset),
        "surrogate": p.surrogate.name,
        "surrogate_alpha": float(p.surrogate.alpha),
    }
    def full(value):
        return np.full(shape, value, np.float64)

    decay = 1.0 if kind == "IF" else p.decay
    if kind != "PLIF" and decay == 1.0:  # no leak: NIR's integrate-and-fire
        return nir.IF(r=full(1.0 / dt), v_threshold=full(p.v_th), v_reset=full(0.0),
                      metadata=meta)
    if tau is None:
        tau = dt / (1.0 - decay)
    return nir.LIF(tau=full(tau), r=full(tau / dt), v_leak=full(0.0),
                   v_threshold=full(p.v_th), v_reset=full(0.0), metadata=meta)


def _synapse(where: str, unit_params: Mapping, unit_stats: Mapping | None, key: str):
    """``(kernel, bias)`` of a unit's synapse as float64 numpy arrays, with scaled weight
    standardisation applied and an eval-mode BatchNorm folded in."""
    p = unit_params[key]
    if "kernel_ws" in p:
        kernel = np.asarray(p["kernel_ws"], np.float64)
    elif "gain" in p:
        kernel = np.asarray(standardize_weight(jnp.asarray(p["kernel"]), jnp.asarray(p["gain"])),
                            np.float64)
    else:
        kernel = np.asarray(p["kernel"], np.float64)
    features = kernel.shape[-1]
    bias = np.asarray(p["bias"], np.float64) if "bias" in p else np.zeros(features)
    if "BatchNorm_0" in unit_params:
        stats = None if unit_stats is None else unit_stats.get("BatchNorm_0")
        if stats is None:
            raise ValueError(
                f"{where}: BatchNorm needs its running statistics to be folded into the "
                "synapse (NIR cannot express batch statistics): pass batch_stats= (the "
                "'batch_stats' collection: state['batch_stats'] from rule.init)"
            )
        bn = unit_params["BatchNorm_0"]
        a = np.asarray(bn["scale"], np.float64) / np.sqrt(
            np.asarray(stats["var"], np.float64) + BatchNorm.epsilon)
        kernel = kernel * a
        bias = (bias - np.asarray(stats["mean"], np.float64)) * a + np.asarray(bn["bias"],
                                                                                np.float64)
    return kernel, bias


def _unit_shapes(model: SpikingSequential, variables: Mapping, input_shape: Shape):
    """Per unit: (the shape its neuron sees, its output shape), per sample, snnjax layout.

    Read from the model itself (``jax.eval_shape``, nothing computed), so that the export
    follows whatever the units do (e.g. ConvUnit skipping a pooling on a 1×1 map).
    """
    def keep(mdl, method):
        return method == "__call__" and isinstance(mdl, (SpikingNeuron, DenseUnit, ConvUnit))

    def run(v, x):
        return model.apply(v, x, train=False, capture_intermediates=keep,
                           mutable=["neuron", "intermediates"])

    x = jax.ShapeDtypeStruct((1, 1, *input_shape), jnp.float32)
    _, out = jax.eval_shape(run, variables, x)
    found = out["intermediates"]
    shapes = []
    for i in range(len(model.units)):
        entry = found[f"units_{i}"]
        neuron = [v for k, v in entry.items() if k != "__call__"]
        shapes.append((tuple(neuron[0]["__call__"][0].shape[2:]),
                       tuple(entry["__call__"][0].shape[2:])))
    return shapes


class _Chain:
    """NIR nodes in a chain, named and linked in the order they are added."""

    def __init__(self, input_shape: Shape):
        self.nodes: dict[str, nir.NIRNode] = {"input": nir.Input(np.array(input_shape))}
        self.last = "input"
        self.edges: list[tuple[str, str]] = []

    def add(self, name: str, node: nir.NIRNode) -> None:
        self.nodes[name] = node
        self.edges.append((self.last, name))
        self.last = name


def export(
    model: SpikingSequential,
    params: PyTree,
    *,
    input_shape: Sequence[int],
    batch_stats: PyTree | None = None,
    dt: float = 1.0,
    allow_soft_reset: bool = False,
) -> nir.NIRGraph:
    """The NIR graph of a trained model, evaluated as at ``train=False``.

    Each time step of the graph is one step of the model (module docstring: the mapping and
    the discretisation ``τ = dt/(1 - λ)``, ``R = τ/dt``).

    Args:
      model: a :class:`~snnjax.models.SpikingSequential` of ``DenseUnit`` and ``ConvUnit``
        with LIF, IF or PLIF neurons (``models.mlp``, ``models.cnn``, ``models.vgg11_sws``).
      params: its ``"params"`` collection (e.g. from ``rule.init``), standardised
        (``kernel_ws``) or not; or a whole variables dict ``{"params", "batch_stats"}``.
      input_shape: one sample's shape in snnjax's layout (no T, no B), e.g. ``(32, 32, 3)``.
      batch_stats: the ``"batch_stats"`` collection, needed when the model has BatchNorm
        (folded into the synapse).
      dt: the NIR time step one model step stands for (snnTorch's export uses 1e-4).
      allow_soft_reset: write soft-reset neurons as NIR's reset-to-zero neurons, the soft
        reset recorded in their metadata (see the module docstring); refused otherwise.

    Returns:
      a type-checked ``nir.NIRGraph``: ``input → … → output`` with the logits ``(classes,)``
      as output.

    Raises:
      ValueError: for what NIR cannot express, naming the layer.
    """
    if type(model) is not SpikingSequential:
        raise ValueError(
            f"NIR export supports SpikingSequential models, got {type(model).__name__} "
            "(VGG-F's feedback and other containers have no NIR export)"
        )
    if not dt > 0:
        raise ValueError(f"NIR time step dt must be > 0, got {dt}")
    input_shape = tuple(int(n) for n in input_shape)
    if model.input_ndim is not None and len(input_shape) != model.input_ndim:
        raise ValueError(
            f"input_shape {input_shape} has {len(input_shape)} axes; the model takes "
            f"{model.input_ndim} per sample (e.g. (H, W, C), without T and B)"
        )
    if not isinstance(params, Mapping):
        raise ValueError(f"params must be a mapping (the 'params' collection), got "
                         f"{type(params).__name__}")
    if "params" in params:  # a whole variables dict
        if batch_stats is None:
            batch_stats = params.get("batch_stats")
        params = params["params"]
    params = dict(params)
    expected = {f"units_{i}" for i in range(len(model.units))} | {"readout"}
    extra = sorted(set(params) - expected)
    if extra:
        aux = [k for k in extra if k.startswith("aux_head")]
        hint = (" (Local's auxiliary heads train the blocks and are not part of the "
                "model's output: drop them from params)") if aux else ""
        raise ValueError(f"{', '.join(extra)}: parameters the model does not use{hint}")
    for i, unit in enumerate(model.units):
        if type(unit) not in (DenseUnit, ConvUnit):
            raise ValueError(
                f"units_{i} ({type(unit).__name__}): NIR export supports DenseUnit and "
                "ConvUnit only"
            )
    batch_stats = {} if batch_stats is None else dict(batch_stats)
    for i, unit in enumerate(model.units):
        if unit.norm:  # checked before tracing, for the clear message
            _synapse(f"units_{i} ({type(unit).__name__})", params[f"units_{i}"],
                     batch_stats.get(f"units_{i}"),
                     "Conv_0" if type(unit) is ConvUnit else "Dense_0")
    variables = {"params": params}
    if batch_stats:
        variables["batch_stats"] = batch_stats
    shapes = _unit_shapes(model, variables, input_shape)

    chain = _Chain(_nir_shape(input_shape))
    shape = input_shape  # snnjax layout
    for i, (unit, (neuron_shape, out_shape)) in enumerate(zip(model.units, shapes)):
        name = f"units_{i}"
        where = f"{name} ({type(unit).__name__})"
        p = params[name]
        if type(unit) is DenseUnit:
            if len(shape) > 1:
                chain.add(f"{name}.flatten", nir.Flatten(
                    input_type={"input": np.array(_nir_shape(shape))}, start_dim=0))
            kernel, bias = _synapse(where, p, batch_stats.get(name), "Dense_0")
            chain.add(f"{name}.affine", nir.Affine(
                weight=_float32(_dense_to_nir(kernel, shape)), bias=_float32(bias)))
        else:
            kernel, bias = _synapse(where, p, batch_stats.get(name), "Conv_0")
            k = unit.kernel_size
            pads = [_same_padding(n, k, unit.strides) for n in shape[:2]]
            if any(lo != hi for lo, hi in pads):
                raise ValueError(
                    f"{where}: SAME padding of a {k}×{k} kernel with stride {unit.strides} "
                    f"on a {shape[0]}×{shape[1]} map pads {pads} (low, high); NIR's Conv2d "
                    "pads both sides alike"
                )
            chain.add(f"{name}.conv", nir.Conv2d(
                input_shape=shape[:2],
                weight=_float32(kernel.transpose(3, 2, 0, 1)),
                stride=(unit.strides, unit.strides),
                padding=(pads[0][0], pads[1][0]),
                dilation=(1, 1),
                groups=1,
                bias=_float32(bias),
            ))
        chain.add(f"{name}.neuron", _neuron_node(
            where, unit.neuron, p, _nir_shape(neuron_shape), dt=dt,
            allow_soft_reset=allow_soft_reset))
        if type(unit) is ConvUnit:
            scale = float(unit.scale)
            pooled = out_shape != neuron_shape
            if pooled and unit.pool == "max":
                if not scale > 0:
                    raise ValueError(
                        f"{where}: max pooling after a scale of {scale} is not a max of "
                        "spikes; NIR has no max pooling (a positive scale exports as "
                        "SumPool2d → Threshold(0.5) → Scale)"
                    )
                window = np.array([_POOL, _POOL])
                chain.add(f"{name}.sumpool", nir.SumPool2d(
                    kernel_size=window, stride=window, padding=np.array([0, 0])))
                chain.add(f"{name}.max", nir.Threshold(
                    threshold=np.full(_nir_shape(out_shape), _MAX_THRESHOLD, np.float64)))
            if scale != 1.0:
                chain.add(f"{name}.scale", nir.Scale(
                    scale=np.full(_nir_shape(out_shape if unit.pool == "max" and pooled
                                             else neuron_shape), scale, np.float64)))
            if pooled and unit.pool == "avg":
                window = np.array([_POOL, _POOL])
                chain.add(f"{name}.avgpool", nir.AvgPool2d(
                    kernel_size=window, stride=window, padding=np.array([0, 0])))
        shape = out_shape

    if len(shape) == 3 and shape[:2] != (1, 1):
        window = np.array(shape[:2])
        chain.add("readout.avgpool", nir.AvgPool2d(
            kernel_size=window, stride=window, padding=np.array([0, 0])))
        shape = (1, 1, shape[2])
    if len(shape) > 1:
        chain.add("readout.flatten", nir.Flatten(
            input_type={"input": np.array(_nir_shape(shape))}, start_dim=0))
    head = params["readout"]["Dense_0"]
    kernel = np.asarray(head["kernel"], np.float64)
    chain.add("readout.affine", nir.Affine(
        weight=_float32(kernel.T), bias=_float32(head["bias"])))
    chain.add("output", nir.Output(np.array([kernel.shape[-1]])))
    return nir.NIRGraph(
        nodes=chain.nodes,
        edges=chain.edges,
        metadata={"source": "snnjax", "dt": float(dt)},
        type_check=True,
    )


# ---------------------------------------------------------------------------- import


def _chain_of(graph: nir.NIRGraph) -> list[tuple[str, nir.NIRNode]]:
    """The graph's nodes from its Input to its Output, which must form one chain."""
    inputs = [k for k, n in graph.nodes.items() if isinstance(n, nir.Input)]
    if len(inputs) != 1:
        raise ValueError(f"NIR import needs one Input node, the graph has {len(inputs)}")
    succ: dict[str, list[str]] = {}
    pred: dict[str, int] = {}
    for a, b in graph.edges:
        succ.setdefault(a, []).append(b)
        pred[b] = pred.get(b, 0) + 1
    chain, name, seen = [], inputs[0], set()
    while True:
        if name in seen:
            raise ValueError(f"NIR import: the graph has a cycle through {name!r}")
        seen.add(name)
        node = graph.nodes[name]
        chain.append((name, node))
        if isinstance(node, nir.Output):
            break
        nxt = succ.get(name, [])
        if len(nxt) != 1 or pred.get(nxt[0], 0) != 1:
            raise ValueError(
                f"NIR import supports a chain of nodes (one in, one out); node {name!r} "
                f"({type(node).__name__}) has {len(nxt)} successors"
            )
        name = nxt[0]
    if len(chain) != len(graph.nodes):
        rest = sorted(set(graph.nodes) - seen)
        raise ValueError(f"NIR import: nodes {rest} are not on the Input → Output chain")
    return chain


def _uniform(where: str, what: str, value, shape: Shape) -> float:
    """The one value of a per-neuron parameter (snnjax neurons share theirs per layer)."""
    arr = np.asarray(value, np.float64)
    if arr.shape not in ((), (1,), tuple(shape)):
        raise ValueError(f"{where}: {what} has shape {arr.shape}, the layer {tuple(shape)}")
    if arr.size == 0 or not np.all(arr == arr.flat[0]):
        raise ValueError(
            f"{where}: {what} differs between neurons; snnjax's neurons share one value "
            "per layer"
        )
    return float(arr.flat[0])


def _meta(node: nir.NIRNode) -> dict:
    meta = node.metadata if isinstance(node.metadata, Mapping) else {}
    return {k: (v.decode() if isinstance(v, bytes) else v) for k, v in meta.items()}


def _neuron_from_nir(where: str, node: nir.NIRNode, shape: Shape, dt: float):
    """``(neuron, its params or None, λ or None)`` of an NIR LIF/IF node."""
    meta = _meta(node)
    if isinstance(node, nir.LIF):
        tau = _uniform(where, "tau", node.tau, shape)
        gain = dt * _uniform(where, "r", node.r, shape) / tau
        if _uniform(where, "v_leak", node.v_leak, shape) != 0.0:
            raise ValueError(f"{where}: v_leak ≠ 0 (a constant input) is not supported")
        if not tau >= dt:
            raise ValueError(
                f"{where}: tau = {tau} < dt = {dt} gives λ = 1 - dt/tau < 0; pass the dt "
                "the graph was written with (snnTorch: 1e-4)"
            )
    elif isinstance(node, nir.IF):
        tau, gain = math.inf, dt * _uniform(where, "r", node.r, shape)
    else:
        raise ValueError(
            f"{where}: {type(node).__name__} is not a neuron snnjax has (LIF, IF)"
        )
    if _uniform(where, "v_reset", node.v_reset, shape) != 0.0:
        raise ValueError(f"{where}: v_reset ≠ 0 is not supported (snnjax resets to 0)")
    if not gain > 0:
        raise ValueError(f"{where}: input gain dt·R/tau = {gain} must be > 0")
    if math.isclose(gain, 1.0, rel_tol=1e-12):
        gain = 1.0
    surrogate = LIFParams().surrogate
    if meta.get("surrogate") in surrogate_lib.NAMES:
        surrogate = surrogate_lib.Surrogate(str(meta["surrogate"]),
                                            float(meta["surrogate_alpha"]))
    reset = str(meta.get("reset", "hard"))
    if reset not in ("soft", "hard"):
        raise ValueError(f"{where}: metadata reset {reset!r} is neither 'soft' nor 'hard'")
    settings = {
        "v_th": _uniform(where, "v_threshold", node.v_threshold, shape) / gain,
        "reset": reset,
        "detach_reset": bool(meta.get("detach_reset", False)),
        "surrogate": surrogate,
    }
    kind = meta.get("snnjax_neuron")
    if math.isinf(tau):
        if kind == "LIF":
            return LIFParams(decay=1.0, **settings), None, 1.0
        return IF(LIFParams(**settings)), None, 1.0
    if kind == "PLIF":
        tau0 = tau / dt
        return (PLIF(tau0=tau0, neuron=LIFParams(**settings)),
                {"w": jnp.asarray(math.log(tau0 - 1.0), jnp.float32)}, None)
    decay = 1.0 - dt / tau
    return LIFParams(decay=decay, **settings), None, decay


def _pair(value) -> tuple[int, int]:
    """An int or a pair (NIR writes either) as a pair of ints."""
    return tuple(int(n) for n in np.broadcast_to(np.asarray(value), (2,)))


def _pool_window(node) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    return _pair(node.kernel_size), _pair(node.stride), _pair(node.padding)


def _is_unit_pool(node) -> bool:
    k, s, p = _pool_window(node)
    return k == s == (_POOL, _POOL) and p == (0, 0)


def _conv_unit(name: str, node: nir.Conv2d, shape: Shape):
    """``(kwargs, params, NIR output shape)`` of a ConvUnit's synapse from a Conv2d."""
    where = f"{name} (Conv2d)"
    weight = np.asarray(node.weight)
    if weight.ndim != 4 or weight.shape[2] != weight.shape[3]:
        raise ValueError(f"{where}: snnjax's ConvUnit takes square kernels, got {weight.shape}")
    if len(shape) != 3 or shape[0] != weight.shape[1]:
        raise ValueError(f"{where}: weight {weight.shape} does not fit the input {shape}")
    stride, dilation = _pair(node.stride), _pair(node.dilation)
    if int(node.groups) != 1 or dilation != (1, 1) or stride[0] != stride[1]:
        raise ValueError(
            f"{where}: snnjax's ConvUnit has groups 1, dilation 1 and equal strides; got "
            f"groups {node.groups}, dilation {dilation}, stride {stride}"
        )
    k, s = weight.shape[2], stride[0]
    same = [_same_padding(n, k, s) for n in shape[1:]]
    if isinstance(node.padding, str):
        want = same if node.padding == "same" and s == 1 else [(-1, -1)]
    else:
        want = [(p, p) for p in _pair(node.padding)]
    if want != same:
        raise ValueError(
            f"{where}: padding {node.padding} with stride {s} is not the SAME padding "
            f"snnjax's ConvUnit uses ({same} on a {shape[1]}×{shape[2]} map)"
        )
    out = (weight.shape[0], -(-shape[1] // s), -(-shape[2] // s))
    params = {"kernel": jnp.asarray(weight.transpose(2, 3, 1, 0), jnp.float32),
              "bias": jnp.asarray(node.bias, jnp.float32)}
    kwargs = {"features": int(weight.shape[0]), "kernel_size": int(k), "strides": int(s)}
    return kwargs, params, out


def _affine(name: str, node, in_shape: Shape):
    """Dense params ``{kernel, bias}`` from an Affine/Linear on NIR input ``in_shape``."""
    weight = np.asarray(node.weight)
    if weight.ndim != 2 or weight.shape[1] != math.prod(in_shape):
        raise ValueError(
            f"{name} ({type(node).__name__}): weight {weight.shape} does not fit the input "
            f"{in_shape}"
        )
    bias = (np.asarray(node.bias) if isinstance(node, nir.Affine)
            else np.zeros(weight.shape[0]))
    return {"kernel": jnp.asarray(_dense_from_nir(weight, in_shape), jnp.float32),
            "bias": jnp.asarray(bias, jnp.float32)}


def _flatten(name: str, node: nir.Flatten, shape: Shape) -> Shape:
    end = int(node.end_dim)
    if int(node.start_dim) != 0 or end not in (-1, len(shape) - 1):
        raise ValueError(
            f"{name} (Flatten): snnjax flattens a whole sample (start_dim 0, end_dim -1), "
            f"got start_dim {node.start_dim}, end_dim {node.end_dim}"
        )
    return (math.prod(shape),)


def import_(graph: nir.NIRGraph, *, dt: float | None = None
            ) -> tuple[SpikingSequential, dict]:
    """A model and its parameters from a NIR graph (the grammar in the module docstring).

    Args:
      graph: a chain ``Input → … → Output`` of dense and conv units and a readout, as
        :func:`export` writes.
      dt: the time step the graph's time constants assume; None reads the graph's
        ``metadata["dt"]`` (snnjax's export) or takes 1.

    Returns:
      ``(model, params)``: a :class:`~snnjax.models.SpikingSequential` of DenseUnit and
      ConvUnit (no BatchNorm, no weight standardisation: the exported kernels as they are)
      taking chunks ``[C, B, *shape]`` with ``shape`` the graph's input in snnjax's layout
      (NIR's ``(C, H, W)`` is ``(H, W, C)``), and its ``"params"`` collection. Run it with
      ``model.apply({"params": params}, xs, train=False, mutable=["neuron"])``.

    Raises:
      ValueError: for a graph outside the grammar, naming the node.
    """
    if not isinstance(graph, nir.NIRGraph):
        raise ValueError(f"NIR import takes a nir.NIRGraph, got {type(graph).__name__}")
    if dt is None:
        meta = graph.metadata if isinstance(graph.metadata, Mapping) else {}
        dt = float(meta.get("dt", 1.0))
    if not dt > 0:
        raise ValueError(f"NIR time step dt must be > 0, got {dt}")
    chain = _chain_of(graph)
    for name, node in chain:
        if isinstance(node, nir.NIRGraph):
            raise ValueError(f"{name} (NIRGraph): nested graphs are not supported")
    in_node = chain[0][1]
    in_shape = tuple(int(n) for n in np.atleast_1d(in_node.output_type["output"]))
    shape = in_shape  # NIR layout, per sample
    units: list[nn.Module] = []
    params: dict[str, Any] = {}
    decays: list[float | None] = []
    pos = 1

    def at(i):
        return chain[i] if i < len(chain) else (None, None)

    while True:
        name, node = at(pos)
        unit = f"units_{len(units)}"
        if isinstance(node, nir.Conv2d):
            kwargs, conv, shape = _conv_unit(name, node, shape)
            pos += 1
            nname, nnode = at(pos)
            neuron, nparams, decay = _neuron_from_nir(
                f"{nname} ({type(nnode).__name__})", nnode, shape, dt)
            pos += 1
            scale, pool = 1.0, None
            nxt_name, nxt = at(pos)
            if isinstance(nxt, nir.Scale):
                scale = _uniform(f"{nxt_name} (Scale)", "scale", nxt.scale, shape)
                pos += 1
                nxt_name, nxt = at(pos)
            if isinstance(nxt, (nir.AvgPool2d, nir.SumPool2d)) and _is_unit_pool(nxt):
                pooled = (shape[0], shape[1] // _POOL, shape[2] // _POOL)
                pos += 1
                after_name, after = at(pos)
                if isinstance(nxt, nir.SumPool2d) and isinstance(after, nir.Threshold):
                    t = _uniform(f"{after_name} (Threshold)", "threshold", after.threshold,
                                 pooled)
                    if scale != 1.0 or not 0.0 < t < 1.0:
                        raise ValueError(
                            f"{after_name} (Threshold): a sum pool then a threshold is a max "
                            "pool of spikes only for 0 < threshold < 1 and no scale before "
                            f"the pool; got threshold {t}, scale {scale}"
                        )
                    pool = "max"
                    pos += 1
                elif isinstance(nxt, nir.SumPool2d):  # sum = window² × average
                    pool, scale = "avg", scale * _POOL * _POOL
                else:
                    pool = "avg"
                shape = pooled
                s_name, s_node = at(pos)
                if isinstance(s_node, nir.Scale):
                    scale *= _uniform(f"{s_name} (Scale)", "scale", s_node.scale, shape)
                    if pool == "max" and not scale > 0:
                        raise ValueError(f"{s_name} (Scale): a max pool's scale must be > 0")
                    pos += 1
            units.append(ConvUnit(neuron=neuron, first=not units, scale=scale, pool=pool,
                                  **kwargs))
            params[unit] = {"Conv_0": conv}
            decays.append(decay)
        elif isinstance(node, (nir.Flatten, nir.Affine, nir.Linear, nir.AvgPool2d)):
            start, flat = pos, shape
            gap = isinstance(node, nir.AvgPool2d)
            if gap:
                k, s, p = _pool_window(node)
                if len(shape) != 3 or k != tuple(shape[1:]) or s != k or p != (0, 0):
                    raise ValueError(
                        f"{name} (AvgPool2d): kernel {k}, stride {s}, padding {p} on "
                        f"{shape}: snnjax pools 2×2 in a conv unit, or over the whole map "
                        "before the readout"
                    )
                flat = (shape[0], 1, 1)
                pos += 1
            f_name, f_node = at(pos)
            if isinstance(f_node, nir.Flatten):
                flat_in = flat
                flat = _flatten(f_name, f_node, flat)
                pos += 1
            else:
                flat_in = flat
            a_name, a_node = at(pos)
            if not isinstance(a_node, (nir.Affine, nir.Linear)):
                raise ValueError(
                    f"{a_name} ({type(a_node).__name__}): expected Affine or Linear after "
                    f"{chain[start][0]}"
                )
            dense = _affine(a_name, a_node, flat_in)
            pos += 1
            n_name, n_node = at(pos)
            out = (int(np.asarray(a_node.weight).shape[0]),)
            if isinstance(n_node, nir.Output):
                if len(flat_in) == 3 and flat_in[1:] != (1, 1):
                    raise ValueError(
                        f"{a_name}: a readout on a flattened {flat_in[1]}×{flat_in[2]} map; "
                        "snnjax's readout averages over the map (AvgPool2d over it first)"
                    )
                params["readout"] = {"Dense_0": dense}
                break
            if gap:
                raise ValueError(
                    f"{name} (AvgPool2d): a global pooling is supported only before the "
                    "readout (the last Affine)"
                )
            neuron, nparams, decay = _neuron_from_nir(
                f"{n_name} ({type(n_node).__name__})", n_node, out, dt)
            pos += 1
            if len(flat_in) > 1 and not isinstance(f_node, nir.Flatten):
                raise ValueError(f"{a_name}: an Affine on a map {flat_in} needs a Flatten")
            units.append(DenseUnit(int(out[0]), neuron=neuron, first=not units))
            params[unit] = {"Dense_0": dense}
            decays.append(decay)
            shape = out
        else:
            raise ValueError(
                f"{name} ({type(node).__name__}): not a node snnjax can import here (a "
                "dense or conv unit, or the readout, was expected)"
            )
        if nparams is not None:
            params[unit]["neuron"] = nparams

    num_classes = int(np.asarray(params["readout"]["Dense_0"]["kernel"]).shape[-1])
    last = decays[-1] if decays else None
    model = SpikingSequential(
        tuple(units),
        num_classes,
        readout_decay=0.5 if last is None else last,
        input_ndim=len(in_shape),
    )
    return model, params

