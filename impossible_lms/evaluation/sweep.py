"""``evaluate()``: every metric for every checkpoint of a subject, each checkpoint loaded once.

For each checkpoint: gather the sequences all pending metrics need on all
datasets, score each distinct sequence once (a sequence that is a prefix of
another is read off the longer one's scores: causal models give a prefix the
same log-probs; a metric that reads only some tokens needs only the context of
the last of them, and any continuation of a context is read off one pass over
it, so a sentence without its marker costs nothing beside the sentence with it;
only the tokens asked for go through the vocabulary projection), derive every
metric's rows, and store them (one atomic file per metric and dataset, and per
subset for a metric that scores subsets one by one: perplexity). Finished (checkpoint, metric[, subset], data, settings) files
are skipped without loading the model, so a stopped sweep resumes, and a run
asking for more subsets than an earlier one scores only the new ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from impossible_lms.errors import ILMError
from impossible_lms.evaluation.data import DEFAULT_SCHEME, EvalData
from impossible_lms.evaluation.metrics import UNITS, AtPositions, Metric, MetricOptions, check_subsets, get_metrics
from impossible_lms.evaluation.scoring import (
    SCORER_VERSION, Cells, ScoreOptions, check_dtype, model_context, score_cells,
)
from impossible_lms.evaluation.store import COLUMNS, INT_COLUMNS, chunk_path, load_results, write_chunk
from impossible_lms.evaluation.subjects import Subject, Target, resolve_subject
from impossible_lms.io import fingerprint


@dataclass
class Job:
    """One stored chunk: a metric (one of its subsets, if it scores them separately) on one dataset at one checkpoint."""

    target: Target
    data: EvalData
    metric: Metric
    subset: str | None
    path: Path | None


def evaluate(
    subject: str | Path,
    data: str | Path | Sequence[str | Path],
    checkpoints: str | int | list | None = None,
    metrics: Iterable[str] = ("perplexity",),
    results: str | Path | None = None,
    *,
    subsets: Sequence[str] | None = None,
    revisions: Sequence[str] | None = None,
    dtype: str = "float32",
    device: str = "auto",
    batch_tokens: int | None = None,
    sentences_per_genre: int | None = 1000,
    sample_scheme: str = DEFAULT_SCHEME,
    condition_on_eos: bool = False,
    seed: int | None = None,
    unit: str = "bits",
    show_progress: bool = False,
) -> pd.DataFrame:
    """Score ``subject`` (run folder, checkpoint folder or HF model id) on ``data`` folder(s).

    ``batch_tokens``: padded tokens per forward pass (default 16384 on GPU, 2048 on CPU).
    ``checkpoints``: ``"100-3000:100"``, ``"all"``/None (every complete one) or a list;
    for a hub id they name ``checkpoint-<step>`` revisions. ``seed`` (default: the
    run's seed, else 0, as the reference samples with the model's seed) picks the
    sentence sample and the bootstrap; ``sample_scheme`` how the sample is drawn
    (:mod:`.data`: ``reference`` by default). Returns the
    long-format rows (docs/ARCHITECTURE.md §6); with ``results`` they are also
    stored there and reused on the next call. ``subsets``: the perplexity subsets to
    score (default: all of ``PERPLEXITY_SUBSETS``), e.g. ``["test_affected"]``, a third
    of the work; marker surprisal draws its own sample and is unaffected. Each subset
    is stored on its own, so a later run with more subsets reuses these.
    """
    if unit not in UNITS:
        raise ILMError(f"unit {unit!r} is not one of {', '.join(UNITS)}")
    if batch_tokens is not None and batch_tokens < 1:
        raise ILMError("batch_tokens must be positive")
    if sentences_per_genre is not None and sentences_per_genre < 1:
        raise ILMError("sentences_per_genre must be positive (or None for all)")
    subj = resolve_subject(subject, checkpoints, list(revisions or []))
    seed = seed if seed is not None else (subj.seed if subj.seed is not None else 0)
    folders = [data] if isinstance(data, (str, Path)) else list(data)
    if not folders:
        raise ILMError("no --data folder given")
    datasets = [EvalData(f, sentences_per_genre, seed, scheme=sample_scheme) for f in folders]
    _check_tokenizers(subj, datasets)
    chosen = get_metrics(list(metrics))
    wanted = None if subsets is None else check_subsets(subsets)
    dtype, torch_device = resolve_dtype(dtype, device)
    if batch_tokens is None:
        # [tokens, vocab] logits dominate memory: a GPU takes big batches, a CPU does better with small ones.
        batch_tokens = 16384 if str(torch_device).startswith("cuda") else 2048
    settings = {"scorer": SCORER_VERSION, "sentences_per_genre": sentences_per_genre, "seed": seed,
                "sample_scheme": sample_scheme, "condition_on_eos": condition_on_eos, "unit": unit,
                "dtype": dtype}
    options = MetricOptions(seed=seed, unit=unit)

    jobs = [
        Job(t, d, m, s, _path(results, subj, t, d, m, s, settings))
        for t in subj.targets for d in datasets for m in chosen if m.applies(d) for s in _parts(m, wanted)
    ]
    if not jobs:
        raise ILMError(f"none of the metrics {', '.join(m.name for m in chosen)} applies to this data")
    frames = []
    by_target: dict[Target, list[Job]] = {}
    for job in jobs:
        if job.path is not None and job.path.is_file():
            frames.append(load_results([job.path]))
        else:
            by_target.setdefault(job.target, []).append(job)

    from impossible_lms.progress import progress

    plans: dict = {}  # what each dataset's pending jobs ask of a checkpoint, made once (Plan)
    with progress(disable=not show_progress) as bars:
        outer = bars.add_task("checkpoints", total=len(by_target))
        for target, model in prefetched_models(list(by_target), torch_device):
            pending = by_target[target]
            for d in {id(j.data): j.data for j in pending}.values():
                _check_vocab(model, d, target)
            rows = _score_target(model, subj, target, pending, condition_on_eos, batch_tokens, options, settings, bars,
                                 plans)
            for job, job_rows in rows:
                frame = pd.DataFrame(job_rows, columns=COLUMNS)
                if job.path is not None:
                    write_chunk(job.path, job_rows)
                frames.append(frame)
            del model
            bars.advance(outer)
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=COLUMNS)
    out = pd.concat(frames, ignore_index=True)
    for col in INT_COLUMNS:
        out[col] = pd.to_numeric(out[col], errors="coerce").astype("Int64")
    return out


def _parts(m: Metric, wanted: tuple[str, ...] | None) -> list[str | None]:
    """The stored parts of metric ``m``: its chosen subsets when it scores them separately, else the whole."""
    if not m.subsets:
        return [None]
    return [s for s in m.subsets if wanted is None or s in wanted]


def _requests(m: Metric, d: EvalData, jobs: list[Job]) -> dict:
    """What metric ``m``'s pending jobs need: of a metric with subsets, only those subsets' requests
    (the others are not even sampled)."""
    if not m.subsets:
        return m.requests(d)
    pending = {j.subset for j in jobs}
    return m.requests(d, subsets=[s for s in m.subsets if s in pending])


@dataclass
class Plan:
    """What one dataset's pending metrics ask of a checkpoint, and where each answer lies in
    what scoring returns. It is the same at every checkpoint with the same jobs pending, so
    it is made once: sampling, carriers and cells take seconds for tens of thousands of
    sentences, and reading a checkpoint's answers is then one index per request."""

    requests: dict[str, dict]  # metric -> request name -> request
    carriers: list[tuple]
    to_score: list[Cells]  # per carrier
    # (metric, request name) -> per requested sequence, indices into the carriers' scores laid
    # end to end, one per token of its array; -1 (the NaN after them all) where nothing is read
    reads: dict[tuple[str, str], list[np.ndarray]]

    @classmethod
    def make(cls, by_metric: dict[str, list[Job]], d: EvalData, limit: int | None) -> "Plan":
        requests = {name: _requests(mine[0].metric, d, mine) for name, mine in by_metric.items()}
        asked = {(metric, name): _asked(r, limit) for metric, req in requests.items() for name, r in req.items()}
        unique = _carriers([a.key for part in asked.values() for a in part], limit)
        carriers = sorted(set(unique.values()))
        cells = {c: CarrierCells(c) for c in carriers}
        for part in asked.values():
            for a in part:
                cells[unique[a.key]].add(a)
        to_score = [cells[c].cells() for c in carriers]
        offsets = dict(zip(carriers, np.cumsum([0] + [len(c.positions) for c in to_score[:-1]]).tolist()))
        reads = {}
        for key, part in asked.items():
            reads[key] = []
            for a in part:
                at = cells[unique[a.key]].index(a)
                reads[key].append(np.where(at < 0, -1, at + offsets[unique[a.key]]))
        return cls(requests, carriers, to_score, reads)

    @staticmethod
    def lay_out(scores: list[np.ndarray]) -> np.ndarray:
        """Scoring's ``scores`` (one array per carrier) end to end, then the NaN that ``reads``' -1 picks."""
        return np.concatenate([*scores, np.full(1, np.nan, np.float32)])

    def logprobs(self, metric: str, laid_out: np.ndarray) -> dict[str, list[np.ndarray]]:
        """``metric``'s log-probs per request name, from one head's :meth:`lay_out`."""
        return {name: [laid_out[at] for at in self.reads[metric, name]] for name in self.requests[metric]}


