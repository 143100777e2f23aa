"""Training: packed data, the reference recipe, exact resume, DDP, atomic checkpoints.

```python
from impossible_lms.training import TrainConfig, train, find_checkpoints, load_run_info
run_dir = train(TrainConfig(data=Path("data/no_shuffle"), model="tiny-gpt2", seed=0, out=Path("runs")))
```

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
