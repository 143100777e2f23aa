"""Causal attention: position helpers, masks, and a registry of interchangeable backends.

All backends take ``q, k, v`` as ``[batch, heads, time, head_dim]`` plus one
:class:`AttnMask` describing what may be attended to (causal, padding,
packed documents, ALiBi), and return ``[batch, heads, time, v_dim]``. The
``eager`` backend is the explicit reference the others are tested against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

from impossible_lms.errors import ILMError

# ---------------------------------------------------------------- positions


def rotary(x: torch.Tensor, positions: torch.Tensor, rotary_dim: int, base: float) -> torch.Tensor:
    """GPT-J rotary embedding: rotate interleaved pairs (0,1), (2,3)... of the first rotary_dim dims.

    ``x``: [B, H, T, D]; ``positions``: [B, T]. Chosen over the NeoX half-split
    because GPT-J (design.md §5) is the reference for rotary here.
    """
    inv_freq = base ** (-torch.arange(0, rotary_dim, 2, device=x.device, dtype=torch.float32) / rotary_dim)
    angles = positions.to(torch.float32)[:, None, :, None] * inv_freq  # [B, 1, T, rd/2]
    cos = angles.cos().repeat_interleave(2, dim=-1)
    sin = angles.sin().repeat_interleave(2, dim=-1)
    rot, rest = x[..., :rotary_dim].float(), x[..., rotary_dim:]
    pairs = rot.unflatten(-1, (-1, 2))
    rotated_half = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)
    out = rot * cos + rotated_half * sin
    return torch.cat((out.to(x.dtype), rest), dim=-1)


def alibi_slopes(n_head: int) -> torch.Tensor:
    """Press et al. head slopes: a geometric sequence; non-powers of two interleave the next one."""

    def power_of_two(n: int) -> list[float]:
        start = 2 ** (-8 / n)
        return [start ** (i + 1) for i in range(n)]

    if math.log2(n_head).is_integer():
        return torch.tensor(power_of_two(n_head))
    closest = 2 ** math.floor(math.log2(n_head))
    extra = power_of_two(2 * closest)[0::2][: n_head - closest]
    return torch.tensor(power_of_two(closest) + extra)


def document_starts(document_ids: torch.Tensor) -> torch.Tensor:
    """True where a new document begins: one segment per run of equal ids ([0,0,1,1,0] is three).

    Every backend (eager masks, flash-attn's varlen boundaries) and the positions
    read segments this way, so an id that reappears later in a row is a new
    document, never a continuation of the earlier one.
    """
    starts = torch.ones_like(document_ids, dtype=torch.bool)
    starts[..., 1:] = document_ids[..., 1:] != document_ids[..., :-1]
    return starts


def document_positions(document_ids: torch.Tensor) -> torch.Tensor:
    """Positions restarting at 0 at every document boundary of a packed row ([B, T])."""
    idx = torch.arange(document_ids.shape[-1], device=document_ids.device).expand_as(document_ids)
    start_idx = torch.where(document_starts(document_ids), idx, torch.zeros_like(idx)).cummax(dim=-1).values
    return idx - start_idx


def key_padding(attention_mask: torch.Tensor | None) -> torch.Tensor | None:
    """The padding mask attention needs, or None when nothing is padded.

    Eager: one check per forward (a host sync) so unpadded batches keep the
    plain causal kernel. Under ``torch.compile`` the mask is kept as given: a
    data-dependent branch would split the graph. Right-padded batches need no
    mask at all (causal attention already hides later pads from real tokens):
    the scorer passes none and reads only real positions.
    """
    if attention_mask is None:
        return None
    if not torch.compiler.is_compiling() and bool(attention_mask.bool().all()):
        return None
    return attention_mask.bool()


# ---------------------------------------------------------------- masks


@dataclass
class AttnMask:
    """What a query may see. Queries are the last ``q_len`` of ``k_len`` key positions."""

    q_len: int
    k_len: int
    key_padding: torch.Tensor | None = None  # [B, k_len] bool, True = real token
    document_ids: torch.Tensor | None = None  # [B, k_len] int, packed documents
    alibi: torch.Tensor | None = None  # [H] fp32 slopes, on the device (a model buffer)
    # bool "may attend", broadcastable to [B, 1, q_len, k_len] ([B, 1, 1, k_len]: a key mask); ANDed
    # with the rest. Analyses set it for chosen layers (models/hooks.py: restrict_attention).
    extra: torch.Tensor | None = None
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def only_causal(self) -> bool:
        return self.key_padding is None and self.document_ids is None and self.alibi is None and self.extra is None

    def allowed(self, device: torch.device) -> torch.Tensor:
        """Boolean [B|1, 1, q_len, k_len]: causal ∧ same document ∧ real key ∧ ``extra``
        (a query left with no key keeps its diagonal)."""
        qpos = torch.arange(self.k_len - self.q_len, self.k_len, device=device)
        kpos = torch.arange(self.k_len, device=device)
        ok = (kpos[None, :] <= qpos[:, None])[None, None]
        if self.document_ids is not None:
            seg = document_starts(self.document_ids.to(device)).cumsum(-1)  # run index per key
            ok = ok & (seg[:, None, -self.q_len :, None] == seg[:, None, None, :])
        if self.key_padding is not None:
            diag = (kpos[None, :] == qpos[:, None])[None, None]
            # A padding query (left padding) would see no key at all: keep its
            # diagonal so softmax stays finite; its output is ignored anyway.
            ok = ok & (self.key_padding.to(device).bool()[:, None, None, :] | diag)
        if self.extra is not None:
            ok = ok & self.extra.to(device).bool()
            # A query the extra mask leaves with no key at all sees itself (finite softmax, as padding).
            diag = (kpos[None, :] == qpos[:, None])[None, None]
            ok = ok | (diag & ~ok.any(dim=-1, keepdim=True))
        return ok

    def bias(self, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """Additive float mask [B|1, H|1, q_len, k_len] (−inf where not allowed, + ALiBi)."""
        key = (device, dtype)
        if key not in self._cache:
            ok = self.allowed(device)
            bias = torch.zeros(ok.shape, device=device, dtype=dtype).masked_fill(~ok, float("-inf"))
            if self.alibi is not None:
                qpos = torch.arange(self.k_len - self.q_len, self.k_len, device=device)
                kpos = torch.arange(self.k_len, device=device)
                dist = (qpos[:, None] - kpos[None, :]).clamp(min=0).to(dtype)
                bias = bias - self.alibi.to(device, dtype)[None, :, None, None] * dist
            self._cache[key] = bias
        return self._cache[key]


# ---------------------------------------------------------------- backends

Backend = Callable[..., torch.Tensor]


@dataclass(frozen=True)
class BackendSpec:
    fn: Backend
    available: Callable[[torch.device, torch.dtype], bool]


def _eager(q, k, v, mask: AttnMask, scale: float, dropout: float = 0.0, upcast: bool = False):
    """Reference: explicit scores, fp32 when upcasting (GPT-2 reorder_and_upcast_attn)."""
    dtype = torch.float32 if upcast else q.dtype
    scores = (q.to(dtype) * scale) @ k.to(dtype).transpose(-1, -2)
    scores = scores + mask.bias(q.device, dtype)
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(v.dtype)
    probs = F.dropout(probs, p=dropout, training=dropout > 0)
    return probs @ v


def _sdpa(q, k, v, mask: AttnMask, scale: float, dropout: float = 0.0, upcast: bool = False):
    # Fused kernels keep fp32 softmax statistics, which is what upcasting is for.
    if mask.only_causal and mask.q_len == mask.k_len:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=dropout, scale=scale)
    if mask.only_causal and mask.q_len == 1:  # one new token sees every cached key
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, scale=scale)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask.bias(q.device, q.dtype), dropout_p=dropout, scale=scale)


def _math(q, k, v, mask: AttnMask, scale: float, dropout: float = 0.0, upcast: bool = False):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    dtype = torch.float32 if upcast else q.dtype
    with sdpa_kernel(SDPBackend.MATH):
        out = _sdpa(q.to(dtype), k.to(dtype), v.to(dtype), mask, scale, dropout)
    return out.to(v.dtype)


def _flash_attn(q, k, v, mask: AttnMask, scale: float, dropout: float = 0.0, upcast: bool = False):
    """flash-attn 2: causal kernel (ALiBi through its ``alibi_slopes``); packed documents / padding
    through the varlen kernel, its boundaries computed once per forward (cached on the mask)."""
    if mask.extra is not None:  # an arbitrary mask has no flash-attn form: SDPA takes it as a bias
        return _sdpa(q, k, v, mask, scale, dropout, upcast)
    from flash_attn import flash_attn_func, flash_attn_varlen_func

    slopes = mask.alibi  # already fp32 [H] on the device
    if mask.document_ids is None and mask.key_padding is None:
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # → [B, T, H, D], last dim still contiguous
        out = flash_attn_func(q, k, v, dropout_p=dropout, softmax_scale=scale, causal=True, alibi_slopes=slopes)
        return out.transpose(1, 2)
    if mask.q_len != mask.k_len:  # padding/documents with a KV cache (batched generation): no varlen form
        return _sdpa(q, k, v, mask, scale, dropout, upcast)
    B, H, T, D = q.shape
    cu, max_len = _varlen_bounds(mask, q.device)
    flat = [t.transpose(1, 2).reshape(B * T, H, -1) for t in (q, k, v)]
    out = flash_attn_varlen_func(*flat, cu, cu, max_len, max_len, dropout_p=dropout, softmax_scale=scale,
                                 causal=True, alibi_slopes=slopes)
    return out.reshape(B, T, H, -1).transpose(1, 2)


def _varlen_bounds(mask: AttnMask, device: torch.device) -> tuple[torch.Tensor, int]:
    """int32 ``cu_seqlens`` and the longest segment over the flattened batch: a segment starts at
    each row, at each document run, and at every padding token (pads are their own segments)."""
    if "varlen" not in mask._cache:
        ref = mask.document_ids if mask.document_ids is not None else mask.key_padding
        B, T = ref.shape
        starts = torch.zeros(B, T, dtype=torch.bool, device=device)
        starts[:, 0] = True
        if mask.document_ids is not None:
            starts |= document_starts(mask.document_ids.to(device))
        if mask.key_padding is not None:
            real = mask.key_padding.to(device).bool()
            starts |= ~real
            starts[:, 1:] |= ~real[:, :-1]
        bounds = torch.cat((starts.flatten().nonzero().flatten(), torch.tensor([B * T], device=device)))
        max_len = int((bounds[1:] - bounds[:-1]).max())  # the one host sync, once per forward
        mask._cache["varlen"] = (bounds.to(torch.int32), max_len)
    return mask._cache["varlen"]


def _flash_available(device: torch.device, dtype: torch.dtype) -> bool:
    if device.type != "cuda" or dtype not in (torch.float16, torch.bfloat16):
        return False
    try:
        import flash_attn  # noqa: F401
    except ImportError:
        return False
    return True


BACKENDS: dict[str, BackendSpec] = {
    "flash_attn": BackendSpec(_flash_attn, _flash_available),
    "sdpa": BackendSpec(_sdpa, lambda device, dtype: True),
    "math": BackendSpec(_math, lambda device, dtype: True),
    "eager": BackendSpec(_eager, lambda device, dtype: True),
}


def resolve_backend(name: str, device: torch.device, dtype: torch.dtype) -> str:
    """``auto`` → flash_attn (CUDA, half precision, installed) → sdpa on GPU → math on CPU."""
    if name == "auto":
        if _flash_available(device, dtype):
            return "flash_attn"
        return "sdpa" if device.type == "cuda" else "math"
    if name not in BACKENDS:
        raise ILMError(f"unknown attention backend {name!r}; known: auto, {', '.join(BACKENDS)}")
    if not BACKENDS[name].available(device, dtype):
        raise ILMError(f"attention backend {name!r} is not available on {device.type} with {dtype} "
                       "(flash_attn needs the flash-attn package, CUDA and fp16/bf16)")
    return name


def _geometric(backend: str, q, k, v, mask: AttnMask, scale: float, dropout: float = 0.0, upcast: bool = False):
    """Stick-breaking weights from explicit scores, whatever the backend (no fused kernel has them)."""
    from impossible_lms.models.geometric import geometric_attend

    return geometric_attend(q, k, v, mask.bias(q.device, torch.float32), scale, dropout).to(v.dtype)


def _softmax(backend: str, q, k, v, mask: AttnMask, scale: float, dropout: float = 0.0, upcast: bool = False):
    return BACKENDS[backend].fn(q, k, v, mask, scale, dropout, upcast)


# ILMConfig.attention_kind → how scores become weights; the backend only applies to softmax.
KINDS: dict[str, Callable[..., torch.Tensor]] = {"softmax": _softmax, "geometric": _geometric}


def attend(backend: str, q, k, v, mask: AttnMask, scale: float, dropout: float = 0.0, upcast: bool = False,
           kind: str = "softmax"):
    return KINDS[kind](backend, q, k, v, mask, scale, dropout, upcast)
