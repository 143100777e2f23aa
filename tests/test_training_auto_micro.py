"""auto_micro sizes micro-batches from each config's own activation estimate (Backpack's sense tensors too)."""

import torch

from impossible_lms.models import build_model, model_config
from impossible_lms.training.loop import auto_micro

GiB = 2**30


def _micro(monkeypatch, model, free, per_rank=64, context=512):
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free, 80 * GiB))
    return auto_micro(per_rank, context, torch.device("cuda"), model)


def test_backpack_estimate_counts_the_sense_tensors():
    gpt, bp = model_config("gpt2", vocab_size=50264, n_positions=512), model_config("backpack-gpt2")
    d, k, T = 768, 16, 512
    extra = bp.activation_bytes_per_sequence(T) - gpt.activation_bytes_per_sequence(T)
    assert extra == T * 2 * (2 * 4 * d + 3 * k * d) + 4 * k * T * T
    assert gpt.activation_bytes_per_sequence(T) == 34 * T * d * 12 + 12 * T * 50264


def test_auto_micro_uses_the_config_estimate(monkeypatch):
    tiny = model_config("tiny-backpack", vocab_size=300)
    model = build_model(tiny)
    n = sum(p.numel() for p in model.parameters())
    per_seq = tiny.activation_bytes_per_sequence(512)
    free = int((16 * n + 5.5 * per_seq) / 0.7)  # room for 5 sequences, not 6
    assert _micro(monkeypatch, model, free) == 4  # the largest divisor of 64 that is <= 5
    monkeypatch.setattr(type(tiny), "activation_bytes_per_sequence", lambda self, c: per_seq // 8)
    assert _micro(monkeypatch, model, free) == 32  # 44 fit: the estimate is what decides
