"""Production: does what a model writes obey its language's rule? (after Haley, Janarthan &
Goldwater 2026, who judge impossible-language models by their generations, not only by perplexity).

For every checkpoint of a run:

1. **Prompts.** ``prompts`` sentences of the language's ``test_affected`` split (the sentences
   its rule changes), drawn once with ``numpy.random.default_rng(seed)`` among those longer
   than ``prompt_tokens`` + 1; each prompt is its first ``prompt_tokens`` ids. Every
   checkpoint gets the same prompts.
2. **Sampling.** Each prompt is continued by ancestral sampling at ``temperature`` (0: greedy)
   for at most ``max_new_tokens`` tokens, from a ``torch.Generator`` seeded with ``seed``
   (the same draws for every checkpoint, whatever else ran before). A generation is
   *finished* when the model writes EOS; the sentence is the prompt plus what came before
   EOS.
3. **Rule.** ``Language.conforms`` judges each sentence on its tokens alone; an unfinished
   generation is not a sentence and counts as not conforming. Where the rule is a
   bijection given the sentence (``Language.undo``: the fixed-order shuffles, the reverses,
   NoHop and TokenHop), each conforming sentence is put back into the control language's
   form and scored by the ``judge`` (a model of the control language, normally the same
   recipe and seed trained on the control) exactly as ``evaluate`` scores perplexity.

Rows (metric, subset):

- ``production_conforming`` (``all``): percent of generations that are finished and
  conform, with a bootstrap 95% interval over generations.
- ``production_finished`` (``all``): percent that wrote EOS within ``max_new_tokens``.
- ``production_undone_perplexity`` (``all``): the judge's perplexity of the undone
  conforming sentences (geometric mean over sentences, first token unscored), with its
  interval; ``count`` says how many. Low means the model writes its language's rule around
  text the control model finds natural. Without a judge, or for languages whose rule
  cannot be undone from tokens (NondeterministicShuffle, WordHop, the tree languages), no row.
- ``production_markers`` (``generated`` / ``test``): markers per sentence in the finished
  generations and in the test sentences the prompts came from (marker languages only).
- ``production_marker_placement`` (``generated`` / ``test``): for the hops that undo (NoHop,
  TokenHop), the percent of markers in the conforming generations (and in the test
  sentences, the reference value) that, once undone, stand right after a token a marker
  follows in the training data (``marker_hosts``, from the train split's first rows): after
  a verb lemma the language marks. Tokens alone cannot say this; the training data can.

What tokens can and cannot show (see ``Language.conforms``): a shuffle's generation
conforms whenever it holds no marker and passes the length filter (any order is some
sentence's shuffle); a reverse's needs exactly one 🅁; a hop's needs every marker after a
token, never first nor doubled, at a distance its hop allows. Whether the reordered or
marked words are the right ones is what the undone perplexity measures.
"""

from __future__ import annotations

from itertools import islice
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from impossible_lms.analysis.runner import Analysis, check_subject_vocab, percent_row, run_analysis
from impossible_lms.errors import ILMError
from impossible_lms.io import fingerprint

METRICS = ("production_conforming", "production_finished", "production_undone_perplexity", "production_markers",
           "production_marker_placement")
PROMPT_SPLIT = "test_affected"
# the placement lexicon reads the train split's first rows, enough to hold this many marked sentences
LEXICON_ROWS = 200_000
LEXICON_SENTENCES = 50_000

# judge(sequences) -> one natural-log perplexity per sequence (NaN when it cannot score one)
Judge = Callable[[list[list[int]]], np.ndarray]


