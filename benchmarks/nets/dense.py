"""The Open Neuromorphic benchmark's network: one Linear(N→N) + LIF layer, no readout.

Loss: the network has no readout, so the loss is the spike count, written per step so that
the per-step rules (SLTT, OTTT) can use it: ``L = Σ_t L[t]``, ``L[t] = Σ_{b,n} s[t,b,n] / T``.
Every library and rule minimises this same L (BPTT's gradient is the total one, SLTT's and
OTTT's their truncated ones), so equal losses across libraries check the dynamics.

The synapse reads the raw input, so it is not traced (SPEC §3: OTTT leaves the first synapse
alone, its factor is x[t]). With no readout there is no traced synapse at all: OTTT's
gradient on this net is SLTT's, and an OTTT row measures the OTTT engine doing SLTT's work.

Each builder returns what its script times: snnjax a flax module and a loss for
``rule.value_and_grad``; the torch libraries ``(forward, params)`` with ``forward() -> L``
(autograd recording, no backward); spyx and slax a loss ``f(params)`` and its params.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from nets import ALPHA, DECAY, TAU, V_TH

# The libraries that run the dense net, by the name both scripts use.
TORCH_LIBS = ("snntorch", "spikingjelly", "spikingjelly-compile", "spikingjelly-torch",
              "spikingjelly-cupy")


def dense_data(T: int, B: int, N: int, seed: int = 0):
    """``(W [N, N] (in × out), b [N], x [T, B, N] in [0, 1))``, float32."""
    rng = np.random.default_rng(seed)
    w = rng.normal(0.0, math.sqrt(2.0 / N), (N, N)).astype(np.float32)
    return w, np.zeros(N, np.float32), rng.uniform(0, 1, (T, B, N)).astype(np.float32)


def dense_work(N: int, T: int, B: int, dtype: str) -> tuple[float, float]:
    """``(FLOPs, bytes)`` of one forward + backward of Linear(N→N) + LIF.

    FLOPs = 4·T·B·N² (the forward GEMM and the weight-gradient GEMM; the input is data, so
    no input gradient). Bytes = s·(2·N² + 4·T·B·N), s the dtype's size: the weight read and
    its gradient written, the input read by both GEMMs, and one membrane residual [T, B, N]
    written forward and read backward: the traffic no schedule avoids.
    """
    s = 2 if dtype == "bfloat16" else 4
    return 4.0 * T * B * N * N, float(s * (2 * N * N + 4 * T * B * N))


# ---------------------------------------------------------------------------- snnjax


def spike_count_loss():
    """The spike count as a snnjax per-step loss: ``ℓ(o[t]) = Σ_{b,n} s[t,b,n]`` (the engine
    divides by T), summed in float32 at least (bfloat16 spikes would count inexactly)."""
    import jax.numpy as jnp

    from snnjax.losses import Loss

    @dataclasses.dataclass(frozen=True)
    class SpikeCount(Loss):
        def step(self, o, y):
            del y
            return jnp.sum(o, dtype=jnp.promote_types(o.dtype, jnp.float32))

    return SpikeCount()


def snnjax_dense_model(N: int):
    """Linear(N→N) + LIF as a user's flax module: its spikes ``[C, B, N]`` are the outputs.
    Parameters ``{"fc": {"kernel": [N, N], "bias": [N]}}``."""
    import flax.linen as nn

    from snnjax import layers, neurons, surrogate
    from snnjax.neuron import LIFParams

    neuron = LIFParams(decay=DECAY, v_th=V_TH, reset="soft", surrogate=surrogate.sigmoid(ALPHA))

    class DenseLIF(nn.Module):
        features: int

        @nn.compact
        def __call__(self, xs, train: bool = False):
            del train
            return neurons.LIF(neuron, name="lif")(
                layers.Dense(self.features, traced=False, name="fc")(xs))

    return DenseLIF(N)


def snnjax_dense_params(data, dtype="float32"):
    """The snnjax parameter tree of :func:`dense_data`'s weights, as jax arrays of ``dtype``."""
    import jax.numpy as jnp

    w, b, _ = data
    return {"fc": {"kernel": jnp.asarray(w, dtype), "bias": jnp.asarray(b, dtype)}}


# ---------------------------------------------------------------------------- torch


