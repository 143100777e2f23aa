"""`ilm generate` / `ilm senses` and their library functions, on tiny models and a word tokenizer."""

from __future__ import annotations

import json

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, decoders
from typer.testing import CliRunner

from cli.main import app
from impossible_lms.errors import ILMError
from impossible_lms.models import build_model, model_config
from impossible_lms.models.generate import (
    contrastive_scores, find_tokenizer, generate_ids, generate_text, parse_contrast, resolve_checkpoint, sense_table,
)
from impossible_lms.tokenizer import MarkedTokenizer

WORDS = ["<|endoftext|>", "He", "She", "clean", "cleans", "the", "dog", "cat", "."] + [f"w{i}" for i in range(40)]


def word_tokenizer(folder):
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<|endoftext|>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    return MarkedTokenizer(tok, "words").save(folder)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A run folder laid out like training's: run.json → data/<lang>/tokenizer, checkpoint-<step>/."""
    root = tmp_path_factory.mktemp("gen")
    word_tokenizer(root / "data" / "lang" / "tokenizer")
    run = root / "runs" / "lang" / "tiny" / "seed0"
    torch.manual_seed(0)
    for step in (10, 20):
        build_model(model_config("tiny-gpt2-exits", vocab_size=len(WORDS))).save_pretrained(run / f"checkpoint-{step}")
    (run / "run.json").write_text(json.dumps({"format": "ilm-run/1", "data": str(root / "data" / "lang")}))
    torch.manual_seed(0)
    build_model(model_config("tiny-backpack", vocab_size=len(WORDS))).save_pretrained(root / "backpack")
    word_tokenizer(root / "backpack" / "tokenizer")
    return root, run


def test_run_folder_resolves_to_latest_checkpoint_and_its_tokenizer(run):
    root, run_dir = run
    assert resolve_checkpoint(run_dir).name == "checkpoint-20"
    assert find_tokenizer(run_dir / "checkpoint-20") == root / "data" / "lang" / "tokenizer"
    assert find_tokenizer(root / "backpack") == root / "backpack" / "tokenizer"
    with pytest.raises(ILMError, match="no tokenizer found"):
        find_tokenizer(root / "data")


def test_generate_text_is_the_models_greedy_continuation(run):
    """Greedy continuation, stopping after EOS (the tiny random model emits it first for one prompt)."""
    _, run_dir = run
    from impossible_lms.models import load_model

    model = load_model(run_dir / "checkpoint-20")
    lengths = []
    for prompt in ("He clean the", "She dog"):
        result = generate_text(run_dir, prompt, max_new_tokens=4)
        ids = torch.tensor([[WORDS.index(w) for w in prompt.split()]])
        expected = []
        for _ in range(4):
            nxt = int(model(ids).logits[0, -1].argmax())
            expected.append(nxt)
            if nxt == 0:
                break
            ids = torch.cat((ids, torch.tensor([[nxt]])), 1)
        assert result.ids == expected
        assert result.text.strip() == " ".join(WORDS[i] for i in expected)
        lengths.append(len(expected))
    assert 4 in lengths


def ibm_contrast(upper, lower, alpha=0.1, minimum_candidates=1):
    """Gera et al.'s rule in the probability domain, transcribed from its description: plausible =
    p_upper >= min(alpha * max p_upper, the k-th largest p_upper); their mass redistributed by
    softmax(log p_upper - log p_lower); every other token keeps p_upper; log of the result."""
    p_u, p_l = upper.softmax(-1), lower.softmax(-1)
    threshold = torch.minimum(p_u.max(-1, keepdim=True).values * alpha,
                              p_u.sort(-1, descending=True).values[..., minimum_candidates - 1:minimum_candidates])
    keep = p_u >= threshold
    scores = torch.where(keep, torch.log(p_u) - torch.log(p_l), torch.tensor(-float("inf")))
    mass = torch.where(keep, p_u, torch.zeros_like(p_u)).sum(-1, keepdim=True)
    return torch.log(torch.where(keep, scores.softmax(-1) * mass, p_u))


