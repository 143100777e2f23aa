"""Next-token cross entropy straight from hidden states, never holding all [B, T, V] logits.

The reference loss (``gpt2.lm_loss``) takes the logits the model returns and
upcasts them to fp32: under bf16 autocast a GPT-2 batch of 8 × 1024 tokens
over 50 259 words holds 0.8 GB of bf16 logits, a 1.6 GB fp32 copy, the 1.6 GB
log-softmax that cross entropy saves for backward and, in backward, a 1.6 GB
gradient. Training needs none of it, only the loss and the gradients.

``head_cross_entropy(hidden, weight, labels, mask)`` computes the same number
from the hidden states and the head's weight, a chunk of positions at a time
(the idea of Liger-Kernel's fused linear cross entropy, in plain PyTorch): each
chunk's logits are made in the head's compute dtype (bf16 under autocast),
upcast to fp32, reduced to their loss, and — when a backward will follow —
turned at once into that chunk's gradients with respect to the hidden states
and the weight, exactly as autograd would have (softmax − one-hot, scaled by
1/valid tokens, cast to the logits' dtype before the two matmuls, like the
autocast backward of ``F.linear``). Then the chunk is freed. Backward only
scales the saved gradients. Peak memory is one chunk's logits plus a weight-
sized gradient, whatever B × T; the work is the same three matmuls as autograd's.

Backends (``ILMConfig.cross_entropy``): ``chunked`` (the above, any device),
``liger`` (Liger-Kernel's Triton kernel of the same idea, CUDA only, when
``liger_kernel`` is installed; never imported otherwise) and ``auto`` (liger
where it can run, else chunked).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from impossible_lms.errors import ILMError

IGNORE = -100
# fp32 logits elements per chunk: 2^25 = 128 MiB, ~670 positions of GPT-2's
# 50 259-word vocabulary (13 chunks for 8 × 1024 tokens). Past a few hundred
# rows a chunk's matmuls run at full speed (benchmarks/loss_memory.py).
CHUNK_ELEMENTS = 2**25


def shifted_targets(labels: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """[B, T] labels → the [B·T] next-token target of every position: padding and the last position -100.

    Position t predicts labels[t + 1], so hidden states need no shifting (no copy of them)."""
    if attention_mask is not None:
        labels = labels.masked_fill(attention_mask == 0, IGNORE)
    return F.pad(labels[:, 1:], (0, 1), value=IGNORE).flatten()


def head_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor,
                       attention_mask: torch.Tensor | None = None, vocab: int | None = None,
                       backend: str = "auto", chunk_rows: int | None = None) -> torch.Tensor:
    """Mean next-token cross entropy of the head ``F.linear(hidden, weight[:vocab])``, in fp32.

    ``hidden`` [B, T, C], ``weight`` [V', C] of which the first ``vocab`` rows
    are the real vocabulary (None: all; the rest, padding, never predicted),
    ``labels`` [B, T] (the inputs; shifted here, -100 and ``attention_mask`` 0
    ignored). The same number, and gradients, as
    ``lm_loss(F.linear(hidden, weight)[..., :vocab], labels, attention_mask)``;
    NaN when no position counts, as there."""
    targets = shifted_targets(labels, attention_mask)
    h = hidden.flatten(0, 1)
    vocab = weight.shape[0] if vocab is None else vocab
    name = resolve_backend(backend, h.device)
    rows = chunk_rows or max(1, CHUNK_ELEMENTS // vocab)
    return BACKENDS[name].fn(h, weight, targets, vocab, rows)


# ------------------------------------------------------------------ chunked (plain PyTorch)


def _chunked(h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, vocab: int, rows: int) -> torch.Tensor:
    if torch.is_grad_enabled() and (h.requires_grad or weight.requires_grad):
        return _ChunkedLinearCrossEntropy.apply(h, weight, targets, vocab, rows)
    return _chunk_loop(h, weight, targets, vocab, rows, grads=False)[0]


def _compute_dtype(t: torch.Tensor) -> torch.dtype:
    """The dtype F.linear computes in here: autocast's when on, else the tensor's own."""
    if torch.is_autocast_enabled(t.device.type):
        return torch.get_autocast_dtype(t.device.type)
    return t.dtype


def _chunk_loop(h, weight, targets, vocab: int, rows: int, grads: bool):
    """(mean loss, dL/dh or None, dL/dweight or None), one chunk of ``rows`` positions at a time."""
    dtype = _compute_dtype(h)
    hc, wc = h.to(dtype), weight[:vocab].to(dtype)  # cast once, not per chunk (no-ops without autocast)
    valid = targets != IGNORE
    count = valid.sum()
    weights = valid.to(torch.float32)[:, None]  # counted rows 1, ignored 0
    safe = targets.masked_fill(~valid, 0)
    total = h.new_zeros((), dtype=torch.float32)
    grad_h = torch.empty_like(h, dtype=torch.float32) if grads else None
    # fp32 accumulator, padding rows 0; full-size so no slice backward copies it again
    grad_w = torch.zeros_like(weight, dtype=torch.float32) if grads else None
    for a in range(0, h.shape[0], rows):
        b = min(a + rows, h.shape[0])
        z = F.linear(hc[a:b], wc)
        out_dtype = z.dtype
        z = z.float()  # the reference's fp32 cross entropy (under autocast the bf16 logits go here)
        # log-sum-exp by hand, in z's own storage: torch.logsumexp would hold two more chunk-sized tensors
        m = z.amax(dim=-1, keepdim=True)
        picked = z.gather(1, safe[a:b, None])
        z.sub_(m).exp_()
        s = z.sum(dim=-1, keepdim=True)
        total = total + torch.where(valid[a:b], (m + s.log() - picked)[:, 0], 0.0).sum()
        if grads:
            # count · dL/dz = softmax − one-hot on counted rows, still in z's storage. The 1/count
            # waits until after the matmuls: in fp16 (GradScaler training) (p − 1{t})/count would
            # underflow, where the reference casts it only after the loss scale has multiplied it.
            z.div_(s).scatter_add_(1, safe[a:b, None], torch.full_like(picked, -1.0)).mul_(weights[a:b])
            g = z.to(out_dtype)  # what the backward of .float() hands F.linear
            del z
            grad_h[a:b] = g @ wc
            if g.dtype == grad_w.dtype:
                grad_w[:vocab].addmm_(g.t(), hc[a:b])
            else:  # a 16-bit product per chunk, summed in fp32 (autograd rounds the one whole product)
                grad_w[:vocab] += g.t() @ hc[a:b]
            del g
    loss = total / count  # 0/0 = NaN when nothing counts, as the reference
    if not grads:
        return loss, None, None
    inv = 1.0 / count.clamp(min=1)  # no position counts: zero gradients, as F.cross_entropy's
    return loss, grad_h.mul_(inv).to(h.dtype), grad_w.mul_(inv).to(weight.dtype)


class _ChunkedLinearCrossEntropy(torch.autograd.Function):
    """Gradients made in forward, chunk by chunk; backward scales them by the incoming gradient."""

    @staticmethod
    def forward(ctx, h, weight, targets, vocab: int, rows: int):
        loss, grad_h, grad_w = _chunk_loop(h, weight, targets, vocab, rows, grads=True)
        ctx.save_for_backward(grad_h, grad_w)
        return loss

    @staticmethod
    def backward(ctx, grad_loss):
        # In place: no second weight-sized tensor, and the gradient accumulator can take these
        # as they are. A second backward (retain_graph=True) is refused by autograd's
        # saved-tensor version check rather than given scaled-twice gradients.
        grad_h, grad_w = ctx.saved_tensors
        return grad_h.mul_(grad_loss.to(grad_h.dtype)), grad_w.mul_(grad_loss.to(grad_w.dtype)), None, None, None


# ------------------------------------------------------------------ liger (CUDA, optional)


def _liger(h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, vocab: int, rows: int) -> torch.Tensor:
    # Liger picks its own chunk size; its Triton kernel computes the softmax in fp32.
    from liger_kernel.transformers.functional import liger_fused_linear_cross_entropy

    return liger_fused_linear_cross_entropy(h.contiguous(), weight[:vocab], targets,
                                            ignore_index=IGNORE, reduction="mean")


@torch.compiler.assume_constant_result
def _liger_installed() -> bool:
    # A constant to torch.compile: the import is looked up once, outside any graph.
    try:
        import liger_kernel.transformers.functional  # noqa: F401
    except ImportError:
        return False
    return True


def _liger_available(device: torch.device) -> bool:
    return device.type == "cuda" and _liger_installed()


# ------------------------------------------------------------------ registry


@dataclass(frozen=True)
class LossBackend:
    fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, int, int], torch.Tensor]  # h, W, targets, vocab, rows
    available: Callable[[torch.device], bool]


BACKENDS: dict[str, LossBackend] = {
    "chunked": LossBackend(_chunked, lambda device: True),
    "liger": LossBackend(_liger, _liger_available),
}


def resolve_backend(name: str, device: torch.device) -> str:
    """``auto`` → liger (CUDA, installed) → chunked."""
    if name == "auto":
        return "liger" if BACKENDS["liger"].available(device) else "chunked"
    if name not in BACKENDS:
        raise ILMError(f"unknown cross_entropy backend {name!r}; known: auto, {', '.join(BACKENDS)}")
    if not BACKENDS[name].available(device):
        raise ILMError(f"cross_entropy backend {name!r} is not available on {device.type} "
                       "(liger needs the liger-kernel package and CUDA)")
    return name
