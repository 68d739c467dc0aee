"""What the accelerator benchmark runs: sizes (full and ``--tiny``), rules, models, batches."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Sizes:
    dense_N: tuple[int, ...] = (4096, 8192, 16384)
    dense_T: int = 500
    dense_B: int = 16
    dtypes: tuple[str, ...] = ("float32", "bfloat16")
    conv_models: tuple[str, ...] = ("vgg11_sws", "resnet18")
    conv_T: int = 6
    conv_B: int = 128
    image: int = 32
    classes: int = 10
    plan_models: tuple[str, ...] = ("resnet18",)
    plan_B: int = 128
    plan_probes: tuple[int, int] = (8, 16)
    plan_max_T: int = 4096
    # Rules per conv model where not all of CONV_RULES run: ((model, (rule, ...)), ...).
    conv_only: tuple = ()
    tiny: bool = False


FULL = Sizes()
# Tiny: the same rows and code paths, shrunk to seconds on 2 CPU cores. The conv nets keep
# their factories (vgg11_sws with a 2-conv cfg, preact_resnet with one residual unit), and
# XLA:CPU compiles without its expensive passes (TINY_XLA_FLAGS): compiling dominates there.
TINY = Sizes(dense_N=(64,), dense_T=8, dense_B=4, conv_T=2, conv_B=4, image=8,
             plan_models=("vgg11_sws",), plan_B=4, plan_probes=(2, 4), plan_max_T=16,
             conv_only=(("resnet18", ("BPTT", "SLTT", "SLTT-K(1)")),), tiny=True)

TINY_XLA_FLAGS = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
TINY_VGG_CFG = (4, "A", 4)
MODEL_LABEL = {"vgg11_sws": "VGG-11 sWS", "resnet18": "ResNet-18"}
DENSE_RULES = ("BPTT", "SLTT(chunk=T)", "SLTT", "OTTT_A(chunk=T)")
CONV_RULES = ("BPTT", "TBPTT(2)", "Local", "SLTT", "SLTT-K(1)", "OTTT_A", "OTTT_O")
CONV_PRIORITY = ("BPTT", "SLTT", "SLTT-K(1)", "OTTT_A", "TBPTT(2)", "Local", "OTTT_O")
PLAN_RULES = ("BPTT", "SLTT")
# Peer libraries for the dense net (nets.dense.torch_dense's names).
DENSE_PEERS = ("spikingjelly", "spikingjelly-torch", "spikingjelly-cupy", "snntorch")
PEER_LABEL = {
    "spikingjelly": "SpikingJelly 2 (auto: Triton/native)",
    "spikingjelly-torch": "SpikingJelly 2 (torch)",
    "spikingjelly-cupy": "SpikingJelly 0.0.0.0.14 (CuPy)",
    "snntorch": "snnTorch",
}
# SpikingJelly's rules on the conv nets, by network (OTTTSequential is sequential only).
SJ_CONV_RULES = {"vgg11_sws": ("BPTT", "SLTT", "OTTT"), "resnet18": ("BPTT", "SLTT")}


def dense_rule(name: str, T: int):
    from snnjax import rules

    return {
        "BPTT": rules.bptt(),
        "SLTT(chunk=T)": rules.sltt(chunk=T),
        "SLTT": rules.sltt(),
        "OTTT_A(chunk=T)": rules.ottt(chunk=T),
    }[name]


def conv_rule(name: str):
    from snnjax import rules

    return {
        "BPTT": rules.bptt(),
        "TBPTT(2)": rules.tbptt(2),
        "Local": rules.local(rules.tbptt(2), block_size=2),
        "SLTT": rules.sltt(),
        "SLTT-K(1)": rules.sltt_k(1),
        "OTTT_A": rules.ottt(),
        "OTTT_O": rules.ottt(online=True),
    }[name]


def conv_model(name: str, sizes: Sizes):
    """The snnjax network: the papers' nets, or their tiny versions from the same factories."""
    from snnjax import models

    if name == "vgg11_sws":
        if sizes.tiny:
            return models.vgg11_sws(sizes.classes, cfg=TINY_VGG_CFG)
        return models.vgg11_sws(sizes.classes)
    if name == "resnet18":
        if sizes.tiny:
            return models.preact_resnet((1,), sizes.classes, channels=(4,))
        return models.resnet18(sizes.classes)
    raise ValueError(f"unknown conv model {name!r}; expected one of {tuple(MODEL_LABEL)}")


def sj_conv_net(torch, name: str, rule: str, sizes: Sizes):
    """SpikingJelly's version of :func:`conv_model` (:func:`nets.conv.sj_paper_net`)."""
    from nets.conv import sj_paper_net

    if name == "vgg11_sws":
        from snnjax.models import VGG11_CFG

        cfg = TINY_VGG_CFG if sizes.tiny else VGG11_CFG
    else:
        cfg = None
    stages, widths = ((1,), (4,)) if sizes.tiny else ((2, 2, 2, 2), (64, 128, 256, 512))
    return sj_paper_net(torch, name, rule, classes=sizes.classes, vgg_cfg=cfg,
                        resnet_stages=stages, resnet_widths=widths)


def conv_batch(sizes: Sizes, seed=0):
    """``x [T, B, H, W, 3]`` in [0, 1), ``y [B]`` int32."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (sizes.conv_T, sizes.conv_B, sizes.image, sizes.image, 3))
    y = rng.integers(0, sizes.classes, sizes.conv_B)
    return x.astype(np.float32), y.astype(np.int32)
