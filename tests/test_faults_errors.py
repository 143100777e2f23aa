"""Each family of cause that once gave a traceback gives one error line and exit 1 (issue 11 §3),
including writes failing mid-file (a full disk, monkeypatched)."""

from __future__ import annotations

import errno

import pytest
from typer.testing import CliRunner

from cli.common import os_error_message
from cli.main import app
from impossible_lms.evaluation.toy import make_toy_run
from impossible_lms.training import find_checkpoints
from impossible_lms.training.toy import make_toy_dataset

TINY = ["--set", "model=tiny-gpt2", "--set", "model_overrides={n_positions: 32, n_embd: 32, n_head: 2}",
        "--set", "batch.sequences=4", "--set", "batch.micro=2", "--set", "checkpoint.async_write=false",
        "--steps", "1", "--no-progress", "--device", "cpu"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("errors")
    data = make_toy_dataset(root / "data" / "toy", sentences=30, vocab_size=64)
    run = make_toy_run(root / "run", steps=(1,), vocab_size=64)
    afile = root / "afile.txt"
    afile.write_text("not a folder, not a table\n")
    return root, data, run, afile


def one_line_error(args, contains):
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    assert not result.exception or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert contains in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("command", ["perturb", "train", "eval"])
def test_an_output_path_through_a_file(world, command):
    root, data, run, afile = world
    args = {
        "perturb": ["perturb", "no_shuffle", "--corpus", "synthetic", "--tokenizer", "fallback", "--out", str(afile / "sub")],
        "train": ["train", "--data", str(data), "--out", str(afile), *TINY],
        "eval": ["eval", str(run), "--data", str(data), "--results", str(afile), "--no-progress", "--metrics", "perplexity"],
    }[command]
    line = one_line_error(args, "part of this path is a file, not a folder")
    assert str(afile) in line


def test_a_folder_that_is_a_file(world):
    root, data, run, afile = world
    one_line_error(["train", "--data", str(data), "--run-dir", str(afile), *TINY],
                   f"{afile} already exists (as a file where a folder is needed)")


def test_an_unwritable_output_folder(world, monkeypatch):
    # Tests run as root here, which no file mode stops: the refusal is injected where it would come from.
    import impossible_lms.io as io

    root, data, run, afile = world
    out = root / "locked"

    def refuse(*args, dir=None, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(dir))

    monkeypatch.setattr(io.tempfile, "mkdtemp", refuse)
    one_line_error(["perturb", "no_shuffle", "--corpus", "synthetic", "--tokenizer", "fallback", "--out", str(out),
                    "--corpus-option", "sentences=20"], f"{out}: permission denied")


@pytest.mark.parametrize("how", ["oserror", "safetensors"])
def test_a_full_disk_mid_checkpoint_leaves_nothing_half_written(world, tmp_path, monkeypatch, how):
    import impossible_lms.training.checkpoint as ckpt
    from safetensors import SafetensorError

    root, data, run, afile = world

    def half_then_full(folder, state):
        (folder / ckpt.STATE_JSON).write_text('{"format": "ilm-tr')  # a write cut off mid-file
        if how == "oserror":
            raise OSError(errno.ENOSPC, "No space left on device", str(folder / ckpt.STATE_JSON))
        raise SafetensorError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space left on device" })')

    monkeypatch.setattr(ckpt, "write_trainer_state", half_then_full)
    one_line_error(["train", "--data", str(data), "--out", str(tmp_path), *TINY], "no space left on the device")
    folder = tmp_path / "toy" / "tiny-gpt2" / "seed0"
    assert find_checkpoints(folder) == {}
    assert not [p.name for p in folder.iterdir() if "checkpoint" in p.name]  # no partial folder either


@pytest.mark.parametrize("where", ["report_file", "report_folder", "eval_rerun", "report_text"])
def test_a_truncated_or_foreign_results_file_is_named(world, tmp_path, where):
    root, data, run, afile = world
    results = tmp_path / "results"
    eval_args = ["eval", str(run), "--data", str(data), "--results", str(results), "--no-progress", "--metrics", "perplexity"]
    assert CliRunner().invoke(app, eval_args).exit_code == 0
    chunk = sorted(results.rglob("*.parquet"))[0]
    chunk.write_bytes(chunk.read_bytes()[:40])
    args = {
        "report_file": ["report", str(chunk), "--out", str(tmp_path / "r")],
        "report_folder": ["report", str(results), "--out", str(tmp_path / "r")],
        "eval_rerun": eval_args,
        "report_text": ["report", str(afile), "--out", str(tmp_path / "r")],
    }[where]
    target = afile if where == "report_text" else chunk
    one_line_error(args, f"{target} is not a readable Parquet results file (truncated, or not Parquet")


def test_an_unknown_device_for_generate(world):
    root, data, run, afile = world
    one_line_error(["generate", str(run / "checkpoint-1"), "-p", "a", "--device", "tpu"], "unknown device 'tpu'")


def test_a_fixed_length_setting_of_the_wrong_length(world, tmp_path):
    root, data, run, afile = world
    one_line_error(["train", "--data", str(data), "--out", str(tmp_path), *TINY, "--set", "optim.betas=[0.9]"],
                   "optim.betas: expected 2 values, got 1")


def test_the_mapping_names_the_path_and_leaves_other_errors_alone():
    assert os_error_message(OSError(errno.EROFS, "Read-only file system", "/mnt/x")) == \
        "/mnt/x is on a read-only file system; write somewhere else"
    assert "disk quota exceeded writing (a file)" in os_error_message(OSError(errno.EDQUOT, "quota"))
    assert os_error_message(OSError(errno.EIO, "I/O error", "/x")) is None  # not the user's to fix: a traceback
    assert os_error_message(ValueError("bug")) is None
