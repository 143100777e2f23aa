"""evaluate(subsets=...): only the chosen perplexity subsets are scored, each stored on its own.

A restricted run must give exactly the full run's rows for its subsets (marker
surprisal untouched), send only those subsets' tokens through the vocabulary
projection, and share the store with full runs: a rerun computes nothing, and a
full run after a restricted one scores only the missing subsets.
"""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

import impossible_lms.evaluation.sweep as ev
from impossible_lms.errors import ILMError
from impossible_lms.evaluation import evaluate
from impossible_lms.evaluation.data import EvalData
from impossible_lms.evaluation.toy import make_toy_data, make_toy_run

METRICS = ["perplexity", "marker_surprisal"]
KEY = ["checkpoint", "metric", "subset"]


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("subsets")
    data = make_toy_data(root / "data", per_genre=8, min_len=2, max_len=20, seed=3)
    run = make_toy_run(root / "run", steps=(100, 200), data=data)
    full = evaluate(run, data, metrics=METRICS).set_index(KEY).sort_index()
    return data, run, full


@pytest.fixture
def loads(monkeypatch):
    seen = []
    real = ev.load_target

    def counting(target, device):
        seen.append(target.step)
        return real(target, device)

    monkeypatch.setattr(ev, "load_target", counting)
    return seen


def rows_of(df: pd.DataFrame) -> pd.DataFrame:
    return df.set_index(KEY).sort_index()


def test_a_restricted_run_gives_the_full_runs_rows_for_its_subsets_only(toy):
    data, run, full = toy
    got = rows_of(evaluate(run, data, metrics=METRICS, subsets=["test_affected"]))
    assert set(got.index.droplevel(0)) == {("perplexity", "test_affected"), ("marker_surprisal", "test_affected"),
                                           ("surprisal_difference", "test_affected")}
    pd.testing.assert_frame_equal(got, full.loc[got.index])
    two = rows_of(evaluate(run, data, metrics=["perplexity"], subsets="dev,test_unaffected".split(",")))
    assert set(two.index.get_level_values("subset")) == {"dev", "test_unaffected"}
    pd.testing.assert_frame_equal(two, full.loc[two.index])


def test_the_head_sees_only_the_chosen_subsets_tokens(toy, head_rows):
    data, run, _ = toy
    evaluate(run, data, checkpoints="100", metrics=["perplexity"], subsets=["dev"])
    # every token after the first of each distinct dev sentence (one that is a prefix of another is read off it)
    carriers = set(ev._carriers(EvalData(data, 1000, 0).sample("dev")).values())
    assert sum(head_rows) == sum(len(c) - 1 for c in carriers) > 0


def test_the_store_keeps_subsets_apart_and_a_full_run_scores_only_the_missing_ones(toy, tmp_path, loads, head_rows):
    data, run, full = toy
    res = tmp_path / "res"
    evaluate(run, data, metrics=METRICS, subsets=["test_affected"], results=res)
    names = sorted(p.name.split("--")[0] for p in (res.rglob("checkpoint-100/*.parquet")))
    assert names == ["marker_surprisal", "perplexity.test_affected"]
    loads.clear()
    again = evaluate(run, data, metrics=METRICS, subsets=["test_affected"], results=res)
    assert loads == [] and len(again) == 2 * 3  # all stored: no model loaded
    # the full run computes only the two missing subsets: as many head rows as scoring those alone
    head_rows.clear()
    later = rows_of(evaluate(run, data, metrics=METRICS, results=res))
    missing_only = sum(head_rows)
    head_rows.clear()
    evaluate(run, data, metrics=["perplexity"], subsets=["test_unaffected", "dev"])
    assert missing_only == sum(head_rows) > 0
    pd.testing.assert_frame_equal(later, full)
    loads.clear()
    assert len(evaluate(run, data, metrics=METRICS, results=res)) == len(full) and loads == []


def test_unknown_subsets_are_one_line_errors(toy, tmp_path):
    from cli.main import app

    data, run, _ = toy
    with pytest.raises(ILMError, match=r"unknown subset 'test_afected' \(did you mean 'test_affected'\?\); choose from "
                                       r"test_affected, test_unaffected, dev"):
        evaluate(run, data, subsets=["test_afected"])
    with pytest.raises(ILMError, match="no subset given"):
        evaluate(run, data, subsets=[])
    args = ["eval", str(run), "--data", str(data), "--checkpoints", "100", "--results", str(tmp_path), "--no-progress"]
    bad = CliRunner().invoke(app, args + ["--subsets", "test_affected,deb"])
    assert bad.exit_code == 1 and "unknown subset 'deb' (did you mean 'dev'?)" in bad.output
    assert "Traceback" not in bad.output
    ok = CliRunner().invoke(app, args + ["--subsets", "dev", "--metrics", "perplexity"])
    assert ok.exit_code == 0, ok.output
    from impossible_lms.evaluation import load_results

    assert list(load_results([tmp_path])["subset"]) == ["dev"]


def test_the_experiment_passes_subsets_through_and_its_stamp_covers_them(tmp_path):
    from pathlib import Path

    from impossible_lms.experiment import check_names, load_experiment, plan_experiment

    demo = Path(__file__).resolve().parents[1] / "experiments" / "demo.yaml"
    base = [f"out={tmp_path}"]
    plain = load_experiment(demo, base)
    chosen = load_experiment(demo, base + ["eval.options={subsets: [test_affected]}"])
    assert chosen.eval.options == {"subsets": ["test_affected"]}
    check_names(chosen)
    fps = [{s.key: s.fingerprint for s in plan_experiment(c).steps if s.stage == "eval"} for c in (plain, chosen)]
    assert fps[0].keys() == fps[1].keys() and all(fps[0][k] != fps[1][k] for k in fps[0])
    with pytest.raises(ILMError, match=r"eval.options.subsets: unknown subset 'affected'"):
        check_names(load_experiment(demo, base + ["eval.options={subsets: [affected]}"]))