def draw_prompts(sentences: Sequence[Sequence[int]], count: int, prompt_tokens: int, seed: int
                 ) -> tuple[list[list[int]], list[list[int]]]:
    """(prompts, the sentences they open): ``count`` sentences longer than ``prompt_tokens`` + 1,
    drawn without replacement by ``default_rng(seed)``, in corpus order."""
    if count < 1 or prompt_tokens < 1:
        raise ILMError("production needs at least 1 prompt of at least 1 token")
    long_enough = [i for i, s in enumerate(sentences) if len(s) > prompt_tokens + 1]
    if not long_enough:
        raise ILMError(f"no {PROMPT_SPLIT} sentence is longer than {prompt_tokens + 1} tokens to prompt with")
    chosen = sorted(np.random.default_rng(seed).choice(long_enough, min(count, len(long_enough)), replace=False))
    sources = [list(sentences[i]) for i in chosen]
    return [s[:prompt_tokens] for s in sources], sources


def sample_continuations(model, prompts: Sequence[Sequence[int]], max_new_tokens: int, temperature: float,
                         eos_id: int, seed: int, batch_size: int = 64, vocab_size: int | None = None
                         ) -> list[tuple[list[int], bool]]:
    """Per prompt: the sampled continuation up to (not including) EOS, and whether EOS came.

    Prompts of one length are continued together; the model sees the whole sequence at
    every step (no cache), so any causal LM that returns ``logits`` works, LSTMs included.
    ``vocab_size``: the tokenizer's; ids past it (the padding rows of an embedding rounded
    up for speed) are never drawn."""
    import torch

    from impossible_lms.evaluation.scoring import model_context

    if max_new_tokens < 1:
        raise ILMError("max_new_tokens must be at least 1")
    if temperature < 0:
        raise ILMError("temperature must be 0 (greedy) or more")
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    context = model_context(model)
    out: list[tuple[list[int], bool] | None] = [None] * len(prompts)
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    with torch.no_grad():
        for batch in batches:
            by_length: dict[int, list[int]] = {}
            for i in batch:
                by_length.setdefault(len(prompts[i]), []).append(i)
            for rows in by_length.values():
                ids = torch.tensor([list(prompts[i]) for i in rows], device=device)
                done = torch.zeros(len(rows), dtype=torch.bool, device=device)
                steps = max_new_tokens if context is None else min(max_new_tokens, context - ids.shape[1])
                for _ in range(max(steps, 0)):
                    logits = model(ids).logits[:, -1].float()
                    if vocab_size is not None:
                        logits[:, vocab_size:] = float("-inf")
                    if temperature == 0:
                        token = logits.argmax(-1)
                    else:
                        token = torch.multinomial((logits / temperature).softmax(-1), 1, generator=generator)[:, 0]
                    token = torch.where(done, torch.full_like(token, eos_id), token)
                    ids = torch.cat((ids, token[:, None]), dim=1)
                    done |= token == eos_id
                    if bool(done.all()):
                        break
                start = len(prompts[rows[0]])
                for row, i in enumerate(rows):
                    new = ids[row, start:].tolist()
                    finished = eos_id in new
                    out[i] = (new[:new.index(eos_id)] if finished else new, finished)
    return [o for o in out if o is not None]


def marker_hosts(language, sentences: Sequence[Sequence[int]], marker_ids: dict[str, int],
                 limit: int = LEXICON_SENTENCES) -> frozenset[int]:
    """The tokens that stand right before a marker once a sentence is undone into the control's form
    (for the hops: the last token of each agreeing verb's lemma), read from the first ``limit``
    sentences with a marker; empty for languages without markers or without an undo."""
    own = language.own_marker_ids(marker_ids)
    if not own or not language.invertible:
        return frozenset()
    marked = (s for s in sentences if own.intersection(s))
    hosts = {t for s in islice(marked, limit) for t in _before_markers(language.undo(s, marker_ids), own)}
    return frozenset(hosts - {None})


def placement(language, sentences: Sequence[Sequence[int]], marker_ids: dict[str, int],
              hosts: frozenset[int]) -> np.ndarray:
    """Per marker in the undone ``sentences`` (those that undo): does it stand after a token that a
    marker follows in the training data (``marker_hosts``)?"""
    return _placed([language.undo(s, marker_ids) for s in sentences], language.own_marker_ids(marker_ids), hosts)


