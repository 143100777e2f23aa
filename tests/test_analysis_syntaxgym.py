"""SyntaxGym suites: formulas, regions in the model's language, local agreement, accuracy, a model that knows."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from impossible_lms.analysis.syntaxgym import (
    Region, item_results, load_suites, local_agreement_suite, parse_formula, perturb_suites, region_surprisals,
    suite_rows, syntaxgym,
)
from impossible_lms.errors import ILMError
from perturbations import Sentence, Word


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    from impossible_lms.perturb import perturb_corpus

    out = tmp_path_factory.mktemp("sg")
    perturb_corpus(["no_shuffle", "partial_reverse", "no_hop", "token_hop"], "synthetic", out, tokenizer="fallback",
                   tagger="gold", progress=False, corpus_options={"sentences": 300, "seed": 0}, fallback_vocab=300)
    return out


def write_suite(path, name, items, predictions):
    """items: [{condition: [region contents]}]; regions are numbered from 1."""
    suite = {
        "meta": {"name": name, "metric": "sum"},
        "region_meta": {str(i + 1): f"r{i + 1}" for i in range(max(len(r) for it in items for r in it.values()))},
        "predictions": [{"type": "formula", "formula": f} for f in predictions],
        "items": [{"item_number": n + 1, "conditions": [
            {"condition_name": c, "regions": [{"region_number": i + 1, "content": t} for i, t in enumerate(regions)]}
            for c, regions in item.items()]} for n, item in enumerate(items)],
    }
    path.write_text(json.dumps(suite), encoding="utf-8")
    return path


# ---------------------------------------------------------------- formulas


def test_formulas_parse_with_syntaxgym_precedence_and_never_eval():
    f = parse_formula("(3;%mismatch%) > (3;%match%)")
    assert f.regions() == [Region(3, "mismatch"), Region(3, "match")]
    values = {("mismatch", 3): 5.0, ("match", 3): 2.0}
    assert f(lambda n, c: values[c, n]) is True
    assert f.flipped()(lambda n, c: values[c, n]) is False
    # & binds loosest; + and - bind tighter than the comparisons; numbers are literals.
    g = parse_formula("(1;%a%) + (2;%a%) > (1;%b%) + (2;%b%) & ((3;%a%) - 1.5 < 2)")
    s = {("a", 1): 1.0, ("a", 2): 2.0, ("b", 1): 0.5, ("b", 2): 1.0, ("a", 3): 3.0}
    assert g(lambda n, c: s[c, n]) is True
    s[("a", 3)] = 4.0  # 4 - 1.5 = 2.5 is not < 2: the conjunction fails
    assert g(lambda n, c: s[c, n]) is False
    # SyntaxGym's own precedence cases (syntaxgym-core test/test_prediction.py, written here by hand):
    # + and - are one left-associative level.
    zero = lambda n, c: 0.0  # noqa: E731
    for holds in ("5 - 4 - 3 < 0", "5+4=9-1+1", "5-(3+2)=0", "(5-3)+2=4", "(5-3)+((2+1)-(2+2))=1"):
        assert parse_formula(holds)(zero) is True, holds
    assert parse_formula("10 - 2 + 3 = 11")(zero) is True and parse_formula("10 - 2 + 3 = 5")(zero) is False
    conj = parse_formula("((5;%a%) > (5;%b%)) & ((5;%a%) > (5;%c%)) & (((5;%a%) - (5;%b%)) > ((5;%c%) - (5;%d%)))")
    assert conj.tree.op == "&" and conj.tree.left.op == "&"  # left-associative conjunction
    assert parse_formula("(1;%x%) = 1.0005")(lambda n, c: 1.0) is True  # SyntaxGym's atol 1e-3
    for bad in ["(3;%a%) >", "(3;%a%) > (3;%b%))", "__import__('os')", "(3;%a%) >> 2", "((1;%a%) > 2"]:
        with pytest.raises(ILMError, match="formula"):
            parse_formula(bad)


def test_bracket_alternation_and_star_forms_read():
    """The cpllab/syntactic-generalization copy groups with [ ]; syntaxgym-core also has | and (*;%c%)."""
    s = {("match", 7): 1.0, ("mismatch", 7): 3.0, ("match", 1): 2.0, ("mismatch", 1): 0.5}
    f = parse_formula("[(7;%match%) < (7;%mismatch%)] & [(1;%match%) > (1;%mismatch%)]")
    assert f(lambda n, c: s[c, n]) is True
    assert parse_formula("[(7;%match%) > (7;%mismatch%)] | [(1;%match%) > (1;%mismatch%)]")(lambda n, c: s[c, n])
    assert not parse_formula("[(7;%match%) > (7;%mismatch%)] & [(1;%match%) > (1;%mismatch%)]")(lambda n, c: s[c, n])
    star = parse_formula("(*;%match%) > 2.5")
    assert star.regions()[0].number is None and star.regions()[0].condition == "match"
    with pytest.raises(ILMError, match=r"missing '\]'"):
        parse_formula("[(7;%a%) < 2")


def test_a_syntactic_generalization_suite_reads_its_string_predictions(tmp_path):
    """The same suites as cpllab/syntactic-generalization stores them: meta.string_predictions, [ ] groups."""
    import json

    raw = {"meta": {"name": "number_src", "metric": "sum",
                    "string_predictions": ["[(2;%match%) < (2;%mismatch%)] & [(*;%match%) < (*;%mismatch%)]"]},
           "region_meta": {"1": "np", "2": "verb"}, "predictions": [],
           "items": [{"item_number": 1, "conditions": [
               {"condition_name": "match", "regions": [{"region_number": 1, "content": "the dog"},
                                                       {"region_number": 2, "content": "sees"}]},
               {"condition_name": "mismatch", "regions": [{"region_number": 1, "content": "the dog"},
                                                          {"region_number": 2, "content": "see"}]}]}]}
    (tmp_path / "number_src.json").write_text(json.dumps(raw))
    (suite,) = load_suites(tmp_path / "number_src.json")
    assert len(suite.predictions) == 1 and suite.predictions[0].tree.op == "&"
    bits = {(1, "match"): 5.0, (2, "match"): 1.0, (1, "mismatch"): 5.0, (2, "mismatch"): 4.0}
    assert item_results(suite, lambda it, n, c: bits[n, c]).tolist() == [[True]]
    bits[(1, "mismatch")] = 1.0  # the sum over the condition's regions now favours mismatch: 5 + 1 > 1 + 4
    assert item_results(suite, lambda it, n, c: bits[n, c]).tolist() == [[False]]


# ---------------------------------------------------------------- suites


def test_suites_load_and_errors_are_one_line_with_the_hub_id(tmp_path):
    path = write_suite(tmp_path / "number_prep.json", "number_prep",
                       [{"match": ["the dog", "sees"], "mismatch": ["the dogs", "sees"]}],
                       ["(2;%mismatch%) > (2;%match%)"])
    (suite,) = load_suites(path)
    assert suite.name == "number_prep" and suite.items[0].conditions["match"] == ((1, "the dog"), (2, "sees"))
    assert len(load_suites(tmp_path)) == 1  # a folder: every *.json
    with pytest.raises(ILMError, match="two suites are named 'number_prep'"):
        load_suites([path, path])
    with pytest.raises(ILMError, match="cpllab/syntaxgym"):
        load_suites(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text('{"items": []}')
    with pytest.raises(ILMError, match="bad.json: not a SyntaxGym suite"):
        load_suites(tmp_path / "bad.json")
    write_suite(tmp_path / "typo.json", "typo", [{"match": ["a", "b"]}], ["(2;%mismatch%) > (2;%match%)"])
    with pytest.raises(ILMError, match=r"item 1: prediction region \(2;%mismatch%\) is not in the item"):
        load_suites(tmp_path / "typo.json")


# ---------------------------------------------------------------- regions and scoring


def test_regions_map_to_their_tokens_and_sum_their_surprisal_in_bits(datasets, tmp_path):
    from impossible_lms.data import load_dataset_tokenizer
    from impossible_lms.evaluation.scoring import ScoreOptions, score_sequences
    from impossible_lms.models import build_model, model_config

    tok = load_dataset_tokenizer(datasets / "no_shuffle")
    path = write_suite(tmp_path / "s.json", "s", [{"a": ["the dog", "", "sees a cat", "."], "b": ["a cat", "sees", ""]}],
                       ["(3;%a%) > (2;%b%)"])
    stim = perturb_suites(load_suites(path), datasets / "no_shuffle").stimuli
    a, b = stim["s", 1, "a"], stim["s", 1, "b"]
    assert a.ids == tok.encode("the dog sees a cat .")  # empty regions leave no double space
    n1, n3 = len(tok.encode("the dog")), len(tok.encode("the dog sees a cat"))
    assert a.regions == {1: (0, n1), 2: (n1, n1), 3: (n1, n3), 4: (n3, len(a.ids))}
    assert b.regions[3] == (len(b.ids), len(b.ids))

    torch.manual_seed(0)
    model = build_model(model_config("tiny-gpt2", vocab_size=tok.vocab_size)).eval()
    scores = score_sequences(model, [a.ids], ScoreOptions(condition_on_eos=True, eos_id=tok.eos_id))[None][0]
    # By hand: one forward pass on [EOS] + ids, -log2 p of each region token, summed.
    x = torch.tensor([[tok.eos_id] + a.ids])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=x).logits[0, :-1].double(), -1)
    bits = [-logp[i, t].item() / math.log(2) for i, t in enumerate(a.ids)]
    got = region_surprisals(scores, a.regions)
    assert got[3] == pytest.approx(sum(bits[n1:n3]), abs=1e-4) and got[2] == 0.0
    assert region_surprisals(scores, a.regions, "first")[3] == pytest.approx(bits[n1], abs=1e-4)
    assert math.isnan(region_surprisals(scores, a.regions, "first")[2])  # an empty region has no first token


def test_accuracy_rows_per_suite_prediction_and_overall_on_crafted_surprisals(tmp_path):
    path = write_suite(tmp_path / "number_x.json", "number_x",
                       [{"m": ["a", "b"], "x": ["a", "c"]}] * 4,
                       ["(2;%x%) > (2;%m%)", "(1;%x%) = (1;%m%)"])
    (suite,) = load_suites(path)
    bits = {1: {"m": 1.0, "x": 2.0}, 2: {"m": 3.0, "x": 2.0}, 3: {"m": 1.0, "x": 1.0}, 4: {"m": 0.0, "x": 5.0}}
    results = item_results(suite, lambda it, n, c: bits[it][c] if n == 2 else 7.0)
    assert results.tolist() == [[True, True], [False, True], [False, True], [True, True]]  # a tie is no win
    rows = {(r["subset"], r["label"]): r for r in suite_rows({"number_x": results, "other": np.array([[True]])})}
    assert rows["number_x", ""]["value"] == 50.0 and rows["number_x", ""]["count"] == 4
    assert rows["number_x", "prediction 2"]["value"] == 100.0
    assert rows["all", ""]["value"] == 60.0 and rows["all", ""]["count"] == 5  # items pooled over suites
    assert rows["number_x", ""]["ci_low"] <= 50.0 <= rows["number_x", ""]["ci_high"]


# ---------------------------------------------------------------- languages and local agreement


class FakeTagger:
    """Tags by a fixed lexicon: 'sees'/'is'/'has' singular, 'are'/'have' plural 3rd-person present verbs."""

    verbs = {"sees": ("see", "Sing"), "is": ("be", "Sing"), "are": ("be", "Plur"), "has": ("have", "Sing"),
             "have": ("have", "Plur")}

    def tag_lines(self, lines, genre):
        out = []
        for line in lines:
            words = tuple(
                Word(w, "VERB", f"Number={self.verbs[w][1]}|Person=3|Tense=Pres|VerbForm=Fin", self.verbs[w][0])
                if w in self.verbs else Word(w, "PUNCT" if w == "." else "NOUN", "_", w)
                for w in line.split()
            )
            out.append(Sentence(line, words, genre))
        return out


NUMBER = [{"match_sing": ["the dog", "near the cats", "is", "in the old garden ."],
           "mismatch_sing": ["the dog", "near the cats", "are", "in the old garden ."]}]


def test_hop_stimuli_keep_their_regions_with_the_marker_after_its_token(datasets, tmp_path):
    from impossible_lms.data import load_dataset_tokenizer

    path = write_suite(tmp_path / "number_prep.json", "number_prep", NUMBER, ["(3;%mismatch_sing%) > (3;%match_sing%)"])
    tok = load_dataset_tokenizer(datasets / "no_hop")
    sg, pl = tok.marker_ids["🅂"], tok.marker_ids["🄿"]
    stim = perturb_suites(load_suites(path), datasets / "no_hop", tagger=FakeTagger()).stimuli
    match = stim["number_prep", 1, "match_sing"]
    # NoHop, transcribed: the verb's lemma, its marker right after it, in the verb's region.
    assert match.ids == tok.encode("the dog near the cats be 🅂 in the old garden .")
    start = len(tok.encode("the dog near the cats"))
    verb = tok.encode("the dog near the cats be")
    assert match.regions[3] == (start, len(verb) + 1) and match.ids[len(verb)] == sg
    assert stim["number_prep", 1, "mismatch_sing"].ids[len(verb)] == pl

    # TokenHop: the marker hops 4 tokens, into the next region; it joins the region of the token before it.
    stim = perturb_suites(load_suites(path), datasets / "token_hop", tagger=FakeTagger()).stimuli
    match = stim["number_prep", 1, "match_sing"]
    ids = tok.encode("the dog near the cats be in the old garden .")
    at = len(verb) + 4
    assert match.ids == ids[:at] + [sg] + ids[at:]
    assert match.regions[3] == (start, len(verb)) and match.regions[4] == (len(verb), len(match.ids))


def test_languages_that_move_tokens_are_refused_naming_the_supported_ones(datasets, tmp_path):
    path = write_suite(tmp_path / "s.json", "s", [{"a": ["x", "y"]}], ["(2;%a%) > 0"])
    with pytest.raises(ILMError, match=r"no_shuffle, no_reverse, no_hop, token_hop, word_hop\): partial_reverse"):
        perturb_suites(load_suites(path), datasets / "partial_reverse")


def _reference_agreement(s, local):
    """The reference's evaluate_agreement, transcribed: per number, match vs mismatch at the target."""
    ok = (lambda m, x: m > x) if local else (lambda m, x: m < x)
    return {"singular_acc": np.mean([ok(i["match_sing"], i["mismatch_sing"]) for i in s]),
            "plural_acc": np.mean([ok(i["match_plural"], i["mismatch_plural"]) for i in s])}


