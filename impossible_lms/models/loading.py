"""Build models from configs; load checkpoints strictly, in our format and the published ones.

Formats (chosen by ``config.json``'s ``model_type``, a registry):
- ``ilm-gpt2`` / ``ilm-backpack``: ours (``save_pretrained`` folders);
- ``gpt2``: Hugging Face GPT-2 keys in Conv1D layout, as the reference study's
  checkpoints; no ``wpe`` table → ``position="none"``; IBM's multi-exit heads
  (``lm_head_layer_indices``) → exit heads sharing ``ln_f`` (multi_exit.py);
- ``backpack-gpt2``: stanfordnlp/backpack-gpt2 (``backpack.gpt2_model.*`` ...);
- anything else: any Hugging Face causal LM, for evaluation only (with IBM's
  exit heads: :class:`multi_exit.MultiExitLM`).

Strict means: a weight that would be newly initialised or left unused is an
ILMError naming the keys, never a warning.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Callable

import torch

from impossible_lms.errors import ILMError
from impossible_lms.models import multi_exit
from impossible_lms.models.backpack import BackpackForCausalLM
from impossible_lms.models.config import BackpackConfig, ILMConfig, LSTMConfig
from impossible_lms.models.gpt2 import ILMForCausalLM
from impossible_lms.models.lstm import LSTMForCausalLM

# ilm's own model types: config class and model class (anything else is transformers')
CONFIG_CLASSES = {c.model_type: c for c in (ILMConfig, BackpackConfig, LSTMConfig)}
MODEL_CLASSES = {ILMConfig.model_type: ILMForCausalLM, BackpackConfig.model_type: BackpackForCausalLM,
                 LSTMConfig.model_type: LSTMForCausalLM}

# Hugging Face GPT-2 stores these as Conv1D ([in, out]); ours are nn.Linear ([out, in]).
CONV1D_WEIGHTS = re.compile(r"\.(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj|final_mlp\.c_fc|final_mlp\.c_proj)\.weight$")
# Weights with a row per vocabulary entry: padded with zero rows up to the model's padded vocabulary.
VOCAB_ROWS = re.compile(r"^(transformer\.wte\.weight|lm_head\.weight|exits\.\d+\.proj\.weight)$")
# Causal-mask buffers older GPT-2 checkpoints carry; they hold no learned weights.
_BUFFERS = re.compile(r"\.attn\.(bias|masked_bias)$")


def build_model(cfg):
    """A freshly initialised model for ``cfg`` (from :func:`model_config`): ours, or transformers'
    for a transformers config (``hf:<model_type>`` and the presets built on one)."""
    if cfg.model_type in MODEL_CLASSES:
        return MODEL_CLASSES[cfg.model_type](cfg)
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_config(cfg)


def _build_empty(cfg: ILMConfig) -> ILMForCausalLM | BackpackForCausalLM:
    """The model's structure on the meta device: no memory, no random init (a checkpoint fills it).

    Random initialisation of GPT-2 small costs seconds on a CPU thread, only to
    be overwritten; :func:`load_strict` assigns the stored tensors instead.
    """
    with torch.device("meta"):
        return build_model(cfg)


# ---------------------------------------------------------------- finding files


def resolve_folder(path_or_id: str | Path, revision: str | None = None) -> Path:
    """A local folder, or a hub id already in the local HF cache: ilm never downloads."""
    path = Path(path_or_id).expanduser()
    if path.is_dir():
        if revision and (path / revision).is_dir():  # a run folder: revision = checkpoint-<step>
            return path / revision
        return path
    text = str(path_or_id)
    if path.exists() or text.startswith((".", "/", "~")) or text.count("/") != 1:
        raise ILMError(f"model folder not found: {path_or_id}")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(text, revision=revision, local_files_only=True))
    except Exception:
        rev = f" --revision {revision}" if revision else ""
        raise ILMError(
            f"{text} is not a local folder and not in the Hugging Face cache; ilm does not download "
            f"(no network). Fetch it where there is network (`hf download {text}{rev}`) and pass the folder"
        ) from None


def read_state_dict(folder: Path, keep: Callable[[str], bool] | None = None) -> dict[str, torch.Tensor]:
    """The weights of a checkpoint folder (safetensors, sharded or not; else pytorch_model.bin): all of
    them, or those whose key ``keep`` accepts (from safetensors, only those are read)."""
    from safetensors import safe_open

    # model.safetensors or HF shards model-0000k-of-0000n.safetensors; not trainer_state.safetensors.
    files = sorted(folder.glob("model*.safetensors"))
    if files:
        state: dict[str, torch.Tensor] = {}
        for f in files:
            with safe_open(str(f), framework="pt") as weights:
                state.update({k: weights.get_tensor(k) for k in weights.keys() if keep is None or keep(k)})
        return state
    bins = sorted(folder.glob("pytorch_model*.bin"))
    if bins:
        state = {}
        for f in bins:
            state.update({k: v for k, v in torch.load(f, map_location="cpu", weights_only=True).items()
                          if keep is None or keep(k)})
        return state
    raise ILMError(f"{folder}: no model.safetensors or pytorch_model.bin")


def read_config(folder: Path) -> dict[str, Any]:
    path = folder / "config.json"
    if not path.is_file():
        raise ILMError(f"{folder}: no config.json (is this a checkpoint folder?)")
    return json.loads(path.read_text(encoding="utf-8"))


# ---------------------------------------------------------------- strict loading


def _summary(keys: set[str], n: int = 6) -> str:
    keys_sorted = sorted(keys)
    more = f" … (+{len(keys_sorted) - n} more)" if len(keys_sorted) > n else ""
    return ", ".join(keys_sorted[:n]) + more


def load_strict(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Copy ``state`` into ``model``; ILMError if any key is missing, unused or mis-shaped."""
    expected = model.state_dict()
    missing, unused = set(expected) - set(state), set(state) - set(expected)
    if missing or unused:
        parts = ([f"missing (would be newly initialised): {_summary(missing)}"] if missing else []) + (
            [f"unused: {_summary(unused)}"] if unused else [])
        raise ILMError(f"{source}: checkpoint does not match the model; " + "; ".join(parts))
    for key, tensor in state.items():
        want = expected[key].shape
        if VOCAB_ROWS.search(key) and tensor.shape[0] < want[0] and tensor.shape[1:] == want[1:]:
            state[key] = tensor = torch.cat((tensor, tensor.new_zeros(want[0] - tensor.shape[0], *want[1:])))
        if tensor.shape != want:
            raise ILMError(f"{source}: {key} has shape {tuple(tensor.shape)}, the model expects {tuple(want)}")
        if tensor.dtype != expected[key].dtype:  # the model's dtype wins, as with a copying load
            state[key] = tensor.to(expected[key].dtype)
    # assign=True: a meta-built model takes the tensors as they are (no copy into
    # random weights); tied weights are one parameter (the output reads wte), so
    # nothing needs re-tying, and the check below proves nothing stayed on meta.
    model.load_state_dict(state, strict=True, assign=True)
    if hasattr(model, "transformer"):
        model.transformer.reset_derived()  # buffers that are not saved (ALiBi slopes) leave the meta device
    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:
        raise ILMError(f"{source}: no weights for {_summary(set(left))}")


