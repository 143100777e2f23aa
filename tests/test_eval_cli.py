"""`ilm eval` through the Typer app: output rows, one-line errors."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from cli.main import app
from impossible_lms.evaluation import load_results
from impossible_lms.evaluation.toy import make_toy_data, make_toy_run


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    data = make_toy_data(root / "data", per_genre=5)
    run = make_toy_run(root / "run", steps=(100, 200), data=data)
    return root, data, run


def test_eval_writes_results_and_resumes(toy, tmp_path):
    root, data, run = toy
    args = ["eval", str(run), "--data", str(data), "--checkpoints", "100-200:100",
            "--metrics", "perplexity,marker_surprisal", "--results", str(tmp_path), "--sentences-per-genre", "3"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    df = load_results([tmp_path])
    assert len(df) == 2 * 5 and set(df["checkpoint"]) == {100, 200} and (df["count"] == 6).all()
    assert "10 row(s)" in result.output
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and len(load_results([tmp_path])) == 10


def test_eval_errors_are_one_line(toy, tmp_path):
    root, data, run = toy
    result = CliRunner().invoke(app, ["eval", str(run), "--data", str(data), "--checkpoints", "900",
                                      "--results", str(tmp_path)])
    assert result.exit_code == 1
    assert "error:" in result.output and "checkpoint(s) 900 missing" in result.output
    assert "Traceback" not in result.output
    bad = CliRunner().invoke(app, ["eval", str(run), "--data", str(data), "--metrics", "ppl"])
    assert bad.exit_code == 1 and "unknown metric 'ppl'" in bad.output


def test_a_short_sample_is_one_warning_line_and_the_scheme_is_a_flag(toy, tmp_path):
    root, data, run = toy
    args = ["eval", str(run), "--data", str(data), "--checkpoints", "100", "--results", str(tmp_path),
            "--sentences-per-genre", "8", "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert lines and "fewer than 8 sentences in some genres (alpha has 5, beta has 5)" in lines[0]
    assert "Traceback" not in result.output and "UserWarning" not in result.output
    assert set(load_results([tmp_path])["sample_short"]) == {6}
    bad = CliRunner().invoke(app, args + ["--sample-scheme", "random"])
    assert bad.exit_code == 1 and "unknown sample scheme 'random'" in bad.output
