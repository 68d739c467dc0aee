"""One library's training step on one workload, timed on request (driven by peers.py).

Runs under the snnjax venv (``--lib snnjax*``) or under ``benchmarks/.peers`` (snnTorch,
SpikingJelly, spyx, slax). Every library gets the same numpy-generated weights, inputs and
labels, time-major, with the same LIF dynamics: λ = 0.5 (τ = 2), V_th = 1, soft reset (reset
by subtraction) kept in the graph, sigmoid surrogate α = 4, state starting at 0.

Protocol, one JSON object per line on stdout: after setup (build, two warm-up steps, a
memory probe) ``{"ready": true, ...}``; then for each ``run K`` line on stdin,
``{"step": [...], "fwd": [...], "bwd": [...]}`` (seconds; fwd/bwd may be null); ``quit`` ends.

A step is loss and gradients (no optimizer update). For the torch libraries ``fwd`` is the
forward pass with autograd recording and ``bwd`` is ``loss.backward()``, both timed directly
inside the step; for JAX libraries ``step`` is one jitted ``value_and_grad`` and ``fwd`` /
``bwd`` come from a jitted ``jax.vjp`` forward and a separately jitted call of its pullback.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import sys
import time

import numpy as np

DECAY, V_TH, ALPHA = 0.5, 1.0, 4.0
VGG11 = (64, 128, "A", 256, 256, "A", 512, 512, "A", 512, 512)


# ---------------------------------------------------------------------------- shared data


def dense_data(T, B, N, seed=0):
    """W [N, N] (in × out), b [N], x [T, B, N] in [0, 1)."""
    rng = np.random.default_rng(seed)
    w = rng.normal(0.0, math.sqrt(2.0 / N), (N, N)).astype(np.float32)
    return w, np.zeros(N, np.float32), rng.uniform(0, 1, (T, B, N)).astype(np.float32)


def conv_data(T, B, width, classes=10, size=32, seed=0):
    """VGG-11-style conv weights (HWIO), pooling flags, readout, x [T, B, H, W, 3], y [B]."""
    rng = np.random.default_rng(seed)
    convs, pools, c_in = [], [], 3
    for c in VGG11:
        if c == "A":
            pools[-1] = True
            continue
        c = max(1, int(c * width))
        # Twice He's std: without BatchNorm or scaling, spikes then reach the readout
        # (10-45 % of inputs non-zero per layer); at He's std the deep layers fall silent.
        k = rng.normal(0.0, 2 * math.sqrt(2.0 / (9 * c_in)), (3, 3, c_in, c)).astype(np.float32)
        convs.append((k, np.zeros(c, np.float32)))
        pools.append(False)
        c_in = c
    fc = (rng.normal(0.0, math.sqrt(1.0 / c_in), (c_in, classes)).astype(np.float32),
          np.zeros(classes, np.float32))
    x = rng.uniform(0, 1, (T, B, size, size, 3)).astype(np.float32)
    y = rng.integers(0, classes, B).astype(np.int32)
    return convs, pools, fc, x, y


# ---------------------------------------------------------------------------- memory probe


def _status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def peak_rss_delta(fn):
    """Peak resident memory during ``fn()`` above the resident memory before it (bytes).

    Resets the kernel's high-water mark first (``/proc/self/clear_refs`` = 5); where that is
    not allowed, falls back to the lifetime peak.
    """
    gc.collect()
    base = _status_kib("VmRSS")
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    fn()
    return max(0, (_status_kib("VmHWM") - base) * 1024)


# ---------------------------------------------------------------------------- JAX runners


class JaxRunner:
    """A loss ``f(params)`` of one library, jitted as a step and as a vjp forward/backward."""

    def __init__(self, loss_fn, params):
        import jax

        self.jax = jax
        self.params = params
        self._step = jax.jit(jax.value_and_grad(loss_fn))
        self._fwd = jax.jit(lambda p: jax.vjp(loss_fn, p))
        self._bwd = jax.jit(lambda pullback, ct: pullback(ct))
        self.compiled = self._step.lower(params).compile()

    def step(self):
        t0 = time.perf_counter()
        out = self._step(self.params)
        self.jax.block_until_ready(out)
        return time.perf_counter() - t0, None, None, float(out[0])

    def fwd_bwd(self):
        jax = self.jax
        t0 = time.perf_counter()
        value, pullback = self._fwd(self.params)
        jax.block_until_ready((value, pullback))
        t1 = time.perf_counter()
        grads = self._bwd(pullback, jax.numpy.ones_like(value))
        jax.block_until_ready(grads)
        return t1 - t0, time.perf_counter() - t1

    def compiled_memory(self):
        m = self.compiled.memory_analysis()
        return int(m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes)


def _sigmoid_spike():
    """Heaviside(x >= 0) forward, α·σ(αx)(1-σ(αx)) backward, as a jax.custom_jvp."""
    import jax

    @jax.custom_jvp
    def spike(x):
        return (x >= 0).astype(x.dtype)

    @spike.defjvp
    def _jvp(primals, tangents):
        (x,), (t,) = primals, tangents
        sg = jax.nn.sigmoid(ALPHA * x)
        return spike(x), ALPHA * sg * (1 - sg) * t

    return spike


def _snnjax_dense_model(N):
    """Linear(N→N) + LIF, no readout, as a user's flax module: its spikes are the chunk's
    outputs, ``[C, B, N]``."""
    import flax.linen as nn

    from snnjax import layers, neurons, surrogate
    from snnjax.neuron import LIFParams

    neuron = LIFParams(decay=DECAY, v_th=V_TH, reset="soft", surrogate=surrogate.sigmoid(ALPHA))

    class DenseLIF(nn.Module):
        @nn.compact
        def __call__(self, xs, train: bool = False):
            return neurons.LIF(neuron)(layers.Dense(N, traced=False, name="fc")(xs))

    return DenseLIF()


# The rule each snnjax row runs (the public rule API); "snnjax" is BPTT as bptt() runs by
# default, the other rows a schedule or rule beside it.
SNNJAX_RULES = {
    "snnjax": lambda T: _rules().bptt(),
    "snnjax-chunk1": lambda T: _rules().bptt(chunk=1),
    "snnjax-retain": lambda T: _rules().bptt(),  # in a process that keeps freed memory
    "snnjax-chunkT": lambda T: _rules().bptt(chunk=T),
    "snnjax-sltt": lambda T: _rules().sltt(chunk=T),
    "snnjax-sltt-c1": lambda T: _rules().sltt(),
    "snnjax-sltt-k": lambda T: _rules().sltt_k(1),
    "snnjax-ottt-a": lambda T: _rules().ottt(chunk=T),
    "snnjax-ottt-a-c1": lambda T: _rules().ottt(),
}


def _rules():
    from snnjax import rules

    return rules


class RuleRunner(JaxRunner):
    """``rule.value_and_grad`` of a model, jitted: the library's public API, as a user calls
    it. Not split into forward and backward: a rule takes its gradients inside its own time
    loop, so there is no separate forward pass to time."""

    def __init__(self, rule, model, params, x, y, loss, scale=1.0):
        import jax

        self.jax = jax
        self.params = params
        self.scale = scale
        key = jax.random.key(0)
        self._step = jax.jit(
            lambda p: rule.value_and_grad(model, p, {}, x, y, loss=loss, key=key)[::2])
        self.compiled = self._step.lower(params).compile()
        self.path = rule.name

    def step(self):
        t, _, _, value = super().step()
        return t, None, None, value * self.scale

    def fwd_bwd(self):
        return None, None


def snnjax_dense(cfg, lib):
    """Linear + LIF under ``SNNJAX_RULES[lib]``. The loss is the spike count, as the other
    libraries': the per-step MSE to 0 (``per_step(mse=1, target=0)``, the mean of s² = s
    over T·B·N), reported ×T·B·N."""
    import jax.numpy as jnp

    from snnjax import losses

    w, b, x = (jnp.asarray(a) for a in dense_data(cfg.T, cfg.batch, cfg.N))
    model = _snnjax_dense_model(cfg.N)
    params = {"fc": {"kernel": w, "bias": b}}
    y = jnp.zeros((cfg.batch,), jnp.int32)
    return RuleRunner(SNNJAX_RULES[lib](cfg.T), model, params, x, y,
                      losses.per_step(mse=1.0, target=0.0), scale=cfg.T * cfg.batch * cfg.N)


def _snnjax_vgg(cfg):
    import jax.numpy as jnp

    from snnjax import surrogate
    from snnjax.models import ConvUnit, SpikingSequential
    from snnjax.neuron import LIFParams

    convs, pools, fc, x, y = conv_data(cfg.T, cfg.batch, cfg.width)
    neuron = LIFParams(decay=DECAY, v_th=V_TH, surrogate=surrogate.sigmoid(ALPHA))
    units = tuple(
        ConvUnit(k.shape[-1], neuron=neuron, first=i == 0, pool="avg" if pool else None)
        for i, ((k, _), pool) in enumerate(zip(convs, pools))
    )
    model = SpikingSequential(units, fc[0].shape[1], input_ndim=3)
    params = {f"units_{i}": {"Conv_0": {"kernel": jnp.asarray(k), "bias": jnp.asarray(b)}}
              for i, (k, b) in enumerate(convs)}
    params["readout"] = {"Dense_0": {"kernel": jnp.asarray(fc[0]), "bias": jnp.asarray(fc[1])}}
    return model, params, jnp.asarray(x), jnp.asarray(y)


def snnjax_conv(cfg, lib):
    """The library's rules on the VGG-style net, through ``rule.value_and_grad``."""
    from snnjax import losses

    model, params, x, y = _snnjax_vgg(cfg)
    return RuleRunner(SNNJAX_RULES[lib](cfg.T), model, params, x, y, losses.per_step())


