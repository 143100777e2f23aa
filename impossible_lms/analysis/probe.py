"""Constituency edge probing (Kallini et al. 2024, appendix): is a span's label linearly decodable?

Sentences: the test sentences the language leaves unchanged (hops: ``test_unaffected``; the
Reverse family: the NoReverse sentences with the 🅁 marker removed, i.e. the original text),
>= 50 characters, up to 50,000 drawn with ``default_rng(15)``. Spans: NP, VP, ADJP, ADVP, PP
with more than one leaf in sentences of >= 5 words, mapped to token spans; up to 2,000 per
label drawn with ``default_rng(62)``. Features: the mean over a span's tokens of the hidden
state after layer 1, 3, 6, 9, 12 (clipped to the model's depth; layer k = block k-1's output,
read with :func:`impossible_lms.models.hooks.record_blocks`) and the mean of the last 4 layers.
One multinomial logistic regression (scikit-learn) per feature set, 80/20 split seeded by the
run's seed; rows ``probe_accuracy`` (percent) per layer and label (``all`` = overall accuracy,
a label = accuracy on test spans of that label).

Trees come from the synthetic grammar (gold, offline) when the dataset was perturbed from the
synthetic corpus, from a bracketed Penn-style file (``trees=``; the leaves are the sentences), or
from Stanza's constituency parser (``trees="stanza"``, the reference's choice; extra ``[stanza]``,
models downloaded beforehand) run on the dataset's decoded test sentences.
Unlike the reference's edge_probing.py, positional models are probed as trained (with ``wpe``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from impossible_lms.analysis.runner import Analysis, check_subject_vocab, run_analysis
from impossible_lms.errors import ILMError
from impossible_lms.io import fingerprint
from perturbations import get_language

METRIC = "probe_accuracy"
LABELS = ("NP", "VP", "ADJP", "ADVP", "PP")
LAYERS = (1, 3, 6, 9, 12)
MIN_CHARS, MIN_WORDS, MAX_SENTENCES, PER_LABEL = 50, 5, 50_000, 2000
SENTENCE_SEED, SPAN_SEED = 15, 62

WordSpans = list[tuple[str, int, int]]  # (label, first word, end word)


@dataclass(frozen=True)
class ProbeSentence:
    ids: tuple[int, ...]
    spans: tuple[tuple[str, int, int], ...]  # (label, first token, end token)


def _sklearn():
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        raise ILMError("edge probing needs scikit-learn: pip install 'ilm[probe]'") from None
    return LogisticRegression


# ---------------------------------------------------------------- trees


def tree_constituents(tree) -> tuple[list[str], WordSpans]:
    """Leaves and every constituent ``(label, first leaf, end leaf)`` of an nltk Tree, in post-order,
    labels as written (-NONE- traces dropped, with any node they leave empty)."""
    leaves: list[str] = []
    spans: WordSpans = []

    def walk(t) -> None:
        if isinstance(t, str):
            leaves.append(t)
            return
        if t.label() == "-NONE-":
            return
        start = len(leaves)
        for child in t:
            walk(child)
        if len(leaves) > start:
            spans.append((t.label(), start, len(leaves)))

    walk(tree)
    return leaves, spans


def tree_spans(tree) -> tuple[list[str], WordSpans]:
    """Leaves and (label, first leaf, end leaf) of an nltk Tree's NP/VP/ADJP/ADVP/PP nodes
    (function tags stripped: NP-SBJ → NP; -NONE- traces dropped)."""
    leaves, spans = tree_constituents(tree)
    stripped = ((label if label in ("-LRB-", "-RRB-") else re.split(r"[-=]", label)[0], a, b) for label, a, b in spans)
    return leaves, [s for s in stripped if s[0] in LABELS]


def read_trees(path: str | Path, spans=tree_spans) -> list[tuple[list[str], WordSpans]]:
    """Bracketed Penn-style trees (any layout: one per line or spread over lines), read with nltk;
    ``spans(tree) -> (leaves, spans)`` picks the constituents (default: the probed labels)."""
    from nltk import Tree

    path = Path(path)
    if not path.is_file():
        raise ILMError(f"trees file not found: {path}")
    text = path.read_text(encoding="utf-8")
    out, depth, start = [], 0, None
    for i, c in enumerate(text):
        if c == "(":
            if depth == 0:
                start = i
            depth += 1
        elif c == ")":
            depth -= 1
            if depth < 0:
                raise ILMError(f"{path}: unbalanced ')' at character {i}")
            if depth == 0:
                try:
                    tree = Tree.fromstring(text[start:i + 1])
                except ValueError as e:
                    raise ILMError(f"{path}: not a bracketed tree near character {start}: {e}") from None
                if tree.label() == "" and len(tree) == 1 and not isinstance(tree[0], str):
                    tree = tree[0]  # PTB's unlabelled root "( (S ...) )"
                out.append(spans(tree))
    if depth != 0:
        raise ILMError(f"{path}: unbalanced brackets (a tree is not closed)")
    if not out:
        raise ILMError(f"{path}: no bracketed trees")
    return out


def synthetic_trees(manifest) -> list[tuple[list[str], WordSpans]]:
    """The synthetic corpus's test sentences with their gold spans, regenerated from the manifest's
    corpus name (``synthetic-N-seedS``)."""
    from impossible_lms.corpus import synthetic

    name = str(manifest.corpus.get("name", ""))
    m = re.fullmatch(r"synthetic-(\d+)-seed(-?\d+)", name)
    if m is None:
        raise ILMError(f"the dataset was perturbed from {name or 'an unknown corpus'}, whose trees are not known; "
                       "give --trees FILE (bracketed Penn-style trees of its sentences) or --trees stanza")
    total, seed = int(m.group(1)), int(m.group(2))
    out = []
    for (genre, split), count in synthetic.split_sizes(total).items():
        if split == "test":
            for sentence, spans in synthetic.generate_file_trees(genre, split, count, seed):
                out.append(([w.text for w in sentence.words], list(spans)))
    return out


# ---------------------------------------------------------------- words -> tokens


def join_with_offsets(words: Sequence[str]) -> tuple[str, list[tuple[int, int]]]:
    """The text as the perturb pipeline joins words (clitics glued on) and each word's char range."""
    from perturbations.hop import CLITICS

    text, ranges = "", []
    for w in words:
        if text and w not in CLITICS:
            text += " "
        ranges.append((len(text), len(text) + len(w)))
        text += w
    return text, ranges


