"""The ops of one training step as the analytic counts see them, read off the model.

:func:`trace_layers` traces one step of the model as a rule runs it (Local's heads included)
and describes each op it calls (:class:`Layer`); :func:`firing_rates` measures the share of
non-zero inputs of every synapse. Both walk the model's module calls
(:mod:`snnjax.rules.walk`); nothing here knows a model's layout.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.interpreters import ad

from snnjax import layers as layers_lib
from snnjax.neurons import Route, SpikingNeuron
from snnjax.rules.base import Rule
from snnjax.rules.engine import Stage
from snnjax.rules.walk import apply_stage

__all__ = ["Layer", "dense_macs", "conv_macs", "trace_layers", "firing_rates"]

PyTree = Any
_KEEP = Route("keep")


@dataclasses.dataclass(frozen=True)
class Layer:
    """One op of the model's per-step forward pass, as the counts see it.

    Attributes:
      path: the flax module path, e.g. ``"units_0/Dense_0"``.
      kind: ``"dense"``, ``"conv"`` (synapses), ``"neuron"``, ``"norm"`` or ``"pool"``.
      in_shape: input of one step, ``[B, ...]`` (the chunk's time axis left out).
      out_shape: output of one step, ``[B, ...]``.
      kernel_shape: the synapse's kernel (``[D, F]`` or ``[kh, kw, C, F]``), else None.
      macs: forward multiply-accumulates of one step for the whole batch (synapses only).
      input_grad: the backward pass propagates a gradient to this op's input (False for the
        synapse on the raw input and for the first synapse after a Local block cut).
      spiking_input: the input is derived from spikes (False only on the raw input).
      traced: under a traced rule (OTTT) this synapse keeps a presynaptic trace.
      param_elems: number of parameters of the op (kernel and bias of a synapse).
      itemsize: bytes of one activation element.
    """

    path: str
    kind: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    kernel_shape: tuple[int, ...] | None = None
    macs: int = 0
    input_grad: bool = True
    spiking_input: bool = True
    traced: bool = False
    param_elems: int = 0
    itemsize: int = 4

    @property
    def in_elems(self) -> int:
        return math.prod(self.in_shape)

    @property
    def out_elems(self) -> int:
        return math.prod(self.out_shape)

    @property
    def is_synapse(self) -> bool:
        return self.kind in ("dense", "conv")


def dense_macs(batch: int, d_in: int, d_out: int) -> int:
    """MACs of ``[batch, d_in] @ [d_in, d_out]``: ``batch·d_in·d_out``."""
    return batch * d_in * d_out


def conv_macs(
    batch: int, out_h: int, out_w: int, kernel_h: int, kernel_w: int, c_in: int, c_out: int
) -> int:
    """MACs of a 2-D conv: every output position times the kernel volume (padding included).

    ``batch·out_h·out_w·c_out·kernel_h·kernel_w·c_in``.
    """
    return batch * out_h * out_w * c_out * kernel_h * kernel_w * c_in


_KINDS: tuple[tuple[type, str], ...] = (
    (layers_lib.Dense, "dense"),
    (layers_lib.Conv, "conv"),
    (SpikingNeuron, "neuron"),
    (layers_lib.BatchNorm, "norm"),
    (nn.BatchNorm, "norm"),
    (layers_lib.AvgPool, "pool"),
    (layers_lib.MaxPool, "pool"),
)


def _kind(module: nn.Module) -> str | None:
    for cls, kind in _KINDS:
        if isinstance(module, cls):
            return kind
    return None


def _lookup(tree: Mapping, path: tuple[str, ...]) -> Mapping | None:
    for name in path:
        if not isinstance(tree, Mapping) or name not in tree:
            return None
        tree = tree[name]
    return tree


def _record_calls(stage: Stage, params, state, x1):
    """Trace one step (a chunk ``[1, B, ...]``) of ``stage`` under ``jax.jvp`` in ``params``;
    record every leaf op's call, shapes without the chunk axis.

    An op's input depends differentiably on the parameters exactly when it is a ``JVPTracer``
    of this jvp: the raw input (or a Local block's input) is not, and ``stop_gradient``
    returns a plain value, so this tells which ops need an input gradient without a
    per-model table.
    """
    calls = []

    def record(module, call, args, kwargs):
        kind = _kind(module)
        out = call(*args, **kwargs)
        if kind is not None:
            x = args[0]
            calls.append(
                dict(
                    path=_global_path(stage, tuple(module.path)),
                    kind=kind,
                    in_shape=tuple(x.shape[1:]),
                    out_shape=tuple(out.shape[1:]),
                    dtype=jnp.dtype(x.dtype),
                    depends=isinstance(x, ad.JVPTracer),
                    traced=bool(getattr(module, "traced", False)),
                )
            )
        return out

    def step(p, s, x):
        (feat, _), _ = apply_stage(stage, p, s, x, record, r=_KEEP, mutable=["neuron"])
        return feat

    # The input is an argument of the trace but not of the jvp: it carries no tangent.
    feat = jax.eval_shape(
        lambda p, s, x: jax.jvp(lambda q: step(q, s, x), (p,), (p,))[0], params, state, x1
    )
    return calls, feat


def _global_path(stage: Stage, path: tuple[str, ...]) -> tuple[str, ...]:
    if stage.names is None or not path:
        return path
    return (stage.names[path[0]], *path[1:])


def _stage_calls(stages, params, state, x1):
    """Every stage's recorded calls in order (paths in the whole model's names)."""
    out, x = [], x1
    for stage in stages:
        calls, x = _record_calls(stage, params, state, x)
        out += calls
    return out


def trace_layers(model: nn.Module, rule: Rule, x_t: Any) -> tuple[Layer, ...]:
    """The ops of one forward step as ``rule`` runs ``model`` (with Local's aux heads).

    Traced abstractly (``jax.eval_shape``): nothing is computed or allocated.

    Args:
      model: a model over chunks of time (e.g. :class:`snnjax.models.SpikingSequential`).
      rule: the training rule (its Local blocks and OTTT traces matter).
      x_t: one time step of input, ``[B, ...]`` (an array or ``jax.ShapeDtypeStruct``).

    Returns:
      The :class:`Layer` s in call order.
    """
    x1 = jax.ShapeDtypeStruct((1, *x_t.shape), x_t.dtype)
    x_t = jax.ShapeDtypeStruct(tuple(x_t.shape), x_t.dtype)
    params, state = jax.eval_shape(lambda x: rule.init(model, jax.random.key(0), x), x_t)
    calls = _stage_calls(rule.stages(model), params, state, x1)
    # Which synapses read the raw input: decided on the uncut network, where every other
    # op's input depends on some parameter.
    plain = _stage_calls((Stage(model),), params, state, x1)
    raw = {c["path"] for c in plain if not c["depends"]}
    traces = rule.temporal.traces
    out = []
    for c in calls:
        kernel_shape, macs, n_params = None, 0, 0
        if c["kind"] in ("dense", "conv"):
            p = _lookup(params, c["path"]) or {}
            kernel_shape = tuple(p["kernel"].shape)
            n_params = sum(math.prod(v.shape) for v in jax.tree.leaves(p))
            if c["kind"] == "dense":
                macs = dense_macs(math.prod(c["in_shape"][:-1]), *kernel_shape)
            else:
                b, h, w, f = c["out_shape"]
                kh, kw, cin, _ = kernel_shape
                macs = conv_macs(b, h, w, kh, kw, cin, f)
        elif c["kind"] == "norm":
            p = _lookup(params, c["path"]) or {}
            n_params = sum(math.prod(v.shape) for v in jax.tree.leaves(p))
        out.append(
            Layer(
                path="/".join(c["path"]),
                kind=c["kind"],
                in_shape=c["in_shape"],
                out_shape=c["out_shape"],
                kernel_shape=kernel_shape,
                macs=macs,
                input_grad=c["depends"],
                spiking_input=c["path"] not in raw,
                traced=traces and c["traced"] and c["kind"] in ("dense", "conv"),
                param_elems=n_params,
                itemsize=c["dtype"].itemsize,
            )
        )
    return tuple(out)


def firing_rates(model: nn.Module, rule: Rule, params: PyTree, state: PyTree, xs) -> dict:
    """Fraction of non-zero input elements of every synapse, averaged over ``xs [T, B, ...]``.

    Runs the forward pass as ``rule`` would (Local's heads included) in evaluation mode.

    Returns:
      ``{synapse path: rate in [0, 1]}``.
    """
    stages = rule.stages(model)

    def run(params, state, xs):
        rec, x = {}, xs
        for stage in stages:
            def visit(module, call, args, kwargs, stage=stage):
                if _kind(module) in ("dense", "conv"):
                    path = _global_path(stage, tuple(module.path))
                    rec["/".join(path)] = jnp.mean(args[0] != 0)
                return call(*args, **kwargs)

            (x, _), _ = apply_stage(stage, params, state, x, visit, r=_KEEP, mutable=["neuron"])
        return rec

    rec = jax.jit(run)(params, state, xs)
    return {k: float(v) for k, v in rec.items()}