def _untie_or_drop(state: dict[str, torch.Tensor], head: str, wte: str) -> bool:
    """Drop ``head`` when it is the tied copy of ``wte``; True when the checkpoint is really untied."""
    if head not in state:
        return False
    if torch.equal(state[head], state[wte]):
        del state[head]
        return False
    return True


# The GPT-2 config fields ILMConfig shares with Hugging Face's GPT2Config (read on load, written on export).
GPT2_FIELDS = ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head", "n_inner", "activation_function",
               "layer_norm_epsilon", "initializer_range", "embd_pdrop", "attn_pdrop", "resid_pdrop",
               "scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn", "bos_token_id", "eos_token_id")


def _gpt2_fields(raw: dict[str, Any]) -> dict[str, Any]:
    if raw.get("scale_attn_weights", True) is False:
        raise ILMError("GPT-2 checkpoints with scale_attn_weights=false are not supported")
    return {k: raw[k] for k in GPT2_FIELDS if raw.get(k) is not None}


def _convert_conv1d(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: (v.t().contiguous() if CONV1D_WEIGHTS.search(k) else v) for k, v in state.items() if not _BUFFERS.search(k)}


def _load_ours(folder: Path, raw: dict[str, Any]):
    cls = CONFIG_CLASSES[raw["model_type"]]
    # Saved before exit_norm existed, exit heads had a LayerNorm of their own.
    legacy = {"exit_norm": "own"} if raw.get("exit_layers") and "exit_norm" not in raw else {}
    model = _build_empty(cls.from_pretrained(folder, **legacy))
    load_strict(model, read_state_dict(folder), str(folder))
    return model