def token_spans(words: Sequence[str], spans: WordSpans, tokenizer) -> ProbeSentence:
    """Encode the joined words and map word spans to token spans: a token belongs to the word holding
    its last character; a span covers its words' tokens (spans left with no token are dropped)."""
    text, ranges = join_with_offsets(words)
    enc = tokenizer.backend.encode(text, add_special_tokens=False)
    word_of = np.searchsorted(np.array([a for a, _ in ranges]), [max(end - 1, 0) for _, end in enc.offsets],
                              side="right") - 1
    out = []
    for label, a, b in spans:
        toks = np.flatnonzero((word_of >= a) & (word_of < b))
        if len(toks):
            out.append((label, int(toks[0]), int(toks[-1]) + 1))
    return ProbeSentence(tuple(enc.ids), tuple(out))


# ---------------------------------------------------------------- data


def _stripped_test_ids(folder: Path) -> set[tuple[int, ...]]:
    """The dataset's test sentences the language leaves unchanged, as token ids without markers/EOS."""
    from impossible_lms.data import load_manifest, load_split

    manifest = load_manifest(folder)
    drop = set(manifest.marker_ids.values()) | {manifest.eos_id}
    # a language whose markers mark agreement (the hops) changes every affected sentence
    marked = get_language(manifest.language).marks_agreement
    splits = ("test_unaffected",) if marked else ("test_affected", "test_unaffected")
    ids: set[tuple[int, ...]] = set()
    for split in splits:
        for row in load_split(folder, split)["input_ids"]:
            ids.add(tuple(int(t) for t in row if int(t) not in drop))
    return ids


def probe_folder(data: str | Path) -> Path:
    """Reverse-family datasets are probed on the NoReverse sentences: ``no_reverse`` beside them."""
    from impossible_lms.data import load_manifest, resolve_folder

    from impossible_lms.data import dataset_folder_name

    folder = resolve_folder(data)
    manifest = load_manifest(folder)
    lang = get_language(manifest.language)
    if lang.word_analyses is None:
        raise ILMError(f"edge probing is defined for languages whose words keep their order or whose control's "
                       f"do (the hop and reverse families), not {manifest.language}")
    if lang.word_analyses == "control" and lang.control != lang.name:
        sibling = folder.parent / dataset_folder_name(lang.control)
        if not (sibling / "manifest.json").is_file():
            raise ILMError(f"{manifest.language} is probed on the {lang.control} test sentences: perturb "
                           f"{lang.control} into {sibling} (ilm perturb {lang.control} ...) or give that folder as --data")
        return sibling
    return folder


STANZA = "stanza"  # trees="stanza": parse the dataset's sentences with Stanza's constituency parser


def _sample(items: list, limit: int = MAX_SENTENCES) -> list:
    if len(items) <= limit:
        return items
    chosen = np.random.default_rng(SENTENCE_SEED).choice(len(items), limit, replace=False)
    return [items[i] for i in sorted(chosen)]