def spyx_dense(cfg):
    import jax.numpy as jnp
    import spyx
    from flax import nnx

    w, b, x = dense_data(cfg.T, cfg.batch, cfg.N)
    act = spyx.axn.custom(bwd=_surrogate_grad, fwd=lambda v: (v >= 0).astype(v.dtype))
    model = spyx.nn.Sequential(
        nnx.Linear(cfg.N, cfg.N, rngs=nnx.Rngs(0)),
        spyx.nn.LIF((cfg.N,), beta=DECAY, threshold=V_TH, activation=act, rngs=nnx.Rngs(0)),
    )
    model.layers[0].kernel[...] = jnp.asarray(w)
    model.layers[0].bias[...] = jnp.asarray(b)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    x = jnp.asarray(x)

    def loss(p):
        out, _ = spyx.nn.run(nnx.merge(graphdef, p, rest), x)
        return out.sum()

    return JaxRunner(loss, params)


def _surrogate_grad(v):
    import jax

    sg = jax.nn.sigmoid(ALPHA * v)
    return ALPHA * sg * (1 - sg)


def spyx_conv(cfg):
    import flax.linen as linen
    import jax.numpy as jnp
    import optax
    import spyx
    from flax import nnx

    convs, pools, fc, x, y = conv_data(cfg.T, cfg.batch, cfg.width)
    act = spyx.axn.custom(bwd=_surrogate_grad, fwd=lambda v: (v >= 0).astype(v.dtype))
    layers, c_in, size = [], 3, 32
    for (k, b), pool in zip(convs, pools):
        conv = nnx.Conv(c_in, k.shape[-1], (3, 3), padding="SAME", rngs=nnx.Rngs(0))
        conv.kernel[...] = jnp.asarray(k)
        conv.bias[...] = jnp.asarray(b)
        layers += [conv, spyx.nn.LIF((size, size, k.shape[-1]), beta=DECAY, threshold=V_TH,
                                     activation=act, rngs=nnx.Rngs(0))]
        if pool:
            layers.append(lambda s: linen.avg_pool(s, (2, 2), strides=(2, 2)))
            size //= 2
        c_in = k.shape[-1]
    head = nnx.Linear(c_in, fc[0].shape[1], rngs=nnx.Rngs(0))
    head.kernel[...] = jnp.asarray(fc[0])
    head.bias[...] = jnp.asarray(fc[1])
    layers += [lambda s: s.mean(axis=(1, 2)), head]
    graphdef, params, rest = nnx.split(spyx.nn.Sequential(*layers), nnx.Param, ...)
    x, onehot = jnp.asarray(x), jnp.eye(fc[0].shape[1])[y]

    def loss(p):
        outs, _ = spyx.nn.run(nnx.merge(graphdef, p, rest), x)
        return optax.softmax_cross_entropy(outs, onehot).mean()  # mean over T and B

    return JaxRunner(loss, params)


