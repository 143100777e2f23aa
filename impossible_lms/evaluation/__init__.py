"""Evaluation: perplexity, hop marker surprisal, per-layer metrics, batching, result store.

    >>> from impossible_lms.evaluation import evaluate, load_results, METRICS
    >>> df = evaluate("runs/no_hop/gpt2/seed0", data="data/no_hop", checkpoints="100-3000:100",
    ...               metrics=["perplexity", "marker_surprisal"], results="results/")

Scoring rules: :mod:`impossible_lms.evaluation.scoring`; metrics and how to add
one: :mod:`impossible_lms.evaluation.metrics`; storage: :mod:`.store`.
"""

from impossible_lms.evaluation.sweep import evaluate
from impossible_lms.evaluation.metrics import METRICS, AtPositions, MetricOptions, register_metric
from impossible_lms.evaluation.scoring import SCORER_VERSION, Cells, ScoreOptions, score_cells, score_sequences
from impossible_lms.evaluation.store import COLUMNS, load_results
from impossible_lms.evaluation.subjects import parse_checkpoints

__all__ = [
    "AtPositions", "COLUMNS", "Cells", "METRICS", "MetricOptions", "SCORER_VERSION", "ScoreOptions", "evaluate",
    "load_results", "parse_checkpoints", "register_metric", "score_cells", "score_sequences",
]
