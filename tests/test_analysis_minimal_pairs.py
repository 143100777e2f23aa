"""BLiMP-style minimal pairs: loading, putting stimuli into a language, accuracy, a model that knows."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from impossible_lms.analysis.minimal_pairs import MinimalPair, load_pairs, minimal_pairs, pair_rows, perturb_pairs
from impossible_lms.errors import ILMError
from perturbations import Sentence, Word

GOOD = ["the dog sees a cat .", "a bird sings .", "the cats run home ."]
BAD = ["the dog a cat sees .", "sings a bird .", "the cats home run ."]


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    from impossible_lms.perturb import perturb_corpus

    out = tmp_path_factory.mktemp("mp")
    perturb_corpus(["no_shuffle", "partial_reverse", "no_hop"], "synthetic", out, tokenizer="fallback",
                   tagger="gold", progress=False, corpus_options={"sentences": 300, "seed": 0}, fallback_vocab=300)
    return out


def write_pairs(path, goods=GOOD, bads=BAD, field="UID"):
    lines = [json.dumps({"sentence_good": g, "sentence_bad": b, field: f"p{i % 2}"})
             for i, (g, b) in enumerate(zip(goods, bads))]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_pairs_load_with_their_phenomenon(tmp_path):
    f = write_pairs(tmp_path / "agr.jsonl")
    pairs = load_pairs(f)
    assert pairs[1] == MinimalPair("a bird sings .", "sings a bird .", "p1", "p1")  # UID: the paradigm
    (tmp_path / "plain.jsonl").write_text(json.dumps({"sentence_good": "a", "sentence_bad": "b"}) + "\n")
    assert load_pairs(tmp_path / "plain.jsonl")[0].phenomenon == "plain"
    assert len(load_pairs(tmp_path)) == 4  # a folder: every *.jsonl, sorted


def test_pair_file_errors_are_one_line(tmp_path):
    with pytest.raises(ILMError, match="nyu-mll/blimp"):
        load_pairs(tmp_path / "missing.jsonl")
    (tmp_path / "bad.jsonl").write_text('{"sentence_good": "x"}\n')
    with pytest.raises(ILMError, match=r"bad.jsonl:1: sentence_bad must be a non-empty sentence \(a string\), got missing"):
        load_pairs(tmp_path / "bad.jsonl")
    for value, shown in ((5, "5"), (None, "None"), ("", "''")):  # the field named, not "the filters dropped them"
        (tmp_path / "bad.jsonl").write_text(json.dumps({"sentence_good": value, "sentence_bad": "y"}) + "\n")
        with pytest.raises(ILMError, match=rf"bad.jsonl:1: sentence_good must be a non-empty sentence \(a string\), got {shown}$"):
            load_pairs(tmp_path / "bad.jsonl")
    (tmp_path / "bad.jsonl").write_text("[1, 2]\n")
    with pytest.raises(ILMError, match=r"bad.jsonl:1: not a JSON object with sentence_good and sentence_bad"):
        load_pairs(tmp_path / "bad.jsonl")


def test_blimp_rows_group_by_paradigm_and_by_phenomenon_and_keep_the_dropped(tmp_path):
    """BLiMP's UID is the paradigm (67), linguistics_term the phenomenon (13): both levels, and the
    pairs a language drops, per paradigm."""
    lines = [{"sentence_good": "a b", "sentence_bad": "b a", "UID": uid, "linguistics_term": term}
             for uid, term in (("anaphor_gender_agreement", "anaphor_agreement"),
                               ("anaphor_number_agreement", "anaphor_agreement"),
                               ("animate_subject_passive", "argument_structure"))]
    (tmp_path / "blimp.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    pairs = load_pairs(tmp_path / "blimp.jsonl")
    assert [(p.paradigm, p.phenomenon) for p in pairs] == [(x["UID"], x["linguistics_term"]) for x in lines]
    rows = pair_rows([-1.0, -5.0, -2.0], [-2.0, -4.0, -9.0], [p.phenomenon for p in pairs],
                     paradigms=[p.paradigm for p in pairs], dropped={"anaphor_gender_agreement": 0,
                                                                     "anaphor_number_agreement": 2,
                                                                     "animate_subject_passive": 0})
    acc = {(r.get("label", ""), r["subset"]): r["value"] for r in rows if r["metric"] == "minimal_pair_accuracy"}
    assert acc == {("", "all"): pytest.approx(200 / 3), ("paradigm", "anaphor_gender_agreement"): 100.0,
                   ("paradigm", "anaphor_number_agreement"): 0.0, ("paradigm", "animate_subject_passive"): 100.0,
                   ("phenomenon", "anaphor_agreement"): 50.0, ("phenomenon", "argument_structure"): 100.0}
    dropped = {r["subset"]: r["value"] for r in rows if r["metric"] == "minimal_pair_dropped"}
    assert dropped == {"anaphor_gender_agreement": 0, "anaphor_number_agreement": 2, "animate_subject_passive": 0}

    from impossible_lms.reporting import all_tables

    frame = pd.DataFrame([{**r, "language": "no_shuffle", "model": "m", "seed": 0, "checkpoint": 1,
                           "label": r.get("label", "")} for r in rows])
    tables = all_tables(frame)  # the report's own path: every row goes to the view that claims its metric
    assert "final" not in tables  # no minimal-pair row leaks into the evaluation tables
    assert set(tables["minimal_pairs"]["subset"]) == {"all", "anaphor_gender_agreement", "anaphor_number_agreement",
                                                      "animate_subject_passive"}
    assert set(tables["minimal_pairs_phenomena"]["subset"]) == {"all", "anaphor_agreement", "argument_structure"}
    assert dict(zip(tables["minimal_pairs_dropped"]["subset"], tables["minimal_pairs_dropped"]["value"]))[
        "anaphor_number_agreement"] == 2


def test_accuracy_rows_per_phenomenon_and_overall():
    rows = pair_rows([-1.0, -5.0, -2.0, -3.0], [-2.0, -4.0, -9.0, -3.0], ["a", "a", "b", "b"])
    by = {r["subset"]: r for r in rows}
    assert by["all"]["value"] == 50.0 and by["all"]["count"] == 4
    assert by["a"]["value"] == 50.0 and by["b"]["value"] == 50.0  # a tie is not a win
    assert by["all"]["unit"] == "%"


def test_stimuli_take_the_language_s_rules(datasets, tmp_path):
    from impossible_lms.data import load_dataset_tokenizer

    pairs = load_pairs(write_pairs(tmp_path / "p.jsonl"))
    tok = load_dataset_tokenizer(datasets / "no_shuffle")
    plain = perturb_pairs(pairs, datasets / "no_shuffle")
    assert plain.good == [tok.encode(t) for t in GOOD] and plain.bad == [tok.encode(t) for t in BAD]

    # PartialReverse, transcribed: one default_rng(21) stream, good then bad, marker at choice(n + 1)
    # and the tokens after it reversed.
    tok = load_dataset_tokenizer(datasets / "partial_reverse")
    marker = tok.marker_ids["🅁"]
    rng = np.random.default_rng(21)
    expected = []
    for text in [t for pair in zip(GOOD, BAD) for t in pair]:
        ids = tok.encode(text)
        i = int(rng.choice(len(ids) + 1))
        expected.append(ids[:i] + [marker] + ids[i:][::-1])
    rev = perturb_pairs(pairs, datasets / "partial_reverse")
    assert rev.good == expected[0::2] and rev.bad == expected[1::2] and rev.dropped == 0


class FakeTagger:
    """Tags by a fixed lexicon: 'sees'/'sings' are 3rd-person singular present verbs."""

    verbs = {"sees": "see", "sings": "sing"}

    def tag_lines(self, lines, genre):
        out = []
        for line in lines:
            words = tuple(
                Word(w, "VERB", "Number=Sing|Person=3|Tense=Pres|VerbForm=Fin", self.verbs[w]) if w in self.verbs
                else Word(w, "PUNCT" if w == "." else "NOUN", "_", w)
                for w in line.split()
            )
            out.append(Sentence(line, words, genre))
        return out


def test_hop_stimuli_get_markers_from_the_tagger(datasets, tmp_path):
    from impossible_lms.data import load_dataset_tokenizer

    goods = ["a bird sings in the old garden .", "the dog sees .", "the cats run home ."]
    bads = ["a bird sing in the old garden .", "the dog see .", "the cats runs home ."]
    pairs = load_pairs(write_pairs(tmp_path / "p.jsonl", goods, bads))
    tok = load_dataset_tokenizer(datasets / "no_hop")
    hop = perturb_pairs(pairs, datasets / "no_hop", tagger=FakeTagger())
    # NoHop: the lemma, then the marker; 'sing' is not in the lexicon, so the bad side is unchanged.
    assert hop.good[0] == tok.encode("a bird sing 🅂 in the old garden .")
    assert hop.bad[0] == tok.encode("a bird sing in the old garden .")
    # 'the dog sees .' cannot complete WordHop's 4 hops: the hop languages drop it, and its pair.
    assert hop.dropped == 1 and hop.phenomena == ["p0", "p0"]
    assert hop.good[1] == tok.encode("the cats run home .")  # no 3rd-person present verb: unchanged


def test_a_model_that_learned_the_good_sentences_prefers_them(datasets, tmp_path):
    from impossible_lms.data import load_dataset_tokenizer
    from impossible_lms.models import build_model, model_config

    tok = load_dataset_tokenizer(datasets / "no_shuffle")
    torch.manual_seed(0)
    model = build_model(model_config("tiny-gpt2", vocab_size=tok.vocab_size, embd_pdrop=0.0, attn_pdrop=0.0,
                                     resid_pdrop=0.0))
    rows = [[tok.eos_id] + tok.encode(t) for t in GOOD]
    width = max(map(len, rows))
    x = torch.tensor([r + [tok.eos_id] * (width - len(r)) for r in rows])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(60):
        model(input_ids=x, labels=x).loss.backward()
        opt.step()
        opt.zero_grad()
    ckpt = tmp_path / "checkpoint-60"
    model.save_pretrained(ckpt)

    pairs = write_pairs(tmp_path / "p.jsonl")
    df = minimal_pairs(ckpt, datasets / "no_shuffle", pairs, results=tmp_path / "results", device="cpu")
    by = df.set_index("subset")["value"]
    assert by["all"] == 100.0 and set(df["metric"]) == {"minimal_pair_accuracy", "minimal_pair_dropped"}
    # The chance model does not: swap the roles and the same model scores 0.
    flipped = write_pairs(tmp_path / "flipped.jsonl", BAD, GOOD)
    assert minimal_pairs(ckpt, datasets / "no_shuffle", flipped, device="cpu").set_index("subset")["value"]["all"] == 0.0
    # Stored rows are read back, not recomputed.
    again = minimal_pairs(ckpt, datasets / "no_shuffle", pairs, results=tmp_path / "results", device="cpu")
    assert again["value"].tolist() == df["value"].tolist()


def test_cli_reports_accuracy_and_refuses_a_missing_pairs_file(datasets, tmp_path):
    from typer.testing import CliRunner

    from cli.main import app

    ckpt = tmp_path / "checkpoint-1"
    from impossible_lms.data import load_dataset_tokenizer
    from impossible_lms.models import build_model, model_config

    build_model(model_config("tiny-gpt2", vocab_size=load_dataset_tokenizer(datasets / "no_shuffle").vocab_size)
                ).save_pretrained(ckpt)
    pairs = write_pairs(tmp_path / "p.jsonl")
    ok = CliRunner().invoke(app, ["minimal-pairs", str(ckpt), "--data", str(datasets / "no_shuffle"), "--pairs",
                                  str(pairs), "--results", str(tmp_path / "res"), "--device", "cpu"])
    assert ok.exit_code == 0, ok.output
    assert "% of 3 pairs" in ok.output
    bad = CliRunner().invoke(app, ["minimal-pairs", str(ckpt), "--data", str(datasets / "no_shuffle"), "--pairs",
                                   str(tmp_path / "none.jsonl")])
    assert bad.exit_code == 1 and "nyu-mll/blimp" in bad.output and "Traceback" not in bad.output