def slax_dense(cfg):
    import flax.linen as nn
    import jax
    import jax.numpy as jnp
    import slax

    w, b, x = dense_data(cfg.T, cfg.batch, cfg.N)
    spike = _sigmoid_spike()

    class Cell(nn.Module):
        @nn.compact
        def __call__(self, carry, x_t):
            current = nn.Dense(cfg.N, name="fc")(x_t)
            # slax's LIF: decay sigmoid(init_tau) = 0.5, subtraction reset.
            return slax.LIF(init_tau=0.0, spike_fn=spike, v_threshold=V_TH, name="lif")(
                carry, current
            )

    scan = nn.scan(Cell, variable_broadcast="params", split_rngs={"params": False})()
    params = {"params": {"fc": {"kernel": jnp.asarray(w), "bias": jnp.asarray(b)}}}
    x = jnp.asarray(x)

    def loss(p):
        _, spikes = scan.apply(p, {"Vmem": jnp.zeros((cfg.batch, cfg.N))}, x)
        return spikes.sum()

    jax.eval_shape(loss, params)  # fail early if slax's API moved
    return JaxRunner(loss, params)


# ---------------------------------------------------------------------------- torch runners


class TorchRunner:
    """``forward() -> loss`` and its ``loss.backward()``, or an online per-step loop."""

    def __init__(self, torch, params, forward=None, online=None):
        self.torch, self.params, self.forward, self.online = torch, params, forward, online

    def step(self):
        for p in self.params:
            p.grad = None
        if self.online is not None:
            return self.online()
        t0 = time.perf_counter()
        loss = self.forward()
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        return t2 - t0, t1 - t0, t2 - t1, float(loss.detach())

    def compiled_memory(self):
        return None