def stanza_trees(texts: Sequence[str]) -> list[tuple[list[str], WordSpans]]:
    """Constituency trees of ``texts`` from Stanza (the reference's parser): its English models must be
    downloaded already (nothing is fetched here). A text Stanza splits in several sentences keeps its first."""
    from nltk import Tree

    try:
        import stanza
    except ImportError:
        raise ILMError("parsing needs Stanza: pip install 'ilm[stanza]', or give --trees FILE") from None
    try:
        nlp = stanza.Pipeline("en", processors="tokenize,pos,constituency", download_method=None, verbose=False)
    except Exception as e:  # stanza raises several types for missing resources
        raise ILMError("Stanza's English constituency models are missing (python -c \"import stanza; "
                       "stanza.download('en', processors='tokenize,pos,constituency')\"), or give --trees FILE "
                       f"({type(e).__name__})") from None
    out = []
    for text in texts:
        doc = nlp(text)
        if doc.sentences:
            out.append(tree_spans(Tree.fromstring(str(doc.sentences[0].constituency))))
    return out


def _test_texts(folder: Path) -> list[str]:
    from impossible_lms.data import load_dataset_tokenizer

    tokenizer = load_dataset_tokenizer(folder)
    return sorted(tokenizer.decode(list(ids)).strip() for ids in _stripped_test_ids(folder))


def probe_data(data: str | Path, trees: str | Path | None = None) -> list[ProbeSentence]:
    """The probed sentences with their token spans (sampled as the reference: see the module doc).
    ``trees``: a bracketed file, ``"stanza"`` (parse the dataset's sentences), or None (synthetic corpus)."""
    from impossible_lms.data import load_dataset_tokenizer, load_manifest

    folder = probe_folder(data)
    tokenizer = load_dataset_tokenizer(folder)
    keep = None
    if trees is None:
        parsed = synthetic_trees(load_manifest(folder))
        keep = _stripped_test_ids(folder)
    elif str(trees) == STANZA:
        # filter and sample on the text before parsing: parsing is the slow part
        parsed = stanza_trees(_sample([t for t in _test_texts(folder) if len(t) >= MIN_CHARS]))
    else:
        parsed = read_trees(trees)  # the trees' leaves ARE the sentences
    sentences = []
    for words, spans in parsed:
        text, _ = join_with_offsets(words)
        if len(text) < MIN_CHARS or len(words) < MIN_WORDS:
            continue
        sentence = token_spans(words, [(l, a, b) for l, a, b in spans if b - a > 1], tokenizer)
        if keep is not None and sentence.ids not in keep:
            continue
        sentences.append(sentence)
    sentences = _sample(sentences)
    if not any(s.spans for s in sentences):
        raise ILMError(f"no probe spans in {folder} (sentences of >= {MIN_CHARS} characters and >= {MIN_WORDS} words "
                       "with multi-word NP/VP/ADJP/ADVP/PP constituents)")
    return sentences


def sample_spans(sentences: Sequence[ProbeSentence]) -> list[tuple[int, str, int, int]]:
    """Up to 2,000 (sentence, label, start, end) per label, drawn with ``default_rng(62)``."""
    rng = np.random.default_rng(SPAN_SEED)
    out = []
    for label in LABELS:
        spans = [(i, l, a, b) for i, s in enumerate(sentences) for l, a, b in s.spans if l == label]
        if len(spans) > PER_LABEL:
            spans = [spans[j] for j in sorted(rng.choice(len(spans), PER_LABEL, replace=False))]
        out += spans
    return out


# ---------------------------------------------------------------- probe


def feature_sets(n_layers: int) -> dict[str, list[int]]:
    """Feature name -> 0-based blocks averaged: ``layer k`` = block k-1; ``last4`` = the last 4 blocks."""
    sets = {f"layer{k}": [k - 1] for k in LAYERS if k <= n_layers}
    sets["last4"] = list(range(max(0, n_layers - 4), n_layers))
    return sets


def span_features(model, sentences: Sequence[ProbeSentence], spans, blocks_used: Sequence[int],
                  batch: int = 64) -> dict[int, np.ndarray]:
    """``{block: [n_spans, d]}``: each span's mean block output over its tokens."""
    import torch

    from impossible_lms.models.hooks import record_blocks

    device = next(model.parameters()).device
    wanted = sorted({i for i, *_ in spans})
    by_len: dict[int, list[int]] = {}
    for i in wanted:
        by_len.setdefault(len(sentences[i].ids), []).append(i)
    index = {}
    for n, (i, _, a, b) in enumerate(spans):
        index.setdefault(i, []).append((n, a, b))
    out: dict[int, np.ndarray] = {}
    with torch.inference_mode():
        for group in by_len.values():  # equal lengths: no padding, no attention mask needed
            for start in range(0, len(group), batch):
                rows = group[start:start + batch]
                ids = torch.tensor([sentences[i].ids for i in rows], dtype=torch.long, device=device)
                with record_blocks(model, list(blocks_used)) as states:
                    model(input_ids=ids)
                for block in blocks_used:
                    h = states[block].float()
                    arr = out.setdefault(block, np.zeros((len(spans), h.shape[-1]), dtype=np.float32))
                    for r, i in enumerate(rows):
                        for n, a, b in index[i]:
                            arr[n] = h[r, a:b].mean(0).cpu().numpy()
    return out


