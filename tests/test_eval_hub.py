"""Published checkpoints as subjects: `hf:org/<language>-gpt2[-no-pos]` revisions from the local
Hugging Face cache (the hub's layout, built here), offline, through the strict loaders."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cli.main import app
from impossible_lms.errors import ILMError
from impossible_lms.evaluation import evaluate, score_sequences
from impossible_lms.evaluation.data import EvalData
from impossible_lms.evaluation.toy import make_toy_data, tiny_gpt2

REPO = "mission-impossible-lms/no-hop-gpt2-no-pos"


def publish(cache, repo: str, revision: str, seed: int, positions: bool):
    """Write one revision the way `hf download` leaves it: refs/<revision> holds the commit,
    snapshots/<commit>/ the files (config.json, model.safetensors; no wpe for -no-pos)."""
    from safetensors.torch import save_file

    model = tiny_gpt2(seed=seed)
    state = {k: v.clone().contiguous() for k, v in model.state_dict().items()
             if k != "lm_head.weight" and not k.endswith(".attn.bias")}
    if not positions:
        del state["transformer.wpe.weight"]
    commit = hashlib.sha1(f"{repo}@{revision}".encode()).hexdigest()
    folder = cache / f"models--{repo.replace('/', '--')}"
    snap = folder / "snapshots" / commit
    snap.mkdir(parents=True)
    model.config.to_json_file(snap / "config.json")
    save_file(state, str(snap / "model.safetensors"), metadata={"format": "pt"})
    (folder / "refs").mkdir(exist_ok=True)
    (folder / "refs" / revision).write_text(commit)
    return model


@pytest.fixture
def hub(tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    models = {step: publish(cache, REPO, f"checkpoint-{step}", seed=step, positions=False) for step in (100, 200)}
    data = make_toy_data(tmp_path / "data", per_genre=5)
    return cache, models, data


def test_published_no_pos_checkpoints_are_scored_from_the_cache(hub, tmp_path):
    cache, models, data = hub
    df = evaluate(f"hf:{REPO}", data, checkpoints="100-200:100", metrics=["perplexity"], results=tmp_path / "res")
    assert sorted(df["checkpoint"].unique()) == [100, 200]
    assert set(df["subject"]) == {REPO} and set(df["language"]) == {"no_hop"}
    assert set(df["model"]) == {"mission-impossible-lms/gpt2-nopos"}
    # independent check: a Hugging Face GPT-2 with its position table zeroed is a GPT-2 without positions
    reference = models[200]
    with torch.no_grad():
        reference.transformer.wpe.weight.zero_()
    sentences = EvalData(data, 1000, 0).sample("test_affected")
    want = math.exp(np.mean([-np.nanmean(lp) for lp in score_sequences(reference, sentences)[None]]))
    got = df[(df.checkpoint == 200) & (df.subset == "test_affected")]["value"].item()
    assert got == pytest.approx(want, rel=1e-5)
    # stored under the hub id: a rerun loads nothing
    again = evaluate(f"hf:{REPO}", data, checkpoints="100-200:100", metrics=["perplexity"], results=tmp_path / "res")
    assert len(again) == len(df)


def test_a_revision_missing_from_the_cache_names_the_download_command(hub):
    cache, models, data = hub
    with pytest.raises(ILMError) as err:
        evaluate(f"hf:{REPO}", data, checkpoints="100-300:100")
    message = str(err.value)
    assert "\n" not in message and "checkpoint-300 not in the local Hugging Face cache" in message
    assert f"`hf download {REPO} --revision checkpoint-300`" in message
    assert "checkpoint-100" not in message  # the cached ones are not listed
    with pytest.raises(ILMError, match="mission-impossible-lms/word-hop-gpt2: checkpoint-100 not in the local"):
        evaluate("hf:mission-impossible-lms/word-hop-gpt2", data, checkpoints="100")


def test_a_positional_checkpoint_loads_as_gpt2_and_a_weight_mismatch_is_refused(hub, tmp_path):
    cache, models, data = hub
    publish(cache, "mission-impossible-lms/no-hop-gpt2", "checkpoint-100", seed=5, positions=True)
    df = evaluate("hf:mission-impossible-lms/no-hop-gpt2", data, checkpoints="100", metrics=["perplexity"])
    assert set(df["model"]) == {"mission-impossible-lms/gpt2"}
    # strict loading: an extra tensor is an error naming it, not a silent skip
    from safetensors.torch import load_file, save_file

    snap = next((cache / "models--mission-impossible-lms--no-hop-gpt2" / "snapshots").iterdir())
    state = load_file(str(snap / "model.safetensors"))
    state["transformer.extra.weight"] = torch.zeros(2)
    save_file(state, str(snap / "model.safetensors"))
    with pytest.raises(ILMError, match="unused: transformer.extra.weight"):
        evaluate("hf:mission-impossible-lms/no-hop-gpt2", data, checkpoints="100", metrics=["perplexity"])


def test_cli_hub_subject_errors_are_one_line(hub, tmp_path):
    cache, models, data = hub
    result = CliRunner().invoke(app, ["eval", f"hf:{REPO}", "--data", str(data), "--checkpoints", "100-3000:100",
                                      "--results", str(tmp_path / "res"), "--no-progress"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    text = " ".join(result.output.split())
    assert "checkpoint-300, checkpoint-400, checkpoint-500, checkpoint-600 ... (28 in all)" in text
    assert f"hf download {REPO} --revision checkpoint-300" in text
    ok = CliRunner().invoke(app, ["eval", f"hf:{REPO}", "--data", str(data), "--checkpoints", "100-200:100",
                                  "--results", str(tmp_path / "res"), "--no-progress"])
    assert ok.exit_code == 0, ok.output


def test_published_names_map_to_ilm_languages():
    from impossible_lms.evaluation.subjects import published_names

    assert published_names("mission-impossible-lms/local-shuffle-w3-gpt2") == ("local_shuffle:w=3", "gpt2")
    assert published_names("mission-impossible-lms/word-hop-gpt2-no-pos") == ("word_hop", "gpt2-nopos")
    assert published_names("mission-impossible-lms/partial-reverse-gpt2") == ("partial_reverse", "gpt2")
    assert published_names("someone/bert") == (None, None)


def test_hub_subjects_map_checkpoints_to_revisions(hub):
    from impossible_lms.evaluation.subjects import resolve_subject

    cache, models, data = hub
    publish(cache, REPO, "main", seed=9, positions=False)
    subj = resolve_subject(f"hf:{REPO}", "100-200:100", ["main"])
    assert [(t.step, t.revision) for t in subj.targets] == [(100, "checkpoint-100"), (200, "checkpoint-200"), (None, "main")]
    assert subj.kind == "hub" and all(t.location.startswith(str(cache)) for t in subj.targets)
    # a plain org/name is a hub id too (when no such folder exists)
    assert [t.step for t in resolve_subject(REPO, None, ["checkpoint-200"]).targets] == [200]
    with pytest.raises(ILMError, match="hf:not an id: not a Hugging Face model id"):
        resolve_subject("hf:not an id")