def test_local_agreement_flips_number_suites_as_the_reference(tmp_path):
    conds = ["match_sing", "mismatch_sing", "match_plural", "mismatch_plural"]
    path = write_suite(tmp_path / "number_src.json", "number_src", [{c: ["a", "b"] for c in conds}] * 5,
                       ["(2;%mismatch_sing%) > (2;%match_sing%)", "(2;%mismatch_plural%) > (2;%match_plural%)"])
    (suite,) = load_suites(path)
    rng = np.random.default_rng(3)
    surprisal = [{c: float(rng.integers(0, 4)) for c in conds} for _ in range(5)]  # ties included
    for local in (False, True):
        evaluated = local_agreement_suite(suite) if local else suite
        rows = {(r["subset"], r["label"]): r["value"]
                for r in suite_rows({"number_src": item_results(evaluated, lambda it, n, c: surprisal[it - 1][c])})}
        ref = _reference_agreement(surprisal, local)
        assert rows["number_src", "prediction 1"] == pytest.approx(100 * ref["singular_acc"])
        assert rows["number_src", "prediction 2"] == pytest.approx(100 * ref["plural_acc"])
    reflexive = write_suite(tmp_path / "reflexive_src_fem.json", "reflexive_src_fem", [{"a": ["x"]}], ["(1;%a%) > 0"])
    (r,) = load_suites(reflexive)
    assert local_agreement_suite(r) is r  # reflexives are read as they are
    other = write_suite(tmp_path / "garden.json", "garden", [{"a": ["x"]}], ["(1;%a%) > 0"])
    with pytest.raises(ILMError, match="number_\\*, npi_\\*, reflexive_\\*"):
        local_agreement_suite(load_suites(other)[0])


