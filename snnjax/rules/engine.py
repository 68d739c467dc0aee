"""The one engine every rule runs on: a scan over chunks of time, gradients inside it.

A rule hands the engine a :class:`Plan` (how long a chunk is, whether the temporal route is
kept or cut, OTTT's traces, SLTT-K's selected steps, optimizer updates inside the loop) and
the model as one or more :class:`Stage` s (the whole model, or Local's blocks in order).
docs/schedules.md: the schedule changes memory and time, never the gradient.

For each chunk of ``C`` steps (``lax.scan`` over chunks; a shorter last chunk when C does
not divide T), for each stage in order: ``value_and_grad`` of the stage's loss on the chunk,
with the state entering the chunk and the stage's input as constants. Stored residuals
cover one chunk of one stage: memory O(C) of the largest stage. A stage's backward finishes
before the next stage's forward starts (Local's block-sequential order), its output handed
on as a constant.

SLTT-K (``Plan.K``): a forward pass over all steps (no differentiation) records, at the
K selected steps, what every neuron's replay needs (``SpikingNeuron.record``) and every
stage's input; then each stage replays those K steps as one chunk of K independent steps
and differentiates it: the backward's time ∝ K, not T.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from snnjax.layers import standardize_params
from snnjax.losses import Loss
from snnjax.neuron import POTENTIAL
from snnjax.neurons import CUT, KEEP, REPLAY, Route, SpikingNeuron
from snnjax.rules.walk import calls, take_state
from snnjax.spikes import float_residuals

__all__ = [
    "Plan", "Stage", "Aux", "run", "route", "init_carry", "piece_length", "resolve_pieces",
    "remat_segment", "chunk_loss", "PIECE_ROWS", "TRANSIENT",
]

PyTree = Any
TRANSIENT = ("neuron", "trace")  # reset to zero for every batch


class Aux(tuple):
    """What a rule returns besides loss and gradients: ``(logits, state, head_losses)``.

    Attributes:
      logits: the readout's logits summed over time, ``[B, C]`` (argmax is the prediction;
        the last head under Local).
      state: the updated persistent collections (e.g. ``{"batch_stats": ...}``).
      head_losses: under Local, each block's head's loss (Σ over T), ``[blocks]``, the last
        being the readout's (the loss is their sum); None for a model run as one piece.
    """

    __slots__ = ()

    def __new__(cls, logits, state, head_losses=None):
        return super().__new__(cls, (logits, state, head_losses))

    @property
    def logits(self):
        return self[0]

    @property
    def state(self):
        return self[1]

    @property
    def head_losses(self):
        return self[2]


jax.tree_util.register_pytree_node(Aux, lambda a: (tuple(a), None), lambda _, c: Aux(*c))


@dataclasses.dataclass(frozen=True)
class Plan:
    """What the engine does for one batch of T steps (read off a rule by ``rule.plan(T)``).

    Attributes:
      chunk: steps per chunk, 1 <= chunk <= T: the unit of each ``value_and_grad`` (a
        window of TBPTT, all T for BPTT) and of each in-loop update.
      apply: steps per application of the model within a chunk (``<= chunk``; a chunk of
        the cut route is one application): a chunk of a kept temporal route runs as a
        ``lax.scan`` over pieces of this length, the same gradient with backward
        transients of one piece instead of the whole chunk. None:
        chosen from the model before compiling (:func:`piece_length`, by
        :func:`resolve_pieces`).
      cut: the temporal route of every neuron is cut at every step (SLTT, OTTT).
      traces: synapses keep OTTT's presynaptic traces.
      K: SLTT-K's number of selected steps, or None.
      steps: SLTT-K's explicit steps (sorted), or None to draw them from the key.
      online: apply the optimizer after every chunk.
      remat: a chunk of the kept route stores, for its backward, only the carry entering
        each segment of :func:`remat_segment` steps, and recomputes each segment's forward
        during the backward (docs/schedules.md, recomputation).
      bits: synapses whose input the model declares a spike train keep it as bits for the
        backward (:mod:`snnjax.spikes`) where that saves memory (:attr:`stores_bits`);
        False: every stage keeps floats (:func:`_float_stage`).
    """

    chunk: int
    apply: int | None = None
    cut: bool = False
    traces: bool = False
    K: int | None = None
    steps: tuple[int, ...] | None = None
    online: bool = False
    remat: bool = False
    bits: bool = False

    @property
    def stores_bits(self) -> bool:
        """Whether some stage keeps spikes as bits: with :attr:`bits`, a differentiated
        chunk of more than one step (SLTT-K's replay of its K steps) that is not
        recomputed. A one-step chunk's residuals live for that step's backward alone, and a
        recomputed one stores only potentials: packing there would add work, save
        nothing."""
        return self.bits and not self.remat and (self.K is not None or self.chunk > 1)

    @property
    def transient(self) -> tuple[str, ...]:
        return TRANSIENT if self.traces else ("neuron",)

    @property
    def route(self) -> Route:
        """The neurons' route: cut, or kept. A window of one step (TBPTT(1)) keeps no route
        from one step to the next: it runs the cut route, the same gradient, whose state is
        also the surrogate gradient's residual (:mod:`snnjax.neuron`)."""
        return CUT if self.cut or self.chunk == 1 else KEEP


#: Rows (samples × output positions) a synapse op needs to run at speed; the default pieces
#: of a kept route are the fewest steps that reach it (:func:`piece_length`).
PIECE_ROWS = 1024


def piece_length(window: int, rows: int) -> int:
    """Steps per application of the model for a differentiated window of ``window`` steps
    whose largest synapse op has ``rows`` rows per step (``B·H·W`` for a convolution, ``B``
    for a dense layer).

    A piece must give that op at least :data:`PIECE_ROWS` rows (a GEMM with fewer rows is
    bound by reading its weights); beyond that, shorter pieces only lower the backward's
    temporaries. So: one step for conv nets at usual batch sizes, ``⌈1024 / B⌉`` steps for
    dense ones, the window split into equal pieces of at least that length.
    """
    if rows < 1:
        return window
    least = -(-PIECE_ROWS // rows)
    n = max(1, window // least)
    return -(-window // n)


def remat_segment(window: int) -> int:
    """Steps per recomputed segment of a differentiated window of ``window`` steps under
    ``remat``: ``⌈√window⌉``, which balances the carries stored at the ``window / L``
    segment boundaries against the residuals of the one segment ``L`` being recomputed
    (memory O(√window) of the neuron states, each step recomputed once)."""
    return max(1, math.isqrt(window - 1) + 1) if window > 1 else 1


def resolve_pieces(plan: Plan, rows: int) -> Plan:
    """``plan`` with its pieces chosen (:func:`piece_length`) where the rule left them to
    the model; ``rows`` as there."""
    if plan.apply is not None:
        return plan
    return dataclasses.replace(plan, apply=piece_length(plan.chunk, rows))


def route(r: Route):
    """Within this context, every neuron layer's call receives ``route=r`` (flax's method
    interception: the model's own code does not pass it)."""

    def visit(module, call, args, kwargs):
        if isinstance(module, SpikingNeuron):
            kwargs = {**kwargs, "route": r}
        return call(*args, **kwargs)

    return calls(visit)


@dataclasses.dataclass(frozen=True)
class Stage:
    """A piece of the model the engine runs in order.

    Attributes:
      module: ``(x [C, B, ...], train) -> logits [C, B, classes]`` (the whole model), or
        ``-> (features, logits)`` (a Local block).
      names: the block's top-level variable names mapped to the model's, or None for the
        whole model.
    """

    module: nn.Module
    names: Mapping[str, str] | None = None

    def take(self, tree: Mapping) -> dict:
        """The stage's part of one collection of the model's variables."""
        if self.names is None:
            return dict(tree)
        return {k: tree[g] for k, g in self.names.items() if g in tree}

    def put(self, tree: dict, part: Mapping) -> dict:
        """``tree`` with the stage's part (in its own names) written back."""
        if self.names is None:
            return {**tree, **part}
        return {**tree, **{self.names[k]: v for k, v in part.items()}}

    def apply(self, variables, x, *, train: bool, key, mutable, r: Route):
        rngs = {"dropout": key} if (train and key is not None) else {}
        with route(r):
            out, new = self.module.apply(variables, x, train=train, rngs=rngs, mutable=mutable)
        if self.names is None:
            return (out, out), dict(new)
        return out, dict(new)


def init_carry(stage: Stage, params, state: Mapping, x: jax.Array, plan: Plan) -> dict:
    """Zero neuron state (and traces) of one stage for this batch, plus its persistent state.

    ``x`` is a one-step chunk ``[1, B, ...]`` of the stage's input.
    """
    return _carry_and_features(stage, params, state, x, plan)[0]


def _carry_and_features(stage: Stage, params, state: Mapping, x, plan: Plan):
    """:func:`init_carry`, and the shape of the stage's output features for ``x``: one
    abstract trace of the stage gives both."""
    mutable = list(plan.transient) + list(state)
    (feat, _), shapes = jax.eval_shape(
        lambda x: stage.apply({"params": params, **state}, x, train=False, key=None,
                              mutable=mutable, r=plan.route), x
    )
    zeros = lambda s: jnp.zeros(s.shape, s.dtype)  # noqa: E731
    carry = {c: jax.tree.map(zeros, shapes[c]) for c in plan.transient if c in shapes}
    return {**carry, **state}, feat


def _unstandardize(params: PyTree) -> Callable[[PyTree], tuple]:
    """VJP of :func:`~snnjax.layers.standardize_params` at ``params``, its forward redone."""

    def vjp(cotangent):
        # Tied to the loop's output, the standardisation is recomputed after the loop; a
        # plain jax.vjp would keep its weight-sized residuals through the loop.
        return jax.vjp(standardize_params, _after(params, cotangent))[1](cotangent)

    return vjp


def _after(x: PyTree, *deps: PyTree) -> PyTree:
    """``x``, exactly, made to depend on every leaf of ``deps``: what is computed from the
    result waits for ``deps``.

    XLA:CPU drops ``lax.optimization_barrier`` before it schedules, so only a data
    dependence orders two computations there: ``x + 0 * s`` with ``s`` a finite sum of
    ``deps`` (XLA keeps ``0 * s`` for floats, as NaN * 0 is NaN).
    """
    leaves = jax.tree.leaves(deps)
    if not leaves:
        return x
    s = sum(jnp.sum(leaf, dtype=jnp.float32) for leaf in leaves)
    zero = jnp.nan_to_num(s) * 0
    return jax.tree.map(lambda a: a + zero.astype(a.dtype), x)


def _tree_add(a, b):
    return jax.tree.map(jnp.add, a, b)


def chunk_loss(loss: Loss, logits: jax.Array, ys: jax.Array, T: int) -> jax.Array:
    """The loss of a chunk of logits ``[C, B, classes]`` with labels ``ys [B]``:
    Σ_c ℓ(o[c]) / T, or the rate loss (one chunk of T). A rule with its own loop (e-prop)
    takes each step's loss from it, as the engine does."""
    if loss.kind == "rate":
        return loss.sequence(logits, ys)
    return jax.vmap(loss.step, in_axes=(0, None))(logits, ys).sum() / T


def _slot_update(buf, chunk_values, idx, start, length):
    """Write the chunk's values at the selected steps ``idx [K]`` that fall in
    ``[start, start + length)`` into ``buf`` (leaves ``[K, ...]``)."""
    pos = idx - start
    inside = (pos >= 0) & (pos < length)
    pos = jnp.clip(pos, 0, length - 1)

    def one(b, v):
        mask = inside.reshape((-1,) + (1,) * (b.ndim - 1))
        return jnp.where(mask, v[pos].astype(b.dtype), b)

    return jax.tree.map(one, buf, chunk_values)


def run(
    stages: tuple[Stage, ...],
    params: PyTree,
    state: Mapping,
    xs: jax.Array,
    ys: jax.Array,
    *,
    loss: Loss,
    key,
    plan: Plan,
    optimizer: optax.GradientTransformation | None = None,
    opt_state: PyTree = None,
):
    """Loss, aux, gradients (and in-loop updates) of one batch ``xs [T, B, ...]``, ``ys [B]``.

    Returns:
      ``(loss, Aux, grads, params, opt_state)``: loss is Σ over all T steps (and heads,
      each head's in ``Aux.head_losses``);
      grads the sum over chunks at fixed parameters (with ``plan.online``, the sum of the
      gradients each update used); params and opt_state after the in-loop updates (the
      inputs when ``plan.online`` is False).
    """
    if plan.apply is None:
        raise ValueError("the plan's pieces are not chosen: pass resolve_pieces(plan, rows)")
    T = xs.shape[0]
    C = plan.chunk
    online = plan.online
    if online and optimizer is None:
        raise ValueError("in-loop updates need an optax optimizer")
    r = plan.route
    if online:
        p0, unstandardize = params, None
    else:
        # Parameters are fixed for the whole batch: standardise scaled-WS weights once, sum
        # the gradients w.r.t. the standardised kernels and map the sum back once.
        p0, unstandardize = standardize_params(params), _unstandardize(params)

    # Initial carries, stage by stage (each stage's input shape from the previous one).
    carries, x1 = [], jax.ShapeDtypeStruct((1, *xs.shape[1:]), xs.dtype)
    for stage in stages:
        st = take_state(stage, state)
        carry, x1 = _carry_and_features(stage, stage.take(p0), st, x1, plan)
        carries.append(carry)

    def stage_fn(stage, p_s, carry, x, r_s, mutable_extra=()):
        """(loss, (features, Σ_c logits, new carry, extra collections)) of one stage."""
        p_used = standardize_params(p_s) if online else p_s
        recomputed = plan.remat and r_s.kind == "keep"
        if not plan.bits or recomputed or (r_s.kind == "cut" and x.shape[0] == 1):
            stage = _float_stage(stage)

        def apply(carry, xc):
            (feat, logits), new = stage.apply(
                {"params": p_used, **carry}, xc, train=True, key=key,
                mutable=list(carry) + list(mutable_extra), r=r_s,
            )
            # Keep the carry's dtypes (e.g. float32 BatchNorm statistics under float64
            # inputs), as lax.scan requires.
            new_carry = jax.tree.map(lambda n, c: n.astype(c.dtype),
                                     {k: new[k] for k in carry}, carry)
            return new_carry, (feat, logits, {k: new[k] for k in mutable_extra if k in new})

        piece = x.shape[0] if plan.cut else plan.apply  # a cut chunk is one application
        if recomputed:
            carry, (feat, logits) = _apply_recomputed(
                jax.checkpoint(apply, policy=_SAVE_POTENTIALS), carry, x, piece,
                remat_segment(x.shape[0]))
            extra = {}
        elif piece >= x.shape[0]:
            carry, (feat, logits, extra) = apply(carry, x)
        else:
            carry, (feat, logits) = _apply_in_pieces(apply, carry, x, piece)
            extra = {}
        value = chunk_loss(loss, logits, ys, T)
        return value, (feat, logits.sum(axis=0), carry, extra)

    def grad_chunk(p, carries, xw):
        """Every stage on one chunk, in order, each differentiated before the next runs.
        Returns the stages' losses ``[stages]``, the logits, carries and gradients."""
        x, values, grads, new_carries, logits = xw, [], {}, [], None
        for i, stage in enumerate(stages):
            (value, (feat, logits, carry, _)), g = jax.value_and_grad(
                lambda q, c, xi: stage_fn(stage, q, c, xi, r), has_aux=True
            )(stage.take(p), carries[i], x)
            if i < len(stages) - 1:
                # The next stage's forward waits for this stage's backward: memory is that
                # of the largest stage, not of all of them.
                feat = _after(feat, g)
            grads = stage.put(grads, g)
            x = jax.lax.stop_gradient(feat)
            values.append(value)
            new_carries.append(carry)
        return jnp.stack(values), logits, new_carries, grads

    def forward_chunk(p, carries, xw, record: bool):
        """Every stage on one chunk without differentiation; with ``record``, the states
        entering each step and each stage's input."""
        x, values, new_carries, hist, inputs, logits = xw, [], [], [], [], None
        for i, stage in enumerate(stages):
            inputs.append(x)
            value, (feat, logits, carry, extra) = stage_fn(
                stage, stage.take(p), carries[i], x, Route("cut", record=record),
                mutable_extra=("history",) if record else (),
            )
            hist.append(extra.get("history", {}))
            x = feat
            values.append(value)
            new_carries.append(carry)
        return jnp.stack(values), logits, new_carries, hist, inputs

    zeros_like_shape = lambda s: jnp.zeros(s.shape, s.dtype)  # noqa: E731

    if plan.K is not None:
        return _run_selected(
            stages, params, state, xs, p0, unstandardize, carries, plan, key,
            forward_chunk, stage_fn, T,
        )

    def body(acc, xw):
        p, o_state, carries, g_sum, l_sum, logits_sum = acc
        p_now = p if online else p0
        value, logits, carries, g = grad_chunk(p_now, carries, xw)
        if online:
            updates, o_state = optimizer.update(g, o_state, p)
            p = optax.apply_updates(p, updates)
        return (p, o_state, carries, _tree_add(g_sum, g), l_sum + value, logits_sum + logits)

    value0, logits0, _, g0 = jax.eval_shape(grad_chunk, p0, carries, xs[:C])
    acc = (params if online else None, opt_state, carries, jax.tree.map(zeros_like_shape, g0),
           zeros_like_shape(value0), zeros_like_shape(logits0))
    n_full, rest = divmod(T, C)
    if n_full == 1:
        acc = body(acc, xs[:C])
    else:
        def scan_body(acc_i, _):
            # Slice the chunk out of the closed-over xs (scanning over a reshaped copy made
            # XLA copy the whole input into the loop); the index is carried, not scanned.
            acc, i = acc_i
            return (body(acc, jax.lax.dynamic_slice_in_dim(xs, i * C, C)), i + 1), None

        (acc, _), _ = jax.lax.scan(scan_body, (acc, jnp.int32(0)), None, length=n_full)
    if rest:
        acc = body(acc, xs[n_full * C:])
    p, o_state, carries, g_sum, l_sum, logits = acc
    if not online:
        (g_sum,) = unstandardize(g_sum)
        p = params
    return _total(l_sum), _aux(logits, stages, state, carries, l_sum), g_sum, p, o_state


def _total(losses):
    """The loss: the stages' losses ``[stages]`` summed (one stage: its loss, exactly)."""
    return losses[0] if losses.shape[0] == 1 else losses.sum()


def _aux(logits, stages, state, carries, losses) -> Aux:
    return Aux(logits, _new_state(stages, state, carries),
               None if losses.shape[0] == 1 else losses)


def _apply_in_pieces(apply, carry, x, piece: int):
    """``apply`` over ``x [W, ...]`` in a ``lax.scan`` over pieces of ``piece`` steps (a
    shorter last one); outputs concatenated back to ``[W, ...]``."""
    n, rest = divmod(x.shape[0], piece)

    def body(c, xc):
        c, (feat, logits, _) = apply(c, xc)
        return c, (feat, logits)

    def flat(a):
        return a.reshape(n * piece, *a.shape[2:])

    head = x[:n * piece].reshape(n, piece, *x.shape[1:])
    carry, (feat, logits) = jax.lax.scan(body, carry, head)
    feat, logits = flat(feat), flat(logits)
    if rest:
        carry, (f2, l2, _) = apply(carry, x[n * piece:])
        feat, logits = jnp.concatenate([feat, f2]), jnp.concatenate([logits, l2])
    return carry, (feat, logits)


#: What a recomputed piece keeps for its backward: each neuron's pre-reset potential u[t]
#: (:data:`snnjax.neuron.POTENTIAL`). Spikes, pooled and scaled synapse inputs and the
#: surrogate's derivative are element-wise in u (or linear), so the backward redoes them
#: without running a feed-forward synapse again (a recurrent one, inside the neuron's scan,
#: runs again).
_SAVE_POTENTIALS = jax.checkpoint_policies.save_only_these_names(POTENTIAL)


def _float_stage(stage: Stage) -> Stage:
    """``stage`` with its synapses' inputs kept as floats
    (:func:`snnjax.spikes.float_residuals`; the same gradient): every stage of a plan
    without :attr:`Plan.bits`, and, with them, where bits would save nothing: a recomputed
    stage (under :data:`_SAVE_POTENTIALS` a synapse's residual is not
    stored but redone in the backward from the potentials), and a one-step chunk of a cut
    route (its residuals live for that step's backward alone). Packing there only adds
    work and its temporaries (reading the spikes before a pool at full resolution)."""
    return dataclasses.replace(stage, module=float_residuals(stage.module))


def _apply_recomputed(apply, carry, x, piece: int, segment: int):
    """:func:`_apply_in_pieces` over ``x [W, ...]`` in segments of ``segment`` steps, each
    under ``jax.checkpoint``: the backward keeps only the carry entering each segment (and
    the segment's slice of ``x``, which the caller keeps anyway) and recomputes one
    segment's forward at a time; outputs concatenated back to ``[W, ...]``. A segment of
    the whole window is not recomputed: then only ``apply``'s own policy holds."""

    def run_segment(c, xs):
        if piece >= xs.shape[0]:
            c, (feat, logits, _) = apply(c, xs)
            return c, (feat, logits)
        return _apply_in_pieces(apply, c, xs, piece)

    if segment >= x.shape[0]:
        return run_segment(carry, x)
    n, rest = divmod(x.shape[0], segment)
    # Inside the scan nothing can be merged across iterations, so CSE need not be prevented.
    in_scan = jax.checkpoint(run_segment, prevent_cse=False)
    if n == 1:
        carry, (feat, logits) = jax.checkpoint(run_segment)(carry, x[:segment])
    else:
        head = x[:n * segment].reshape(n, segment, *x.shape[1:])
        carry, (feat, logits) = jax.lax.scan(in_scan, carry, head)
        feat, logits = (a.reshape(n * segment, *a.shape[2:]) for a in (feat, logits))
    if rest:
        carry, (f2, l2) = jax.checkpoint(run_segment)(carry, x[n * segment:])
        feat, logits = jnp.concatenate([feat, f2]), jnp.concatenate([logits, l2])
    return carry, (feat, logits)


def _new_state(stages, state, carries) -> dict:
    new = {c: dict(state[c]) for c in state}
    for stage, carry in zip(stages, carries):
        for c in state:
            new[c] = stage.put(new[c], carry[c])
    return new


def select_indices(key, T: int, K: int) -> jax.Array:
    """K distinct steps drawn uniformly without replacement, sorted, ``[K]`` int32."""
    mask = jnp.zeros((T,), bool).at[jax.random.choice(key, T, (K,), replace=False)].set(True)
    return jnp.nonzero(mask, size=K)[0].astype(jnp.int32)


def _run_selected(stages, params, state, xs, p0, unstandardize, carries, plan, key,
                  forward_chunk, stage_fn, T):
    """SLTT-K: record the K selected steps in a forward pass, then replay them at once."""
    C, K = plan.chunk, plan.K
    if plan.steps is not None:
        idx = jnp.asarray(plan.steps, jnp.int32)
    else:
        if key is None:
            raise ValueError("SLTT-K draws its K steps from a PRNG key: pass key=")
        key, select_key = jax.random.split(key)
        idx = select_indices(select_key, T, K)

    _, logits0, _, hist0, inputs0 = jax.eval_shape(
        lambda c: forward_chunk(p0, c, xs[:1], True), carries)
    slot = lambda s: jnp.zeros((K,) + s.shape[1:], s.dtype)  # noqa: E731
    bufs0 = (jax.tree.map(slot, hist0), jax.tree.map(slot, inputs0))

    def body(acc, xw, start):
        carries, bufs, l_sum, logits_sum = acc
        value, logits, carries, hist, inputs = forward_chunk(p0, carries, xw, True)
        length = xw.shape[0]
        bufs = (_slot_update(bufs[0], hist, idx, start, length),
                _slot_update(bufs[1], inputs, idx, start, length))
        return carries, bufs, l_sum + value, logits_sum + logits

    acc = (carries, bufs0, jnp.zeros((len(stages),), xs.dtype),
           jnp.zeros(logits0.shape, logits0.dtype))
    n_full, rest = divmod(T, C)
    if n_full == 1:
        acc = body(acc, xs[:C], 0)
    else:
        def scan_body(acc_i, _):
            acc, i = acc_i
            return (body(acc, jax.lax.dynamic_slice_in_dim(xs, i * C, C), i * C), i + 1), None

        (acc, _), _ = jax.lax.scan(scan_body, (acc, jnp.int32(0)), None, length=n_full)
    if rest:
        acc = body(acc, xs[n_full * C:], n_full * C)
    carries, (hist, inputs), l_sum, logits = acc
    # The replay's weight-derived operands (transposed kernels, ...) are computed after the
    # forward pass, not kept through it.
    p0 = _after(p0, hist)

    grads = {}
    for i, stage in enumerate(stages):
        # The recorded history mirrors the "neuron" collection, each state stacked [K, ...].
        replay_carry = {**{c: v for c, v in carries[i].items() if c not in TRANSIENT},
                        "neuron": hist[i]}
        g = jax.grad(lambda q, c, x: stage_fn(stage, q, c, x, REPLAY)[0])(
            stage.take(p0), replay_carry, inputs[i]
        )
        if i < len(stages) - 1:
            # The next stage's replay waits for this one's backward (as in grad_chunk).
            inputs[i + 1] = _after(inputs[i + 1], g)
        grads = stage.put(grads, g)
    (grads,) = unstandardize(grads)
    return _total(l_sum), _aux(logits, stages, state, carries, l_sum), grads, params, None
