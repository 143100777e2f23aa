"""Tree projections (Murty et al. 2023, as adapted in the reference's tree_projections/).

How tree-like is a model's composition? For every span of a sentence, compare the span's
vector computed with the whole sentence in view to the one computed when, from a chosen layer
on, the span's tokens may attend only inside the span (span contextual invariance, SCI):

    chart[i, j] = cos( Σ_{t in span} h_t(restricted),  Σ_{t in span} h_t(full) )

summed over the span's tokens at one layer (the reference's ``sim_fn="cosine"``: a similarity,
1 = the context made no difference; ``1 - chart`` is the SCI distance). The restriction is
:func:`impossible_lms.models.hooks.restrict_attention` on blocks ``start_layer``.. (the reference's
``st_threshold=4``): earlier blocks see the whole sentence; the vectors are hidden state
``read_layer`` (the reference's ``layer_id=11`` of 12 blocks: block 10's output; by default the
model's last block but one).

The projection is the binary tree maximising the chart values of its children summed over its
internal nodes (Algorithm 1's dynamic programme; ties go to the leftmost split, as ``np.argmax``).
Its **tree score** subtracts at each internal node the value of a uniformly random split (the
reference's ``normalize=True`` baseline, here its expectation, the mean over the node's splits,
rather than one unseeded draw) and divides by the number of leaves (get_tree_scores.py).
**Parse agreement** is Murty et al.'s bracketing score against gold trees: every internal node of
the projection (the whole sentence included) against every gold constituent of two or more
words, precision and recall summed over the corpus, F1 from them (percent): ``parse_f1``. The
field's unlabelled F1 leaves out the trivial whole-sentence bracket: ``parse_f1_nontrivial`` (and
its precision and recall).

Causal models: a span's tokens see only tokens to their left, so the span [i, j] restricts only
the left edge, and one forward per span start serves every span that starts there (n forwards
per sentence of n leaves, not n²/2). Without left context, spans starting at the first leaf are
exactly invariant (similarity 1), so the projection of such a sentence is always left-branching
(its first split is never scored): the token pass keeps it, as the reference does; the word pass
puts EOS (the reference's BOS) before each sentence as context outside every span, so every span's
left edge is tested and parse agreement can move.

Two units of leaves:

- ``token`` (the reference's get_tree_scores.py): the language's own ``test_affected``
  sentences, every token a leaf, ``sentences`` per genre file drawn as its perplexities are
  (one ``default_rng(seed)`` stream over the sorted genre files), sequences under 1024 tokens.
  Any language; tree score only (there are no gold trees over tokens).
- ``word`` (Murty et al.'s subword handling): sentences with gold trees (the synthetic
  grammar's constituents by default, a bracketed Penn-style file otherwise), words as leaves, a
  word's vector the sum of its tokens (a token belongs to the word holding its last character, as
  the edge probe aligns them). Only where the language keeps word order: hops (their unaffected
  test sentences) and the Reverse family (NoReverse's, marker removed), as edge probing;
  ``sentences`` drawn in all with ``default_rng(seed)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from impossible_lms.analysis.probe import tree_constituents
from impossible_lms.analysis.runner import Analysis, check_subject_vocab, progress_info, run_analysis
from impossible_lms.errors import ILMError
from impossible_lms.io import fingerprint

METRIC = "tree_score"
PARSE_METRICS = ("parse_f1", "parse_precision", "parse_recall")
# The field's unlabelled F1 leaves the trivial spans out: the whole-sentence bracket (always right
# when the gold tree has it) besides single words (never brackets here). Both are reported, named.
NONTRIVIAL = "_nontrivial"
UNITS = ("word", "token")
START_LAYER = 4  # the reference's st_threshold
FILE_SAMPLE_SIZE = 1000  # token unit: sentences per genre file (get_tree_scores.py)
MAX_SEQ_LEN = 1024  # token unit: sequences shorter than this (get_tree_scores.py)
WORD_SENTENCES = 200  # word unit: sentences in all (small: n forwards per sentence)

Bracket = tuple[int, int]  # (first leaf, last leaf), inclusive


@dataclass(frozen=True)
class Stimulus:
    ids: tuple[int, ...]
    leaves: tuple[tuple[int, int], ...]  # each leaf's token range [start, end), contiguous; tokens before
    # the first leaf (EOS in the word pass) are context outside every span
    gold: frozenset[Bracket] | None = None  # gold constituents of >= 2 leaves; None = no gold tree


# ---------------------------------------------------------------- chart


def layers_used(n_blocks: int, start_layer: int | None = None, read_layer: int | None = None) -> tuple[int, int]:
    """(first restricted block, hidden-state index read). Defaults: block 4 clipped below the read
    layer; hidden state ``n_blocks - 1`` (0 = embeddings, k = block k-1's output)."""
    read = max(1, n_blocks - 1) if read_layer is None else read_layer
    if not 1 <= read <= n_blocks:
        raise ILMError(f"read layer {read} outside the model's hidden states 1..{n_blocks}")
    start = min(START_LAYER, read - 1) if start_layer is None else start_layer
    if not 0 <= start < read:
        raise ILMError(f"the restriction must start at a block below the read layer {read}: 0..{read - 1}, "
                       f"got {start}")
    return start, read


def sci_charts(model, stimuli: Sequence[Stimulus], start_layer: int, read_layer: int,
               batch: int = 64, report: Callable[[int, int], None] | None = None) -> list[np.ndarray]:
    """One ``[n, n]`` chart per stimulus: ``chart[i, j]`` (i <= j) the cosine similarity of leaves
    i..j's summed vectors restricted vs in full context; nan below the diagonal.

    Rows of equal token length share a batch (no padding). Row (stimulus, leaf i) runs with keys
    before leaf i's first token masked from ``start_layer`` on; row (stimulus, -1) (nothing masked)
    is the full context, so each chunk runs those rows first (without context before leaf 0 it is
    leaf 0's row too). ``report(done, total)``: after each
    batch, the rows run so far."""
    import torch

    from impossible_lms.models.hooks import record_blocks, restrict_attention

    device = next(model.parameters()).device
    trunk = model.transformer  # the blocks without the vocabulary head: only a block's output is read
    charts = [np.full((len(s.leaves), len(s.leaves)), np.nan) for s in stimuli]
    by_len: dict[int, list[int]] = {}
    for n, s in enumerate(stimuli):
        by_len.setdefault(len(s.ids), []).append(n)
    budget = 4 * batch  # rows per chunk: bounds the full-context sums kept for a chunk
    total, done = sum(len(s.leaves) + 1 - _first_masked(s) for s in stimuli), 0
    with torch.inference_mode():
        for group in by_len.values():
            chunks, current, rows_in = [], [], 0
            for n in group:
                if current and rows_in + len(stimuli[n].leaves) > budget:
                    chunks.append(current)
                    current, rows_in = [], 0
                current.append(n)
                rows_in += len(stimuli[n].leaves)
            chunks.append(current)
            for chunk in chunks:
                rows = [(n, -1) for n in chunk] + [(n, i) for n in chunk
                                                   for i in range(_first_masked(stimuli[n]), len(stimuli[n].leaves))]
                full: dict[int, torch.Tensor] = {}  # stimulus -> [T+1, d] float64 cumulative sums
                for at in range(0, len(rows), batch):
                    part = rows[at:at + batch]
                    ids = torch.tensor([stimuli[n].ids for n, _ in part], dtype=torch.long, device=device)
                    T = ids.shape[1]
                    starts = torch.tensor([0 if i < 0 else stimuli[n].leaves[i][0] for n, i in part], device=device)
                    allowed = (torch.arange(T, device=device)[None, :] >= starts[:, None])[:, None, None, :]
                    with record_blocks(model, [read_layer - 1]) as states, \
                            restrict_attention(model, start_layer, allowed):
                        trunk(ids)
                    h = states[read_layer - 1].double()
                    cum = torch.cat((torch.zeros_like(h[:, :1]), h.cumsum(1)), dim=1)
                    for r, (n, i) in enumerate(part):
                        s = stimuli[n]
                        if i < 0:
                            full[n] = cum[r]
                            if _first_masked(s) == 0:
                                continue  # context before leaf 0: its own row comes later
                            i = 0  # no context before leaf 0: the full row is leaf 0's row
                        a = s.leaves[i][0]
                        ends = torch.tensor([e for _, e in s.leaves[i:]], device=device)
                        inner = cum[r, ends] - cum[r, a]
                        outer = full[n][ends] - full[n][a]
                        charts[n][i, i:] = _cosine(inner, outer).cpu().numpy()
                    done += len(part)
                    if report is not None:
                        report(done, total)
    return charts


def _first_masked(s: Stimulus) -> int:
    """The first leaf whose row masks something: 1 when leaf 0 starts the sequence (its row is the
    full context), else 0 (context tokens come before it)."""
    return 1 if s.leaves[0][0] == 0 else 0


def _cosine(x, y):
    """Row-wise cosine similarity (1 where both vectors are zero: nothing changed)."""
    import torch

    dot = (x * y).sum(-1)
    norm = x.norm(dim=-1) * y.norm(dim=-1)
    return torch.where(norm > 0, dot / norm.clamp(min=1e-300), (x == y).all(-1).to(dot.dtype))


# ---------------------------------------------------------------- projection


@dataclass(frozen=True)
class Projection:
    tree: object  # nested pairs of leaf indices: ((0, 1), 2)
    brackets: frozenset[Bracket]  # every internal node, the root included
    value: float  # Σ over internal nodes of the children's chart values (what the DP maximises)
    baseline: float  # Σ over the same nodes of the mean over their splits (random-split expectation)

    @property
    def tree_score(self) -> float:
        """(value − baseline) / leaves: the reference's normalised, length-divided score."""
        n = max(b for _, b in self.brackets) + 1 if self.brackets else 1
        return (self.value - self.baseline) / n


def project(chart: np.ndarray) -> Projection:
    """The binary tree over ``chart``'s leaves maximising Σ_nodes chart(left) + chart(right)."""
    n = len(chart)
    best = np.zeros((n, n))
    split = np.zeros((n, n), dtype=np.int64)
    for length in range(2, n + 1):
        for i in range(n - length + 1):
            j = i + length - 1
            ks = np.arange(i, j)
            vals = chart[i, ks] + chart[ks + 1, j] + best[i, ks] + best[ks + 1, j]
            k = int(np.argmax(vals))  # first maximum: the reference's np.argmax tie rule
            best[i, j], split[i, j] = vals[k], i + k
    brackets: set[Bracket] = set()
    baseline = 0.0

    def build(i: int, j: int):
        nonlocal baseline
        if i == j:
            return i
        k = int(split[i, j])
        ks = np.arange(i, j)
        baseline += float(np.mean(chart[i, ks] + chart[ks + 1, j]))
        brackets.add((i, j))
        return build(i, k), build(k + 1, j)

    tree = build(0, n - 1)
    return Projection(tree, frozenset(brackets), float(best[0, n - 1]) if n > 1 else 0.0, baseline)


def parse_scores(predicted: Sequence[frozenset[Bracket]], gold: Sequence[frozenset[Bracket]]) -> dict[str, float]:
    """Corpus-level bracketing precision, recall and F1 in percent (Murty et al.'s get_parsing_accuracy)."""
    hit = sum(len(p & g) for p, g in zip(predicted, gold))
    n_pred, n_gold = sum(len(p) for p in predicted), sum(len(g) for g in gold)
    precision = hit / n_pred if n_pred else 0.0
    recall = hit / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"parse_precision": 100 * precision, "parse_recall": 100 * recall, "parse_f1": 100 * f1}


