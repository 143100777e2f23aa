"""BLiMP-style minimal pairs: does the model give the grammatical sentence the higher probability?

Stimuli are JSON lines with ``sentence_good`` and ``sentence_bad`` (BLiMP's own
field names; the public set is ``nyu-mll/blimp`` on the Hugging Face Hub, one
file per paradigm). Each pair has a paradigm (BLiMP's ``UID``, else the file's
name: BLiMP's 67) and a phenomenon (``phenomenon``, else ``linguistics_term``:
BLiMP's 13 groups; else the paradigm). Accuracy is the share of pairs (in
percent) whose good sentence has the higher total log-probability: over all
pairs (subset ``all``), per paradigm (label ``paradigm``) and per phenomenon
(label ``phenomenon``), with a bootstrap interval over pairs; the pairs the
language's filters drop are stored too, per paradigm (metric
``minimal_pair_dropped``, in pairs).

Each sentence is first put into the model's language with the rules of the
dataset given as ``data`` (its manifest names the language, its tokenizer
folder gives the ids): shuffles and reverses apply to the sentence's tokens,
drawing from one fresh stream of the language in file order (good, then bad,
pair by pair); hops need tags, so a tagger (``nltk`` by default, or any tagger
object) tags each sentence first, as the reference evaluates hop models on
stimuli with the marker rules applied. A pair whose either side the
language's filters drop is left out and counted (``dropped`` in the result's
settings). Sentences are scored conditioned on EOS (the reference's BOS), so
every token, the first included, counts in the total.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from impossible_lms.analysis.runner import Analysis, check_subject_vocab, percent_row, run_analysis
from impossible_lms.errors import ILMError
from impossible_lms.io import fingerprint

METRIC = "minimal_pair_accuracy"
DROPPED_METRIC = "minimal_pair_dropped"
HUB_ID = "nyu-mll/blimp"
_PHENOMENON_FIELDS = ("phenomenon", "linguistics_term")


@dataclass(frozen=True)
class MinimalPair:
    good: str
    bad: str
    phenomenon: str
    paradigm: str = ""  # BLiMP's UID (one file per paradigm); "" = the phenomenon


def load_pairs(paths: str | Path | Sequence[str | Path]) -> list[MinimalPair]:
    """Pairs from JSONL files (or folders of ``*.jsonl``), in file then line order."""
    from impossible_lms.analysis.stimuli import stimulus_files

    files = stimulus_files(paths, ".jsonl", "minimal-pair file", HUB_ID, "blimp")
    pairs: list[MinimalPair] = []
    for f in files:
        for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except ValueError:
                raise ILMError(f"{f}:{n}: not a JSON object with sentence_good and sentence_bad") from None
            if not isinstance(item, dict):
                raise ILMError(f"{f}:{n}: not a JSON object with sentence_good and sentence_bad")
            for key in ("sentence_good", "sentence_bad"):  # the field by name: 5, null and "" are not sentences
                if not isinstance(item.get(key), str) or not item[key].strip():
                    got = "missing" if key not in item else f"{item[key]!r}"
                    raise ILMError(f"{f}:{n}: {key} must be a non-empty sentence (a string), got {got}")
            good, bad = item["sentence_good"], item["sentence_bad"]
            paradigm = str(item.get("UID") or f.stem)
            name = next((str(item[k]) for k in _PHENOMENON_FIELDS if item.get(k)), paradigm)
            pairs.append(MinimalPair(good, bad, name, paradigm))
    if not pairs:
        where = ", ".join(map(str, paths)) if isinstance(paths, (list, tuple)) else str(paths)
        raise ILMError(f"no minimal pairs in {where}")
    return pairs


@dataclass(frozen=True)
class PerturbedPairs:
    good: list[list[int]]
    bad: list[list[int]]
    phenomena: list[str]
    dropped: int
    language: str
    eos_id: int
    paradigms: list[str] | None = None  # per kept pair; None: the phenomena
    dropped_by_paradigm: dict[str, int] | None = None  # paradigm -> pairs its filters dropped (every paradigm named)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.good, self.bad, self.phenomena, self.paradigms, self.dropped_by_paradigm)


def perturb_pairs(pairs: Sequence[MinimalPair], data: str | Path, tagger="nltk") -> PerturbedPairs:
    """The pairs in the language of dataset folder ``data``, as its tokenizer's ids."""
    from impossible_lms.analysis.stimuli import perturb_texts

    done = perturb_texts([t for p in pairs for t in (p.good, p.bad)], data, tagger, genre="minimal_pairs")
    good, bad, phenomena, paradigms = [], [], [], []
    dropped = {p.paradigm or p.phenomenon: 0 for p in pairs}
    for p, g, b in zip(pairs, done.ids[0::2], done.ids[1::2]):
        if g is not None and b is not None:
            good.append(g)
            bad.append(b)
            phenomena.append(p.phenomenon)
            paradigms.append(p.paradigm or p.phenomenon)
        else:
            dropped[p.paradigm or p.phenomenon] += 1
    return PerturbedPairs(good, bad, phenomena, len(pairs) - len(good), done.language_name, done.eos_id,
                          paradigms, dropped)


