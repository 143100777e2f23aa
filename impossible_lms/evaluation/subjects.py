"""What is evaluated: a run folder, one checkpoint folder, or a Hugging Face model (id or folder).

Each subject resolves to a list of :class:`Target` (one per checkpoint) plus the
labels that go into result rows (language, model, seed).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from impossible_lms.errors import ILMError

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
_WEIGHTS = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")


@dataclass(frozen=True)
class Target:
    step: int | None  # the training step (None: a model without steps)
    location: str  # a folder or a hub id
    revision: str | None = None

    def __str__(self) -> str:
        return f"{self.location}@{self.revision}" if self.revision else self.location


@dataclass
class Subject:
    name: str  # the results key: a local folder's absolute path (so ./runs/x and /abs/runs/x match), or the hub id
    kind: str  # "run" | "checkpoint" | "model" | "hub"
    targets: list[Target]
    language: str | None = None  # the training language when known (run.json)
    model: str | None = None
    seed: int | None = None
    train_data: Path | None = None  # the run's training data folder (for tokenizer checks)
    info: dict = field(default_factory=dict)


def parse_checkpoints(spec: str | int | list | tuple | None) -> list[int] | None:
    """``"100-3000:100"`` → [100, 200, ..., 3000]; ``"500,1000"``; ``"all"``/None → None (every one).

    Parts are comma-separated; each is a step or ``start-stop[:every]`` (inclusive).
    """
    if spec is None or (isinstance(spec, str) and spec.strip().lower() in ("", "all")):
        return None
    if isinstance(spec, int):
        return [spec]
    if isinstance(spec, (list, tuple)):
        return sorted({s for part in spec for s in (parse_checkpoints(part) or [])})
    steps: set[int] = set()
    for part in str(spec).split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:-(\d+)(?::(\d+))?)?", part)
        if not m:
            raise ILMError(f"bad checkpoint spec {part!r}; use a step (3000), a range (100-3000:100), a list or 'all'")
        start = int(m.group(1))
        stop = int(m.group(2)) if m.group(2) else start
        every = int(m.group(3)) if m.group(3) else 1
        if stop < start or every <= 0:
            raise ILMError(f"bad checkpoint range {part!r}: need start <= stop and a positive step")
        steps.update(range(start, stop + 1, every))
    return sorted(steps)


def resolve_subject(subject: str | Path, checkpoints=None, revisions: list[str] | None = None) -> Subject:
    path = Path(subject)
    wanted = parse_checkpoints(checkpoints)
    if path.is_dir():
        if (path / "run.json").is_file() or _checkpoint_dirs(path):
            if revisions:
                wanted = sorted(set(wanted or []) | {_revision_step(r) for r in revisions})
            return _run_subject(path, wanted)
        if (path / "config.json").is_file():
            if wanted or revisions:
                raise ILMError(f"{path} is a single model folder; --checkpoints/--revision need a run folder or a hub id")
            return _folder_subject(path)
        raise ILMError(f"{path} is not a run folder, checkpoint folder or model folder (no run.json, checkpoint-*/ or config.json)")
    if path.exists():
        raise ILMError(f"{path} is a file; give a run folder, a checkpoint folder or a model id")
    if _looks_like_hub_id(str(subject)):
        return _hub_subject(str(subject), wanted, revisions)
    raise ILMError(f"{subject}: no such folder (and not a Hugging Face model id)")


def _run_subject(run: Path, wanted: list[int] | None) -> Subject:
    found = _find_checkpoints(run)
    info = _read_run_json(run)
    if wanted is None:
        steps = list(found)
        if not steps:
            raise ILMError(f"{run} has no complete checkpoint yet")
    else:
        missing = [s for s in wanted if s not in found]
        if missing:
            shown = ", ".join(map(str, missing[:8])) + (" ..." if len(missing) > 8 else "")
            raise ILMError(f"{run}: checkpoint(s) {shown} missing or incomplete (have: {_ranges(list(found))})")
        steps = wanted
    parts = run.resolve().parts
    seed = info.get("seed")
    if seed is None and parts and parts[-1].startswith("seed") and parts[-1][4:].isdigit():
        seed = int(parts[-1][4:])
    data = info.get("data")
    return Subject(
        name=str(run.resolve()), kind="run", targets=[Target(s, str(found[s])) for s in steps],
        language=info.get("language") or (parts[-3] if len(parts) >= 3 else None),
        model=info.get("model") or (parts[-2] if len(parts) >= 2 else None),
        seed=seed, train_data=Path(data) if data else None, info=info,
    )


def _folder_subject(path: Path) -> Subject:
    m = _CHECKPOINT.match(path.name)
    step = int(m.group(1)) if m else None
    info = _read_run_json(path.parent) if m else {}
    data = info.get("data")
    return Subject(
        name=str(path.resolve()), kind="checkpoint" if m else "model", targets=[Target(step, str(path))],
        language=info.get("language"), model=info.get("model") or (None if m else path.name),
        seed=info.get("seed"), train_data=Path(data) if data else None, info=info,
    )


def _hub_subject(repo: str, wanted: list[int] | None, revisions: list[str] | None) -> Subject:
    """Published checkpoints are revisions ``checkpoint-<step>`` of one hub repository."""
    targets = [Target(s, repo, f"checkpoint-{s}") for s in wanted or []]
    targets += [Target(_revision_step(r, strict=False), repo, r) for r in revisions or []]
    if not targets:
        targets = [Target(None, repo, None)]
    unique = list({(t.location, t.revision): t for t in targets}.values())
    return Subject(name=repo, kind="hub", targets=unique, model=repo.split("/")[-1])


def _find_checkpoints(run: Path) -> dict[int, Path]:
    """Complete checkpoints by step: training's rule for our runs (weights + trainer state),
    HF folders with weights for other folders of ``checkpoint-<step>/`` (e.g. downloaded ones)."""
    if (run / "run.json").is_file():
        from impossible_lms.training.checkpoint import find_checkpoints

        return dict(find_checkpoints(run))
    found = {int(_CHECKPOINT.match(p.name).group(1)): p for p in _checkpoint_dirs(run)
             if (p / "config.json").is_file() and any((p / w).is_file() for w in _WEIGHTS)}
    return dict(sorted(found.items()))


def _checkpoint_dirs(path: Path) -> list[Path]:
    return [p for p in path.iterdir() if p.is_dir() and _CHECKPOINT.match(p.name)]


def _read_run_json(run: Path) -> dict:
    path = run / "run.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise ILMError(f"{path}: invalid JSON ({e})") from None
    return data if isinstance(data, dict) else {}


def _revision_step(revision: str, strict: bool = True) -> int | None:
    m = _CHECKPOINT.match(revision)
    if m:
        return int(m.group(1))
    if strict:
        raise ILMError(f"revision {revision!r} of a run folder must be checkpoint-<step>")
    return None


def _looks_like_hub_id(text: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", text)) or bool(re.fullmatch(r"[A-Za-z0-9][\w.-]*", text))


def _ranges(steps: list[int]) -> str:
    if not steps:
        return "none"
    if len(steps) > 2:
        gaps = {b - a for a, b in zip(steps, steps[1:])}
        if len(gaps) == 1:
            return f"{steps[0]}-{steps[-1]}:{gaps.pop()}"
    return ", ".join(map(str, steps))
