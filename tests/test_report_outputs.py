"""make_report's files (md/csv/tex/png/pdf exist and parse), registry colours, and `ilm report`."""

import matplotlib.colors as mcolors
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from impossible_lms.errors import ILMError
from impossible_lms.reporting import figures, make_report
from impossible_lms.reporting.render import tex_escape
from perturbations import get_language

LANGS = ["no_shuffle", "local_shuffle:w=3", "partial_reverse", "token_hop"]


def results_frame():
    rows = []
    for i, lang in enumerate(LANGS):
        for seed in (0, 1):
            for ck in (50, 100, 150):
                rows.append(dict(subject="s", language=lang, model="tiny-gpt2", seed=seed, checkpoint=ck,
                                 metric="perplexity", subset="test_affected", value=100.0 / ck + i + seed,
                                 ci_low=np.nan, ci_high=np.nan, count=10, unit="ppl"))
                if lang == "token_hop":
                    for metric in ("marker_surprisal", "surprisal_difference"):
                        rows.append(dict(subject="s", language=lang, model="tiny-gpt2", seed=seed, checkpoint=ck,
                                         metric=metric, subset="test_affected", value=5.0 - ck / 50 + seed,
                                         ci_low=np.nan, ci_high=np.nan, count=10, unit="bits"))
    return pd.DataFrame(rows)


def test_every_format_is_written_and_parses(tmp_path):
    files = make_report(results_frame(), tmp_path, ["md", "csv", "tex", "png", "pdf"])
    names = {f.name for f in files}
    assert {"report.md", "final.csv", "perplexity.csv", "auc.csv", "marker_surprisal.csv",
            "surprisal_difference.csv", "final.tex", "perplexity_tiny-gpt2.png", "perplexity_tiny-gpt2.pdf",
            "surprisal_tiny-gpt2.png"} <= names
    assert all(f.is_file() and f.stat().st_size > 0 for f in files)
    assert not list(tmp_path.glob(".*"))  # no temp files left behind

    ppl = pd.read_csv(tmp_path / "perplexity.csv")
    assert len(ppl) == len(LANGS) * 3
    assert list(ppl.columns[:2]) == ["language", "display"]
    first = ppl.iloc[0]
    assert (first.language, first.display, first.checkpoint) == ("no_shuffle", "NoShuffle", 50)
    assert first.value == pytest.approx(np.sqrt(2.0 * 3.0))  # geometric mean of 2 and 3

    md = (tmp_path / "report.md").read_text()
    assert "![perplexity_tiny-gpt2](perplexity_tiny-gpt2.png)" in md
    assert "| LocalShuffle (w=3) | tiny-gpt2 | test_affected | 50 |" in md
    tex = (tmp_path / "final.tex").read_text()
    assert "\\begin{tabular}" in tex and "test\\_affected" in tex and "\\bottomrule" in tex
    assert (tmp_path / "perplexity_tiny-gpt2.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "perplexity_tiny-gpt2.pdf").read_bytes()[:5] == b"%PDF-"


def test_only_requested_formats(tmp_path):
    files = make_report(results_frame(), tmp_path, ["csv"])
    assert files and all(f.suffix == ".csv" for f in files)
    with pytest.raises(ILMError, match="unknown report format 'docx'"):
        make_report(results_frame(), tmp_path, ["docx"])
    with pytest.raises(ILMError, match="no results"):
        make_report(results_frame().iloc[:0], tmp_path, ["csv"])


def test_lines_take_colour_and_label_from_the_registry(tmp_path, monkeypatch):
    saved = []
    monkeypatch.setattr(figures, "_save", lambda fig, stem, formats: saved.append(fig) or [])
    from impossible_lms.reporting.tables import build_tables

    table = build_tables(results_frame())["perplexity"]
    figures.learning_curves(table, tmp_path / "x", ["png"], ylabel="ppl", title="t")
    (fig,) = saved
    panels = [ax.get_title() for ax in fig.axes]
    assert panels == ["*Shuffle", "*Reverse", "*Hop"]
    lines = {line.get_label(): line.get_color() for ax in fig.axes for line in ax.get_lines()}
    for name in LANGS:
        lang = get_language(name)
        assert mcolors.to_rgba(lines[lang.display]) == mcolors.to_rgba(lang.color)


def test_tex_escape():
    assert tex_escape("a_b & 50% #1") == "a\\_b \\& 50\\% \\#1"


def test_cli_report(tmp_path, monkeypatch):
    import impossible_lms.evaluation as evaluation
    from cli.main import app

    seen = []
    monkeypatch.setattr(evaluation, "load_results", lambda paths: seen.append(paths) or results_frame(), raising=False)
    out = tmp_path / "rep"
    res = CliRunner().invoke(app, ["report", str(tmp_path), "--format", "md,csv", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "Final checkpoint" in res.output and "TokenHop" in res.output
    assert (out / "report.md").is_file() and (out / "final.csv").is_file() and not list(out.glob("*.png"))
    bad = CliRunner().invoke(app, ["report", str(tmp_path), "--format", "docx"])
    assert bad.exit_code == 1 and "unknown report format" in bad.output and "Traceback" not in bad.output


def test_per_layer_heat_map_when_exits_were_scored(tmp_path):
    df = results_frame()
    layers = df[df.metric == "perplexity"].copy()
    layers["layer"] = 1
    both = pd.concat([df.assign(layer=pd.NA), layers, layers.assign(layer=2, value=layers.value * 2)], ignore_index=True)
    files = make_report(both, tmp_path, ["csv", "png"])
    assert tmp_path / "layers_tiny-gpt2_perplexity_test_affected.png" in files
    grid = pd.read_csv(tmp_path / "layers.csv")
    assert sorted(grid.layer.unique()) == [1, 2] and set(grid.language) == set(LANGS)
