"""e-prop (Bellec et al., Nat. Commun. 2020): eligibility traces times a learning signal.

At every step t, for a synapse ``W_ji`` into neuron j of a hidden layer:

    ε_ji[t] = ∂h_j[t]/∂h_j[t-1]·ε_ji[t-1] + ∂h_j[t]/∂I_j[t]·x_i[t]    (eligibility vector)
    e_ji[t] = ∂s_j[t]/∂h_j[t-1]·ε_ji[t-1] + ∂s_j[t]/∂I_j[t]·x_i[t]    (eligibility trace)
    ∇W_ji  = Σ_t L_j[t]·e_ji[t]

where ``h_j`` is neuron j's own state (LIF: ``u``; ALIF: ``(u, a)``) and everything else (the
inputs, the other neurons, the layer's own spikes on its recurrent synapse) is held fixed:
the derivatives are the neuron's own step differentiated forward (``jax.jvp`` of
:meth:`~snnjax.neurons.SpikingNeuron.dynamics`), one neuron at a time. For LIF this is SPEC
§10's ``ε_ji[t] = λ·ε_ji[t-1] + x_i[t]`` (times ``1 - s_j[t-1]`` under the hard reset) and
``e = ψ·ε``; for ALIF ``e = ψ·(ε^v - β·ε^a)``. ``x`` is the synapse's input at t (a
recurrent synapse's: the layer's own spikes at t-1; a bias's: 1).

The learning signal ``L_j[t]`` is ``∂E[t]/∂s_j[t]`` through the layers above at the same t
(``feedback="symmetric"``: for the last hidden layer the readout's transposed weights times
the output error), or ``B_l·∂E[t]/∂y[t]`` with a fixed random ``B_l`` per hidden layer
(``feedback="random"``; drawn at init, the rule state). The readout has no state: its
gradient is the exact ``Σ_t δ_y[t]·s[t]ᵀ``.

One ``lax.scan`` over time carries the neuron states, the eligibility vectors and the summed
gradient: memory O(1) in T. Where the eligibility vector does not depend on the
postsynaptic neuron (LIF or IF with a soft, detached reset: ``ε_ji = ε_i``) it is kept per
input, ``[B, N_in]``; otherwise per synapse, ``[B, N_in, N_out]`` per state variable.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, NamedTuple

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp

from snnjax.layers import BatchNorm, Conv, Dense
from snnjax.losses import Loss
from snnjax.neurons import LIF, SpikingNeuron
from snnjax.recurrent import RecurrentDense
from snnjax.rules.base import RULE_STATE, Rule, Temporal
from snnjax.rules.engine import Aux, Plan, Stage, chunk_loss
from snnjax.rules.walk import calls

__all__ = ["EProp", "eprop", "FEEDBACK", "Layer", "LayerTangent", "survey"]

PyTree = Any
FEEDBACK = ("symmetric", "random")
Path = tuple[str, ...]


class Layer(NamedTuple):
    """A hidden layer as e-prop sees it (static).

    Attributes:
      neuron: the neuron module's path.
      kernel, bias, recurrent: the paths of its feed-forward kernel, bias (or None) and
        recurrent kernel (or None) in the parameters.
      decay: λ where the eligibility vector is per input (LIF/IF, soft detached reset),
        else None (per synapse).
    """

    neuron: Path
    kernel: Path
    bias: Path | None
    recurrent: Path | None
    decay: float | None


def _layer_name(module: nn.Module) -> str:
    return f"'{'/'.join(module.path) or type(module).__name__}' ({type(module).__name__})"


def _per_input_decay(neuron: SpikingNeuron) -> float | None:
    """λ when the neuron's ``∂h[t]/∂h[t-1]`` is the constant λ and ``∂h/∂I = 1`` (LIF, IF
    with a soft reset that is detached): then ``ε_ji = ε_i``."""
    if isinstance(neuron, LIF) and neuron.fixed_decay:
        p = neuron.neuron
        if p.reset == "soft" and p.detach_reset:
            return float(neuron.trace_decay)
    return None


def _refuse(module: nn.Module) -> None:
    if isinstance(module, Conv):
        raise ValueError(
            f"e-prop cannot train {_layer_name(module)}: its eligibility traces are "
            "implemented for dense synapses only (Dense units, RecurrentDense); use a dense "
            "model or another rule (docs/rules.md)")
    if isinstance(module, (nn.BatchNorm, BatchNorm)):
        raise ValueError(
            f"e-prop cannot train through {_layer_name(module)}: BatchNorm couples the "
            "samples of a step, and e-prop's eligibility follows each neuron alone; build "
            "the model with norm=False (docs/rules.md)")
    if isinstance(module, Dense) and module.weight_standardization:
        raise ValueError(
            f"e-prop cannot train {_layer_name(module)}: scaled weight standardisation "
            "couples a neuron's weights; build it with weight_standardization=False")


class _Step:
    """One time step of the model under e-prop, every module call seen by this visitor
    (:func:`snnjax.rules.walk.calls`): each neuron's call is replaced by its own step from
    the state e-prop carries (a constant), which also advances its eligibility vectors.

    ``states``, ``elig``: per neuron path, the carried ``(state, s[t-1])`` and eligibility
    vectors, or None to survey the model (rest states, no eligibility). ``probes``: zeros
    added to each layer's spikes, whose gradients are the learning signals.
    """

    def __init__(self, states=None, elig=None, probes=None, advance=None):
        self.states, self.elig, self.probes = states, elig, probes
        self.advance = advance
        self.layers: dict[Path, Layer] = {}
        self.new_states, self.new_elig, self.tangents = {}, {}, {}
        self._last = None  # the last Dense call: (module, input, output)

    def __call__(self, module, call, args, kwargs):
        if isinstance(module, SpikingNeuron):
            return self._neuron(module, args[0], kwargs.get("recurrence"))
        _refuse(module)
        out = call(*args, **kwargs)
        if isinstance(module, Dense):
            self._last = (module, args[0], out)
        return out

    def _neuron(self, module: SpikingNeuron, currents, rec):
        last, self._last = self._last, None
        if last is None or last[2] is not currents:
            raise ValueError(
                f"e-prop cannot train neuron {_layer_name(module)}: its current must be a "
                "Dense synapse's output, with nothing between them (docs/rules.md)")
        dense, x, _ = last
        if not module.fixed_decay:
            raise ValueError(
                f"e-prop cannot train neuron {_layer_name(module)}: its decay is learnable, "
                "and e-prop's eligibility vectors hold only the synapses' weights")
        if currents.ndim != 3 or x.ndim != 3:
            raise ValueError(
                f"e-prop cannot train neuron {_layer_name(module)}: it takes dense currents "
                f"[C, B, N], got {tuple(currents.shape)}")
        recurrent = None
        if rec is not None:
            parent = module.parent
            if not isinstance(parent, RecurrentDense):
                raise ValueError(
                    f"e-prop cannot train the recurrent synapse of {_layer_name(module)}: "
                    "only RecurrentDense's is served")
            recurrent = tuple(parent.path) + ("recurrent_kernel",)
        path = tuple(module.path)
        layer = Layer(path, tuple(dense.path) + ("kernel",),
                      tuple(dense.path) + ("bias",) if dense.use_bias else None,
                      recurrent, _per_input_decay(module))
        self.layers[path] = layer

        sg = jax.lax.stop_gradient
        i_ff = currents[0]
        if self.states is None:
            h, s_prev = module.initial_state(i_ff), jnp.zeros_like(i_ff)
        else:
            h, s_prev = self.states[path]
        h, s_prev = sg(h), sg(s_prev)
        current = i_ff if rec is None else i_ff + rec.op(s_prev, rec.kernel)
        step = module.dynamics()

        def own_step(h, i):
            s, carry = step(module.carry_in(h), i)
            return s, module.carry_out(carry)

        s, h_new = own_step(h, current)
        self.new_states[path] = (sg(h_new), sg(s))
        if self.elig is not None:
            rec_const = None if rec is None else rec._replace(kernel=sg(rec.kernel))
            self.new_elig[path], self.tangents[path] = self.advance(
                own_step, layer, h, sg(i_ff), sg(x[0]), s_prev, self.elig[path], rec_const)
        if self.probes is not None:
            s = s + self.probes[path]
        return s[None]


def _zero_elig(layer: Layer, h, x_width: int, width: int):
    """The eligibility vectors before the first step, for one sample batch of state ``h``."""
    def per_synapse(n_in):
        return jax.tree.map(lambda a: jnp.zeros((a.shape[0], n_in) + a.shape[1:], a.dtype), h)

    def per_input(n_in):
        leaf = jax.tree.leaves(h)[0]
        return jnp.zeros((leaf.shape[0], n_in), leaf.dtype)

    make = per_synapse if layer.decay is None else per_input
    elig = {"kernel": make(x_width)}
    if layer.bias is not None:
        elig["bias"] = jax.tree.map(jnp.zeros_like, h)
    if layer.recurrent is not None:
        elig["recurrent"] = make(width)
    return elig


def _advance(own_step, layer: Layer, h, i_ff, x, s_prev, elig, rec):
    """The eligibility vectors after this step and the spikes' tangents (the eligibility
    traces ``e``) for each parameter of the layer: ``jax.jvp`` of the neuron's own step at
    the current ``i_ff`` (+ the recurrent product of the constant ``s_prev``)."""
    current = i_ff if rec is None else i_ff + rec.op(s_prev, rec.kernel)
    zeros_h = jax.tree.map(jnp.zeros_like, h)

    def jvp(h_dot, i_dot):
        _, (s_dot, h_dot_new) = jax.jvp(own_step, (h, current), (h_dot, i_dot))
        return h_dot_new, s_dot

    def synapses(eps, inputs):
        if layer.decay is not None:
            # ε_i[t] = λ·ε_i[t-1] + x_i[t]; e_ji = (∂s_j/∂I_j)·ε_i, kept as its two factors.
            eps = (layer.decay * eps + inputs).astype(eps.dtype)
            return eps, (eps, psi)
        # One JVP per input i (vmapped): state tangents ε_{·i}, current tangent x_i.
        along = jax.vmap(
            lambda e, xi: jvp(e, jnp.broadcast_to(xi[:, None], current.shape).astype(
                current.dtype)), in_axes=(1, 1), out_axes=1)
        eps_new, e = along(eps, inputs)
        return eps_new, e

    psi = jvp(zeros_h, jnp.ones_like(current))[1] if layer.decay is not None else None
    new, tangents = {}, {}
    new["kernel"], tangents["kernel"] = synapses(elig["kernel"], x)
    if "bias" in elig:
        new["bias"], tangents["bias"] = jvp(elig["bias"], jnp.ones_like(current))
    if "recurrent" in elig:
        new["recurrent"], tangents["recurrent"] = synapses(elig["recurrent"], s_prev)
    return new, tangents


class LayerTangent(NamedTuple):
    """The spikes' tangents of a whole layer for each parameter ``[B, *param, N]`` (every
    neuron of the layer, not only the one the parameter feeds: OSTL's exact RTRL)."""

    s_dot: jax.Array


