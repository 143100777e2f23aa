"""Scoring precision: fp32 without TF32 by default; bf16 = autocast with fp32 weights and an fp32 head."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from impossible_lms.evaluation import evaluate, score_sequences
from impossible_lms.evaluation.scoring import LinearHead, ScoreOptions, fp32_heads, precision
from impossible_lms.evaluation.toy import make_toy_data, make_toy_run, tiny_gpt2


@pytest.fixture(scope="module")
def sharp_model():
    """A tiny exits model with sharp distributions (logits of tens, as a trained model's), where a
    bf16 vocabulary projection is visibly off."""
    from impossible_lms.models import build_model, model_config

    torch.manual_seed(0)
    model = build_model(model_config("tiny-gpt2-exits", vocab_size=2000)).eval()
    with torch.no_grad():
        model.transformer.wte.weight.mul_(30)
        for head in model.exits.values():
            head.proj.weight.mul_(30)
    rng = np.random.default_rng(0)
    seqs = [rng.integers(0, 2000, rng.integers(5, 40)).tolist() for _ in range(40)]
    return model, seqs


def max_diff(a, b) -> float:
    return max(float(np.nanmax(np.abs(x - y))) for x, y in zip(a, b))


def test_bf16_autocast_stays_within_a_bound_of_fp32_per_token(sharp_model):
    model, seqs = sharp_model
    fp32 = score_sequences(model, seqs)
    bf16 = score_sequences(model, seqs, ScoreOptions(dtype="bf16"))
    assert set(fp32) == set(bf16) == {None, 1}
    for head in fp32:
        assert max_diff(fp32[head], bf16[head]) < 0.02  # nats per token (measured ~0.006)
    assert all(p.dtype == torch.float32 for p in model.parameters())  # weights never cast
    # the bound discriminates: bf16 weights (LayerNorm and residual included) are an order worse
    from impossible_lms.models import build_model

    low = build_model(model.config).eval()
    low.load_state_dict(model.state_dict())
    low = low.to(torch.bfloat16)
    assert max_diff(fp32[None], score_sequences(low, seqs)[None]) > 0.05


def test_autocast_runs_the_trunk_low_and_the_heads_in_fp32(sharp_model, monkeypatch):
    model, seqs = sharp_model
    seen = {"final": set(), "exits": set()}
    block = model.transformer.h[0].mlp.c_fc
    def trunk(module, inputs, out):
        seen["trunk"] = out.dtype

    # the scorer runs the projections on its own (only where log-probs are asked for): watch them there
    logits = LinearHead.logits
    final_weight = model.output_weight().data_ptr()
    def watched(self, x, words=slice(None)):
        out = logits(self, x, words)
        seen["final" if self.weight.data_ptr() == final_weight else "exits"].add(out.dtype)
        return out

    monkeypatch.setattr(LinearHead, "logits", watched)
    hook = block.register_forward_hook(trunk)
    try:
        score_sequences(model, seqs[:2], ScoreOptions(dtype="bf16"))
    finally:
        hook.remove()
    assert seen == {"trunk": torch.bfloat16, "final": {torch.float32}, "exits": {torch.float32}}
    # the instance is left as it was: no wrapper stays behind
    assert "output_logits" not in vars(model) and all("forward" not in vars(h) for h in model.exits.values())


def test_a_hugging_face_head_is_fp32_under_autocast():
    model = tiny_gpt2()
    x = torch.tensor([[1, 2, 3, 4]])
    with fp32_heads(model, "cpu"), torch.autocast("cpu", dtype=torch.bfloat16):
        assert model(x).logits.dtype == torch.float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert model(x).logits.dtype == torch.bfloat16  # unwrapped again
    assert "forward" not in vars(model.get_output_embeddings())


def test_fp32_scoring_turns_tf32_off_and_restores_the_setting():
    model = tiny_gpt2()
    seen = []
    hook = model.register_forward_pre_hook(lambda m, a: seen.append(torch.get_float32_matmul_precision()))
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("medium")
    try:
        score_sequences(model, [[1, 2, 3]])
        with precision(model, "bf16"):
            seen.append(torch.get_float32_matmul_precision())
        assert torch.get_float32_matmul_precision() == "medium"
    finally:
        torch.set_float32_matmul_precision(before)
        hook.remove()
    assert seen == ["highest", "highest"]


def test_rows_record_the_dtype_and_settings_do_not_share_stored_files(tmp_path):
    data = make_toy_data(tmp_path / "data", per_genre=4)
    run = make_toy_run(tmp_path / "run", steps=(100,), data=data)
    fp32 = evaluate(run, data, metrics=["perplexity"], results=tmp_path / "res")
    bf16 = evaluate(run, data, metrics=["perplexity"], results=tmp_path / "res", dtype="bf16")
    assert set(fp32["dtype"]) == {"float32"} and set(bf16["dtype"]) == {"bfloat16"}
    assert len(list((tmp_path / "res").rglob("*.parquet"))) == 2 * 3  # per dtype, one file per perplexity subset
    np.testing.assert_allclose(fp32["value"], bf16["value"], rtol=1e-2)
