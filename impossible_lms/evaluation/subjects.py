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
_REFERENCE_RUN = re.compile(r"_seed(\d+)$")  # e.g. babylm_shuffle_control_10M_randinit_seed14
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
    # The results key. A run (or one of its checkpoints) is keyed by what it is, not where it lies:
    # "language/model/seed<N>/<recipe>" (recipe: a fingerprint of the result-defining training
    # config and the data), so a study copied to another disk finds its own results. A folder
    # without run.json is keyed by its absolute path; a hub model by its id.
    name: str
    kind: str  # "run" | "checkpoint" | "model" | "hub"
    targets: list[Target]
    language: str | None = None  # the training language when known (run.json)
    model: str | None = None
    seed: int | None = None
    train_data: Path | None = None  # the run's training data folder (for tokenizer checks)
    info: dict = field(default_factory=dict)
    path: str | None = None  # where a local subject lies: information only, never a key


# run.json fields that say where or how a run was computed, not what: left out of its identity
_RUN_JSON_PLACE = ("data", "finished", "checkpoints", "world_size", "format")


def run_identity(run: Path, info: dict) -> str | None:
    """``language/model/seed<N>/<recipe>`` of a run folder with a run.json; None without one.

    The recipe fingerprint covers run.json's fields (data fingerprint, tokenizer, vocabulary,
    steps, context, batch, precision, objective) and, where the run saved it, config.yaml's
    result-defining fields: neither holds a path, so the identity survives a move."""
    from impossible_lms.io import fingerprint

    if not info or not info.get("language") or not info.get("model") or info.get("seed") is None:
        return None
    recipe = {k: v for k, v in info.items() if k not in _RUN_JSON_PLACE}
    config = _read_config_yaml(run)
    if config:
        from impossible_lms.training.config import OPERATIONAL_FIELDS, drop_fields

        recipe["config"] = drop_fields(config, (*OPERATIONAL_FIELDS, "data"))  # the data's path: not what it is
    return f"{info['language']}/{info['model']}/seed{info['seed']}/{fingerprint(recipe)[:8]}"


def _read_config_yaml(run: Path) -> dict | None:
    """The run's saved TrainConfig (safe YAML), or None when absent or unreadable."""
    import yaml

    try:
        data = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError):
        return None
    return data if isinstance(data, dict) else None


MAX_CHECKPOINTS = 100_000  # a range that names more is a typo, not a sweep (and would take minutes to list)


def parse_checkpoints(spec: str | int | list | tuple | None) -> list[int] | None:
    """``"100-3000:100"`` → [100, 200, ..., 3000]; ``"500,1000"``; ``"all"``/None → None (every one).

    Parts are comma-separated; each is a step or ``start-stop[:every]`` (inclusive). An empty
    spec or part is an error (not "all"), and so is a range of more than MAX_CHECKPOINTS steps.
    """
    if spec is None or (isinstance(spec, str) and spec.strip().lower() == "all"):
        return None
    if isinstance(spec, bool):
        raise ILMError(f"bad checkpoint spec {spec!r}; use a step (3000), a range (100-3000:100), a list or 'all'")
    if isinstance(spec, int):
        return [spec]
    if isinstance(spec, (list, tuple)):
        return sorted({s for part in spec for s in (parse_checkpoints(part) or [])})
    if not str(spec).strip():
        raise ILMError("empty checkpoint spec; use a step (3000), a range (100-3000:100), a list or 'all'")
    steps: set[int] = set()
    for part in str(spec).split(","):
        part = part.strip()
        if not part:
            raise ILMError(f"bad checkpoint spec {spec!r}: an empty part between commas")
        m = re.fullmatch(r"(\d+)(?:-(\d+)(?::(\d+))?)?", part)
        if not m:
            raise ILMError(f"bad checkpoint spec {part!r}; use a step (3000), a range (100-3000:100), a list or 'all'")
        start = int(m.group(1))
        stop = int(m.group(2)) if m.group(2) else start
        every = int(m.group(3)) if m.group(3) else 1
        if stop < start or every <= 0:
            raise ILMError(f"bad checkpoint range {part!r}: need start <= stop and a positive step")
        count = (stop - start) // every + 1
        if count > MAX_CHECKPOINTS:
            raise ILMError(f"checkpoint range {part!r} names {count:,} checkpoints (at most {MAX_CHECKPOINTS:,}); "
                           "give the step, e.g. 100-3000:100")
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
    if str(subject).startswith(HUB_PREFIX):
        repo = str(subject)[len(HUB_PREFIX):]
        if not _looks_like_hub_id(repo):
            raise ILMError(f"{subject}: not a Hugging Face model id (hf:org/name)")
        return _hub_subject(repo, wanted, revisions)
    if _looks_like_hub_id(str(subject)):
        return _hub_subject(str(subject), wanted, revisions)
    raise ILMError(f"{subject}: no such folder (and not a Hugging Face model id)")


def _run_subject(run: Path, wanted: list[int] | None) -> Subject:
    found = _find_checkpoints(run)
    info = read_run_json(run)
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
    named = _REFERENCE_RUN.search(parts[-1]) if parts and seed is None else None
    if named:  # the reference trainer's folders: babylm_<language>_<train set>_randinit_seed<N>
        import warnings

        seed = int(named.group(1))
        warnings.warn(f"{run.name}: seed {seed} taken from the folder's name (the reference samples with the "
                      f"run's seed; --seed overrides)", stacklevel=2)
    data = info.get("data")
    return Subject(
        name=run_identity(run, info) or str(run.resolve()), kind="run", targets=[Target(s, str(found[s])) for s in steps],
        language=info.get("language") or (parts[-3] if len(parts) >= 3 else None),
        model=info.get("model") or (parts[-2] if len(parts) >= 2 else None),
        seed=seed, train_data=Path(data) if data else None, info=info, path=str(run.resolve()),
    )