def _score_target(model, subj: Subject, target: Target, jobs: list[Job], condition_on_eos: bool,
                  batch_tokens: int, options: MetricOptions, settings: dict, bars, plans: dict):
    """Rows of every job at one checkpoint; each dataset's distinct sequences scored once.
    ``plans``: the :class:`Plan` of each dataset and pending job set, kept across checkpoints."""
    out: dict[int, tuple[Job, list[dict]]] = {id(j): (j, []) for j in jobs}
    context = model_context(model)
    limit = None if context is None else context - int(condition_on_eos)
    for d in {id(j.data): j.data for j in jobs}.values():
        by_metric: dict[str, list[Job]] = {}
        for j in jobs:
            if j.data is d:
                by_metric.setdefault(j.metric.name, []).append(j)
        key = (id(d), limit, tuple(sorted((name, j.subset or "") for name, mine in by_metric.items() for j in mine)))
        if key not in plans:
            plans[key] = Plan.make(by_metric, d, limit)
        plan = plans[key]
        task = bars.add_task(f"{target.step if target.step is not None else target} {d.language}",
                             total=sum(len(c) for c in plan.carriers))
        scored = score_cells(
            model, [list(c) for c in plan.carriers], plan.to_score,
            ScoreOptions(batch_tokens=batch_tokens, condition_on_eos=condition_on_eos, eos_id=d.eos_id,
                         too_long="skip", dtype=settings["dtype"]),
            on_batch=lambda n: bars.advance(task, n),
        )
        bars.remove_task(task)
        for head, scores in scored.items():
            laid_out = plan.lay_out(scores)  # once per head, read by every metric
            for metric, mine in by_metric.items():
                rows = mine[0].metric.compute(d, plan.logprobs(metric, laid_out), options)
                for j in mine:  # a subset's job takes that subset's rows
                    out[id(j)][1].extend(_label(r, subj, target, d, head, settings) for r in rows
                                         if j.subset is None or r["subset"] == j.subset)
    return list(out.values())


