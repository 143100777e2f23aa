"""SyntaxGym-style targeted evaluation: does the model's surprisal at a region follow the prediction?

Suites are SyntaxGym's public JSON (``meta.name``, ``region_meta``, ``items`` with
``conditions`` of numbered ``regions``, ``predictions`` with a ``formula`` such as
``(6;%mismatch_sing%) > (6;%match_sing%)``); the reference study's suites
(number_prep/orc/src, npi_{orc,src}_{any,ever}, reflexive_{prep,orc,src}_{fem,masc})
are on the Hugging Face Hub as ``cpllab/syntaxgym``. A condition's sentence is
its non-empty regions joined by single spaces, scored conditioned on EOS (the
reference's BOS) with the evaluation's batched scorer. A region's surprisal is,
as in SyntaxGym, the sum over its tokens of ``-log2 p`` (bits), or with
``region_metric="first"`` the surprisal of its first token only, as the
reference's ``get_target_surprisal`` reads it.

Formulas (:func:`parse_formula`) follow SyntaxGym's grammar without ``eval``:
region references ``(N;%condition%)`` (``(*;%condition%)``: the sum over all of the
condition's regions) and numbers, combined at three left-associative levels, tightest
first: ``+`` and ``-`` (one level: ``5+4=9-1+1`` holds), ``<``, ``>`` and ``=`` (equal
within rtol 1e-5, atol 1e-3), then ``&`` and ``|``; grouped by parentheses, or by
square brackets as the cpllab/syntactic-generalization copy of the suites writes them
(``[(7;%a%) < (7;%b%)] & [...]``, in ``meta.string_predictions``). An item is correct when all its suite's predictions hold; the
rows give the share of correct items per suite (subset = suite name, label
empty), over all items (subset ``all``), and per prediction (label
``prediction N``: the reference's singular_acc/plural_acc or pred1..3, whose
mean is its "Average"), in percent with a bootstrap interval over items.

Languages. The reference scored its agreement models (control_agreement,
local_agreement) on the suites' plain English. Here each sentence is put into
the model's language (:func:`impossible_lms.analysis.stimuli.perturb_texts`)
where a region still means something: languages that keep the tokens' order,
:func:`ordered_languages` (NoShuffle; NoReverse, which only inserts 🅁; and the
hop languages, which lemmatise agreeing verbs and insert 🅂/🄿). A region's
tokens are those of its words; a marker belongs to the region of the token
before it. Shuffles and reverses move tokens across regions: an ILMError names
the supported languages. An item with a condition the language's filters drop
(WordHop's completion rule) is left out and counted (``dropped``).

``local_agreement=True`` is the reference's ``--local_agreement``, for models
of a language where the verb agrees with the nearest noun: number-agreement
suites (``number_*``) flip every comparison of their predictions; NPI suites
(``npi_*``) swap has/have in the region before the target (text replace,
``have`` first); reflexive suites are unchanged; any other suite is an error.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence, Union

import numpy as np
import pandas as pd

from impossible_lms.analysis.runner import Analysis, check_subject_vocab, percent_row, run_analysis
from impossible_lms.analysis.stimuli import keeps_token_order, ordered_languages, stimulus_files
from impossible_lms.errors import ILMError
from impossible_lms.io import fingerprint

METRIC = "syntaxgym_accuracy"
HUB_ID = "cpllab/syntaxgym"
REGION_METRICS = ("sum", "first")
EQUALITY_RTOL, EQUALITY_ATOL = 1e-5, 1e-3  # SyntaxGym's tolerance for "="
LN2 = math.log(2.0)


# ---------------------------------------------------------------- formulas


@dataclass(frozen=True)
class Region:
    number: int | None  # None: every region of the condition, summed ("(*;%c%)")
    condition: str


@dataclass(frozen=True)
class Op:
    op: str
    left: "Node"
    right: "Node"


Node = Union[Region, float, Op]
_FLIP = {">": "<", "<": ">"}
# Binding levels, tightest first; the operators of one level are one left-associative chain.
_LEVELS = (("+", "-"), ("<", ">", "="), ("&", "|"))
_TOKEN = re.compile(r"\s*(?:(\(\s*(?:\d+|\*)\s*;\s*%[A-Za-z0-9_-]+%\s*\))|(\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)|([-+<>=&|()\[\]]))")
_CLOSE = {"(": ")", "[": "]"}


@dataclass(frozen=True)
class Formula:
    text: str
    tree: Node

    def __call__(self, surprisal: Callable[[int, str], float]) -> bool:
        """Whether the prediction holds, ``surprisal(region, condition)`` giving each region's value."""
        return bool(_evaluate(self.tree, surprisal))

    def regions(self) -> list[Region]:
        out: list[Region] = []

        def walk(n):
            if isinstance(n, Region):
                out.append(n)
            elif isinstance(n, Op):
                walk(n.left)
                walk(n.right)

        walk(self.tree)
        return out

    def flipped(self) -> Formula:
        """Every ``<`` made ``>`` and back (the reference's local-agreement reading)."""

        def flip(n):
            return Op(_FLIP.get(n.op, n.op), flip(n.left), flip(n.right)) if isinstance(n, Op) else n

        return Formula(self.text, flip(self.tree))