def _before_markers(undone: Sequence[int] | None, own: frozenset[int]) -> list[int | None]:
    """Per marker of an undone sentence, the token right before it (None for a marker that comes
    first); nothing for a sentence that did not undo (None)."""
    return [] if undone is None else [undone[i - 1] if i else None for i, t in enumerate(undone) if t in own]


def _placed(undone: Sequence[Sequence[int] | None], own: frozenset[int], hosts: frozenset[int]) -> np.ndarray:
    return np.array([t in hosts for u in undone for t in _before_markers(u, own)], dtype=bool)


def production_rows(language, prompts: Sequence[Sequence[int]], continuations: Sequence[tuple[list[int], bool]],
                    sources: Sequence[Sequence[int]], marker_ids: dict[str, int], judge: Judge | None,
                    seed: int = 0, hosts: frozenset[int] = frozenset()) -> list[dict]:
    """The rows of one checkpoint (module doc) from its generations; ``language`` is a ``Language``;
    ``hosts``: the tokens markers follow in the training data (``marker_hosts``)."""
    from impossible_lms.evaluation.stats import geometric_mean_ci

    sentences = [list(p) + c for p, (c, _) in zip(prompts, continuations)]
    finished = np.array([f for _, f in continuations], dtype=bool)
    rows = [percent_row("production_finished", finished, seed, subset="all")]
    verdicts = [language.conforms(s, marker_ids) if f else False for s, f in zip(sentences, finished)]
    if any(v is None for v in verdicts):
        return rows  # no rule checkable on tokens (tree languages): finished share only
    conforming = np.array(verdicts, dtype=bool)
    rows.append(percent_row("production_conforming", conforming, seed, subset="all"))
    # the conforming generations in the control's form, once for the judge and the placement
    undone = [language.undo(s, marker_ids) for s, ok in zip(sentences, conforming) if ok] \
        if language.invertible else []
    if judge is not None and undone:
        logs = np.asarray(judge([u for u in undone if u is not None]), dtype=np.float64)
        logs = logs[~np.isnan(logs)]
        if len(logs):
            value, low, high = geometric_mean_ci(logs, seed)
            rows.append({"metric": "production_undone_perplexity", "subset": "all", "value": value, "ci_low": low,
                         "ci_high": high, "count": int(len(logs)), "unit": "perplexity"})
    own = language.own_marker_ids(marker_ids)
    if own:
        for subset, group in (("generated", [s for s, f in zip(sentences, finished) if f]), ("test", sources)):
            if group:
                counts = np.array([sum(t in own for t in s) for s in group], dtype=np.float64)
                rows.append({"metric": "production_markers", "subset": subset, "value": float(counts.mean()),
                             "ci_low": np.nan, "ci_high": np.nan, "count": len(group), "unit": "markers"})
    if hosts:
        for subset, placed in (("generated", _placed(undone, own, hosts)),
                               ("test", placement(language, sources, marker_ids, hosts))):
            if len(placed):
                rows.append(percent_row("production_marker_placement", placed, seed, subset=subset))
    return rows


def model_judge(model, eos_id: int, batch_tokens: int = 16384) -> Judge:
    """A judge from a model: each sequence's log-perplexity as ``evaluate`` computes it."""
    from impossible_lms.evaluation.metrics import sentence_log_perplexities
    from impossible_lms.evaluation.scoring import ScoreOptions, score_sequences

    options = ScoreOptions(batch_tokens=batch_tokens, eos_id=eos_id, too_long="skip")

    def judge(sequences: list[list[int]]) -> np.ndarray:
        if not sequences:
            return np.zeros(0)
        scores = score_sequences(model, sequences, options)[None]
        return sentence_log_perplexities(scores)

    return judge


