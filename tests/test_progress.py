"""Progress outside a terminal: plain lines at a steady interval and at each task's end, from every command."""

from __future__ import annotations

import io
import re

from typer.testing import CliRunner

from cli.main import app
from impossible_lms.progress import LineProgress, interval_from_env, progress

STAMP = r"\d\d:\d\d:\d\d "


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_lines_come_at_the_interval_and_at_the_end() -> None:
    out, clock = io.StringIO(), Clock()
    with LineProgress(interval=10, stream=out, get_time=clock) as bar:
        task = bar.add_task("train x", total=100)
        for step in range(1, 101):
            clock.now += 1.0  # one step a second
            bar.update(task, completed=step, info=f"loss {1 / step:.3f}")
    lines = out.getvalue().splitlines()
    assert all(re.match(STAMP, line) for line in lines)
    bodies = [line[9:] for line in lines]
    # a line every 10 s (steps 10, 20, ..., 90), then the end line at 100
    assert len(bodies) == 10
    assert bodies[0] == "train x: 10/100 (10%) · 1.00/s · ETA 1m30s · loss 0.100"
    assert bodies[4] == "train x: 50/100 (50%) · 1.00/s · ETA 50s · loss 0.020"
    assert bodies[-1] == "train x: done 100/100 in 1m40s (1.00/s) · loss 0.010"


def test_resumed_task_rates_count_only_new_work_and_open_tasks_end_at_stop() -> None:
    out, clock = io.StringIO(), Clock()
    with LineProgress(interval=5, stream=out, get_time=clock) as bar:
        task = bar.add_task("train y", total=1000, completed=900)  # resumed at step 900
        clock.now = 5.0
        bar.update(task, completed=910)
        tags = bar.add_task("tagging", total=None)
        clock.now = 7.0
        bar.advance(tags, 3)
    bodies = [line[9:] for line in out.getvalue().splitlines()]
    assert bodies == ["train y: 910/1,000 (91%) · 2.00/s · ETA 45s",
                      "train y: stopped at 910/1,000 after 7s (1.43/s)",
                      "tagging: done 3 in 2s (1.50/s)"]


def test_terminal_and_disabled_modes(monkeypatch) -> None:
    from rich.progress import Progress

    assert isinstance(progress(), LineProgress)  # pytest's stderr is not a terminal
    assert not isinstance(progress(disable=True), LineProgress) and isinstance(progress(disable=True), Progress)
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich then treats stderr as a terminal
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    assert not isinstance(progress(), LineProgress)
    monkeypatch.setenv("ILM_PROGRESS_EVERY", "3.5")
    assert interval_from_env() == 3.5
    monkeypatch.setenv("ILM_PROGRESS_EVERY", "soon")
    assert interval_from_env() == 20.0


def _lines(text: str, prefix: str) -> list[str]:
    return [ln[9:] for ln in text.splitlines() if re.match(STAMP + re.escape(prefix), ln)]


def test_train_prints_step_loss_lr_and_rate_lines(tmp_path) -> None:
    from impossible_lms.training.toy import make_toy_dataset

    data = make_toy_dataset(tmp_path / "toy", sentences=150, vocab_size=64)
    tiny = ["model=tiny-gpt2", "model_overrides={n_positions: 32, n_embd: 32, n_head: 2}", "batch.sequences=4",
            "logging.every=1", "device=cpu"]
    args = ["--progress-every", "0", "train", "--data", str(data), "--out", str(tmp_path / "runs"), "--steps", "3",
            "--warmup", "1", "--checkpoint-every", "3", *[a for t in tiny for a in ("--set", t)]]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    lines = _lines(result.stderr, "train toy tiny-gpt2 seed0: ")
    assert len(lines) == 3, result.stderr
    assert re.fullmatch(r"train toy tiny-gpt2 seed0: 1/3 \(33%\) · .*/s · ETA \d+s · loss \d\.\d{3} · lr 0\.00e\+00 · "
                        r"[\d.,]+k tok/s", lines[0]), lines[0]  # warm-up starts from 0
    assert " · lr 6.00e-04 · " in lines[1]  # the peak after one warm-up step
    assert lines[-1].startswith("train toy tiny-gpt2 seed0: done 3/3 in ") and "loss" in lines[-1]
    assert "run:" in result.stdout and "train toy" not in result.stdout  # progress goes to stderr only


def test_perturb_and_eval_print_stage_lines(tmp_path, monkeypatch) -> None:
    from impossible_lms.evaluation.toy import make_toy_data, make_toy_run

    monkeypatch.setenv("ILM_PROGRESS_EVERY", "0")
    result = CliRunner().invoke(app, ["perturb", "no_shuffle", "--corpus", "synthetic", "--corpus-option",
                                      "sentences=200", "--tokenizer", "fallback", "--tagger", "gold",
                                      "--fallback-vocab", "350", "--out", str(tmp_path / "data")])
    assert result.exit_code == 0, result.output
    done = _lines(result.stderr, "perturbing: done ")  # one step per corpus file: 3 genres x 3 splits
    assert len(done) == 1 and done[0].startswith("perturbing: done 9/9 in "), result.stderr

    data = make_toy_data(tmp_path / "evaldata", per_genre=5)
    run = make_toy_run(tmp_path / "run", steps=(100,), data=data)
    result = CliRunner().invoke(app, ["eval", str(run), "--data", str(data), "--results", str(tmp_path / "res")])
    assert result.exit_code == 0, result.output
    assert _lines(result.stderr, "checkpoints: done 1/1 in ")
    quiet = CliRunner().invoke(app, ["eval", str(run), "--data", str(data), "--no-progress",
                                     "--results", str(tmp_path / "res2")])
    assert quiet.exit_code == 0 and not _lines(quiet.stderr, "checkpoints")
