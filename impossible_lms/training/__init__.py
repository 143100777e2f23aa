"""Training: packed data, the reference recipe, exact resume, DDP, atomic checkpoints.

```python
from impossible_lms.training import TrainConfig, train, find_checkpoints, load_run_info
run_dir = train(TrainConfig(data=Path("data/no_shuffle"), model="tiny-gpt2", seed=0, out=Path("runs")))
find_checkpoints(run_dir)        # {100: Path(".../checkpoint-100"), ...} complete ones only
load_run_info(run_dir).finished  # run.json + config.yaml, typed
```

CLI: ``ilm train --data DIR --model PRESET --seed N [--steps S] [--out RUNS]
[--set optim.lr=3e-4 ...] [--config file.yaml] [--resume RUN_DIR]``; several
GPUs: ``torchrun --nproc_per_node 8 -m cli.main train ...`` (same flags; the
global batch is kept, the accumulation shrinks).

- Recipe (config.py): the reference's Mistral ``gpt2-small`` trainer + its
  ReadMe overrides: 3000 steps × 2^19 tokens, AdamW(0.9, 0.999, wd 0.1), lr 6e-4,
  linear warm-up over 300 steps from 0 then linear decay to 0, clip 1.0,
  checkpoints every 100 steps. ``warmup`` defaults to 10% of ``steps``.
- Run folder (run.py): ``OUT/<language>/<model>/seed<seed>/`` (``run_dir``
  overrides): run.json, config.yaml, metrics.jsonl, checkpoint-<step>/.
  Rerunning continues from the newest complete checkpoint; a finished run is a
  no-op; a different recipe in the same folder is an ILMError (logging, device,
  compile, micro-batch and checkpoint.keep may change between sessions).
- Data (data.py): the seed-shuffled, EOS-joined, block-packed train split,
  gathered from a flat memmap cached once per dataset in ``DIR/.cache/``.
- Exactness (loop.py): data order is a function of (seed, step) and every RNG
  is in the checkpoint, so a resumed CPU run equals an uninterrupted one bit
  for bit (tested, also for 2 gloo processes by hand).
- Speed: bf16 autocast (fp16 + GradScaler without bf16), fused AdamW, TF32,
  torch.compile on CUDA by default, no host sync inside a step (the loss is
  read only at log steps), checkpoints written from a CPU copy on a thread.
  Batches are gathered on the main thread while the GPU runs the previous
  step's queued kernels (no separate loader process).

Submodules are imported lazily so ``import impossible_lms.training`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TrainConfig": "config",
    "OptimConfig": "config",
    "ScheduleConfig": "config",
    "BatchConfig": "config",
    "CheckpointConfig": "config",
    "LoggingConfig": "config",
    "load_train_config": "config",
    "train": "loop",
    "plan_batch": "loop",
    "Trainer": "loop",
    "TrainStep": "loop",
    "BatchPlan": "loop",
    "make_optimizer": "loop",
    "resolve_precision": "loop",
    "OBJECTIVES": "objectives",
    "Objective": "objectives",
    "get_objective": "objectives",
    "model_for_training": "model",
    "resolve_device": "distributed",
    "peak_flops": "logging",
    "find_checkpoints": "checkpoint",
    "load_run_info": "run",
    "RunInfo": "run",
    "lr_at": "schedule",
    "packed_blocks": "data",
    "read_dataset_info": "data",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
