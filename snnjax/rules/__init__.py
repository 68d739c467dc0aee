"""Training rules: how gradients flow through time, each a value (:class:`Rule`)."""

from snnjax.rules.base import Aux as Aux
from snnjax.rules.base import Rule as Rule
from snnjax.rules.base import Temporal as Temporal
from snnjax.rules.bptt import bptt as bptt
from snnjax.rules.engine import Plan as Plan
from snnjax.rules.eprop import EProp as EProp
from snnjax.rules.eprop import eprop as eprop
from snnjax.rules.local import Local as Local
from snnjax.rules.local import local as local
from snnjax.rules.online import Online as Online
from snnjax.rules.ostl import OSTL as OSTL
from snnjax.rules.ostl import ostl as ostl
from snnjax.rules.online import online as online
from snnjax.rules.ottt import ottt as ottt
from snnjax.rules.ottt import ottt_a as ottt_a
from snnjax.rules.ottt import ottt_o as ottt_o
from snnjax.rules.sltt import select_steps as select_steps
from snnjax.rules.sltt import sltt as sltt
from snnjax.rules.sltt import sltt_k as sltt_k
from snnjax.rules.tbptt import tbptt as tbptt

NAMES = ("bptt", "tbptt", "local", "tbptt-local", "sltt", "sltt-k", "ottt-a", "ottt-o",
         "eprop", "ostl")


def by_name(
    name: str, *, window: int = 2, block_size: int = 1, K: int = 1, online: bool = False,
    chunk: int | None = None, remat: bool = False, bits: bool = False,
    feedback: str = "symmetric",
) -> Rule:
    """Build a rule from its CLI name and the rules' parameters.

    ``tbptt`` uses ``window`` (and ``online``); ``local`` wraps BPTT and ``tbptt-local`` wraps
    TBPTT(window), both with ``block_size``; ``sltt-k`` uses ``K``; ``chunk`` is the schedule
    of ``bptt``, ``sltt``, ``sltt-k`` and ``ottt-a``, ``remat`` that of ``bptt``, ``tbptt``
    and the local rules' inner rule (docs/schedules.md); the other rules refuse ``remat``.
    ``bits`` (spikes kept as bits, docs/schedules.md) goes to every rule of the engine (the
    local rules' inner rule). ``eprop`` uses ``feedback`` (``"symmetric"`` or ``"random"``);
    ``eprop`` and ``ostl`` refuse ``chunk`` and ``bits``.
    """
    key = name.replace("_", "-").lower()
    if key == "bptt":
        return bptt(chunk=chunk, remat=remat, bits=bits)
    if key == "tbptt":
        return tbptt(window, online=online, remat=remat, bits=bits)
    if key == "local":
        return local(bptt(remat=remat, bits=bits), block_size=block_size)
    if key == "tbptt-local":
        return local(tbptt(window, online=online, remat=remat, bits=bits),
                     block_size=block_size)
    if remat and key in NAMES:
        raise ValueError(
            f"rule {name} takes no remat: it recomputes the steps of a differentiated window "
            "(bptt, tbptt, local, tbptt-local), and this rule differentiates one chunk at a "
            "time (lower its chunk for less memory; docs/schedules.md)"
        )
    if key == "sltt":
        return sltt(chunk=chunk, bits=bits)
    if key == "sltt-k":
        return sltt_k(K, chunk=chunk, bits=bits)
    if key == "ottt-a":
        return ottt(online=False, chunk=chunk, bits=bits)
    if key == "ottt-o":
        return ottt(online=True, bits=bits)
    if key in ("eprop", "ostl"):
        if chunk is not None:
            raise ValueError(f"rule {name} takes no chunk: it runs one step at a time")
        if bits:
            raise ValueError(f"rule {name} takes no bits: its eligibility traces are graded")
        return eprop(feedback=feedback) if key == "eprop" else ostl()
    raise ValueError(f"unknown rule {name!r}; choose one of {', '.join(NAMES)}")
