"""A test-only stand-in for the ``flash_attn`` package (flash-attn 2's Python interface).

It checks every argument against flash-attn 2's call contract, then computes
the same attention in float32 with explicit scores, so the ``flash_attn``
backend runs on CPU in CI. The contract, from flash-attn 2's
``flash_attn_interface`` docstrings:

- ``q, k, v``: ``[batch, seqlen, heads, head_dim]`` (varlen: ``[total, heads, head_dim]``),
  fp16 or bf16 only, all the same dtype and device, last dim contiguous;
- ``cu_seqlens_*``: int32, 1-D, ``[batch + 1]``, from 0 to ``total``, non-decreasing;
  ``max_seqlen_*``: a Python int, the longest segment;
- ``causal=True`` aligns the mask to the bottom-right corner: query ``i`` of
  ``Sq`` sees key ``j`` of ``Sk`` when ``j <= i + Sk - Sq``;
- ``alibi_slopes``: fp32, ``[heads]`` or ``[batch, heads]``; adds
  ``-slope * |i + Sk - Sq - j|`` to the scores.

``install(monkeypatch)`` puts it in ``sys.modules`` and makes the backend
available on CPU; ``CALLS`` records which function ran.
"""

from __future__ import annotations

import sys
import types

import torch

CALLS: list[str] = []


def _check_qkv(q, k, v, ndim: int) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        assert t.dtype in (torch.float16, torch.bfloat16), f"{name}: flash-attn takes fp16/bf16 only, got {t.dtype}"
        assert t.ndim == ndim, f"{name}: expected {ndim} dims, got shape {tuple(t.shape)}"
        assert t.stride(-1) == 1, f"{name}: last dimension must be contiguous"
        assert t.dtype == q.dtype and t.device == q.device, f"{name}: dtype/device differ from q"
    assert q.shape[-2] == k.shape[-2] == v.shape[-2], "heads differ (no GQA here)"
    assert q.shape[-1] == k.shape[-1], "q and k head sizes differ"


def _check_slopes(slopes, heads: int, batch: int) -> None:
    if slopes is None:
        return
    assert slopes.dtype == torch.float32, f"alibi_slopes must be fp32, got {slopes.dtype}"
    assert tuple(slopes.shape) in ((heads,), (batch, heads)), f"alibi_slopes shape {tuple(slopes.shape)}"


def _attend(q, k, v, scale, causal, slopes):
    """One sequence: q [Sq, H, D], k/v [Sk, H, D]; fp32 math, result in q's dtype."""
    Sq, Sk = q.shape[0], k.shape[0]
    qf, kf, vf = q.float(), k.float(), v.float()
    scores = torch.einsum("qhd,khd->hqk", qf, kf) * scale
    i = torch.arange(Sq)[:, None] + (Sk - Sq)  # bottom-right alignment
    j = torch.arange(Sk)[None, :]
    if slopes is not None:
        scores = scores - slopes.float().reshape(-1)[-q.shape[1]:][:, None, None] * (i - j).abs()
    if causal:
        scores = scores.masked_fill(~(j <= i), float("-inf"))
    return torch.einsum("hqk,khd->qhd", torch.softmax(scores, -1), vf).to(q.dtype)


def flash_attn_func(q, k, v, dropout_p=0.0, softmax_scale=None, causal=False, window_size=(-1, -1),
                    softcap=0.0, alibi_slopes=None, deterministic=False, return_attn_probs=False):
    CALLS.append("flash_attn_func")
    _check_qkv(q, k, v, 4)
    assert q.shape[0] == k.shape[0] and k.shape[1] == v.shape[1]
    _check_slopes(alibi_slopes, q.shape[2], q.shape[0])
    assert dropout_p == 0.0, "the stand-in computes no dropout"
    scale = q.shape[-1] ** -0.5 if softmax_scale is None else softmax_scale
    rows = []
    for b in range(q.shape[0]):
        slopes = None if alibi_slopes is None else (alibi_slopes if alibi_slopes.ndim == 1 else alibi_slopes[b])
        rows.append(_attend(q[b], k[b], v[b], scale, causal, slopes))
    return torch.stack(rows)


def flash_attn_varlen_func(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, dropout_p=0.0,
                           softmax_scale=None, causal=False, window_size=(-1, -1), softcap=0.0, alibi_slopes=None,
                           deterministic=False, return_attn_probs=False, block_table=None):
    CALLS.append("flash_attn_varlen_func")
    _check_qkv(q, k, v, 3)
    for name, cu, total, longest in (("q", cu_seqlens_q, q.shape[0], max_seqlen_q),
                                     ("k", cu_seqlens_k, k.shape[0], max_seqlen_k)):
        assert cu.dtype == torch.int32 and cu.ndim == 1, f"cu_seqlens_{name} must be 1-D int32, got {cu.dtype}"
        assert cu.device == q.device, f"cu_seqlens_{name} on {cu.device}, q on {q.device}"
        assert type(longest) is int, f"max_seqlen_{name} must be a Python int, got {type(longest).__name__}"
        lengths = cu[1:] - cu[:-1]
        assert int(cu[0]) == 0 and int(cu[-1]) == total and bool((lengths >= 0).all()), f"cu_seqlens_{name} {cu}"
        assert int(lengths.max()) == longest, f"max_seqlen_{name}={longest}, longest segment {int(lengths.max())}"
    assert cu_seqlens_q.numel() == cu_seqlens_k.numel()
    _check_slopes(alibi_slopes, q.shape[1], cu_seqlens_q.numel() - 1)
    assert dropout_p == 0.0, "the stand-in computes no dropout"
    scale = q.shape[-1] ** -0.5 if softmax_scale is None else softmax_scale
    out = torch.empty(q.shape[0], q.shape[1], v.shape[-1], dtype=q.dtype)
    for s in range(cu_seqlens_q.numel() - 1):
        a, b = int(cu_seqlens_q[s]), int(cu_seqlens_q[s + 1])
        c, d = int(cu_seqlens_k[s]), int(cu_seqlens_k[s + 1])
        slopes = None if alibi_slopes is None else (alibi_slopes if alibi_slopes.ndim == 1 else alibi_slopes[s])
        if b > a:
            out[a:b] = _attend(q[a:b], k[c:d], v[c:d], scale, causal, slopes)
    return out


def install(monkeypatch) -> None:
    """Make ``import flash_attn`` find this module and the backend usable on CPU."""
    from impossible_lms.models import attention

    module = types.ModuleType("flash_attn")
    module.flash_attn_func = flash_attn_func
    module.flash_attn_varlen_func = flash_attn_varlen_func
    module.__version__ = "2.6.3"
    monkeypatch.setitem(sys.modules, "flash_attn", module)
    monkeypatch.setitem(attention.BACKENDS, "flash_attn",
                        attention.BackendSpec(attention.BACKENDS["flash_attn"].fn,
                                              lambda device, dtype: dtype in (torch.float16, torch.bfloat16)))
    CALLS.clear()
