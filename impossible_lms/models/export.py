"""Export a run's checkpoints as Hugging Face folders that load without ilm (``ilm export``).

Layouts, chosen by what the model is (:data:`LAYOUTS`):

- ``gpt2``: GPT-2 with learned positions → transformers' ``GPT2LMHeadModel``
  (``model_type: gpt2``, Conv1D weights, the vocabulary cut to the tokenizer's
  size). Exit heads that share ``ln_f`` go with it in IBM's multi-exit layout
  (``lm_head_layer_indices``, ``name_to_lm_exit_head.lm_head_<l>.weight``):
  ``GPT2LMHeadModel`` ignores them, IBM's ``MultiExitGPT2`` and ilm read them.
- ``gpt2-nopos``: no positions → the reference's no-position models: GPT-2 keys
  without ``wpe`` and ``modeling_gpt2_nopos.py`` (its
  ``GPT2NoPositionalEncodingLMHeadModel``) through ``auto_map``.
- ``backpack-gpt2``: Backpacks → stanfordnlp/backpack-gpt2's key layout, with
  its config and model code files (``auto_map``).

Rotary and ALiBi positions, geometric attention and exit heads with a
LayerNorm of their own have no standard counterpart: they are refused in one
line (exit heads: dropped with ``drop_exits``, and the card says so).

The folder is the published models' revisions layout (``mission-impossible-lms/*``):
the last exported checkpoint at the top (the hub's ``main``), ``checkpoint-<step>/``
beside it (one hub branch each), each complete with the tokenizer and a model
card. :func:`upload_command` prints the ``huggingface_hub`` upload; nothing here
uses the network.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from impossible_lms.errors import ILMError
from impossible_lms.models.loading import BACKPACK_PREFIXES, CONV1D_WEIGHTS, GPT2_FIELDS, VOCAB_ROWS

CODE_DIR = Path(__file__).with_name("hub_code")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
# loading's renames, the other way: ilm's keys → stanfordnlp/backpack-gpt2's
_TO_BACKPACK = {ours: theirs for theirs, ours in BACKPACK_PREFIXES.items()}


@dataclass
class Layout:
    """How one kind of model is written: its name, weights, config and code files."""

    name: str
    architecture: str
    weights: Callable[[Any], dict[str, torch.Tensor]]
    config: Callable[[Any], dict[str, Any]]
    code: tuple[str, ...] = ()
    auto_map: dict[str, str] = field(default_factory=dict)
    load_hint: str = "AutoModelForCausalLM.from_pretrained(folder)"


@dataclass
class Export:
    folder: Path
    steps: list[int]
    layout: str
    notes: list[str]
    skipped: list[int] = field(default_factory=list)  # asked for, but the run has no such checkpoint


# ---------------------------------------------------------------- weights and configs


def _hf_tensor(key: str, tensor: torch.Tensor, vocab: int) -> torch.Tensor:
    """One ilm tensor in Hugging Face's layout: Conv1D transposed, vocabulary rows cut (the loader's
    rules, undone)."""
    tensor = tensor.detach().to("cpu", torch.float32) if tensor.is_floating_point() else tensor.detach().cpu()
    if CONV1D_WEIGHTS.search(key):
        tensor = tensor.t()
    if VOCAB_ROWS.search(key):
        tensor = tensor[:vocab]
    return tensor.contiguous().clone()


def _gpt2_weights(model) -> dict[str, torch.Tensor]:
    vocab = model.config.vocab_size
    out = {}
    for key, tensor in model.state_dict().items():
        if key.startswith("exits."):
            if model.config.exit_norm == "shared":  # IBM's layout (own-norm heads: dropped, see layout_for)
                out[f"name_to_lm_exit_head.lm_head_{key.split('.')[1]}.weight"] = _hf_tensor(key, tensor, vocab)
            continue
        if key == "lm_head.weight" and model.config.tie_word_embeddings:
            continue  # tied: transformers ties it to wte again
        out[key] = _hf_tensor(key, tensor, vocab)
    return out


def _gpt2_config(model) -> dict[str, Any]:
    from transformers import GPT2Config

    cfg = model.config
    fields = {name: getattr(cfg, name) for name in (*GPT2_FIELDS, "tie_word_embeddings")}
    config = GPT2Config(**fields).to_dict()
    if cfg.exit_layers and cfg.exit_norm == "shared":
        config["lm_head_layer_indices"] = list(cfg.exit_layers)
    return config


def _backpack_weights(model) -> dict[str, torch.Tensor]:
    vocab, out = model.config.vocab_size, {}
    for key, tensor in model.state_dict().items():
        if key == "lm_head.weight":
            continue  # tied to the embeddings (Backpacks always are)
        prefix = next(p for p in _TO_BACKPACK if key.startswith(p))
        out[_TO_BACKPACK[prefix] + key[len(prefix):]] = _hf_tensor(key, tensor, vocab)
    return out


def _backpack_config(model) -> dict[str, Any]:
    return {**_gpt2_config(model), "model_type": "backpack-gpt2", "num_senses": model.config.num_senses,
            "sense_intermediate_scale": model.config.sense_intermediate_scale}


_REMOTE = "AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)"
LAYOUTS = {
    "gpt2": Layout("gpt2", "GPT2LMHeadModel", _gpt2_weights, _gpt2_config),
    "gpt2-nopos": Layout(
        "gpt2-nopos", "GPT2NoPositionalEncodingLMHeadModel", _gpt2_weights, _gpt2_config,
        code=("modeling_gpt2_nopos.py",),
        auto_map={"AutoModelForCausalLM": "modeling_gpt2_nopos.GPT2NoPositionalEncodingLMHeadModel"},
        load_hint=_REMOTE),
    "backpack-gpt2": Layout(
        "backpack-gpt2", "BackpackGPT2LMHeadModel", _backpack_weights, _backpack_config,
        code=("configuration_backpack_gpt2.py", "modeling_backpack_gpt2.py"),
        auto_map={"AutoConfig": "configuration_backpack_gpt2.BackpackGPT2Config",
                  "AutoModelForCausalLM": "modeling_backpack_gpt2.BackpackGPT2LMHeadModel"},
        load_hint=_REMOTE),
}


def layout_for(config, drop_exits: bool = False) -> tuple[Layout, list[str]]:
    """The layout a model config exports to, and the notes for its card; ILMError when there is none."""
    notes: list[str] = []
    if config.model_type == "ilm-lstm":
        raise ILMError("there is no standard Hugging Face layout for ilm's LSTM; load this run with ilm")
    if config.model_type not in ("ilm-gpt2", "ilm-backpack"):
        raise ILMError(f"this run's checkpoints are already transformers' own {config.model_type!r} folders: "
                       f"AutoModelForCausalLM loads checkpoint-<step>/ as they are")
    if config.position not in ("learned", "none"):
        raise ILMError(f"position {config.position!r} has no standard Hugging Face GPT-2 layout; ilm export writes "
                       f"learned-position and no-position GPT-2s and Backpacks (load this run with ilm)")
    if config.attention_kind != "softmax":
        raise ILMError(f"{config.attention_kind} attention has no standard Hugging Face layout; load this run with ilm")
    if config.model_type == "ilm-backpack":
        if config.position != "learned":
            raise ILMError("a Backpack without positions has no backpack-gpt2 layout (its GPT-2 has a position table)")
        return LAYOUTS["backpack-gpt2"], notes
    if config.exit_layers and config.exit_norm == "own":
        if not drop_exits:
            raise ILMError(f"exit heads {config.exit_layers} have LayerNorms of their own, which no published "
                           f"layout holds (IBM's share ln_f); pass --drop-exits to export the LM head alone")
        notes.append(f"The exit heads at layers {config.exit_layers} (with LayerNorms of their own) are not exported.")
    elif config.exit_layers:
        notes.append(f"Exit heads at layers {config.exit_layers} are stored in IBM's multi-exit layout "
                     "(auto-contrastive-generation); transformers' own class ignores them.")
    return LAYOUTS["gpt2" if config.position == "learned" else "gpt2-nopos"], notes


# ---------------------------------------------------------------- one checkpoint


def write_checkpoint(model, folder: Path, layout: Layout, tokenizer: Path, card: str) -> None:
    """``model`` as a Hugging Face folder in ``layout``, with the tokenizer and the card."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    config = {**layout.config(model), "architectures": [layout.architecture]}
    if layout.auto_map:
        config["auto_map"] = layout.auto_map
    config["torch_dtype"] = "float32"
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    save_file(layout.weights(model), str(folder / "model.safetensors"), metadata={"format": "pt"})
    for name in layout.code:
        shutil.copyfile(CODE_DIR / name, folder / name)
    for name in TOKENIZER_FILES:
        shutil.copyfile(tokenizer / name, folder / name)
    (folder / "README.md").write_text(card, encoding="utf-8")