def _folder_subject(path: Path) -> Subject:
    m = _CHECKPOINT.match(path.name)
    step = None
    if m:
        from impossible_lms.training.checkpoint import check_step

        step = check_step(int(m.group(1)), path)
    info = read_run_json(path.parent) if m else {}
    data = info.get("data")
    identity = run_identity(path.parent, info) if m else None
    return Subject(
        name=identity or str(path.resolve()), kind="checkpoint" if m else "model", targets=[Target(step, str(path))],
        language=info.get("language"), model=info.get("model") or (None if m else path.name),
        seed=info.get("seed"), train_data=Path(data) if data else None, info=info,
        path=str((path.parent if identity else path).resolve()),
    )


def _hub_subject(repo: str, wanted: list[int] | None, revisions: list[str] | None) -> Subject:
    """Published checkpoints are revisions ``checkpoint-<step>`` of one hub repository, read from the
    local Hugging Face cache only (ilm never downloads); every revision is checked before any work."""
    targets = [Target(s, repo, f"checkpoint-{s}") for s in wanted or []]
    targets += [Target(_revision_step(r, strict=False), repo, r) for r in revisions or []]
    if not targets:
        targets = [Target(None, repo, None)]
    unique = list({(t.location, t.revision): t for t in targets}.values())
    cache = hub_cache_dir()
    found = {t: cached_snapshot(repo, t.revision, cache) for t in unique}
    missing = [t.revision or "main" for t, snap in found.items() if snap is None]
    if missing:
        shown = ", ".join(missing[:4]) + (f" ... ({len(missing)} in all)" if len(missing) > 4 else "")
        raise ILMError(
            f"{repo}: {shown} not in the local Hugging Face cache ({cache}); ilm does not download. Where there is "
            f"network: `hf download {repo} --revision {missing[0]}` for each (`huggingface-cli download` before "
            f"huggingface_hub 1.0), then set HF_HUB_CACHE to that cache")
    # the snapshot folder is what gets loaded (offline, through the strict loaders); the revision labels it
    resolved = [Target(t.step, str(found[t]), t.revision) for t in unique]
    language, preset = published_names(repo)
    org = repo.split("/")[0] if "/" in repo else ""
    return Subject(name=repo, kind="hub", targets=resolved, language=language,
                   model=f"{org}/{preset}" if preset and org else repo.split("/")[-1], info={"repo": repo})


HUB_PREFIX = "hf:"


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment now (HF_HUB_CACHE, else HF_HOME/hub)."""
    import os

    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def cached_snapshot(repo: str, revision: str | None, cache: Path) -> Path | None:
    """``models--org--name/snapshots/<commit>/`` for a revision (a ref such as ``checkpoint-100``
    resolved through ``refs/<revision>``, or a commit hash), when it holds a model; else None."""
    folder = cache / f"models--{repo.replace('/', '--')}"
    rev = revision or "main"
    if re.fullmatch(r"[0-9a-f]{40}", rev):
        commit = rev
    else:
        ref = folder / "refs" / rev
        if not ref.is_file():
            return None
        commit = ref.read_text(encoding="utf-8").strip()
    snap = folder / "snapshots" / commit
    return snap if (snap / "config.json").is_file() and any((snap / w).exists() for w in _WEIGHTS) else None


# mission-impossible-lms/<language>-gpt2[-no-pos]: "local-shuffle-w3" → local_shuffle:w=3, ...
_PUBLISHED = re.compile(r"^(?P<language>.+?)-gpt2(?P<nopos>-no-pos)?$")
_PARAMS = ((re.compile(r"^(local_shuffle)_w(\d+)$"), r"\1:w=\2"),
           (re.compile(r"^(deterministic_shuffle)_s(?:eed)?(\d+)$"), r"\1:seed=\2"))


def published_names(repo: str) -> tuple[str | None, str | None]:
    """(ilm language, ilm model preset) of a published checkpoint's repository name, None where unknown."""
    m = _PUBLISHED.match(repo.split("/")[-1])
    if not m:
        return None, None
    name = m.group("language").replace("-", "_")
    for pattern, repl in _PARAMS:
        name = pattern.sub(repl, name)
    from perturbations import get_language

    try:
        language = get_language(name).name
    except Exception:  # not one of ours: rows take the data's language
        language = None
    return language, "gpt2-nopos" if m.group("nopos") else "gpt2"


def _find_checkpoints(run: Path) -> dict[int, Path]:
    """Complete checkpoints by step: training's rule for our runs (weights + trainer state),
    HF folders with weights for other folders of ``checkpoint-<step>/`` (e.g. downloaded ones)."""
    if (run / "run.json").is_file():
        from impossible_lms.training.checkpoint import find_checkpoints

        return dict(find_checkpoints(run))
    from impossible_lms.training.checkpoint import check_step

    found = {check_step(int(_CHECKPOINT.match(p.name).group(1)), p): p for p in _checkpoint_dirs(run)
             if (p / "config.json").is_file() and any((p / w).is_file() for w in _WEIGHTS)}
    return dict(sorted(found.items()))


def _checkpoint_dirs(path: Path) -> list[Path]:
    return [p for p in path.iterdir() if p.is_dir() and _CHECKPOINT.match(p.name)]


def read_run_json(run: Path) -> dict:
    """A run folder's run.json ({} without one); ILMError naming it when it is not JSON."""
    path = Path(run) / "run.json"
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
