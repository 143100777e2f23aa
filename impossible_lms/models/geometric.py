"""Geometric (stick-breaking) attention: Csordás et al. 2022, "The Neural Data Router".

Each query walks back from its own position towards the start of the row and
stops at key j with probability σ(z_j), the key's score: the weight of key j is
σ(z_j) times the probability of not having stopped at any key closer to the
query,

    A_j = σ(z_j) · ∏_{k > j} (1 − σ(z_k))         (keys ordered left to right,
                                                     the query's own position last)

so nearer keys win ties and no position table is needed for recency. Weights
sum to at most 1; the mass left when the walk passes the first key is dropped
(as in the reference's ``models/geometric_attention.py``). Keys a query may not
see carry a score of −inf: σ(−inf) = 0, so they neither take weight nor stop
the walk.

Numerics: in log space, log A_j = log σ(z_j) − Σ_{k>j} softplus(z_k), summed
right to left in fp32 (fp64 for fp64 inputs), so no product of many numbers
near 1 underflows. The backward is written out rather than left to autograd,
which would keep the [B, H, T, T] suffix sums alive:

    ∂L/∂z_m = g_m A_m − σ(z_m) Σ_{j ≤ m} g_j A_j          (g = ∂L/∂A)

which needs only A and z. ``tests/test_models_geometric.py`` checks it with
``torch.autograd.gradcheck`` in fp64 and against autograd through the log-space
formula.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _work_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def stick_breaking_reference(scores: torch.Tensor) -> torch.Tensor:
    """The weights by plain autograd-able tensor ops (the tested reference of :class:`StickBreaking`)."""
    z = scores.to(_work_dtype(scores))
    after = F.softplus(z).flip(-1).cumsum(-1).flip(-1) - F.softplus(z)  # Σ_{k>j} softplus(z_k)
    return (F.logsigmoid(z) - after).exp().to(scores.dtype)


class StickBreaking(torch.autograd.Function):
    """``scores [..., k_len] → weights [..., k_len]`` over the last axis, the query's own key last."""

    @staticmethod
    def forward(ctx, scores: torch.Tensor) -> torch.Tensor:
        z = scores.to(_work_dtype(scores))
        softplus = F.softplus(z)
        after = softplus.flip(-1).cumsum(-1).flip(-1) - softplus
        weights = (F.logsigmoid(z) - after).exp()
        ctx.save_for_backward(weights, scores)
        return weights.to(scores.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        weights, scores = ctx.saved_tensors
        ga = grad.to(weights.dtype) * weights
        dz = ga - torch.sigmoid(scores.to(weights.dtype)) * ga.cumsum(-1)
        return dz.to(scores.dtype)


def stick_breaking(scores: torch.Tensor) -> torch.Tensor:
    return StickBreaking.apply(scores)


def geometric_attend(q, k, v, bias: torch.Tensor, scale: float, dropout: float = 0.0) -> torch.Tensor:
    """Attention with stick-breaking weights; ``bias`` is the additive mask (−inf hidden, + ALiBi).

    Scores are always formed explicitly (no fused kernel computes this), in fp32
    under mixed precision as GPT-2's ``reorder_and_upcast_attn`` does.
    """
    dtype = _work_dtype(q)
    scores = (q.to(dtype) * scale) @ k.to(dtype).transpose(-1, -2) + bias.to(dtype)
    weights = stick_breaking(scores).to(v.dtype)
    weights = F.dropout(weights, p=dropout, training=dropout > 0)
    return weights @ v
