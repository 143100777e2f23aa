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
- Log-probs are taken in float32 whatever the model's dtype, over the full
  vocabulary, but only for the cells asked for (:func:`score_cells`: a context
  and a target; :func:`score_sequences` asks for every token, or those its
  ``needed`` masks keep), never at pads, a chunk of positions at a time: with a
  large vocabulary the projection and its softmax are most of the cost, and a
  [B, T, V] float32 tensor is never made. Our models run their trunk and then
  the head(s) at those positions only (``HEAD_INPUTS``), and on a CPU the
  logsumexp is summed over blocks of words that stay in cache
  (:class:`HeadChunks`); any other model runs its whole forward and the
  positions are picked from its logits.
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
import itertools
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

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
    if needed is not None and (len(needed) != len(sequences) or any(
            m is not None and len(m) != len(s) for m, s in zip(needed, sequences))):
        raise ILMError("needed must hold one mask (or None) per sequence, as long as the sequence")
    cells = []
    for k, seq in enumerate(sequences):
        mask = None if needed is None else needed[k]
        positions = np.arange(len(seq)) if mask is None else np.flatnonzero(np.asarray(mask, dtype=bool))
        cells.append(Cells(positions, np.asarray(seq, dtype=np.int64)[positions]))
    scored = score_cells(model, sequences, cells, options, on_batch)
    out = {head: [np.full(len(s), np.nan, np.float32) for s in sequences] for head in scored}
    for head, arrays in scored.items():
        for k, values in enumerate(arrays):
            out[head][k][cells[k].positions] = values
    return out


@dataclass(frozen=True)
class Cells:
    """The log-probs asked of one sequence: log p(``targets[j]`` | sequence[:``positions[j]``]).

    A target need not be the sequence's own token there, and a position may equal the
    sequence's length (what follows the whole of it): any continuation of a context is
    read off the one pass over it.
    """

    positions: np.ndarray  # int, 0 <= p <= len(sequence)
    targets: np.ndarray  # int token ids, one per position

    def __post_init__(self):  # lists are welcome too
        object.__setattr__(self, "positions", np.asarray(self.positions, dtype=np.int64).reshape(-1))
        object.__setattr__(self, "targets", np.asarray(self.targets, dtype=np.int64).reshape(-1))


@torch.inference_mode()
def score_cells(
    model, sequences: Sequence[Sequence[int]], cells: Sequence[Cells], options: ScoreOptions = ScoreOptions(),
    on_batch=None,
) -> dict[int | None, list[np.ndarray]]:
    """Per head, per sequence, the log-probs (nats) of its :class:`Cells`, aligned with them.

    NaN where a cell cannot be scored: position 0 without ``condition_on_eos`` (nothing to
    predict it from), and every cell of a sequence skipped as too long.
    """
    if options.condition_on_eos and options.eos_id is None:
        raise ILMError("condition_on_eos needs the data's EOS id")
    if len(cells) != len(sequences) or any(
            len(c.positions) != len(c.targets) or (len(c.positions) and not 0 <= c.positions.min() <= c.positions.max()
                                                  <= len(s)) for c, s in zip(cells, sequences)):
        raise ILMError("cells must give each sequence positions within it (or just after it), one target each")
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
    out: dict[int | None, list[np.ndarray]] = {h: [np.full(len(c.positions), np.nan, np.float32) for c in cells]
                                               for h in heads}
    device = next(model.parameters()).device
    lengths = [len(s) for s in inputs]
    skipped = set(too_long)
    keep = [i for i in range(len(inputs)) if i not in skipped]
    chunks = HEAD_CHUNKS.get(device.type, HEAD_CHUNKS[None])
    for sub in token_batches([lengths[i] for i in keep], options.batch_tokens):
        batch = [keep[j] for j in sub]
        scored = _score_batch(model, [inputs[i] for i in batch], [cells[i] for i in batch], len(prefix), heads,
                              options.dtype, chunks, device)
        for head, arrays in scored.items():
            for i, values in zip(batch, arrays):
                out[head][i] = values
        if on_batch is not None:
            on_batch(sum(lengths[i] for i in batch))
    return out