def _weight_grad(tangent, signal):
    """``Σ_b L_j·e_ji`` of one step: ``[N_in, N]`` (or ``[N]`` for a bias)."""
    if isinstance(tangent, LayerTangent):
        return jnp.einsum("b...k,bk->...", tangent.s_dot, signal)
    if isinstance(tangent, tuple):  # per-input factors (ε_i, ∂s_j/∂I_j)
        eps, psi = tangent
        return jnp.einsum("bi,bj->ij", eps, signal * psi)
    if tangent.ndim == 2:  # a bias
        return jnp.einsum("bj,bj->j", tangent, signal)
    return jnp.einsum("bij,bj->ij", tangent, signal)


def survey(module: nn.Module, params, state, x) -> tuple[dict[Path, Layer], Any, Any]:
    """The hidden layers e-prop trains in ``module`` for a chunk ``x [1, B, ...]`` (checked
    in one abstract pass; refuses what it cannot serve, naming the layer).

    Returns:
      ``(layers, shapes, logits)``: each layer by its neuron's path, the shapes of each
      one's ``(state, spikes [B, N])``, and the shape of the logits ``[1, B, classes]``.
    """
    found = {}

    def shapes(x):
        v = _Step()
        with calls(v):
            logits = module.apply({"params": params, **state}, x, train=False)
        found.update(v.layers)
        return v.new_states, logits

    st, logits = jax.eval_shape(shapes, x)
    return found, st, logits


