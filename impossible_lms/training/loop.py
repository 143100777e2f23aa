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
from impossible_lms.training.config import TrainConfig
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
from impossible_lms.training.objectives import Losses, Objective, get_objective
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
    cfg.validate()  # again: fields may have been assigned since the config was built
    info = read_dataset_info(cfg.data)
    # The model's config and its fit with the objective are checked before any process group or weights.
    models.model_config(cfg.model, info.vocab_size, cfg.model_overrides, info.eos_id, cfg.objective)
    dctx = setup(cfg.device)
    try:
        run_dir = run_dir_for(cfg, info)
        with hold(run_dir, "run folder", enabled=dctx.is_main):  # one writer per run folder
            check_compatible(cfg, run_dir, info)
            done = find_checkpoints(run_dir)
            if done and max(done) >= cfg.schedule.steps:
                if dctx.is_main:
                    mark_finished(run_dir)  # in case the last run stopped between its final checkpoint and this
                return run_dir  # finished: nothing to do
            Trainer(cfg, info, dctx, run_dir, resume_from=done[max(done)] if done else None).fit(progress)
            return run_dir
    finally:
        dctx.close()


class TrainStep:
    """One optimiser step: the objective's loss over the accumulation's micro-batches,
    backward (DDP syncs gradients on the last one only), clipping, AdamW.

    Public so benchmarks time exactly the trainer's step: ``TrainStep(net, optimizer,
    plan, objective, precision, device)`` and ``step(batches, n)``, where
    ``batches.micro(n, k)`` gives micro-batch ``k`` of step ``n``."""

    def __init__(self, net, optimizer: torch.optim.Optimizer, plan: BatchPlan, objective: Objective,
                 precision: str, device: torch.device, grad_clip: float = 1.0, world: int = 1):
        self.net, self.optimizer, self.plan, self.objective = net, optimizer, plan, objective
        self.autocast = _autocast(precision, device)
        self.scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
        self.clip = grad_clip if grad_clip > 0 else math.inf
        self.world = world
        self.params = [p for g in optimizer.param_groups for p in g["params"]]

    def __call__(self, batches, step: int) -> tuple[Losses, torch.Tensor]:
        """Summed-over-micro-batches losses (device tensors, no host sync) and the pre-clip gradient norm."""
        plan, total = self.plan, None
        for k in range(plan.accumulation):
            x = batches.micro(step, k)
            last = k == plan.accumulation - 1
            sync = contextlib.nullcontext() if (last or self.world == 1) else self.net.no_sync()
            with sync:
                with self.autocast():
                    losses = self.objective.losses(self.net, x)
                loss = losses.total / plan.accumulation
                (self.scaler.scale(loss) if self.scaler else loss).backward()
            part = Losses(loss.detach(), losses.lm / plan.accumulation,
                          None if losses.exits is None else losses.exits / plan.accumulation)
            total = part if total is None else _add(total, part)
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.clip)
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return total, grad_norm


def _add(a: Losses, b: Losses) -> Losses:
    return Losses(a.total + b.total, a.lm + b.lm, None if a.exits is None else a.exits + b.exits)


