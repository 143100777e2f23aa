"""Reports never mix settings: rows that differ in anything but the seed are shown apart, labelled;
seeds are counted once; train-on-X/test-on-Y rows are reported as their own rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cli.main import app
from impossible_lms.errors import ILMError
from impossible_lms.evaluation import evaluate, load_results
from impossible_lms.evaluation.toy import make_toy_data, make_toy_run
from impossible_lms.reporting import build_tables
from impossible_lms.reporting.render import to_markdown


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("settings")
    data = make_toy_data(root / "data" / "no_hop", per_genre=6)
    run = make_toy_run(root / "runs" / "no_hop" / "tiny-gpt2" / "seed0", steps=(100, 200), data=data)
    return root, data, run


def test_one_seed_in_bits_and_in_nats_is_two_labelled_rows_of_one_seed(toy, tmp_path):
    root, data, run = toy
    for unit in ("bits", "nats"):
        evaluate(run, data, metrics=["marker_surprisal"], results=tmp_path, unit=unit, sentences_per_genre=6)
    t = build_tables(load_results([tmp_path]))["marker_surprisal"]
    last = t[t.checkpoint == 200].set_index("setting")
    assert sorted(last.index) == ["unit=bits", "unit=nats"]
    assert list(last["seeds"]) == [1, 1]
    assert last.loc["unit=bits", "value"] == pytest.approx(last.loc["unit=nats", "value"] / np.log(2), rel=1e-5)
    md = to_markdown("marker_surprisal", t)
    header = md.splitlines()[2]
    assert header.startswith("| language | setting | model |") and "| unit=nats |" in md


def test_the_same_rows_read_twice_count_once(toy, tmp_path):
    root, data, run = toy
    evaluate(run, data, metrics=["perplexity"], results=tmp_path, sentences_per_genre=6)
    once = build_tables(load_results([tmp_path]))["perplexity"]
    twice = build_tables(load_results([tmp_path, tmp_path]))["perplexity"]
    pd.testing.assert_frame_equal(once, twice)
    assert set(twice["seeds"]) == {1} and set(twice["setting"]) == {""}


def row(seed, value, checkpoint=100, subject=None, **settings):
    base = dict(subject=subject or f"runs/no_hop/m/seed{seed}", language="no_hop", model="m", seed=seed,
                checkpoint=checkpoint, metric="perplexity", subset="test_affected", layer=None, value=value,
                ci_low=np.nan, ci_high=np.nan, count=10, unit="perplexity", eval_language="no_hop",
                data_fingerprint="d", scorer_version="2", dtype="float32", sample_scheme="reference",
                sample_size=1000, sample_seed=seed, sample_short=0, condition_on_eos=False)
    return {**base, **settings}


@pytest.mark.parametrize("setting, other, label", [
    ("dtype", "bfloat16", "dtype=bfloat16"),
    ("sample_scheme", "per_genre", "sample_scheme=per_genre"),
    ("sample_size", 500, "sample_size=500"),
    ("condition_on_eos", True, "condition_on_eos=True"),
    ("scorer_version", "1", "scorer_version=1"),
    ("data_fingerprint", "e", "data_fingerprint=e"),
])
def test_rows_differing_in_a_setting_are_never_averaged(setting, other, label):
    df = pd.DataFrame([row(0, 10.0), row(1, 40.0), row(2, 1000.0, **{setting: other})])
    t = build_tables(df)["perplexity"].set_index("setting")
    assert len(t) == 2
    same = t.drop(index=label).iloc[0]
    assert same["value"] == pytest.approx(20.0) and same["seeds"] == 2  # seeds 0 and 1 only
    assert t.loc[label, "value"] == 1000.0 and t.loc[label, "seeds"] == 1


def test_subsets_of_other_stimuli_are_not_settings_but_a_regenerated_subset_is():
    """Tree projections' token and word passes are different stimuli (fingerprints) by nature."""
    df = pd.DataFrame([row(0, 10.0), row(0, 5.0, subset="dev", data_fingerprint="e")])
    assert set(build_tables(df)["perplexity"]["setting"]) == {""}
    df = pd.DataFrame([row(0, 10.0), row(1, 5.0, data_fingerprint="e")])
    assert set(build_tables(df)["perplexity"]["setting"]) == {"data_fingerprint=d", "data_fingerprint=e"}


def test_a_fixed_sample_seed_is_a_setting_but_the_runs_own_seed_is_not():
    # the reference samples with each run's seed: seeds 0 and 1 with their own samples average
    df = pd.DataFrame([row(0, 10.0), row(1, 40.0)])
    assert build_tables(df)["perplexity"]["seeds"].tolist() == [2]
    # one shared sample (seed 7) for both runs is a different protocol, shown apart
    df = pd.DataFrame([row(0, 10.0), row(1, 40.0), row(0, 12.0, sample_seed=7, subject="runs/no_hop/m/seed0"),
                       row(1, 30.0, sample_seed=7, subject="runs/no_hop/m/seed1")])
    t = build_tables(df)["perplexity"].set_index("setting")
    assert sorted(t.index) == ["sample_seed=7", "sample_seed=run"]
    assert t.loc["sample_seed=7", "seeds"] == 2 and t.loc["sample_seed=7", "value"] == pytest.approx(np.sqrt(360))