def _load_reference_gpt2(folder: Path, raw: dict[str, Any]):
    state = read_state_dict(folder)
    named = [a for a in raw.get("architectures") or [] if "backpack" in str(a).lower()]
    if named or any(k.startswith("backpack.") for k in state):
        # The Backpack remote code's own save_pretrained writes model_type "gpt2": its weights say otherwise.
        try:
            return _load_stanford_backpack(folder, raw)
        except ILMError as e:
            found = f"architectures {named}" if named else "backpack.* weights"
            raise ILMError(f"{folder}: a Backpack-GPT2 folder ({found}, model_type 'gpt2') that does not load "
                           f"as one: {e}") from None
    exits: dict[str, Any] = {}
    if multi_exit.is_multi_exit(raw):  # IBM's MultiExitGPT2: its heads read ln_f(h_l), as exit_norm="shared"
        layers = multi_exit.exit_layers(raw, raw.get("n_layer", 12))
        state, heads = multi_exit.split_heads(state, layers, state.get("lm_head.weight", state.get(
            "transformer.wte.weight")), str(folder))
        state.update({f"exits.{l}.proj.weight": w for l, w in heads.items()})
        exits = {"exit_layers": layers, "exit_norm": "shared"}
    if not any(k.startswith("transformer.") for k in state):  # saved from GPT2Model: no prefix
        state = {("lm_head.weight" if k == "lm_head.weight" else f"transformer.{k}"): v for k, v in state.items()}
    untied = _untie_or_drop(state, "lm_head.weight", "transformer.wte.weight")
    position = "learned" if "transformer.wpe.weight" in state else "none"
    cfg = ILMConfig(**_gpt2_fields(raw), position=position, tie_word_embeddings=not untied, **exits)
    model = _build_empty(cfg)
    load_strict(model, _convert_conv1d(state), str(folder))
    return model


BACKPACK_PREFIXES = {
    "backpack.gpt2_model.": "transformer.",
    "backpack.sense_network.": "sense_network.",
    "backpack.sense_weight_net.": "sense_weight_net.",
}
# The reference model keeps second names for the GPT-2's tables; they are the same tensors.
_BACKPACK_ALIASES = {"backpack.word_embeddings.weight": "transformer.wte.weight",
                     "backpack.position_embeddings.weight": "transformer.wpe.weight"}