def _torch_dense_params(torch, cfg):
    w, b, x = dense_data(cfg.T, cfg.batch, cfg.N)
    fc = torch.nn.Linear(cfg.N, cfg.N)
    with torch.no_grad():
        fc.weight.copy_(torch.from_numpy(w.T.copy()))
        fc.bias.copy_(torch.from_numpy(b))
    return fc, torch.from_numpy(x)


def snntorch_dense(cfg):
    import snntorch as snn
    import torch
    from snntorch import surrogate

    fc, x = _torch_dense_params(torch, cfg)
    # reset_delay=False: the reset is applied in the step that spikes, as in our LIF.
    lif = snn.Leaky(beta=DECAY, threshold=V_TH, spike_grad=surrogate.sigmoid(slope=ALPHA),
                    reset_mechanism="subtract", reset_delay=False)

    def forward():
        mem = lif.init_leaky()
        total = 0.0
        for t in range(cfg.T):
            spk, mem = lif(fc(x[t]), mem)
            total = total + spk.sum()
        return total

    return TorchRunner(torch, list(fc.parameters()), forward)


def _sj_lif(step_mode="m", node=None, **kw):
    from spikingjelly.activation_based import neuron, surrogate

    node = node or neuron.LIFNode
    return node(tau=1.0 / (1.0 - DECAY), decay_input=False, v_threshold=V_TH, v_reset=None,
                surrogate_function=surrogate.Sigmoid(alpha=ALPHA), detach_reset=False,
                step_mode=step_mode, **kw)


def spikingjelly_dense(cfg, compiled=False):
    import torch
    from spikingjelly.activation_based import functional, layer

    fc, x = _torch_dense_params(torch, cfg)
    linear = layer.Linear(cfg.N, cfg.N, step_mode="m")
    linear.load_state_dict(fc.state_dict())
    net = torch.nn.Sequential(linear, _sj_lif())
    run = torch.compile(net) if compiled else net

    def forward():
        functional.reset_net(net)
        return run(x).sum()

    return TorchRunner(torch, list(net.parameters()), forward)