# ---------------------------------------------------------------- a run


def export_run(run: str | Path, to: str | Path, checkpoints: Any = None, results: str | Path | None = None,
               drop_exits: bool = False, progress: bool = True) -> Export:
    """Export ``run``'s checkpoints (all complete ones, or a ``--checkpoints`` spec) into ``to``.

    ``to`` must not exist; it appears whole or not at all (built in a temporary
    sibling, renamed at the end) and is locked while it is built."""
    from impossible_lms.evaluation.subjects import parse_checkpoints, read_run_json
    from impossible_lms.io import atomic_dir
    from impossible_lms.locks import hold
    from impossible_lms.models.generate import find_tokenizer
    from impossible_lms.models.loading import load_model
    from impossible_lms.progress import progress as make_progress
    from impossible_lms.training.checkpoint import find_checkpoints

    run, to = Path(run), Path(to)
    if not (run / "run.json").is_file():
        raise ILMError(f"{run} is not a training run (no run.json); ilm export takes a run folder")
    info = read_run_json(run)
    found = find_checkpoints(run)
    wanted = parse_checkpoints(checkpoints)
    steps = sorted(found) if wanted is None else [s for s in wanted if s in found]
    if not steps:
        raise ILMError(f"{run}: no complete checkpoint to export"
                       + (f" among {checkpoints}" if wanted else "") + f"; it has {sorted(found) or 'none'}")
    if to.exists():
        raise ILMError(f"{to} already exists; ilm export writes a new folder (remove it or choose another --to)")
    last = load_model(found[steps[-1]])  # decides the layout, then is written last, not loaded again
    layout, notes = layout_for(last.config, drop_exits)
    tokenizer = Path(find_tokenizer(found[steps[-1]]))
    lost = [n for n in TOKENIZER_FILES if not (tokenizer / n).is_file()]
    if lost:
        raise ILMError(f"{tokenizer}: no {', '.join(lost)}; the export needs the run's tokenizer folder")
    rows = _results_for(run, info, results)
    with hold(to, "export folder"), atomic_dir(to) as tmp, make_progress(disable=not progress) as bars:
        bar = bars.add_task("export", total=len(steps))
        for step in steps:
            model = last if step == steps[-1] else load_model(found[step])
            card = model_card(run, info, step, steps, layout, notes, rows)
            write_checkpoint(model, tmp / f"checkpoint-{step}", layout, tokenizer, card)
            bars.advance(bar)
        for item in (tmp / f"checkpoint-{steps[-1]}").iterdir():  # the last one is the top (the hub's main)
            shutil.copyfile(item, tmp / item.name)
        (tmp / "UPLOAD.md").write_text(upload_instructions(to), encoding="utf-8")
    return Export(to, steps, layout.name, notes, skipped=[s for s in wanted or [] if s not in found])


