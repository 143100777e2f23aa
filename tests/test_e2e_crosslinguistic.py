"""experiments/crosslinguistic.yaml end to end on a tiny CoNLL-U treebank the test writes (a few steps)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from perturbations.examples import TREE_EXAMPLE

ROOT = Path(__file__).resolve().parents[1]
XLING = ROOT / "experiments" / "crosslinguistic.yaml"
pytestmark = pytest.mark.slow


def tiny_treebank(folder: Path, sentences: int = 120) -> Path:
    """TREE_EXAMPLE with its nouns varied, as CoNLL-U train/dev/test files."""
    nouns = ["dogs", "cats", "hens", "owls", "cows", "bees"]
    for split, count in (("train", sentences), ("dev", 20), ("test", 20)):
        blocks = []
        for k in range(count):
            rows = []
            for i, w in enumerate(TREE_EXAMPLE.words, 1):
                text = nouns[(k + i) % len(nouns)] if w.text == "dogs" else w.text
                rows.append("\t".join([str(i), text, w.lemma, w.upos, "_", w.feats, str(w.head), w.deprel, "_", "_"]))
            blocks.append("\n".join(rows) + "\n")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"en_tiny-ud-{split}.conllu").write_text("\n".join(blocks) + "\n", encoding="utf-8")
    return folder


def test_crosslinguistic_experiment_reports_attested_vs_unattested(tmp_path: Path) -> None:
    import torch

    from impossible_lms.experiment import load_experiment, run_experiment

    bank = tiny_treebank(tmp_path / "bank")
    # the whole experiment file, every language of it, shrunk only in corpus and steps
    overrides = [f"out={tmp_path / 'out'}", f"corpus.source={bank}", "train.schedule.steps=4",
                 "train.schedule.warmup=1", "train.checkpoint.every=4", "train.batch.tokens=256"]
    before = torch.get_num_threads()
    try:
        first = run_experiment(load_experiment(XLING, overrides), log=lambda m: None)
        again = run_experiment(load_experiment(XLING, overrides), log=lambda m: None)
    finally:
        torch.set_num_threads(before)
    cfg = first.plan.config
    assert len(cfg.languages) == 13 and sum(e.startswith("train:") for e in first.executed) == 13
    assert again.executed == []
    table = pd.read_csv(tmp_path / "out" / "report" / "attestation.csv")
    ppl = table[(table.metric == "perplexity") & (table.subset == "test_affected")]
    attested = {"Dem-Num-A-N", "N-A-Num-Dem", "Dem-N-A-Num"}
    expected = {f"np_order:order={o}": o in attested
                for o in ("Dem-Num-A-N", "N-A-Num-Dem", "Dem-N-A-Num", "Num-Dem-A-N", "A-Dem-Num-N", "A-Num-N-Dem")}
    assert dict(zip(ppl.language, ppl.attested)) == {**expected, "(all attested)": True, "(all unattested)": False}
    assert all(math.isfinite(v) and v > 1 for v in ppl.value)
    assert "attestation" in (tmp_path / "out" / "report" / "report.md").read_text()
    final = pd.read_csv(tmp_path / "out" / "report" / "final.csv")
    assert set(final.language) == set(cfg.languages) and len(final) > 0