def _bootstrap_parse(predicted, gold, seed: int, samples: int = 1000) -> dict[str, tuple[float, float]]:
    """Percentile intervals of the corpus scores over sentences resampled with replacement."""
    from impossible_lms.evaluation.stats import BOOTSTRAP_SAMPLES

    samples = min(samples, BOOTSTRAP_SAMPLES)
    hits = np.array([len(p & g) for p, g in zip(predicted, gold)], dtype=np.float64)
    n_pred = np.array([len(p) for p in predicted], dtype=np.float64)
    n_gold = np.array([len(g) for g in gold], dtype=np.float64)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(hits), size=(samples, len(hits)))
    h, p, g = hits[draws].sum(1), n_pred[draws].sum(1), n_gold[draws].sum(1)
    prec = np.divide(h, p, out=np.zeros_like(h), where=p > 0)
    rec = np.divide(h, g, out=np.zeros_like(h), where=g > 0)
    f1 = np.divide(2 * prec * rec, prec + rec, out=np.zeros_like(h), where=prec + rec > 0)
    out = {}
    for name, values in (("parse_precision", prec), ("parse_recall", rec), ("parse_f1", f1)):
        low, high = np.percentile(100 * values, [2.5, 97.5])
        out[name] = (float(low), float(high))
    return out