def production(
    subject: str | Path,
    data: str | Path,
    checkpoints=None,
    results: str | Path | None = None,
    *,
    judge: str | Path | None = None,
    revisions: Sequence[str] | None = None,
    prompts: int = 100,
    prompt_tokens: int = 3,
    max_new_tokens: int = 40,
    temperature: float = 1.0,
    seed: int | None = None,
    batch_tokens: int = 16384,
    dtype: str = "float32",
    device: str = "auto",
    show_progress: bool = False,
) -> pd.DataFrame:
    """Production rows (module doc) for every checkpoint of ``subject``, prompted from dataset
    ``data`` (the subject's language); ``judge`` is a model of the control language (a run
    folder: its last checkpoint) that scores the undone generations. Stored rows are reused."""
    from impossible_lms.data import load_manifest, load_split
    from perturbations import get_language

    manifest = load_manifest(data)
    language = get_language(manifest.language)
    split = load_split(data, PROMPT_SPLIT)
    sentences = [list(map(int, s)) for s in split["input_ids"]] if len(split) else []
    if not sentences:
        raise ILMError(f"{data}: no {PROMPT_SPLIT} sentences to prompt with")
    judge_model, judge_name = _load_judge(judge, language, manifest, device)
    hosts = frozenset()
    if language.marks_agreement and language.invertible:  # the hops that undo: NoHop, TokenHop
        rows = load_split(data, "train")[:LEXICON_ROWS]["input_ids"]
        hosts = marker_hosts(language, [list(map(int, s)) for s in rows], manifest.marker_ids)
    # the label rows carry (the full identity, seed included, is in the key): seeds of one study average
    judge_language = "none" if judge is None else (language.control or "")

    def prepare(subj):
        run_seed = seed if seed is not None else (subj.seed if subj.seed is not None else 0)
        prompt_ids, sources = draw_prompts(sentences, prompts, prompt_tokens, run_seed)
        settings = {"seed": run_seed, "language": manifest.language, "prompts": len(prompt_ids),
                    "prompt_tokens": prompt_tokens, "max_new_tokens": max_new_tokens, "temperature": temperature,
                    "judge": judge_name, "judged_by": judge_language}
        needed = max(max(map(max, prompt_ids)), manifest.eos_id) + 1
        scorer = None if judge_model is None else model_judge(judge_model, manifest.eos_id, batch_tokens)

        def compute(model, target) -> list[dict]:
            check_subject_vocab(model, needed, target)
            continuations = sample_continuations(model, prompt_ids, max_new_tokens, temperature, manifest.eos_id,
                                                 run_seed, vocab_size=manifest.vocab_size)
            return production_rows(language, prompt_ids, continuations, sources, manifest.marker_ids, scorer,
                                   run_seed, hosts)

        data_fp = fingerprint(manifest.identity(), prompt_ids)
        return Analysis("production", f"production:{manifest.language}", data_fp, settings,
                        shown=("temperature", "judged_by")), compute

    return run_analysis(subject, prepare, checkpoints, revisions, results, dtype, device, show_progress)


def _load_judge(judge, language, manifest, device):
    """The judge's model (float32, eval mode) and its identity: the run's results key and step."""
    if judge is None:
        return None, ""
    from impossible_lms.evaluation import sweep
    from impossible_lms.evaluation.subjects import resolve_subject

    subj = resolve_subject(judge)
    target = subj.targets[-1]
    if _language_name(subj.language) not in (None, _language_name(language.control)):
        raise ILMError(f"the judge {judge} is a model of {subj.language}, but {language.name}'s sentences are "
                       f"undone into {language.control}'s form: give a {language.control} model")
    _, torch_device = sweep.resolve_dtype("float32", device)
    model = sweep.load_target(target, torch_device)
    return model, f"{subj.name}@{target.step}"


def _language_name(spec: str | None) -> str | None:
    """The canonical name of a language spec; None for none or a guess that names no language."""
    from perturbations import get_language

    try:
        return get_language(spec).name if spec else None
    except ILMError:
        return None
