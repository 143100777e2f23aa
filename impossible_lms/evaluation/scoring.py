"""Scoring: per-token log-probabilities of many sequences, batched by a token budget.

The rules every metric builds on (tests pin each of them):

- A sequence ``[t0, t1, ..., tn-1]`` is scored by one forward pass; token ``ti``
  gets ``log p(ti | t0..ti-1)``. The first token has no context, so it is
  **unscored** (NaN) unless ``condition_on_eos`` prepends EOS, which makes
  ``t0`` scored as ``log p(t0 | EOS)``.
- Sequences are sorted by length and cut into batches of at most
  ``batch_tokens`` padded tokens, **right-padded** (no attention mask needed: causal), so
  positions of real tokens are unchanged by padding and results do not depend
  on batch size (within float noise, < 1e-4).
- Precision (``ScoreOptions.dtype``): ``float32`` by default, as the reference
  scored, with TF32 off (``torch.set_float32_matmul_precision("highest")`` for
  the call, restored after). ``bfloat16``/``float16`` run the model under
  autocast: weights, LayerNorms and the residual stream stay float32, matmuls
  run in the low dtype, and the final projection(s) to the vocabulary (and
  every exit head) run in float32 (:func:`fp32_heads`).
- ``log_softmax`` is taken in float32 whatever the model's dtype, over the
  full vocabulary, but only at the positions whose log-prob is read (never at
  pads; ``needed`` masks narrow it further), a chunk of positions at a time:
  with a large vocabulary the projection and its softmax are most of the cost,
  and a [B, T, V] float32 tensor is never made. Our models run their trunk and
  then the head(s) at those positions only (``HEAD_INPUTS``); any other model
  runs its whole forward and the positions are picked from its logits.
- Values are natural logs (nats); metrics convert to bits explicitly.
- A sequence longer than the model's context is an error, or with
  ``too_long="skip"`` (what ``evaluate`` uses) all-NaN, so metrics leave it
  out and their ``count`` column shows how many were scored.

The result is, for each head (``None`` = the final layer, ``k`` = the
multi-exit head after layer ``k`` when the model has them), one float32 array
per sequence aligned with its tokens.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from impossible_lms.errors import ILMError
from impossible_lms.models.gpt2 import ILMForCausalLM

SCORER_VERSION = "2"  # 2: fp32 without TF32 by default; autocast keeps the vocabulary projection in fp32
FINAL = None  # head key of the final layer


@dataclass(frozen=True)
class ScoreOptions:
    batch_tokens: int = 16384
    condition_on_eos: bool = False
    eos_id: int | None = None
    # Longer than the model's context: "error", or "skip" (all-NaN scores, so metrics leave
    # the sentence out and their `count` shows it; one long sentence should not stop a sweep).
    too_long: str = "error"
    dtype: str = "float32"  # "float32", or "bfloat16"/"float16" autocast (see the module doc)


DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
          "float16": "float16", "fp16": "float16"}


def check_dtype(name: str) -> str:
    """The canonical scoring dtype name for ``name`` (fp32/bf16/fp16 aliases)."""
    if name not in DTYPES:
        raise ILMError(f"unknown dtype {name!r}; use float32 (fp32), bfloat16 (bf16) or float16 (fp16)")
    return DTYPES[name]


@contextlib.contextmanager
def fp32_heads(model, device_type: str):
    """Run the model's projections to the vocabulary in float32 even under autocast.

    The head is ``model.output_logits`` (ilm models, Backpacks) or else the module
    ``get_output_embeddings()`` returns (any Hugging Face model), plus each multi-exit
    head; each is wrapped on the instance for the duration and unwrapped after.
    """

    def fp32(fn):
        def run(*args, **kwargs):
            with torch.autocast(device_type, enabled=False):
                return fn(*(a.float() if torch.is_tensor(a) and a.is_floating_point() else a for a in args), **kwargs)
        return run

    owners: list[tuple[object, str]] = []
    if callable(getattr(model, "output_logits", None)):
        owners.append((model, "output_logits"))
    elif hasattr(model, "get_output_embeddings") and model.get_output_embeddings() is not None:
        owners.append((model.get_output_embeddings(), "forward"))
    exits = getattr(model, "exits", None)
    owners += [(head, "forward") for head in (exits.values() if exits is not None else [])]
    missing = object()
    saved = [(obj, name, vars(obj).get(name, missing)) for obj, name in owners]
    for obj, name in owners:
        setattr(obj, name, fp32(getattr(obj, name)))
    try:
        yield
    finally:
        for obj, name, before in saved:
            if before is missing:
                delattr(obj, name)  # the instance attribute shadowed the class's method
            else:
                setattr(obj, name, before)


@contextlib.contextmanager
def precision(model, dtype: str):
    """Full fp32 matmuls (no TF32) for the call; with a low dtype, autocast around everything but the heads."""
    dtype = check_dtype(dtype)
    device_type = next(model.parameters()).device.type
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        if dtype == "float32":
            yield
        else:
            with fp32_heads(model, device_type), torch.autocast(device_type, dtype=getattr(torch, dtype)):
                yield
    finally:
        torch.set_float32_matmul_precision(before)


def token_batches(lengths: Sequence[int], batch_tokens: int) -> Iterator[list[int]]:
    """Indices grouped so that ``len(batch) * longest <= batch_tokens`` (longest first).

    Sorting by length keeps padding small; a sequence longer than the budget
    still gets a batch of its own.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batch: list[int] = []
    for i in order:
        longest = lengths[batch[0]] if batch else lengths[i]
        if batch and (len(batch) + 1) * longest > batch_tokens:
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


