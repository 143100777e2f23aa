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

Layers are 0-based block indices (block ``l``'s output = hidden_states[l + 1]).
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