@dataclass(frozen=True)
class Ask:
    """One requested sequence as scoring sees it: ``key`` is carried by a sequence it is a
    prefix of; ``positions`` None reads every token of ``key``, else log p(``targets[j]`` |
    sequence[:``positions[j]``]) for each j, in an array of ``length`` (NaN elsewhere)."""

    key: tuple
    length: int
    positions: list[int] | None = None
    targets: list[int] | None = None


def _asked(request, limit: int | None) -> list[Ask]:
    """What scoring needs for each requested sequence.

    A request for some positions (:class:`AtPositions`) needs only the context of the last
    of them: a log-prob depends on the tokens before it and on its own token, which need
    not be the carrier's there (the same context predicts every continuation, so a
    sentence without its marker is read off the sentence with it). Unless the whole
    sequence is too long for the model: then it stays whole, so it is skipped (all NaN)
    as it always was.
    """
    if not isinstance(request, AtPositions):
        return [Ask(tuple(s), len(s)) for s in request]
    out = []
    for s, pos in zip(request.sequences, request.positions):
        fits = limit is None or len(s) <= limit
        key = tuple(s[: max(pos, default=0)]) if fits else tuple(s)
        out.append(Ask(key, len(s), list(pos), [s[p] for p in pos]))
    return out


class CarrierCells:
    """The log-probs asked of one carrier: of its own tokens (a mask) and of other continuations."""

    def __init__(self, carrier: tuple):
        self.carrier = carrier
        self.own = np.zeros(len(carrier), dtype=bool)
        self.other: dict[tuple[int, int], int] = {}  # (position, target) -> its index among them
        self._own_at: np.ndarray | None = None  # each own token's index among cells(), once all are added

    def is_own(self, position: int, target: int) -> bool:
        return position < len(self.carrier) and self.carrier[position] == target

    def add(self, ask: Ask) -> None:
        if ask.positions is None:
            self.own[: len(ask.key)] = True
            return
        for p, t in zip(ask.positions, ask.targets):
            if self.is_own(p, t):
                self.own[p] = True
            else:
                self.other.setdefault((p, t), len(self.other))

    def cells(self) -> Cells:
        """What scoring computes (once every ask is added): the own tokens asked for, then the others."""
        own = np.flatnonzero(self.own)
        other = np.array(list(self.other), dtype=np.int64).reshape(-1, 2)
        return Cells(np.concatenate([own, other[:, 0]]),
                     np.concatenate([np.asarray(self.carrier, dtype=np.int64)[own], other[:, 1]]))

    def index(self, ask: Ask) -> np.ndarray:
        """Where ``ask``'s log-probs lie among :meth:`cells` (once every ask is added), one index
        per token of its array (the first ``length`` of the carrier's, or only its positions);
        -1 where none is read."""
        if self._own_at is None:
            self._own_at = np.full(len(self.carrier), -1, dtype=np.int64)
            self._own_at[self.own] = np.arange(int(self.own.sum()))
        own_at, owned = self._own_at, int(self.own.sum())
        if ask.positions is None:
            return own_at[: ask.length]
        out = np.full(ask.length, -1, dtype=np.int64)
        for p, t in zip(ask.positions, ask.targets):
            out[p] = own_at[p] if self.is_own(p, t) else owned + self.other[p, t]
        return out


