"""Analytic counts of one training step: MACs and memory access, from its ops and schedule.

XLA's ``cost_analysis()`` cannot give these: it counts a ``lax.scan`` body once, whatever T
is. The counts are per op (:class:`~snnjax.cost.ops.Layer`, from
:func:`~snnjax.cost.ops.trace_layers`) and per time step, times what a rule does over T steps
(:class:`Schedule`, read off the rule's plan).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

from snnjax.cost.ops import Layer
from snnjax.rules.base import Rule

__all__ = ["Schedule", "schedule", "count_macs", "count_memory_access"]


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
