"""Recipe defaults, the LR schedule, YAML + overrides, batch planning."""

from __future__ import annotations

import pytest
import torch

from impossible_lms.config import save_config
from impossible_lms.errors import ILMError
from impossible_lms.training import TrainConfig, lr_at, plan_batch
from impossible_lms.training.config import ScheduleConfig, load_train_config, resolve_train_config
from impossible_lms.training.run import checkpoint_steps

CPU = torch.device("cpu")


def test_defaults_are_the_reference_recipe():
    cfg = TrainConfig()
    assert (cfg.schedule.steps, cfg.schedule.warmup_steps, cfg.schedule.decay) == (3000, 300, "linear")
    assert cfg.batch.tokens == 2**19
    assert (cfg.optim.lr, cfg.optim.weight_decay, cfg.optim.grad_clip) == (6e-4, 0.1, 1.0)
    assert tuple(cfg.optim.betas) == (0.9, 0.999)
    assert checkpoint_steps(cfg) == list(range(100, 3001, 100))


def test_linear_schedule_values():
    s = ScheduleConfig()
    assert lr_at(0, 6e-4, s) == 0.0
    assert lr_at(150, 6e-4, s) == pytest.approx(3e-4)
    assert lr_at(300, 6e-4, s) == pytest.approx(6e-4)
    assert lr_at(1650, 6e-4, s) == pytest.approx(3e-4)
    assert lr_at(2999, 6e-4, s) == pytest.approx(6e-4 / 2700)
    assert lr_at(3000, 6e-4, s) == 0.0


def test_linear_schedule_matches_hugging_face_linear_with_warmup():
    from transformers import get_linear_schedule_with_warmup

    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=6e-4)
    sched = get_linear_schedule_with_warmup(opt, num_warmup_steps=30, num_training_steps=200)
    s = ScheduleConfig(steps=200, warmup=30)
    for step in range(200):
        assert lr_at(step, 6e-4, s) == pytest.approx(opt.param_groups[0]["lr"], abs=1e-12), step
        opt.step()
        sched.step()


def test_cosine_and_constant_decays():
    s = ScheduleConfig(steps=110, warmup=10, decay="cosine")
    assert lr_at(60, 1.0, s) == pytest.approx(0.5)
    assert lr_at(110, 1.0, s) == pytest.approx(0.0)
    assert lr_at(100, 1.0, ScheduleConfig(steps=110, warmup=10, decay="constant")) == 1.0


def test_warm_up_longer_than_the_run_follows_hugging_face():
    """The paper's 4000-step warm-up ablation of a 3000-step run: the lr is still rising at the end,
    exactly as transformers' get_linear_schedule_with_warmup gives."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    s = ScheduleConfig(steps=3000, warmup=4000)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = get_linear_schedule_with_warmup(opt, num_warmup_steps=4000, num_training_steps=3000)
    for step in range(3000):
        assert lr_at(step, 1.0, s) == pytest.approx(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    assert lr_at(2999, 1.0, s) == pytest.approx(2999 / 4000)


def test_bad_schedule_is_a_user_error():
    with pytest.raises(ILMError, match=r"^schedule.warmup must be at least 0, got -1$"):
        ScheduleConfig(steps=10, warmup=-1)
    with pytest.raises(ILMError, match="^schedule.steps must be at least 1, got 0$"):
        ScheduleConfig(steps=0)
    with pytest.raises(ILMError, match="^schedule.decay 'cosin' is not one of linear, cosine, constant$"):
        ScheduleConfig(decay="cosin")


def test_the_config_names_every_decay_the_schedule_has():
    from impossible_lms.training.config import DECAY_NAMES
    from impossible_lms.training.schedule import DECAYS

    assert tuple(DECAYS) == DECAY_NAMES


def test_yaml_then_set_then_flags(tmp_path):
    yaml_file = tmp_path / "t.yaml"
    yaml_file.write_text("model: tiny-gpt2\nseed: 3\noptim: {lr: 1.0e-3}\nschedule: {steps: 50}\n")
    cfg = resolve_train_config(yaml_file, ["optim.lr=3e-4", "seed=5", "checkpoint.at=[7, 9]"],
                               {"seed": 9, "schedule.steps": None, "data": tmp_path})
    assert (cfg.model, cfg.seed, cfg.optim.lr, cfg.schedule.steps, cfg.data) == ("tiny-gpt2", 9, 3e-4, 50, tmp_path)
    assert checkpoint_steps(cfg) == [7, 9, 50]


def test_saved_config_round_trips(tmp_path):
    cfg = resolve_train_config(None, ["optim.betas=[0.9, 0.95]", "model_overrides={n_layer: 3}", "batch.micro=4"])
    save_config(cfg, tmp_path / "config.yaml")
    assert load_train_config(tmp_path / "config.yaml") == cfg


def test_unknown_field_names_the_nearest():
    with pytest.raises(ILMError, match=r"unknown config field 'optim.lrr' \(did you mean 'lr'\?\)"):
        resolve_train_config(None, ["optim.lrr=1"])


def test_batch_plan_reference_and_errors():
    cfg = TrainConfig()
    plan = plan_batch(cfg, 1024, 1, CPU)
    assert (plan.global_batch, plan.micro, plan.accumulation, plan.tokens_per_step) == (512, 8, 64, 2**19)
    cfg.batch.micro = 16
    plan = plan_batch(cfg, 1024, 4, CPU)
    assert (plan.micro, plan.accumulation) == (16, 8)
    cfg.batch.micro = 48
    with pytest.raises(ILMError, match="micro-batch 48 does not divide"):
        plan_batch(cfg, 1024, 1, CPU)
    with pytest.raises(ILMError, match="not a multiple of the context length 1000"):
        plan_batch(TrainConfig(), 1000, 1, CPU)
    cfg = resolve_train_config(None, ["batch.sequences=6"])
    with pytest.raises(ILMError, match="6 sequences does not divide over 4 processes"):
        plan_batch(cfg, 128, 4, CPU)
    assert plan_batch(cfg, 128, 1, CPU).micro == 6