def _carriers(sequences: list[Sequence[int]], limit: int | None = None) -> dict[tuple, tuple]:
    """Map each distinct sequence to the longest sequence it is a prefix of (within ``limit`` tokens).

    In sorted order a prefix sits right before the sequences that extend it, so
    one backwards pass finds, for each, the carrier of its successor.
    """
    keys = sorted({tuple(s) for s in sequences})
    carrier: dict[tuple, tuple] = {}
    for i in range(len(keys) - 1, -1, -1):
        k = keys[i]
        nxt = keys[i + 1] if i + 1 < len(keys) else None
        extends = nxt is not None and nxt[: len(k)] == k
        fits = extends and (limit is None or len(carrier[nxt]) <= limit)
        carrier[k] = carrier[nxt] if fits else k
    return carrier


def _label(r: dict, subj: Subject, target: Target, d: EvalData, head, settings: dict) -> dict:
    return {
        **r,
        "subject": subj.name,
        "path": subj.path,
        "language": subj.language or d.language,
        "model": subj.model or subj.name,
        "seed": settings["seed"] if subj.seed is None else subj.seed,
        "checkpoint": target.step,
        "layer": head,
        "eval_language": d.language,
        "data_fingerprint": d.fingerprint,
        "scorer_version": SCORER_VERSION,
        # what else the numbers depend on (the report never averages rows that differ in these)
        "dtype": settings["dtype"],
        "sample_scheme": settings["sample_scheme"],
        "sample_size": settings["sentences_per_genre"] or 0,
        "sample_seed": settings["seed"],
        "condition_on_eos": settings["condition_on_eos"],
    }


