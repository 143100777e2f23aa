"""Tree projections: per-layer attention masks vs a loop, the chart vs the reference's per-span
masks, the DP vs brute force and the reference's DP, bracketing scores vs Murty et al.'s, invariance."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from impossible_lms.analysis.treeproj import (Stimulus, layers_used, parse_scores, project, sci_charts,
                                              tree_constituents, word_leaves)
from impossible_lms.errors import ILMError
from impossible_lms.models import build_model, model_config
from impossible_lms.models.attention import AttnMask, attend
from impossible_lms.models.hooks import record_blocks, restrict_attention

V = 61


def tiny(name="tiny-gpt2", **kw):
    torch.manual_seed(0)
    return build_model(model_config(name, vocab_size=V, **kw)).eval()


def ids(b=2, t=9, seed=1):
    return torch.randint(0, V, (b, t), generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------ per-layer masks


def loop_attention(q, k, v, scale, allowed):
    """Masked causal attention one query at a time: keys s <= t that ``allowed`` admits, else itself."""
    B, H, T, _ = q.shape
    out = torch.zeros(B, H, T, v.shape[-1], dtype=torch.float64)
    for b, h, t in itertools.product(range(B), range(H), range(T)):
        keys = [s for s in range(t + 1) if allowed[b if allowed.shape[0] > 1 else 0, 0,
                                                   t if allowed.shape[2] > 1 else 0, s]] or [t]
        scores = torch.tensor([float(q[b, h, t] @ k[b, h, s]) * scale for s in keys], dtype=torch.float64)
        weights = torch.softmax(scores, 0)
        out[b, h, t] = sum(w * v[b, h, s].double() for w, s in zip(weights, keys))
    return out


@pytest.mark.parametrize("backend", ["eager", "sdpa", "math", "flash_attn"])
@pytest.mark.parametrize("shape", ["full", "keys"])
def test_extra_mask_matches_a_per_token_loop(backend, shape):
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 7, 4) for _ in range(3))
    g = torch.Generator().manual_seed(3)
    allowed = torch.rand((2, 1, 7, 7) if shape == "full" else (2, 1, 1, 7), generator=g) > 0.4
    allowed[0, 0, :, :3] = False  # early queries of row 0 see nothing: they keep themselves
    # flash_attn has no arbitrary-mask form: with an extra mask it runs SDPA (no flash-attn needed here)
    got = attend(backend, q, k, v, AttnMask(7, 7, extra=allowed), 0.5)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got.double(), loop_attention(q, k, v, 0.5, allowed), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("attention", ["eager", "sdpa"])
def test_restriction_leaves_earlier_blocks_alone_and_equals_the_span_alone(attention):
    model = tiny("tiny-gpt2-nopos", n_layer=3, attention=attention)
    x = ids()
    a = 3
    allowed = (torch.arange(9) >= a)[None, None, None, :].expand(2, 1, 1, 9)
    with record_blocks(model, [0, 1, 2]) as plain:
        model(x)
    plain = dict(plain)
    with record_blocks(model, [0, 1, 2]) as masked, restrict_attention(model, 2, allowed):
        model(x)
    torch.testing.assert_close(masked[0], plain[0], atol=0, rtol=0)  # blocks < 2 untouched
    torch.testing.assert_close(masked[1], plain[1], atol=0, rtol=0)
    assert not torch.allclose(masked[2][:, a:], plain[2][:, a:])
    # from block 0 on, keys >= a: positions a.. see exactly what the suffix alone gives (no positions)
    with record_blocks(model, [2]) as masked, restrict_attention(model, 0, allowed):
        model(x)
    with record_blocks(model, [2]) as alone:
        model(x[:, a:])
    torch.testing.assert_close(masked[2][:, a:], alone[2], atol=1e-5, rtol=1e-5)
    with record_blocks(model, [2]) as again:  # the hooks are gone after the with
        model(x)
    torch.testing.assert_close(again[2], plain[2], atol=0, rtol=0)


def test_restriction_errors_are_one_line():
    model = tiny()
    ok = torch.ones(1, 1, 1, 9, dtype=torch.bool)
    with pytest.raises(ILMError, match=r"layer 5 outside the model's blocks 0\.\.1"):
        with restrict_attention(model, 5, ok):
            pass
    with pytest.raises(ILMError, match="4-d bool"):
        with restrict_attention(model, 0, ok.long()):
            pass
    for shape in ((1, 1, 1, 4), (3, 1, 1, 9)):  # wrong length; a batch of 3 masks for 2 rows
        with pytest.raises(ILMError, match=r"does not fit \[2, 1, 9, 9\]"):
            with restrict_attention(model, 0, torch.ones(*shape, dtype=torch.bool)):
                model(ids())
    from impossible_lms.evaluation.toy import tiny_gpt2

    hf = tiny_gpt2(vocab_size=V)  # Hugging Face's own GPT-2 blocks take no ilm attention context
    with pytest.raises(ILMError, match="needs an ilm model's blocks"):
        with restrict_attention(hf, 0, ok):
            hf(ids())


# ------------------------------------------------------------------ the chart


def reference_chart(model, tokens, leaves, start, read):
    """The reference's compute_sci_chart, transcribed: for every span its own forward, keys outside
    [first, last] token masked from block ``start`` on (blocks called by hand), hidden state ``read``."""
    from impossible_lms.models.gpt2 import Context

    x_ids = torch.tensor([tokens])
    T = len(tokens)
    tr = model.transformer

    def hidden(key_ok):
        ctx = tr.context(x_ids, None, None, 0, torch.float32)
        x = tr.wte(x_ids) + (tr.wpe(ctx.positions) if hasattr(tr, "wpe") else 0)
        states = [x]
        for layer, block in enumerate(tr.h):
            mask = AttnMask(T, T, extra=key_ok[None, None, None, :]) if key_ok is not None and layer >= start else ctx.mask
            x = block(x, Context(ctx.backend, mask, ctx.positions))
            states.append(x)
        return states[read][0].double()

    with torch.no_grad():
        full = hidden(None)
        n = len(leaves)
        chart = np.full((n, n), np.nan)
        for i in range(n):
            for j in range(i, n):
                a, b = leaves[i][0], leaves[j][1]
                key_ok = torch.zeros(T, dtype=torch.bool)
                key_ok[a:b] = True
                inner, outer = hidden(key_ok)[a:b].sum(0), full[a:b].sum(0)
                chart[i, j] = float(inner @ outer / (inner.norm() * outer.norm()))
    return chart


def test_chart_equals_the_references_per_span_masks():
    model = tiny(n_layer=3)
    tokens = ids(1, 8, seed=4)[0].tolist()
    word = Stimulus(tuple(tokens), ((0, 2), (2, 3), (3, 6), (6, 8)))
    token = Stimulus(tuple(tokens[:5]), tuple((t, t + 1) for t in range(5)))
    charts = sci_charts(model, [word, token, word], start_layer=1, read_layer=3, batch=3)
    np.testing.assert_allclose(charts[0], reference_chart(model, tokens, word.leaves, 1, 3), atol=1e-6)
    np.testing.assert_allclose(charts[1], reference_chart(model, tokens[:5], token.leaves, 1, 3), atol=1e-6)
    np.testing.assert_array_equal(charts[0], charts[2])
    # causal attention: a span starting at the first leaf is exactly invariant; later ones are not
    assert np.allclose(charts[0][0], 1, atol=1e-12) and (charts[0][np.triu_indices(4, 1)][3:] < 1 - 1e-4).all()


def test_context_before_the_first_leaf_tests_every_span_start():
    """With a context token (EOS) before leaf 0, leaf 0's spans are masked too: the chart equals
    the reference's per-span masks over the same tokens, and its first row is no longer all 1
    (without context it always is, which forces a left-branching projection)."""
    model = tiny(n_layer=3)
    tokens = ids(1, 8, seed=4)[0].tolist()
    leaves = ((1, 3), (3, 4), (4, 7), (7, 8))  # token 0 is context outside every span
    with_context = Stimulus(tuple(tokens), leaves)
    alone = Stimulus(tuple(tokens), ((0, 3),) + leaves[1:])
    charts = sci_charts(model, [with_context, alone, with_context], start_layer=1, read_layer=3, batch=2)
    np.testing.assert_allclose(charts[0], reference_chart(model, tokens, leaves, 1, 3), atol=1e-6)
    np.testing.assert_allclose(charts[0], charts[2], atol=1e-6)  # other batch splits: float noise only
    assert (charts[0][0, 1:] < 1 - 1e-4).all() and np.allclose(charts[1][0], 1, atol=1e-12)
    np.testing.assert_allclose(charts[0][1:, 1:], charts[1][1:, 1:], atol=1e-6)  # later starts: same masks


def test_no_cross_token_information_is_perfectly_span_invariant():
    model = tiny(n_layer=3)
    with torch.no_grad():
        for block in model.transformer.h:  # attention adds nothing: no token sees another
            block.attn.c_proj.weight.zero_()
            block.attn.c_proj.bias.zero_()
    s = Stimulus(tuple(ids(1, 7, seed=2)[0].tolist()), tuple((t, t + 1) for t in range(7)))
    (chart,) = sci_charts(model, [s], 0, 3)
    np.testing.assert_allclose(chart[np.triu_indices(7)], 1.0, atol=1e-12)  # SCI distance 0 everywhere
    p = project(chart)
    assert p.value == pytest.approx(2 * 6)  # every child's similarity at its maximum, 1
    assert p.tree_score == pytest.approx(0.0, abs=1e-12)  # ... and no better than a random tree


def test_layers_default_to_the_references_and_clip_to_small_models():
    assert layers_used(12) == (4, 11)  # st_threshold=4, layer_id=11
    assert layers_used(2) == (0, 1) and layers_used(1) == (0, 1)
    assert layers_used(12, 2, 6) == (2, 6)
    with pytest.raises(ILMError, match=r"read layer 13 outside"):
        layers_used(12, read_layer=13)
    with pytest.raises(ILMError, match=r"below the read layer 3: 0\.\.2, got 3"):
        layers_used(12, 3, 3)


# ------------------------------------------------------------------ projection


def all_trees(i, j):
    if i == j:
        yield i
        return
    for k in range(i, j):
        for left in all_trees(i, k):
            for right in all_trees(k + 1, j):
                yield (left, right)


def tree_value(tree, chart):
    """Σ over internal nodes of chart(left child) + chart(right child)."""
    def span(t):
        return (t, t) if isinstance(t, int) else (span(t[0])[0], span(t[1])[1])

    if isinstance(tree, int):
        return 0.0
    (a, b), (c, d) = span(tree[0]), span(tree[1])
    return chart[a, b] + chart[c, d] + tree_value(tree[0], chart) + tree_value(tree[1], chart)


def reference_dp(chart, n):
    """The reference's tree_projection_dp with normalize=False, transcribed (dict chart, np.argmax)."""
    scores = {}
    for length in range(1, n + 1):
        for st in range(n - length + 1):
            en = st + length - 1
            if st == en:
                scores[(st, en)] = (st, 0.0)
                continue
            per_k, parses = [], {}
            for k in range(st, en):
                p1, s1 = scores[(st, k)]
                p2, s2 = scores[(k + 1, en)]
                per_k.append(chart[st, k] + chart[k + 1, en] + s1 + s2)
                parses[k] = (p1, p2)
            best = int(np.argmax(per_k))
            scores[(st, en)] = (parses[st + best], per_k[best])
    return scores[(0, n - 1)]


