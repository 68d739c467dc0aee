"""Local (block-wise) learning with auxiliary heads (Guo et al. 2023), around any rule."""

from __future__ import annotations

import dataclasses
import logging
from typing import Sequence

import jax

from snnjax.rules.base import Rule, Temporal
from snnjax.rules.engine import Plan, Stage
from snnjax.rules.online import Online

__all__ = ["Local", "local"]

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Local(Rule):
    """Blocks of units, each trained by its own head's loss, with ``inner``'s temporal rule.

    Each block's input is a constant; each block ends in an auxiliary head (global average
    pool for conv features, then Dense, no neuron) trained with the per-step loss; the last
    block's head is the network's readout and the only one used at inference. The gradient
    is ``Σ_b ∇L_b`` (equal weights). docs/schedules.md: block b's forward, head loss and backward
    finish before block b+1's forward starts, so memory is that of the largest block within
    one chunk. One block is ``inner``.

    Attributes:
      inner: the temporal rule inside each block.
      block_size: units per block (the last block may be shorter); or
      boundaries: explicit cut points between units, e.g. ``(2, 4)`` on 6 units gives
        blocks [0, 2), [2, 4), [4, 6).
    """

    inner: Temporal
    block_size: int | None = None
    boundaries: tuple[int, ...] | None = None

    def __post_init__(self):
        if not isinstance(self.inner, Temporal):
            raise ValueError(f"local(): the inner rule must be a temporal rule, got "
                             f"{self.inner!r}")
        if (self.block_size is None) == (self.boundaries is None):
            raise ValueError("Local blocks: give exactly one of block_size or boundaries")
        if self.block_size is not None and (
                isinstance(self.block_size, bool) or not isinstance(self.block_size, int)
                or self.block_size < 1):
            raise ValueError(f"Local blocks: block_size must be an integer >= 1, got "
                             f"{self.block_size!r}")
        if self.boundaries is not None:
            object.__setattr__(self, "boundaries", tuple(int(b) for b in self.boundaries))

    @property
    def name(self) -> str:
        return f"local({self.inner.name})"

    @property
    def memory(self) -> str:
        return f"{self.inner.memory} per block"

    @property
    def rate_loss_ok(self) -> bool:
        return self.inner.rate_loss_ok

    @property
    def temporal(self) -> Temporal:
        return self.inner

    def plan(self, T: int) -> Plan:
        return self.inner.plan(T)

    def schedules(self, T: int) -> tuple[Rule, ...]:
        """:meth:`Rule.schedules`: the inner rule's, with these blocks."""
        return tuple(dataclasses.replace(self, inner=s) for s in self.inner.schedules(T))

    def interval(self, T: int) -> int:
        return self.inner.interval(T)

    def ranges(self, num_units: int) -> tuple[tuple[int, int], ...]:
        """The blocks' unit ranges ``((start, end), ...)`` on a model of ``num_units``."""
        if self.boundaries is not None:
            cuts = self.boundaries
            if any(not 0 < b < num_units for b in cuts) or list(cuts) != sorted(set(cuts)):
                raise ValueError(
                    f"Local blocks: boundaries {cuts} must be strictly increasing and inside "
                    f"the model's units (0, {num_units})"
                )
        else:
            cuts = tuple(range(self.block_size, num_units, self.block_size))
        edges = (0, *cuts, num_units)
        return tuple(zip(edges[:-1], edges[1:]))

    def stages(self, model) -> tuple[Stage, ...]:
        split = getattr(model, "split", None)
        if split is None or not hasattr(model, "units"):
            raise ValueError(
                f"Local learning needs block boundaries: {type(model).__name__} has no "
                "split(ranges) method and units. Build the model as "
                "snnjax.models.SpikingSequential(units, num_classes) (docs/models.md)"
            )
        return tuple(Stage(block, names) for block, names in split(self.ranges(len(model.units))))

    def init(self, model, key, x_t):
        """The model's parameters (as :meth:`Rule.init`, same key) plus the auxiliary heads.

        Logs a warning (logger ``snnjax.rules.local``) when the blocks on ``model`` are one
        block: then this rule is its inner rule alone.
        """
        params, state = super().init(model, key, x_t)
        x = x_t[None]
        stages = self.stages(model)
        if len(stages) == 1:
            n = len(model.units)
            how = (f"block_size={self.block_size}" if self.block_size is not None
                   else f"boundaries={self.boundaries}")
            log.warning(f"{type(model).__name__} has {n} unit{'s' if n > 1 else ''}, so "
                        f"{how} makes one block: {self.name} is plain {self.inner.name}")
        for b, stage in enumerate(stages):
            (x, _), variables = stage.module.init_with_output(
                jax.random.fold_in(key, b), x, train=False
            )
            if b < len(stages) - 1:
                params = {**params, stage.names["head"]: variables["params"]["head"]}
        return params, state


def local(
    inner: Rule, *, block_size: int | None = None, boundaries: Sequence[int] | None = None
) -> Rule:
    """Local learning (:class:`Local`) around ``inner``: Guo et al.'s TBPTT+Local is
    ``local(tbptt(k), block_size=m)``. An inner rule with in-loop updates keeps them:
    ``local(tbptt(k, online=True), ...)`` is ``online(local(tbptt(k), ...))``."""
    boundaries = None if boundaries is None else tuple(boundaries)
    if isinstance(inner, Local):
        raise ValueError("local(): the inner rule is already local")
    if isinstance(inner, Online):
        return Online(Local(inner.inner, block_size, boundaries))
    return Local(inner, block_size, boundaries)
