"""Values that used to be accepted silently (or hang): each is one line and exit 1, before any work."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app

DEMO = Path(__file__).resolve().parents[1] / "experiments" / "demo.yaml"


def one_line_error(args: list[str]) -> str:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, (args, result.output, result.exception)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return " ".join(lines)


@pytest.mark.parametrize("args, message", [
    (["--lr", "inf"], "optim.lr must be a finite number, got inf"),
    (["--lr", "nan"], "optim.lr must be a finite number, got nan"),
    (["--seed", "999999999999999999999999"], "seed must be in [0, 4294967295], got 999999999999999999999999"),
])
def test_numbers_are_finite_and_bounded_where_they_are_parsed(tmp_path, args, message):
    assert message in one_line_error(["train", "--data", str(tmp_path), *args])


@pytest.mark.parametrize("spec, message", [
    ("local_shuffle:w=3,w=5", "local_shuffle: w is given twice"),
    ("token_hop:upos=NOTATAG", "hop selector: upos 'NOTATAG' is not a Universal Dependencies tag"),
])
def test_language_specs_that_would_do_something_else_are_refused(spec, message):
    assert message in one_line_error(["languages", spec])


@pytest.mark.parametrize("spec, message", [
    ("", "empty checkpoint spec"),
    ("10,,20", "bad checkpoint spec '10,,20': an empty part between commas"),
    ("0-1000000000000:1", "names 1,000,000,000,001 checkpoints (at most 100,000)"),
])
def test_checkpoint_specs_fail_fast(tmp_path, spec, message):
    assert message in one_line_error(["eval", str(tmp_path), "--data", str(tmp_path), "--checkpoints", spec])


def test_a_dry_run_checks_what_a_run_would(tmp_path):
    message = one_line_error(["run", str(DEMO), "--set", f"out={tmp_path}", "--set", "eval.checkpoints=3000-100",
                              "--dry-run"])
    assert "eval.checkpoints: bad checkpoint range '3000-100'" in message


def test_cli_wide_values(tmp_path):
    assert "--progress-every must be a positive number of seconds, got -1" in one_line_error(
        ["--progress-every", "-1", "languages"])
    assert "no report format given" in one_line_error(["report", str(tmp_path), "--format", ","])
    assert "empty field name before '='" in one_line_error(["run", str(DEMO), "--set", "=5", "--dry-run"])
