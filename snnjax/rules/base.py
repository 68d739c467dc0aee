"""The rule interface shared by every training rule, and the forward pass rules drive.

A rule is a :class:`Rule` value (like an optax ``GradientTransformation``): a name and pure
functions, built by a factory (``bptt()``, ``tbptt(k=4)``, ``sltt()``, ``sltt_k(K=2)``,
``ottt(online=False)``, ``local(inner=..., block_size=2)``). Every rule is used the same way:

    loss, aux, grads = rule.value_and_grad(model, params, state, xs, ys, loss=..., key=...)
    params, opt_state, state, loss, out = rule.update(model, params, opt_state, state, xs, ys,
                                                      loss=..., key=..., optimizer=...)

with ``xs [T, B, ...]`` (time-major) and ``ys [B]`` integer labels. ``state`` holds the
persistent collections (BatchNorm's ``batch_stats``); neuron potentials and traces start at 0
for every batch. The training step never branches on which rule it has.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from snnjax.layers import standardize_params
from snnjax.losses import Loss

__all__ = ["Rule", "Forward", "Aux", "BlockSpec", "TRANSIENT", "windowed_grad", "tree_zeros"]

PyTree = Any
TRANSIENT = ("neuron", "trace")  # reset to zero for every batch


class Aux(NamedTuple):
    """What a rule returns besides loss and gradients.

    Attributes:
      logits: the readout's logits summed over time, ``[B, C]`` (argmax is the prediction;
        the last head under Local). Summed in the loop, so no ``[T, B, C]`` is kept.
      state: the updated persistent collections (e.g. ``{"batch_stats": ...}``).
    """

    logits: jax.Array
    state: PyTree


def tree_zeros(tree: PyTree) -> PyTree:
    return jax.tree.map(jnp.zeros_like, tree)


def _tree_add(a: PyTree, b: PyTree) -> PyTree:
    return jax.tree.map(jnp.add, a, b)


@dataclasses.dataclass(frozen=True)
class BlockSpec:
    """Where Local learning cuts the model: every ``block_size`` units, or at ``boundaries``.

    ``boundaries=(2, 4)`` on a 6-unit model gives blocks [0, 2), [2, 4), [4, 6).
    """

    block_size: int | None = None
    boundaries: tuple[int, ...] | None = None

    def __post_init__(self):
        if (self.block_size is None) == (self.boundaries is None):
            raise ValueError("Local blocks: give exactly one of block_size or boundaries")
        if self.block_size is not None and self.block_size < 1:
            raise ValueError(f"Local blocks: block_size must be >= 1, got {self.block_size}")

    def ranges(self, num_units: int) -> tuple[tuple[int, int], ...]:
        if self.boundaries is not None:
            cuts = tuple(int(b) for b in self.boundaries)
            if any(not 0 < b < num_units for b in cuts) or list(cuts) != sorted(set(cuts)):
                raise ValueError(
                    f"Local blocks: boundaries {cuts} must be strictly increasing and inside "
                    f"the model's units (0, {num_units})"
                )
        else:
            cuts = tuple(range(self.block_size, num_units, self.block_size))
        edges = (0, *cuts, num_units)
        return tuple(zip(edges[:-1], edges[1:]))


@dataclasses.dataclass(frozen=True)
class Forward:
    """How a rule runs the model for one step: train mode, OTTT traces on, Local blocks.

    ``pre_reset=True`` makes the neurons carry their pre-reset potential ``u`` instead of the
    post-reset ``v`` (:func:`snnjax.neuron.lif_step_pre_reset`): the same function, chosen by
    the per-step rules because then the carried state is also the surrogate's residual.
    """

    model: nn.Module
    train: bool = True
    traced: bool = False
    blocks: tuple[tuple[int, int], ...] | None = None
    pre_reset: bool = False

    @property
    def transient(self) -> tuple[str, ...]:
        return ("neuron", "trace") if self.traced else ("neuron",)

    def _apply(self, variables, x_t, key, mutable):
        rngs = {"dropout": key} if (self.train and key is not None) else {}
        return self.model.apply(
            variables, x_t, train=self.train, blocks=self.blocks, rngs=rngs, mutable=mutable
        )

    def init_carry(self, params: PyTree, state: PyTree, x0: jax.Array) -> dict:
        """Zero neuron state (and traces) for this batch, plus the persistent ``state``."""
        mutable = list(self.transient) + list(state)
        shapes = jax.eval_shape(
            lambda: self._apply({"params": params, **state}, x0, jax.random.key(0), mutable)[1]
        )
        zeros = lambda s: jnp.zeros(s.shape, s.dtype)  # noqa: E731
        carry = {c: jax.tree.map(zeros, shapes[c]) for c in self.transient if c in shapes}
        if self.pre_reset and "neuron" in carry:
            # The LIF layers find "u" and carry the pre-reset potential (zero either way).
            carry["neuron"] = _rename_leaves(carry["neuron"], "v", "u")
        return {**carry, **state}

    def step(self, params: PyTree, carry: dict, x_t: jax.Array, key) -> tuple[tuple, dict]:
        """One time step: ``(heads, carry)``; ``heads`` is a tuple of logits ``[B, C]``."""
        outs, new = self._apply({"params": params, **carry}, x_t, key, list(carry))
        outs = outs if isinstance(outs, tuple) else (outs,)
        # Keep the carry's dtypes (e.g. float32 BatchNorm statistics under float64 inputs),
        # as lax.scan requires.
        new = jax.tree.map(lambda n, c: n.astype(c.dtype), dict(new), {k: carry[k] for k in new})
        return outs, {**carry, **new}

    def run(self, params, carry, xs, key):
        """Scan :meth:`step` over ``xs [T, ...]``: ``(carry, heads)``, each head ``[T, B, C]``."""

        def body(c, x_t):
            outs, c = self.step(params, c, x_t, key)
            return c, outs

        return jax.lax.scan(body, carry, xs)


def _rename_leaves(tree: Mapping, old: str, new: str) -> dict:
    return {
        (new if k == old and not isinstance(v, Mapping) else k):
        (_rename_leaves(v, old, new) if isinstance(v, Mapping) else v)
        for k, v in tree.items()
    }


def _leaf_names(tree: Mapping) -> set[str]:
    names = set()
    for k, v in tree.items():
        names |= _leaf_names(v) if isinstance(v, Mapping) else {k}
    return names


def _unstandardize(params: PyTree) -> Callable[[PyTree], tuple]:
    """VJP of :func:`~snnjax.layers.standardize_params` at ``params``, its forward redone."""

    def vjp(cotangent):
        # Tied to the loop's output by the barrier, the standardisation is recomputed after
        # the loop; a plain jax.vjp would keep its weight-sized residuals through the loop.
        p, cotangent = jax.lax.optimization_barrier((params, cotangent))
        return jax.vjp(standardize_params, p)[1](cotangent)

    return vjp


def _heads_loss(loss: Loss, heads: tuple, ys: jax.Array, T: int) -> jax.Array:
    """Per-step loss summed over a chunk of steps and over heads, divided by the full T."""
    per_head = [jax.vmap(loss.step, in_axes=(0, None))(o, ys).sum() for o in heads]
    return sum(per_head) / T


def windowed_grad(
    fwd: Forward,
    params: PyTree,
    state: PyTree,
    xs: jax.Array,
    ys: jax.Array,
    *,
    loss: Loss,
    key,
    window: int,
    selected: jax.Array | None = None,
    optimizer: optax.GradientTransformation | None = None,
    opt_state: PyTree = None,
    pre_reset: bool | None = None,
):
    """The engine of every rule that cuts time: gradients computed *inside* the time loop.

    ``xs`` is split into windows of ``window`` steps (a shorter last one if needed). A
    ``lax.scan`` over windows carries (neuron state, gradient sum, loss sum[, params,
    optimizer state]); its body takes ``value_and_grad`` of one window's loss with the
    incoming state as a constant, so stored residuals cover one window: memory O(window),
    not O(T). ``window=1`` is SLTT/OTTT, ``window=T`` is BPTT.

    Args:
      selected: optional bool ``[T]`` (window 1, no in-loop optimizer): backward only where
        True, via ``lax.cond`` so that other steps really skip it (SLTT-K). A selected
        step's backward replays it from the new potentials (``layers.LIF``'s ``u_replay``)
        when the neurons' potentials are the only transient state.
      optimizer: if given, apply it after every window (OTTT_O, TBPTT with online updates).
      pre_reset: carry the neurons' pre-reset potential (``Forward.pre_reset``); default:
        when ``window == 1``, where it takes less memory (same results either way).

    Returns:
      ``(loss, Aux, grad_sum, params, opt_state)``; loss is Σ over all T steps.
    """
    T = xs.shape[0]
    if selected is not None and (window != 1 or optimizer is not None):
        raise ValueError("windowed_grad: selected steps need window=1 and no in-loop optimizer")
    if pre_reset is None:
        pre_reset = window == 1
    if pre_reset:
        # One step per window: carry the neurons' pre-reset potential, which is also the
        # residual of their surrogate gradient, so the loop keeps one buffer per layer where
        # carrying v keeps two (SLTT on VGG-11 at batch 128: -36 % memory).
        fwd = dataclasses.replace(fwd, pre_reset=True)
    carry0 = fwd.init_carry(params, state, xs[0])
    # SLTT-K replays selected steps from the neurons' u[t] when that is all the transient
    # state there is (a model keeping more, e.g. a fed-back map, takes the lax.cond path).
    replay = (selected is not None and pre_reset and not fwd.traced
              and _leaf_names(carry0.get("neuron", {})) <= {"u"})
    online = optimizer is not None
    if online:
        p0, unstandardize = params, None
    else:
        # Parameters are fixed for the whole batch: standardise the weights once, sum the
        # gradients w.r.t. the standardised kernels over time and map the sum back once.
        p0, unstandardize = standardize_params(params), _unstandardize(params)

    def window_loss(p, carry, xw):
        carry, heads = fwd.run(p, carry, xw, key)
        return _heads_loss(loss, heads, ys, T), (heads[-1].sum(axis=0), carry)

    value_and_grad = jax.value_and_grad(window_loss, has_aux=True)

    def forward_backward(p, carry, xw):
        (value, aux), g = value_and_grad(p, carry, xw)
        return value, aux, g

    # SLTT-K without replay: the two branches both return the new gradient sum, so that a
    # skipped step adds nothing rather than a tree of zeros. The neuron state crosses the
    # lax.cond, which XLA:CPU copies (VGG-11, batch 128: 887 MiB against 761 replaying).
    def with_backward(p, carry, xw, g_sum):
        value, aux, g = forward_backward(p, carry, xw)
        return value, aux, _tree_add(g_sum, g)

    def without_backward(p, carry, xw, g_sum):
        value, aux = window_loss(p, carry, xw)
        return value, aux, g_sum

    def body(acc, xw, sel):
        p, o_state, carry, g_sum, l_sum, logits = acc
        p = p if online else p0  # fixed parameters are closed over, not carried
        if sel is None:
            value, (out, carry), g = forward_backward(p, carry, xw)
            g_sum = _tree_add(g_sum, g)
        elif replay:
            # SLTT-K: the forward (state updated in place), then, at a selected step, the
            # backward of a replay of the step from the new potentials u[t] (one more forward
            # pass at K steps). Only the gradient sum crosses the lax.cond.
            value, (out, carry) = window_loss(p, carry, xw)
            replayed = {**carry, "neuron": _rename_leaves(carry["neuron"], "u", "u_replay")}

            def backward(gs):
                g = jax.grad(lambda q: window_loss(q, replayed, xw)[0])(p)
                return _tree_add(gs, g)

            g_sum = jax.lax.cond(sel, backward, lambda gs: gs, g_sum)
        else:
            value, (out, carry), g_sum = jax.lax.cond(
                sel, with_backward, without_backward, p, carry, xw, g_sum
            )
        if online:
            updates, o_state = optimizer.update(g, o_state, p)
            p = optax.apply_updates(p, updates)
        return p if online else None, o_state, carry, g_sum, l_sum + value, logits + out

    def scan_body(acc_i, _):
        # Slice the window out of the closed-over xs: scanning over a reshaped copy of xs
        # made XLA copy the whole input into the loop (O(T) temp memory). The window index
        # is carried, not scanned over, so that no [T] index array is kept either.
        acc, i = acc_i
        xw = jax.lax.dynamic_slice_in_dim(xs, i * window, window)
        sel = None if selected is None else selected[i * window]
        return (body(acc, xw, sel), i + 1), None

    n_full, rest = divmod(T, window)
    value0, (logits0, _) = jax.eval_shape(window_loss, p0, carry0, xs[:1])
    zeros = lambda s: jnp.zeros(s.shape, s.dtype)  # noqa: E731
    acc = (p0 if online else None, opt_state, carry0, tree_zeros(p0), zeros(value0),
           zeros(logits0))
    (acc, _), _ = jax.lax.scan(scan_body, (acc, jnp.int32(0)), None, length=n_full)
    if rest:
        acc = body(acc, xs[n_full * window :], None if selected is None else selected[-1])
    p, o_state, carry, g_sum, l_sum, logits = acc
    if not online:
        (g_sum,) = unstandardize(g_sum)
        p = params
    new_state = {c: carry[c] for c in state}
    return l_sum, Aux(logits, new_state), g_sum, p, o_state


GradFn = Callable[..., tuple]  # (fwd, params, state, xs, ys, *, loss, key) -> (loss, Aux, grads)
OnlineFn = Callable[..., tuple]  # (..., optimizer, opt_state) -> (loss, Aux, grads, params, opt_state)


class Rule(NamedTuple):
    """A training rule: how gradients flow through time, as a value.

    Attributes:
      name: a short name (``"bptt"``, ``"tbptt(k=4)"``, ``"local(sltt)"``, ...).
      grad_fn: ``(fwd, params, state, xs, ys, *, loss, key) -> (loss, Aux, grads)``.
      online_fn: for rules that step the optimizer inside the time loop (OTTT_O, TBPTT with
        ``online=True``): ``(fwd, ..., optimizer=, opt_state=) -> (loss, Aux, grads, params,
        opt_state)``; None for rules that update once per batch.
      traced: the forward pass keeps OTTT's presynaptic traces.
      blocks: Local learning's block split, or None.
      check: ``check(T)`` raises ValueError for an impossible setting (window > T, K > T).
      rate_loss_ok: whether the rule can take a loss that couples all steps (BPTT only).
      memory: the rule's training memory in T, for docs and tables ("O(T)", "O(1)", ...).
      updates_per_batch: ``updates_per_batch(T)``, optimizer steps per batch (T for OTTT_O,
        the number of windows for online TBPTT, else 1): schedules stepped per epoch need it.
    """

    name: str
    grad_fn: GradFn
    online_fn: OnlineFn | None = None
    traced: bool = False
    blocks: BlockSpec | None = None
    check: Callable[[int], None] = lambda T: None
    rate_loss_ok: bool = False
    memory: str = "O(T)"
    updates_per_batch: Callable[[int], int] = lambda T: 1

    # -- the public interface ---------------------------------------------------------

    def forward(self, model: nn.Module, *, train: bool = True) -> Forward:
        """The forward pass this rule drives on ``model``."""
        blocks = None
        if self.blocks is not None:
            blocks = self.blocks.ranges(len(model.units))
        return Forward(model, train=train, traced=self.traced, blocks=blocks)

    def init(self, model: nn.Module, key, x_t: jax.Array) -> tuple[PyTree, PyTree]:
        """Initialise ``(params, state)`` from one time step ``x_t [B, ...]``.

        Under Local the parameters include the auxiliary heads.
        """
        fwd = self.forward(model, train=False)
        variables = model.init(key, x_t, train=False, blocks=fwd.blocks)
        params = variables["params"]
        state = {k: v for k, v in variables.items() if k != "params" and k not in TRANSIENT}
        return params, state

    def validate(self, T: int, loss: Loss) -> None:
        """Raise ValueError before compiling when the rule cannot run with this T and loss."""
        if T < 1:
            raise ValueError(f"T (time steps) must be >= 1, got {T}")
        self.check(T)
        if loss.kind != "per_step" and not self.rate_loss_ok:
            raise ValueError(
                f"rule {self.name} needs the per-step loss (SPEC §2); the rate loss couples all "
                "time steps and only BPTT can use it"
            )

    def value_and_grad(self, model, params, state, xs, ys, *, loss: Loss, key=None):
        """Loss, aux and gradients for one batch ``xs [T, B, ...]``, ``ys [B]``.

        For OTTT_O this is the gradient summed over steps at fixed weights (OTTT_A's); its
        in-loop updates happen in :meth:`update`.
        """
        self.validate(xs.shape[0], loss)
        return self.grad_fn(self.forward(model), params, state, xs, ys, loss=loss, key=key)

    def update(self, model, params, opt_state, state, xs, ys, *, loss, key, optimizer):
        """One training step on a batch: ``(params, opt_state, state, loss, logits)``.

        ``logits`` are the readout's outputs summed over time, ``[B, C]``.
        """
        if optimizer is None:
            raise ValueError(f"rule {self.name} needs an optax optimizer to update parameters")
        self.validate(xs.shape[0], loss)
        fwd = self.forward(model)
        if self.online_fn is not None:
            value, aux, _, params, opt_state = self.online_fn(
                fwd, params, state, xs, ys, loss=loss, key=key,
                optimizer=optimizer, opt_state=opt_state,
            )
        else:
            value, aux, grads = self.grad_fn(fwd, params, state, xs, ys, loss=loss, key=key)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)
        return params, opt_state, aux.state, value, aux.logits
