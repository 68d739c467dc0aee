"""One library's training step on one workload, timed on request (driven by peers.py).

Runs under the snnjax venv (``--lib snnjax*``) or under ``benchmarks/.peers`` (snnTorch,
SpikingJelly, spyx, slax). The networks, their data and the LIF dynamics are :mod:`nets`'s,
shared with benchmarks/accelerator.py.

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
import os
import sys
import time

from nets import conv as conv_nets  # benchmarks/, the script's directory
from nets import dense as dense_nets


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

    def __init__(self, rule, model, params, x, y, loss):
        import jax

        self.jax = jax
        self.params = params
        key = jax.random.key(0)
        self._step = jax.jit(
            lambda p: rule.value_and_grad(model, p, {}, x, y, loss=loss, key=key)[::2])
        self.compiled = self._step.lower(params).compile()
        self.path = rule.name

    def fwd_bwd(self):
        return None, None


def snnjax_dense(cfg, lib):
    """Linear + LIF under ``SNNJAX_RULES[lib]``, on the spike-count loss (:mod:`nets.dense`)."""
    import jax.numpy as jnp

    data = dense_nets.dense_data(cfg.T, cfg.batch, cfg.N)
    x = jnp.asarray(data[2])
    y = jnp.zeros((cfg.batch,), jnp.int32)
    return RuleRunner(SNNJAX_RULES[lib](cfg.T), dense_nets.snnjax_dense_model(cfg.N),
                      dense_nets.snnjax_dense_params(data), x, y, dense_nets.spike_count_loss())


def snnjax_conv(cfg, lib):
    """The library's rules on the VGG-style net, through ``rule.value_and_grad``."""
    from snnjax import losses

    model, params, x, y = conv_nets.snnjax_vgg(conv_nets.conv_data(cfg.T, cfg.batch, cfg.width))
    return RuleRunner(SNNJAX_RULES[lib](cfg.T), model, params, x, y, losses.per_step())


def spyx_dense(cfg):
    data = dense_nets.dense_data(cfg.T, cfg.batch, cfg.N)
    return JaxRunner(*dense_nets.spyx_dense(data, cfg.T))


def spyx_conv(cfg):
    return JaxRunner(*conv_nets.spyx_vgg(conv_nets.conv_data(cfg.T, cfg.batch, cfg.width)))


def slax_dense(cfg):
    data = dense_nets.dense_data(cfg.T, cfg.batch, cfg.N)
    return JaxRunner(*dense_nets.slax_dense(data, cfg.T))


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


def torch_dense(cfg):
    """snnTorch's or SpikingJelly's Linear + LIF (:func:`nets.dense.torch_dense`)."""
    import torch

    data = dense_nets.dense_data(cfg.T, cfg.batch, cfg.N)
    forward, params = dense_nets.torch_dense(cfg.lib, torch, data, cfg.T)
    return TorchRunner(torch, params, forward)


def snntorch_conv(cfg):
    import torch
    from snntorch import utils

    net, x, y = conv_nets.snntorch_vgg(torch, conv_nets.conv_data(cfg.T, cfg.batch, cfg.width))
    ce = torch.nn.CrossEntropyLoss()

    def forward():
        utils.reset(net)
        total = 0.0
        for t in range(cfg.T):
            total = total + ce(net(x[t]), y)
        return total / cfg.T

    return TorchRunner(torch, list(net.parameters()), forward)


def spikingjelly_conv(cfg, rule="bptt"):
    import torch
    from spikingjelly.activation_based import functional

    ce = torch.nn.CrossEntropyLoss()
    net, x, y = conv_nets.sj_vgg(torch, conv_nets.conv_data(cfg.T, cfg.batch, cfg.width), rule)
    if rule == "bptt":
        def forward():
            functional.reset_net(net)
            out = net(x)  # [T, B, C]
            return ce(out.flatten(0, 1), y.repeat(cfg.T))  # mean over T·B = Σ_t CE_t / T

        return TorchRunner(torch, list(net.parameters()), forward)

    # SLTT / OTTT: single-step nodes, a backward at every step (SpikingJelly's online loop).
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
    if lib in ("snntorch", "spikingjelly", "spikingjelly-compile") and wl == "dense":
        return torch_dense(cfg)
    if lib == "snntorch":
        return snntorch_conv(cfg)
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
