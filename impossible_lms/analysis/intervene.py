"""Interchange interventions on subject–verb agreement (Kallini et al. 2024, experiment 3).

For each checkpoint, block ``l`` (its output, 0..L-1) and position ``p``: run
the singular sentence (the *base*) with the plural sentence's (the *source*)
block-``l`` output at ``p`` swapped in at ``p``, and read the next-token
distribution at the last position. The intervention succeeds when the plural
marker 🄿 is more likely than the singular 🅂 (the source's answer); IIA is the
share of pairs where it does, in percent. NoHop models see "the SUBJECT VERB"
only (the reference's first 3 tokens), the other hop languages all 7 tokens.

All positions of a layer run in one forward pass (each pair's base repeated
once per position, each copy patched at its own position), where the
reference ran one pass per (layer, position); :mod:`benchmarks.intervene_throughput`
measures the difference. The swap is a forward hook (:mod:`impossible_lms.models.hooks`),
so every model with GPT-2 blocks works, ours and the published checkpoints
alike; no pyvene/align-transformers dependency.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from impossible_lms.analysis.agreement import NO_HOP_PREFIX, AgreementData, agreement_data
from impossible_lms.analysis.runner import Analysis, check_subject_vocab, percent_row, run_analysis
from impossible_lms.errors import ILMError
from impossible_lms.models.hooks import blocks, patch_block, record_blocks

METRIC = "iia"
SUBSET = "block_output"


@torch.inference_mode()
def interchange_wins(model, base: Sequence[Sequence[int]], source: Sequence[Sequence[int]],
                     base_token: int, source_token: int, batch_rows: int = 512) -> np.ndarray:
    """``wins[l, p, i]``: after swapping source ``i``'s block-``l`` output at ``p`` into base ``i``,
    the last position prefers ``source_token`` over ``base_token``. Shape [layers, positions, pairs]."""
    if len(base) != len(source):
        raise ILMError(f"{len(base)} base but {len(source)} source sequences")
    n = len(base)
    if n == 0:
        raise ILMError("no intervention pairs")
    lengths = {len(s) for s in base} | {len(s) for s in source}
    if len(lengths) != 1:
        raise ILMError(f"interventions need base and source sequences of one length, got {sorted(lengths)}")
    (width,) = lengths
    layers = list(range(len(blocks(model))))
    device = next(model.parameters()).device
    wins = np.zeros((len(layers), width, n), dtype=bool)
    pairs_per_batch = max(1, batch_rows // width)
    positions = torch.arange(width, device=device)
    for start in range(0, n, pairs_per_batch):
        stop = min(n, start + pairs_per_batch)
        b = torch.tensor(base[start:stop], dtype=torch.long, device=device)
        s = torch.tensor(source[start:stop], dtype=torch.long, device=device)
        with record_blocks(model, layers) as states:
            model(input_ids=s)
        k = stop - start
        repeated = b.repeat_interleave(width, dim=0)  # row i*width + p: pair i patched at p
        rows = torch.arange(k * width, device=device)
        at = positions.repeat(k)
        pair = torch.arange(k, device=device).repeat_interleave(width)
        for layer in layers:
            with patch_block(model, layer, rows, at, states[layer][pair, at]):
                logits = model(input_ids=repeated).logits[:, -1].float()
            won = (logits[:, source_token] > logits[:, base_token]).view(k, width)
            wins[layer, :, start:stop] = won.T.cpu().numpy()
    return wins


def iia_rows(wins: np.ndarray, seed: int = 0) -> list[dict]:
    """One ``iia`` row per (layer, position): percent of pairs won, with a bootstrap 95% CI over pairs."""
    rows = []
    for layer in range(wins.shape[0]):
        for position in range(wins.shape[1]):
            rows.append(percent_row(METRIC, wins[layer, position], seed, subset=SUBSET, layer=layer,
                                    position=position))
    return rows


def prefix_tokens(language: str | None, tokens: int | None) -> int | None:
    """How many tokens of each pair the model sees: as given, else 3 for NoHop, else all."""
    if tokens is not None:
        return tokens
    return NO_HOP_PREFIX if language == "no_hop" else None


def intervene(
    subject: str | Path,
    data: str | Path | Sequence[str | Path],
    checkpoints=None,
    results: str | Path | None = None,
    *,
    revisions: Sequence[str] | None = None,
    language: str | None = None,
    tokens: int | None = None,
    max_pairs: int | None = None,
    split: str = "test_affected",
    seed: int | None = None,
    batch_rows: int = 512,
    dtype: str = "float32",
    device: str = "auto",
    show_progress: bool = False,
) -> pd.DataFrame:
    """IIA per checkpoint × layer × position of ``subject`` (run, checkpoint folder or hub id).

    ``data``: an agreement pairs file, the no_hop and word_hop dataset folders,
    or one hop dataset folder with those two beside it. ``language`` (default:
    the run's) decides the prefix (NoHop: 3 tokens); ``tokens`` overrides it.
    ``max_pairs`` keeps the first N pairs (in corpus order); ``split`` is the
    split the pairs come from (the reference's test_affected). ``seed`` (default
    the run's, else 0) seeds the bootstrap. Rows go to ``results`` and are
    skipped there on the next call.
    """
    # What the user named is checked before the pairs are read (the slow part, and the one whose
    # "no pairs" message would otherwise answer a misspelt run, checkpoint or language).
    from impossible_lms.evaluation.subjects import resolve_subject
    from perturbations import get_language

    resolve_subject(subject, checkpoints, list(revisions or []))
    if language is not None and not get_language(language).marks_agreement:
        raise ILMError(f"--language {language}: interventions need a language that marks agreement "
                       f"(no_hop, token_hop, word_hop)")
    if tokens is not None and tokens < 1:
        raise ILMError(f"tokens must be at least 1, got {tokens}")
    pairs = agreement_data(data, split)
    if max_pairs is not None:
        if max_pairs < 1:
            raise ILMError("max_pairs must be positive")
        pairs = AgreementData(pairs.singular[:max_pairs], pairs.plural[:max_pairs], pairs.singular_marker,
                              pairs.plural_marker, pairs.tokenizer_fingerprint, pairs.source)
    if len(pairs) == 0:
        where = ", ".join(map(str, data)) if isinstance(data, (list, tuple)) else str(data)
        raise ILMError(f"no agreement pairs in {where} (no 'the SUBJECT VERB w w w w' sentences whose subject "
                       f"pluralises in its {split} split)")
    if tokens is not None and tokens > len(pairs.singular[0]):
        raise ILMError(f"tokens must be at most {len(pairs.singular[0])} (the pairs' length), got {tokens}")
    if batch_rows < 1:
        raise ILMError("batch_rows must be positive")

    def prepare(subj):
        _check_tokenizer(subj, pairs)
        lang = language or subj.language
        used = pairs.truncated(prefix_tokens(lang, tokens))
        run_seed = seed if seed is not None else (subj.seed if subj.seed is not None else 0)
        settings = {"tokens": len(used.singular[0]), "seed": run_seed, "language": lang}
        needed = max(max(map(max, used.singular)), max(map(max, used.plural)),
                     used.singular_marker, used.plural_marker) + 1

        def compute(model, target) -> list[dict]:
            check_subject_vocab(model, needed, target)
            wins = interchange_wins(model, used.singular, used.plural, used.singular_marker, used.plural_marker,
                                    batch_rows)
            return iia_rows(wins, run_seed)

        return Analysis(METRIC, "agreement", used.fingerprint, settings), compute

    return run_analysis(subject, prepare, checkpoints, revisions, results, dtype, device, show_progress)


def _check_tokenizer(subj, pairs: AgreementData) -> None:
    """The pairs' ids must be the run's ids: same tokenizer as its training data (when both are known)."""
    if subj.train_data is None or pairs.tokenizer_fingerprint is None:
        return
    if not (Path(subj.train_data) / "manifest.json").is_file():
        return
    from impossible_lms.data import load_manifest

    trained = load_manifest(subj.train_data)
    if trained.tokenizer.get("fingerprint") != pairs.tokenizer_fingerprint:
        raise ILMError(f"the agreement pairs were tokenised differently from {subj.name}'s training data "
                       f"({trained.language}); build them from datasets of the same tokenizer")
