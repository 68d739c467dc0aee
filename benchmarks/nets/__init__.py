"""The comparison networks, one copy each, for benchmarks/accelerator.py and benchmarks/peers.py.

Every library gets the same numpy-generated weights, inputs and labels, time-major, with the
same LIF dynamics: λ = 0.5 (τ = 2, ``decay_input=False``), V_th = 1, soft reset (reset by
subtraction) kept in the graph, sigmoid surrogate α = 4, state starting at 0.

- :mod:`nets.dense`: the Open Neuromorphic benchmark's Linear(N→N) + LIF, no readout, its loss
  the spike count per step; snnjax, snnTorch, SpikingJelly, spyx and slax.
- :mod:`nets.conv`: a VGG-11-style net at a fraction of the channels (peers.py), and
  SpikingJelly's versions of snnjax's VGG-11 sWS and PreAct ResNet (accelerator.py).

Nothing here imports a framework at import time: the same modules serve the snnjax venv, the
peers' venv (no snnjax) and the lent GPU machine (torch and jax of its own versions).
"""

DECAY, V_TH, ALPHA = 0.5, 1.0, 4.0
TAU = 1.0 / (1.0 - DECAY)  # SpikingJelly's and snnTorch's parameterisation of λ