def model_context(model) -> int | None:
    """The longest input the model accepts, when its config says (learned positions)."""
    cfg = model.config
    for name in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(cfg, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def exit_layers(model) -> list[int]:
    """Layers with a multi-exit head (empty for plain models)."""
    return sorted(int(k) for k in (getattr(model.config, "exit_layers", None) or []))


@torch.inference_mode()
def score_sequences(
    model, sequences: Sequence[Sequence[int]], options: ScoreOptions = ScoreOptions(), on_batch=None,
    needed: Sequence[np.ndarray | None] | None = None,
) -> dict[int | None, list[np.ndarray]]:
    """Per-token log-probs (nats) of each sequence, per head; see the module docstring.

    ``needed[k]`` (optional): a boolean mask over ``sequences[k]``'s tokens; only those
    log-probs are computed and the rest are NaN (None: every token). The projection to
    the vocabulary and its softmax, most of the cost with a large vocabulary, then run
    at those positions only.
    """
    if options.condition_on_eos and options.eos_id is None:
        raise ILMError("condition_on_eos needs the data's EOS id")
    if needed is not None and (len(needed) != len(sequences) or any(
            m is not None and len(m) != len(s) for m, s in zip(needed, sequences))):
        raise ILMError("needed must hold one mask (or None) per sequence, as long as the sequence")
    prefix = [options.eos_id] if options.condition_on_eos else []
    inputs = [prefix + list(s) for s in sequences]
    context = model_context(model)
    too_long = [i for i, s in enumerate(inputs) if context is not None and len(s) > context]
    if too_long and options.too_long != "skip":
        raise ILMError(
            f"{len(too_long)} sequence(s) are longer than the model's context of {context} tokens "
            f"(longest {max(len(inputs[i]) for i in too_long)})"
        )
    heads: list[int | None] = [FINAL, *exit_layers(model)]
    out: dict[int | None, list[np.ndarray]] = {
        h: [np.full(len(s), np.nan, np.float32) for s in sequences] for h in heads}
    device = next(model.parameters()).device
    lengths = [len(s) for s in inputs]
    skipped = set(too_long)
    keep = [i for i in range(len(inputs)) if i not in skipped]
    chunk = HEAD_CHUNK.get(device.type, HEAD_CHUNK[None])
    for sub in token_batches([lengths[i] for i in keep], options.batch_tokens):
        batch = [keep[j] for j in sub]
        width = lengths[batch[0]]
        ids = torch.zeros((len(batch), width), dtype=torch.long)
        for row, i in enumerate(batch):
            ids[row, : lengths[i]] = torch.tensor(inputs[i], dtype=torch.long)
        # The (row, column) cells whose token is scored: column c is predicted from column c - 1,
        # so column 0 never is; pads (right of each row's length) never go through the head.
        cols = []
        for i in batch:
            col = np.arange(1, lengths[i])
            if needed is not None and needed[i] is not None:
                col = col[np.asarray(needed[i], dtype=bool)[col - len(prefix)]]
            cols.append(col)
        counts = [len(c) for c in cols]
        if any(counts):  # else nothing is asked for in this batch
            _score_batch(model, ids.to(device), heads, batch, cols, counts, len(prefix), options.dtype, chunk, out)
        if on_batch is not None:
            on_batch(sum(lengths[i] for i in batch))
    return out


def _score_batch(model, ids, heads, batch, cols, counts, shift, dtype, chunk, out) -> None:
    rows_t = torch.from_numpy(np.repeat(np.arange(len(batch)), counts)).to(ids.device)
    cols_t = torch.from_numpy(np.concatenate(cols)).to(ids.device)
    with precision(model, dtype):
        for head, (states, project) in head_inputs(model, ids, heads).items():
            lp = _target_logprobs(states, project, ids, rows_t, cols_t, chunk).cpu().numpy()
            for i, col, part in zip(batch, cols, np.split(lp, np.cumsum(counts)[:-1])):
                out[head][i][col - shift] = part  # input column c is the caller's token c - shift


# Positions whose vocabulary rows are formed at once: [chunk, V] float32 logits. On a CPU
# 128 rows measured best (25 MB of GPT-2 logits, mostly in cache for the softmax that
# follows; 128-4096 were within 20%); a GPU wants long launches.
HEAD_CHUNK: dict[str | None, int] = {"cpu": 128, None: 8192}


# How to run a model up to its projection(s) to the vocabulary: model class ->
# fn(model, ids, heads) -> {head: (states [B, T, *], project)}, ``project`` mapping the
# states of some positions to their logits. A class not listed (any Hugging Face model,
# Backpacks) runs its whole forward and ``project`` is the identity on the logits.
HEAD_INPUTS: dict[type, Callable] = {}


def head_inputs(model, ids: torch.Tensor, heads: list[int | None]) -> dict:
    for cls in type(model).__mro__:
        if cls in HEAD_INPUTS:
            return HEAD_INPUTS[cls](model, ids, heads)
    return _whole_forward(model, ids, heads)


def _whole_forward(model, ids: torch.Tensor, heads: list[int | None]) -> dict:
    # Right padding: causal attention already keeps pads (all after the real tokens)
    # from every real token, and positions count from 0 either way, so no attention
    # mask goes in: the plain causal kernel runs (no varlen, no host syncs, one compiled
    # graph) and only real positions are read back (the loss is masked, not attention).
    if len(heads) > 1:
        result = model(input_ids=ids, output_exit_logits=True)
        logits = {FINAL: result.logits, **{int(k): v for k, v in result.exit_logits.items() if int(k) in heads}}
    else:
        logits = {FINAL: model(input_ids=ids).logits}
    return {head: (x, _identity) for head, x in logits.items()}


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def _ilm_head_inputs(model, ids: torch.Tensor, heads: list[int | None]) -> dict:
    """ILMForCausalLM.forward up to its heads (the trunk, then ``output_logits`` and each
    exit head, cut to the real vocabulary), so the heads run only where asked for."""
    exits = [h for h in heads if h is not FINAL]
    h, layers = model.transformer(ids, keep_layers=bool(exits))  # no mask: right padding (above)
    out = {FINAL: (h, model.output_logits)}
    for layer in exits:
        out[layer] = (layers[layer], lambda x, layer=layer: model.exit_head_logits(layer, x))
    return out


HEAD_INPUTS[ILMForCausalLM] = _ilm_head_inputs


def _target_logprobs(states: torch.Tensor, project, ids: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor,
                     chunk: int) -> torch.Tensor:
    """log_softmax(project(states[r, c - 1]))[ids[r, c]] in float32 for each cell (r, c), ``chunk``
    cells at a time: never a [B, T, V] float32 copy, only the rows asked for."""
    out = torch.empty(rows.shape[0], dtype=torch.float32, device=ids.device)
    for start in range(0, rows.shape[0], chunk):
        r, c = rows[start : start + chunk], cols[start : start + chunk]
        logits = project(states[r, c - 1]).float()
        # log_softmax, not logit - logsumexp: one fused pass (the CPU logsumexp makes several)
        out[start : start + chunk] = torch.log_softmax(logits, dim=-1).gather(1, ids[r, c][:, None])[:, 0]
    return out
