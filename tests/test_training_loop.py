"""The training loop: bit-exact resume, DDP equivalence, atomic checkpoints, run folders, the CLI."""

from __future__ import annotations

import json
import os
import shutil
import socket

import pytest
import torch
from safetensors.torch import load_file

from impossible_lms.errors import ILMError
from impossible_lms.training import find_checkpoints, load_run_info, train
from impossible_lms.training.config import resolve_train_config
from impossible_lms.training.toy import make_toy_dataset

# A tiny model (context 32) and a small batch keep each run to a fraction of a second.
TINY = ["model=tiny-gpt2", "model_overrides={n_positions: 32, n_embd: 32, n_head: 2}",
        "batch.sequences=4", "batch.micro=2", "schedule.warmup=2", "logging.every=1", "device=cpu"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_toy_dataset(tmp_path_factory.mktemp("data") / "toy", sentences=150, vocab_size=64)


def config(data, out, *more):
    return resolve_train_config(None, [*TINY, f"data={data}", f"out={out}", *more])


def weights(checkpoint):
    return load_file(str(checkpoint / "model.safetensors"))


def losses(run_dir):
    return [json.loads(line)["loss"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_run_folder_layout(data, tmp_path):
    run = train(config(data, tmp_path, "schedule.steps=6", "checkpoint.every=3"), progress=False)
    assert run == tmp_path / "toy" / "tiny-gpt2" / "seed0"
    assert sorted(find_checkpoints(run)) == [3, 6]
    assert {p.name for p in (run / "checkpoint-6").iterdir()} >= {"config.json", "model.safetensors", "trainer_state.json", "trainer_state.safetensors"}
    info = load_run_info(run)
    assert (info.language, info.model, info.seed, info.steps, info.finished) == ("toy", "tiny-gpt2", 0, 6, True)
    assert info.raw["checkpoints"] == [3, 6] and info.vocab_size == 64
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert set(rows[0]) == {"step", "loss", "lr", "grad_norm", "tokens_per_s", "mfu"}
    assert rows[0]["lr"] == 0.0 and rows[2]["lr"] == pytest.approx(6e-4)  # warm-up from 0


def test_resume_is_bit_exact_on_cpu(data, tmp_path):
    # Dropout stays on (GPT-2's 0.1): the dropout RNG must be part of the state.
    straight = train(config(data, tmp_path / "a", "schedule.steps=8", "checkpoint.every=4"), progress=False)
    cfg = config(data, tmp_path / "b", "schedule.steps=8", "checkpoint.every=4")
    resumed = train(cfg, progress=False)
    shutil.rmtree(resumed / "checkpoint-8")  # as if the run had stopped after step 4
    train(cfg, progress=False)
    a, b = weights(straight / "checkpoint-8"), weights(resumed / "checkpoint-8")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert losses(straight) == losses(resumed)  # metrics after step 4 were rewritten, not duplicated
    # and a different seed really trains differently
    other = train(config(data, tmp_path / "c", "schedule.steps=8", "checkpoint.every=4", "seed=1"), progress=False)
    assert not torch.equal(weights(other / "checkpoint-8")["transformer.h.0.mlp.c_fc.weight"],
                           a["transformer.h.0.mlp.c_fc.weight"])


def test_finished_run_is_a_no_op_and_other_configs_are_refused(data, tmp_path):
    cfg = config(data, tmp_path, "schedule.steps=2", "checkpoint.every=1")
    run = train(cfg, progress=False)
    stamp = (run / "checkpoint-2" / "model.safetensors").stat().st_mtime_ns
    assert train(cfg, progress=False) == run
    assert (run / "checkpoint-2" / "model.safetensors").stat().st_mtime_ns == stamp
    # operational settings may change...
    train(config(data, tmp_path, "schedule.steps=2", "checkpoint.every=1", "logging.every=5"), progress=False)
    # ...what the run computes may not
    with pytest.raises(ILMError, match=r"different config \(optim.lr: 0.0006 there, 0.001 now\)"):
        train(config(data, tmp_path, "schedule.steps=2", "checkpoint.every=1", "optim.lr=1e-3"), progress=False)


def test_a_crash_while_writing_leaves_no_checkpoint(data, tmp_path, monkeypatch):
    import impossible_lms.training.checkpoint as ckpt

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ckpt, "write_trainer_state", broken_save)
    cfg = config(data, tmp_path, "schedule.steps=2", "checkpoint.every=1")
    with pytest.raises(OSError, match="disk full"):
        train(cfg, progress=False)
    run = tmp_path / "toy" / "tiny-gpt2" / "seed0"
    assert find_checkpoints(run) == {}
    assert not [p.name for p in run.iterdir() if p.name.startswith((".checkpoint", "checkpoint"))]
    monkeypatch.undo()
    (run / ".checkpoint-1.abc.tmp").mkdir()  # what a SIGKILL mid-write would leave
    train(cfg, progress=False)  # and the run then trains from scratch
    assert sorted(find_checkpoints(run)) == [1, 2]
    assert not list(run.glob(".checkpoint-*"))


def test_keep_prunes_old_checkpoints_and_mfu_uses_the_given_peak(data, tmp_path):
    from impossible_lms.models import model_config

    cfg = config(data, tmp_path, "schedule.steps=4", "checkpoint.every=1", "checkpoint.keep=2", "peak_flops=1e12")
    run = train(cfg, progress=False)
    assert sorted(find_checkpoints(run)) == [3, 4]
    flops = model_config("tiny-gpt2", vocab_size=64, **cfg.model_overrides).flops_per_token(32)
    for row in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()):
        assert row["mfu"] == pytest.approx(row["tokens_per_s"] * flops / 1e12)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, cfg) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    train(cfg, progress=False)