def test_local_agreement_swaps_has_have_before_the_npi_target_in_a_hop_language(datasets, tmp_path):
    from impossible_lms.data import load_dataset_tokenizer

    item = {"neg_pos": ["no", "dogs", "that the cat likes", "have", "ever", "run in the park ."],
            "pos_neg": ["the", "dog", "that no cats like", "has", "ever", "run in the park ."]}
    path = write_suite(tmp_path / "npi_orc_ever.json", "npi_orc_ever", [item], ["(5;%neg_pos%) < (5;%pos_neg%)"])
    stim = perturb_suites(load_suites(path), datasets / "no_hop", tagger=FakeTagger(), local_agreement=True).stimuli
    tok = load_dataset_tokenizer(datasets / "no_hop")

    def reference_swap(content, target_loc):  # the reference's swap_has_have on content[target_loc - 1]
        content = list(content)
        if "have" in content[target_loc - 1]:
            content[target_loc - 1] = content[target_loc - 1].replace("have", "has")
        elif "has" in content[target_loc - 1]:
            content[target_loc - 1] = content[target_loc - 1].replace("has", "have")
        return content

    assert reference_swap(item["neg_pos"], 4)[3] == "has"  # region 5 is the target: target_loc 4 (0-based)
    # 'likes' is not in the lexicon; 'has' (now singular) becomes its lemma plus 🅂 under NoHop.
    assert stim["npi_orc_ever", 1, "neg_pos"].ids == tok.encode("no dogs that the cat likes have 🅂 ever run in the park .")
    assert stim["npi_orc_ever", 1, "pos_neg"].ids == tok.encode("the dog that no cats like have 🄿 ever run in the park .")
    plain = perturb_suites(load_suites(path), datasets / "no_hop", tagger=FakeTagger()).stimuli
    assert plain["npi_orc_ever", 1, "neg_pos"].ids == tok.encode("no dogs that the cat likes have 🄿 ever run in the park .")


