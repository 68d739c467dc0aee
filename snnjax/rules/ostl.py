"""OSTL (Bohnstingl et al., IEEE TNNLS 2022): exact RTRL within each layer, spatial
gradients between layers.

For each hidden layer l, the sensitivities ``M_θ[t] = ∂(h_l[t], s_l[t])/∂θ`` of the whole
layer's state (every neuron's own state and spikes) with respect to each of its own
parameters θ (feed-forward kernel, bias, recurrent kernel) are carried forward exactly:

    M_θ[t] = ∂(h[t], s[t])/∂(h[t-1], s[t-1])·M_θ[t-1] + ∂(h[t], s[t])/∂θ|_t

including the reset and, for a recurrent layer, the route ``s[t-1] → I[t]`` through the
recurrent kernel between all neurons of the layer. The gradient is ``∇θ = Σ_t L[t]·∂s[t]/∂θ``
with ``L[t] = ∂E[t]/∂s_l[t]`` through the layers above at the same t (the spatial gradient,
e-prop's symmetric learning signal). Without recurrence a layer's neurons are independent and
``M_θ`` is e-prop's eligibility vector; with recurrence it is per parameter per neuron:
``[B, N_in, N, N]`` for the kernel. OSTL equals BPTT for one hidden layer, recurrent or not.
It runs e-prop's loop (:class:`~snnjax.rules.eprop.EProp`) with these sensitivities.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from snnjax.rules.eprop import EProp, Layer, LayerTangent

__all__ = ["OSTL", "ostl"]


@dataclasses.dataclass(frozen=True)
class OSTL(EProp):
    """OSTL (see the module docstring): e-prop's loop with the exact RTRL of each recurrent
    layer; refuses random feedback (its learning signal is the spatial gradient)."""

    def __post_init__(self):
        if self.feedback != "symmetric":
            raise ValueError("OSTL's learning signal is the spatial gradient: no random "
                             "feedback (use rules.eprop(feedback='random'))")

    @property
    def name(self) -> str:
        return "ostl"

    def _zero_elig(self, layer: Layer, h, x_width: int, width: int):
        if layer.recurrent is None:
            return super()._zero_elig(layer, h, x_width, width)

        def zeros(*param):
            # (∂h/∂θ, ∂s/∂θ): the state's and the spikes' sensitivities [B, *θ, N].
            state = jax.tree.map(
                lambda a: jnp.zeros((a.shape[0], *param, a.shape[-1]), a.dtype), h)
            leaf = jax.tree.leaves(h)[0]
            return state, jnp.zeros((leaf.shape[0], *param, width), leaf.dtype)

        elig = {"kernel": zeros(x_width, width), "recurrent": zeros(width, width)}
        if layer.bias is not None:
            elig["bias"] = zeros(width)
        return elig

    def _advance(self, own_step, layer: Layer, h, i_ff, x, s_prev, elig, rec):
        if layer.recurrent is None:
            return super()._advance(own_step, layer, h, i_ff, x, s_prev, elig, rec)
        R, op = rec.kernel, rec.op
        eye = jnp.eye(i_ff.shape[-1], dtype=i_ff.dtype)

        def layer_step(h, s_prev, i_ff):
            return own_step(h, i_ff + op(s_prev, R))

        def jvp(m, i_dot):
            h_dot, s_dot = m
            _, (s_new, h_new) = jax.jvp(layer_step, (h, s_prev, i_ff), (h_dot, s_dot, i_dot))
            return (h_new, s_new), s_new

        # One direction per parameter element, vmapped: a kernel's (i, j) adds its input x_i
        # to neuron j's current (the recurrent kernel's input is s[t-1]), the bias's j adds 1.
        over_j = lambda f: jax.vmap(f, in_axes=(1, 0), out_axes=1)  # noqa: E731

        def synapses(m, inputs):
            def along_i(m_i, x_i):
                return over_j(lambda m_ij, e_j: jvp(m_ij, x_i[:, None] * e_j))(m_i, eye)

            m_new, s_dot = jax.vmap(along_i, in_axes=(1, 1), out_axes=1)(m, inputs)
            return m_new, LayerTangent(s_dot)

        new, tangents = {}, {}
        new["kernel"], tangents["kernel"] = synapses(elig["kernel"], x)
        new["recurrent"], tangents["recurrent"] = synapses(elig["recurrent"], s_prev)
        if "bias" in elig:
            new["bias"], s_dot = over_j(
                lambda m_j, e_j: jvp(m_j, jnp.broadcast_to(e_j, i_ff.shape)))(elig["bias"], eye)
            tangents["bias"] = LayerTangent(s_dot)
        return new, tangents

    @property
    def memory(self) -> str:
        return "O(1)"


def ostl() -> OSTL:
    """OSTL (Bohnstingl et al., IEEE TNNLS 2022): online spatio-temporal learning, the exact
    RTRL of each layer's own state with respect to its own weights (reset and recurrence
    included), combined with the spatial gradient backpropagated through the layers above at
    the same step; accumulated over the sequence, one optimizer step per batch.

    Equals BPTT for one hidden layer, recurrent or not; a layer without recurrence gets
    e-prop's gradient. Serves and refuses the models e-prop does (:func:`snnjax.rules.eprop`).
    Memory O(1) in T; per sample a recurrent layer carries ``O(N_in·N² + N³)`` per state
    variable (every parameter's effect on every neuron of the layer), a feed-forward layer
    e-prop's eligibility vectors.
    """
    return OSTL()
