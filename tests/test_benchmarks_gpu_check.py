"""benchmarks/gpu_check.py --smoke runs on CPU and prints its one table, so the GPU check cannot rot."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_smoke_prints_the_table(tmp_path):
    rows = tmp_path / "rows.txt"
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--smoke", "--out", str(rows)],
                         cwd=ROOT,
                         capture_output=True, text=True, timeout=300, env={"OMP_NUM_THREADS": "1",
                                                                            **__import__("os").environ})
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert lines[0].startswith("device cpu; peak bf16 dense used for MFU: unknown")
    # each row is printed (and written to --out) the moment it is measured, then the table at the end
    streamed = rows.read_text().splitlines()
    assert streamed and all(line.startswith("[") for line in streamed)
    assert lines[1:1 + len(streamed)] == streamed
    head = lines.index(next(l for l in lines if l.split() == ["part", "subject", "value", "note"]))
    assert head == 1 + len(streamed)
    body = "\n".join(lines[head + 2:])
    assert len(body.splitlines()) == len(streamed)
    assert "FAILED" not in body, body
    for name in ("tiny-gpt2", "tiny-gpt2-nopos", "tiny-gpt2-rotary", "tiny-gpt2-alibi", "tiny-backpack",
                 "transformers GPT2 (sdpa)", "nanoGPT-style"):
        assert f"train  {name} [fast (dropout 0)]" in body, name
    assert "[default (dropout 0.1)]" in body
    assert "tok/s" in body and "evaluate() 2 ckpt x 20 sent" in body and "batch-8 fp32 loop" in body
    assert "evaluate(subsets=test_affected) 2 ckpt x 20 sent" in body and "3 passes" in body and "5 passes" in body
    assert "flash_attn" in body and "skipped" in body  # a clear line for the part it cannot run here
    assert "tiny-gpt2-alibi: sdpa vs eager (bf16)" in body and "argmax agree" in body


def test_gpu_check_on_a_bare_machine_skips_with_a_line():
    """A device machine has torch, transformers, triton only: missing packages skip their part with a line."""
    code = ("import sys, runpy\n"
            "for m in ('datasets', 'nltk', 'flash_attn'): sys.modules[m] = None  # import raises ImportError\n"
            "sys.argv = ['gpu_check.py', '--smoke', '--skip', 'train']\n"
            "runpy.run_path('benchmarks/gpu_check.py', run_name='__main__')\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "FAILED" not in out.stdout, out.stdout
    assert any(l.split()[:3] == ["eval", "-", "skipped"] and "datasets not importable" in l
               for l in out.stdout.splitlines())
    assert "tiny-gpt2: sdpa vs eager (bf16)" in out.stdout