def test_contrastive_scores_rule():
    final = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    amateur = torch.log(torch.tensor([0.7, 0.1, 0.1, 0.1]))
    s = contrastive_scores(final, amateur, alpha=0.2)  # plausible: p ≥ 0.1 → tokens 0, 1, 2
    torch.testing.assert_close(s[3], final[3])  # outside the plausible set: the expert's own log-prob
    torch.testing.assert_close(s.exp().sum(), torch.tensor(1.0))  # a distribution: sampling and scoring work
    torch.testing.assert_close(s[:3].exp().sum(), torch.tensor(0.95))  # the plausible mass, redistributed
    assert int(s.argmax()) == 1  # the amateur's favourite loses to the token the expert alone likes


@pytest.mark.parametrize("alpha, k", [(0.1, 1), (0.5, 1), (0.9, 3)])
def test_contrastive_scores_equal_the_ibm_rule_on_random_logits(alpha, k):
    torch.manual_seed(0)
    upper, lower = torch.randn(5, 50) * 3, torch.randn(5, 50) * 3
    torch.testing.assert_close(contrastive_scores(upper, lower, alpha, k), ibm_contrast(upper, lower, alpha, k),
                               atol=1e-5, rtol=1e-5)


def test_final_always_means_the_lm_head(tmp_path):
    """With an exit head on the top layer too, "final" is the LM head, not that exit head."""
    from impossible_lms.models import build_model, model_config

    torch.manual_seed(0)
    model = build_model(model_config("tiny-gpt2", vocab_size=40, exit_layers=[1, 2])).eval()
    assert parse_contrast("final,1", model) == ("final", 1) and parse_contrast("2,1", model) == (2, 1)
    x = torch.tensor([[1, 3, 5]])
    out = model(x, output_exit_logits=True)
    assert not torch.allclose(out.logits[0, -1], out.exit_logits[2][0, -1])  # two different heads
    new = generate_ids(model, x, 1, contrast=("final", 1))
    assert new[0] == int(contrastive_scores(out.logits[0, -1], out.exit_logits[1][0, -1]).argmax())


def test_contrastive_generation_uses_the_chosen_heads(run):
    _, run_dir = run
    from impossible_lms.models import load_model

    model = load_model(run_dir / "checkpoint-20")
    assert parse_contrast("final,1", model) == ("final", 1) and parse_contrast("auto", model) == ("final", 1)
    assert parse_contrast("2,1", model) == ("final", 1)  # the top layer without an exit head: the LM head
    x = torch.tensor([[1, 3]])
    new = generate_ids(model, x, 3, contrast=("final", 1), alpha=0.1)
    out = model(x, output_exit_logits=True)
    assert new[0] == int(contrastive_scores(out.logits[0, -1], out.exit_logits[1][0, -1], 0.1).argmax())
    with pytest.raises(ILMError, match="layer '3' has no head"):
        parse_contrast("final,3", model)
    with pytest.raises(ILMError, match="expected FINAL,EXIT"):
        parse_contrast("final", model)


def test_cli_generate_and_errors(run):
    root, run_dir = run
    r = CliRunner().invoke(app, ["generate", str(run_dir), "--prompt", "He clean", "-n", "3", "--contrast", "final,1"])
    assert r.exit_code == 0, r.output
    assert r.output.startswith("He clean")
    r = CliRunner().invoke(app, ["generate", str(root / "backpack"), "--prompt", "He", "--contrast", "auto"])
    assert r.exit_code == 1 and "needs a model with exit heads" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(app, ["generate", str(root / "missing"), "--prompt", "He"])
    assert r.exit_code == 1 and "model folder not found" in r.output


def test_senses_library_and_cli(run):
    root, run_dir = run
    rows = sense_table(root / "backpack", "dog", top=3)
    assert len(rows) == 4 and all(len(r) == 3 and all(t in WORDS for t in r) for r in rows)
    r = CliRunner().invoke(app, ["senses", str(root / "backpack"), "dog", "--top", "2"])
    assert r.exit_code == 0 and "senses of 'dog'" in r.output
    r = CliRunner().invoke(app, ["senses", str(run_dir), "dog"])
    assert r.exit_code == 1 and "not a Backpack" in r.output
    r = CliRunner().invoke(app, ["senses", str(root / "backpack"), "dog cat"])
    assert r.exit_code == 1 and "2 tokens" in r.output