@pytest.mark.parametrize("n", [2, 3, 4, 5, 6])
def test_dp_finds_the_best_tree_of_all_binary_trees(n):
    rng = np.random.default_rng(n)
    for trial in range(5):
        chart = np.triu(rng.random((n, n)))
        if trial == 4:
            chart = np.triu(np.round(chart, 1))  # ties: the reference's leftmost split
        trees = list(all_trees(0, n - 1))
        assert len(trees) == math.comb(2 * (n - 1), n - 1) // n  # the Catalan number
        p = project(chart)
        assert p.value == pytest.approx(max(tree_value(t, chart) for t in trees))
        assert tree_value(p.tree, chart) == pytest.approx(p.value)
        assert (p.tree, pytest.approx(p.value)) == reference_dp(chart, n)


def test_tree_score_by_hand():
    chart = np.array([[1, 0.9, 0], [0, 1, 0.5], [0, 0, 1]], dtype=float)
    p = project(chart)
    # root: split 0 -> 1 + 0.5 = 1.5, split 1 -> 0.9 + 1 = 1.9 (taken); node (0, 1): 1 + 1
    assert p.tree == ((0, 1), 2) and p.brackets == {(0, 2), (0, 1)}
    assert p.value == pytest.approx(3.9) and p.baseline == pytest.approx((1.5 + 1.9) / 2 + 2)
    assert p.tree_score == pytest.approx((3.9 - 3.7) / 3)
    assert project(np.ones((1, 1))).tree_score == 0.0


