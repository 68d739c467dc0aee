"""Conv comparison nets.

- peers.py's VGG-11-style net at a fraction of the channels, CIFAR-sized input, no BatchNorm
  or weight scaling (:func:`conv_data` holds its weights), built in snnjax, snnTorch,
  SpikingJelly and spyx from the same numpy arrays.
- accelerator.py's papers' nets in SpikingJelly (:func:`sj_paper_net`): its versions of
  snnjax's ``vgg11_sws`` (scaled weight standardisation) and PreAct ResNet, initialised by
  SpikingJelly itself (the accelerator compares time and memory, not losses, on these).
"""

from __future__ import annotations

import math

import numpy as np

from nets import ALPHA, DECAY, V_TH
from nets.dense import sj_lif, snntorch_leaky, surrogate_grad

VGG11 = (64, 128, "A", 256, 256, "A", 512, 512, "A", 512, 512)


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


# ---------------------------------------------------------------------------- peers' VGG-style net


def snnjax_vgg(data):
    """``(model, params, x, y)``: the VGG-style net as snnjax ``ConvUnit`` s."""
    import jax.numpy as jnp

    from snnjax import surrogate
    from snnjax.models import ConvUnit, SpikingSequential
    from snnjax.neuron import LIFParams

    convs, pools, fc, x, y = data
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


def torch_vgg_layers(torch, data, make_lif, pool_cls, gap, flatten, linear_cls, conv_cls):
    """The VGG-style net's torch layers from ``data``, with each library's modules; and
    ``x [T, B, C, H, W]``, ``y [B]`` (int64)."""
    convs, pools, fc, x, y = data
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
    x_nchw = torch.from_numpy(x.transpose(0, 1, 4, 2, 3).copy())
    return layers, x_nchw, torch.from_numpy(y.astype(np.int64))


def snntorch_vgg(torch, data):
    """``(net, x, y)``: snnTorch's single-step net (``init_hidden``; ``utils.reset`` it)."""
    nn = torch.nn
    layers, x, y = torch_vgg_layers(torch, data, lambda: snntorch_leaky(init_hidden=True),
                                    nn.AvgPool2d, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                    nn.Linear, nn.Conv2d)
    return nn.Sequential(*layers), x, y


def sj_vgg(torch, data, rule: str = "bptt"):
    """``(net, x, y)``: SpikingJelly's net; ``"bptt"`` multi-step (``net(x) -> [T, B, C]``),
    ``"sltt"`` / ``"ottt"`` single-step with its ``SLTTLIFNode`` / ``OTTTLIFNode`` (and
    ``OTTTSequential``) for its online loop."""
    from spikingjelly.activation_based import layer, neuron

    nn = torch.nn
    if rule == "bptt":
        layers, x, y = torch_vgg_layers(
            torch, data, lambda: sj_lif(),
            lambda k: layer.AvgPool2d(k, step_mode="m"),
            layer.AdaptiveAvgPool2d(1, step_mode="m"), layer.Flatten(step_mode="m"),
            lambda i, o: layer.Linear(i, o, step_mode="m"),
            lambda i, o, k, padding: layer.Conv2d(i, o, k, padding=padding, step_mode="m"),
        )
        return nn.Sequential(*layers), x, y
    node = {"sltt": neuron.SLTTLIFNode, "ottt": neuron.OTTTLIFNode}[rule]
    seq = layer.OTTTSequential if rule == "ottt" else nn.Sequential
    layers, x, y = torch_vgg_layers(torch, data, lambda: sj_lif(step_mode="s", node=node),
                                    nn.AvgPool2d, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                    nn.Linear, nn.Conv2d)
    return seq(*layers), x, y


def spyx_vgg(data):
    """``(loss, params)``: spyx's net, mean cross-entropy over T and B."""
    import flax.linen as linen
    import jax.numpy as jnp
    import optax
    import spyx
    from flax import nnx

    convs, pools, fc, x, y = data
    size = x.shape[2]
    act = spyx.axn.custom(bwd=surrogate_grad, fwd=lambda v: (v >= 0).astype(v.dtype))
    layers, c_in = [], 3
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

    return loss, params


