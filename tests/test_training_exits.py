"""Training objectives for multi-exit models: the heads really train, a frozen trunk stays frozen, DDP works."""

from __future__ import annotations

import json
import os
import socket

import pytest
import torch
from safetensors.torch import load_file

from impossible_lms.errors import ILMError
from impossible_lms.training import train
from impossible_lms.training.config import resolve_train_config
from impossible_lms.training.toy import make_toy_dataset

SHAPE = "n_layer: 3, n_positions: 32, n_embd: 32, n_head: 2"
NO_DROPOUT = "resid_pdrop: 0, embd_pdrop: 0, attn_pdrop: 0"
EXITS = f"model_overrides={{{SHAPE}, exit_layers: [1, 2]}}"
BASE = ["batch.sequences=4", "batch.micro=2", "schedule.warmup=2", "logging.every=1", "device=cpu",
        "optim.lr=3e-3"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    # Sentences that repeat a few patterns, so there is something for a 30-step model to learn.
    rows = [[(3 * i + k) % 20 for k in range(12)] for i in range(40)] * 4
    return make_toy_dataset(tmp_path_factory.mktemp("data") / "toy", vocab_size=64, train=rows)


def config(data, out, *more):
    return resolve_train_config(None, [*BASE, f"data={data}", f"out={out}", *more])


def rows(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def weights(checkpoint):
    return load_file(str(checkpoint / "model.safetensors"))


def initial_weights(cfg):
    """The weights the trainer starts from (same seed, same construction)."""
    from impossible_lms.training.loop import seed_everything
    from impossible_lms.training.model import model_for_training

    seed_everything(cfg.seed)
    return {k: v.clone() for k, v in model_for_training(cfg, 64, 63).state_dict().items()}


def falls(values):
    return sum(values[-5:]) / 5 < sum(values[:5]) / 5 - 0.5


@pytest.fixture(scope="module")
def joint_run(data, tmp_path_factory):
    cfg = config(data, tmp_path_factory.mktemp("joint"), "model=tiny-gpt2-exits", EXITS, "objective=lm+exits",
                 "schedule.steps=30", "checkpoint.every=30")
    return cfg, train(cfg, progress=False)


def test_joint_objective_trains_every_exit_head_and_each_loss_falls(joint_run):
    cfg, run = joint_run
    before, after = initial_weights(cfg), weights(run / "checkpoint-30")
    heads = sorted(k for k in before if k.startswith("exits."))
    assert heads == [f"exits.{l}.proj.weight" for l in (1, 2)]  # exit_norm="shared": ln_f is the trunk's
    assert [k for k in heads if torch.equal(before[k], after[k])] == []  # every exit tensor moved
    assert not torch.equal(before["transformer.h.0.mlp.c_fc.weight"], after["transformer.h.0.mlp.c_fc.weight"])
    log = rows(run)
    assert {"exit_loss_1", "exit_loss_2"} <= set(log[0])
    for key in ("loss", "exit_loss_1", "exit_loss_2"):
        assert falls([r[key] for r in log]), key
    assert json.loads((run / "run.json").read_text())["objective"] == "lm+exits"


def test_the_model_reports_each_exit_heads_own_loss(joint_run):
    """exit_losses[l] is head l's next-token loss, exit_loss their mean (what the objectives read)."""
    from impossible_lms.models import load_model

    cfg, run = joint_run
    model = load_model(run / "checkpoint-30")
    x = torch.tensor([[(3 * 5 + k) % 20 for k in range(12)]])
    with torch.no_grad():
        out = model(x, labels=x, output_exit_logits=True)
    for layer in (1, 2):
        logp = out.exit_logits[layer][0, :-1].log_softmax(-1)
        by_hand = -logp[torch.arange(11), x[0, 1:]].mean()
        assert float(out.exit_losses[layer]) == pytest.approx(float(by_hand), abs=1e-5)
    assert float(out.exit_loss) == pytest.approx(float(sum(out.exit_losses.values())) / 2, abs=1e-6)


def test_frozen_trunk_leaves_every_trunk_weight_bit_identical(data, tmp_path):
    plain = f"model_overrides={{{SHAPE}}}"
    source = train(config(data, tmp_path / "lm", "model=tiny-gpt2", plain, "schedule.steps=4",
                          "checkpoint.every=4"), progress=False)
    cfg = config(data, tmp_path / "heads", "model=tiny-gpt2-exits", EXITS, "objective=exits",
                 f"init_from={source}", "schedule.steps=30", "checkpoint.every=30")
    run = train(cfg, progress=False)
    trunk, after = weights(source / "checkpoint-4"), weights(run / "checkpoint-30")
    assert set(after) - set(trunk) == {k for k in after if k.startswith("exits.")}
    assert [k for k in trunk if not torch.equal(trunk[k], after[k])] == []
    fresh = initial_weights(resolve_train_config(None, [*BASE, f"data={data}", "model=tiny-gpt2-exits", EXITS,
                                                        "objective=exits"]))
    assert [k for k in after if k.startswith("exits.") and torch.equal(fresh[k], after[k])] == []
    log = rows(run)
    assert falls([r["exit_loss_1"] for r in log]) and falls([r["exit_loss_2"] for r in log])


def test_objective_and_model_must_fit(data, tmp_path):
    cases = [
        (["model=tiny-gpt2-exits"], r"^objective 'lm' would leave the exit heads of tiny-gpt2-exits untrained; "
                                    r"set objective to lm\+exits \(joint\) or exits \(trunk frozen\)$"),
        (["model=tiny-gpt2", "objective=exits"], r"^objective 'exits' trains exit heads, but model tiny-gpt2 has none"),
        (["model=tiny-backpack", "objective=lm+exits"], r"^objective 'lm\+exits' trains exit heads, but model "),
    ]
    for more, message in cases:
        with pytest.raises(ILMError, match=message):
            train(config(data, tmp_path, "schedule.steps=2", *more), progress=False)
    assert not tmp_path.joinpath("toy").exists()  # refused before any run folder was made
    with pytest.raises(ILMError, match=r"^objective 'exit' \(did you mean 'exits'\?\) is not one of lm, lm\+exits, exits$"):
        config(data, tmp_path, "objective=exit")


def test_init_from_refuses_a_trunk_that_computes_something_else(data, tmp_path):
    nopos = train(config(data, tmp_path / "a", "model=tiny-gpt2-nopos", f"model_overrides={{{SHAPE}}}",
                         "schedule.steps=2"), progress=False)
    cfg = config(data, tmp_path / "b", "model=tiny-gpt2-exits", EXITS, "objective=exits", f"init_from={nopos}",
                 "schedule.steps=2")
    with pytest.raises(ILMError, match=r"its position is 'none', the model's 'learned'$"):
        train(cfg, progress=False)
    wide = train(config(data, tmp_path / "c", "model=tiny-gpt2", "model_overrides={n_positions: 32}",
                        "schedule.steps=2"), progress=False)
    cfg = config(data, tmp_path / "d", "model=tiny-gpt2-exits", EXITS, "objective=exits", f"init_from={wide}",
                 "schedule.steps=2")
    with pytest.raises(ILMError, match=r"weights do not fit the model \(missing \['transformer.h.2.attn.c_attn.bias'.*"
                                         r"other shapes \['transformer.h.0.attn.c_attn.bias'"):
        train(cfg, progress=False)


def test_contrastive_decoding_differs_from_greedy_on_the_trained_model(joint_run):
    from impossible_lms.models import load_model
    from impossible_lms.models.generate import generate_ids, parse_contrast

    _, run = joint_run
    model = load_model(run / "checkpoint-30")
    layers = parse_contrast("final,1", model)
    prompts = [torch.tensor([[(3 * i + k) % 20 for k in range(4)]]) for i in range(6)]
    greedy = [generate_ids(model, p, 8) for p in prompts]
    contrast = [generate_ids(model, p, 8, contrast=layers) for p in prompts]
    assert all(len(g) == len(c) == 8 for g, c in zip(greedy, contrast))
    assert sum(g != c for g, c in zip(greedy, contrast)) >= 1
    # and greedy follows the pattern the model learned, so the difference is not noise from an untrained model
    learned = [[(3 * i + 4 + k) % 20 for k in range(8)] for i in range(6)]
    assert sum(g[:2] == want[:2] for g, want in zip(greedy, learned)) >= 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, cfgs) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    for cfg in cfgs:
        train(cfg, progress=False)


@pytest.mark.slow
def test_ddp_two_gloo_processes_train_exit_heads_as_one_process_does(data, tmp_path):
    exits = f"model_overrides={{{SHAPE}, {NO_DROPOUT}, exit_layers: [1, 2]}}"
    source = train(config(data, tmp_path / "lm", "model=tiny-gpt2", f"model_overrides={{{SHAPE}, {NO_DROPOUT}}}",
                          "schedule.steps=2"), progress=False)
    objectives = {"joint": ["objective=lm+exits"], "heads": ["objective=exits", f"init_from={source}"]}
    common = ["model=tiny-gpt2-exits", exits, "schedule.steps=4", "checkpoint.every=4"]
    one = {k: train(config(data, tmp_path / "one" / k, *common, *v), progress=False) for k, v in objectives.items()}
    two_cfgs = [config(data, tmp_path / "two" / k, *common, *v, "batch.micro=1") for k, v in objectives.items()]
    torch.multiprocessing.spawn(_ddp_worker, args=(2, _free_port(), two_cfgs), nprocs=2, join=True)
    for k in objectives:
        two = tmp_path / "two" / k / "toy" / "tiny-gpt2-exits" / "seed0"
        assert json.loads((two / "run.json").read_text())["world_size"] == 2
        for key in ("loss", "exit_loss_1", "exit_loss_2"):
            assert [r[key] for r in rows(two)] == pytest.approx([r[key] for r in rows(one[k])], abs=1e-5)
        a, b = weights(one[k] / "checkpoint-4"), weights(two / "checkpoint-4")
        for name in a:
            torch.testing.assert_close(a[name], b[name], atol=1e-5, rtol=1e-4)
