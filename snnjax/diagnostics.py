"""Gradient fidelity: each rule's gradient against BPTT's, parameter by parameter."""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from snnjax import rules as rules_lib
from snnjax.losses import Loss, per_step

__all__ = ["compare_gradients", "compare_gradients_cli", "format_rows"]


def _flat(tree) -> dict[str, jax.Array]:
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {jax.tree_util.keystr(path, simple=True, separator="/"): leaf for path, leaf in leaves}


def compare_gradients(
    model,
    rules: Sequence[rules_lib.Rule],
    params,
    state,
    xs: jax.Array,
    ys: jax.Array,
    *,
    loss: Loss = per_step(),
    key=None,
    reference: rules_lib.Rule | None = None,
) -> list[dict]:
    """Cosine similarity and norm ratio of each rule's gradient to the reference's (BPTT).

    Args:
      model: a model over chunks of time (``docs/models.md``).
      rules: the rules to compare.
      params: as from ``rule.init``; parameters that only some rules have (Local's
        auxiliary heads) are compared only where the reference has them too.
      state: the persistent collections, as from ``rule.init``.
      xs: one batch of inputs, ``[T, B, ...]``.
      ys: its integer labels, ``[B]``.
      loss: the loss, shared by all rules (per-step, so that every rule can take it).
      key: PRNG key (dropout, SLTT-K's steps); the same for every rule.
      reference: defaults to ``bptt()``.

    Returns:
      One row per (rule, parameter): ``{"rule", "param", "cosine", "norm_ratio"}`` where
      ``norm_ratio = |g_rule| / |g_ref|``; ``cosine`` is NaN where either gradient is zero.
    """
    reference = rules_lib.bptt() if reference is None else reference
    key = jax.random.key(0) if key is None else key
    for rule in (reference, *rules):
        _check_params_cover(rule, model, params)

    def grads_of(rule):
        _, _, g = jax.jit(
            lambda p, s, x, y, k: rule.value_and_grad(model, p, s, x, y, loss=loss, key=k)
        )(params, state, xs, ys, key)
        return {k: np.asarray(v, np.float64).ravel() for k, v in _flat(g).items()}

    ref = grads_of(reference)
    rows = []
    for rule in rules:
        g = grads_of(rule)
        for name, r in ref.items():
            if name not in g:
                continue
            a = g[name]
            na, nr = np.linalg.norm(a), np.linalg.norm(r)
            cos = float(a @ r / (na * nr)) if na > 0 and nr > 0 else float("nan")
            ratio = float(na / nr) if nr > 0 else float("nan")
            rows.append({"rule": rule.name, "param": name, "cosine": cos, "norm_ratio": ratio})
    return rows


def _check_params_cover(rule, model, params) -> None:
    """Refuse, naming them, the parameters ``rule`` adds (Local's auxiliary heads) that
    ``params`` lacks."""
    heads = [stage.names.get("head") for stage in rule.stages(model) if stage.names]
    missing = [h for h in heads if h is not None and h not in params]
    if missing:
        raise ValueError(
            f"compare_gradients: rule {rule.name} needs parameters that params lacks: "
            f"{', '.join(repr(m) for m in missing)} (Local's auxiliary heads). Initialise "
            "them with that rule and merge: params = {**rule.init(model, key, xs[0])[0], "
            "**params}"
        )


def compare_gradients_cli(
    *, model: str, T: int, batch_size: int, dataset: str, rules: Sequence[str],
    window: int, block_size: int, K: int, seed: int,
) -> list[dict]:
    """``snnjax compare-grads``: one batch of ``dataset`` through freshly initialised ``model``.

    Raises ValueError, before anything compiles, for a rule setting this T cannot run (a
    window or K larger than T).
    """
    from snnjax import data, models

    ds = data.load(dataset, "train")
    xs, ys = next(data.Loader(ds, batch_size, T=T, seed=seed, prefetch=0).epoch(0))
    net = models.get(model, ds.num_classes)
    built = [
        rules_lib.by_name(r, window=window, block_size=block_size, K=K) for r in rules
    ]
    loss = per_step()
    for rule in built:
        rule.validate(T, loss)
    # Initialise with every rule's parameters (Local adds auxiliary heads).
    params, state = {}, {}
    for rule in [rules_lib.bptt(), *built]:
        p, s = rule.init(net, jax.random.key(seed), jnp.asarray(xs[0]))
        params, state = {**p, **params}, {**s, **state}
    return compare_gradients(
        net, built, params, state, jnp.asarray(xs), jnp.asarray(ys), loss=loss,
        key=jax.random.key(seed + 1),
    )


def format_rows(rows: Sequence[dict]) -> str:
    """The rows of :func:`compare_gradients` as a table with aligned columns."""
    head = ("rule", "parameter", "cosine", "norm ratio")
    cells = [(r["rule"], r["param"], f"{r['cosine']:+.4f}", f"{r['norm_ratio']:.4f}")
             for r in rows]
    widths = [max(len(c[i]) for c in [head, *cells]) for i in range(len(head))]

    def line(c):  # text columns left-aligned, numbers right-aligned
        return "  ".join([c[0].ljust(widths[0]), c[1].ljust(widths[1]),
                          c[2].rjust(widths[2]), c[3].rjust(widths[3])]).rstrip()

    return "\n".join([line(head), line(["-" * w for w in widths]), *map(line, cells)])