def murty_parsing_accuracy(predicted, gold):
    """Murty et al.'s get_parsing_accuracy, transcribed: brackets of nested-pair trees, corpus sums."""
    def brackets(tree):
        out = set()

        def walk(t, st):
            if isinstance(t, str):
                return 1
            l1 = walk(t[0], st)
            l2 = walk(t[1], st + l1)
            out.add((st, st + l1 + l2 - 1))
            return l1 + l2

        walk(tree, 0)
        return out

    g, p = [brackets(t) for t in gold], [brackets(t) for t in predicted]
    precision = sum(len(a & b) for a, b in zip(g, p)) / sum(len(b) for b in p)
    recall = sum(len(a & b) for a, b in zip(g, p)) / sum(len(a) for a in g)
    return 100 * precision, 100 * recall, 100 * 2 * precision * recall / (precision + recall + 1e-10)


def test_bracketing_scores_by_hand_and_as_murty_et_al():
    pred = [frozenset({(0, 3), (0, 1), (2, 3)})]
    gold = [frozenset({(0, 1), (1, 3)})]
    assert parse_scores(pred, gold) == pytest.approx({"parse_precision": 100 / 3, "parse_recall": 50.0,
                                                      "parse_f1": 40.0})
    pred_trees = [(("a", "b"), ("c", ("d", "e"))), ("a", ("b", "c"))]
    gold_trees = [("a", (("b", "c"), ("d", "e"))), (("a", "b"), "c")]

    def as_brackets(tree):
        spans = set()

        def walk(t, st):
            if isinstance(t, str):
                return 1
            n = walk(t[0], st)
            n += walk(t[1], st + n)
            spans.add((st, st + n - 1))
            return n

        walk(tree, 0)
        return frozenset(spans)

    ours = parse_scores([as_brackets(t) for t in pred_trees], [as_brackets(t) for t in gold_trees])
    p, r, f = murty_parsing_accuracy(pred_trees, gold_trees)
    assert ours == pytest.approx({"parse_precision": p, "parse_recall": r, "parse_f1": f}, abs=1e-6)
    assert parse_scores([frozenset()], [frozenset()])["parse_f1"] == 0.0


