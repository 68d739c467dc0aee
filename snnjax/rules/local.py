"""Local (block-wise) learning with auxiliary heads (Guo et al. 2023), around any rule."""

from __future__ import annotations

from typing import Sequence

from snnjax.rules.base import BlockSpec, Rule

__all__ = ["local"]


def local(
    inner: Rule, *, block_size: int | None = None, boundaries: Sequence[int] | None = None
) -> Rule:
    """Split the model into blocks of units, each trained by its own head's loss.

    Each block's input is ``stop_gradient``-ed; each block ends in an auxiliary head (global
    average pool for conv features, then Dense, no neuron) trained with the per-step loss;
    the last block's head is the network's readout and the only one used at inference. The
    gradient is ``Σ_b ∇L_b`` (equal weights), computed by the ``inner`` temporal rule, so
    Guo et al.'s TBPTT+Local is ``local(tbptt(k), block_size=m)``. One block is ``inner``.

    Args:
      inner: the temporal rule inside each block (bptt(), tbptt(k), sltt(), ottt(), ...).
      block_size: units per block (the last block may be shorter).
      boundaries: explicit cut points between units instead, e.g. ``(2, 4)``.
    """
    if inner.blocks is not None:
        raise ValueError("local(): the inner rule is already local")
    spec = BlockSpec(block_size, None if boundaries is None else tuple(boundaries))
    return inner._replace(name=f"local({inner.name})", blocks=spec)
