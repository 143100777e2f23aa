"""`ilm export`: runs become Hugging Face folders that transformers loads with no ilm installed.

The exported folders are read in a subprocess where importing ilm is impossible
(a meta-path blocker) and nothing but torch, transformers and safetensors runs;
its logits must equal ilm's within 1e-5 in fp32. ilm's own loaders read the
same folders back (the published layouts round-trip).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file

from impossible_lms.errors import ILMError
from impossible_lms.models import build_model, load_model, model_config
from impossible_lms.models.export import export_run, upload_command
from impossible_lms.tokenizer import MarkedTokenizer, train_fallback
from impossible_lms.training.checkpoint import write_trainer_state

TEXTS = ["the dog sees the cats .", "a cat runs 🅂 .", "dogs and cats play together in the park ."] * 30
STEPS = (10, 20)


def tokenizer() -> MarkedTokenizer:
    return MarkedTokenizer(train_fallback(TEXTS, vocab_size=320), "fallback", is_fallback=True).with_markers(["🅂", "🄿"])


def make_run(folder, preset, steps=STEPS, **overrides):
    """A finished run folder as training leaves it: run.json, config.yaml, checkpoints, a tokenizer."""
    tok = tokenizer()
    tok.save(folder / "tokenizer")
    for i, step in enumerate(steps):
        torch.manual_seed(i)
        model = build_model(model_config(preset, vocab_size=tok.vocab_size, **overrides))
        with torch.no_grad():  # every tensor away from its initial value (LayerNorms too)
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.05)
        model.save_pretrained(folder / f"checkpoint-{step}")
        write_trainer_state(folder / f"checkpoint-{step}", {"step": step})  # complete, as training leaves it
    (folder / "run.json").write_text(json.dumps({
        "format": "ilm-run/1", "language": "token_hop", "model": preset, "seed": 7, "data": None,
        "data_fingerprint": "0123abcd", "tokenizer": {"name": "fallback", "fallback": True},
        "vocab_size": tok.vocab_size, "steps": max(steps), "checkpoints": list(steps), "context": 128,
        "global_batch": 4, "tokens_per_step": 512, "precision": "fp32", "objective": "lm", "finished": True}))
    (folder / "config.yaml").write_text(f"model: {preset}\nseed: 7\nschedule:\n  steps: {max(steps)}\n")
    return folder


PRESETS = {"tiny-gpt2": "gpt2", "tiny-gpt2-nopos": "gpt2-nopos", "tiny-gpt2-exits": "gpt2",
           "tiny-backpack": "backpack-gpt2"}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    out = {}
    for preset, layout in PRESETS.items():
        run = make_run(root / f"run-{preset}", preset)
        result = export_run(run, root / f"hf-{preset}", progress=False)
        assert (result.steps, result.layout) == (list(STEPS), layout)
        out[preset] = (run, result.folder)
    return out


# What the subprocess runs: transformers alone, ilm unimportable.
READER = textwrap.dedent("""
    import importlib.abc, json, sys

    class NoIlm(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("impossible_lms", "perturbations", "cli"):
                raise ImportError(f"{name} must not be imported here")
            return None

    sys.meta_path.insert(0, NoIlm())
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    jobs = json.loads(sys.argv[1])
    out = {}
    for name, (folder, ids) in jobs.items():
        for revision in ("", "/checkpoint-10"):
            model = AutoModelForCausalLM.from_pretrained(folder + revision, trust_remote_code=True).eval()
            with torch.no_grad():
                out[name + revision] = model(torch.tensor(ids)).logits.float().contiguous()
        tok = AutoTokenizer.from_pretrained(folder)
        out[name + "/tokens"] = torch.tensor(tok("a cat runs 🅂 .")["input_ids"])
        out[name + "/class"] = torch.tensor([ord(c) for c in type(model).__name__])
    assert not [m for m in sys.modules if m.split(".")[0] in ("impossible_lms", "perturbations")]
    save_file(out, sys.argv[2])
""")


@pytest.fixture(scope="module")
def read_by_transformers(exported, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reader")
    ids = torch.randint(0, 256, (2, 11), generator=torch.Generator().manual_seed(0))
    jobs = {preset: (str(folder), ids.tolist()) for preset, (_, folder) in exported.items()}
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp / "modules"), "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", READER, json.dumps(jobs), str(tmp / "out.safetensors")],
                          capture_output=True, text=True, env=env, cwd=tmp, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return ids, load_file(str(tmp / "out.safetensors"))


@pytest.mark.parametrize("preset", PRESETS)
def test_transformers_alone_gives_ilms_logits(exported, read_by_transformers, preset):
    ids, got = read_by_transformers
    run, _ = exported[preset]
    for step, key in ((STEPS[-1], preset), (STEPS[0], f"{preset}/checkpoint-10")):
        with torch.no_grad():
            want = load_model(run / f"checkpoint-{step}")(ids).logits
        assert got[key].shape == want.shape  # the vocabulary cut to the tokenizer's size
        torch.testing.assert_close(got[key], want, atol=1e-5, rtol=1e-5)
    classes = {"tiny-gpt2": "GPT2LMHeadModel", "tiny-gpt2-exits": "GPT2LMHeadModel",
               "tiny-gpt2-nopos": "GPT2NoPositionalEncodingLMHeadModel", "tiny-backpack": "BackpackGPT2LMHeadModel"}
    assert "".join(map(chr, got[f"{preset}/class"].tolist())) == classes[preset]
    assert got[f"{preset}/tokens"].tolist() == tokenizer().encode("a cat runs 🅂 .")


@pytest.mark.parametrize("preset", PRESETS)
def test_ilm_reads_the_exported_layouts_back(exported, preset):
    """The published layouts round-trip: no-position GPT-2 without wpe, stanford's Backpack keys,
    IBM's multi-exit heads."""
    run, folder = exported[preset]
    ids = torch.randint(0, 256, (2, 9), generator=torch.Generator().manual_seed(1))
    original, back = load_model(run / f"checkpoint-{STEPS[-1]}"), load_model(folder)
    with torch.no_grad():
        a, b = original(ids, output_exit_logits=True), back(ids, output_exit_logits=True)
    torch.testing.assert_close(b.logits, a.logits, atol=1e-5, rtol=1e-5)
    assert type(back) is type(original) and back.config.position == original.config.position
    if preset == "tiny-gpt2-exits":
        assert back.config.exit_layers == [1] and back.config.exit_norm == "shared"
        torch.testing.assert_close(b.exit_logits[1], a.exit_logits[1], atol=1e-5, rtol=1e-5)
    state = load_file(str(folder / "model.safetensors"))
    if preset == "tiny-gpt2-nopos":  # the reference's no-position layout: HF GPT-2 keys, no wpe
        assert "transformer.wpe.weight" not in state and "transformer.h.0.attn.c_attn.weight" in state
        config = json.loads((folder / "config.json").read_text())
        assert config["architectures"] == ["GPT2NoPositionalEncodingLMHeadModel"] and config["model_type"] == "gpt2"
    if preset == "tiny-backpack":
        assert {k.split(".")[1] for k in state} == {"gpt2_model", "sense_network", "sense_weight_net"}


def test_the_revisions_layout_card_and_upload(exported):
    run, folder = exported["tiny-gpt2"]
    names = {p.name for p in folder.iterdir()}
    assert {"checkpoint-10", "checkpoint-20", "config.json", "model.safetensors", "README.md", "tokenizer.json",
            "UPLOAD.md"} <= names
    for name in ("config.json", "model.safetensors", "tokenizer.json"):  # main is the last checkpoint
        assert (folder / name).read_bytes() == (folder / "checkpoint-20" / name).read_bytes()
    card = (folder / "checkpoint-10" / "README.md").read_text()
    assert "# token_hop · tiny-gpt2 · seed 7 · step 10" in card and "TokenHop" in card
    assert "`checkpoint-10` … `checkpoint-20` (2 of them)" in card and "model: tiny-gpt2" in card
    assert "No evaluation results" in card
    upload = (folder / "UPLOAD.md").read_text()
    assert "api.create_branch(repo, branch=ckpt.name, exist_ok=True)" in upload
    compile(upload_command(folder, "org/name").split("<<'EOF'\n")[1].rsplit("EOF", 1)[0], "upload", "exec")


def test_the_card_carries_the_runs_evaluation_rows(tmp_path):
    from impossible_lms.evaluation.store import COLUMNS, write_chunk
    from impossible_lms.evaluation.subjects import read_run_json, run_identity

    run = make_run(tmp_path / "run", "tiny-gpt2", steps=(10,))
    subject = run_identity(run, read_run_json(run))
    row = {c: None for c in COLUMNS} | {"subject": subject, "language": "token_hop", "model": "tiny-gpt2", "seed": 7,
                                         "checkpoint": 10, "metric": "perplexity", "subset": "test_affected",
                                         "value": 123.456, "ci_low": 120.0, "ci_high": 127.0, "count": 50}
    other = row | {"subject": "someone/else/seed0/x", "value": 9.0}
    write_chunk(tmp_path / "results" / "a.parquet", [row, other])
    export_run(run, tmp_path / "hf", results=tmp_path / "results", progress=False)
    card = (tmp_path / "hf" / "README.md").read_text()
    assert "| perplexity | test_affected |  | 123.5 | 120 – 127 | 50 |" in card and "| 9 |" not in card


@pytest.mark.parametrize("preset, overrides, message", [
    ("tiny-gpt2-rotary", {}, "position 'rotary' has no standard Hugging Face GPT-2 layout"),
    ("tiny-gpt2-alibi", {}, "position 'alibi' has no standard"),
    ("tiny-gpt2-geometric", {}, "geometric attention has no standard Hugging Face layout"),
    ("tiny-gpt2-exits", {"exit_norm": "own"}, r"LayerNorms of their own.*--drop-exits"),
])
def test_models_without_a_standard_layout_are_refused_in_one_line(tmp_path, preset, overrides, message):
    run = make_run(tmp_path / "run", preset, steps=(10,), **overrides)
    with pytest.raises(ILMError, match=message):
        export_run(run, tmp_path / "hf", progress=False)
    assert not (tmp_path / "hf").exists()


def test_own_norm_exits_drop_on_request_and_the_card_says_so(tmp_path):
    run = make_run(tmp_path / "run", "tiny-gpt2-exits", steps=(10,), exit_norm="own")
    result = export_run(run, tmp_path / "hf", drop_exits=True, progress=False)
    assert result.notes == ["The exit heads at layers [1] (with LayerNorms of their own) are not exported."]
    assert result.notes[0] in (tmp_path / "hf" / "README.md").read_text()
    assert not [k for k in load_file(str(tmp_path / "hf" / "model.safetensors")) if "exit" in k]


def test_an_existing_folder_is_refused_and_a_crash_leaves_nothing(tmp_path, monkeypatch):
    from impossible_lms.models import export

    run = make_run(tmp_path / "run", "tiny-gpt2")
    (tmp_path / "taken").mkdir()
    with pytest.raises(ILMError, match="already exists"):
        export_run(run, tmp_path / "taken", progress=False)
    calls = []

    def fail_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real(*args, **kwargs)

    real = export.write_checkpoint
    monkeypatch.setattr(export, "write_checkpoint", fail_second)
    with pytest.raises(OSError):
        export_run(run, tmp_path / "hf", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "taken"]  # no partial folder, no lock left


def test_checkpoint_selection(tmp_path):
    run = make_run(tmp_path / "run", "tiny-gpt2", steps=(10, 20, 30))
    result = export_run(run, tmp_path / "hf", checkpoints="20,30,40", progress=False)
    assert (result.steps, result.skipped) == ([20, 30], [40])
    assert sorted(p.name for p in (tmp_path / "hf").glob("checkpoint-*")) == ["checkpoint-20", "checkpoint-30"]
    with pytest.raises(ILMError, match=r"no complete checkpoint to export among 50; it has \[10, 20, 30\]"):
        export_run(run, tmp_path / "hf2", checkpoints="50", progress=False)
    with pytest.raises(ILMError, match="not a training run"):
        export_run(tmp_path, tmp_path / "hf3", progress=False)


def test_cli_export(tmp_path):
    from typer.testing import CliRunner

    from cli.main import app

    run = make_run(tmp_path / "run", "tiny-gpt2-nopos")
    result = CliRunner().invoke(app, ["export", str(run), "--to", str(tmp_path / "hf"), "--checkpoints", "20",
                                      "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "1 checkpoint(s) as gpt2-nopos" in result.output and "UPLOAD.md" in result.output
    again = CliRunner().invoke(app, ["export", str(run), "--to", str(tmp_path / "hf")])
    assert again.exit_code != 0 and "already exists" in again.output and "Traceback" not in again.output