# ---------------------------------------------------------------- a model that learned the good sentences

GOOD = [["the dog", "sees", "a cat ."], ["a bird", "sings", "in the tree ."], ["the cats", "run", "home ."],
        ["my friend", "reads", "a long book ."], ["the sun", "shines", "on the hill ."]]
BAD = [[g[0], g[2][:-2], g[1] + " ."] for g in GOOD]  # the same words, verb last


def write_good_bad(path):
    total = lambda c: " + ".join(f"({n};%{c}%)" for n in (1, 2, 3))  # noqa: E731
    return write_suite(path, "order", [{"good": g, "bad": b} for g, b in zip(GOOD, BAD)],
                       [f"{total('bad')} > {total('good')}"])


@pytest.fixture(scope="module")
def trained(datasets, tmp_path_factory):
    """A tiny model before (checkpoint-0) and after (checkpoint-80) learning the good sentences."""
    from impossible_lms.data import load_dataset_tokenizer
    from impossible_lms.models import build_model, model_config

    out = tmp_path_factory.mktemp("run")
    tok = load_dataset_tokenizer(datasets / "no_shuffle")
    torch.manual_seed(0)
    model = build_model(model_config("tiny-gpt2", vocab_size=tok.vocab_size, embd_pdrop=0.0, attn_pdrop=0.0,
                                     resid_pdrop=0.0))
    model.save_pretrained(out / "checkpoint-0")
    rows = [[tok.eos_id] + tok.encode(" ".join(g)) for g in GOOD]
    width = max(map(len, rows))
    x = torch.tensor([r + [tok.eos_id] * (width - len(r)) for r in rows])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(80):
        model(input_ids=x, labels=x).loss.backward()
        opt.step()
        opt.zero_grad()
    model.save_pretrained(out / "checkpoint-80")
    return out