# ---------------------------------------------------------------- gold trees


def gold_trees(folder: Path, trees: str | Path | None) -> tuple[list[tuple[list[str], list]], set | None]:
    """(words, constituents) of the gold sentences and, for the synthetic grammar, the dataset's
    sentences (ids without markers) they are kept to."""
    from impossible_lms.analysis.probe import _stripped_test_ids, read_trees, synthetic_trees
    from impossible_lms.data import load_manifest

    if trees is None:
        return synthetic_trees(load_manifest(folder)), _stripped_test_ids(folder)
    return read_trees(trees, spans=tree_constituents), None


def word_leaves(words: Sequence[str], tokenizer) -> tuple[tuple[int, ...], tuple[tuple[int, int], ...]] | None:
    """Token ids of the joined words and each word's token range; None when a word gets no token
    of its own (its characters end inside the next word's first token)."""
    from impossible_lms.analysis.probe import join_with_offsets

    text, ranges = join_with_offsets(words)
    enc = tokenizer.backend.encode(text, add_special_tokens=False)
    word_of = np.searchsorted(np.array([a for a, _ in ranges]), [max(end - 1, 0) for _, end in enc.offsets],
                              side="right") - 1
    counts = np.bincount(word_of, minlength=len(words))
    if len(enc.ids) == 0 or (counts == 0).any():
        return None
    ends = np.cumsum(counts)
    return tuple(enc.ids), tuple((int(e - c), int(e)) for c, e in zip(counts, ends))