def torch_dense(lib: str, torch, data, T: int, *, device=None, dtype: str = "float32"):
    """``(forward, params)`` of one torch library on :func:`dense_data`'s ``data``.

    ``lib``: ``"snntorch"``; ``"spikingjelly"`` (SpikingJelly's own choice of
    implementation), ``"spikingjelly-torch"`` (the same; the environment variable
    ``SJ_LIF_CUDA_IMPLEMENTATION=torch`` forces its Torch implementation), ``"spikingjelly-cupy"``
    (SpikingJelly 0.0.0.0.14's CuPy backend, CUDA only) or ``"spikingjelly-compile"``
    (``torch.compile`` of the net). snnTorch's ``Leaky`` with ``reset_delay=False`` resets in
    the step that spikes, as snnjax does; while its post-reset potential is still ≥ V_th it
    fires only at 2·V_th the next step, and it detaches the reset: its spike count differs.
    """
    if lib not in TORCH_LIBS:
        raise ValueError(f"unknown torch library {lib!r}; expected one of {TORCH_LIBS}")
    device = torch.device(device or "cpu")
    w, b, x = data
    N = w.shape[0]
    tdtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
    x = torch.from_numpy(x).to(device=device, dtype=tdtype)
    with torch.device(device):  # initialise on the device (N = 16384 is slow on the host)
        fc = torch.nn.Linear(N, N)
    with torch.no_grad():
        fc.weight.copy_(torch.from_numpy(w.T.copy()).to(device))
        fc.bias.copy_(torch.from_numpy(b).to(device))
    if lib == "snntorch":
        import snntorch as snn
        from snntorch import surrogate

        fc = fc.to(dtype=tdtype)
        lif = snn.Leaky(beta=DECAY, threshold=V_TH, spike_grad=surrogate.sigmoid(slope=ALPHA),
                        reset_mechanism="subtract", reset_delay=False)

        def forward():
            mem = lif.init_leaky()
            total = 0.0
            for t in range(T):
                spk, mem = lif(fc(x[t]), mem)
                total = total + spk.float().sum()
            return total / T

        return forward, list(fc.parameters())

    from spikingjelly.activation_based import functional, layer

    kw = {}
    if lib == "spikingjelly-cupy":
        if device.type != "cuda":
            raise RuntimeError("SpikingJelly's CuPy backend needs CUDA")
        kw["backend"] = "cupy"
    with torch.device(device):
        linear = layer.Linear(N, N, step_mode="m")
    linear.load_state_dict(fc.state_dict())
    net = torch.nn.Sequential(linear, sj_lif(**kw)).to(device=device, dtype=tdtype)
    run = torch.compile(net) if lib == "spikingjelly-compile" else net

    def forward():
        functional.reset_net(net)
        return run(x).float().sum() / T

    return forward, list(net.parameters())


def sj_lif(step_mode: str = "m", node=None, *, tau: float = TAU, surrogate_function=None,
           **kw):
    """SpikingJelly's LIF node (``node``: ``LIFNode`` by default, or its ``SLTTLIFNode`` /
    ``OTTTLIFNode``) with the shared dynamics; ``tau`` and the surrogate for other nets."""
    from spikingjelly.activation_based import neuron, surrogate

    node = node or neuron.LIFNode
    return node(tau=tau, decay_input=False, v_threshold=V_TH, v_reset=None,
                surrogate_function=surrogate_function or surrogate.Sigmoid(alpha=ALPHA),
                detach_reset=False, step_mode=step_mode, **kw)


def snntorch_leaky(**kw):
    """snnTorch's ``Leaky`` with the shared dynamics (``reset_delay=False``)."""
    import snntorch as snn
    from snntorch import surrogate

    return snn.Leaky(beta=DECAY, threshold=V_TH, spike_grad=surrogate.sigmoid(slope=ALPHA),
                     reset_mechanism="subtract", reset_delay=False, **kw)


# ---------------------------------------------------------------------------- other JAX libraries


def surrogate_grad(v):
    """α·σ(αv)(1-σ(αv)): the sigmoid surrogate's derivative."""
    import jax

    sg = jax.nn.sigmoid(ALPHA * v)
    return ALPHA * sg * (1 - sg)


def sigmoid_spike():
    """Heaviside(x >= 0) forward, :func:`surrogate_grad` backward, as a jax.custom_jvp."""
    import jax

    @jax.custom_jvp
    def spike(x):
        return (x >= 0).astype(x.dtype)

    @spike.defjvp
    def _jvp(primals, tangents):
        (x,), (t,) = primals, tangents
        return spike(x), surrogate_grad(x) * t

    return spike


def spyx_dense(data, T: int):
    """``(loss, params)`` of spyx's Linear + LIF. spyx's ``LIF`` fires on the previous step's
    membrane (a one-step delay): its spike count differs, the work is the same."""
    import jax.numpy as jnp
    import spyx
    from flax import nnx

    w, b, x = data
    N = w.shape[0]
    act = spyx.axn.custom(bwd=surrogate_grad, fwd=lambda v: (v >= 0).astype(v.dtype))
    model = spyx.nn.Sequential(
        nnx.Linear(N, N, rngs=nnx.Rngs(0)),
        spyx.nn.LIF((N,), beta=DECAY, threshold=V_TH, activation=act, rngs=nnx.Rngs(0)),
    )
    model.layers[0].kernel[...] = jnp.asarray(w)
    model.layers[0].bias[...] = jnp.asarray(b)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    x = jnp.asarray(x)

    def loss(p):
        out, _ = spyx.nn.run(nnx.merge(graphdef, p, rest), x)
        return out.sum() / T

    return loss, params


def slax_dense(data, T: int):
    """``(loss, params)`` of slax's LIF (decay sigmoid(init_tau) = 0.5, subtraction reset)."""
    import flax.linen as nn
    import jax
    import jax.numpy as jnp
    import slax

    w, b, x = data
    B, N = x.shape[1], w.shape[0]
    spike = sigmoid_spike()

    class Cell(nn.Module):
        @nn.compact
        def __call__(self, carry, x_t):
            current = nn.Dense(N, name="fc")(x_t)
            return slax.LIF(init_tau=0.0, spike_fn=spike, v_threshold=V_TH, name="lif")(
                carry, current)

    scan = nn.scan(Cell, variable_broadcast="params", split_rngs={"params": False})()
    params = {"params": {"fc": {"kernel": jnp.asarray(w), "bias": jnp.asarray(b)}}}
    x = jnp.asarray(x)

    def loss(p):
        _, spikes = scan.apply(p, {"Vmem": jnp.zeros((B, N))}, x)
        return spikes.sum() / T

    jax.eval_shape(loss, params)  # fail early if slax's API moved
    return loss, params