@dataclasses.dataclass(frozen=True)
class EProp(Rule):
    """e-prop (Bellec et al. 2020; see the module docstring for the equations).

    Attributes:
      feedback: ``"symmetric"`` (the learning signal is ``∂E[t]/∂s[t]`` through the layers
        above at the same step) or ``"random"`` (a fixed random matrix per hidden layer
        times the output error, drawn at :meth:`init` into the rule state).
    """

    feedback: str = "symmetric"
    own_loop: ClassVar[bool] = True

    def __post_init__(self):
        if self.feedback not in FEEDBACK:
            raise ValueError(f"e-prop feedback must be one of {FEEDBACK}, got "
                             f"{self.feedback!r}")

    @property
    def name(self) -> str:
        return "eprop" if self.feedback == "symmetric" else f"eprop(feedback={self.feedback})"

    @property
    def memory(self) -> str:
        return "O(1)"

    @property
    def temporal(self) -> Temporal:
        # What tools reading a temporal rule see: one step at a time, every route cut.
        return Temporal(cut=True)

    def plan(self, T: int) -> Plan:
        return Plan(chunk=1, apply=1, cut=True)

    def _plan_and_stages(self, model, params, state, xs):
        plan, stages = super()._plan_and_stages(model, params, state, xs)
        model_state = {k: v for k, v in state.items() if k != RULE_STATE}
        x1 = jax.ShapeDtypeStruct((1, *xs.shape[1:]), xs.dtype)
        layers, _, _ = survey(stages[0].module, params, model_state, x1)
        if not layers:
            raise ValueError("e-prop found no spiking layer to train in "
                             f"{type(model).__name__}")
        if self.feedback == "random":
            missing = [p for p in layers if _get(state.get(RULE_STATE, {}).get("feedback", {}),
                                                   p) is None]
            if missing:
                raise ValueError(
                    "e-prop with random feedback needs its feedback matrices in "
                    f"state['{RULE_STATE}'] (from rule.init); none for "
                    f"{'/'.join(missing[0])}")
        return plan, stages

    def init_state(self, model, params, key, x_t):
        """Random feedback: ``B_l [N_l, classes]`` per hidden layer, entries
        ``N(0, 1/N_l)`` (as Bellec et al.'s code), under ``{"feedback": {layer path}}``."""
        if self.feedback != "random":
            return {}
        layers, st, logits = survey(model, params, {}, x_t[None])
        classes = logits.shape[-1]
        feedback = {}
        for n, path in enumerate(layers):
            width = st[path][1].shape[-1]
            draw = jax.random.normal(jax.random.fold_in(key, 1 + n), (width, classes),
                                     st[path][1].dtype)
            feedback[path] = draw / jnp.sqrt(width).astype(draw.dtype)
        return {"feedback": flax.traverse_util.unflatten_dict(feedback)}

    def stages(self, model):
        return (Stage(model),)

    # The eligibility a layer carries and how a step advances it (OSTL overrides both).
    def _zero_elig(self, layer: Layer, h, x_width: int, width: int):
        return _zero_elig(layer, h, x_width, width)

    def _advance(self, own_step, layer: Layer, h, i_ff, x, s_prev, elig, rec):
        return _advance(own_step, layer, h, i_ff, x, s_prev, elig, rec)

    def loop(self, stages, params, state, xs, ys, *, loss: Loss, key, plan, optimizer=None,
             opt_state=None):
        """e-prop's own loop: one ``lax.scan`` over the T steps (see the module docstring);
        ``(loss, Aux, grads, params, opt_state)`` as :func:`~snnjax.rules.engine.run`, the
        optimizer applied once per batch by :meth:`Rule.update_with_aux`."""
        module = stages[0].module  # xs and ys were checked by Rule._prepare
        model_state = {k: v for k, v in state.items() if k != RULE_STATE}
        T = xs.shape[0]
        layers, st, logits_shape = survey(module, params, model_state,
                                          jax.ShapeDtypeStruct((1, *xs.shape[1:]), xs.dtype))
        zeros = lambda s: jnp.zeros(s.shape, s.dtype)  # noqa: E731
        states0 = {p: jax.tree.map(zeros, st[p]) for p in layers}
        widths = _input_widths(params, layers)
        elig0 = {p: self._zero_elig(layers[p], states0[p][0], widths[p],
                                    states0[p][1].shape[-1]) for p in layers}
        feedback = None
        if self.feedback == "random":
            fb = state[RULE_STATE]["feedback"]
            feedback = {p: _get(fb, p) for p in layers}
        rngs = {"dropout": key} if key is not None else {}
        flat_params = flax.traverse_util.flatten_dict(params)

        def one_step(carry_i, _):
            carry, i = carry_i
            # The step sliced out of the closed-over xs (as the engine's scan): scanning xs
            # itself made XLA copy it into the loop.
            x_t = jax.lax.dynamic_index_in_dim(xs, i, keepdims=False)
            states, elig, g_sum, l_sum, logits_sum = carry
            probes = {p: jnp.zeros_like(states[p][1]) for p in layers}

            def f(p, probes, probe_y):
                v = _Step(states, elig, probes, self._advance)
                with calls(v):
                    logits = module.apply({"params": p, **model_state}, x_t[None], train=True,
                                          rngs=rngs)
                logits = logits + probe_y[None]
                value = chunk_loss(loss, logits, ys, T)
                return value, (logits[0], v.new_states, v.new_elig, v.tangents)

            y0 = jnp.zeros(logits_shape.shape[1:], logits_shape.dtype)
            (value, (logits, states, elig, tangents)), (g, signals, dy) = jax.value_and_grad(
                f, argnums=(0, 1, 2), has_aux=True)(params, probes, y0)
            if feedback is not None:
                signals = {p: dy @ feedback[p].T.astype(dy.dtype) for p in layers}
            flat = flax.traverse_util.flatten_dict(g)
            for p, layer in layers.items():
                for name, where in (("kernel", layer.kernel), ("bias", layer.bias),
                                    ("recurrent", layer.recurrent)):
                    if where is not None:
                        flat[where] = _weight_grad(tangents[p][name], signals[p]).astype(
                            flat_params[where].dtype)
            g = flax.traverse_util.unflatten_dict(flat)
            g_sum = jax.tree.map(jnp.add, g_sum, g)
            return ((states, elig, g_sum, l_sum + value, logits_sum + logits), i + 1), None

        g0 = jax.tree.map(jnp.zeros_like, params)
        carry0 = (states0, elig0, g0, jnp.zeros((), logits_shape.dtype),
                  jnp.zeros(logits_shape.shape[1:], logits_shape.dtype))
        ((_, _, grads, value, logits), _), _ = jax.lax.scan(
            one_step, (carry0, jnp.int32(0)), None, length=T)
        return value, Aux(logits, state, None), grads, params, opt_state