def _path(results, subj: Subject, target: Target, d: EvalData, m: Metric, subset: str | None,
          settings: dict) -> Path | None:
    if results is None:
        return None
    if subset is None:
        key, name = fingerprint(m.name, d.fingerprint, settings), m.name
    else:
        key, name = fingerprint(m.name, subset, d.fingerprint, settings), f"{m.name}.{subset}"
    return chunk_path(Path(results), subj.name, target.step, target.revision, name, d.language, key)


def _check_tokenizers(subj: Subject, datasets: list[EvalData]) -> None:
    """Cross-language evaluation needs the training data's tokenizer (same ids, same markers)."""
    if subj.train_data is None or not (subj.train_data / "manifest.json").is_file():
        return  # nothing to compare with: the vocabulary check still guards the ids
    from impossible_lms.data import load_manifest

    trained = load_manifest(subj.train_data)
    fp = trained.tokenizer.get("fingerprint")
    for d in datasets:
        if d.manifest.tokenizer.get("fingerprint") != fp:
            raise ILMError(
                f"{d.folder} ({d.language}) was tokenised differently from the run's training data "
                f"({trained.language}); a model can only be scored on data with the same tokenizer"
            )


def _check_vocab(model, d: EvalData, target: Target) -> None:
    size = getattr(model.config, "vocab_size", None)
    if size is not None and size < d.manifest.vocab_size:
        raise ILMError(
            f"{target}: the model's vocabulary ({size}) is smaller than the data's ({d.manifest.vocab_size}, "
            f"{d.language}); was it trained on another tokenizer?"
        )


def prefetched_models(targets: list[Target], device):  # public: the analyses' sweep uses it too
    """Yield (target, model), loading the next checkpoint on a thread while this one is scored
    (reading weights from disk then overlaps with the forward passes)."""
    from concurrent.futures import ThreadPoolExecutor

    if not targets:
        return
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(load_target, targets[0], device)
        for i, target in enumerate(targets):
            model = future.result()  # a loading error surfaces here, after earlier checkpoints are stored
            if i + 1 < len(targets):
                future = pool.submit(load_target, targets[i + 1], device)
            yield target, model
            del model


def load_target(target: Target, device):
    """The checkpoint's model in eval mode, float32 weights (a low scoring dtype is autocast, never
    low-precision LayerNorms or residuals); any loading failure names the checkpoint."""
    import torch

    from impossible_lms.models import load_model

    try:
        return load_model(target.location, revision=target.revision, dtype=torch.float32, device=device)
    except ILMError as e:
        raise ILMError(f"cannot load {target}: {e}") from None
    except Exception as e:  # a corrupt folder: bad JSON, truncated weights, ...
        raise ILMError(f"cannot load {target} (corrupt checkpoint?): {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None


def resolve_dtype(dtype: str, device: str) -> tuple[str, str]:
    """(canonical scoring dtype, device): float32 unless asked, on every device, as the reference scored."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return check_dtype(dtype), device