def word_stimuli(data: str | Path, trees: str | Path | None, sentences: int, seed: int) -> tuple[list[Stimulus], int]:
    """Gold-tree sentences of ``data``'s language (see the module doc), ``sentences`` drawn with
    ``default_rng(seed)`` (0 = all); and how many gold sentences had a word with no token."""
    from impossible_lms.analysis.probe import probe_folder
    from impossible_lms.data import load_dataset_tokenizer, load_manifest, resolve_folder

    from perturbations import get_language

    folder = resolve_folder(data)
    language = load_manifest(folder).language
    if get_language(language).word_analyses is None:
        raise ILMError(f"word-level tree projections need the words in order (hop and reverse languages), "
                       f"not {language}; use unit 'token' (--unit token), the reference's tree score")
    folder = probe_folder(folder)
    tokenizer = load_dataset_tokenizer(folder)
    parsed, keep = gold_trees(folder, trees)
    eos = load_manifest(folder).eos_id
    out, unaligned = [], 0
    for words, spans in parsed:
        if len(words) < 2:
            continue
        aligned = word_leaves(words, tokenizer)
        if aligned is None:
            unaligned += 1
            continue
        ids, leaves = aligned
        if keep is not None and ids not in keep:
            continue
        gold = frozenset((a, b - 1) for _, a, b in spans if b - a >= 2)
        out.append(Stimulus((eos,) + ids, tuple((a + 1, b + 1) for a, b in leaves), gold))  # EOS: left context
    if not out:
        raise ILMError(f"no gold-tree sentences of two or more words match {folder}'s test sentences")
    if sentences and len(out) > sentences:
        chosen = np.random.default_rng(seed).choice(len(out), sentences, replace=False)
        out = [out[i] for i in chosen]
    return out, unaligned


def token_stimuli(data: str | Path, sentences: int, seed: int) -> list[Stimulus]:
    """The language's ``test_affected`` sentences as the reference samples them (tokens as leaves)."""
    from impossible_lms.data import resolve_folder
    from impossible_lms.evaluation.data import EvalData

    sample = EvalData(resolve_folder(data), sentences or None, seed).sample("test_affected", MAX_SEQ_LEN - 1)
    out = [Stimulus(tuple(ids), tuple((t, t + 1) for t in range(len(ids)))) for ids in sample if ids]
    if not out:
        raise ILMError(f"no test_affected sentences in {data}")
    return out


# ---------------------------------------------------------------- rows


def treeproj_rows(model, stimuli: Sequence[Stimulus], seed: int, start_layer: int | None = None,
                  read_layer: int | None = None, unit: str = "word", batch: int = 64) -> list[dict]:
    """``tree_score`` (and with gold trees ``parse_*``) rows for one model."""
    from impossible_lms.evaluation.stats import bootstrap_mean
    from impossible_lms.models.hooks import blocks

    start, read = layers_used(len(blocks(model)), start_layer, read_layer)
    charts = sci_charts(model, stimuli, start, read, batch,
                        report=lambda done, total: progress_info(f"{done}/{total} span starts"))
    projections = [project(chart) for chart in charts]
    scores = np.array([p.tree_score for p in projections])
    mean, low, high = bootstrap_mean(scores, seed)
    common = {"subset": unit, "layer": read, "label": f"restricted from block {start}"}
    rows = [{**common, "metric": METRIC, "value": mean, "ci_low": low, "ci_high": high,
             "count": len(scores), "unit": "sci"}]
    if all(s.gold is not None for s in stimuli):
        predicted, gold = [p.brackets for p in projections], [s.gold for s in stimuli]
        whole = [frozenset({(0, len(chart) - 1)}) for chart in charts]
        for suffix, (pred, ref) in (("", (predicted, gold)),
                                    (NONTRIVIAL, ([p - w for p, w in zip(predicted, whole)],
                                                  [g - w for g, w in zip(gold, whole)]))):
            values, intervals = parse_scores(pred, ref), _bootstrap_parse(pred, ref, seed)
            for name in PARSE_METRICS:
                rows.append({**common, "metric": name + suffix, "value": values[name], "ci_low": intervals[name][0],
                             "ci_high": intervals[name][1], "count": len(gold), "unit": "%"})
    return rows


