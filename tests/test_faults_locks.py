"""Fault injection on locks: real processes racing for one output folder, and a holder killed by SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from impossible_lms.errors import ILMError
from impossible_lms.locks import hold, lock_path

REPO = Path(__file__).resolve().parents[1]

# Holds the lock of argv[1], says so, then waits for argv[2] to appear (or is killed).
HOLDER = textwrap.dedent("""
    import os, sys, time
    from impossible_lms.locks import hold
    from impossible_lms.errors import ILMError
    try:
        with hold(sys.argv[1], "run folder"):
            print("held", os.getpid(), flush=True)
            while not os.path.exists(sys.argv[2]):
                time.sleep(0.02)
    except ILMError as e:
        print("refused", e, flush=True)
""")


def start_holder(folder, go):
    # This checkout's package, whatever the test's cwd (other tests chdir).
    return subprocess.Popen([sys.executable, "-c", HOLDER, str(folder), str(go)], stdout=subprocess.PIPE, text=True,
                            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})


def wait_held(proc):
    line = proc.stdout.readline().split()
    assert line[:1] == ["held"], line
    return int(line[1])


def test_two_processes_racing_for_one_folder_one_wins_the_other_names_it(tmp_path):
    folder, go = tmp_path / "run", tmp_path / "go"
    procs = [start_holder(folder, go) for _ in range(2)]
    first = [p.stdout.readline() for p in procs]
    go.touch()
    for p in procs:
        p.wait(timeout=60)
    held = [line.split()[1] for line in first if line.startswith("held")]
    refused = [line for line in first if line.startswith("refused")]
    assert len(held) == 1 and len(refused) == 1, first
    assert f"run folder {folder} is in use by process {held[0]}" in refused[0]
    assert not lock_path(folder).exists()  # the winner removed its lock file


def test_a_sigkilled_holder_never_blocks_the_next_run(tmp_path):
    folder, go = tmp_path / "run", tmp_path / "never"
    proc = start_holder(folder, go)
    pid = wait_held(proc)
    with pytest.raises(ILMError, match=rf"in use by process {pid} \(lock .*\.run\.lock\)"):
        with hold(folder, "run folder"):
            pass
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert lock_path(folder).exists()  # left behind, with the dead PID in it
    with hold(folder, "run folder") as path:  # the kernel dropped the dead holder's flock
        assert path.read_text().strip() == str(os.getpid())
    assert not lock_path(folder).exists()


def test_train_and_perturb_refuse_a_folder_another_process_writes(tmp_path):
    from impossible_lms.perturb import perturb_corpus
    from impossible_lms.training import train
    from impossible_lms.training.config import resolve_train_config
    from impossible_lms.training.toy import make_toy_dataset

    data = make_toy_dataset(tmp_path / "data" / "toy", sentences=30, vocab_size=64)
    go = tmp_path / "go"
    run_dir = tmp_path / "runs" / "r"
    holders = [start_holder(run_dir, go), start_holder(tmp_path / "out" / "no_shuffle", go)]
    try:
        pids = [wait_held(p) for p in holders]
        cfg = resolve_train_config(None, ["model=tiny-gpt2", f"data={data}", f"run_dir={run_dir}", "device=cpu"])
        with pytest.raises(ILMError, match=rf"run folder {run_dir} is in use by process {pids[0]}"):
            train(cfg, progress=False)
        assert not run_dir.exists()  # refused before writing anything
        with pytest.raises(ILMError, match=rf"dataset .*no_shuffle is in use by process {pids[1]}"):
            perturb_corpus(["no_shuffle"], "synthetic", tmp_path / "out", tokenizer="fallback", progress=False,
                           corpus_options={"sentences": 20})
        assert not (tmp_path / "out" / "no_shuffle").exists()
    finally:
        go.touch()
        for p in holders:
            p.wait(timeout=60)


def test_a_killed_perturbs_temporary_folders_are_removed_by_the_next_run(tmp_path):
    from impossible_lms.perturb import perturb_corpus

    out = tmp_path / "out"
    (out / ".no_shuffle.abc123.tmp" / "train").mkdir(parents=True)  # what a SIGKILL mid-write leaves
    (out / ".other.abc123.tmp").mkdir()  # not ours: another dataset's, left alone
    perturb_corpus(["no_shuffle"], "synthetic", out, tokenizer="fallback", progress=False, corpus_options={"sentences": 20})
    assert sorted(p.name for p in out.iterdir()) == [".other.abc123.tmp", "no_shuffle"]


def test_a_folder_named_through_a_symlink_shares_its_lock(tmp_path):
    """`--run-dir X/run` and `--run-dir X/alias` (alias → run) are one folder: one lock, one writer."""
    run = tmp_path / "X" / "run"
    run.mkdir(parents=True)
    (tmp_path / "X" / "alias").symlink_to(run)
    (tmp_path / "elsewhere").symlink_to(tmp_path / "X")
    names = [run, tmp_path / "X" / "alias", tmp_path / "elsewhere" / "run", tmp_path / "X" / ".." / "X" / "run"]
    assert len({lock_path(n) for n in names}) == 1
    go = tmp_path / "go"
    holder = start_holder(run, go)
    try:
        wait_held(holder)
        for other in names[1:]:
            with pytest.raises(ILMError, match=r"is in use by process \d+"):
                with hold(other, "run folder"):
                    pass
    finally:
        go.touch()
        holder.wait(timeout=30)