def test_rows_from_before_a_setting_was_recorded_are_apart():
    old = row(1, 40.0)
    for key in ("dtype", "sample_scheme", "sample_size", "sample_seed", "sample_short", "condition_on_eos"):
        old.pop(key)
    df = pd.concat([pd.DataFrame([row(0, 10.0)]), pd.DataFrame([old])], ignore_index=True)
    t = build_tables(df)["perplexity"]
    assert len(t) == 2 and set(t["seeds"]) == {1}
    assert any("dtype=?" in s for s in t["setting"])


def test_two_runs_with_one_seed_are_refused_with_one_line():
    df = pd.DataFrame([row(0, 10.0, subject="a/seed0"), row(0, 40.0, subject="b/seed0")])
    with pytest.raises(ILMError, match=r"no_hop m seed 0: results from 2 different runs \(a/seed0, b/seed0\)"):
        build_tables(df)


def test_results_keyed_by_path_beside_identity_keyed_ones_say_how_to_convert():
    """A results folder from before results were keyed by the run's identity, rescored in part."""
    df = pd.DataFrame([row(0, 10.0, subject="/old/runs/no_hop/m/seed0"), row(0, 10.0, subject="no_hop/m/seed0/abcd1234")])
    with pytest.raises(ILMError, match=r"^no_hop m seed 0: results keyed by the run's path \(written by an older ilm\) "
                                       r"beside results keyed by its identity; delete the folder old_runs_no_hop_m_seed0/ "
                                       r"in the results folder and rerun `ilm eval`"):
        build_tables(df)
    alone = pd.DataFrame([row(0, 10.0, subject="/old/runs/no_hop/m/seed0")])
    assert len(build_tables(alone)["perplexity"]) == 1  # an old folder on its own still reports


def test_train_on_x_test_on_y_rows_are_reported(tmp_path):
    """A DeterministicShuffle seed-21 model scored on its own data and on seed 57's."""
    own = make_toy_data(tmp_path / "d21", per_genre=4, language="deterministic_shuffle:seed=21", family="shuffle")
    other = make_toy_data(tmp_path / "d57", per_genre=4, seed=3, language="deterministic_shuffle:seed=57",
                          family="shuffle")
    run = make_toy_run(tmp_path / "runs" / "ds21" / "tiny-gpt2" / "seed0", steps=(100,), data=own,
                       language="deterministic_shuffle:seed=21")
    evaluate(run, [own, other], metrics=["perplexity"], results=tmp_path / "res")
    t = build_tables(load_results([tmp_path / "res"]))["final"]
    pairs = list(zip(t["language"], t["eval_language"]))
    assert ("deterministic_shuffle:seed=21", "deterministic_shuffle:seed=57") in pairs
    assert ("deterministic_shuffle:seed=21", "deterministic_shuffle:seed=21") in pairs
    result = CliRunner().invoke(app, ["report", str(tmp_path / "res"), "--out", str(tmp_path / "rep"), "-f", "md,csv"])
    assert result.exit_code == 0, result.output
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "| tested on |" in md and "DeterministicShuffle (seed=57)" in md
    csv = pd.read_csv(tmp_path / "rep" / "final.csv")
    assert set(csv["eval_language"]) == {"deterministic_shuffle:seed=21", "deterministic_shuffle:seed=57"}


def test_report_cli_refuses_mixed_runs_in_one_line(tmp_path):
    pd.DataFrame([row(0, 10.0, subject="a/seed0"), row(0, 40.0, subject="b/seed0")]).to_csv(tmp_path / "r.csv", index=False)
    result = CliRunner().invoke(app, ["report", str(tmp_path / "r.csv"), "--out", str(tmp_path / "rep")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "error: no_hop m seed 0: results from 2 different runs" in " ".join(result.output.split())


def test_each_languages_own_data_fingerprint_is_not_a_setting():
    df = pd.DataFrame([row(0, 10.0), row(0, 20.0, language="token_hop", eval_language="token_hop",
                                         subject="runs/token_hop/m/seed0", data_fingerprint="other")])
    assert set(build_tables(df)["perplexity"]["setting"]) == {""}


def test_wide_tables_keep_one_cell_per_language_and_split_settings():
    from impossible_lms.reporting.wide import wide_tables

    df = pd.DataFrame([row(0, 10.0), row(0, 99.0, eval_language="token_hop"), row(0, 12.0, dtype="bfloat16")])
    wide = wide_tables(build_tables(df))
    assert sorted((w.setting, float(w.frame.iloc[0, 0])) for w in wide) == [("dtype=bfloat16", 12.0), ("dtype=float32", 10.0)]
    assert all(list(w.frame.index) == ["no_hop"] for w in wide) and len({w.stem for w in wide}) == 2
