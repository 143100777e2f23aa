"""Complexity baselines (unigram entropy, Kneser-Ney n-grams, LZMA) and the separation statistic,
on datasets and results the tests write; the n-gram model against nltk.lm itself."""

from __future__ import annotations

import math
import random

import numpy as np
import pandas as pd
import pytest

from impossible_lms.errors import ILMError
from impossible_lms.evaluation.baselines import complexity_baselines, compression_bits_per_token, unigram_entropy
from impossible_lms.evaluation.ngram import KneserNey


# ---------------------------------------------------------------- the n-gram model against nltk.lm


def _nltk_and_ours(order: int, sentences: list[list[str]]):
    from nltk.lm import KneserNeyInterpolated
    from nltk.lm.preprocessing import padded_everygram_pipeline

    train, vocab = padded_everygram_pipeline(order, sentences)
    reference = KneserNeyInterpolated(order, discount=0.1)
    reference.fit(train, vocab)
    words = sorted({w for s in sentences for w in s} | {"<s>", "</s>"})
    ids = {w: i for i, w in enumerate(words)}
    pad = lambda s: ["<s>"] * (order - 1) + s + ["</s>"] * (order - 1)  # noqa: E731 (nltk's padding)
    ours = KneserNey(order, discount=0.1, base="none").fit([[ids[w] for w in pad(s)] for s in sentences])
    return reference, ours, ids, words, pad


@pytest.mark.parametrize("order", [2, 3, 4, 5])
def test_kneser_ney_equals_nltk_lm(order):
    rng = random.Random(order)
    sentences = [[rng.choice("abcdefgh") for _ in range(rng.randint(2, 9))] for _ in range(150)]
    reference, ours, ids, words, pad = _nltk_and_ours(order, sentences)
    checked = 0
    for s in sentences[:40]:  # every position of training sentences
        p = pad(s)
        for i in range(order - 1, len(p)):
            ctx = p[max(0, i - order + 1):i]
            assert ours.prob(ids[p[i]], [ids[w] for w in ctx]) == pytest.approx(reference.score(p[i], ctx), abs=1e-12)
            checked += 1
    for _ in range(300):  # contexts never seen, and every word after them
        ctx = [rng.choice(words) for _ in range(order - 1)]
        word = rng.choice([w for w in words if w != "<s>"])
        assert ours.prob(ids[word], [ids[w] for w in ctx]) == pytest.approx(reference.score(word, ctx), abs=1e-12)
        checked += 1
    assert checked > 500


def test_uniform_base_gives_unseen_tokens_mass_and_a_distribution():
    model = KneserNey(3, base="uniform", vocab_size=10).fit([[9, 1, 2, 3, 9], [9, 1, 2, 4, 9], [9, 2, 3, 1, 9]])
    for context in ((), (1,), (1, 2), (7, 7)):
        total = sum(model.prob(w, context) for w in range(10))
        assert total == pytest.approx(1.0, abs=1e-9), context
    assert 0 < model.prob(5, (1, 2)) < model.prob(3, (1, 2))  # 5 never seen: small, not zero
    with pytest.raises(ILMError, match="order must be a whole number from 2 to 9"):
        KneserNey(1, vocab_size=10)
    with pytest.raises(ILMError, match="discount must be 'auto' or a number in"):
        KneserNey(3, discount=1.5, vocab_size=10)


# ---------------------------------------------------------------- known answers on datasets


def _dataset(folder, language: str, train: list[list[int]], test: list[list[int]], vocab: int = 30):
    """A dataset folder as `ilm perturb` writes it (one genre; dev and test_affected = ``test``)."""
    from impossible_lms.data import Manifest, write_dataset

    splits = {split: {"input_ids": rows, "genre": ["g"] * len(rows), "affected": [True] * len(rows)}
              for split, rows in (("train", train), ("dev", test), ("test_affected", test), ("test_unaffected", []))}
    manifest = Manifest(language=language, family="shuffle", params={}, tokenizer={"name": "test", "fingerprint": "t"},
                        vocab_size=vocab, eos_id=vocab - 1, marker_ids={},
                        corpus={"name": "test", "fingerprint": language}, tagger="none")
    return write_dataset(folder, splits, manifest)


def _sentences(seed: int, n: int = 300) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 20, rng.integers(4, 12)).tolist() for _ in range(n)]


def test_a_reordered_language_has_the_same_unigram_entropy_and_a_worse_ngram(tmp_path):
    """A language whose sentences are another's in another token order: equal unigram entropy
    (the same multiset of tokens), but an n-gram no longer finds its structure."""
    grammar = [[1, 2, 3, 4 + (k % 5), 10, 11] for k in range(300)]  # regular order
    shuffled = [random.Random(k).sample(s, len(s)) for k, s in enumerate(grammar)]
    a = complexity_baselines(_dataset(tmp_path / "a", "no_shuffle", grammar, grammar[:60]), orders=(3,),
                             sentences_per_genre=None)
    b = complexity_baselines(_dataset(tmp_path / "b", "nondeterministic_shuffle", shuffled, shuffled[:60]),
                             orders=(3,), sentences_per_genre=None)
    get = lambda df, m, s: float(df[(df.metric == m) & (df.subset == s)]["value"].iloc[0])  # noqa: E731
    assert get(a, "unigram_entropy", "train") == pytest.approx(get(b, "unigram_entropy", "train"), abs=1e-12)
    assert get(b, "ngram_perplexity", "dev") > 2 * get(a, "ngram_perplexity", "dev")
    assert get(b, "compression_bpt", "dev") > get(a, "compression_bpt", "dev")