@pytest.mark.slow
def test_ddp_two_processes_match_one(data, tmp_path):
    no_dropout = "model_overrides={n_positions: 32, n_embd: 32, n_head: 2, resid_pdrop: 0, embd_pdrop: 0, attn_pdrop: 0}"
    common = ["schedule.steps=4", "checkpoint.every=4", no_dropout]
    one = train(config(data, tmp_path / "one", *common), progress=False)
    cfg = config(data, tmp_path / "two", *common, "batch.micro=1")  # 4 = 2 processes × 2 micro-steps × 1
    torch.multiprocessing.spawn(_ddp_worker, args=(2, _free_port(), cfg), nprocs=2, join=True)
    two = tmp_path / "two" / "toy" / "tiny-gpt2" / "seed0"
    assert json.loads((two / "run.json").read_text())["world_size"] == 2
    assert losses(two) == pytest.approx(losses(one), abs=1e-5)
    a, b = weights(one / "checkpoint-4"), weights(two / "checkpoint-4")
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-5, rtol=1e-4)


def test_cli_trains_and_reports_errors_in_one_line(data, tmp_path):
    from typer.testing import CliRunner

    from cli.main import app

    runner = CliRunner()
    args = ["train", "--data", str(data), "--out", str(tmp_path), "--steps", "2", "--no-progress",
            "--set", "checkpoint.every=1", *[a for t in TINY for a in ("--set", t)]]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    run = tmp_path / "toy" / "tiny-gpt2" / "seed0"
    assert sorted(find_checkpoints(run)) == [1, 2]
    again = runner.invoke(app, ["train", "--resume", str(run), "--no-progress"])
    assert again.exit_code == 0, again.output
    bad = runner.invoke(app, ["train", "--data", str(tmp_path / "nothing"), "--model", "tiny-gpt2"])
    assert bad.exit_code == 1
    assert "dataset folder not found" in bad.output and "Traceback" not in bad.output
    odd = runner.invoke(app, [*args, "--set", "batch.micro=3", "--out", str(tmp_path / "x")])
    assert odd.exit_code == 1 and "micro-batch 3 does not divide" in odd.output


def test_out_of_memory_on_the_first_step_suggests_a_smaller_micro_batch(data, tmp_path, monkeypatch):
    import impossible_lms.training.loop as loop

    def oom(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(loop.TrainStep, "__call__", oom)
    with pytest.raises(ILMError, match=r"out of GPU memory at the first step with micro-batch 2; .*batch.micro=1"):
        train(config(data, tmp_path, "schedule.steps=2"), progress=False)


def test_vocabulary_override_that_disagrees_with_the_data_is_refused(data, tmp_path):
    cfg = config(data, tmp_path, "schedule.steps=2", "model_overrides={n_positions: 32, vocab_size: 100}")
    with pytest.raises(ILMError, match="vocabulary mismatch"):
        train(cfg, progress=False)