class Trainer:
    """One process's run: data, model, objective, optimiser and checkpoints wired in one place.

    The order of construction is part of exactness: the RNG is seeded, the model
    initialised, then (when resuming) every RNG restored from the checkpoint."""

    def __init__(self, cfg: TrainConfig, info, dctx: DistContext, run_dir: Path, resume_from: Path | None = None):
        self.cfg, self.info, self.dctx, self.run_dir = cfg, info, dctx, run_dir
        self.objective = get_objective(cfg.objective)
        seed_everything(cfg.seed)
        # Frozen parameters are frozen here, so neither the optimiser nor DDP meets one without a gradient.
        self.model = model = models.model_for_training(cfg, info.vocab_size, info.eos_id, fresh=resume_from is None)
        self.context = models.context_length(model)
        self.blocks = packed_blocks(info, cfg.seed, self.context, int(model.config.vocab_size))
        device = dctx.device
        if device.type == "cuda" and cfg.tf32:
            torch.set_float32_matmul_precision("high")  # TF32 for any fp32 matmul left outside autocast
            torch.backends.cudnn.allow_tf32 = True
        model.to(device)
        self.plan = plan_batch(cfg, self.context, dctx.world, device, model)
        self.precision = resolve_precision(cfg, device)
        optimizer = make_optimizer(cfg, model, device)
        net = self._wrap(model)
        self.step_fn = TrainStep(net, optimizer, self.plan, self.objective, self.precision, device,
                                 cfg.optim.grad_clip, dctx.world)
        self.step = 0
        if resume_from is not None:
            self.step = self.resume(resume_from)
        else:
            torch.manual_seed(cfg.seed + dctx.rank)  # dropout draws differ per rank, as with independent GPUs
        self.batches = Batches(self.blocks, self.plan, dctx)
        self.writer = CheckpointWriter(cfg.checkpoint.async_write)

    def _wrap(self, model):
        cfg, device = self.cfg, self.dctx.device
        use_compile = cfg.compile if cfg.compile is not None else device.type == "cuda"
        # Compile first, then wrap (as nanoGPT): DDP buckets the compiled module's parameters.
        net = torch.compile(model) if use_compile else model
        if self.dctx.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            net = DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
        return net

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        return self.step_fn.optimizer

    @property
    def run_extra(self) -> dict:
        return {"context": self.context, "global_batch": self.plan.global_batch,
                "tokens_per_step": self.plan.tokens_per_step, "world_size": self.dctx.world,
                "precision": self.precision, "objective": self.cfg.objective}

    def resume(self, checkpoint: Path) -> int:
        """Weights, optimiser, loss scaler and this rank's RNGs from ``checkpoint``; returns its step."""
        state = load_trainer_state(checkpoint, self.cfg.checkpoint.trust_pickle)
        load_weights(self.model, checkpoint)
        self.optimizer.load_state_dict(state["optimizer"])
        if self.step_fn.scaler is not None and state.get("scaler"):
            self.step_fn.scaler.load_state_dict(state["scaler"])
        rngs = state["rng"]
        if self.dctx.rank < len(rngs):
            set_rng_state(rngs[self.dctx.rank])
        else:  # more processes than the run had: fresh dropout streams for the new ranks
            torch.manual_seed(int(state["data"]["seed"]) + self.dctx.rank)
        return int(state["step"])

    def save(self, step: int) -> None:
        """Checkpoint ``step`` (every rank takes part: the RNGs are gathered; rank 0 writes)."""
        rngs = self.dctx.all_gather_object(rng_state())  # every rank's dropout stream
        if not self.dctx.is_main:
            return
        cfg, plan, scaler = self.cfg, self.plan, self.step_fn.scaler
        state = {
            "step": step,
            "optimizer": self.optimizer.state_dict(),
            "scaler": scaler.state_dict() if scaler else None,
            "schedule": {"step": step, "lr": cfg.optim.lr},
            "rng": rngs,
            "data": {"seed": cfg.seed, "samples_consumed": step * plan.global_batch,
                     "global_batch": plan.global_batch, "context": plan.context, "blocks": self.blocks.n_blocks},
            "world_size": self.dctx.world,
        }
        self.writer.submit(self.run_dir / f"checkpoint-{step}", self.model, state, keep=cfg.checkpoint.keep)

    def fit(self, show_progress: bool = True) -> None:
        """Steps from the current one to ``schedule.steps``; logs, checkpoints, then marks the run finished."""
        cfg, dctx, info, run_dir = self.cfg, self.dctx, self.info, self.run_dir
        if dctx.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            write_run_files(cfg, run_dir, info, {**self.run_extra, "finished": False})
            truncate_metrics(run_dir, self.step)
            clean_partial(run_dir)
        dctx.barrier()
        peak = peak_flops(cfg.peak_flops, dctx.device)  # per device; MFU counts every rank's tokens
        logger = MetricsLogger(run_dir, cfg.logging, enabled=dctx.is_main, peak=peak * dctx.world if peak else None)
        window = _Window(self, models.flops_per_token(self.model, self.context), logger)
        ckpt_at = set(checkpoint_steps(cfg))
        total = cfg.schedule.steps
        bar = make_progress(disable=not (show_progress and dctx.is_main))
        first = self.step
        try:
            with bar:
                task = bar.add_task(f"train {info.slug} {cfg.model} seed{cfg.seed}", total=total, completed=self.step)
                while self.step < total:
                    lr = lr_at(self.step, cfg.optim.lr, cfg.schedule)
                    for g in self.optimizer.param_groups:
                        g["lr"] = lr
                    losses, grad_norm = self._first_step_guard(self.step, first)
                    self.step += 1
                    window.add(losses)
                    if self.step % cfg.logging.every == 0 or self.step == total:
                        row = window.log(self.step, lr, grad_norm)
                        bar.update(task, completed=self.step, info=logger.describe(row))
                    else:
                        bar.update(task, completed=self.step)
                    if self.step in ckpt_at:
                        self.save(self.step)
                self.writer.wait()
        finally:
            # A checkpoint already started is finished (it is atomic either way).
            with contextlib.suppress(Exception):
                self.writer.wait()
            logger.close()
        if dctx.is_main:
            write_run_json(cfg, run_dir, info, {**self.run_extra, "finished": True})
        dctx.barrier()

    def _first_step_guard(self, step: int, first: int):
        try:
            return self.step_fn(self.batches, step)
        except torch.cuda.OutOfMemoryError:
            if step != first:
                raise
            raise ILMError(
                f"out of GPU memory at the first step with micro-batch {self.plan.micro}; "
                f"set a smaller one (--set batch.micro={max(1, self.plan.micro // 2)})"
            ) from None


class _Window:
    """Losses summed on the device between log steps; read (the one host sync) at a log step."""

    def __init__(self, trainer: Trainer, flops: float, logger: MetricsLogger):
        self.trainer, self.flops, self.logger = trainer, flops, logger
        self.exit_layers = list(getattr(trainer.model.config, "exit_layers", None) or [])
        self._reset()

    def _reset(self) -> None:
        self.sum: Losses | None = None
        self.steps, self.start = 0, time.perf_counter()

    def add(self, losses: Losses) -> None:
        self.sum = losses if self.sum is None else _add(self.sum, losses)
        self.steps += 1

    def log(self, step: int, lr: float, grad_norm: torch.Tensor) -> dict:
        dctx, plan = self.trainer.dctx, self.trainer.plan
        mean = dctx.mean(self.sum.lm / self.steps).item()
        extra = {}
        if self.sum.exits is not None:
            per_exit = dctx.mean(self.sum.exits / self.steps).tolist()
            extra = {f"exit_loss_{layer}": v for layer, v in zip(self.exit_layers, per_exit)}
        tps = self.steps * plan.tokens_per_step / max(time.perf_counter() - self.start, 1e-9)
        row = self.logger.log(step=step, loss=mean, lr=lr, grad_norm=float(grad_norm), tokens_per_s=tps,
                              flops_per_token=self.flops, **extra)
        self._reset()
        return row


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
