"""Interchange interventions: known answers on a hand-built model, the block hooks, the stored rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn

from impossible_lms.analysis.agreement import AgreementData
from impossible_lms.analysis.intervene import interchange_wins, intervene
from impossible_lms.errors import ILMError
from impossible_lms.models import build_model, model_config
from impossible_lms.models.hooks import patch_block, record_blocks

SG, PL, VOCAB = 8, 9, 10


class Identity(nn.Module):
    def forward(self, x):
        return x


class ReadsPositionOne(nn.Module):
    """Identity blocks; the last position's logits read only position 1's final state (the subject).

    Token 3 (a plural subject) embeds as +1 on dim 0, anything else as -1, so
    the prediction is PL exactly when position 1 holds a plural state.
    """

    def __init__(self, layers: int = 3):
        super().__init__()
        self.transformer = nn.Module()
        self.transformer.h = nn.ModuleList(Identity() for _ in range(layers))
        self.emb = nn.Embedding(VOCAB, 2)
        with torch.no_grad():
            self.emb.weight.fill_(0.0)
            self.emb.weight[:, 0] = -1.0
            self.emb.weight[3, 0] = 1.0
            self.emb.weight[:, 1] = torch.arange(VOCAB).float()  # other tokens carry noise that must not matter

    def forward(self, input_ids):
        x = self.emb(input_ids)
        for block in self.transformer.h:
            x = block(x)
        logits = torch.zeros(*input_ids.shape, VOCAB)
        logits[:, -1, PL] = x[:, 1, 0]
        logits[:, -1, SG] = -x[:, 1, 0]

        class Out:
            pass

        out = Out()
        out.logits = logits
        return out


def test_only_the_subject_position_carries_number():
    base = [[0, 2, 4, 5, 6], [1, 2, 5, 4, 7], [0, 2, 6, 6, 6]]  # singular subject 2
    source = [[0, 3, 4, 5, 6], [1, 3, 5, 4, 7], [0, 3, 6, 6, 6]]  # plural subject 3
    wins = interchange_wins(ReadsPositionOne(), base, source, SG, PL, batch_rows=4)  # several batches
    assert wins.shape == (3, 5, 3)
    iia = wins.mean(axis=2) * 100
    expected = np.zeros((3, 5))
    expected[:, 1] = 100.0
    np.testing.assert_array_equal(iia, expected)


def _tiny(name="tiny-gpt2", **kw):
    torch.manual_seed(0)
    return build_model(model_config(name, vocab_size=VOCAB, **kw)).eval()


def _pairs(n=6, width=5, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, SG, (n, width)).tolist()
    source = rng.integers(0, SG, (n, width)).tolist()
    return base, source


def test_swapping_every_position_of_the_last_layer_gives_the_source_prediction():
    model = _tiny()
    base, source = _pairs()
    b, s = torch.tensor(base), torch.tensor(source)
    last = model.config.n_layer - 1
    with torch.no_grad():
        with record_blocks(model, [last]) as states:
            want = model(input_ids=s).logits
        rows = torch.arange(len(base)).repeat_interleave(5)
        pos = torch.arange(5).repeat(len(base))
        with patch_block(model, last, rows, pos, states[last][rows, pos]):
            got = model(input_ids=b).logits
        plain = model(input_ids=b).logits  # the hook is gone after the with
    torch.testing.assert_close(got, want)
    assert not torch.allclose(plain, want)
    # and one position at a time: the last position of the last layer is the source's own answer
    wins = interchange_wins(model, base, source, SG, PL)
    np.testing.assert_array_equal(wins[last, -1], (want[:, -1, PL] > want[:, -1, SG]).numpy())


def _looped(model, base, source):
    """The reference's way: one forward per (pair, layer, position)."""
    layers = model.config.n_layer
    width = len(base[0])
    wins = np.zeros((layers, width, len(base)), bool)
    with torch.no_grad():
        for i, (b, s) in enumerate(zip(base, source)):
            with record_blocks(model, range(layers)) as states:
                model(input_ids=torch.tensor([s]))
            for layer in range(layers):
                for p in range(width):
                    with patch_block(model, layer, torch.tensor([0]), torch.tensor([p]), states[layer][0, p][None]):
                        logits = model(input_ids=torch.tensor([b])).logits[0, -1]
                    wins[layer, p, i] = bool(logits[PL] > logits[SG])
    return wins


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-gpt2-nopos", "tiny-backpack", "tiny-gpt2-exits"])
def test_batched_positions_equal_one_forward_each(name):
    model = _tiny(name)
    base, source = _pairs(n=5, width=4, seed=1)
    np.testing.assert_array_equal(interchange_wins(model, base, source, SG, PL, batch_rows=8),
                                  _looped(model, base, source))


def test_hooks_read_hidden_states_and_hf_gpt2_tuples():
    from impossible_lms.evaluation.toy import tiny_gpt2

    ours = _tiny()
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad(), record_blocks(ours, [0, 1]) as states:
        hidden = ours(input_ids=ids, output_hidden_states=True).hidden_states
    torch.testing.assert_close(states[0], hidden[1])
    torch.testing.assert_close(states[1], hidden[2])
    hf = tiny_gpt2(vocab_size=VOCAB)  # Hugging Face GPT-2: blocks return tuples
    with torch.no_grad(), record_blocks(hf, [0]) as states:
        want = hf(input_ids=ids, output_hidden_states=True).hidden_states
    torch.testing.assert_close(states[0], want[1])  # (HF's last entry has ln_f applied)
    with pytest.raises(ILMError, match="outside the model's blocks"):
        with record_blocks(ours, [5]):
            pass
    with pytest.raises(ILMError, match="no transformer.h"):
        with record_blocks(nn.Linear(2, 2), [0]):
            pass