def _torch_conv_layers(torch, cfg, make_lif, pool_cls, gap, flatten, linear_cls, conv_cls):
    convs, pools, fc, x, y = conv_data(cfg.T, cfg.batch, cfg.width)
    layers, c_in = [], 3
    for (k, b), pool in zip(convs, pools):
        conv = conv_cls(c_in, k.shape[-1], 3, padding=1)
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(k.transpose(3, 2, 0, 1).copy()))  # HWIO → OIHW
            conv.bias.copy_(torch.from_numpy(b))
        layers += [conv, make_lif()]
        if pool:
            layers.append(pool_cls(2))
        c_in = k.shape[-1]
    head = linear_cls(c_in, fc[0].shape[1])
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(fc[0].T.copy()))
        head.bias.copy_(torch.from_numpy(fc[1]))
    layers += [gap, flatten, head]
    x_nchw = torch.from_numpy(x.transpose(0, 1, 4, 2, 3).copy())  # [T, B, C, H, W]
    return layers, x_nchw, torch.from_numpy(y.astype(np.int64))


def snntorch_conv(cfg):
    import snntorch as snn
    import torch
    from snntorch import surrogate, utils

    nn = torch.nn

    def make_lif():
        return snn.Leaky(beta=DECAY, threshold=V_TH, spike_grad=surrogate.sigmoid(slope=ALPHA),
                         reset_mechanism="subtract", reset_delay=False, init_hidden=True)

    layers, x, y = _torch_conv_layers(torch, cfg, make_lif, nn.AvgPool2d, nn.AdaptiveAvgPool2d(1),
                                      nn.Flatten(), nn.Linear, nn.Conv2d)
    net = nn.Sequential(*layers)
    ce = nn.CrossEntropyLoss()

    def forward():
        utils.reset(net)
        total = 0.0
        for t in range(cfg.T):
            total = total + ce(net(x[t]), y)
        return total / cfg.T

    return TorchRunner(torch, list(net.parameters()), forward)


def spikingjelly_conv(cfg, rule="bptt"):
    import torch
    from spikingjelly.activation_based import functional, layer, neuron

    nn = torch.nn
    ce = nn.CrossEntropyLoss()
    if rule == "bptt":
        layers, x, y = _torch_conv_layers(
            torch, cfg, lambda: _sj_lif(),
            lambda k: layer.AvgPool2d(k, step_mode="m"),
            layer.AdaptiveAvgPool2d(1, step_mode="m"), layer.Flatten(step_mode="m"),
            lambda i, o: layer.Linear(i, o, step_mode="m"),
            lambda i, o, k, padding: layer.Conv2d(i, o, k, padding=padding, step_mode="m"),
        )
        net = nn.Sequential(*layers)

        def forward():
            functional.reset_net(net)
            out = net(x)  # [T, B, C]
            return ce(out.flatten(0, 1), y.repeat(cfg.T))  # mean over T·B = Σ_t CE_t / T

        return TorchRunner(torch, list(net.parameters()), forward)

    # SLTT / OTTT: single-step nodes, a backward at every step (SpikingJelly's online loop).
    node = neuron.SLTTLIFNode if rule == "sltt" else neuron.OTTTLIFNode
    seq = layer.OTTTSequential if rule == "ottt" else nn.Sequential
    layers, x, y = _torch_conv_layers(
        torch, cfg, lambda: _sj_lif(step_mode="s", node=node), nn.AvgPool2d,
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear, nn.Conv2d,
    )
    net = seq(*layers)
    net.train()

    def online():
        functional.reset_net(net)
        fwd = bwd = total = 0.0
        for t in range(cfg.T):
            t0 = time.perf_counter()
            loss = ce(net(x[t]), y) / cfg.T
            t1 = time.perf_counter()
            loss.backward()
            t2 = time.perf_counter()
            fwd, bwd, total = fwd + t1 - t0, bwd + t2 - t1, total + float(loss.detach())
        return fwd + bwd, fwd, bwd, total

    return TorchRunner(torch, list(net.parameters()), online=online)


# ---------------------------------------------------------------------------- main