# ------------------------------------------------------------------ gold trees and words


def test_bracketed_constituents_and_word_leaves(tmp_path):
    from impossible_lms.analysis.probe import read_trees

    path = tmp_path / "t.mrg"
    path.write_text("( (S (NP (DT the) (NN dog)) (VP (VBZ does) (RB n't) (VP (VB see) (NP (PRP us)))) (. .)) )\n",
                    encoding="utf-8")
    ((words, spans),) = read_trees(path, spans=tree_constituents)
    assert words == ["the", "dog", "does", "n't", "see", "us", "."]
    multi = sorted((a, b) for _, a, b in spans if b - a >= 2)
    assert multi == [(0, 2), (0, 7), (2, 6), (4, 6)]  # NP, S, VP, VP (preterminals and 1-word NP are 1 leaf)
    (tmp_path / "bad.mrg").write_text("(S (NP a)) )", encoding="utf-8")
    with pytest.raises(ILMError, match=r"unbalanced '\)'"):
        read_trees(tmp_path / "bad.mrg", spans=tree_constituents)

    class Enc:
        def __init__(self, ids, offsets):
            self.ids, self.offsets = ids, offsets

    class CharPairs:  # every two characters a token: "th|e |do|g |do|es|n'|t |se|e |us| ."
        class backend:  # noqa: N801
            @staticmethod
            def encode(text, add_special_tokens=False):
                offs = [(i, min(i + 2, len(text))) for i in range(0, len(text), 2)]
                return Enc(list(range(len(offs))), offs)

    got = word_leaves(words, CharPairs)
    assert got is not None
    assert got[1] == ((0, 2), (2, 4), (4, 6), (6, 8), (8, 10), (10, 11), (11, 12))
    assert word_leaves(["d", "n't"], CharPairs) is None  # "dn|'t": "d" holds no token's last character


