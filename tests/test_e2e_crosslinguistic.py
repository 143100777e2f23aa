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
    langs = "[no_shuffle,head_final,np_order:order=x,np_order:order=e]"
    cfg = load_experiment(XLING, [f"out={tmp_path / 'out'}", f"corpus.source={bank}", f"languages={langs}",
                                  "train.schedule.steps=4", "train.schedule.warmup=1", "train.checkpoint.every=4",
                                  "train.batch.tokens=256"])
    before = torch.get_num_threads()
    try:
        run_experiment(cfg, log=lambda m: None)
    finally:
        torch.set_num_threads(before)
    table = pd.read_csv(tmp_path / "out" / "report" / "attestation.csv")
    ppl = table[(table.metric == "perplexity") & (table.subset == "test_affected")]
    assert dict(zip(ppl.language, ppl.attested)) == {
        "np_order:order=N-A-Num-Dem": True, "np_order:order=Num-Dem-A-N": False,
        "(all attested)": True, "(all unattested)": False,
    }
    assert all(math.isfinite(v) and v > 1 for v in ppl.value)
    assert "attestation" in (tmp_path / "out" / "report" / "report.md").read_text()