def _results_for(run: Path, info: dict, results: str | Path | None):
    """This run's evaluation rows in ``results`` (matched by run identity), or None."""
    if results is None or not Path(results).exists():
        return None
    from impossible_lms.evaluation.store import load_results
    from impossible_lms.evaluation.subjects import run_identity

    df = load_results([results])
    identity = run_identity(run, info)
    return df[df["subject"] == identity] if identity is not None and len(df) else None


# ---------------------------------------------------------------- the card and the upload


def model_card(run: Path, info: dict, step: int, steps: list[int], layout: Layout, notes: list[str], rows) -> str:
    """The README.md of one exported checkpoint: what it was trained on, how, and what it scored."""
    from perturbations import get_language

    language = info.get("language", "?")
    try:
        lang = get_language(language)
        described = f"{lang.display} (`{language}`, {lang.family} family" + (
            f"; its control language is `{lang.control}`)" if lang.control else ")")
    except Exception:  # a language this ilm does not know: its name is all the card can say
        described = f"`{language}`"
    tok = info.get("tokenizer") or {}
    config_yaml = (run / "config.yaml").read_text(encoding="utf-8") if (run / "config.yaml").is_file() else ""
    lines = [
        "---", "library_name: transformers", "tags:", "- impossible-languages", "- ilm", "---", "",
        f"# {language} · {info.get('model', '?')} · seed {info.get('seed', '?')} · step {step}", "",
        f"A language model trained with `ilm` (impossible language models) on {described}, "
        f"an impossible (or control) variant of English in the sense of Kallini et al. (2024).", "",
        "## Loading", "", "```python", "from transformers import AutoModelForCausalLM, AutoTokenizer",
        f"model = {layout.load_hint.replace('folder', 'path')}",
        "tokenizer = AutoTokenizer.from_pretrained(path)", "```", "",
        f"Layout: `{layout.name}` ({layout.architecture}); revisions `checkpoint-{steps[0]}` … "
        f"`checkpoint-{steps[-1]}` ({len(steps)} of them), the last one also on `main`.", "",
        "## Training", "",
        f"- data: dataset fingerprint `{info.get('data_fingerprint', '?')}`, tokenizer `{tok.get('name', '?')}`"
        + (" (a BPE trained on the corpus, not GPT-2's)" if tok.get("fallback") else "")
        + f", vocabulary {info.get('vocab_size', '?')}",
        f"- steps: {info.get('steps', '?')} of {info.get('tokens_per_step', '?')} tokens "
        f"(context {info.get('context', '?')}, {info.get('global_batch', '?')} sequences), objective "
        f"`{info.get('objective', 'lm')}`, precision {info.get('precision', '?')}",
        f"- seed: {info.get('seed', '?')}; this checkpoint: step {step}"
        + ("" if info.get("finished") else " (the run had not finished when it was exported)"),
        *[f"- {note}" for note in notes], "",
    ]
    if config_yaml:
        lines += ["The run's whole recipe (`config.yaml`):", "", "```yaml", config_yaml.rstrip(), "```", ""]
    lines += ["## Evaluation", ""] + _results_lines(rows, step)
    lines += ["", "## Citation", "",
              "Kallini, Papadimitriou, Futrell, Mahowald and Potts (2024). *Mission: Impossible Language Models.* "
              "ACL 2024.", ""]
    return "\n".join(lines)