# ------------------------------------------------------------------ end to end


@pytest.fixture(scope="module")
def hop_data(tmp_path_factory):
    from impossible_lms.perturb import perturb_corpus

    out = tmp_path_factory.mktemp("treeproj")
    perturb_corpus(["word_hop"], "synthetic", out, tokenizer="fallback", tagger="gold", progress=False,
                   corpus_options={"sentences": 1200, "seed": 0}, fallback_vocab=300)
    return out / "word_hop"


def test_word_unit_end_to_end_stored_resumed_and_cli(tmp_path, hop_data, monkeypatch):
    from typer.testing import CliRunner

    from cli.main import app
    from impossible_lms.analysis import treeproj as tp
    from impossible_lms.evaluation.toy import make_toy_run

    run = make_toy_run(tmp_path / "run", steps=(100, 200), language="word_hop", vocab_size=400, seed=3,
                       n_positions=128)
    df = tp.treeproj(run, hop_data, results=tmp_path / "results", sentences=6)
    assert sorted(set(df["metric"])) == ["parse_f1", "parse_f1_nontrivial", "parse_precision",
                                         "parse_precision_nontrivial", "parse_recall", "parse_recall_nontrivial",
                                         "tree_score"]
    assert len(df) == 14 and set(df["checkpoint"]) == {100, 200} and set(df["subset"]) == {"word"}
    assert set(df["layer"]) == {1} and (df.loc[df["metric"] == "tree_score", "count"] == 6).all()
    f1 = df[df["metric"] == "parse_f1"]
    assert f1["value"].between(0, 100).all() and (f1["ci_low"] <= f1["value"]).all()
    # the rows are the gold sentences' own numbers: recompute checkpoint 100 by hand
    stimuli, _ = tp.word_stimuli(hop_data, None, 6, 3)
    from impossible_lms.models import load_model

    model = load_model(run / "checkpoint-100", dtype=torch.float32).eval()
    projections = [project(c) for c in sci_charts(model, stimuli, 0, 1)]
    got = df[(df["checkpoint"] == 100)].set_index("metric")["value"]
    assert got["tree_score"] == pytest.approx(np.mean([p.tree_score for p in projections]))
    assert got["parse_f1"] == pytest.approx(parse_scores([p.brackets for p in projections],
                                                         [s.gold for s in stimuli])["parse_f1"])
    # without the whole-sentence bracket (the field's unlabelled F1): recomputed by hand as well
    whole = [{(0, len(c) - 1)} for c in sci_charts(model, stimuli, 0, 1)]
    trimmed = parse_scores([p.brackets - w for p, w in zip(projections, whole)],
                           [s.gold - w for s, w in zip(stimuli, whole)])
    assert got["parse_f1_nontrivial"] == pytest.approx(trimmed["parse_f1"])
    assert got["parse_f1_nontrivial"] != got["parse_f1"]  # the whole-sentence bracket no longer counts either way
    # a rerun reads the stored rows and computes nothing
    monkeypatch.setattr(tp, "treeproj_rows", lambda *a, **k: pytest.fail("recomputed a stored checkpoint"))
    again = tp.treeproj(run, hop_data, results=tmp_path / "results", sentences=6)
    assert len(again) == 14
    monkeypatch.undo()
    result = CliRunner().invoke(app, ["treeproj", str(run), "--data", str(hop_data), "--sentences", "6",
                                      "--results", str(tmp_path / "results"), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "checkpoint 100: tree score" in result.output and "parse F1" in result.output and "14 row(s)" in result.output
    for args, message in ((["--unit", "tree"], "unknown unit 'tree'"),
                          (["--trees", str(tmp_path / "none.mrg")], "trees file not found"),
                          (["--unit", "token", "--trees", str(tmp_path / "none.mrg")], "needs --unit word"),
                          (["--layer", "1"], r"below the read layer 1: 0..0, got 1")):
        bad = CliRunner().invoke(app, ["treeproj", str(run), "--data", str(hop_data), "--sentences", "2",
                                       "--results", str(tmp_path / "r2"), "--no-progress", *args])
        assert bad.exit_code == 1 and message in bad.output and "Traceback" not in bad.output, bad.output


def test_bracketed_gold_trees_are_the_sentences(tmp_path, hop_data):
    from impossible_lms.analysis.treeproj import word_stimuli

    path = tmp_path / "t.mrg"
    path.write_text("(S (NP (DT the) (NN dog)) (VP (VBD ran)))\n(S (NP (NNP Mary)) (VP (VBD saw) (NP (PRP us))))\n",
                    encoding="utf-8")
    stimuli, unaligned = word_stimuli(hop_data, path, 0, 0)
    assert unaligned == 0 and [len(s.leaves) for s in stimuli] == [3, 3]
    assert stimuli[0].gold == {(0, 1), (0, 2)} and stimuli[1].gold == {(1, 2), (0, 2)}  # one-word NPs drop


def test_token_unit_samples_the_languages_test_sentences_as_the_reference(tmp_path):
    from impossible_lms.analysis.treeproj import token_stimuli, treeproj, word_stimuli
    from impossible_lms.evaluation.data import EvalData
    from impossible_lms.evaluation.toy import make_toy_data, make_toy_run

    data = make_toy_data(tmp_path / "data", per_genre=8, language="local_shuffle:w=3", family="shuffle")
    stimuli = token_stimuli(data, 3, seed=5)
    assert [list(s.ids) for s in stimuli] == EvalData(data, 3, 5).sample("test_affected", 1023)
    assert all(s.leaves == tuple((t, t + 1) for t in range(len(s.ids))) and s.gold is None for s in stimuli)
    with pytest.raises(ILMError, match="need the words in order.*--unit token"):
        word_stimuli(data, None, 5, 0)
    run = make_toy_run(tmp_path / "run", steps=(100,), language="local_shuffle:w=3", seed=5)
    df = treeproj(run, data, unit="token", sentences=3, results=tmp_path / "results")
    assert list(df["metric"]) == ["tree_score"] and df["count"].tolist() == [6] and df["subset"].tolist() == ["token"]


def test_progress_says_how_far_a_checkpoint_is(tmp_path, monkeypatch, capsys):
    from impossible_lms.analysis.treeproj import token_stimuli, treeproj
    from impossible_lms.evaluation.toy import make_toy_data, make_toy_run

    monkeypatch.setenv("ILM_PROGRESS_EVERY", "0")  # a plain line at every update (stderr is not a terminal)
    data = make_toy_data(tmp_path / "data", per_genre=4, language="no_shuffle", family="shuffle")
    run = make_toy_run(tmp_path / "run", steps=(100,), language="no_shuffle")
    df = treeproj(run, data, unit="token", sentences=4, batch=8, results=None, show_progress=True)
    total = sum(len(s.leaves) for s in token_stimuli(data, 4, 0))  # one row per span start
    err = capsys.readouterr().err
    assert f"checkpoint 100: {total}/{total} span starts" in err and f"checkpoint 100: 8/{total} span starts" in err
    assert df["count"].tolist() == [8]


def test_run_stage_and_report_view(tmp_path, monkeypatch):
    import types

    import pandas as pd

    from impossible_lms.experiment.analyses import ANALYSES
    from impossible_lms.experiment.layout import Layout, Run
    from impossible_lms.reporting.views import treeproj_tables

    import functools

    from impossible_lms.analysis import treeproj as tp

    calls = []
    # the stand-in keeps treeproj's signature: the stage checks option names against it
    monkeypatch.setattr(tp, "treeproj", functools.wraps(tp.treeproj)(lambda run, folder, **kw: calls.append((folder, kw))))
    monkeypatch.setattr(Layout, "run", lambda self, run: tmp_path / "run")
    (tmp_path / "data" / "no_reverse").mkdir(parents=True)
    (tmp_path / "data" / "no_reverse" / "manifest.json").write_text("{}")
    cfg = types.SimpleNamespace(out=tmp_path)  # the layout puts data/ and results/ under it
    stage = ANALYSES["treeproj"]
    assert stage.applies("no_shuffle") and stage.applies("word_hop")
    assert stage.run(cfg, Run("word_hop", "gpt2", 0), {"trees": "t.mrg", "sentences": 9}) == [tmp_path / "results"]
    stage.run(cfg, Run("full_reverse", "gpt2", 0), {"units": ["word"]})
    stage.run(cfg, Run("no_shuffle", "gpt2", 0), {})
    assert [(f.name, kw["unit"], kw.get("trees")) for f, kw in calls] == [
        ("word_hop", "token", None), ("word_hop", "word", "t.mrg"), ("full_reverse", "word", None),
        ("no_shuffle", "token", None), ("no_shuffle", "word", None)]  # the control keeps word order
    assert calls[0][1]["sentences"] == 9 and calls[0][1]["results"] == tmp_path / "results"
    with pytest.raises(ILMError, match="units is a list of word, token, not 'tree'"):
        stage.run(cfg, Run("no_shuffle", "gpt2", 0), {"units": ["tree"]})
    with pytest.raises(ILMError, match="unknown option 'sentence'.*did you mean 'sentences'"):
        stage.run(cfg, Run("no_shuffle", "gpt2", 0), {"sentence": 3})

    def row(lang, seed, metric, subset, value):
        return {"language": lang, "model": "gpt2", "seed": seed, "checkpoint": 100, "metric": metric,
                "subset": subset, "value": value, "eval_language": lang, "setting": ""}

    rows = pd.DataFrame([row("word_hop", s, "tree_score", u, v) for s, u, v in
                         ((0, "word", 0.1), (1, "word", 0.3), (0, "token", 0.5))] +
                        [row("word_hop", 0, "parse_f1", "word", 40.0), row("no_hop", 0, "tree_score", "token", 0.2)])
    table = treeproj_tables(rows)["treeproj"]
    assert table[["language", "metric", "subset"]].values.tolist() == [
        ["no_hop", "tree_score", "token"], ["word_hop", "tree_score", "token"], ["word_hop", "tree_score", "word"],
        ["word_hop", "parse_f1", "word"]]
    word = table[(table["metric"] == "tree_score") & (table["subset"] == "word")].iloc[0]
    assert word["value"] == pytest.approx(0.2) and word["seeds"] == 2


def test_report_of_stored_rows_reads_at_80_columns(tmp_path):
    from rich.console import Console

    from impossible_lms.analysis.treeproj import treeproj
    from impossible_lms.evaluation.toy import make_toy_data, make_toy_run
    from impossible_lms.reporting import make_report, report
    from impossible_lms.reporting.render import rich_table

    data = make_toy_data(tmp_path / "data", per_genre=3, language="no_shuffle", family="shuffle")
    for seed in (1, 2):
        run = make_toy_run(tmp_path / f"run{seed}", steps=(100, 200), language="no_shuffle", seed=seed)
        treeproj(run, data, unit="token", sentences=3, results=tmp_path / "results")
    tables, _ = report([tmp_path / "results"], tmp_path / "report", ["csv"])
    cells = tables["treeproj"]
    assert cells["checkpoint"].tolist() == [100, 200] and (cells["seeds"] == 2).all()
    console = Console(width=80, record=True)
    console.print(rich_table("treeproj", cells))
    text = console.export_text()
    assert "Tree projections" in text and max(len(line) for line in text.splitlines()) <= 80
    from impossible_lms.evaluation import load_results

    names = {f.name for f in make_report(load_results([tmp_path / "results"]), tmp_path / "report", ["png"])}
    assert "treeproj_tree_score_token_tiny-gpt2.png" in names