def test_a_deterministic_language_has_ngram_perplexity_near_one(tmp_path):
    same = [[3, 7, 1, 8, 2, 5, 9, 4]] * 400
    df = complexity_baselines(_dataset(tmp_path / "d", "no_shuffle", same, same[:200]), orders=(2, 3, 5),
                              sentences_per_genre=None)
    ppl = df[(df.metric == "ngram_perplexity") & (df.subset == "dev")].set_index("label")["value"]
    assert set(ppl.index) == {"order 2", "order 3", "order 5"}
    assert all(1.0 <= v < 1.05 for v in ppl), ppl.to_dict()
    entropy = float(df[df.metric == "unigram_entropy"]["value"].iloc[0])
    assert entropy == pytest.approx(math.log2(9), abs=1e-9)  # 8 ids + EOS, each equally often
    bpt = float(df[(df.metric == "compression_bpt") & (df.subset == "dev")]["value"].iloc[0])
    assert bpt < 0.3  # 200 copies of one sentence compress to almost nothing


def test_plain_functions():
    assert unigram_entropy([[0, 1], [0, 1]], eos_id=2) == (pytest.approx(math.log2(3)), 6)
    bpt, n = compression_bits_per_token([[5] * 100] * 20, eos_id=9, vocab_size=10)
    assert n == 2020 and bpt < 0.2
    assert math.isnan(compression_bits_per_token([], 9, 10)[0])


def test_ngram_rows_score_the_lms_sample_and_are_cached(tmp_path, monkeypatch):
    """The n-gram is scored on EvalData's sample for each seed (as the LM is), rows cached per seed."""
    from impossible_lms.evaluation import baselines as bl
    from impossible_lms.evaluation.data import EvalData

    folder = _dataset(tmp_path / "x", "no_shuffle", _sentences(0), _sentences(1, 200))
    results = tmp_path / "results"
    first = complexity_baselines(folder, results, orders=(2,), seeds=(0, 3), sentences_per_genre=50)
    ngram = first[first.metric == "ngram_perplexity"]
    assert sorted(ngram.seed.unique()) == [0, 3] and set(ngram["count"]) == {50}
    assert ngram.groupby("seed")["value"].first().nunique() == 2  # two samples, two values
    # the seed-3 number is the LM metric's own aggregation over EvalData's seed-3 sample
    model = KneserNey(2, "auto", vocab_size=30).fit([[29, *s, 29] for s in _sentences(0)])
    sample = EvalData(folder, 50, seed=3).sample("dev")
    logs = [-np.nanmean(model.logprobs(s, pad=29)) for s in sample]
    dev3 = ngram[(ngram.seed == 3) & (ngram.subset == "dev")]["value"].iloc[0]
    assert dev3 == pytest.approx(math.exp(np.mean(logs)), rel=1e-5)
    monkeypatch.setattr(bl, "unigram_entropy", lambda *a: pytest.fail("recomputed a cached baseline"))
    monkeypatch.setattr(KneserNey, "fit", lambda *a: pytest.fail("retrained a cached n-gram"))
    again = complexity_baselines(folder, results, orders=(2,), seeds=(3, 0), sentences_per_genre=50)
    assert len(again) == len(first)
    with pytest.raises(ILMError, match="order must be a whole number from 2 to 9"):
        complexity_baselines(folder, results, orders=(1,))


# ---------------------------------------------------------------- separation


def _lm_rows(curves: dict[str, list[float]], seeds=(0, 1), jitter=0.0) -> pd.DataFrame:
    """Perplexity result rows of runs whose curves are given (per language, over checkpoints 1..n)."""
    rows = []
    for language, curve in curves.items():
        for seed in seeds:
            for step, value in enumerate(curve, 1):
                rows.append({"subject": f"{language}/m/seed{seed}", "language": language, "model": "m", "seed": seed,
                             "checkpoint": step, "metric": "perplexity", "subset": "test_affected",
                             "value": value * (1 + jitter * seed), "eval_language": language})
    return pd.DataFrame(rows)


def _separation(df):
    from impossible_lms.reporting.complexity import separation_tables
    from impossible_lms.reporting.tables import prepare

    return separation_tables({"": prepare(df)})


