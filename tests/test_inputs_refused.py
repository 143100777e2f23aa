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
    assert "--progress-every must be a number of seconds >= 0, got -1" in one_line_error(
        ["--progress-every", "-1", "languages"])
    assert "no report format given" in one_line_error(["report", str(tmp_path), "--format", ","])
    assert "empty field name before '='" in one_line_error(["run", str(DEMO), "--set", "=5", "--dry-run"])


@pytest.mark.parametrize("args, message", [
    (["--corpus-option", "sentences=99999999999999999999"], "corpus option sentences must be at most 10,000,000"),
    (["--corpus-option", "seed=-1"], "corpus option seed must be at least 0"),
])
def test_corpus_options_that_would_run_for_days_fail_at_once(tmp_path, args, message):
    assert message in one_line_error(["perturb", "no_shuffle", "--corpus", "synthetic", *args,
                                      "--out", str(tmp_path), "--tokenizer", "fallback", "--tagger", "none"])


@pytest.mark.parametrize("content, message", [
    (b"a" * 1_000_000 + b"\n", "a line of 1,000,001 bytes (at most 100,000)"),
    (bytes(range(128, 256)) * 100, "not valid UTF-8"),
])
def test_corpus_text_is_checked_before_any_expensive_work(tmp_path, content, message):
    """A megabyte one-word line or binary bytes: refused in well under a second, not after minutes of BPE."""
    import time

    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(content)
    start = time.perf_counter()
    assert message in one_line_error(["perturb", "no_shuffle", "--corpus", str(corpus), "--out", str(tmp_path / "o"),
                                      "--tokenizer", "fallback", "--tagger", "none"])
    assert time.perf_counter() - start < 30  # a bound far above the real time, far below the old minutes


def _binary_yaml(tmp: Path) -> list[str]:
    path = tmp / "bin.yaml"
    path.write_bytes(bytes(range(128, 256)))
    return ["run", str(path), "--dry-run"]


def _deep_json_run(tmp: Path) -> list[str]:
    from impossible_lms.evaluation.toy import make_toy_data, make_toy_run

    run = make_toy_run(tmp / "run", steps=[1], data=make_toy_data(tmp / "d", per_genre=2))
    (run / "run.json").write_text("[" * 200_000 + "]" * 200_000)
    return ["eval", str(run), "--data", str(tmp / "d")]


def _huge_step(tmp: Path) -> list[str]:
    from impossible_lms.evaluation.toy import make_toy_data, make_toy_run

    run = make_toy_run(tmp / "run", steps=[1], data=make_toy_data(tmp / "d", per_genre=2))
    (run / "checkpoint-1").rename(run / "checkpoint-99999999999999999999999")
    return ["eval", str(run), "--data", str(tmp / "d")]


def _garbage_run_json(tmp: Path) -> list[str]:
    from impossible_lms.evaluation.toy import make_toy_data, make_toy_run

    run = make_toy_run(tmp / "run", steps=[1], data=make_toy_data(tmp / "d", per_genre=2))
    (run / "run.json").write_text("garbage{")
    return ["generate", str(run / "checkpoint-1"), "--prompt", "a"]


def _latin1_pairs(tmp: Path) -> list[str]:
    from impossible_lms.evaluation.toy import make_toy_data, make_toy_run

    run = make_toy_run(tmp / "run", steps=[1], data=make_toy_data(tmp / "d", per_genre=2))
    (tmp / "p.jsonl").write_bytes('{"sentence_good": "caf\u00e9", "sentence_bad": "x"}\n'.encode("latin-1"))
    return ["minimal-pairs", str(run), "--data", str(tmp / "d"), "--pairs", str(tmp / "p.jsonl")]


def _model_size(value: str):
    def make(tmp: Path) -> list[str]:
        from impossible_lms.evaluation.toy import make_toy_data

        data = make_toy_data(tmp / "d", per_genre=2)
        return ["train", "--data", str(data), "--model", "tiny-gpt2", "--set", f"model.{value}", "--out", str(tmp)]

    return make


@pytest.mark.parametrize("make, message", [
    (_binary_yaml, "bin.yaml: not UTF-8 text"),
    (_deep_json_run, "nested too deeply"),
    (_huge_step, "step 99999999999999999999999 is too large to be a training step"),
    (_garbage_run_json, "run.json: invalid JSON"),
    (_latin1_pairs, "not UTF-8 text"),
    (_model_size("n_layer=abc"), "n_layer must be a whole number, got 'abc'"),
    (_model_size("n_layer=[1,2]"), "n_layer must be a whole number, got [1, 2]"),
    (_model_size("n_positions=100000000000000"), "n_positions must be in [1, 1048576]"),
], ids=["binary-yaml", "deep-json", "huge-step", "garbage-run-json", "latin1-stimuli", "n_layer-str",
        "n_layer-list", "n_positions-huge"])
def test_what_used_to_be_a_traceback_is_one_line(tmp_path, make, message):
    assert message in one_line_error(make(tmp_path))


def test_file_too_large_is_one_line():
    import errno

    from cli.common import os_error_message

    e = OSError(errno.EFBIG, "File too large", "/runs/x/checkpoint-100/model.safetensors")
    assert os_error_message(e).startswith("/runs/x/checkpoint-100/model.safetensors: file too large")