def parse_formula(text: str) -> Formula:
    """A SyntaxGym prediction formula as a tree (module doc); ILMError naming it when it does not parse."""
    tokens: list[object] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            if text[pos:].strip() == "":
                break
            raise ILMError(f"formula {text!r}: cannot read {text[pos:].strip()[:20]!r}")
        ref, number, sym = m.groups()
        if ref:
            n, _, cond = ref.strip("() \t").partition(";")
            tokens.append(Region(None if n.strip() == "*" else int(n), cond.strip().strip("%")))
        elif number:
            tokens.append(float(number))
        else:
            tokens.append(sym)
        pos = m.end()
    tree, rest = _parse_level(tokens, len(_LEVELS) - 1, text)
    if rest:
        raise ILMError(f"formula {text!r}: unexpected {rest[0]!r}")
    return Formula(text, tree)


def _parse_level(tokens: list, level: int, text: str) -> tuple[Node, list]:
    if level < 0:
        return _parse_atom(tokens, text)
    left, tokens = _parse_level(tokens, level - 1, text)
    while tokens and isinstance(tokens[0], str) and tokens[0] in _LEVELS[level]:
        right, rest = _parse_level(tokens[1:], level - 1, text)
        left, tokens = Op(tokens[0], left, right), rest
    return left, tokens


def _parse_atom(tokens: list, text: str) -> tuple[Node, list]:
    if not tokens:
        raise ILMError(f"formula {text!r}: ends too early")
    head, rest = tokens[0], tokens[1:]
    if isinstance(head, (Region, float)):
        return head, rest
    if head in _CLOSE:
        inner, rest = _parse_level(rest, len(_LEVELS) - 1, text)
        if not rest or rest[0] != _CLOSE[head]:
            raise ILMError(f"formula {text!r}: missing {_CLOSE[head]!r}")
        return inner, rest[1:]
    raise ILMError(f"formula {text!r}: unexpected {head!r}")


def _evaluate(node: Node, surprisal: Callable[[int, str], float]):
    if isinstance(node, Region):
        return surprisal(node.number, node.condition)  # number None: the caller sums the condition
    if isinstance(node, float):
        return node
    a, b = _evaluate(node.left, surprisal), _evaluate(node.right, surprisal)
    if node.op == "+":
        return a + b
    if node.op == "-":
        return a - b
    if node.op == "<":
        return a < b
    if node.op == ">":
        return a > b
    if node.op == "=":
        return bool(np.isclose(a, b, rtol=EQUALITY_RTOL, atol=EQUALITY_ATOL))
    if node.op == "|":
        return bool(a) or bool(b)
    return bool(a) and bool(b)  # "&"


# ---------------------------------------------------------------- suites


@dataclass(frozen=True)
class Item:
    number: int
    conditions: dict[str, tuple[tuple[int, str], ...]]  # condition -> (region number, content) in order


@dataclass(frozen=True)
class Suite:
    name: str
    items: tuple[Item, ...]
    predictions: tuple[Formula, ...]
    region_meta: dict[str, str] = field(default_factory=dict)


def load_suites(paths: str | Path | Sequence[str | Path]) -> list[Suite]:
    """Suites from SyntaxGym JSON files (or folders of ``*.json``), in the order given."""
    files = stimulus_files(paths, ".json", "SyntaxGym suite", HUB_ID, "syntaxgym")
    if not files:
        raise ILMError(f"no SyntaxGym suites (*.json) in {paths}")
    suites = [_read_suite(f) for f in files]
    names = [s.name for s in suites]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ILMError(f"two suites are named {twice[0]!r} (meta.name): each suite's rows are stored under its name")
    return suites


