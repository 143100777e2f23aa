"""Checkpoints: ``checkpoint-<step>/`` = a Hugging Face model folder + the trainer state.

The trainer state (optimizer moments, scaler, RNG states, data position) is
stored without pickle, because a run folder may come from someone else and
unpickling runs whatever code it names: its tensors go to
``trainer_state.safetensors`` and everything else to ``trainer_state.json``,
where each tensor is a ``{"__tensor__": name}`` reference and tuples, numpy
arrays and dicts with non-string keys are tagged so they load back exactly
(``random.setstate`` needs tuples; the optimizer's state is keyed by int).
A legacy ``trainer_state.pt`` (a pickle) is refused unless the caller trusts it.

A checkpoint is written into a temporary sibling folder and renamed into place
(``impossible_lms.io.atomic_dir``), so a ``checkpoint-<step>`` folder exists only
when complete. Writes can run on a background thread from a CPU copy of the
state taken at the step, so training does not wait for the disk.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch

from impossible_lms.errors import ILMError
from impossible_lms.io import atomic_dir

STATE_JSON = "trainer_state.json"
STATE_TENSORS = "trainer_state.safetensors"
LEGACY_STATE = "trainer_state.pt"  # a pickle: loaded only when trusted
STATE_FORMAT = "ilm-trainer-state/1"
_NAME = re.compile(r"^checkpoint-(\d+)$")
_COMPLETE = ("config.json", "model.safetensors")


def find_checkpoints(run_dir: str | Path) -> dict[int, Path]:
    """Complete checkpoints of a run, by step (ascending)."""
    run_dir = Path(run_dir)
    found: dict[int, Path] = {}
    if not run_dir.is_dir():
        return found
    for p in run_dir.iterdir():
        m = _NAME.match(p.name)
        if m and p.is_dir() and all((p / f).is_file() for f in _COMPLETE) and _has_state(p):
            found[check_step(int(m.group(1)), p)] = p
    return dict(sorted(found.items()))


MAX_STEP = 2**62  # steps are int64 everywhere downstream (Arrow, numpy, torch)


def check_step(step: int, where: Path) -> int:
    """``step`` unless it is larger than any int64 column can hold: then one line naming the folder."""
    if step > MAX_STEP:
        raise ILMError(f"{where}: step {step} is too large to be a training step; rename or remove that folder")
    return step


def _has_state(checkpoint: Path) -> bool:
    # A legacy checkpoint counts as complete, so that resuming from it is refused
    # with a message rather than silently restarting from an older one.
    new = all((checkpoint / f).is_file() for f in (STATE_JSON, STATE_TENSORS))
    return new or (checkpoint / LEGACY_STATE).is_file()


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
        write_trainer_state(tmp, trainer_state)


def write_trainer_state(folder: Path, state: dict) -> None:
    """``state`` as ``trainer_state.safetensors`` (its tensors) + ``trainer_state.json`` (the rest)."""
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    doc = {"format": STATE_FORMAT, "state": _encode(state, tensors)}
    folder = Path(folder)
    save_file(tensors, str(folder / STATE_TENSORS))
    with open(folder / STATE_JSON, "w", encoding="utf-8") as f:
        json.dump(doc, f)
        f.flush()
        os.fsync(f.fileno())


def _encode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, torch.Tensor):
        name = f"t{len(tensors)}"
        tensors[name] = obj.detach().to("cpu").contiguous()
        return {"__tensor__": name}
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": obj.tolist(), "dtype": obj.dtype.str}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, tensors) for v in obj]}
    if isinstance(obj, list):
        return [_encode(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: _encode(v, tensors) for k, v in obj.items()}
        return {"__items__": [[_encode(k, tensors), _encode(v, tensors)] for k, v in obj.items()]}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"trainer state holds a {type(obj).__name__}, which the checkpoint format does not store")


def _decode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__tensor__" in obj:
        return tensors[obj["__tensor__"]]  # KeyError: reported as a damaged checkpoint
    if "__ndarray__" in obj:
        return np.asarray(obj["__ndarray__"], dtype=np.dtype(obj["dtype"]))
    if "__tuple__" in obj:
        return tuple(_decode(v, tensors) for v in obj["__tuple__"])
    if "__items__" in obj:
        return {_decode(k, tensors): _decode(v, tensors) for k, v in obj["__items__"]}
    return {k: _decode(v, tensors) for k, v in obj.items()}


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


def load_trainer_state(path: Path, trust_pickle: bool = False) -> dict:
    """The trainer state of checkpoint folder ``path``; never unpickles unless ``trust_pickle``.

    A damaged state is an ILMError that names the checkpoint and how to go on.
    """
    path = Path(path)
    if not (path / STATE_JSON).is_file() and (path / LEGACY_STATE).is_file():
        if not trust_pickle:
            raise ILMError(
                f"{path} holds its trainer state as a pickle ({LEGACY_STATE}), which can run any code when loaded; "
                "resume it only if you made it yourself, with --trust-pickle (or checkpoint.trust_pickle=true)"
            )
        return torch.load(path / LEGACY_STATE, map_location="cpu", weights_only=False)
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        doc = json.loads((path / STATE_JSON).read_text(encoding="utf-8"))
        if not isinstance(doc, dict) or doc.get("format") != STATE_FORMAT:
            raise ValueError(f"not {STATE_FORMAT}")
        state = _decode(doc["state"], load_file(str(path / STATE_TENSORS)))
        if not isinstance(state, dict) or "step" not in state:
            raise ValueError("no step")
        return state
    except (OSError, ValueError, KeyError, TypeError, SafetensorError) as e:
        raise damaged(path, f"unreadable trainer state ({_why(e)})") from None


def damaged(checkpoint: Path, why: str) -> ILMError:
    """The one-line error for a checkpoint that cannot be read back."""
    return ILMError(
        f"{checkpoint}: {why}; delete that folder to resume from the previous checkpoint "
        f"(or from the start when it is the only one)"
    )


def _why(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:120]}" if text else type(e).__name__


def load_weights(model, checkpoint: Path) -> None:
    """Load ``model.safetensors`` into ``model`` in place (tied weights stay tied)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(Path(checkpoint) / "model.safetensors"))
    except (OSError, SafetensorError) as e:
        raise damaged(Path(checkpoint), f"unreadable model.safetensors ({_why(e)})") from None
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
