"""SIGKILL in the middle of training, between checkpoint writes: the rerun resumes bit for bit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from impossible_lms.training import find_checkpoints, train
from impossible_lms.training.config import resolve_train_config
from impossible_lms.training.toy import make_toy_dataset

REPO = Path(__file__).resolve().parents[1]
STEPS = 8
TINY = ["model=tiny-gpt2", "model_overrides={n_positions: 32, n_embd: 32, n_head: 2}", "batch.sequences=4",
        "batch.micro=2", "schedule.warmup=2", "logging.every=1", "device=cpu", "checkpoint.every=2",
        "checkpoint.keep=3", f"schedule.steps={STEPS}"]


def test_sigkill_between_checkpoints_then_resume_matches_a_run_that_never_stopped(tmp_path):
    data = make_toy_dataset(tmp_path / "data" / "toy", sentences=60, vocab_size=64)
    args = [*TINY, f"data={data}"]
    straight = train(resolve_train_config(None, [*args, f"out={tmp_path / 'a'}"]), progress=False)

    run = tmp_path / "b" / "toy" / "tiny-gpt2" / "seed0"
    cmd = [sys.executable, "-m", "cli", "train", "--no-progress", *[x for a in [*args, f"out={tmp_path / 'b'}"] for x in ("--set", a)]]
    proc = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while len(find_checkpoints(run)) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    done = find_checkpoints(run)
    assert 2 <= len(done) and max(done) < STEPS  # killed mid-run, with checkpoints behind it

    train(resolve_train_config(None, [*args, f"out={tmp_path / 'b'}"]), progress=False)  # the rerun resumes
    assert max(find_checkpoints(run)) == STEPS
    assert not [p.name for p in run.iterdir() if p.name.startswith(".checkpoint")]  # partial writes cleaned
    a, b = (load_file(str(r / f"checkpoint-{STEPS}" / "model.safetensors")) for r in (straight, run))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
