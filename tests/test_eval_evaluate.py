"""evaluate() end to end on toy runs: rows, the store (skip, resume), subjects, errors, cross-language."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

import impossible_lms.evaluation.sweep as ev
from impossible_lms.errors import ILMError
from impossible_lms.evaluation import COLUMNS, evaluate, load_results, score_sequences
from impossible_lms.evaluation.data import EvalData
from impossible_lms.evaluation.toy import make_toy_data, make_toy_run, tiny_gpt2

METRICS = ["perplexity", "marker_surprisal"]


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    data = make_toy_data(root / "data" / "no_hop", per_genre=10)
    run = make_toy_run(root / "runs" / "no_hop" / "tiny-gpt2" / "seed0", steps=(100, 200, 300), data=data)
    return root, data, run


@pytest.fixture
def count_loads(monkeypatch):
    loads = []
    real = ev.load_target

    def counting(target, device):
        loads.append(target.step)
        return real(target, device)

    monkeypatch.setattr(ev, "load_target", counting)
    return loads


def test_rows_have_the_documented_columns_and_values(toy, tmp_path):
    root, data, run = toy
    df = evaluate(run, data, checkpoints="100-300:100", metrics=METRICS, results=tmp_path)
    assert list(df.columns) == COLUMNS
    assert sorted(df["checkpoint"].unique()) == [100, 200, 300]
    per_ckpt = df[df["checkpoint"] == 100].set_index(["metric", "subset"])
    assert set(per_ckpt.index) == {("perplexity", "test_affected"), ("perplexity", "test_unaffected"),
                                  ("perplexity", "dev"), ("marker_surprisal", "test_affected"),
                                  ("surprisal_difference", "test_affected")}
    assert (df["language"] == "no_hop").all() and (df["eval_language"] == "no_hop").all()
    assert (df["model"] == "tiny-gpt2").all() and (df["seed"] == 0).all() and df["layer"].isna().all()
    assert (df["count"] == 20).all()  # 10 sentences x 2 genres
    assert set(df["unit"]) == {"perplexity", "bits"}
    # stored rows read back identically, by load_results and by pandas directly
    stored = load_results([tmp_path]).sort_values(["checkpoint", "metric", "subset"]).reset_index(drop=True)
    fresh = df.sort_values(["checkpoint", "metric", "subset"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(stored, fresh)
    assert len(pd.concat(pd.read_parquet(p) for p in tmp_path.rglob("*.parquet"))) == len(df)


def test_perplexity_value_matches_a_direct_computation(toy):
    root, data, run = toy
    df = evaluate(run / "checkpoint-200", data, metrics=["perplexity"])
    model = tiny_gpt2(seed=1)  # make_toy_run seeds checkpoint i with seed*1000 + i
    sentences = EvalData(data, 1000, 0).sample("test_affected")
    per_sentence = [-np.nanmean(lp) for lp in score_sequences(model, sentences)[None]]
    want = math.exp(np.mean(per_sentence))
    got = df[(df["metric"] == "perplexity") & (df["subset"] == "test_affected")]["value"].item()
    assert got == pytest.approx(want, rel=1e-5)
    assert df["checkpoint"].tolist()[0] == 200


def test_shared_scoring_gives_the_same_numbers_as_one_metric_alone(toy):
    root, data, run = toy
    both = evaluate(run, data, checkpoints="300", metrics=METRICS)
    alone = evaluate(run, data, checkpoints="300", metrics=["perplexity"])
    a = both[both["metric"] == "perplexity"].reset_index(drop=True)
    pd.testing.assert_frame_equal(a, alone.reset_index(drop=True))


def test_results_identical_across_batch_sizes(toy):
    root, data, run = toy
    small = evaluate(run, data, checkpoints="100", metrics=METRICS, batch_tokens=8)
    large = evaluate(run, data, checkpoints="100", metrics=METRICS, batch_tokens=100_000)
    np.testing.assert_allclose(small["value"], large["value"], atol=1e-4)


def test_rerun_skips_without_loading_and_partial_sweep_resumes(toy, tmp_path, count_loads):
    root, data, run = toy
    first = evaluate(run, data, metrics=METRICS, results=tmp_path)
    assert count_loads == [100, 200, 300]  # each checkpoint loaded once for both metrics
    again = evaluate(run, data, metrics=METRICS, results=tmp_path)
    assert count_loads == [100, 200, 300]  # nothing loaded on rerun
    assert len(again) == len(first)
    shutil.rmtree(next(p for p in tmp_path.rglob("checkpoint-200")))  # as if stopped before 200 finished
    resumed = evaluate(run, data, metrics=METRICS, results=tmp_path)
    assert count_loads == [100, 200, 300, 200]
    key = ["checkpoint", "metric", "subset"]
    pd.testing.assert_frame_equal(resumed.sort_values(key).reset_index(drop=True),
                                  first.sort_values(key).reset_index(drop=True))
    # a new metric or setting is new work; the old files stay
    evaluate(run, data, checkpoints="100", metrics=METRICS, results=tmp_path, unit="nats")
    assert count_loads[-1] == 100
    assert len(load_results(tmp_path)) == len(first) + 5


def test_sampling_per_genre_is_seeded(toy):
    root, data, run = toy
    a = EvalData(data, 3, seed=0).sample("test_affected")
    assert len(a) == 6 and a == EvalData(data, 3, seed=0).sample("test_affected")
    assert a != EvalData(data, 3, seed=1).sample("test_affected")
    df = evaluate(run, data, checkpoints="100", metrics=["perplexity"], sentences_per_genre=3)
    assert (df["count"] == 6).all()


def test_eval_on_another_language_with_the_same_tokenizer(toy, tmp_path):
    root, data, run = toy
    other = make_toy_data(tmp_path / "word_hop", per_genre=4, seed=5, language="word_hop")
    df = evaluate(run, [data, other], checkpoints="300", metrics=["perplexity"])
    assert set(df["eval_language"]) == {"no_hop", "word_hop"}
    assert (df["language"] == "no_hop").all()
    assert set(df[df["eval_language"] == "word_hop"]["count"]) == {8}


def test_other_tokenizer_is_refused(toy, tmp_path):
    root, data, run = toy
    other = make_toy_data(tmp_path / "shuffle", per_genre=2, language="x", family="shuffle",
                          tokenizer_fingerprint="other")
    with pytest.raises(ILMError, match="tokenised differently from the run's training data"):
        evaluate(run, other, checkpoints="100")


def test_per_layer_rows_when_the_model_has_exit_heads(toy, tmp_path):
    from impossible_lms.models import build_model, model_config

    root, data, run = toy
    torch.manual_seed(0)
    build_model(model_config("tiny-gpt2", vocab_size=40, exit_layers=[1])).save_pretrained(tmp_path / "m")
    df = evaluate(tmp_path / "m", data, metrics=METRICS)
    layered = df[df["layer"].notna()]
    assert set(layered["layer"]) == {1} and len(layered) == len(df) / 2
    assert df["checkpoint"].isna().all() and (df["model"] == "m").all()


def test_missing_checkpoint_is_named(toy):
    root, data, run = toy
    with pytest.raises(ILMError, match=r"checkpoint\(s\) 400, 500 missing or incomplete \(have: 100-300:100\)"):
        evaluate(run, data, checkpoints="100-500:100")


def test_incomplete_checkpoint_is_not_evaluated(toy, tmp_path):
    root, data, run = toy
    copy = shutil.copytree(run, tmp_path / "run")
    (copy / "checkpoint-300" / "trainer_state.json").unlink()  # as if killed mid-write
    df = evaluate(copy, data, metrics=["perplexity"])
    assert sorted(df["checkpoint"].unique()) == [100, 200]


def test_corrupt_checkpoint_is_named(toy, tmp_path):
    root, data, run = toy
    copy = shutil.copytree(run, tmp_path / "run")
    (copy / "checkpoint-200" / "model.safetensors").write_bytes(b"not weights")
    with pytest.raises(ILMError, match=r"cannot load .*checkpoint-200"):
        evaluate(copy, data, metrics=["perplexity"], results=tmp_path / "res")
    # checkpoint 100 finished before the failure and is kept
    kept = sorted(p.name.split("--")[0] for p in (tmp_path / "res").rglob("checkpoint-100/*.parquet"))
    assert kept == ["perplexity.dev", "perplexity.test_affected", "perplexity.test_unaffected"]  # one file per subset


def test_model_vocabulary_smaller_than_the_data_is_refused(toy, tmp_path):
    root, data, run = toy
    big = make_toy_data(tmp_path / "big", per_genre=2, vocab_size=50, tokenizer_fingerprint="toy-40")
    with pytest.raises(ILMError, match=r"vocabulary \(40\) is smaller than the data's \(50"):
        evaluate(run, big, checkpoints="100")


@pytest.mark.parametrize("kwargs, message", [
    ({"metrics": ["nope"]}, "unknown metric 'nope'"),
    ({"unit": "bans"}, "unit 'bans'"),
    ({"dtype": "int8"}, "unknown dtype 'int8'; use float32 \\(fp32\\), bfloat16 \\(bf16\\) or float16"),
    ({"batch_tokens": 0}, "batch_tokens must be positive"),
    ({"checkpoints": "x"}, "bad checkpoint spec 'x'"),
])
def test_bad_arguments(toy, kwargs, message):
    root, data, run = toy
    with pytest.raises(ILMError, match=message):
        evaluate(run, data, **kwargs)


def test_bad_subjects_and_data(toy, tmp_path):
    root, data, run = toy
    with pytest.raises(ILMError, match="not a run folder, checkpoint folder or model folder"):
        evaluate(tmp_path, data)
    with pytest.raises(ILMError, match="no such folder"):
        evaluate(str(tmp_path / "nope"), data)
    with pytest.raises(ILMError, match="is not an ilm dataset"):
        evaluate(run, tmp_path)
    with pytest.raises(ILMError, match="single model folder"):
        evaluate(run / "checkpoint-100", data, checkpoints="100")
    with pytest.raises(ILMError, match="results path not found"):
        load_results([tmp_path / "missing"])
    empty = load_results([tmp_path])
    assert empty.empty and list(empty.columns) == COLUMNS


def test_prefix_carriers_share_scores_only_within_the_context():
    from impossible_lms.evaluation.sweep import _carriers

    seqs = [[1, 2], [1, 2, 3], [1, 2, 3, 4], [5], [1, 9]]
    assert _carriers(seqs) == {(1, 2): (1, 2, 3, 4), (1, 2, 3): (1, 2, 3, 4), (1, 2, 3, 4): (1, 2, 3, 4),
                               (5,): (5,), (1, 9): (1, 9)}
    limited = _carriers(seqs, limit=3)
    assert limited[(1, 2)] == (1, 2, 3) and limited[(1, 2, 3, 4)] == (1, 2, 3, 4)


def test_a_sentence_without_its_marker_is_read_off_the_context_it_shares(toy, monkeypatch):
    """The surprisal of the token after a removed marker has the marker's own context: both come
    from one pass over that context, and no sentence-without-its-marker goes through the model."""
    from impossible_lms.evaluation.metrics import SURPRISAL_MAX_TOKENS, marker_pairs

    _, data, run = toy
    seen = []
    real = ev.score_cells

    def spy(model, sequences, cells, *args, **kwargs):
        seen.append((sequences, cells))
        return real(model, sequences, cells, *args, **kwargs)

    monkeypatch.setattr(ev, "score_cells", spy)
    evaluate(run, data, checkpoints="100", metrics=["marker_surprisal"])
    d = EvalData(data, 1000, 0)
    pairs = marker_pairs(d.sample("test_affected", SURPRISAL_MAX_TOKENS), d.marker_ids.values(), d.eos_id)
    contexts = [tuple(w[:i]) for i, w in zip(pairs.index, pairs.with_marker)]
    [(sequences, cells)] = seen
    assert sorted(map(tuple, sequences)) == sorted(set(ev._carriers(contexts).values()))
    # two continuations of each context: its marker, and the token that followed the marker
    asked = {(tuple(seq[:p]), int(t)) for seq, c in zip(sequences, cells) for p, t in zip(c.positions, c.targets)}
    for i, with_marker, without in zip(pairs.index, pairs.with_marker, pairs.without_marker):
        assert {(tuple(with_marker[:i]), with_marker[i]), (tuple(without[:i]), without[i])} <= asked


def test_what_a_checkpoint_is_asked_is_planned_once_for_every_checkpoint(toy, tmp_path, monkeypatch):
    """Sampling, carriers and cells are the same at every checkpoint with the same jobs pending:
    one Plan serves them all, and a checkpoint with fewer jobs pending gets its own."""
    _, data, run = toy
    made = []
    real = ev.Plan.make.__func__

    def counting(cls, by_metric, d, limit):
        made.append(sorted(by_metric))
        return real(cls, by_metric, d, limit)

    monkeypatch.setattr(ev.Plan, "make", classmethod(counting))
    evaluate(run, data, checkpoints="100-300:100", metrics=METRICS, results=tmp_path)
    assert made == [["marker_surprisal", "perplexity"]]
    for stored in (tmp_path).rglob("checkpoint-200/marker_surprisal*.parquet"):
        stored.unlink()
    made.clear()
    again = evaluate(run, data, checkpoints="100-300:100", metrics=METRICS, results=tmp_path)
    assert made == [["marker_surprisal"]] and len(again) == 3 * 5


def test_sentences_longer_than_the_context_are_left_out_and_counted(tmp_path):
    data = make_toy_data(tmp_path / "data", per_genre=6, min_len=3, max_len=80, seed=2)
    run = make_toy_run(tmp_path / "run", steps=(100,), data=data)  # context 64
    df = evaluate(run, data, metrics=METRICS).set_index(["metric", "subset"])
    fits = [s for s in EvalData(data, 1000, 0).sample("test_affected") if len(s) <= 64]
    fits_eos = [s for s in EvalData(data, 1000, 0).sample("test_affected") if len(s) + 1 <= 64]
    assert 0 < len(fits) < 12
    assert df.loc[("perplexity", "test_affected"), "count"] == len(fits)
    assert df.loc[("marker_surprisal", "test_affected"), "count"] == len(fits_eos)


def test_relative_and_absolute_paths_share_stored_results(toy, tmp_path, monkeypatch, count_loads):
    root, data, run = toy
    evaluate(run, data, checkpoints="100", results=tmp_path / "res")
    monkeypatch.chdir(run.parent)
    df = evaluate(run.name, data, checkpoints="100", results=tmp_path / "res")
    assert count_loads == [100] and (df["path"] == str(run.resolve())).all()
    # the key is the run's identity (language/model/seed/recipe), never where it lies
    assert df["subject"].str.fullmatch(r"no_hop/tiny-gpt2/seed0/[0-9a-f]{8}").all()


def test_a_new_metric_is_one_registered_function(toy):
    from impossible_lms.evaluation import METRICS, register_metric
    from impossible_lms.evaluation.metrics import row
    from impossible_lms.evaluation.stats import bootstrap_mean

    root, data, run = toy

    @register_metric("dev_logprob", requests=lambda d: {"s": d.sample("dev")})
    def dev_logprob(d, logprobs, options):
        values = np.array([np.nanmean(lp) for lp in logprobs["s"]])
        return [row("dev_logprob", "dev", values, *bootstrap_mean(values, options.seed), unit="nats")]

    try:
        df = evaluate(run, data, checkpoints="100", metrics=["perplexity", "dev_logprob"]).set_index(["metric", "subset"])
        # geometric-mean perplexity is exp(-mean over sentences of the mean token log-prob)
        assert math.exp(-df.loc[("dev_logprob", "dev"), "value"]) == pytest.approx(
            df.loc[("perplexity", "dev"), "value"], rel=1e-6)
        assert df.loc[("dev_logprob", "dev"), "unit"] == "nats"
    finally:
        METRICS.pop("dev_logprob")


def test_revisions_of_a_run_folder_name_its_checkpoints(toy):
    from impossible_lms.evaluation.subjects import resolve_subject

    root, data, run = toy
    subj = resolve_subject(run, None, ["checkpoint-200"])
    assert [t.step for t in subj.targets] == [200] and subj.seed == 0 and subj.language == "no_hop"
    with pytest.raises(ILMError, match="must be checkpoint-<step>"):
        resolve_subject(run, None, ["main"])