def treeproj(
    subject: str | Path,
    data: str | Path,
    checkpoints=None,
    results: str | Path | None = None,
    *,
    unit: str = "word",
    trees: str | Path | None = None,
    start_layer: int | None = None,
    read_layer: int | None = None,
    sentences: int | None = None,
    batch: int = 64,
    revisions: Sequence[str] | None = None,
    seed: int | None = None,
    dtype: str = "float32",
    device: str = "auto",
    show_progress: bool = False,
) -> pd.DataFrame:
    """Tree-projection rows per checkpoint of ``subject`` (see the module doc).

    ``unit``: ``word`` (gold trees: the synthetic grammar's, or ``trees``, a bracketed file; tree
    score + parse agreement) or ``token`` (the reference's tree score on ``test_affected``).
    ``sentences``: per genre file (token; default 1000) or in all (word; default 200); 0 = all.
    ``start_layer``: first block whose attention is restricted (default 4, clipped below the read
    layer); ``read_layer``: hidden state compared (default the last block but one). ``seed``
    (default the run's, else 0) draws the sentences and the bootstrap."""
    if unit not in UNITS:
        raise ILMError(f"unknown unit {unit!r}; choose from {', '.join(UNITS)}")
    if unit == "token" and trees is not None:
        raise ILMError("--trees gives word-level gold trees: it needs --unit word")
    if batch < 1:
        raise ILMError(f"batch must be at least 1, got {batch}")
    count = (FILE_SAMPLE_SIZE if unit == "token" else WORD_SENTENCES) if sentences is None else sentences
    if count < 0:
        raise ILMError(f"sentences must be 0 (all) or more, got {count}")

    # The data's identity, not the sample's: runs of different seeds draw different sentences from the
    # same data and must average in one table row (the seed and the sample size are in the settings).
    data_fp = _data_identity(data, unit, trees)
    from impossible_lms.data import load_manifest, resolve_folder

    language = load_manifest(resolve_folder(data)).language  # rows of a hub model are labelled with it

    def prepare(subj):
        run_seed = seed if seed is not None else (subj.seed if subj.seed is not None else 0)
        unaligned = 0
        if unit == "token":
            stimuli = token_stimuli(data, count, run_seed)
        else:
            stimuli, unaligned = word_stimuli(data, trees, count, run_seed)
        needed = max(max(s.ids) for s in stimuli) + 1

        def compute(model, target) -> list[dict]:
            check_subject_vocab(model, needed, target)
            return treeproj_rows(model, stimuli, run_seed, start_layer, read_layer, unit, batch)

        settings = {"unit": unit, "start_layer": start_layer, "read_layer": read_layer, "seed": run_seed,
                    "sentences": count, "unaligned": unaligned, "language": language}
        return Analysis(METRIC, f"treeproj-{unit}", data_fp, settings), compute

    return run_analysis(subject, prepare, checkpoints, revisions, results, dtype, device, show_progress)


def _data_identity(data: str | Path, unit: str, trees: str | Path | None) -> str:
    from impossible_lms.analysis.probe import probe_folder
    from impossible_lms.data import load_manifest, resolve_folder
    from impossible_lms.io import file_fingerprint

    from perturbations import get_language

    folder = resolve_folder(data)
    if unit == "word" and get_language(load_manifest(folder).language).word_analyses is not None:
        folder = probe_folder(folder)
    manifest = load_manifest(folder)
    gold = None if unit == "token" else ("synthetic" if trees is None else
                                         file_fingerprint(trees) if Path(trees).is_file() else str(trees))
    return fingerprint(manifest.identity(), manifest.counts, unit, gold, "eos-context" if unit == "word" else None)


def format_tree(tree, words: Sequence[str]) -> str:
    """A projection's nested pairs as brackets over ``words``: ``((the dog) barked)``."""
    if isinstance(tree, int):
        return words[tree]
    return "(" + " ".join(format_tree(t, words) for t in tree) + ")"

