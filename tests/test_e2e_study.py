"""The paper's study, `experiments/kallini2024.yaml` itself, in miniature: shrunk only by overrides.

All 15 languages, both model families (tiny twins), model_seeds, both warm-up variants, the
DeterministicShuffle cross-tests, `intervene`, `probe`, `treeproj` and every report. The study
runs once (a module fixture, about two minutes on 2 cores); the tests read what it left, then a
copy of it is moved to another folder and resumed there.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "experiments" / "kallini2024.yaml"
pytestmark = pytest.mark.slow

# Every override replaces what a CPU cannot do in minutes, nothing else: the synthetic corpus with
# its gold tags and trees and the offline BPE, the tiny twins of gpt2 / gpt2-nopos, 2 seeds (the
# no-position model at 53 only, as the paper), a few steps, and small analyses (the probe on the
# synthetic grammar's gold trees instead of Stanza's parses).
MINIATURE = [
    "corpus:={source: synthetic, options: {sentences: 1000, seed: 0}, tokenizer: fallback, tagger: gold, workers: 1}",
    "models=[tiny-gpt2, tiny-gpt2-nopos]",
    "seeds=[0, 53]",
    "model_seeds:={tiny-gpt2-nopos: [53]}",
    "variants.warmup1000.models=[tiny-gpt2]",
    "variants.warmup1000.train.schedule.warmup=5",
    "variants.warmup4000.models=[tiny-gpt2]",
    "variants.warmup4000.train.schedule.warmup=20",
    "train={schedule: {steps: 10}, batch: {tokens: 512}, checkpoint: {every: 5}, device: cpu, optim: {lr: 3.0e-3}}",
    "eval.checkpoints=all",
    "analyses.intervene:={split: train, max_pairs: 8}",
    "analyses.probe:={checkpoints: 10}",
    "analyses.treeproj={checkpoints: 10, sentences: 4}",
    "report.formats=[md, csv, png]",
    "torch_threads=1",
]


def miniature(out: Path):
    from impossible_lms.experiment import load_experiment

    return load_experiment(STUDY, [f"out={out}", *MINIATURE])


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """(config, first run's result, second run's result) of the miniature study."""
    import torch

    from impossible_lms.experiment import run_experiment

    out = tmp_path_factory.mktemp("study") / "kallini2024"
    before = torch.get_num_threads()
    try:
        first = run_experiment(miniature(out), log=lambda m: None)
        second = run_experiment(miniature(out), log=lambda m: None)
    finally:
        torch.set_num_threads(before)
    return miniature(out), first, second


def test_every_planned_step_finished_and_a_rerun_does_nothing(study):
    from impossible_lms.experiment import plan_experiment

    cfg, first, second = study
    plan = first.plan
    assert len(cfg.languages) == 15 and len(plan.runs) == 15 * 3 + 15 * 2  # (2 seeds + nopos@53) + 2 variants
    ran = set(first.executed)
    for step in plan.steps:
        if step.stage not in ("perturb", "report"):
            assert f"{step.stage}:{step.key}" in ran, step
    assert {s.stage for s in plan.steps} == {"perturb", "train", "eval", "intervene", "probe", "treeproj", "report"}
    assert sum(e.startswith("report") for e in first.executed) == 3  # the recipe and each variant
    assert second.executed == []
    assert all(s.status == "done" for s in plan_experiment(cfg).steps)


def test_model_seeds_and_variants_keep_their_own_runs_results_and_reports(study):
    from impossible_lms.evaluation import load_results
    from impossible_lms.experiment import layout

    cfg, first, _ = study
    where = layout(cfg)
    main = load_results([where.results()])
    assert set(zip(main.model, main.seed)) == {("tiny-gpt2", 0), ("tiny-gpt2", 53), ("tiny-gpt2-nopos", 53)}
    for name, seed in (("warmup1000", 96), ("warmup4000", 0)):
        rows = load_results([where.results(name)])
        assert set(zip(rows.model, rows.seed)) == {("tiny-gpt2", seed)}, name
        # the analyses' rows went with the variant too (they were written to the main folder once)
        assert {"iia", "probe_accuracy", "tree_score"} <= set(rows.metric), name
        assert (where.report(name) / "final.csv").is_file()
        assert (where.run(next(r for r in first.plan.runs if r.variant == name)) / "run.json").is_file()
    assert set(main.metric) >= {"perplexity", "marker_surprisal", "iia", "probe_accuracy", "tree_score"}


def test_cross_tests_score_each_deterministic_shuffle_on_the_others(study):
    from impossible_lms.evaluation import load_results
    from impossible_lms.experiment import layout

    cfg, _, _ = study
    rows = load_results([layout(cfg).results()])
    seed21 = rows[(rows.language == "deterministic_shuffle:seed=21") & (rows.metric == "perplexity")]
    assert set(seed21.eval_language) == {"deterministic_shuffle:seed=21", "deterministic_shuffle:seed=57",
                                         "deterministic_shuffle:seed=84", "nondeterministic_shuffle"}


def test_every_report_table_is_non_empty(study):
    from impossible_lms.experiment import layout

    cfg, _, _ = study
    where = layout(cfg)
    for report in (where.report(), where.report("warmup1000"), where.report("warmup4000")):
        tables = sorted(report.glob("*.csv"))
        assert {"final.csv", "perplexity.csv", "iia.csv", "probe.csv", "treeproj.csv"} <= {t.name for t in tables}
        for table in tables:
            assert len(pd.read_csv(table)) > 0, table
        assert (report / "report.md").stat().st_size > 0


def test_a_moved_study_resumes_where_it_lies_and_reports_the_same(study, tmp_path):
    """rsync from the cluster: the copy, with the original gone, runs one step again and reports the same."""
    from cli.main import app
    from typer.testing import CliRunner

    from impossible_lms.experiment import layout, run_experiment, stamp_path

    cfg, _, _ = study
    old = layout(cfg)
    tables = ("final.csv", "perplexity.csv", "marker_surprisal.csv", "iia.csv", "probe.csv", "treeproj.csv")
    before = {t: pd.read_csv(old.report() / t) for t in tables}
    moved = miniature(tmp_path / "elsewhere" / "kallini2024")
    shutil.copytree(old.out, layout(moved).out, symlinks=True)
    key = "token_hop/tiny-gpt2/0"
    stamp_path(moved, "eval", key).unlink()  # one step to run again where the study now lies
    hidden = old.out.with_name("hidden-while-moved")
    old.out.rename(hidden)  # nothing may still read the old place
    try:
        result = run_experiment(moved, log=lambda m: None)
        cli = CliRunner().invoke(app, ["report", str(layout(moved).results()), "--out", str(tmp_path / "r"),
                                       "--format", "csv", "--quiet"])
    finally:
        hidden.rename(old.out)
    assert result.executed == [f"eval:{key}", "report"]  # that step and the report it feeds; nothing else
    for table in tables:
        pd.testing.assert_frame_equal(before[table], pd.read_csv(layout(moved).report() / table), obj=table)
    assert cli.exit_code == 0, cli.output
    pd.testing.assert_frame_equal(before["final.csv"], pd.read_csv(tmp_path / "r" / "final.csv"))


def test_the_terminal_summary_reads_in_an_80_column_log(study):
    """What `ilm run` prints at the end, as a log file shows it: no empty or constant column, no word
    cut in the middle, every line within 80 columns."""
    import io

    from rich.console import Console

    from cli.run import _print_summary
    from impossible_lms.experiment import layout
    import cli.run as run_cli

    cfg, first, _ = study
    buf = io.StringIO()
    original = run_cli.console
    run_cli.console = Console(file=buf, width=80)
    try:
        _print_summary(cfg, first)
    finally:
        run_cli.console = original
    text = buf.getvalue()
    lines = [line for line in text.splitlines() if str(layout(cfg).out) not in line]  # paths print whole
    assert max(map(len, lines)) <= 80
    assert "nan" not in text and "setting" not in text  # the empty `setting` column is gone
    for word in ("NondeterministicShuffle", "DeterministicShuffle", "PartialReverse", "perplexity", "unaffected"):
        assert word in text
    for cut in ("test_affecte", "PartialRever ", "Nondeterministic\n"):
        assert cut not in text
    assert "model: tiny-gpt2;" in text and "model: tiny-gpt2-nopos;" in text  # one table per model
    assert "cross-language row(s)" in text and str(layout(cfg).report() / "final.csv") in text
    for name in ("warmup1000", "warmup4000"):  # where each variant's own report is
        assert f"variant {name}: report in {layout(cfg).report(name)}" in text
