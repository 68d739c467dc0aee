"""Configs that reproduce the papers' tables, each with a ``small`` CPU preset.

    python -m experiments.run ottt --preset small --out experiments/results
    python -m experiments.report experiments/results --out RESULTS.md

Importing the package registers the offline digit stand-ins (``digits_std``, ``digits_dvs``)
that the small presets train on.
"""

from experiments import datasets as _datasets  # noqa: F401  (registers the digit stand-ins)