def _score_batch(model, inputs: list[list[int]], cells: list[Cells], shift: int, heads, dtype: str,
                 chunks: "HeadChunks", device) -> dict[int | None, list[np.ndarray]]:
    """One batch's log-probs: per head, one array per sequence aligned with its cells ({} when
    nothing in it can be scored).

    Cell (p, t) of a sequence reads the state at input column p + ``shift`` - 1, the last of
    its context (``shift``: the EOS prefix's length); without the prefix position 0 has
    none and stays NaN. Pads (right of each row's length) never go through the head.
    """
    lengths = np.fromiter(map(len, inputs), dtype=np.int64, count=len(inputs))
    grid = np.zeros((len(inputs), int(lengths.max())), dtype=np.int64)
    grid[np.arange(grid.shape[1]) < lengths[:, None]] = np.fromiter(
        itertools.chain.from_iterable(inputs), dtype=np.int64, count=int(lengths.sum()))  # row by row
    counts = np.fromiter((len(c.positions) for c in cells), dtype=np.int64, count=len(cells))
    at = np.concatenate([c.positions for c in cells]) + shift - 1
    scorable = at >= 0
    if not scorable.any():  # nothing is asked for in this batch
        return {}
    ids = torch.from_numpy(grid).to(device)
    rows = torch.from_numpy(np.repeat(np.arange(len(inputs)), counts)[scorable]).to(device)
    targets = torch.from_numpy(np.concatenate([c.targets for c in cells])[scorable]).to(device)
    states_at = torch.from_numpy(at[scorable]).to(device)
    out = {}
    with precision(model, dtype):
        for head, (states, project) in head_inputs(model, ids, heads).items():
            values = np.full(len(at), np.nan, np.float32)
            values[scorable] = _target_logprobs(states, project, rows, states_at, targets, chunks).cpu().numpy()
            out[head] = np.split(values, np.cumsum(counts)[:-1])
    return out


@dataclass(frozen=True)
class HeadChunks:
    """How the head's log-probs are computed on one kind of device.

    ``rows`` positions go through the head at once. ``vocab`` None forms their
    whole [rows, V] float32 logits and takes ``log_softmax`` (a GPU wants long
    launches); a number sums the softmax's exp over blocks of that many words
    (:func:`_blocked_target_logprobs`), so each block's logits stay in cache for
    the reductions that follow and the [rows, V] tensor is never written: on a CPU
    the log-softmax of a 50k vocabulary was a quarter of the head's time, and the
    blocked form brings the head to within a few percent of its matrix product.
    """

    rows: int
    vocab: int | None = None


# Measured on 2 cores: 2048 rows x 1024 words (8 MB of logits) was best of 256-2048 rows x
# 512-4096 words; all from 512 rows up were within 10%.
HEAD_CHUNKS: dict[str | None, HeadChunks] = {"cpu": HeadChunks(rows=2048, vocab=1024), None: HeadChunks(rows=8192)}


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


@dataclass(frozen=True)
class LinearHead:
    """A projection to the vocabulary that is one matrix: logits = prepare(states) @ weight.T.

    Under autocast it runs in float32, as :func:`fp32_heads` runs the heads; otherwise in
    the model's own dtype. Scoring may take its log-probs without forming the logits
    (:class:`HeadChunks`).
    """

    weight: torch.Tensor  # [V, C]: the real vocabulary's rows only
    prepare: Callable[[torch.Tensor], torch.Tensor] = _identity  # e.g. an exit head's LayerNorm

    def inputs(self, states: torch.Tensor) -> torch.Tensor:
        """What the matrix multiplies: ``prepare(states)``, in float32 under autocast."""
        if not torch.is_autocast_enabled(states.device.type):
            return self.prepare(states)
        with torch.autocast(states.device.type, enabled=False):
            return self.prepare(states.float())

    def logits(self, x: torch.Tensor, words: slice = slice(None)) -> torch.Tensor:
        """The logits of ``words`` (all by default) from ``inputs``, in ``x``'s dtype."""
        weight = self.weight[words].to(x.dtype)
        if not torch.is_autocast_enabled(x.device.type):  # called per block of words: no context to enter
            return F.linear(x, weight)
        with torch.autocast(x.device.type, enabled=False):
            return F.linear(x, weight)

    def __call__(self, states: torch.Tensor) -> torch.Tensor:
        return self.logits(self.inputs(states))


