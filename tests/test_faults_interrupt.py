"""Ctrl-C on a command with worker processes: the terminal sends SIGINT to the whole process group;
the command answers once (one line, exit 130) and leaves no worker behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def group(pid: int) -> list[str]:
    return subprocess.run(["pgrep", "-g", str(pid)], capture_output=True, text=True).stdout.split()


def test_ctrl_c_on_perturb_with_workers_is_one_line_and_reaps_them(tmp_path):
    cmd = [sys.executable, "-m", "cli", "perturb", "all", "--corpus", "synthetic", "--corpus-option",
           "sentences=200000", "--out", str(tmp_path / "out"), "--tokenizer", "fallback", "--tagger", "gold",
           "--workers", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                            start_new_session=True, env={**os.environ, "PYTHONPATH": str(REPO)},
                            # a shell's background job inherits SIGINT ignored; a terminal's does not
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.time() + 120
        while len(group(proc.pid)) < 3 and time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)  # until the two workers run
        assert len(group(proc.pid)) >= 3, "the pool never started"
        time.sleep(1.0)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-2000:]
    assert err.strip().splitlines()[-1] == "error: interrupted; finished outputs are kept, rerun to resume"
    time.sleep(0.5)
    assert group(proc.pid) == []  # no worker left behind