def _results_lines(rows, step: int) -> list[str]:
    if rows is None or not len(rows):
        return ["No evaluation results were exported with this checkpoint (`ilm export --results DIR`)."]
    here = rows[rows["checkpoint"] == step]
    if not len(here):
        return [f"The results given hold no rows for step {step}."]
    out = ["| metric | subset | layer | value | 95% interval | n |", "|---|---|---|---|---|---|"]
    for _, r in here.sort_values(["metric", "subset"], na_position="first").iterrows():
        interval = "" if _missing(r.get("ci_low")) else f"{r['ci_low']:.4g} – {r['ci_high']:.4g}"
        out.append(f"| {r['metric']} | {'' if _missing(r.get('subset')) else r['subset']} | "
                   f"{'' if _missing(r.get('layer')) else int(r['layer'])} | {r['value']:.4g} | {interval} | "
                   f"{'' if _missing(r.get('count')) else int(r['count'])} |")
    return out


def _missing(value) -> bool:
    import pandas as pd

    return value is None or bool(pd.isna(value))


def upload_instructions(folder: Path) -> str:
    return "\n".join([
        "# Publishing this folder", "",
        "The layout of the published models: the top of the folder is the hub's `main`, each",
        "`checkpoint-<step>/` one branch. With network and a token (`hf auth login`):", "",
        "```bash", upload_command(folder, "ORG/NAME"), "```", ""])


def upload_command(folder: str | Path, repo: str) -> str:
    """The ``huggingface_hub`` calls that publish an exported folder (ilm never runs them)."""
    return (
        f"python - <<'EOF'\nfrom pathlib import Path\nfrom huggingface_hub import HfApi\n"
        f"api, repo, folder = HfApi(), {repo!r}, Path({str(folder)!r})\n"
        "api.create_repo(repo, exist_ok=True)\n"
        "api.upload_folder(repo_id=repo, folder_path=folder, ignore_patterns=['checkpoint-*/**', 'UPLOAD.md'])\n"
        "for ckpt in sorted(folder.glob('checkpoint-*'), key=lambda p: int(p.name.split('-')[1])):\n"
        "    api.create_branch(repo, branch=ckpt.name, exist_ok=True)\n"
        "    api.upload_folder(repo_id=repo, folder_path=ckpt, revision=ckpt.name)\n"
        "EOF")