def _read_suite(path: Path) -> Suite:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        name = str((raw.get("meta") or {}).get("name") or path.stem)
        items = []
        for it in raw["items"]:
            conditions = {}
            for c in it["conditions"]:
                regions = tuple((int(r["region_number"]), str(r.get("content") or "")) for r in c["regions"])
                conditions[str(c["condition_name"])] = regions
            items.append(Item(int(it.get("item_number", len(items) + 1)), conditions))
        formulas = [p["formula"] if isinstance(p, dict) else p for p in raw.get("predictions") or []]
        # the cpllab/syntactic-generalization copy keeps them as meta.string_predictions
        formulas = formulas or list((raw.get("meta") or {}).get("string_predictions") or [])
        if "predictions" not in raw and not formulas:
            raise KeyError("predictions")
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ILMError(f"{path}: not a SyntaxGym suite (meta, items[].conditions[].regions[], "
                       f"predictions[].formula or meta.string_predictions): {type(e).__name__} {e}") from None
    predictions = tuple(parse_formula(str(f)) for f in formulas)
    if not items or not predictions:
        raise ILMError(f"{path}: a suite needs items and predictions")
    for item in items:
        for ref in (r for f in predictions for r in f.regions()):
            regions = item.conditions.get(ref.condition)
            if regions is None or (ref.number is not None and ref.number not in {n for n, _ in regions}):
                raise ILMError(f"{path}: item {item.number}: prediction region ({ref.number};%{ref.condition}%) "
                               "is not in the item")
    return Suite(name, tuple(items), predictions, {str(k): str(v) for k, v in (raw.get("region_meta") or {}).items()})


# ---------------------------------------------------------------- local agreement (the reference's flag)


def _swap_has_have(content: str) -> str:
    if "have" in content:
        return content.replace("have", "has")
    if "has" in content:
        return content.replace("has", "have")
    return content


def local_agreement_suite(suite: Suite) -> Suite:
    """The suite as the reference reads it for a local-agreement model (module doc)."""
    if suite.name.startswith("number_"):
        return Suite(suite.name, suite.items, tuple(f.flipped() for f in suite.predictions), suite.region_meta)
    if suite.name.startswith("reflexive_"):
        return suite
    if suite.name.startswith("npi_"):
        targets = {r.number for f in suite.predictions for r in f.regions()}
        if len(targets) != 1:
            raise ILMError(f"suite {suite.name}: local agreement swaps has/have before the target region, "
                           f"but its predictions name regions {sorted(targets)}")
        before = targets.pop() - 1
        items = tuple(Item(it.number, {c: tuple((n, _swap_has_have(t) if n == before else t) for n, t in regions)
                                       for c, regions in it.conditions.items()}) for it in suite.items)
        return Suite(suite.name, items, suite.predictions, suite.region_meta)
    raise ILMError(f"local agreement is defined for the reference's suites (number_*, npi_*, reflexive_*), "
                   f"not {suite.name}")


# ---------------------------------------------------------------- stimuli in the model's language


@dataclass(frozen=True)
class Stimulus:
    suite: str
    item: int
    condition: str
    ids: list[int]
    regions: dict[int, tuple[int, int]]  # region number -> [start, stop) into ids


@dataclass(frozen=True)
class PerturbedSuites:
    suites: list[Suite]  # as evaluated (local agreement applied), items the language dropped left out
    stimuli: dict[tuple[str, int, str], Stimulus]
    dropped: int
    language: str
    eos_id: int

    @property
    def fingerprint(self) -> str:
        return fingerprint([[s.name, [f.text for f in s.predictions]] for s in self.suites],
                           sorted([k, v.ids, sorted(v.regions.items())] for k, v in self.stimuli.items()))


def condition_text(regions: Sequence[tuple[int, str]]) -> str:
    """A condition's sentence: its non-empty regions, stripped, joined by single spaces."""
    return " ".join(t.strip() for _, t in regions if t.strip())


