"""Per-run metrics: ``metrics.jsonl`` always; TensorBoard / W&B when asked for and installed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from impossible_lms.errors import ILMError
from impossible_lms.training.config import LoggingConfig

from impossible_lms.estimate import PEAK_FLOPS  # dense 16-bit peak per device (no sparsity), for MFU


def peak_flops(given: float | None, device: torch.device) -> float | None:
    if given:
        return given
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_FLOPS.items() if k in name), None)


class MetricsLogger:
    def __init__(self, run_dir: Path, cfg: LoggingConfig, enabled: bool, peak: float | None):
        self.path = Path(run_dir) / "metrics.jsonl"
        self.enabled, self.peak = enabled, peak
        self._tb = self._wandb = None
        if not enabled:
            return
        if cfg.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise ILMError("logging.tensorboard needs the tensorboard package (pip install tensorboard)") from None
            self._tb = SummaryWriter(str(Path(run_dir) / "tensorboard"))
        if cfg.wandb:
            try:
                import wandb
            except ImportError:
                raise ILMError("logging.wandb needs the wandb package (pip install wandb)") from None
            self._wandb = wandb.init(project=cfg.wandb_project, name=str(run_dir), dir=str(run_dir), resume="allow")

    def log(self, *, step: int, loss: float, lr: float, grad_norm: float, tokens_per_s: float,
            flops_per_token: float, **extra: float) -> dict[str, Any]:
        """One row; ``extra`` adds scalar columns (``exit_loss_<layer>`` for models with exit heads)."""
        mfu = tokens_per_s * flops_per_token / self.peak if self.peak else None
        row = {"step": step, "loss": loss, "lr": lr, "grad_norm": grad_norm,
               "tokens_per_s": tokens_per_s, "mfu": mfu, **extra}
        if self.enabled:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
            if self._tb is not None:
                for k, v in row.items():
                    if k != "step" and v is not None:
                        self._tb.add_scalar(f"train/{k}", v, step)
            if self._wandb is not None:
                self._wandb.log({k: v for k, v in row.items() if v is not None}, step=step)
        return row

    @staticmethod
    def describe(row: dict[str, Any]) -> str:
        text = f"loss {row['loss']:.3f} · lr {row['lr']:.2e} · {row['tokens_per_s'] / 1e3:,.1f}k tok/s"
        if row["mfu"] is not None:
            text += f" · MFU {100 * row['mfu']:.0f}%"
        return text

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()