def test_a_suite_of_the_training_sentences_scores_100_after_training(datasets, trained, tmp_path):
    from impossible_lms.analysis.minimal_pairs import minimal_pairs

    suite = write_good_bad(tmp_path / "order.json")
    df = syntaxgym(trained / "checkpoint-80", datasets / "no_shuffle", suite, results=tmp_path / "res", device="cpu")
    by = df[df["label"] == ""].set_index("subset")["value"]
    assert by["all"] == 100.0 and by["order"] == 100.0 and set(df["metric"]) == {"syntaxgym_accuracy"}
    before = syntaxgym(trained / "checkpoint-0", datasets / "no_shuffle", suite, device="cpu")
    assert before[before["subset"] == "all"]["value"].item() < 100.0  # the untrained model does not know
    # Stored rows are read back, not recomputed (the scorer would fail if called).
    import impossible_lms.evaluation.scoring as scoring

    real = scoring.score_sequences
    scoring.score_sequences = None
    try:
        again = syntaxgym(trained / "checkpoint-80", datasets / "no_shuffle", suite, results=tmp_path / "res",
                          device="cpu")
    finally:
        scoring.score_sequences = real
    assert again["value"].tolist() == df["value"].tolist()

    # The same sentences as BLiMP-style pairs score 100% too.
    pairs = tmp_path / "order.jsonl"
    pairs.write_text("".join(json.dumps({"sentence_good": " ".join(g), "sentence_bad": " ".join(b), "UID": "order"})
                             + "\n" for g, b in zip(GOOD, BAD)))
    mp = minimal_pairs(trained / "checkpoint-80", datasets / "no_shuffle", pairs, device="cpu")
    assert mp.set_index("subset")["value"]["all"] == 100.0