def build(cfg):
    lib, wl = cfg.lib, cfg.workload
    if lib in SNNJAX_RULES:
        return snnjax_dense(cfg, lib) if wl == "dense" else snnjax_conv(cfg, lib)
    if lib == "spyx":
        return spyx_dense(cfg) if wl == "dense" else spyx_conv(cfg)
    if lib == "slax" and wl == "dense":
        return slax_dense(cfg)
    if lib == "snntorch":
        return snntorch_dense(cfg) if wl == "dense" else snntorch_conv(cfg)
    if lib in ("spikingjelly", "spikingjelly-compile") and wl == "dense":
        return spikingjelly_dense(cfg, compiled=lib.endswith("compile"))
    if lib.startswith("spikingjelly") and wl == "conv":
        return spikingjelly_conv(cfg, rule=lib.removeprefix("spikingjelly").lstrip("-") or "bptt")
    raise SystemExit(f"unknown library/workload {lib}/{wl}")


def _versions(lib):
    import importlib.metadata as md

    names = {"snnjax": ["snnjax", "jax"], "snntorch": ["snntorch", "torch"],
             "spikingjelly": ["spikingjelly", "torch"], "spyx": ["spyx", "jax", "flax"],
             "slax": ["slax", "jax", "flax"]}
    out = {}
    for name in names.get(lib.split("-")[0], []):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", required=True)
    ap.add_argument("--workload", choices=["dense", "conv"], required=True)
    ap.add_argument("--T", type=int, default=100)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--N", type=int, default=512)
    ap.add_argument("--width", type=float, default=0.25)
    ap.add_argument("--probe-memory", action="store_true",
                    help="only measure the peak memory of a warm step, print it, exit")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch threads; 0: the faster of 1 and all cores, timed at setup")
    cfg = ap.parse_args()
    torch_lib = not cfg.lib.startswith("snnjax") and cfg.lib not in ("spyx", "slax")
    if torch_lib:
        import torch

        if cfg.threads:
            torch.set_num_threads(cfg.threads)
    if cfg.lib == "snnjax-retain" and not cfg.probe_memory:
        from snnjax.allocator import retain_freed_memory

        retain_freed_memory()
    t0 = time.perf_counter()
    runner = build(cfg)
    if cfg.probe_memory:
        # Run with MALLOC_MMAP_THRESHOLD_ fixed (peers.py does), so that glibc returns freed
        # large blocks to the OS: the resident-memory growth of a warm step is then its peak.
        runner.step()
        print(json.dumps({"peak_rss_bytes": peak_rss_delta(runner.step)}), flush=True)
        return
    warm = [runner.step() for _ in range(2)]
    if hasattr(runner, "fwd_bwd"):
        runner.fwd_bwd()
    threads = None
    if torch_lib:
        threads = torch.get_num_threads()
        if not cfg.threads:  # auto: the faster of 1 thread and all cores for this process
            timing = {}
            for n in sorted({1, os.cpu_count() or 1}):
                torch.set_num_threads(n)
                runner.step()
                timing[n] = min(runner.step()[0] for _ in range(3))
            threads = min(timing, key=timing.get)
            torch.set_num_threads(threads)
    setup_s = time.perf_counter() - t0
    peak = peak_rss_delta(runner.step)
    print(json.dumps({
        "ready": True, "lib": cfg.lib, "versions": _versions(cfg.lib), "setup_s": setup_s,
        "threads": threads, "path": getattr(runner, "path", None),
        "loss": warm[-1][3], "peak_rss_bytes": peak,
        "compiled_memory_bytes": runner.compiled_memory(),
    }), flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if not cmd or cmd[0] == "quit":
            break
        steps, fwds, bwds = [], [], []
        for _ in range(int(cmd[1])):
            step, fwd, bwd, _ = runner.step()
            steps.append(step)
            if fwd is None and hasattr(runner, "fwd_bwd"):
                fwd, bwd = runner.fwd_bwd()
            fwds.append(fwd)
            bwds.append(bwd)
        print(json.dumps({"step": steps, "fwd": fwds, "bwd": bwds}), flush=True)


if __name__ == "__main__":
    main()
