"""Checkpoints: ``checkpoint-<step>/`` = a Hugging Face model folder + ``trainer_state.pt``.

A checkpoint is written into a temporary sibling folder and renamed into place
(``impossible_lms.io.atomic_dir``), so a ``checkpoint-<step>`` folder exists only
when complete. Writes can run on a background thread from a CPU copy of the
state taken at the step, so training does not wait for the disk.
"""

from __future__ import annotations

import random
import re
import shutil
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch

from impossible_lms.io import atomic_dir

STATE_FILE = "trainer_state.pt"
_NAME = re.compile(r"^checkpoint-(\d+)$")
_COMPLETE = ("config.json", "model.safetensors", STATE_FILE)


def find_checkpoints(run_dir: str | Path) -> dict[int, Path]:
    """Complete checkpoints of a run, by step (ascending)."""
    run_dir = Path(run_dir)
    found: dict[int, Path] = {}
    if not run_dir.is_dir():
        return found
    for p in run_dir.iterdir():
        m = _NAME.match(p.name)
        if m and p.is_dir() and all((p / f).is_file() for f in _COMPLETE):
            found[int(m.group(1))] = p
    return dict(sorted(found.items()))


def clean_partial(run_dir: Path) -> None:
    """Remove temporary checkpoint folders a killed process left behind (never complete ones)."""
    for p in Path(run_dir).glob(".checkpoint-*.tmp"):
        shutil.rmtree(p, ignore_errors=True)


def rng_state() -> dict[str, Any]:
    """Every RNG that training draws from: python, numpy, torch CPU and each CUDA device."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def to_cpu(obj: Any) -> Any:
    """A detached CPU copy of nested tensors (so the live state can move on)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(v) for v in obj)
    return obj


def write_checkpoint(final: Path, model, model_state: dict, trainer_state: dict) -> None:
    """Write one checkpoint folder atomically from CPU copies."""
    # transformers draws a "Writing model shards" bar per save; ours already shows progress.
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    with atomic_dir(final) as tmp:
        model.save_pretrained(tmp, state_dict=model_state, safe_serialization=True)
        torch.save(trainer_state, tmp / STATE_FILE)


class CheckpointWriter:
    """Writes checkpoints in order, on one background thread (or inline when not async)."""

    def __init__(self, async_write: bool = True):
        self.async_write = async_write
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def submit(self, final: Path, model, trainer_state: dict, keep: int | None = None) -> None:
        self.wait()  # one write at a time, so checkpoints land in step order
        model_state = to_cpu(unwrap(model).state_dict())
        trainer_state = to_cpu(trainer_state)
        job = lambda: self._run(final, unwrap(model), model_state, trainer_state, keep)  # noqa: E731
        if self.async_write:
            self._thread = threading.Thread(target=job, name="ilm-checkpoint", daemon=False)
            self._thread.start()
        else:
            job()
            self._raise()

    def _run(self, final, model, model_state, trainer_state, keep) -> None:
        try:
            write_checkpoint(final, model, model_state, trainer_state)
            if keep:
                prune(final.parent, keep)
        except BaseException as e:  # re-raised on the training thread by wait()
            self._error = e

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._raise()

    def _raise(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise err


def prune(run_dir: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` complete checkpoints."""
    for step, path in list(find_checkpoints(run_dir).items())[:-keep]:
        shutil.rmtree(path, ignore_errors=True)


def unwrap(model):
    """The plain model under DDP / torch.compile wrappers."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


def load_trainer_state(path: Path) -> dict:
    return torch.load(Path(path) / STATE_FILE, map_location="cpu", weights_only=False)


def load_weights(model, checkpoint: Path) -> None:
    """Load ``model.safetensors`` into ``model`` in place (tied weights stay tied)."""
    from safetensors.torch import load_file

    state = load_file(str(Path(checkpoint) / "model.safetensors"))
    missing, unexpected = unwrap(model).load_state_dict(state, strict=False)
    tied = _tied_names(unwrap(model))
    missing = [k for k in missing if k not in tied]
    if missing or unexpected:
        raise RuntimeError(f"{checkpoint}: weights do not match the model (missing {missing[:3]}, unexpected {unexpected[:3]})")


def _tied_names(model) -> set[str]:
    seen: dict[int, str] = {}
    tied: set[str] = set()
    for name, p in model.named_parameters(remove_duplicate=False):
        if id(p) in seen:
            tied.add(name)
        else:
            seen[id(p)] = name
    return tied