def test_cli_reports_suite_accuracy_and_refuses_a_missing_suite(datasets, trained, tmp_path):
    from typer.testing import CliRunner

    from cli.main import app

    suite = write_good_bad(tmp_path / "order.json")
    ok = CliRunner().invoke(app, ["syntaxgym", str(trained / "checkpoint-80"), "--data", str(datasets / "no_shuffle"),
                                  "--suites", str(suite), "--results", str(tmp_path / "res"), "--device", "cpu",
                                  "--region-metric", "first"])
    assert ok.exit_code == 0, ok.output
    assert "checkpoint 80:" in ok.output and "of 5 items (order " in ok.output
    bad = CliRunner().invoke(app, ["syntaxgym", str(trained / "checkpoint-80"), "--data", str(datasets / "no_shuffle"),
                                   "--suites", str(tmp_path / "none.json")])
    assert bad.exit_code == 1 and "cpllab/syntaxgym" in bad.output and "Traceback" not in bad.output
    wrong = CliRunner().invoke(app, ["syntaxgym", str(trained / "checkpoint-80"), "--data",
                                     str(datasets / "no_shuffle"), "--suites", str(suite), "--region-metric", "mean"])
    assert wrong.exit_code == 1 and "region_metric must be one of sum, first" in wrong.output


def test_eval_scores_pairs_and_suites_beside_perplexity(datasets, trained, tmp_path):
    """`ilm eval --pairs --suites`: the targeted evaluations as metrics of eval, stored with its rows."""
    from typer.testing import CliRunner

    from cli.main import app
    from impossible_lms.evaluation import load_results

    suite = write_good_bad(tmp_path / "order.json")
    pairs = tmp_path / "order.jsonl"
    pairs.write_text("".join(json.dumps({"sentence_good": " ".join(g), "sentence_bad": " ".join(b), "UID": "order"})
                             + "\n" for g, b in zip(GOOD, BAD)))
    res = tmp_path / "res"
    ok = CliRunner().invoke(app, ["eval", str(trained / "checkpoint-80"), "--data", str(datasets / "no_shuffle"),
                                  "--metrics", "perplexity", "--subsets", "test_affected", "--pairs", str(pairs),
                                  "--suites", str(suite), "--results", str(res), "--device", "cpu", "--no-progress"])
    assert ok.exit_code == 0, ok.output
    assert "metrics: perplexity, minimal_pair_accuracy, minimal_pair_dropped, syntaxgym_accuracy" in ok.output
    stored = load_results(res)
    last = stored[stored["subset"] == "all"].set_index("metric")["value"]
    assert last["minimal_pair_accuracy"] == 100.0 and last["syntaxgym_accuracy"] == 100.0
    assert set(stored["metric"]) == {"perplexity", "minimal_pair_accuracy", "minimal_pair_dropped", "syntaxgym_accuracy"}


# ---------------------------------------------------------------- ilm run stages and the report


