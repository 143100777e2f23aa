"""Text generation (plain greedy or auto-contrastive between exits) and Backpack sense tables.

These are the library side of ``ilm generate`` and ``ilm senses``. A checkpoint
may be a checkpoint folder, a run folder (its latest ``checkpoint-<step>``) or
anything :func:`load_model` reads. The tokenizer is ``tokenizer=`` or found
beside the checkpoint: ``<ckpt>/tokenizer``, ``<run>/tokenizer``, or the
``tokenizer/`` of the dataset named by ``run.json``'s ``"data"``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from impossible_lms.errors import ILMError
from impossible_lms.models.loading import load_model

_STEP = re.compile(r"^checkpoint-(\d+)$")


def resolve_checkpoint(path: str | Path) -> str | Path:
    """A run folder → its latest complete checkpoint; anything else unchanged."""
    p = Path(path)
    if p.is_dir() and not (p / "config.json").is_file():
        steps = sorted((int(m.group(1)), c) for c in p.iterdir() if (m := _STEP.match(c.name)) and c.is_dir())
        if steps:
            return steps[-1][1]
    return path


def find_tokenizer(checkpoint: str | Path, tokenizer: str | Path | None = None) -> Path | str:
    """The tokenizer to use with ``checkpoint`` (see the module doc); ILMError listing where it looked."""
    if tokenizer is not None:
        return tokenizer
    ckpt = Path(checkpoint)
    looked: list[Path] = []
    for folder in (ckpt, *list(ckpt.parents)[:2]):
        looked.append(folder / "tokenizer")
        if (folder / "tokenizer").is_dir():
            return folder / "tokenizer"
        if (folder / "run.json").is_file():
            from impossible_lms.evaluation.subjects import read_run_json

            data = read_run_json(folder).get("data")  # garbage there is one line naming the file
            if data:  # training records the dataset's resolved path
                looked.append(Path(data) / "tokenizer")
                if (Path(data) / "tokenizer").is_dir():
                    return Path(data) / "tokenizer"
    if not ckpt.exists():  # a hub id: its own tokenizer, from the local cache
        return str(checkpoint)
    raise ILMError(f"no tokenizer found for {checkpoint} (looked in {', '.join(map(str, looked))}); pass --tokenizer")


def load_with_tokenizer(checkpoint, tokenizer=None, dtype=None, device=None) -> tuple[Any, Any]:
    from impossible_lms.tokenizer import load_tokenizer

    ckpt = resolve_checkpoint(checkpoint)
    model = load_model(ckpt, dtype=dtype, device=device)
    tok = load_tokenizer(find_tokenizer(ckpt, tokenizer))
    if tok.vocab_size > model.config.vocab_size:
        raise ILMError(f"tokenizer has {tok.vocab_size} ids but the model only {model.config.vocab_size}; "
                       "wrong --tokenizer?")
    return model, tok


# ---------------------------------------------------------------- decoding


def contrastive_scores(final_logits: torch.Tensor, amateur_logits: torch.Tensor, alpha: float = 0.1,
                       minimum_candidates: int = 1) -> torch.Tensor:
    """Auto-contrastive log-probabilities as Gera et al. (2023) compute them (IBM's
    auto-contrastive-generation): a distribution, so sampling and scoring agree with theirs.

    Plausible tokens are those with p_expert ≥ α·max p_expert (at least ``minimum_candidates`` of
    them). Among them the expert's probability mass is shared out by softmax(log p_expert −
    log p_amateur); every other token keeps its expert probability. Greedy decoding picks the
    plausible token with the largest contrast."""
    final = final_logits.float().log_softmax(-1)
    amateur = amateur_logits.float().log_softmax(-1)
    threshold = final.max(-1, keepdim=True).values + torch.log(torch.tensor(alpha))
    kth = final.topk(minimum_candidates, dim=-1).values[..., -1:]
    plausible = final >= torch.minimum(threshold, kth)
    mass = torch.logsumexp(final.masked_fill(~plausible, float("-inf")), dim=-1, keepdim=True)
    shared = (final - amateur).masked_fill(~plausible, float("-inf")).log_softmax(-1) + mass
    return torch.where(plausible, shared, final)


FINAL = "final"  # the LM head, always (an exit head on the top layer is the number n_layer)


def parse_contrast(spec: str, model) -> tuple[int | str, int | str]:
    """``"final,4"`` / ``"12,4"`` / ``"auto"`` → (expert, amateur): ``"final"`` for the LM head, else an
    exit layer's number. A number that names no exit head but is the top layer means the LM head."""
    n, exits = getattr(model.config, "num_hidden_layers", 0), list(getattr(model.config, "exit_layers", None) or [])
    if not exits:
        raise ILMError("--contrast needs a model with exit heads (exit_layers); this one has none")
    if spec == "auto":  # the exit nearest the middle, contrasted with the LM head
        return FINAL, min(exits, key=lambda l: (abs(l - n / 2), l))
    parts = [p.strip() for p in spec.split(",")]
    if len(parts) != 2:
        raise ILMError(f"--contrast {spec!r}: expected FINAL,EXIT such as final,{exits[0]}")
    heads: list[int | str] = []
    for p in parts:
        if p == FINAL:
            heads.append(FINAL)
        elif p.isdigit() and int(p) in exits:
            heads.append(int(p))
        elif p.isdigit() and int(p) == n:
            heads.append(FINAL)
        else:
            raise ILMError(f"--contrast: layer {p!r} has no head; choose from final, {', '.join(map(str, exits))}")
    return heads[0], heads[1]


