"""`ilm doctor`: what this machine lacks for a run, and what to do about each gap.

    >>> checks = diagnose(corpus="data/babylm", experiment="experiments/kallini2024.yaml")
    >>> [c for c in checks if c.status == "fail"]

Everything is checked offline (caches and installed packages, never the hub).
A missing optional piece is a warning; it becomes fatal ("fail") when the given
experiment needs it (e.g. the GPT-2 tokenizer for ``tokenizer: gpt2``). The
machine is read through an :class:`Environment`, so tests can describe a fake one.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

from impossible_lms.errors import ILMError

Status = Literal["ok", "warn", "fail"]

BABYLM_GENRES = ("aochildes", "bnc_spoken", "cbt", "children_stories", "gutenberg", "open_subtitles",
                 "qed", "simple_wikipedia", "switchboard", "wikipedia")
NLTK_RESOURCES = {"punkt_tab": "tokenizers/punkt_tab", "averaged_perceptron_tagger_eng": "taggers/averaged_perceptron_tagger_eng"}
# Parameters per preset, for the disk estimate only (fp32 weights + two AdamW moments per checkpoint).
PRESET_PARAMS = {"gpt2": 124e6, "gpt2-nopos": 124e6, "gpt2-rotary": 124e6, "gpt2-alibi": 124e6,
                 "backpack-gpt2": 170e6}
TINY_PARAMS = 0.5e6  # 2 layers × d=64 plus a few-thousand-token fallback vocabulary
BYTES_PER_PARAM_PER_CHECKPOINT = 12


@dataclass
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""  # what to do, in words
    commands: tuple[str, ...] = ()  # the commands that do it, each whole (printed on its own line)


def _module_version(name: str) -> str | None:
    try:
        importlib.import_module(name)
    except Exception:  # a broken install (e.g. flash-attn built for another torch) is "missing" too
        return None
    try:
        return importlib.metadata.version(name.replace("_", "-"))
    except importlib.metadata.PackageNotFoundError:
        return getattr(sys.modules[name], "__version__", "installed")


def _cuda() -> tuple[bool, str]:
    import torch

    if not torch.cuda.is_available():
        return False, "no CUDA device"
    names = {torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())}
    return True, f"{torch.cuda.device_count()} × {', '.join(sorted(names))} (CUDA {torch.version.cuda})"


def _hf_cached(repo: str, filename: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    found = try_to_load_from_cache(repo, filename)
    return isinstance(found, str) and os.path.exists(found)


def _nltk_has(resource: str) -> bool:
    try:
        import nltk

        nltk.data.find(resource)
        return True
    except (LookupError, ImportError):
        return False


def _stanza_dir() -> Path:
    return Path(os.environ.get("STANZA_RESOURCES_DIR", Path.home() / "stanza_resources"))


def _disk_free(path: Path) -> int:
    path = Path(path).resolve()
    while not path.exists():
        path = path.parent
    return shutil.disk_usage(path).free


@dataclass
class Environment:
    """How the checks see the machine (real by default)."""

    python: tuple[int, int, int] = field(default_factory=lambda: tuple(sys.version_info[:3]))
    module_version: Callable[[str], str | None] = _module_version
    cuda: Callable[[], tuple[bool, str]] = _cuda
    hf_cached: Callable[[str, str], bool] = _hf_cached
    nltk_has: Callable[[str], bool] = _nltk_has
    stanza_dir: Callable[[], Path] = _stanza_dir
    disk_free: Callable[[Path], int] = _disk_free
    run_setup: Callable[[dict | None], dict] = lambda train: run_setup(train)  # device, precision, ...


def diagnose(corpus: str | Path | None = None, experiment: str | Path | None = None,
             env: Environment | None = None) -> list[Check]:
    """Run every check; with an experiment, its needs (tokenizer, tagger, corpus, disk) become fatal."""
    env = env or Environment()
    cfg = None
    if experiment is not None:
        from impossible_lms.experiment import load_experiment

        cfg = load_experiment(experiment)
        if corpus is None and cfg.corpus.source != "synthetic" and not cfg.corpus.source.startswith("hf:"):
            corpus = cfg.corpus.source
    tokenizer = cfg.corpus.tokenizer if cfg else None
    tagger = cfg.corpus.tagger if cfg else None
    checks = [check_python(env), *check_torch(env), check_gpt2_tokenizer(env, needed=tokenizer == "gpt2"),
              check_nltk(env, needed=tagger == "nltk"), check_stanza(env, needed=tagger == "stanza")]
    if corpus is not None:
        checks.append(check_babylm(Path(corpus), cfg.corpus.options if cfg else None))
    if cfg is not None:
        checks.append(check_disk(cfg, env))
    if any(c.name == "torch" and c.status == "ok" for c in checks):  # a run's setup needs torch
        if cfg is not None:
            from impossible_lms.experiment.layout import train_overrides

            setup = env.run_setup(train_overrides(cfg))  # the recipe's fields, as `ilm run` builds them
        else:
            setup = env.run_setup(None)
        checks.append(check_run(setup))
        if cfg is not None:
            checks.append(check_speed(cfg, setup))
    return checks


def fatal(checks: list[Check]) -> list[Check]:
    return [c for c in checks if c.status == "fail"]


def check_python(env: Environment) -> Check:
    version = ".".join(map(str, env.python))
    if env.python < (3, 10):
        return Check("python", "fail", f"Python {version}", "use Python 3.10 or newer")
    return Check("python", "ok", f"Python {version}")


def check_torch(env: Environment) -> list[Check]:
    torch_version = env.module_version("torch")
    if torch_version is None:
        return [Check("torch", "fail", "not installed", "install torch (a CUDA build on GPU machines), then ilm",
                      ("pip install torch", "pip install -e ."))]
    checks = [Check("torch", "ok", f"torch {torch_version}")]
    has_cuda, detail = env.cuda()
    checks.append(Check("cuda", "ok" if has_cuda else "warn", detail,
                        "" if has_cuda else "fine for the demo; the reference study needs GPUs and a CUDA build of torch"))
    flash = env.module_version("flash_attn")
    if flash:
        checks.append(Check("flash-attn", "ok", f"flash-attn {flash}"))
    else:
        checks.append(Check("flash-attn", "warn" if has_cuda else "ok",
                            "not installed (optional: PyTorch SDPA attention is used)",
                            "flash-attn for faster GPU training" if has_cuda else "",
                            ('pip install -e ".[flash]"',) if has_cuda else ()))
    return checks


def check_gpt2_tokenizer(env: Environment, needed: bool = False) -> Check:
    if env.hf_cached("gpt2", "tokenizer.json") or (env.hf_cached("gpt2", "vocab.json") and env.hf_cached("gpt2", "merges.txt")):
        return Check("gpt2 tokenizer", "ok", "in the local Hugging Face cache")
    return Check(
        "gpt2 tokenizer", "fail" if needed else "warn", "not in the local Hugging Face cache (no download at run time)",
        "on a machine with network, run the command, then copy ~/.cache/huggingface here (or set HF_HOME); "
        "or use tokenizer: fallback",
        ("python -c \"from transformers import AutoTokenizer; AutoTokenizer.from_pretrained('gpt2')\"",),
    )


def check_nltk(env: Environment, needed: bool = False) -> Check:
    if env.module_version("nltk") is None:
        return Check("nltk tagger", "fail" if needed else "warn", "nltk not installed", "install nltk",
                     ("pip install nltk",))
    missing = [name for name, path in NLTK_RESOURCES.items() if not env.nltk_has(path)]
    if not missing:
        return Check("nltk tagger", "ok", "punkt_tab and averaged_perceptron_tagger_eng found")
    return Check("nltk tagger", "fail" if needed else "warn", f"missing NLTK data: {', '.join(missing)}",
                 "download them on a machine with network; NLTK_DATA must point at them here",
                 (f"python -m nltk.downloader -d $NLTK_DATA {' '.join(missing)}",))


def check_stanza(env: Environment, needed: bool = False) -> Check:
    status: Status = "fail" if needed else "warn"
    if env.module_version("stanza") is None:
        return Check("stanza tagger", status, "stanza not installed (optional)", "install the stanza extra",
                     ('pip install -e ".[stanza]"',))
    english = env.stanza_dir() / "en"
    if not english.is_dir():
        return Check("stanza tagger", status, f"no English models under {env.stanza_dir()}",
                     "download them on a machine with network; STANZA_RESOURCES_DIR must point at them here",
                     ("python -c \"import stanza; stanza.download('en')\"",))
    return Check("stanza tagger", "ok", f"English models in {english}")


def check_babylm(root: Path, options: dict | None = None) -> Check:
    """Can ``ilm perturb`` read ``root`` (asked of the corpus reader itself, so the two never
    disagree on layouts), and does it hold the reference's ten genres in train, dev and test?"""
    from impossible_lms.corpus import open_corpus

    fix = ("pass a BabyLM folder (2023: babylm_100M|babylm_10M, babylm_dev, babylm_test; "
           "2024: train_100M|train_10M, dev, test)")
    if not root.exists():
        return Check("corpus", "fail", f"{root} does not exist", "pass the BabyLM folder with --corpus PATH")
    try:
        corpus = open_corpus(root, options=options)
        genres: dict[str, set[str]] = {}
        for f in corpus.files():
            genres.setdefault(f.split, set()).add(f.genre)
    except ILMError as e:
        return Check("corpus", "fail", str(e), fix)
    absent = [split for split in ("train", "dev", "test") if split not in genres]
    if absent:
        return Check("corpus", "fail", f"{root}: no {'/'.join(absent)} split", fix)
    differences = [f"{split} lacks {', '.join(g for g in BABYLM_GENRES if g not in have)}"
                   for split, have in genres.items() if set(BABYLM_GENRES) - have]
    if differences:  # another edition or a sample still reads; the reference numbers will differ
        return Check("corpus", "warn", f"{corpus.name}: not the 2023 ten-genre layout: {'; '.join(differences)}",
                     "fine for new experiments; the full BabyLM 2023 corpus reproduces the reference")
    return Check("corpus", "ok", f"{corpus.name}: train, dev, test with all {len(BABYLM_GENRES)} genres")


