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


def test_default_metrics_are_every_one_that_applies_and_are_named(tmp_path):
    root = tmp_path
    hop = make_toy_data(root / "hop", per_genre=5)
    shuffle = make_toy_data(root / "shuffle", per_genre=5, language="no_shuffle", family="shuffle")
    run = make_toy_run(root / "run", steps=(100,), data=hop)
    from impossible_lms.evaluation.toy import TOY_VOCAB
    from impossible_lms.models import build_model, model_config

    # swap in a model with an exit head after layer 1
    build_model(model_config("tiny-gpt2-exits", vocab_size=TOY_VOCAB, n_layer=2, exit_layers=[1])).save_pretrained(
        run / "checkpoint-100")
    result = CliRunner().invoke(app, ["eval", str(run), "--data", str(hop), "--results", str(root / "r1")])
    assert result.exit_code == 0, result.output
    df = load_results([root / "r1"])
    assert {"perplexity", "marker_surprisal", "surprisal_difference"} <= set(df["metric"])
    assert set(df["layer"].dropna()) == {1}  # the exit head's rows come by default too
    assert "metrics: perplexity, marker_surprisal, surprisal_difference; per-layer rows for exit layers 1" in result.output
    plain = make_toy_run(root / "run2", steps=(100,), data=shuffle, language="no_shuffle")
    result = CliRunner().invoke(app, ["eval", str(plain), "--data", str(shuffle), "--results", str(root / "r2")])
    assert result.exit_code == 0, result.output
    assert set(load_results([root / "r2"])["metric"]) == {"perplexity"}  # no markers in a shuffle language
    assert "metrics: perplexity\n" in result.output
