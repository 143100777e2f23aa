"""Agreement pairs against an independent transcription of the reference's create_agreement_data.py."""

from __future__ import annotations

import re

import numpy as np
import pytest

from impossible_lms.analysis.agreement import (
    AgreementData, candidate_sequences, load_agreement_data, pluralise, reference_pluralize,
)
from impossible_lms.errors import ILMError

SG, PL = 50257, 50258  # the reference's marker ids (both contain a 0)
# A word-level vocabulary; several ids contain the digit 0, which the reference's regex cannot match.
WORDS = ["The", "the", "dog", "cat", "fox", "mouse", "dogs", "cats", "foxes", "mice", "sheep", "runs", "sees",
         "run", "see", "a", "big", "red", "ball", "tree", "in", "near", ".", "box", "boxes", "wolf", "kitten"]
IDS = {w: i for w, i in zip(WORDS, [5, 7, 11, 12, 20, 13, 14, 15, 16, 17, 18, 19, 101, 21, 22, 23, 24, 30, 25,
                                     26, 27, 28, 29, 31, 32, 33, 100])}
WORD = {i: w for w, i in IDS.items()}
UNKNOWN = [1, 2]  # a word outside the vocabulary encodes to two ids (so its pair is dropped: length differs)


def encode(text: str) -> list[int]:
    return [i for w in text.split() for i in ([IDS[w]] if w in IDS else UNKNOWN)]


def decode(ids) -> str:
    return " ".join(WORD.get(i, "?") for i in ids)


def corpus(n: int, seed: int = 0) -> tuple[list[list[int]], list[list[int]]]:
    """Line-paired no_hop / word_hop id rows: 'DET SUBJ VERB w w w w ...' with the marker placed
    after the verb (no_hop) or after the 4 following tokens (word_hop), plus noise rows."""
    rng = np.random.default_rng(seed)
    subjects = ["dog", "cat", "fox", "mouse", "sheep", "dogs", "box", "wolf", "kitten", "the"]
    others = ["a", "big", "red", "ball", "tree", "in", "near", "the", "cat", "box"]
    control, hop = [], []
    for _ in range(n):
        prefix = [rng.choice(others) for _ in range(int(rng.integers(0, 3)))]
        det = rng.choice(["The", "the", "a"])
        words = [det, rng.choice(subjects), rng.choice(["runs", "sees"])]
        words += [rng.choice(others) for _ in range(int(rng.integers(2, 8)))] + ["."]
        ids = [IDS[w] for w in prefix + words]
        v = len(prefix) + 2
        if rng.random() < 0.1:  # a second marker right after: the window must refuse markers
            ctrl = ids[: v + 1] + [SG, PL] + ids[v + 1 :]
        else:
            ctrl = ids[: v + 1] + [SG] + ids[v + 1 :]
        h = list(ids)
        h.insert(min(len(h), v + 5), SG)
        if rng.random() < 0.3:  # a second clause: two matches per line, zip pairs them in order
            tail = [IDS["the"], IDS[rng.choice(subjects)], IDS["sees"]] + [IDS[rng.choice(others)] for _ in range(4)]
            ctrl += tail[:3] + [SG] + tail[3:]
            h += tail + [SG]
        control.append(ctrl)
        hop.append(h)
    return control, hop


def reference_transcription(control_rows, hop_rows, digits: str):
    """create_agreement_data.py, transcribed: regexes over space-joined id lines, ``digits`` the token class."""
    the = f"(?:{IDS['The']}|{IDS['the']})"
    t = digits
    control_pattern = f"(?:^| ){the} {t} {t} {SG} {t} {t} {t} {t}"
    words4_pattern = f"(?:^| ){the} {t} {t} {t} {t} {t} {t} {SG}"
    candidates = []
    for cl, wl in zip((" ".join(map(str, r)) for r in control_rows), (" ".join(map(str, r)) for r in hop_rows)):
        for cseq, wseq in zip(re.findall(control_pattern, cl), re.findall(words4_pattern, wl)):
            if cseq.replace(" " + str(SG), "") == wseq.replace(" " + str(SG), ""):
                candidates.append([int(s) for s in wseq.replace(str(SG), "").split()])
    data = []
    for seq in candidates:
        splitted = decode(seq).split()
        splitted[1] = reference_pluralize(splitted[1])
        plur_seq = encode(" ".join(splitted))
        if len(plur_seq) != len(seq):
            continue
        plur_seq[0] = seq[0]
        if seq == plur_seq:
            continue
        data.append((seq, plur_seq))
    return data


def ours(control, hop):
    cands = candidate_sequences(control, hop, {IDS["The"], IDS["the"]}, SG, {SG, PL})
    return pluralise(cands, encode, decode, reference_pluralize)


# Any id but a marker: the reference's intent without its [1-9]+ gap.
FIXED = rf"(?!{SG}\b)(?!{PL}\b)\d+"


def test_matches_the_reference_transcription_without_its_zero_bug():
    control, hop = corpus(400)
    mine = ours(control, hop)
    assert mine == reference_transcription(control, hop, FIXED)
    assert len(mine) > 20
    # the ids keep their singular determiner and differ only in the subject
    for s, p in mine:
        assert s[0] == p[0] and s[2:] == p[2:] and s[1] != p[1]


def test_the_reference_regex_drops_ids_with_a_zero():
    control, hop = corpus(400)
    mine = ours(control, hop)
    buggy = reference_transcription(control, hop, "[1-9]+")
    assert set(map(str, buggy)) < set(map(str, mine))
    zero = [s for s, _ in mine if any("0" in str(i) for i in s)]
    assert zero and not any(s in [b for b, _ in buggy] for s in zero)
    # with no zero anywhere in the window the two agree
    assert [(s, p) for s, p in mine if not any("0" in str(i) for i in s)] == \
           [(s, p) for s, p in buggy if not any("0" in str(i) for i in s)]


def test_pluralisation_rules():
    pairs = dict((decode(s), decode(p)) for s, p in ours(*corpus(400)))
    plurals = {k.split()[1]: v.split()[1] for k, v in pairs.items()}
    assert plurals.get("mouse") == "mice" and plurals.get("fox") == "foxes"
    assert "sheep" not in plurals and "dogs" not in plurals  # unchanged plural: dropped
    assert "wolf" not in plurals  # "wolves" is outside the vocabulary: two ids, dropped


def test_pairs_file_round_trip(tmp_path):
    data = AgreementData([[1, 2, 3]], [[1, 4, 3]], SG, PL, "fp", {"split": "test_affected"})
    back = load_agreement_data(data.save(tmp_path / "pairs.json"))
    assert (back.singular, back.plural, back.singular_marker, back.plural_marker) == ([[1, 2, 3]], [[1, 4, 3]], SG, PL)
    assert back.fingerprint == data.fingerprint
    assert back.truncated(2).singular == [[1, 2]]
    (tmp_path / "bad.json").write_text('{"format": "other"}')
    with pytest.raises(ILMError, match="not an agreement data file"):
        load_agreement_data(tmp_path / "bad.json")
    with pytest.raises(ILMError, match="different lengths"):
        AgreementData([[1, 2], [1]], [[1, 3], [2]], SG, PL)
