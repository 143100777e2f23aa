"""The flash_attn backend, run on CPU through a stand-in that asserts flash-attn 2's call contract."""

from __future__ import annotations

import pytest
import torch

from impossible_lms.models import build_model, model_config
from impossible_lms.models.attention import AttnMask, attend

import fake_flash_attn

V = 101
TINY = ["tiny-gpt2", "tiny-gpt2-nopos", "tiny-gpt2-rotary", "tiny-gpt2-alibi"]
BF16 = dict(atol=3e-2, rtol=3e-2)


@pytest.fixture(autouse=True)
def flash(monkeypatch):
    fake_flash_attn.install(monkeypatch)
    return fake_flash_attn.CALLS


def pair(name: str):
    """The same weights with the flash_attn and the eager backend, in bf16."""
    torch.manual_seed(0)
    model = build_model(model_config(name, vocab_size=V, attention="flash_attn")).eval().to(torch.bfloat16)
    torch.manual_seed(0)
    ref = build_model(model_config(name, vocab_size=V, attention="eager")).eval().to(torch.bfloat16)
    return model, ref


def ids(b=2, t=12, seed=1):
    return torch.randint(0, V, (b, t), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", TINY)
def test_causal_and_alibi_match_eager(name, flash):
    model, ref = pair(name)
    torch.testing.assert_close(model(ids()).logits, ref(ids()).logits, **BF16)
    assert set(flash) == {"flash_attn_func"}


@pytest.mark.parametrize("name", TINY)
@pytest.mark.parametrize("side", ["right", "left"])
def test_padding_matches_eager_through_varlen(name, side, flash):
    model, ref = pair(name)
    mask = torch.ones(2, 12, dtype=torch.long)
    mask[1, 8:] = 0 if side == "right" else 1
    if side == "left":
        mask[1, :4] = 0
    real = mask.bool()
    a, b = model(ids(), attention_mask=mask).logits, ref(ids(), attention_mask=mask).logits
    torch.testing.assert_close(a[real], b[real], **BF16)
    assert "flash_attn_varlen_func" in flash


@pytest.mark.parametrize("name", TINY)
def test_packed_documents_with_a_reappearing_id_match_eager(name, flash):
    """[0,0,0,1,1,1,0,0,...]: the second run of 0 is its own document in both backends."""
    model, ref = pair(name)
    docs = torch.tensor([[0] * 3 + [1] * 4 + [0] * 5, [2] * 12])
    a, b = model(ids(), document_ids=docs).logits, ref(ids(), document_ids=docs).logits
    torch.testing.assert_close(a, b, **BF16)
    alone = ref(ids()[:1, 7:]).logits  # the last run, scored as a sequence of its own
    torch.testing.assert_close(b[:1, 7:], alone, **BF16)
    assert "flash_attn_varlen_func" in flash


@pytest.mark.parametrize("name", TINY)
def test_kv_cache_decoding_matches_the_full_forward(name, flash):
    model, _ = pair(name)
    x = ids(1, 9)
    full = model(x).logits
    out = model(x[:, :6], use_cache=True)
    step = model(x[:, 6:7], cache=out.cache, use_cache=True)
    step2 = model(x[:, 7:9], cache=step.cache)  # 2 queries over 9 keys: bottom-right causal alignment
    torch.testing.assert_close(step.logits[:, 0], full[:, 6], **BF16)
    torch.testing.assert_close(step2.logits, full[:, 7:9], **BF16)


def test_batched_left_padded_generation_falls_back_to_sdpa_under_a_cache(flash):
    model, ref = pair("tiny-gpt2")
    x, mask = torch.tensor([[0, 2, 3], [4, 5, 6]]), torch.tensor([[0, 1, 1], [1, 1, 1]])
    a = model.generate(x, attention_mask=mask, max_new_tokens=4, do_sample=False)
    b = ref.generate(x, attention_mask=mask, max_new_tokens=4, do_sample=False)
    assert a.tolist() == b.tolist()


def test_eager_documents_are_runs_of_equal_ids():
    """Eager and varlen agree: a reappearing id starts a new segment, it does not rejoin the first."""
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 2, 5, 4) for _ in range(3))
    out = attend("eager", q, k, v, AttnMask(5, 5, document_ids=torch.tensor([[0, 0, 1, 1, 0]])), scale=0.5)
    torch.testing.assert_close(out[:, :, 4], v[:, :, 4])  # the last token sees only itself


def test_stand_in_refuses_what_flash_attn_refuses():
    q = torch.randn(1, 4, 2, 8)
    with pytest.raises(AssertionError, match="fp16/bf16"):
        fake_flash_attn.flash_attn_func(q, q, q, causal=True)
    h = q.bfloat16()
    with pytest.raises(AssertionError, match="fp32"):
        fake_flash_attn.flash_attn_func(h, h, h, causal=True, alibi_slopes=torch.ones(2, dtype=torch.bfloat16))
    flat = h[0]
    with pytest.raises(AssertionError, match="int32"):
        fake_flash_attn.flash_attn_varlen_func(flat, flat, flat, torch.tensor([0, 4]), torch.tensor([0, 4]), 4, 4)
    cu = torch.tensor([0, 4], dtype=torch.int32)
    with pytest.raises(AssertionError, match="Python int"):
        fake_flash_attn.flash_attn_varlen_func(flat, flat, flat, cu, cu, torch.tensor(4), 4)
    with pytest.raises(AssertionError, match="contiguous"):
        t = torch.randn(1, 8, 2, 4).bfloat16().transpose(1, 3)  # [1, 4, 2, 8] with a strided last dim
        fake_flash_attn.flash_attn_func(t, t, t, causal=True)
