"""In-loop optimizer updates, as a wrapper around a rule (OTTT_O, online TBPTT)."""

from __future__ import annotations

import dataclasses

from snnjax.rules.base import Rule, Temporal
from snnjax.rules.engine import Plan

__all__ = ["Online", "online"]


@dataclasses.dataclass(frozen=True)
class Online(Rule):
    """``inner`` with the optimizer applied inside the time loop, after every update
    interval: every step for the cut rules (OTTT_O), every window for TBPTT. The chunk is
    that interval (docs/schedules.md). Each update uses the gradient of its own steps (loss still
    divided by the full T); the next steps' forward uses the updated weights, and neuron
    state and traces carry over.

    Attributes:
      inner: a temporal rule, or :class:`~snnjax.rules.local.Local` around one.
    """

    inner: Rule

    def __post_init__(self):
        if isinstance(self.inner, Online):
            raise ValueError("online(): the inner rule already updates in the loop")
        if self.inner.own_loop:
            raise ValueError(f"online(): {self.inner.name} runs its own loop, which "
                             "accumulates over the sequence; it has no in-loop updates")
        t = _temporal(self.inner)
        if t.K is not None:
            raise ValueError("online(): SLTT-K's selected steps have no in-loop updates")
        if t.cut and (t.chunk or 1) != 1:
            raise ValueError(
                f"online(): updates after every step fix the chunk to 1, got chunk={t.chunk}"
            )

    @property
    def name(self) -> str:
        t = _temporal(self.inner)
        if t.traces and self.inner is t:
            return "ottt_o(bits)" if t.bits else "ottt_o"
        return f"{self.inner.name},online"

    @property
    def memory(self) -> str:
        return self.inner.memory

    @property
    def temporal(self) -> Temporal:
        return self.inner.temporal

    def plan(self, T: int) -> Plan:
        plan = self.inner.plan(T)
        return dataclasses.replace(plan, chunk=_temporal(self.inner).interval(T), online=True)

    def schedules(self, T: int) -> tuple[Rule, ...]:
        """:meth:`Rule.schedules`: the inner rule's, each updating in the loop."""
        return tuple(Online(s) for s in self.inner.schedules(T))

    def stages(self, model):
        return self.inner.stages(model)

    def init(self, model, key, x_t):
        return self.inner.init(model, key, x_t)

    def updates_per_batch(self, T: int) -> int:
        return -(-T // _temporal(self.inner).interval(T))


def _temporal(rule: Rule) -> Temporal:
    return rule.temporal


def online(inner: Rule) -> Online:
    """``inner`` with optimizer updates inside the time loop (see :class:`Online`)."""
    return Online(inner)
