"""experiments/backpack.yaml in miniature, shrunk only by overrides: the synthetic corpus with gold
tags and the offline BPE, the tiny twins of gpt2 and backpack-gpt2, one seed and a few steps."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from miniature import run_miniature

ROOT = Path(__file__).resolve().parents[1]
BACKPACK = ROOT / "experiments" / "backpack.yaml"
pytestmark = pytest.mark.slow

MINIATURE = [
    "corpus:={source: synthetic, options: {sentences: 600, seed: 0}, tokenizer: fallback, tagger: gold, workers: 1}",
    "models=[tiny-gpt2, tiny-backpack]", "seeds=[0]",
    "train={schedule: {steps: 4, warmup: 1}, batch: {tokens: 512}, checkpoint: {every: 2}, device: cpu}",
    "eval.checkpoints=all", "report.formats=[md, csv]", "torch_threads=1",
]


def test_backpack_study_in_miniature(tmp_path: Path) -> None:
    result = run_miniature(BACKPACK, tmp_path, MINIATURE)
    cfg = result.plan.config
    assert sum(e.startswith("train:") for e in result.executed) == len(cfg.languages) * 2
    final = pd.read_csv(tmp_path / "report" / "final.csv")
    ppl = final[(final.metric == "perplexity") & (final.subset == "test_affected")]
    assert set(zip(ppl.language, ppl.model)) == {(lang, m) for lang in cfg.languages for m in cfg.models}
    assert {"marker_surprisal"} <= set(final[final.language == "token_hop"].metric)
