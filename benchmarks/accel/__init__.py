"""benchmarks/accelerator.py by role (the script is the command line only).

- :mod:`accel.cards`: datasheet peaks of the cards, card detection, the dense roofline.
- :mod:`accel.config`: what runs: sizes (full and ``--tiny``), rules, models, the batch.
- :mod:`accel.protocol`: rows in worker subprocesses, one JSON line each; deadlines.
- :mod:`accel.workers`: what each kind of worker measures (the device, dense and conv steps,
  the torch peers, the planner, compile-only targets).
- :mod:`accel.plan`: the planner's search for the largest T that fits.
- :mod:`accel.orchestrate`: the run: sections, their share of the time budget, the goals.
- :mod:`accel.report`: the Markdown section.

The comparison networks are :mod:`nets`'s, shared with benchmarks/peers.py.
"""
