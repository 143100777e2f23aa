"""``train(cfg)``: data, model, optimiser and checkpoints wired in one place.

Exactness: the data order is a pure function of (seed, step) and every RNG is
saved in each checkpoint, so on CPU a run resumed from checkpoint N ends with
the same weights, bit for bit, as one that never stopped.

Speed: no host sync inside a step (the loss is accumulated on the device and
read only at log steps), fused AdamW and TF32 on CUDA, optional torch.compile,
checkpoints written from a CPU copy on a background thread.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from impossible_lms.errors import ILMError
from impossible_lms.io import atomic_write_json
from impossible_lms.locks import hold
from impossible_lms.progress import progress as make_progress
from impossible_lms.training import model as models
from impossible_lms.training.checkpoint import (
    CheckpointWriter,
    clean_partial,
    find_checkpoints,
    load_trainer_state,
    load_weights,
    rng_state,
    set_rng_state,
)
from impossible_lms.training.config import TrainConfig, check_train_config
from impossible_lms.training.data import PackedBlocks, packed_blocks, read_dataset_info
from impossible_lms.training.distributed import DistContext, setup
from impossible_lms.training.logging import MetricsLogger, peak_flops
from impossible_lms.training.run import (
    check_compatible,
    checkpoint_steps,
    run_dir_for,
    truncate_metrics,
    write_run_files,
    write_run_json,
)
from impossible_lms.training.schedule import lr_at


@dataclass(frozen=True)
class BatchPlan:
    context: int
    global_batch: int  # sequences per optimizer step, all ranks
    micro: int  # sequences per forward pass per rank
    accumulation: int

    @property
    def tokens_per_step(self) -> int:
        return self.global_batch * self.context


def plan_batch(cfg: TrainConfig, context: int, world: int, device: torch.device, model=None) -> BatchPlan:
    b = cfg.batch
    if b.sequences is not None:
        global_batch = b.sequences
    else:
        if b.tokens % context:
            raise ILMError(f"batch.tokens {b.tokens} is not a multiple of the context length {context}")
        global_batch = b.tokens // context
    if global_batch < 1:
        raise ILMError(f"the global batch must be at least one sequence, got {global_batch}")
    if global_batch % world:
        raise ILMError(f"global batch of {global_batch} sequences does not divide over {world} processes")
    per_rank = global_batch // world
    micro = b.micro if b.micro is not None else auto_micro(per_rank, context, device, model)
    if micro < 1 or per_rank % micro:
        raise ILMError(
            f"batch of {global_batch} sequences over {world} process(es) = {per_rank} each, "
            f"which micro-batch {micro} does not divide"
        )
    return BatchPlan(context=context, global_batch=global_batch, micro=micro, accumulation=per_rank // micro)


def auto_micro(per_rank: int, context: int, device: torch.device, model=None) -> int:
    """The largest divisor of ``per_rank`` that fits: a memory estimate on CUDA, 8 on CPU."""
    cap = 8
    if device.type == "cuda" and model is not None:
        cfg = model.config
        free, _ = torch.cuda.mem_get_info(device)
        n_params = sum(p.numel() for p in model.parameters())
        estimate = getattr(cfg, "activation_bytes_per_sequence", None)  # each config knows its own tensors
        if callable(estimate):
            per_seq = estimate(context)
        else:  # a foreign (Hugging Face) config: the GPT-2 trunk's estimate
            layers = getattr(cfg, "n_layer", None) or getattr(cfg, "num_hidden_layers", 12)
            d = getattr(cfg, "n_embd", None) or getattr(cfg, "hidden_size", 768)
            per_seq = 34 * context * d * layers + 12 * context * cfg.vocab_size
        budget = 0.7 * free - 16 * n_params  # weights, grads and AdamW moments in fp32
        cap = max(1, int(budget // per_seq))
    return max(m for m in range(1, min(cap, per_rank) + 1) if per_rank % m == 0)


def resolve_precision(cfg: TrainConfig, device: torch.device) -> str:
    if cfg.precision != "auto":
        if cfg.precision == "fp16" and device.type != "cuda":
            raise ILMError("precision fp16 needs a CUDA device; use bf16 or fp32 on CPU")
        return cfg.precision
    if device.type != "cuda":
        return "fp32"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def make_optimizer(cfg: TrainConfig, model, device: torch.device) -> torch.optim.Optimizer:
    # As Hugging Face's Trainer (the reference): no weight decay on biases and norms.
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    o = cfg.optim
    fused = o.fused if o.fused is not None else device.type == "cuda"
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": o.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=0.0,
        betas=tuple(o.betas),
        eps=o.eps,
        fused=fused,
    )


class Batches:
    """Which packed blocks each rank reads at each step: global sample numbers
    ``step·G + (k·world + rank)·micro + i`` for micro-step k, so any world size
    sees the same global batch."""

    def __init__(self, blocks: PackedBlocks, plan: BatchPlan, dctx: DistContext):
        self.blocks, self.plan, self.dctx = blocks, plan, dctx

    def micro(self, step: int, k: int) -> torch.Tensor:
        p = self.plan
        first = step * p.global_batch + (k * self.dctx.world + self.dctx.rank) * p.micro
        x = torch.from_numpy(self.blocks.blocks(np.arange(first, first + p.micro)))
        if self.dctx.device.type == "cuda":
            x = x.pin_memory().to(self.dctx.device, non_blocking=True)
        return x


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def train(cfg: TrainConfig, progress: bool = True) -> Path:
    """Train (or continue) the run for ``cfg``; returns the run folder."""
    check_train_config(cfg)
    info = read_dataset_info(cfg.data)
    dctx = setup(cfg.device)
    try:
        with hold(run_dir_for(cfg, info), "run folder", enabled=dctx.is_main):  # one writer per run folder
            return _train(cfg, info, dctx, progress)
    finally:
        dctx.close()


def _train(cfg: TrainConfig, info, dctx: DistContext, show_progress: bool) -> Path:
    run_dir = run_dir_for(cfg, info)
    check_compatible(cfg, run_dir, info)
    done = find_checkpoints(run_dir)
    start_ckpt = max(done) if done else None
    if start_ckpt is not None and start_ckpt >= cfg.schedule.steps:
        if dctx.is_main:
            mark_finished(run_dir)  # in case the last run stopped between its final checkpoint and this
        return run_dir  # finished: nothing to do

    seed_everything(cfg.seed)
    model = models.build(cfg.model, info.vocab_size, cfg.model_overrides, eos_id=info.eos_id)
    context = models.context_length(model)
    blocks = packed_blocks(info, cfg.seed, context, int(model.config.vocab_size))
    device = dctx.device
    if device.type == "cuda" and cfg.tf32:
        torch.set_float32_matmul_precision("high")  # TF32 for any fp32 matmul left outside autocast
        torch.backends.cudnn.allow_tf32 = True
    model.to(device)
    plan = plan_batch(cfg, context, dctx.world, device, model)
    precision = resolve_precision(cfg, device)
    optimizer = make_optimizer(cfg, model, device)
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None

    step = 0
    if start_ckpt is not None:
        step = _resume(done[start_ckpt], model, optimizer, scaler, dctx, cfg.checkpoint.trust_pickle)
    else:
        # Dropout draws differ per rank, as with independent GPUs.
        torch.manual_seed(cfg.seed + dctx.rank)
    run_extra = {"context": context, "global_batch": plan.global_batch, "tokens_per_step": plan.tokens_per_step,
                 "world_size": dctx.world, "precision": precision, "finished": False}
    if dctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_run_files(cfg, run_dir, info, run_extra)
        truncate_metrics(run_dir, step)
        clean_partial(run_dir)
    dctx.barrier()

    use_compile = cfg.compile if cfg.compile is not None else device.type == "cuda"
    # Compile first, then wrap (as nanoGPT): DDP buckets the compiled module's parameters.
    net = torch.compile(model) if use_compile else model
    if dctx.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)

    flops = models.flops_per_token(model, context)
    peak = peak_flops(cfg.peak_flops, device)  # per device; MFU counts every rank's tokens
    logger = MetricsLogger(run_dir, cfg.logging, enabled=dctx.is_main, peak=peak * dctx.world if peak else None)
    writer = CheckpointWriter(cfg.checkpoint.async_write)
    ckpt_at = set(checkpoint_steps(cfg))
    batches = Batches(blocks, plan, dctx)
    autocast = _autocast(precision, device)
    params = [p for p in model.parameters() if p.requires_grad]
    total = cfg.schedule.steps

    bar = make_progress(disable=not (show_progress and dctx.is_main))
    loss_sum = torch.zeros((), device=device)
    window_steps, window_start = 0, time.perf_counter()
    first_step = True
    try:
        with bar:
            task = bar.add_task(f"train {info.slug} {cfg.model} seed{cfg.seed}", total=total, completed=step)
            while step < total:
                lr = lr_at(step, cfg.optim.lr, cfg.schedule)
                for g in optimizer.param_groups:
                    g["lr"] = lr
                try:
                    step_loss, grad_norm = _step(net, optimizer, scaler, batches, step, plan, autocast, params, cfg, dctx)
                except torch.cuda.OutOfMemoryError:
                    if not first_step:
                        raise
                    raise ILMError(
                        f"out of GPU memory at the first step with micro-batch {plan.micro}; "
                        f"set a smaller one (--set batch.micro={max(1, plan.micro // 2)})"
                    ) from None
                step += 1
                first_step = False
                loss_sum += step_loss
                window_steps += 1
                if step % cfg.logging.every == 0 or step == total:
                    # The only host sync: read the accumulated loss and norm.
                    mean_loss = dctx.mean(loss_sum / window_steps).item()
                    elapsed = time.perf_counter() - window_start
                    tps = window_steps * plan.tokens_per_step / max(elapsed, 1e-9)
                    row = logger.log(step=step, loss=mean_loss, lr=lr, grad_norm=float(grad_norm),
                                     tokens_per_s=tps, flops_per_token=flops)
                    bar.update(task, completed=step, info=logger.describe(row))
                    loss_sum.zero_()
                    window_steps, window_start = 0, time.perf_counter()
                else:
                    bar.update(task, completed=step)
                if step in ckpt_at:
                    _checkpoint(run_dir, step, model, optimizer, scaler, plan, blocks, cfg, dctx, writer)
            writer.wait()
    finally:
        # A checkpoint already started is finished (it is atomic either way).
        with contextlib.suppress(Exception):
            writer.wait()
        logger.close()
    if dctx.is_main:
        write_run_json(cfg, run_dir, info, {**run_extra, "finished": True})
    dctx.barrier()
    return run_dir


def mark_finished(run_dir: Path) -> None:
    path = run_dir / "run.json"
    if path.is_file():
        data = json.loads(path.read_text(encoding="utf-8"))
        if not data.get("finished"):
            atomic_write_json(path, {**data, "finished": True})


def _autocast(precision: str, device: torch.device):
    if precision == "fp32":
        return contextlib.nullcontext
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return lambda: torch.autocast(device_type=device.type, dtype=dtype)


def _step(net, optimizer, scaler, batches: Batches, step: int, plan: BatchPlan, autocast, params, cfg, dctx):
    loss_total = None
    for k in range(plan.accumulation):
        x = batches.micro(step, k)
        last = k == plan.accumulation - 1
        sync = contextlib.nullcontext() if (last or dctx.world == 1) else net.no_sync()
        with sync:
            with autocast():
                loss = net(input_ids=x, labels=x).loss / plan.accumulation
            (scaler.scale(loss) if scaler else loss).backward()
        loss_total = loss.detach() if loss_total is None else loss_total + loss.detach()
    if scaler:
        scaler.unscale_(optimizer)
    clip = cfg.optim.grad_clip if cfg.optim.grad_clip > 0 else math.inf
    grad_norm = torch.nn.utils.clip_grad_norm_(params, clip)
    if scaler:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss_total.float(), grad_norm


def _checkpoint(run_dir: Path, step: int, model, optimizer, scaler, plan, blocks, cfg, dctx, writer) -> None:
    rngs = dctx.all_gather_object(rng_state())  # every rank's dropout stream
    if not dctx.is_main:
        return
    state = {
        "step": step,
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict() if scaler else None,
        "schedule": {"step": step, "lr": cfg.optim.lr},
        "rng": rngs,
        "data": {"seed": cfg.seed, "samples_consumed": step * plan.global_batch,
                 "global_batch": plan.global_batch, "context": plan.context, "blocks": blocks.n_blocks},
        "world_size": dctx.world,
    }
    writer.submit(run_dir / f"checkpoint-{step}", model, state, keep=cfg.checkpoint.keep)


def _resume(checkpoint: Path, model, optimizer, scaler, dctx: DistContext, trust_pickle: bool = False) -> int:
    state = load_trainer_state(checkpoint, trust_pickle)
    load_weights(model, checkpoint)
    optimizer.load_state_dict(state["optimizer"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    rngs = state["rng"]
    if dctx.rank < len(rngs):
        set_rng_state(rngs[dctx.rank])
    else:  # more processes than the run had: fresh dropout streams for the new ranks
        torch.manual_seed(int(state["data"]["seed"]) + dctx.rank)
    return int(state["step"])