def perturb_suites(suites: Sequence[Suite], data: str | Path, tagger="nltk",
                   local_agreement: bool = False) -> PerturbedSuites:
    """Every condition of every item in the language of dataset folder ``data``, with its regions' spans."""
    from perturbations import get_language

    from impossible_lms.analysis.stimuli import perturb_texts
    from impossible_lms.data import load_manifest

    language = get_language(load_manifest(data).language)
    if not keeps_token_order(language.name):
        raise ILMError(f"syntaxgym needs a language that keeps the tokens' order ({', '.join(ordered_languages())}): "
                       f"{language.name} moves tokens across regions")
    if local_agreement:
        suites = [local_agreement_suite(s) for s in suites]
    keys = [(s.name, it.number, c) for s in suites for it in s.items for c in it.conditions]
    regions = {(s.name, it.number, c): r for s in suites for it in s.items for c, r in it.conditions.items()}
    done = perturb_texts([condition_text(regions[k]) for k in keys], data, tagger, genre="syntaxgym")
    markers = frozenset(done.tokenizer.marker_ids.values())
    stimuli = {}
    for key, ids, sentence in zip(keys, done.ids, done.sentences):
        if ids is not None:
            spans = region_spans(regions[key], ids, sentence, done.language, done.tokenizer, markers, key)
            stimuli[key] = Stimulus(*key, ids, spans)
    kept, dropped = [], 0
    for s in suites:
        items = tuple(it for it in s.items if all((s.name, it.number, c) in stimuli for c in it.conditions))
        dropped += len(s.items) - len(items)
        if items:
            kept.append(Suite(s.name, items, s.predictions, s.region_meta))
    return PerturbedSuites(kept, stimuli, dropped, done.language_name, done.eos_id)


def region_spans(regions, ids, sentence, language, tok, markers, key) -> dict[int, tuple[int, int]]:
    """[start, stop) of each region's tokens in ``ids``; a marker goes with the token before it.

    The marker-free tokens of an order-keeping language are the encoding of its
    surface text (hop languages: agreeing verbs as their lemmas); the tokens of
    the first k regions are the encoding of their words' surface, which must be a
    prefix of the whole (a region boundary that splits a token is an error).
    """
    plain = [i for i, t in enumerate(ids) if t not in markers]  # positions of the non-marker tokens
    content = [ids[i] for i in plain]
    pieces = _surface_pieces(regions, sentence, language, key)
    join = _join_for(language)
    if tok.encode(join([p for p, _ in pieces])) != content:
        raise ILMError(f"{_where(key)}: the sentence's tokens are not its regions' tokens in order")
    starts = [0]  # where each region's ids begin; the next region's start is its stop
    for k, (n, _) in enumerate(regions[:-1]):
        prefix = [p for p, r in pieces if r <= k]
        done = tok.encode(join(prefix)) if prefix else []
        if done != content[: len(done)]:
            raise ILMError(f"{_where(key)}: region {n} ends inside a token; regions must end at word boundaries")
        starts.append(plain[len(done)] if len(done) < len(plain) else len(ids))
    starts.append(len(ids))
    return {n: (starts[k], starts[k + 1]) for k, (n, _) in enumerate(regions)}


def _join_for(language):
    if language.marks_agreement:  # the hops re-join tagged words (verbs lemmatised)
        from perturbations.hop import join_words

        return join_words
    return " ".join


def _surface_pieces(regions, sentence, language, key) -> list[tuple[str, int]]:
    """(text, region index) in order, whose join is the language's marker-free sentence."""
    if not language.marks_agreement:
        return [(t.strip(), k) for k, (_, t) in enumerate(regions) if t.strip()]
    from perturbations.hop import lemma_of

    text, bounds = "", []
    for k, (_, t) in enumerate(regions):
        t = t.strip()
        if t:
            if text:
                text += " "
            start = len(text)
            text += t
            bounds.append((start, len(text), k))
    pieces, cursor = [], 0
    for word in sentence.words or ():
        found = text.find(word.text, cursor)
        if found < 0:
            raise ILMError(f"{_where(key)}: the tagger's word {word.text!r} is not in the sentence's text")
        cursor = found + len(word.text)
        region = next(n for s, e, n in bounds if found < e)
        pieces.append((lemma_of(word) if language.select(word) is not None else word.text, region))
    return pieces


def _where(key) -> str:
    suite, item, condition = key
    return f"suite {suite}, item {item}, condition {condition}"


# ---------------------------------------------------------------- scoring and accuracy