@dataclass
class Generation:
    prompt: str
    text: str  # the continuation only
    ids: list[int]  # the new token ids


@torch.no_grad()
def generate_ids(model, input_ids: torch.Tensor, max_new_tokens: int,
                 contrast: tuple[int | str, int | str] | None = None,
                 alpha: float = 0.1, eos_id: int | None = None) -> list[int]:
    """Greedy continuation of one prompt; with ``contrast`` the auto-contrastive score picks tokens."""
    if contrast is None:
        out = model.generate(input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=max_new_tokens,
                             do_sample=False, eos_token_id=eos_id, pad_token_id=eos_id if eos_id is not None else 0)
        return out[0, input_ids.shape[1]:].tolist()
    ids, new = input_ids, []
    for _ in range(max_new_tokens):
        out = model(ids, output_exit_logits=True)
        pick = {**{l: x[:, -1] for l, x in (out.exit_logits or {}).items()}, FINAL: out.logits[:, -1]}
        token = int(contrastive_scores(pick[contrast[0]], pick[contrast[1]], alpha).argmax(-1))
        new.append(token)
        if token == eos_id:
            break
        ids = torch.cat((ids, torch.tensor([[token]], device=ids.device)), dim=1)
    return new


def generate_text(checkpoint, prompt: str, max_new_tokens: int = 20, contrast: str | None = None,
                  alpha: float = 0.1, tokenizer=None, dtype=None, device=None) -> Generation:
    """``ilm generate``: greedy (or auto-contrastive) continuation of ``prompt``."""
    if max_new_tokens < 1:
        raise ILMError("--max-new-tokens must be at least 1")
    if not 0 < alpha <= 1:
        raise ILMError("--alpha must be in (0, 1]")
    model, tok = load_with_tokenizer(checkpoint, tokenizer, dtype, device)
    prompt_ids = tok.encode(prompt)
    if not prompt_ids:
        raise ILMError("the prompt is empty after tokenisation")
    layers = parse_contrast(contrast, model) if contrast else None
    x = torch.tensor([prompt_ids], device=model.device)
    new = generate_ids(model, x, max_new_tokens, layers, alpha, getattr(tok, "eos_id", None))
    return Generation(prompt, tok.decode(new), new)


# ---------------------------------------------------------------- senses


def word_token(tok, word: str) -> int:
    """The single token id of ``word`` (GPT-2 style with its leading space first)."""
    for text in (" " + word, word):
        ids = tok.encode(text)
        if len(ids) == 1:
            return ids[0]
    pieces = [tok.decode([i]) for i in tok.encode(" " + word)]
    raise ILMError(f"{word!r} is {len(pieces)} tokens ({' | '.join(pieces)}); senses belong to single tokens: "
                   "pass one of them")


def sense_table(checkpoint, word: str, top: int = 10, tokenizer=None, bottom: bool = False) -> list[list[str]]:
    """``ilm senses``: per sense of ``word``, the ``top`` tokens its vector predicts most (least)."""
    from impossible_lms.models.backpack import BackpackForCausalLM

    if top < 1:
        raise ILMError("--top must be at least 1")
    model, tok = load_with_tokenizer(checkpoint, tokenizer)
    if not isinstance(model, BackpackForCausalLM):
        raise ILMError(f"{checkpoint} is a {type(model).__name__}, not a Backpack: it has no senses")
    ids = model.sense_top_tokens(word_token(tok, word), top=min(top, model.config.vocab_size), bottom=bottom)
    return [[tok.decode([i]) for i in row] for row in ids]