def test_run_stages_score_every_checkpoint_once_and_the_report_tabulates_them(tmp_path):
    import pandas as pd
    import yaml

    from impossible_lms.experiment import load_experiment, run_experiment
    from impossible_lms.experiment.analyses import ANALYSES

    assert ANALYSES["syntaxgym"].applies("word_hop") and not ANALYSES["syntaxgym"].applies("partial_reverse")
    assert ANALYSES["minimal_pairs"].applies("partial_reverse")
    suite = write_good_bad(tmp_path / "order.json")
    pairs = tmp_path / "order.jsonl"
    pairs.write_text("".join(json.dumps({"sentence_good": " ".join(g), "sentence_bad": " ".join(b), "UID": "order"})
                             + "\n" for g, b in zip(GOOD, BAD)))
    exp = tmp_path / "exp.yaml"
    exp.write_text(yaml.safe_dump({
        "name": "t", "out": str(tmp_path / "out"), "languages": ["no_shuffle", "partial_reverse"],
        "models": ["tiny-gpt2"], "seeds": [0],
        "corpus": {"source": "synthetic", "options": {"sentences": 200, "seed": 0}, "tokenizer": "fallback",
                   "tagger": "gold"},
        "train": {"schedule": {"steps": 4, "warmup": 1}, "batch": {"tokens": 512}, "checkpoint": {"every": 2},
                  "device": "cpu"},
        "eval": {"metrics": ["perplexity"], "checkpoints": "all"},
        "analyses": {"minimal_pairs": {"pairs": str(pairs), "device": "cpu"},
                     "syntaxgym": {"suites": [str(suite)], "device": "cpu"}},
        "report": {"formats": ["md", "csv", "png"]}, "torch_threads": 1,
    }))
    cfg = load_experiment(exp)
    first = run_experiment(cfg, log=lambda m: None)
    ran = [e for e in first.executed if e.split(":")[0] in ("minimal_pairs", "syntaxgym")]
    assert sorted(ran) == ["minimal_pairs:no_shuffle/tiny-gpt2/0", "minimal_pairs:partial_reverse/tiny-gpt2/0",
                           "syntaxgym:no_shuffle/tiny-gpt2/0"]
    from impossible_lms.evaluation import load_results

    from impossible_lms.experiment import layout

    rows = load_results([layout(cfg).results()])
    sg = rows[rows.metric == "syntaxgym_accuracy"]
    assert set(sg.checkpoint) == {2, 4} and set(sg.language) == {"no_shuffle"}
    assert set(rows[rows.metric == "minimal_pair_accuracy"].language) == {"no_shuffle", "partial_reverse"}
    again = run_experiment(load_experiment(exp), log=lambda m: None)
    assert again.executed == []  # the planner's stamps say done: nothing is scored again

    report = layout(cfg).report()
    last = pd.read_csv(report / "syntaxgym.csv")
    assert set(last.checkpoint) == {4} and set(last.subset) == {"all", "order"}
    curve = pd.read_csv(report / "minimal_pairs_curve.csv")
    assert sorted(curve.checkpoint) == [2, 2, 4, 4] and set(curve.subset) == {"all"}
    assert set(pd.read_csv(report / "syntaxgym_predictions.csv").subset) == {"order: prediction 1"}
    assert (report / "syntaxgym_tiny-gpt2.png").is_file() and "SyntaxGym accuracy" in (report / "report.md").read_text()


def test_run_stage_without_its_stimuli_is_one_line(tmp_path):
    import types

    from impossible_lms.experiment.analyses import ANALYSES
    from impossible_lms.experiment.plan import Run

    cfg = types.SimpleNamespace(data_dir=tmp_path, results_dir=tmp_path)
    with pytest.raises(ILMError, match="analyses.syntaxgym needs suites"):
        ANALYSES["syntaxgym"].run(cfg, Run("no_shuffle", "tiny-gpt2", 0), {})
    with pytest.raises(ILMError, match="analyses.syntaxgym: unknown option 'local_agrement'.*local_agreement"):
        ANALYSES["syntaxgym"].run(cfg, Run("no_shuffle", "tiny-gpt2", 0), {"suites": "x", "local_agrement": True})


def test_two_region_metrics_in_one_folder_report_as_two_labelled_variants(datasets, trained, tmp_path):
    """`sum` then `first` into one results folder: both rows stay, each labelled with its options."""
    from impossible_lms.evaluation import load_results
    from impossible_lms.reporting import all_tables

    suite = write_good_bad(tmp_path / "order.json")
    for metric in ("sum", "first"):
        syntaxgym(trained / "checkpoint-80", datasets / "no_shuffle", suite, results=tmp_path / "res",
                  region_metric=metric, device="cpu")
    rows = load_results([tmp_path / "res"])
    assert set(rows["options"]) == {"region_metric=sum, local_agreement=False",
                                    "region_metric=first, local_agreement=False"}
    table = all_tables(rows)["syntaxgym"]
    overall = table[table["subset"] == "all"]
    assert sorted(overall["setting"]) == ["options=region_metric=first, local_agreement=False",
                                          "options=region_metric=sum, local_agreement=False"]