def _ilm_head_inputs(model, ids: torch.Tensor, heads: list[int | None]) -> dict:
    """ILMForCausalLM.forward up to its heads (the trunk, then the output embeddings and each
    exit head, cut to the real vocabulary), so the heads run only where asked for."""
    exits = [h for h in heads if h is not FINAL]
    h, layers = model.transformer(ids, keep_layers=bool(exits))  # no mask: right padding (above)
    vocab = model.config.vocab_size
    out = {FINAL: (h, LinearHead(model.output_weight()[:vocab]))}
    for layer in exits:
        head = model.exits[str(layer)]
        out[layer] = (layers[layer], LinearHead(head.proj.weight[:vocab], head.norm(model.transformer.ln_f)))
    return out


HEAD_INPUTS[ILMForCausalLM] = _ilm_head_inputs


def _target_logprobs(states: torch.Tensor, project, rows: torch.Tensor, at: torch.Tensor, targets: torch.Tensor,
                     chunks: HeadChunks) -> torch.Tensor:
    """log_softmax(project(states[r, a]))[t] in float32 for each (r, a, t) of (rows, at, targets),
    ``chunks.rows`` at a time: never a [B, T, V] float32 copy, only the rows asked for."""
    out = torch.empty(rows.shape[0], dtype=torch.float32, device=states.device)
    for start in range(0, rows.shape[0], chunks.rows):
        cut = slice(start, start + chunks.rows)
        picked, target = states[rows[cut], at[cut]], targets[cut]
        if isinstance(project, LinearHead):
            x = project.inputs(picked)
            if chunks.vocab is not None and x.dtype == torch.float32:
                out[cut] = _blocked_target_logprobs(project, x, target, chunks.vocab)
                continue
            logits = project.logits(x).float()
        else:
            logits = project(picked).float()
        # log_softmax, not logit - logsumexp: one fused pass (the CPU logsumexp makes several)
        out[cut] = torch.log_softmax(logits, dim=-1).gather(1, target[:, None])[:, 0]
    return out


def _blocked_target_logprobs(head: LinearHead, x: torch.Tensor, targets: torch.Tensor, block: int) -> torch.Tensor:
    """log_softmax(head.logits(x))[i, targets[i]] for float32 ``x``, the logsumexp summed
    over ``block`` words at a time.

    Each block's logits are formed, turned into exp(logit - shift) and summed, and
    dropped, so they never leave the cache. The shift is the first block's row maximum:
    exp stays finite while no logit exceeds it by more than 88 (float32's range), and
    a row where one does (its sum overflows) is taken again from its full logits, so
    the result is exact either way. A shift below the true maximum loses nothing: the
    sum's precision is relative, and it holds the first block's exp(0) = 1, beside which
    anything that underflows is negligible. The target's logit is its own dot product.
    Equal to the log-softmax of the full logits to float32 rounding.
    """
    shift = total = None
    for start in range(0, head.weight.shape[0], block):
        logits = head.logits(x, slice(start, start + block))
        if shift is None:
            shift = logits.amax(dim=1, keepdim=True)
        part = logits.sub_(shift).exp_().sum(dim=1)
        total = part if total is None else total.add_(part)
    logsumexp = shift[:, 0] + total.log()
    overflowed = torch.isinf(logsumexp)
    if overflowed.any():
        logsumexp[overflowed] = torch.logsumexp(head.logits(x[overflowed]).float(), dim=1)
    return (x * head.weight[targets].to(x.dtype)).sum(dim=1) - logsumexp