def _load_stanford_backpack(folder: Path, raw: dict[str, Any]):
    renamed: dict[str, torch.Tensor] = {}
    aliases: dict[str, torch.Tensor] = {}
    for key, value in read_state_dict(folder).items():
        if key in _BACKPACK_ALIASES:
            aliases[_BACKPACK_ALIASES[key]] = value
            continue
        prefix = next((p for p in BACKPACK_PREFIXES if key.startswith(p)), None)
        renamed[BACKPACK_PREFIXES[prefix] + key[len(prefix):] if prefix else key] = value
    for key, value in aliases.items():
        if key not in renamed:
            renamed[key] = value
        elif not torch.equal(renamed[key], value):
            raise ILMError(f"{folder}: {key} and its alias differ; the checkpoint is inconsistent")
    if _untie_or_drop(renamed, "lm_head.weight", "transformer.wte.weight"):
        raise ILMError(f"{folder}: lm_head.weight differs from the embeddings; Backpacks tie them")
    fields = _gpt2_fields(raw)
    fields.setdefault("scale_attn_by_inverse_layer_idx", True)  # the reference config's default
    position = "learned" if "transformer.wpe.weight" in renamed else "none"
    cfg = BackpackConfig(**fields, position=position, num_senses=raw.get("num_senses", 16),
                         sense_intermediate_scale=raw.get("sense_intermediate_scale", 4))
    model = _build_empty(cfg)
    load_strict(model, _convert_conv1d(renamed), str(folder))
    return model


def load_any_hf(folder: Path, dtype=None, own_keys: Callable[[str], bool] | None = None):
    """Any Hugging Face causal LM, strictly; ``own_keys``: weights a wrapper loads itself (not unused)."""
    from transformers import AutoModelForCausalLM

    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # its load report would list the keys checked below, as a warning
    try:
        model, info = AutoModelForCausalLM.from_pretrained(
            folder, dtype=dtype, low_cpu_mem_usage=True, output_loading_info=True, trust_remote_code=False,
            local_files_only=True)
    except ValueError as e:
        raise ILMError(f"{folder}: not a causal LM transformers can load ({str(e).splitlines()[0]})") from None
    finally:
        hf_logging.set_verbosity(verbosity)
    missing = set(info.get("missing_keys") or [])
    unused = {k for k in info.get("unexpected_keys") or [] if not (own_keys and own_keys(k))}
    if missing or unused or info.get("mismatched_keys"):
        raise ILMError(f"{folder}: checkpoint does not match {type(model).__name__}; missing: "
                       f"{_summary(missing) or '-'}; unused: {_summary(unused) or '-'}")
    return model


LOADERS: dict[str, Callable[..., Any]] = {
    **{model_type: _load_ours for model_type in CONFIG_CLASSES},
    "gpt2": _load_reference_gpt2,
    "backpack-gpt2": _load_stanford_backpack,
}


def load_model(path_or_id: str | Path, revision: str | None = None, dtype: torch.dtype | str | None = None,
               device: str | torch.device | None = None):
    """Load a checkpoint for evaluation/generation (eval mode), strictly; see the module doc for formats."""
    if isinstance(dtype, str):
        dtype = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
                 "float16": torch.float16, "fp16": torch.float16}.get(dtype) or _bad_dtype(dtype)
    if isinstance(device, str):  # an unknown or absent device is the user's mistake: say so before loading
        from impossible_lms.training.distributed import resolve_device

        device = resolve_device(device)
    folder = resolve_folder(path_or_id, revision)
    raw = read_config(folder)
    loader = LOADERS.get(raw.get("model_type", ""))
    # Other HF models are loaded by transformers directly in the requested dtype
    # (weights go straight to it: no full-precision copy in memory first;
    # transformers 5 always initialises on the meta device, 4.x needs low_cpu_mem_usage).
    if loader is not None:
        model = loader(folder, raw)
    elif multi_exit.is_multi_exit(raw):  # IBM's multi-exit heads on a base ilm has no model of (GPT-Neo)
        model = multi_exit.load_hf_multi_exit(folder, raw, dtype)
    else:
        model = load_any_hf(folder, dtype)
    if dtype is not None or device is not None:
        model = model.to(device=device, dtype=dtype)
    return model.eval()


def _bad_dtype(name: str):
    raise ILMError(f"unknown dtype {name!r}; use float32, bfloat16 or float16")