def estimate_disk(cfg) -> int:
    """Bytes a full run of the experiment writes: checkpoints (weights + optimiser state) and datasets."""
    from impossible_lms.experiment import select_runs, train_config

    total = 0.0
    checkpoints: dict[str, int] = {}  # per variant: each may change the schedule or the checkpoints kept
    for run in select_runs(cfg):
        if run.variant not in checkpoints:
            tc = train_config(cfg, variant=run.variant)
            count = max(1, tc.schedule.steps // max(1, tc.checkpoint.every))
            checkpoints[run.variant] = min(count, tc.checkpoint.keep) if tc.checkpoint.keep else count
        params = PRESET_PARAMS.get(run.model, TINY_PARAMS if run.model.startswith("tiny") else 124e6)
        total += checkpoints[run.variant] * params * BYTES_PER_PARAM_PER_CHECKPOINT
    source = Path(cfg.corpus.source)
    corpus_bytes = sum(p.stat().st_size for p in source.rglob("*") if p.is_file()) if source.is_dir() else 0
    # A dataset stores int32 ids (about 1 per 4 bytes of text) twice: Arrow and the packed memmap.
    total += len(cfg.languages) * corpus_bytes * 2
    return int(total)


def check_disk(cfg, env: Environment) -> Check:
    need = estimate_disk(cfg)
    free = env.disk_free(cfg.out)
    detail = f"{_gb(need)} needed under {cfg.out}, {_gb(free)} free"
    if free < need:
        return Check("disk", "fail", detail, "free space, point `out:` at a larger disk, or set train.checkpoint.keep")
    if free < 1.2 * need:
        return Check("disk", "warn", detail, "little headroom; consider train.checkpoint.keep")
    return Check("disk", "ok", detail)


def _gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def require_ok(checks: list[Check]) -> None:
    """Raise ILMError naming the first fatal check (for callers that want an exception)."""
    bad = fatal(checks)
    if bad:
        raise ILMError(f"{bad[0].name}: {bad[0].detail}; {bad[0].fix}")


# ---------------------------------------------------------------- the run's setup and speed

# Training FLOPs per run above which a CPU run is "far slower than expected": at the
# ~10 GFLOP/s a CPU sustains in training this is more than a few hours.
CPU_SLOW_FLOPS = 1e14
CPU_FLOPS = 1e10


def run_setup(train: dict | None = None) -> dict:
    """What a run with these TrainConfig fields would use here: device, precision, attention, compile."""
    import importlib.util

    import torch

    from impossible_lms.config import load_config
    from impossible_lms.models import model_config
    from impossible_lms.models.attention import resolve_backend
    from impossible_lms.training.config import TrainConfig
    from impossible_lms.training.distributed import resolve_device
    from impossible_lms.training.loop import resolve_precision

    tc = load_config(TrainConfig, overrides=dict(train or {}))
    device = resolve_device(tc.device)
    precision = resolve_precision(tc, device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
    overrides = {k: v for k, v in tc.model_overrides.items() if k != "vocab_size"}
    attention = resolve_backend(model_config(tc.model, **overrides).attention, device, dtype)
    compile_on = tc.compile if tc.compile is not None else device.type == "cuda"
    # Inductor needs triton for CUDA kernels (a C++ compiler on CPU).
    compile_ok = hasattr(torch, "compile") and (device.type != "cuda" or importlib.util.find_spec("triton") is not None)
    return {"device": str(device), "precision": precision, "attention": attention,
            "compile": compile_on, "compile_available": compile_ok}


def check_run(setup: dict) -> Check:
    detail = (f"device {setup['device']}, precision {setup['precision']}, attention {setup['attention']}, "
              f"torch.compile {'on' if setup['compile'] else 'off'}"
              + ("" if setup["compile_available"] else " (not available here)"))
    if setup["compile"] and not setup["compile_available"]:
        return Check("run setup", "warn", detail, "install triton, or train with --no-compile", ("pip install triton",))
    return Check("run setup", "ok", detail)


def check_speed(cfg, setup: dict) -> Check:
    """Warn when the experiment's runs would take far longer on this device than one expects (a 50k vocabulary on CPU)."""
    from impossible_lms.estimate import model_cost, vocab_size
    from impossible_lms.experiment import tokens_per_run

    tokens = tokens_per_run(cfg) or 0
    vocab = vocab_size(cfg)
    overrides = dict(cfg.train.get("model_overrides") or {})
    worst = max((model_cost(m, vocab, overrides) for m in cfg.models), key=lambda c: c.flops_per_token)
    total = worst.flops_per_token * tokens
    head = model_cost(worst.model, 1, overrides).flops_per_token  # the same model without its vocabulary
    vocab_share = 1 - head / worst.flops_per_token
    detail = (f"{worst.model}, vocabulary {vocab:,}: {worst.flops_per_token / 1e6:,.1f} MFLOP/token × {tokens:,} "
              f"tokens = {total:.2g} FLOP per run ({100 * vocab_share:.0f}% in the output layer)")
    # On a CPU a big vocabulary is what hurts: GPT-2's 50k makes a tiny model ~8x slower than a 4k one.
    vocab_bound = vocab_share > 0.5 and vocab > 10_000
    if setup["device"].startswith("cpu") and (total > CPU_SLOW_FLOPS or vocab_bound):
        hours = total / CPU_FLOPS / 3600
        return Check("speed", "warn", f"{detail}: about {hours:,.1f} h per run on a CPU",
                     "train on a GPU, or for a CPU try: tokenizer: fallback (a small vocabulary), tiny models, fewer steps"
                     " (`ilm run --dry-run` estimates GPU-hours on a named GPU)")
    return Check("speed", "ok", detail)
