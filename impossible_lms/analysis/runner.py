"""The checkpoint sweep an analysis shares with ``evaluate``: resolve, skip what is stored, load, store.

An analysis gives ``prepare(subject) -> (Analysis, compute)``: what its numbers
depend on (settings may depend on the subject, e.g. its language) and
``compute(model, target) -> rows`` per checkpoint. :func:`run_analysis` resolves the subject
(the evaluation's :func:`resolve_subject`), skips checkpoints whose result
file exists (the store's key: metric, data fingerprint, settings), loads the
rest through the evaluation's prefetching strict loader, labels the rows
(subject, language, model, seed, checkpoint) and writes one atomic file per
checkpoint.
"""

from __future__ import annotations

import dataclasses
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from impossible_lms.errors import ILMError
from impossible_lms.evaluation import sweep
from impossible_lms.evaluation.scoring import precision
from impossible_lms.evaluation.store import COLUMNS, chunk_path, load_results, with_integer_columns, write_chunk
from impossible_lms.evaluation.subjects import Subject, Target, resolve_subject
from impossible_lms.io import fingerprint

ANALYSIS_VERSION = "1"


@dataclass(frozen=True)
class Analysis:
    """What one analysis call computes: its metric name, data identity and settings."""

    metric: str
    data_name: str  # the store's eval_language slot (e.g. "agreement")
    data_fingerprint: str
    settings: dict
    # the options that change the numbers, written into every row's `options` column so that two
    # runs with different ones in one results folder report as two labelled variants, never one
    shown: tuple[str, ...] = ()

    def options(self) -> str:
        return ", ".join(f"{k}={self.settings[k]}" for k in self.shown)

    def key(self) -> str:
        return fingerprint(self.metric, self.data_fingerprint, self.settings, ANALYSIS_VERSION)


Compute = Callable[[object, Target], list[dict]]

_INFO: ContextVar[Callable[[str], None] | None] = ContextVar("analysis_progress_info", default=None)


def progress_info(text: str) -> None:
    """Show ``text`` beside the running checkpoint's progress bar (a long ``compute`` says how far it
    is: a line in a log every ``ILM_PROGRESS_EVERY`` s); a no-op outside :func:`run_analysis`."""
    show = _INFO.get()
    if show is not None:
        show(text)


def run_analysis(subject: str | Path, prepare: Callable[[Subject], tuple[Analysis, Compute]],
                 checkpoints=None, revisions: Sequence[str] | None = None, results: str | Path | None = None,
                 dtype: str = "float32", device: str = "auto", show_progress: bool = False) -> pd.DataFrame:
    """Rows of ``compute`` for every checkpoint of ``subject``; stored ones are read back, not recomputed."""
    subj = resolve_subject(subject, checkpoints, list(revisions or []))
    analysis, compute = prepare(subj)
    dtype, torch_device = sweep.resolve_dtype(dtype, device)
    # the canonical dtype is what the numbers depend on (fp32 weights; a low dtype is autocast, as in eval)
    analysis = dataclasses.replace(analysis, settings={**analysis.settings, "dtype": dtype})
    key = analysis.key()
    frames, todo = [], []
    for target in subj.targets:
        path = None if results is None else chunk_path(Path(results), subj.name, target.step, target.revision,
                                                       analysis.metric, analysis.data_name, key)
        if path is not None and path.is_file():
            frames.append(load_results([path]))
        else:
            todo.append((target, path))
    paths = dict(todo)
    from impossible_lms.progress import progress

    with progress(disable=not show_progress) as bars:
        task = bars.add_task(analysis.metric, total=len(todo))
        for target, model in sweep.prefetched_models([t for t, _ in todo], torch_device):
            shown = _INFO.set(lambda text: bars.update(task, info=f"checkpoint {target.step}: {text}"))
            try:
                with precision(model, dtype):
                    computed = compute(model, target)
            finally:
                _INFO.reset(shown)
            rows = [_label(r, subj, target, analysis) for r in computed]
            if paths[target] is not None:
                write_chunk(paths[target], rows)
            frames.append(pd.DataFrame(rows, columns=COLUMNS))
            del model
            bars.advance(task)
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=COLUMNS)
    return with_integer_columns(pd.concat(frames, ignore_index=True))


def _label(r: dict, subj: Subject, target: Target, analysis: Analysis) -> dict:
    seed = subj.seed if subj.seed is not None else analysis.settings.get("seed")
    return {
        **r,
        "subject": subj.name,
        "path": subj.path,
        "language": subj.language or analysis.settings.get("language") or "",
        "model": subj.model or subj.name,
        "seed": seed,
        "checkpoint": target.step,
        "metric": r.get("metric") or analysis.metric,  # an analysis may write several metrics in one file
        "eval_language": subj.language or analysis.settings.get("language") or "",
        "data_fingerprint": analysis.data_fingerprint,
        "scorer_version": f"{analysis.metric}-{ANALYSIS_VERSION}",
        "dtype": analysis.settings["dtype"],
        "options": analysis.options(),
    }


def percent_row(metric: str, wins, seed: int, **fields) -> dict:
    """A row of the share (percent) of true ``wins``, with a bootstrap 95% CI over them (``fields``:
    subset, label, layer, ...)."""
    from impossible_lms.evaluation.stats import bootstrap_mean

    values = np.asarray(wins, dtype=np.float64) * 100.0
    value, low, high = bootstrap_mean(values, seed)
    return {"metric": metric, **fields, "value": value, "ci_low": low, "ci_high": high,
            "count": int(len(values)), "unit": "%"}


def check_subject_vocab(model, needed: int, target: Target) -> None:
    size = getattr(model.config, "vocab_size", None)
    if size is not None and size < needed:
        raise ILMError(f"{target}: the model's vocabulary ({size}) does not cover id {needed - 1} of the data; "
                       "was it trained on another tokenizer?")
