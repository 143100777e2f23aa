"""Reports that label what they show: the probe's span label, the language of a hub model's rows
(from --data), and what each one-seed interval is over."""

from __future__ import annotations

import pandas as pd

from impossible_lms.reporting.render import interval_note, rich_table, to_markdown


def _rows(label: bool) -> pd.DataFrame:
    rows = []
    for lab in ("NP", "VP"):
        rows.append({"language": "word_hop", "model": "gpt2", "metric": "probe_accuracy", "subset": "test",
                     "label": lab if label else "", "layer": 3, "checkpoint": 100, "value": 70.0, "ci_low": 60.0,
                     "ci_high": 80.0, "seeds": 1, "interval": "sentences", "eval_language": "word_hop", "setting": ""})
    return pd.DataFrame(rows)


def test_the_probe_table_keeps_its_label_column():
    md = to_markdown("probe", _rows(label=True))
    header = next(line for line in md.splitlines() if line.startswith("| language"))
    assert "| label |" in header and "| NP |" in md and "| VP |" in md
    assert "| label |" not in to_markdown("final", _rows(label=False))  # an empty label column is left out


def test_each_interval_says_what_it_is_over():
    assert "over test spans (bootstrap, from `ilm probe`)" in interval_note("probe")
    assert "over items (bootstrap, from `ilm syntaxgym`)" in interval_note("syntaxgym")
    assert "over pairs (bootstrap, from `ilm minimal-pairs`)" in interval_note("minimal_pairs")
    assert "over agreement pairs" in interval_note("iia") and "over sentences" in interval_note("perplexity")
    assert "over test spans" in to_markdown("probe", _rows(label=True))
    assert "over test spans" in str(rich_table("probe", _rows(label=True)).caption)


def test_a_model_folder_takes_its_language_from_the_data(tmp_path):
    """A Hugging Face folder has no run.json: its tree-projection rows are labelled with --data's language."""
    from impossible_lms.analysis.treeproj import treeproj
    from impossible_lms.evaluation.toy import make_toy_data, tiny_gpt2

    data = make_toy_data(tmp_path / "data", per_genre=3, language="no_hop", family="hop")
    tiny_gpt2().save_pretrained(tmp_path / "hf_model")
    rows = treeproj(tmp_path / "hf_model", data, unit="token", sentences=2, device="cpu")
    assert set(rows["language"]) == {"no_hop"} and set(rows["eval_language"]) == {"no_hop"}