def pair_rows(good_lp: Sequence[float], bad_lp: Sequence[float], phenomena: Sequence[str], seed: int = 0,
              paradigms: Sequence[str] | None = None, dropped: dict | None = None) -> list[dict]:
    """Accuracy rows (percent) over ``all``, per paradigm and per phenomenon, from total log-probs per
    sentence; and the dropped pairs per paradigm (``dropped``: paradigm -> count)."""
    wins = np.asarray(good_lp) > np.asarray(bad_lp)
    rows = [percent_row(METRIC, wins, seed, subset="all")]
    groups = {"paradigm": paradigms if paradigms is not None else phenomena, "phenomenon": phenomena}
    for label, names in groups.items():
        names = np.asarray(names, dtype=object)
        rows += [percent_row(METRIC, wins[names == subset], seed, subset=subset, label=label)
                 for subset in sorted(set(names))]
    for paradigm, count in sorted((dropped or {}).items()):
        rows.append({"metric": DROPPED_METRIC, "subset": paradigm, "label": "paradigm", "value": float(count),
                     "ci_low": np.nan, "ci_high": np.nan, "count": int(count), "unit": "pairs"})
    return rows


def minimal_pairs(
    subject: str | Path,
    data: str | Path,
    pairs: str | Path | Sequence[str | Path],
    checkpoints=None,
    results: str | Path | None = None,
    *,
    revisions: Sequence[str] | None = None,
    tagger="nltk",
    seed: int | None = None,
    batch_tokens: int = 16384,
    dtype: str = "float32",
    device: str = "auto",
    show_progress: bool = False,
) -> pd.DataFrame:
    """Minimal-pair accuracy per checkpoint of ``subject`` on the stimuli in ``pairs``, put into
    the language of dataset folder ``data``; stored rows in ``results`` are not recomputed."""
    from impossible_lms.evaluation.scoring import ScoreOptions, score_sequences

    stimuli = perturb_pairs(load_pairs(pairs), data, tagger)
    if not stimuli.good:
        raise ILMError(f"all {stimuli.dropped} minimal pairs were dropped by {stimuli.language}'s filters")

    def prepare(subj):
        run_seed = seed if seed is not None else (subj.seed if subj.seed is not None else 0)
        settings = {"seed": run_seed, "language": stimuli.language, "condition_on_eos": True,
                    "dropped": stimuli.dropped, "pairs": len(stimuli.good)}
        needed = max(max(map(max, stimuli.good)), max(map(max, stimuli.bad)), stimuli.eos_id) + 1
        options = ScoreOptions(batch_tokens=batch_tokens, condition_on_eos=True, eos_id=stimuli.eos_id)

        def compute(model, target) -> list[dict]:
            check_subject_vocab(model, needed, target)
            scores = score_sequences(model, stimuli.good + stimuli.bad, options)[None]
            totals = [float(np.nansum(s)) for s in scores]
            n = len(stimuli.good)
            return pair_rows(totals[:n], totals[n:], stimuli.phenomena, run_seed, stimuli.paradigms,
                             stimuli.dropped_by_paradigm)

        return Analysis(METRIC, f"minimal_pairs:{stimuli.language}", stimuli.fingerprint, settings), compute

    return run_analysis(subject, prepare, checkpoints, revisions, results, dtype, device, show_progress)
