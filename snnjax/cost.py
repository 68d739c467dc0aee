"""Cost of a training step: compiled memory, analytic MACs and memory access (``docs/cost.md``).

Three figures, each for a model, a rule, a batch shape and T, without running training:

- **memory**: XLA's memory analysis of the compiled training step (arguments, outputs,
  temporaries), built from ``jax.ShapeDtypeStruct``s so nothing big is allocated
  (:func:`step_memory`), for the device jax runs on or for a compile target (an H100, a TPU
  v5e, ... without the hardware: :mod:`snnjax.targets`); on a GPU also the device's peak
  bytes in use after a real step.
- **MACs**: multiply-accumulates of one training step, forward and backward, counted per
  layer and per time step from the model's synapses (:func:`trace_layers`, :func:`count_macs`),
  plus a spike-driven accumulate (AC) count from measured firing rates. XLA's
  ``cost_analysis()`` cannot be used: it counts a ``lax.scan`` body once, whatever T is.
- **memory access**: bytes read and written by one training step, counted analytically
  (:func:`count_memory_access`; the counting rules are in its docstring).

:func:`measure` gives all of them for a :class:`snnjax.Trainer` as one flat dict (used by
``snnjax bench`` and experiments). This module takes a trainer; the trainer knows nothing of it.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from typing import Any, Callable, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.interpreters import ad

from snnjax import layers as layers_lib
from snnjax.neurons import Route, SpikingNeuron
from snnjax.rules.base import Rule
from snnjax.rules.engine import Stage
from snnjax.targets import Target, get_target
from snnjax.train import Trainer, num_classes_of

__all__ = [
    "compiled_memory",
    "tree_bytes",
    "default_optimizer",
    "Layer",
    "Schedule",
    "dense_macs",
    "conv_macs",
    "trace_layers",
    "schedule",
    "count_macs",
    "count_memory_access",
    "firing_rates",
    "abstract_batch",
    "lower_step",
    "step_memory",
    "device_peak_bytes",
    "time_step",
    "measure",
]

PyTree = Any
_KEEP = Route("keep")


def compiled_memory(lowered_or_compiled: Any) -> dict[str, int]:
    """Memory of a compiled XLA computation, from its (deterministic) memory analysis.

    Args:
      lowered_or_compiled: ``jax.jit(f).lower(...)`` or its ``.compile()``.

    Returns:
      ``{"temp_bytes", "argument_bytes", "output_bytes", "alias_bytes", "memory_bytes"}``
      where ``memory_bytes = temp + argument + output`` (``alias_bytes``, the donated
      buffers that outputs reuse, is reported separately and not subtracted).
    """
    compiled = lowered_or_compiled
    if hasattr(compiled, "compile"):
        compiled = compiled.compile()
    m = compiled.memory_analysis()
    out = {
        "temp_bytes": int(m.temp_size_in_bytes),
        "argument_bytes": int(m.argument_size_in_bytes),
        "output_bytes": int(m.output_size_in_bytes),
        "alias_bytes": int(m.alias_size_in_bytes),
    }
    out["memory_bytes"] = out["temp_bytes"] + out["argument_bytes"] + out["output_bytes"]
    return out


def default_optimizer() -> optax.GradientTransformation:
    """The optimizer cost figures assume unless told otherwise: SGD, momentum 0.9 (OTTT/SLTT)."""
    return optax.sgd(0.1, momentum=0.9)


# ---------------------------------------------------------------------------- the layers


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


def _record_calls(stage: Stage, variables, x1, params):
    """Trace one step (a chunk ``[1, B, ...]``) of ``stage`` under ``jax.jvp`` in ``params``;
    record every leaf op's call, shapes without the chunk axis.

    An op's input depends differentiably on the parameters exactly when it is a ``JVPTracer``
    of this jvp: the raw input (or a Local block's input) is not, and ``stop_gradient``
    returns a plain value, so this tells which ops need an input gradient without a
    per-model table.
    """
    calls = []

    def interceptor(next_fun, args, kwargs, context):
        kind = _kind(context.module) if context.method_name == "__call__" else None
        out = next_fun(*args, **kwargs)
        if kind is not None:
            x = args[0]
            calls.append(
                dict(
                    path=tuple(context.module.path),
                    kind=kind,
                    in_shape=tuple(x.shape[1:]),
                    out_shape=tuple(out.shape[1:]),
                    dtype=jnp.dtype(x.dtype),
                    depends=isinstance(x, ad.JVPTracer),
                    traced=bool(getattr(context.module, "traced", False)),
                )
            )
        return out

    def step(p, v, x):
        with nn.intercept_methods(interceptor):
            (feat, _), _ = stage.apply({**v, "params": p}, x, train=False, key=None,
                                       mutable=["neuron"], r=_KEEP)
        return feat

    # The input is an argument of the trace but not of the jvp: it carries no tangent.
    feat = jax.eval_shape(
        lambda p, v, x: jax.jvp(lambda q: step(q, v, x), (p,), (p,))[0], params, variables, x1
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
        sp = stage.take(params)
        st = {c: stage.take(state[c]) for c in state}
        calls, x = _record_calls(stage, st, x, sp)
        for c in calls:
            c["path"] = _global_path(stage, c["path"])
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


# ---------------------------------------------------------------------------- the schedule


@dataclasses.dataclass(frozen=True)
class Schedule:
    """What a rule does over T steps, as far as the counts care.

    Attributes:
      forward_steps: steps with a forward pass (always T).
      backward_steps: steps with a backward pass (T; K for SLTT-K).
      temporal_steps: steps whose backward also carries δv back to the previous step (BPTT:
        T-1; TBPTT(k): T - ⌈T/k⌉; SLTT, SLTT-K, OTTT: 0).
      optimizer_updates: optimizer steps per batch (1; T for OTTT_O; ⌈T/k⌉ for online TBPTT).
    """

    forward_steps: int
    backward_steps: int
    temporal_steps: int
    optimizer_updates: int


def schedule(rule: Rule, T: int) -> Schedule:
    """Read a rule's schedule from its plan (:meth:`snnjax.rules.Rule.plan`).

    Steps whose backward carries δv back in time: none when the route is cut; otherwise
    every step but the first of each window (a chunk of a kept route is a window).
    """
    plan = rule.plan(T)
    temporal = 0 if plan.cut else T - (-(-T // plan.chunk))
    backward = T if plan.K is None else min(plan.K, T)
    return Schedule(T, backward, temporal, rule.updates_per_batch(T))


# ---------------------------------------------------------------------------- MACs


def count_macs(
    layers: Sequence[Layer],
    sched: Schedule,
    rates: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """MACs of one training step, counted per layer and per time step.

    Per step, a synapse's forward costs its :attr:`Layer.macs`; its backward costs the same
    again for the weight gradient (δ·xᵀ, or δ·âᵀ under OTTT) and once more for the input
    gradient (Wᵀδ) when :attr:`Layer.input_grad` (not on the raw input, not across a Local
    cut). Forward runs at every step, backward at ``sched.backward_steps`` of them (SLTT-K:
    K). Local's auxiliary heads are synapses like the others. OTTT's trace updates
    (``â = λ·â + s``: one multiply and one add per element of a traced synapse's input) are
    element-wise ops, reported apart as ``trace_ops``.

    With ``rates`` (fraction of non-zero input elements per synapse path), the spike-driven
    forward count: a synapse on spike input does ``rate × macs`` accumulates (ACs, one per
    non-zero input times its fan-out); a synapse on the raw input stays MACs.

    Returns:
      ``{"macs", "forward_macs", "backward_macs", "trace_ops", "per_layer"}`` (+
      ``"forward_acs"``, ``"forward_nonspike_macs"`` and ``"firing_rate"`` with ``rates``);
      ``per_layer`` lists ``(path, forward MACs per step, backward MACs per step)``.
    """
    syn = [lay for lay in layers if lay.is_synapse]
    fwd_step = sum(lay.macs for lay in syn)
    bwd_step = sum(lay.macs * (1 + lay.input_grad) for lay in syn)
    trace_step = sum(2 * lay.in_elems for lay in syn if lay.traced)
    out: dict[str, Any] = {
        "forward_macs": sched.forward_steps * fwd_step,
        "backward_macs": sched.backward_steps * bwd_step,
        "trace_ops": sched.forward_steps * trace_step,
        "per_layer": [(lay.path, lay.macs, lay.macs * (1 + lay.input_grad)) for lay in syn],
    }
    out["macs"] = out["forward_macs"] + out["backward_macs"]
    if rates is not None:
        spiking = [lay for lay in syn if lay.spiking_input]
        out["forward_acs"] = sched.forward_steps * sum(
            rates.get(lay.path, 1.0) * lay.macs for lay in spiking
        )
        out["forward_nonspike_macs"] = sched.forward_steps * sum(
            lay.macs for lay in syn if not lay.spiking_input
        )
        weights = sum(lay.in_elems for lay in spiking)
        out["firing_rate"] = (
            sum(rates.get(lay.path, 0.0) * lay.in_elems for lay in spiking) / weights
            if weights else 0.0
        )
    return out


# ---------------------------------------------------------------------------- memory access


def count_memory_access(
    layers: Sequence[Layer],
    sched: Schedule,
    *,
    param_bytes: int,
    opt_state_bytes: int,
) -> dict[str, int]:
    """Bytes read and written by one training step, counted analytically.

    Counting rules (``|a|`` is the bytes of ``a`` for one step and the whole batch; every
    tensor is counted where it is read or written, as if nothing stayed in cache):

    Forward, at each of the T steps:
      - synapse: read the weights (kernel and bias), read the input x, write the output y;
      - neuron: read the current I and the state v[t-1], write the spikes s and v[t]
        (``2|I|`` activations, ``2|I|`` state);
      - norm, pool: read the input, write the output;
      - OTTT trace (traced synapses only): read â[t-1] and x, write â[t] (``3|x|``).
    Backward, at each step with a backward pass (SLTT-K: K of them):
      - synapse, weight gradient: read δy and x (â under OTTT), read and write the gradient
        accumulator (``|y| + |x|`` activations, ``2|W|`` gradients);
      - synapse, input gradient (only where one is needed): read δy and W, write δx;
      - neuron: read δs and the stored u (for the surrogate), write δI (``3|I|``); at the
        ``sched.temporal_steps`` steps where the gradient also flows back in time (BPTT,
        TBPTT inside a window), read δv[t] and write δv[t-1] (``2|I|`` state);
      - norm: read δy and x, write δx (``3|x|``), plus its parameters' gradient
        accumulator; pool: read δy, write δx.
      Ops whose input depends on no parameter (the raw input) have no backward.
    Optimizer, at each update: read parameters, gradients and optimizer state, write
    parameters and optimizer state (``3·params + 2·opt_state``).
    Not counted: element-wise ops fused into a neighbour (bias add, ×scale, dropout masks),
    the per-step re-standardisation of scaled-WS kernels, the readout's global average pool
    and the loss, all small next to the above.

    Args:
      layers: from :func:`trace_layers`.
      sched: from :func:`schedule`.
      param_bytes: bytes of all parameters; opt_state_bytes: of the optimizer state.

    Returns:
      ``{"weights", "activations", "states", "traces", "gradients", "optimizer",
      "memory_access_bytes"}`` (the last is their sum).
    """
    acc = dict(weights=0, activations=0, states=0, traces=0, gradients=0, optimizer=0)
    F, Bk, Tm = sched.forward_steps, sched.backward_steps, sched.temporal_steps
    for lay in layers:
        nbytes = lay.itemsize
        x, y = lay.in_elems * nbytes, lay.out_elems * nbytes
        w = lay.param_elems * nbytes
        if lay.is_synapse:
            acc["weights"] += F * w
            acc["activations"] += F * (x + y)
            if lay.traced:
                acc["traces"] += F * 3 * x
            acc["activations"] += Bk * (y + x)
            acc["gradients"] += Bk * 2 * w
            if lay.input_grad:
                acc["weights"] += Bk * w
                acc["activations"] += Bk * (y + x)
            continue
        # Ops whose input does not depend on any parameter have no backward pass.
        back = lay.input_grad
        if lay.kind == "neuron":
            acc["activations"] += F * 2 * x + back * Bk * 3 * x
            acc["states"] += F * 2 * x + back * Tm * 2 * x
        elif lay.kind == "norm":
            acc["activations"] += F * 2 * x + back * Bk * 3 * x
            acc["weights"] += (F + back * Bk) * w
            acc["gradients"] += back * Bk * 2 * w
        else:  # pool
            acc["activations"] += F * (x + y) + back * Bk * (x + y)
    acc["optimizer"] = sched.optimizer_updates * (3 * param_bytes + 2 * opt_state_bytes)
    acc["memory_access_bytes"] = sum(acc.values())
    return acc


# ---------------------------------------------------------------------------- firing rates


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
            def interceptor(next_fun, args, kwargs, context, stage=stage):
                if context.method_name == "__call__" and _kind(context.module) in ("dense", "conv"):
                    path = _global_path(stage, tuple(context.module.path))
                    rec["/".join(path)] = jnp.mean(args[0] != 0)
                return next_fun(*args, **kwargs)

            st = {c: stage.take(state[c]) for c in state}
            with nn.intercept_methods(interceptor):
                (x, _), _ = stage.apply({**st, "params": stage.take(params)}, x, train=False,
                                        key=None, mutable=["neuron"], r=_KEEP)
        return rec

    rec = jax.jit(run)(params, state, xs)
    return {k: float(v) for k, v in rec.items()}


# ---------------------------------------------------------------------------- compiled memory


def abstract_batch(T: int, batch_size: int, input_shape: Sequence[int], dtype=jnp.float32):
    """``(xs, ys)`` as ``jax.ShapeDtypeStruct`` s: ``[T, B, *input_shape]`` and int32 ``[B]``."""
    if T < 1 or batch_size < 1:
        raise ValueError(f"T and batch size must be >= 1, got T={T}, batch size={batch_size}")
    xs = jax.ShapeDtypeStruct((T, batch_size, *tuple(input_shape)), jnp.dtype(dtype))
    ys = jax.ShapeDtypeStruct((batch_size,), jnp.int32)
    return xs, ys


def _check_inputs(model, rule, loss, T, input_shape):
    want = getattr(model, "input_ndim", None)
    if want is not None and len(tuple(input_shape)) != want:
        raise ValueError(
            f"{type(model).__name__} expects samples of rank {want}, got input shape "
            f"{tuple(input_shape)}"
        )
    rule.validate(T, loss)


def _on_device(tree, device):
    """Every leaf of ``tree`` as a ``jax.ShapeDtypeStruct`` placed on ``device``."""
    sharding = jax.sharding.SingleDeviceSharding(device)
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)


def lower_step(trainer: Trainer, xs, ys, *, key=None, target: str | Target | None = None):
    """``trainer``'s jitted step lowered on a batch shaped like ``(xs, ys)``, from shapes only.

    The train state comes from ``jax.eval_shape(trainer.init, …)``; nothing is allocated.

    Args:
      trainer: the trainer whose step is lowered.
      xs: inputs ``[T, B, ...]`` (an array or ``jax.ShapeDtypeStruct``; only the shape and
        dtype are used).
      ys: labels ``[B]`` (likewise).
      key: the PRNG key the train state is initialised from (default ``key(0)``).
      target: None for the device jax runs on (the trainer's own jitted step, its mesh
        included); else a :class:`snnjax.targets.Target` or its name (``"h100"``,
        ``"tpu-v5e"``, ...): the same step for one device of that kind, train state and
        batch placed on it, compile-only for a GPU or TPU.
    """
    key = jax.random.key(0) if key is None else key
    xs = jax.ShapeDtypeStruct(tuple(xs.shape), xs.dtype)
    ys = jax.ShapeDtypeStruct(tuple(ys.shape), ys.dtype)
    ts = jax.eval_shape(trainer.init, key, xs)
    if target is None:
        return trainer.lower(ts, xs, ys)
    device = get_target(target).device()
    step = jax.jit(trainer.train_step, donate_argnums=0)  # one device: no mesh
    return step.lower(*_on_device((ts, xs, ys), device))


def _device_memory(target: Target | None) -> tuple[str, int | None]:
    """The target's name and one device's memory (for None: jax's default device's limit)."""
    if target is not None:
        return target.name, target.memory_bytes
    device = jax.devices()[0]
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    limit = (stats or {}).get("bytes_limit")
    return device.platform, None if limit is None else int(limit)


def step_memory(
    trainer: Trainer, xs, ys, *, key=None, target: str | Target | None = None
) -> dict[str, Any]:
    """Compiled memory of ``trainer``'s jitted step on a batch shaped like ``(xs, ys)``.

    Only shapes are used (:func:`lower_step`); the step is compiled, never run.

        step_memory(trainer, *abstract_batch(6, 128, (32, 32, 3)), target="tpu-v5e")

    Args:
      trainer: the trainer whose step is measured.
      xs: inputs ``[T, B, ...]`` (shape and dtype only).
      ys: labels ``[B]`` (shape and dtype only).
      key: the PRNG key the train state is initialised from.
      target: as for :func:`lower_step` (None: the device jax runs on).

    Returns:
      :func:`compiled_memory`'s dict, plus ``target`` (its name; for None the default
      platform, e.g. ``"cpu"``) and ``device_memory_bytes`` (one device's memory from the
      target's published specs; for None the device's own limit where it reports one).
    """
    target = None if target is None else get_target(target)
    mem = compiled_memory(lower_step(trainer, xs, ys, key=key, target=target))
    name, device_memory = _device_memory(target)
    return {**mem, "target": name, "device_memory_bytes": device_memory}


def device_peak_bytes(device=None) -> int | None:
    """The device's peak bytes in use (``memory_stats()["peak_bytes_in_use"]``), or None.

    Available on GPUs and TPUs; the CPU backend keeps no such statistics.
    """
    device = jax.devices()[0] if device is None else device
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    if not stats or "peak_bytes_in_use" not in stats:
        return None
    return int(stats["peak_bytes_in_use"])


def _random_batch(seed, T, batch_size, input_shape, num_classes, dtype):
    # numpy, not jax.random: eager jax ops would compile for every new shape.
    rng = np.random.default_rng(seed)
    xs = rng.uniform(size=(T, batch_size, *input_shape)).astype(jnp.dtype(dtype))
    ys = rng.integers(0, num_classes, size=(batch_size,)).astype(np.int32)
    return jnp.asarray(xs), jnp.asarray(ys)


def time_step(step: Callable, ts, xs, ys, *, steps: int = 5) -> tuple[float, Any]:
    """Median wall time of ``steps`` calls of ``step(ts, xs, ys) -> (ts, metrics)``.

    One untimed call first (compiling, warming caches); every timed call is synchronised
    (``block_until_ready``) before the clock stops. ``ts`` may be donated by ``step``.

    Returns:
      ``(median seconds, the final train state)``.
    """
    ts, metrics = step(ts, xs, ys)
    jax.block_until_ready((ts, metrics))
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        ts, metrics = step(ts, xs, ys)
        jax.block_until_ready((ts, metrics))
        times.append(time.perf_counter() - t0)
    return statistics.median(times), ts


def tree_bytes(tree) -> int:
    """Bytes of every array (or ``ShapeDtypeStruct``) leaf of ``tree``."""
    return int(sum(math.prod(x.shape) * jnp.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree)))


def measure(
    trainer: Trainer,
    *,
    T: int,
    batch_size: int,
    input_shape: Sequence[int],
    dtype=jnp.float32,
    time_steps: int = 0,
    rates: bool | Mapping[str, float] = True,
    rate_batch: int = 8,
    seed: int = 0,
    target: str | Target | None = None,
) -> dict[str, Any]:
    """All cost figures of one training step of ``trainer`` (its model, rule, optimizer, loss).

    Memory, MACs and memory access are computed without running training; firing rates
    (for the AC count) come from one forward pass at initial parameters on uniform random
    input (``rate_batch`` samples), and ``time_steps > 0`` times that many real steps. The
    figures are those of one device: a data-parallel trainer's mesh is not used.

        trainer = snnjax.Trainer(model, rule, snnjax.cost.default_optimizer())
        measure(trainer, T=6, batch_size=128, input_shape=(32, 32, 3), target="h100")

    Args:
      trainer: a :class:`snnjax.Trainer` (e.g. with :func:`default_optimizer`).
      T: time steps.
      batch_size: samples per batch.
      input_shape: one sample's shape (without T and B).
      dtype: input dtype.
      time_steps: number of timed real steps (median reported); 0 to skip. Refused for a
        compile-only target (a GPU or TPU this machine does not have).
      rates: True to measure firing rates, False to skip the AC count, or a mapping
        ``{synapse path: rate}`` to use.
      rate_batch: samples in the firing-rate forward pass.
      seed: for the random inputs and parameters.
      target: where the memory is compiled for, as for :func:`lower_step` (None: the
        device jax runs on). MACs and memory access do not depend on it.

    Returns:
      A flat dict: ``rule``, ``T``, ``batch_size``, ``input_shape``, ``target``,
      ``device_memory_bytes``, the compiled memory (``temp_bytes``, ``argument_bytes``,
      ``output_bytes``, ``alias_bytes``, ``memory_bytes``), ``device_peak_bytes`` (None on
      CPU or untimed), ``macs``, ``forward_macs``, ``backward_macs``, ``trace_ops``,
      ``forward_acs``, ``forward_nonspike_macs``, ``firing_rate`` (None without rates),
      ``memory_access_bytes`` and its breakdown under ``memory_access``, ``step_time_s``
      (None untimed), and ``per_layer`` MACs.

    Raises:
      ValueError: for a setting the rule or model cannot run (window > T, wrong rank, ...),
        or timing asked of a compile-only target.
    """
    model, rule = trainer.model, trainer.rule
    target = None if target is None else get_target(target)
    if time_steps > 0 and target is not None and target.compile_only:
        raise ValueError(
            f"target {target.name!r} is compile-only: it gives memory, not time; "
            "use time_steps=0, or time on the device itself (target=None)"
        )
    input_shape = tuple(int(d) for d in input_shape)
    _check_inputs(model, rule, trainer.loss, T, input_shape)
    if trainer.mesh is not None:  # one device's figures
        trainer = Trainer(model, rule, trainer.optimizer, trainer.loss)
    xs, ys = abstract_batch(T, batch_size, input_shape, dtype)
    key = jax.random.key(seed)
    compiled = lower_step(trainer, xs, ys, key=key, target=target).compile()
    mem = compiled_memory(compiled)
    target_name, device_memory = _device_memory(target)

    x_t = jax.ShapeDtypeStruct((batch_size, *input_shape), jnp.dtype(dtype))
    lays = trace_layers(model, rule, x_t)
    sched = schedule(rule, T)
    ts_shape = jax.eval_shape(trainer.init, key, xs)
    rate_map = None
    if isinstance(rates, Mapping):
        rate_map = dict(rates)
    elif rates:
        n = max(1, min(rate_batch, batch_size))
        classes = num_classes_of(model, abstract_batch(T, 1, input_shape, dtype)[0])
        sample, _ = _random_batch(seed, T, n, input_shape, classes, dtype)
        params, state = rule.init(model, key, sample[0])
        rate_map = firing_rates(model, rule, params, state, sample)
    macs = count_macs(lays, sched, rate_map)
    access = count_memory_access(
        lays, sched,
        param_bytes=tree_bytes(ts_shape.params),
        opt_state_bytes=tree_bytes(ts_shape.opt_state),
    )

    step_time, peak = None, None
    if time_steps > 0:
        classes = num_classes_of(model, xs)
        real_xs, real_ys = _random_batch(seed, T, batch_size, input_shape, classes, dtype)
        ts = trainer.init(key, real_xs)
        trainer.check(real_xs, real_ys)
        step_time, _ = time_step(compiled, ts, real_xs, real_ys, steps=time_steps)
        peak = device_peak_bytes()

    return {
        "rule": rule.name,
        "T": T,
        "batch_size": batch_size,
        "input_shape": list(input_shape),
        "target": target_name,
        "device_memory_bytes": device_memory,
        **mem,
        "device_peak_bytes": peak,
        "macs": macs["macs"],
        "forward_macs": macs["forward_macs"],
        "backward_macs": macs["backward_macs"],
        "trace_ops": macs["trace_ops"],
        "forward_acs": macs.get("forward_acs"),
        "forward_nonspike_macs": macs.get("forward_nonspike_macs"),
        "firing_rate": macs.get("firing_rate"),
        "memory_access_bytes": access["memory_access_bytes"],
        "memory_access": access,
        "step_time_s": step_time,
        "per_layer": [list(p) for p in macs["per_layer"]],
    }