def region_surprisals(logprobs: np.ndarray, spans: dict[int, tuple[int, int]], metric: str = "sum") -> dict[int, float]:
    """Bits per region from one sentence's per-token log-probs (nats): the sum, or the first token's."""
    out = {}
    for n, (a, b) in spans.items():
        bits = -np.asarray(logprobs[a:b], dtype=np.float64) / LN2
        out[n] = float(bits.sum()) if metric == "sum" else (float(bits[0]) if len(bits) else float("nan"))
    return out


def item_results(suite: Suite, surprisal: Callable[[int, int, str], float]) -> np.ndarray:
    """[items × predictions] bools; ``surprisal(item, region, condition)`` in bits (``(*;%c%)``: the
    sum over every region of the condition, as SyntaxGym reads it)."""

    def value(item: Item, n: int | None, c: str) -> float:
        if n is None:
            return sum(surprisal(item.number, r, c) for r, _ in item.conditions[c])
        return surprisal(item.number, n, c)

    return np.array([[f(lambda n, c, it=it: value(it, n, c)) for f in suite.predictions]
                     for it in suite.items], dtype=bool).reshape(len(suite.items), len(suite.predictions))


def suite_rows(results: dict[str, np.ndarray], seed: int = 0) -> list[dict]:
    """Accuracy rows (percent): per suite and ``all`` (items whose every prediction holds), and per prediction."""
    passed = {name: r.all(axis=1) for name, r in results.items()}
    rows = [percent_row(METRIC, np.concatenate(list(passed.values())) if passed else np.empty(0), seed,
                        subset="all", label="")]
    for name in results:
        rows.append(percent_row(METRIC, passed[name], seed, subset=name, label=""))
        rows += [percent_row(METRIC, results[name][:, k], seed, subset=name, label=f"prediction {k + 1}")
                 for k in range(results[name].shape[1])]
    return rows


def syntaxgym(
    subject: str | Path,
    data: str | Path,
    suites: str | Path | Sequence[str | Path],
    checkpoints=None,
    results: str | Path | None = None,
    *,
    revisions: Sequence[str] | None = None,
    tagger="nltk",
    local_agreement: bool = False,
    region_metric: str = "sum",
    seed: int | None = None,
    batch_tokens: int = 16384,
    dtype: str = "float32",
    device: str = "auto",
    show_progress: bool = False,
) -> pd.DataFrame:
    """SyntaxGym accuracy per checkpoint of ``subject`` on the ``suites`` (JSON files or folders), put
    into the language of dataset folder ``data``; stored rows in ``results`` are not recomputed."""
    from impossible_lms.evaluation.scoring import ScoreOptions, score_sequences

    if region_metric not in REGION_METRICS:
        raise ILMError(f"region_metric must be one of {', '.join(REGION_METRICS)}, got {region_metric!r}")
    stimuli = perturb_suites(load_suites(suites), data, tagger, local_agreement)
    if not stimuli.suites:
        raise ILMError(f"all {stimuli.dropped} SyntaxGym items were dropped by {stimuli.language}'s filters")
    keys = list(stimuli.stimuli)
    sequences = [stimuli.stimuli[k].ids for k in keys]

    def prepare(subj):
        run_seed = seed if seed is not None else (subj.seed if subj.seed is not None else 0)
        settings = {"seed": run_seed, "language": stimuli.language, "condition_on_eos": True,
                    "dropped": stimuli.dropped, "local_agreement": bool(local_agreement),
                    "region_metric": region_metric}
        needed = max(max(map(max, sequences)), stimuli.eos_id) + 1
        options = ScoreOptions(batch_tokens=batch_tokens, condition_on_eos=True, eos_id=stimuli.eos_id)

        def compute(model, target) -> list[dict]:
            check_subject_vocab(model, needed, target)
            scores = score_sequences(model, sequences, options)[None]
            bits = {k: region_surprisals(s, stimuli.stimuli[k].regions, region_metric) for k, s in zip(keys, scores)}
            per_suite = {s.name: item_results(s, lambda it, n, c, name=s.name: bits[name, it, c][n])
                         for s in stimuli.suites}
            return suite_rows(per_suite, run_seed)

        return Analysis(METRIC, f"syntaxgym:{stimuli.language}", stimuli.fingerprint, settings,
                        shown=("region_metric", "local_agreement")), compute

    return run_analysis(subject, prepare, checkpoints, revisions, results, dtype, device, show_progress)
