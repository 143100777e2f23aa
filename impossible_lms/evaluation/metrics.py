"""The metric registry (as in lm-evaluation-harness: a new metric is one registered function).

A metric says which sequences it needs (``requests``) and turns their per-token
log-probs into rows (the registered function). The evaluator gathers every
metric's requests, scores each distinct sequence once per checkpoint, and
hands each metric its own log-probs, so adding metrics costs no extra passes
over shared sequences (a sentence and the same sentence plus EOS share one).

    @register_metric("dev_logprob", requests=lambda data: {"s": data.sample("dev")})
    def dev_logprob(data, logprobs, options):
        values = np.array([np.nanmean(lp) for lp in logprobs["s"]])
        return [row("dev_logprob", "dev", values, *bootstrap_mean(values, options.seed), unit="nats")]

``logprobs[name]`` holds one float32 array per requested sequence, aligned with
its tokens, in nats, NaN where unscored (see :mod:`.scoring`). A metric that
reads only some tokens asks for ``AtPositions(sequences, positions)`` instead of
plain sequences, and the rest are not computed (NaN). Metrics run once
per head: rows of multi-exit heads get their ``layer`` filled in by the caller.
A metric that scores subsets one by one (perplexity: ``PERPLEXITY_SUBSETS``)
names them in ``subsets``: each is one of its request names and the ``subset``
of its rows, and its ``requests(data, subsets=...)`` samples only those asked
for, so ``evaluate(subsets=...)`` can score (and sample) only some, and each is
stored on its own (a later run that asks for more reuses those it finds).
Marker surprisal draws its own sample of affected test sentences, as the
reference's ``hop_surprisal.py`` does: sentences whose length + EOS reaches
``REFERENCE_MAX_SEQ_LEN`` are dropped first, then the sample is drawn (the same
scheme and seed as perplexity's, so the two agree whenever nothing is dropped).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from impossible_lms.errors import ILMError, did_you_mean
from impossible_lms.evaluation.stats import bootstrap_mean, geometric_mean_ci

if TYPE_CHECKING:
    from impossible_lms.evaluation.data import EvalData

LN2 = math.log(2)
UNITS = ("bits", "nats")
# hop_surprisal.py keeps a sentence + EOS only when shorter than its MAX_SEQ_LEN = 1024.
REFERENCE_MAX_SEQ_LEN = 1024
SURPRISAL_MAX_TOKENS = REFERENCE_MAX_SEQ_LEN - 2  # len(sentence) + 1 < 1024
PERPLEXITY_SUBSETS = ("test_affected", "test_unaffected", "dev")

Sequences = list[list[int]]
LogProbs = dict[str, list[np.ndarray]]


@dataclass(frozen=True)
class AtPositions:
    """A request for some tokens' log-probs only: ``positions[k]`` are indices into ``sequences[k]``.

    The evaluator then scores just those tokens, from the shortest prefix that holds
    them (the projection to the vocabulary and its softmax are most of the cost of
    scoring); the metric's arrays are as long as the sequences, NaN elsewhere. A
    sequence longer than the model's context is still all-NaN, as a plain one.
    """

    sequences: Sequences
    positions: list[list[int]]


Requests = dict[str, "Sequences | AtPositions"]


@dataclass(frozen=True)
class MetricOptions:
    seed: int = 0  # the bootstrap's seed (the run's seed)
    unit: str = "bits"  # surprisal unit; perplexity is unit-free


@dataclass(frozen=True)
class Metric:
    name: str
    requests: Callable[["EvalData"], Requests]  # noqa: F821  (EvalData: evaluation.data)
    compute: Callable[..., list[dict]]
    applies: Callable[["EvalData"], bool] = lambda data: True  # noqa: E731
    description: str = ""
    # Subsets scored (and stored) separately: request ``s`` gives exactly the rows of subset ``s``.
    subsets: tuple[str, ...] = ()


METRICS: dict[str, Metric] = {}
# Names that are rows of another metric: asking for them runs that metric.
ALIASES = {"surprisal_difference": "marker_surprisal", "surprisal": "marker_surprisal"}


def register_metric(name: str, requests: Callable, applies: Callable | None = None, description: str = "",
                    subsets: tuple[str, ...] = ()):
    """Decorator: register ``fn(data, logprobs, options) -> rows`` under ``name``.

    ``subsets``: see the module docstring; ``fn`` then gets the log-probs of the chosen
    subsets only and returns rows for those."""

    def deco(fn: Callable) -> Callable:
        METRICS[name] = Metric(name, requests, fn, applies or (lambda data: True), description or (fn.__doc__ or "").strip(),
                               tuple(subsets))
        return fn

    return deco


def get_metrics(names) -> list[Metric]:
    names = [ALIASES.get(n, n) for n in names]
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        hint = did_you_mean(unknown[0], METRICS)
        raise ILMError(f"unknown metric {unknown[0]!r}{hint}; choose from {', '.join(METRICS)}")
    if not names:
        raise ILMError(f"no metric given; choose from {', '.join(METRICS)}")
    return [METRICS[n] for n in dict.fromkeys(names)]


def check_subsets(names) -> tuple[str, ...]:
    """The subsets asked for, checked against those the metrics score separately (in the order given)."""
    known = list(dict.fromkeys(s for m in METRICS.values() for s in m.subsets))
    names = tuple(dict.fromkeys([names] if isinstance(names, str) else names))  # "dev" is one subset, not three letters
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ILMError(f"unknown subset {unknown[0]!r}{did_you_mean(unknown[0], known)}; choose from {', '.join(known)}")
    if not names:
        raise ILMError(f"no subset given; choose from {', '.join(known)}")
    return names


def row(metric: str, subset: str, values: np.ndarray, value: float, low: float, high: float, unit: str,
        short: int | None = None) -> dict:
    """One result row; ``short``: sentences the sample lacks because genres were smaller than asked."""
    return {"metric": metric, "subset": subset, "value": value, "ci_low": low, "ci_high": high,
            "count": int(len(values)), "unit": unit, "sample_short": short}


# -- perplexity -------------------------------------------------------------------------------


def sentence_log_perplexity(logprobs: np.ndarray) -> float:
    """Mean negative log-prob (nats) over the scored tokens; NaN when none is scored."""
    return float(sentence_log_perplexities([logprobs])[0])


def sentence_log_perplexities(logprobs: Sequence[np.ndarray]) -> np.ndarray:
    """:func:`sentence_log_perplexity` of each array, all at once (float64 sums): a per-sentence
    loop took a third of a second per checkpoint for 30,000 sentences."""
    n = len(logprobs)
    lengths = np.fromiter((len(lp) for lp in logprobs), dtype=np.int64, count=n)
    flat = np.concatenate([np.asarray(lp, dtype=np.float64).reshape(-1) for lp in logprobs]) if n else np.empty(0)
    scored = ~np.isnan(flat)
    owner = np.repeat(np.arange(n), lengths)
    sums = np.bincount(owner, weights=np.where(scored, flat, 0.0), minlength=n)
    counts = np.bincount(owner, weights=scored, minlength=n)
    out = np.full(n, np.nan)
    np.divide(-sums, counts, out=out, where=counts > 0)
    return out


def _perplexity_requests(data, subsets=PERPLEXITY_SUBSETS) -> Requests:
    return {subset: data.sample(subset) for subset in subsets}


@register_metric("perplexity", requests=_perplexity_requests, subsets=PERPLEXITY_SUBSETS)
def perplexity(data, logprobs: LogProbs, options: MetricOptions) -> list[dict]:
    """Geometric mean over sentences of exp(mean token loss after the first token), with a bootstrap 95% CI."""
    rows = []
    for subset in (s for s in PERPLEXITY_SUBSETS if s in logprobs):  # those evaluate() was asked for
        logs = sentence_log_perplexities(logprobs[subset])
        logs = logs[~np.isnan(logs)]
        if len(logs) == 0:
            continue  # e.g. shuffles have no unaffected test sentences
        rows.append(row("perplexity", subset, logs, *geometric_mean_ci(logs, options.seed), unit="perplexity",
                        short=data.shortfall(subset)))
    return rows


# -- hop marker surprisal ---------------------------------------------------------------------


@dataclass
class MarkerPairs:
    """Each affected sentence with a marker, plus EOS, and the same without its first marker."""

    index: list[int] = field(default_factory=list)  # position of the first marker
    with_marker: Sequences = field(default_factory=list)
    without_marker: Sequences = field(default_factory=list)


def marker_pairs(sequences: Sequences, marker_ids, eos_id: int) -> MarkerPairs:
    markers = set(marker_ids)
    pairs = MarkerPairs()
    for seq in map(list, sequences):
        found = [seq.index(m) for m in markers if m in seq]  # C-level scans, a few markers
        if not found:
            continue
        i = min(found)
        pairs.index.append(i)
        pairs.with_marker.append(seq + [eos_id])
        # The token that followed the marker (or EOS) now sits at index i.
        pairs.without_marker.append(seq[:i] + seq[i + 1 :] + [eos_id])
    return pairs


def _pairs(data) -> MarkerPairs:
    return marker_pairs(data.sample("test_affected", SURPRISAL_MAX_TOKENS), data.marker_ids.values(), data.eos_id)


def _surprisal_requests(data) -> Requests:
    pairs = _pairs(data)
    at = [[i] for i in pairs.index]  # the marker, or the token that took its place
    return {"with_marker": AtPositions(pairs.with_marker, at), "without_marker": AtPositions(pairs.without_marker, at)}


# The metrics that read agreement markers: they apply to languages that mark agreement (the hops).
MARKER_METRICS = ("marker_surprisal", "surprisal_difference")


def _marks_agreement(data) -> bool:
    """The dataset's language marks agreement; a name the registry does not know falls back to
    the family its manifest recorded."""
    from impossible_lms.errors import ILMError
    from perturbations import get_language

    try:
        return get_language(str(getattr(data, "language", ""))).marks_agreement
    except ILMError:
        return getattr(data, "family", None) == "hop"


@register_metric("marker_surprisal", requests=_surprisal_requests, applies=_marks_agreement)
def marker_surprisal(data, logprobs: LogProbs, options: MetricOptions) -> list[dict]:
    """Surprisal of the first marker and (surprisal_difference) that of the token at its index
    once the marker is removed minus the marker's, as means with bootstrap 95% CIs."""
    if options.unit not in UNITS:
        raise ILMError(f"unit {options.unit!r} is not one of {', '.join(UNITS)}")
    scale = 1 / LN2 if options.unit == "bits" else 1.0
    pairs = _pairs(data)
    marker, following = [], []
    for i, with_lp, without_lp in zip(pairs.index, logprobs["with_marker"], logprobs["without_marker"]):
        if np.isnan(with_lp[i]) or np.isnan(without_lp[i]):
            continue  # marker at index 0 and no EOS conditioning: nothing to predict it from
        marker.append(-with_lp[i] * scale)
        following.append(-without_lp[i] * scale)
    marker_arr, diff = np.array(marker), np.array(following) - np.array(marker)
    if len(marker_arr) == 0:
        return []
    short = data.shortfall("test_affected", SURPRISAL_MAX_TOKENS)
    return [
        row("marker_surprisal", "test_affected", marker_arr, *bootstrap_mean(marker_arr, options.seed),
            unit=options.unit, short=short),
        row("surprisal_difference", "test_affected", diff, *bootstrap_mean(diff, options.seed),
            unit=options.unit, short=short),
    ]
