"""Learning-rate schedules: a registry of ``(step, cfg) -> multiplier of the peak lr``.

``step`` counts optimizer updates already done, as in Hugging Face's
``get_linear_schedule_with_warmup`` (which the reference's Mistral trainer used
with ``lr_scheduler_type: linear``): update 0 runs at lr 0, update ``warmup``
at the peak, and the multiplier reaches 0 at ``steps``.
"""

from __future__ import annotations

import math
from typing import Callable

from impossible_lms.training.config import ScheduleConfig


def _warmup(step: int, cfg: ScheduleConfig) -> float | None:
    if step < cfg.warmup_steps:
        return step / cfg.warmup_steps
    return None


def _progress(step: int, cfg: ScheduleConfig) -> float:
    return min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))


DECAYS: dict[str, Callable[[float], float]] = {
    "linear": lambda p: 1.0 - p,
    "cosine": lambda p: 0.5 * (1.0 + math.cos(math.pi * p)),
    "constant": lambda p: 1.0,
}


def lr_multiplier(step: int, cfg: ScheduleConfig) -> float:
    w = _warmup(step, cfg)
    if w is not None:
        return w
    return max(0.0, DECAYS[cfg.decay](_progress(step, cfg)))


def lr_at(step: int, peak: float, cfg: ScheduleConfig) -> float:
    return peak * lr_multiplier(step, cfg)