@pytest.mark.parametrize("above, share", [(True, 100.0), (False, 0.0)])
def test_separation_share_is_one_when_every_impossible_curve_lies_above_its_control(above, share):
    control_shuffle, control_reverse = [50, 30, 20], [60, 40, 30]
    sign = 1 if above else -1
    curves = {"no_shuffle": control_shuffle, "local_shuffle:w=3": [v + sign * 5 for v in control_shuffle],
              "nondeterministic_shuffle": [v + sign * 9 for v in control_shuffle],
              "no_reverse": control_reverse, "full_reverse": [v + sign * 3 for v in control_reverse]}
    tables = _separation(_lm_rows(curves, jitter=0.01))
    table = tables["separation"].set_index("metric")
    for metric in ("final_perplexity", "auc"):
        assert table.loc[metric, "value"] == share
        assert (table.loc[metric, "ci_low"], table.loc[metric, "ci_high"]) == (share, share)
        assert table.loc[metric, "label"] == "3 pair(s)"
    pairs = tables["separation_pairs"]
    assert set(zip(pairs.language, pairs.label)) == {("local_shuffle:w=3", "vs no_shuffle"),
                                                     ("nondeterministic_shuffle", "vs no_shuffle"),
                                                     ("full_reverse", "vs no_reverse")}
    assert ((pairs["value"] > 1) == above).all()


def test_separation_interval_covers_a_mixed_case_and_counts_each_pair_once():
    from impossible_lms.reporting.complexity import separation_share

    pairs = pd.DataFrame({"study": "", "impossible": ["a", "a", "b", "b", "c", "c"], "control": "x",
                          "seed": [0, 1, 0, 1, 0, 1], "value_impossible": [2, 2, 2, 0, 0, 0],
                          "value_control": [1, 1, 1, 1, 1, 1]})
    share, low, high, n = separation_share(pairs, seed=0)
    assert (share, n) == (pytest.approx(100 * (1 + 0.5 + 0) / 3), 3)
    assert 0 <= low < share < high <= 100


def test_report_puts_the_baselines_beside_the_lm(tmp_path):
    """excess over n-gram = LM perplexity / best n-gram perplexity on the same sample seed."""
    from impossible_lms.reporting import all_tables

    lm = _lm_rows({"no_shuffle": [40, 20], "local_shuffle:w=3": [80, 60]})
    base = []
    for language, orders in {"no_shuffle": {"order 2": 25.0, "order 3": 20.0},
                             "local_shuffle:w=3": {"order 2": 30.0, "order 3": 33.0}}.items():
        for seed in (0, 1):
            for label, value in orders.items():
                base.append({"subject": f"baseline:{language}", "language": language, "model": "baseline",
                             "seed": seed, "metric": "ngram_perplexity", "subset": "test_affected", "label": label,
                             "value": value, "eval_language": language})
    tables = all_tables(pd.concat([lm, pd.DataFrame(base)], ignore_index=True))
    excess = tables["complexity"].set_index(["language", "checkpoint"])
    assert excess.loc[("no_shuffle", 2.0), "value"] == pytest.approx(20 / 20)
    assert excess.loc[("no_shuffle", 2.0), "label"] == "vs order 3"  # the best order of that language
    assert excess.loc[("local_shuffle:w=3", 1.0), "value"] == pytest.approx(80 / 30)
    assert "ngram_perplexity" not in set(tables["final"]["metric"])  # the baselines are not an LM's rows
    assert set(tables["baselines"]["label"]) == {"order 2", "order 3"}
    sep = tables["separation"].set_index("metric")
    assert sep.loc["excess_over_ngram", "value"] == 100.0  # 60/33 > 20/20


def test_cli_baselines_and_separation(tmp_path):
    from typer.testing import CliRunner

    from cli.main import app

    folder = _dataset(tmp_path / "no_shuffle", "no_shuffle", _sentences(0), _sentences(1, 100))
    result = CliRunner().invoke(app, ["baselines", str(folder), "--orders", "2,3", "--results", str(tmp_path / "r"),
                                      "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "unigram entropy" in result.output and "best n-gram perplexity" in result.output
    bad = CliRunner().invoke(app, ["baselines", str(folder), "--orders", "two"])
    assert bad.exit_code != 0 and "--orders must be comma-separated whole numbers" in bad.output
    lm = _lm_rows({"no_shuffle": [40, 20], "full_reverse": [80, 60], "no_reverse": [40, 25]})
    from impossible_lms.evaluation.store import COLUMNS, write_chunk

    for study, shift in (("de", 0), ("fr", 1)):
        rows = lm.assign(value=lm["value"] + shift).reindex(columns=COLUMNS).to_dict("records")
        write_chunk(tmp_path / study / "results" / "rows.parquet", rows)
    out = CliRunner().invoke(app, ["separation", str(tmp_path / "de" / "results"), str(tmp_path / "fr" / "results"),
                                   "--out", str(tmp_path / "sep")])
    assert out.exit_code == 0, out.output
    table = pd.read_csv(tmp_path / "sep" / "separation.csv")
    assert set(table["label"]) == {"2 pair(s)"} and set(table["value"]) == {100.0}  # one pair per study, pooled
    assert (tmp_path / "sep" / "separation.png").is_file()
    none = CliRunner().invoke(app, ["separation", str(tmp_path / "r")])
    assert none.exit_code != 0 and "no perplexity rows" in none.output
