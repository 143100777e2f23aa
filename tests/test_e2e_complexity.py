"""experiments/complexity.yaml end to end, as its header says to run it: once per natural language
(two tiny treebanks the test writes), then `ilm separation` over both studies' results."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from miniature import run_miniature
from test_e2e_crosslinguistic import tiny_treebank

ROOT = Path(__file__).resolve().parents[1]
COMPLEXITY = ROOT / "experiments" / "complexity.yaml"
pytestmark = pytest.mark.slow


def test_complexity_study_on_two_languages_then_pooled_separation(tmp_path: Path) -> None:
    from cli.main import app

    outs = []
    for name, size in (("de", 100), ("fr", 140)):
        bank = tiny_treebank(tmp_path / f"bank_{name}", sentences=size)
        # the whole experiment file, every language and seed of it, shrunk only in corpus, steps and orders
        overrides = [f"corpus.source={bank}", "train.schedule.steps=6", "train.schedule.warmup=1",
                     "train.checkpoint.every=3", "train.batch.tokens=256", "analyses.baselines.orders=[2,3]"]
        result = run_miniature(COMPLEXITY, tmp_path / name, overrides)
        cfg = result.plan.config
        assert sum(e.startswith("train:") for e in result.executed) == len(cfg.languages) * len(cfg.seeds) == 14
        outs.append(tmp_path / name)
    report = outs[0] / "report"
    baselines = pd.read_csv(report / "baselines.csv")
    assert set(baselines.metric) == {"unigram_entropy", "ngram_perplexity", "compression_bpt"}
    entropy = baselines[baselines.metric == "unigram_entropy"].set_index("language")["value"]
    # the shuffles reorder the control's tokens: the same unigram entropy
    for shuffle in ("local_shuffle:w=3", "deterministic_shuffle:seed=21", "nondeterministic_shuffle"):
        assert entropy[shuffle] == pytest.approx(entropy["no_shuffle"], abs=1e-9)
    excess = pd.read_csv(report / "complexity.csv")
    assert set(excess.language) == set(cfg.languages) and all(math.isfinite(v) and v > 0 for v in excess.value)
    separation = pd.read_csv(report / "separation.csv")
    assert set(separation.metric) == {"final_perplexity", "auc", "excess_over_ngram"}
    assert set(separation.label) == {"5 pair(s)"} and set(separation.seeds) == {2}
    assert (report / "separation.png").is_file() and (report / "excess_over_ngram_tiny-gpt2.png").is_file()
    pooled = CliRunner().invoke(app, ["separation", *(str(o / "results") for o in outs), "--out",
                                      str(tmp_path / "pooled"), "--format", "csv"])
    assert pooled.exit_code == 0, pooled.output
    table = pd.read_csv(tmp_path / "pooled" / "separation.csv")
    assert set(table.label) == {"10 pair(s)"}  # 5 pairs per language, pooled over the two
    assert all(0 <= v <= 100 for v in table.value)