def _get(tree, path: Path):
    for k in path:
        if not isinstance(tree, dict) and not hasattr(tree, "keys"):
            return None
        if k not in tree:
            return None
        tree = tree[k]
    return tree


def _input_widths(params, layers) -> dict[Path, int]:
    flat = flax.traverse_util.flatten_dict(params)
    return {p: flat[layer.kernel].shape[0] for p, layer in layers.items()}


def eprop(*, feedback: str = "symmetric") -> EProp:
    """e-prop (Bellec et al., Nat. Commun. 2020): online eligibility traces times a
    learning signal, accumulated over the sequence, one optimizer step per batch.

    ``∇W_ji = Σ_t L_j[t]·e_ji[t]`` with ``e_ji[t] = ψ_j[t]·ε_ji[t]`` following neuron j's own
    recursion (LIF: ``ε_ji[t] = λ·ε_ji[t-1] + x_i[t]``; ALIF adds the adaptation's
    component); ``L_j[t] = ∂E[t]/∂s_j[t]`` through the layers above at the same step
    (symmetric) or a fixed random matrix times ``∂E[t]/∂y[t]`` (random). Equals BPTT for
    one hidden layer without recurrence (LIF with ``detach_reset``, or ALIF), and OTTT_A's
    hidden-layer gradient for LIF with a soft detached reset where OTTT's traces use the
    postsynaptic λ. Serves dense and recurrent dense layers with LIF, IF and ALIF; refuses,
    naming the layer, conv layers, BatchNorm, scaled-WS and learnable decays (PLIF). Needs
    the per-step loss. Memory O(1) in T: per sample ``O(N_in)`` per layer for LIF/IF with a
    soft detached reset, ``O(N_in·N_out)`` per state variable otherwise (ALIF, hard reset).

    Args:
      feedback: ``"symmetric"`` or ``"random"``.
    """
    return EProp(feedback)