# ---------------------------------------------------------------------------- the papers' nets


def sj_paper_net(torch, name: str, rule: str, *, classes: int, vgg_cfg, resnet_stages,
                 resnet_widths):
    """SpikingJelly's version of snnjax's ``vgg11_sws`` or PreAct ResNet (``name``:
    ``"vgg11_sws"`` or ``"resnet18"``) for ``rule``: ``"BPTT"`` multi-step modules;
    ``"SLTT"`` / ``"OTTT"`` single-step modules and its online nodes (``OTTTSequential`` is
    sequential only: no ResNet). VGG: τ = 2, sigmoid α = 4, scaled-WS convs, ×2.74 after each
    neuron; ResNet: SLTT's neuron, τ = 1.1, triangle surrogate (PiecewiseQuadratic, α = 1)."""
    from spikingjelly.activation_based import layer, neuron, surrogate

    nn = torch.nn
    multi = rule == "BPTT"
    mode = "m" if multi else "s"

    class Scale(nn.Module):
        def __init__(self, scale):
            super().__init__()
            self.scale = scale

        def forward(self, x):
            return x * self.scale

    if name == "vgg11_sws":
        kw = {}
    else:
        kw = {"tau": 1.1, "surrogate_function": surrogate.PiecewiseQuadratic(alpha=1.0)}
    node = {"BPTT": neuron.LIFNode, "SLTT": neuron.SLTTLIFNode, "OTTT": neuron.OTTTLIFNode}[rule]

    def lif():
        return sj_lif(step_mode=mode, node=node, **kw)

    def conv(cin, cout, k, stride=1, padding=0, bias=True, ws=False):
        if ws:
            return layer.WSConv2d(cin, cout, k, stride=stride, padding=padding, bias=bias,
                                  step_mode=mode, gain=True, eps=1e-4)
        if multi:
            return layer.Conv2d(cin, cout, k, stride=stride, padding=padding, bias=bias,
                                step_mode="m")
        return nn.Conv2d(cin, cout, k, stride=stride, padding=padding, bias=bias)

    def bn(c):
        return layer.BatchNorm2d(c, step_mode="m") if multi else nn.BatchNorm2d(c)

    def head(c):
        if multi:
            return [layer.AdaptiveAvgPool2d(1, step_mode="m"), layer.Flatten(step_mode="m"),
                    layer.Linear(c, classes, step_mode="m")]
        return [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, classes)]

    if name == "vgg11_sws":
        mods, cin = [], 3
        for c in vgg_cfg:
            if c == "A":
                mods.append(layer.AvgPool2d(2, step_mode="m") if multi else nn.AvgPool2d(2))
                continue
            mods += [conv(cin, c, 3, padding=1, ws=True), lif(), Scale(2.74)]
            cin = c
        mods += head(cin)
        return (layer.OTTTSequential if rule == "OTTT" else nn.Sequential)(*mods)
    if name != "resnet18":
        raise ValueError(f"no SpikingJelly version of {name!r}")

    # PreAct ResNet (snnjax.models.resnet): stem conv (no bias), units, head.
    class Unit(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.bn1, self.lif1 = bn(cin), lif()
            self.conv1 = conv(cin, cout, 3, stride, 1)
            self.bn2, self.lif2 = bn(cout), lif()
            self.conv2 = conv(cout, cout, 3, 1, 1)
            self.short = conv(cin, cout, 1, stride, 0) if (stride != 1 or cin != cout) else None

        def forward(self, x):
            s = self.lif1(self.bn1(x))
            y = self.conv2(self.lif2(self.bn2(self.conv1(s))))
            return y + (self.short(s) if self.short is not None else s)

    mods = [conv(3, resnet_widths[0], 3, 1, 1, bias=False)]
    cin = resnet_widths[0]
    for i, (n, c) in enumerate(zip(resnet_stages, resnet_widths)):
        for j in range(n):
            mods.append(Unit(cin, c, 2 if (i > 0 and j == 0) else 1))
            cin = c
    mods += [bn(cin), lif(), *head(cin)]
    return nn.Sequential(*mods)
