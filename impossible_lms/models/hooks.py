"""Read or replace a block's output at chosen (row, position) cells: forward hooks on the blocks.

One small API every analysis shares (interchange interventions, probes), for
every model whose blocks sit in ``model.transformer.h``: our GPT-2 variants,
exits (exit heads read the patched stream), Backpacks (their sense weights
come from it) and Hugging Face GPT-2 itself (blocks return tuples; the first
element is the hidden state).

    with record_blocks(model, [0, 1]) as states:      # states[l]: [B, T, d] block l's output
        model(ids)
    with patch_block(model, layer=1, rows=r, positions=p, values=v):
        model(ids)                                     # output[r[i], p[i]] = v[i] in block 1
    with restrict_attention(model, from_layer=4, allowed=m):
        model(ids)                                     # blocks 4.. attend only where m (and causal) allow

``restrict_attention`` needs our own blocks (GPT-2 variants, exits, Backpack trunks), whose
forward takes the shared attention context it swaps. Layers are 0-based block indices (block ``l``'s output = hidden_states[l + 1]).
Hooks are removed when the ``with`` ends, also on error.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence

import torch
import torch.nn as nn

from impossible_lms.errors import ILMError


def blocks(model: nn.Module) -> list[nn.Module]:
    """The model's transformer blocks, in order."""
    h = getattr(getattr(model, "transformer", None), "h", None)
    if not isinstance(h, nn.ModuleList) or len(h) == 0:
        raise ILMError(f"{type(model).__name__} has no transformer.h blocks to hook (a GPT-2-style model is needed)")
    return list(h)


def _check_layers(model: nn.Module, layers: Sequence[int]) -> list[nn.Module]:
    found = blocks(model)
    bad = [l for l in layers if not 0 <= l < len(found)]
    if bad:
        raise ILMError(f"layer {bad[0]} outside the model's blocks 0..{len(found) - 1}")
    return found


def _hidden(output):
    return output[0] if isinstance(output, tuple) else output


@contextmanager
def record_blocks(model: nn.Module, layers: Sequence[int]) -> Iterator[dict[int, torch.Tensor]]:
    """Collect block outputs ``{layer: [B, T, d]}`` of the forward passes run inside the ``with``."""
    found = _check_layers(model, layers)
    states: dict[int, torch.Tensor] = {}
    handles = []
    for layer in layers:
        def hook(module, args, output, layer=layer):
            states[layer] = _hidden(output).detach()
        handles.append(found[layer].register_forward_hook(hook))
    try:
        yield states
    finally:
        for h in handles:
            h.remove()


@contextmanager
def patch_block(model: nn.Module, layer: int, rows: torch.Tensor, positions: torch.Tensor,
                values: torch.Tensor) -> Iterator[None]:
    """Inside the ``with``, block ``layer`` outputs ``values[i]`` at ``(rows[i], positions[i])``."""
    (block,) = [_check_layers(model, [layer])[layer]]
    if not (len(rows) == len(positions) == len(values)):
        raise ILMError(f"patch_block: {len(rows)} rows, {len(positions)} positions, {len(values)} values")

    def hook(module, args, output):
        hidden = _hidden(output).clone()
        hidden[rows.to(hidden.device), positions.to(hidden.device)] = values.to(hidden)
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

    handle = block.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


@contextmanager
def restrict_attention(model: nn.Module, from_layer: int, allowed: torch.Tensor) -> Iterator[None]:
    """Inside the ``with``, blocks ``from_layer``.. attend only where ``allowed`` (bool, broadcastable to
    ``[B, 1, T, T]``; ``[B, 1, 1, T]`` is a key mask) and the model's own mask (causal, padding,
    documents) both allow; earlier blocks are untouched. A query left with no key sees itself.

    A block-input hook swaps the forward's attention context for one carrying ``AttnMask.extra``,
    so the model's normal path has no extra branch. flash-attn has no arbitrary-mask form: its
    backend runs SDPA for those blocks."""
    from dataclasses import replace

    from impossible_lms.models.gpt2 import Context

    found = blocks(model)
    if not 0 <= from_layer < len(found):
        raise ILMError(f"layer {from_layer} outside the model's blocks 0..{len(found) - 1}")
    if allowed.dtype != torch.bool or allowed.dim() != 4:
        raise ILMError(f"restrict_attention: allowed must be a 4-d bool tensor, got {allowed.dtype} {tuple(allowed.shape)}")
    last: list = [None, None]  # (the forward's context, its restricted twin): the bias is built once per forward

    def hook(module, args):
        if len(args) < 2 or not isinstance(args[1], Context):
            raise ILMError(f"restrict_attention needs an ilm model's blocks, not {type(module).__name__}")
        ctx = args[1]
        if last[0] is not ctx:
            mask = ctx.mask
            target = (ctx.positions.shape[0], 1, mask.q_len, mask.k_len)
            try:
                fits = torch.broadcast_shapes(allowed.shape, target) == target
            except RuntimeError:
                fits = False
            if not fits:
                raise ILMError(f"restrict_attention: mask of shape {tuple(allowed.shape)} does not fit "
                               f"[{target[0]}, 1, {mask.q_len}, {mask.k_len}]")
            # flash-attn's backend itself hands a mask with ``extra`` to SDPA (attention.py)
            last[:] = [ctx, Context(ctx.backend, replace(mask, extra=allowed, _cache={}), ctx.positions)]
        return (args[0], last[1], *args[2:])

    handles = [block.register_forward_pre_hook(hook) for block in found[from_layer:]]
    try:
        yield
    finally:
        for h in handles:
            h.remove()