def _run(tmp_path, language="word_hop"):
    from impossible_lms.evaluation.toy import make_toy_run

    return make_toy_run(tmp_path / "run", steps=(100, 200), language=language, vocab_size=VOCAB, seed=3)


def test_intervene_rows_are_stored_and_skipped(tmp_path, monkeypatch):
    base, source = _pairs(n=4, width=7, seed=2)
    pairs = AgreementData(base, source, SG, PL).save(tmp_path / "pairs.json")
    run = _run(tmp_path)
    df = intervene(run, pairs, results=tmp_path / "results")
    assert len(df) == 2 * 2 * 7  # checkpoints × layers × positions
    assert set(df["metric"]) == {"iia"} and set(df["unit"]) == {"%"}
    assert sorted(df["position"].unique()) == list(range(7)) and sorted(df["layer"].unique()) == [0, 1]
    assert (df["count"] == 4).all() and set(df["seed"]) == {3}
    assert df["value"].isin([0.0, 25.0, 50.0, 75.0, 100.0]).all()
    # a second call loads the stored rows and never loads a model
    import impossible_lms.evaluation.sweep as sweep

    monkeypatch.setattr(sweep, "load_target", lambda *a: (_ for _ in ()).throw(AssertionError("model loaded")))
    again = intervene(run, pairs, results=tmp_path / "results")
    pd.testing.assert_frame_equal(again.sort_values(["checkpoint", "layer", "position"]).reset_index(drop=True),
                                  df.sort_values(["checkpoint", "layer", "position"]).reset_index(drop=True),
                                  check_dtype=False)


def test_no_hop_models_see_three_tokens(tmp_path):
    base, source = _pairs(n=3, width=7)
    pairs = AgreementData(base, source, SG, PL).save(tmp_path / "pairs.json")
    df = intervene(_run(tmp_path, "no_hop"), pairs, checkpoints="100")
    assert sorted(df["position"].unique()) == [0, 1, 2]
    df = intervene(_run(tmp_path, "no_hop"), pairs, checkpoints="100", tokens=5)
    assert sorted(df["position"].unique()) == [0, 1, 2, 3, 4]


def test_user_errors(tmp_path):
    run = _run(tmp_path)
    with pytest.raises(ILMError, match="no agreement pairs"):
        intervene(run, AgreementData([], [], SG, PL).save(tmp_path / "empty.json"))
    big = AgreementData([[1, 2, 30]], [[1, 3, 30]], SG, PL).save(tmp_path / "big.json")
    with pytest.raises(ILMError, match="vocabulary"):
        intervene(run, big)


def test_report_draws_iia_views_and_keeps_them_out_of_the_generic_tables(tmp_path):
    from impossible_lms.evaluation import load_results
    from impossible_lms.reporting import make_report, report

    base, source = _pairs(n=4, width=7, seed=2)
    pairs = AgreementData(base, source, SG, PL).save(tmp_path / "pairs.json")
    for seed in (3, 4):
        from impossible_lms.evaluation.toy import make_toy_run

        run = make_toy_run(tmp_path / f"run{seed}", steps=(100, 200), language="word_hop", vocab_size=VOCAB, seed=seed)
        intervene(run, pairs, results=tmp_path / "results")
    df = load_results([tmp_path / "results"])
    tables, _ = report([tmp_path / "results"], tmp_path / "report", ["csv"])
    assert set(tables) == {"iia", "iia_max"}  # no "final"/"layers" table averaging over positions
    cells = tables["iia"]
    assert len(cells) == 2 * 2 * 7 and (cells["seeds"] == 2).all()
    one = cells[(cells["checkpoint"] == 200) & (cells["layer"] == 1) & (cells["position"] == 3)].iloc[0]
    raw = df[(df["checkpoint"] == 200) & (df["layer"] == 1) & (df["position"] == 3)]["value"]
    assert one["value"] == pytest.approx(raw.mean())
    best = tables["iia_max"]
    want = df[df["checkpoint"] == 100].groupby("seed")["value"].max().mean()
    assert best[best["checkpoint"] == 100]["value"].iloc[0] == pytest.approx(want)
    files = make_report(df, tmp_path / "report", ["md", "png"])
    names = {f.name for f in files}
    assert "iia_word_hop_tiny-gpt2.png" in names and "iia_max_tiny-gpt2.png" in names
    text = (tmp_path / "report" / "report.md").read_text()
    assert "Interchange intervention accuracy" in text and "| layer | position | checkpoint |" in text


def test_cli_intervene(tmp_path):
    from typer.testing import CliRunner

    from cli.main import app

    base, source = _pairs(n=3, width=7)
    pairs = AgreementData(base, source, SG, PL).save(tmp_path / "pairs.json")
    run = _run(tmp_path)
    args = ["intervene", str(run), "--data", str(pairs), "--results", str(tmp_path / "res"), "--checkpoints", "200"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "14 row(s)" in result.output and "best IIA" in result.output
    bad = CliRunner().invoke(app, ["intervene", str(run), "--data", str(tmp_path / "nothing")])
    assert bad.exit_code == 1 and "error" in bad.output and "Traceback" not in bad.output