def probe_accuracy(features: np.ndarray, labels: Sequence[str], seed: int) -> dict[str, tuple[float, np.ndarray]]:
    """Fit a logistic regression on a seeded 80% and score the rest: ``{label or 'all': (accuracy %,
    per-span correctness)}``."""
    LogisticRegression = _sklearn()
    labels = np.asarray(labels)
    if len(set(labels)) < 2:
        raise ILMError(f"edge probing needs spans of at least two labels, got {sorted(set(labels))}")
    order = np.random.default_rng(seed).permutation(len(labels))
    cut = int(round(0.8 * len(labels)))
    train, test = order[:cut], order[cut:]
    if len(test) == 0:
        raise ILMError("too few spans for an 80/20 split")
    clf = LogisticRegression(max_iter=1000)
    clf.fit(features[train], labels[train])
    correct = clf.predict(features[test]) == labels[test]
    out = {"all": (100.0 * correct.mean(), correct)}
    for label in LABELS:
        mask = labels[test] == label
        if mask.any():
            out[label] = (100.0 * correct[mask].mean(), correct[mask])
    return out


def fitting(sentences: Sequence[ProbeSentence], model, target=None) -> list[ProbeSentence]:
    """The sentences within the model's context; the others are skipped and counted in one warning
    line (one long sentence must not abort a probe of thousands)."""
    import warnings

    from impossible_lms.training.model import context_length

    context = context_length(model)
    kept = [s for s in sentences if len(s.ids) <= context]
    if len(kept) < len(sentences):
        longest = max(len(s.ids) for s in sentences)
        warnings.warn(f"probe{f' {target}' if target is not None else ''}: skipped {len(sentences) - len(kept)} of "
                      f"{len(sentences)} sentences longer than the model's context of {context} tokens "
                      f"(the longest has {longest})", stacklevel=2)
    if not kept:
        raise ILMError(f"every probe sentence is longer than the model's context of {context} tokens")
    return kept


def probe_rows(model, sentences: Sequence[ProbeSentence], seed: int) -> list[dict]:
    from impossible_lms.evaluation.stats import bootstrap_mean
    from impossible_lms.models.hooks import blocks

    spans = sample_spans(sentences)
    labels = [l for _, l, _, _ in spans]
    sets = feature_sets(len(blocks(model)))
    feats = span_features(model, sentences, spans, sorted({b for bs in sets.values() for b in bs}))
    rows = []
    for name, used in sets.items():
        x = np.mean([feats[b] for b in used], axis=0)
        for label, (acc, correct) in probe_accuracy(x, labels, seed).items():
            _, low, high = bootstrap_mean(correct.astype(np.float64) * 100.0, seed)
            rows.append({"metric": METRIC, "subset": name, "layer": used[-1] + 1 if name != "last4" else None,
                         "label": label, "value": acc, "ci_low": low, "ci_high": high,
                         "count": int(len(correct)), "unit": "%"})
    return rows


def probe(
    subject: str | Path,
    data: str | Path,
    checkpoints=None,
    results: str | Path | None = None,
    *,
    trees: str | Path | None = None,
    revisions: Sequence[str] | None = None,
    seed: int | None = None,
    dtype: str = "float32",
    device: str = "auto",
    show_progress: bool = False,
) -> pd.DataFrame:
    """``probe_accuracy`` rows per checkpoint × layer × label of ``subject`` (see the module doc).

    ``data``: the language's dataset folder (its unaffected test sentences; NoReverse's for the
    Reverse family). ``trees``: a bracketed tree file (default: the synthetic grammar's own trees).
    ``seed`` (default the run's, else 0) seeds the 80/20 split."""
    _sklearn()  # fail in one line before loading anything
    from impossible_lms.data import load_manifest, resolve_folder

    sentences = probe_data(data, trees)
    needed = max(max(s.ids) for s in sentences) + 1
    data_fp = fingerprint([(s.ids, s.spans) for s in sentences])
    language = load_manifest(resolve_folder(data)).language  # rows of a hub model are labelled with it

    def prepare(subj):
        run_seed = seed if seed is not None else (subj.seed if subj.seed is not None else 0)

        def compute(model, target) -> list[dict]:
            check_subject_vocab(model, needed, target)
            return probe_rows(model, fitting(sentences, model, target), run_seed)

        return Analysis(METRIC, "probe", data_fp, {"seed": run_seed, "language": language}), compute

    return run_analysis(subject, prepare, checkpoints, revisions, results, dtype, device, show_progress)
