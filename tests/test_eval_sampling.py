"""The test sample is the reference's, sentence for sentence.

The reference's perplexities.py and hop_surprisal.py are transcribed here from
their description (not by calling ilm): read each ``babylm_test_affected/<genre>.test``
file of token ids in sorted file order, and draw from ONE ``default_rng(seed)``
stream ``rng.choice(list(range(n)), 1000, replace=False)`` per file; the surprisal
script first appends EOS and drops sequences of 1024 tokens or more.
"""

from __future__ import annotations

import glob
import warnings
from pathlib import Path

import numpy as np
import pytest
from numpy.random import default_rng

from impossible_lms.data import Manifest, write_dataset
from impossible_lms.errors import ILMError
from impossible_lms.evaluation import evaluate
from impossible_lms.evaluation.data import EvalData
from impossible_lms.evaluation.metrics import SURPRISAL_MAX_TOKENS, marker_pairs
from impossible_lms.evaluation.toy import EOS, MARKER, make_toy_data, make_toy_run

FILE_SAMPLE_SIZE = 1000
MAX_SEQ_LEN = 1024
# The reference globs its babylm_test_affected/<genre>_affected.test files and sorts the file names:
# '-' < '1' < '_', so "bnc-spoken_affected.test" comes first, then "bnc1_...", then "bnc_..." (sorting
# "<genre>.test" would put bnc before bnc1: '.' < '1'). "mid" has exactly 1000 sentences (the
# reference still draws a permutation there).
SIZES = {"bnc": 1200, "bnc-spoken": 1100, "bnc1": 1300, "aochildes": 1300, "mid": 1000}


def reference_perplexity_sample(folder: Path, seed: int) -> list[list[int]]:
    test_files = sorted(glob.glob(f"{folder}/*"))
    rng = default_rng(seed)
    token_sequences = []
    for test_file in test_files:
        with open(test_file) as f:
            file_token_sequences = [[int(s) for s in line.split()] for line in f.readlines()]
        sample_indices = rng.choice(list(range(len(file_token_sequences))), FILE_SAMPLE_SIZE, replace=False)
        token_sequences.extend(file_token_sequences[i] for i in sample_indices)
    return token_sequences


def reference_surprisal_sample(folder: Path, seed: int, eos: int) -> list[list[int]]:
    test_files = sorted(glob.glob(f"{folder}/*"))
    rng = default_rng(seed)
    marker_token_sequences = []
    for test_file in test_files:
        with open(test_file) as f:
            file_token_sequences = [[int(s) for s in line.split()] + [eos] for line in f.readlines()]
        file_token_sequences = [toks for toks in file_token_sequences if len(toks) < MAX_SEQ_LEN]
        sample_indices = rng.choice(list(range(len(file_token_sequences))), FILE_SAMPLE_SIZE, replace=False)
        marker_token_sequences.extend(file_token_sequences[i] for i in sample_indices)
    return marker_token_sequences


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A hop-like test split with uneven genres (rows interleaved, as a corpus may store them) and
    sentences around the 1024 limit; plus the same rows as the reference's per-genre text files."""
    root = tmp_path_factory.mktemp("sampling")
    rng = np.random.default_rng(7)
    rows: list[tuple[str, list[int]]] = []
    for genre, n in SIZES.items():
        for i in range(n):
            length = int(rng.integers(3, 15))
            if i % 97 == 5 and genre != "mid":  # mid keeps exactly 1000 for the surprisal draw too
                length = 1021 + i % 3  # 1021..1023 tokens: with EOS 1022..1024, the last one dropped
            words = rng.integers(0, 37, length).tolist()
            words[int(rng.integers(1, length))] = MARKER
            rows.append((genre, words))
    order = rng.permutation(len(rows))
    rows = [rows[i] for i in order]
    ids, genres = [r[1] for r in rows], [r[0] for r in rows]
    split = {"input_ids": ids, "genre": genres, "affected": [True] * len(ids)}
    manifest = Manifest(
        language="no_hop", family="hop", params={},
        tokenizer={"name": "toy", "fallback": True, "fingerprint": "toy-40"}, vocab_size=40, eos_id=EOS,
        marker_ids={"🅂": MARKER}, corpus={"name": "toy", "fingerprint": "sampling"}, tagger="gold",
    )
    data = write_dataset(root / "data", {s: split for s in ("train", "dev", "test_affected")}, manifest)
    files = root / "babylm_test_affected"
    files.mkdir()
    for genre in SIZES:
        lines = [" ".join(map(str, s)) for g, s in rows if g == genre]
        (files / f"{genre}_affected.test").write_text("\n".join(lines) + "\n")
    assert sum(len(s) + 1 >= MAX_SEQ_LEN for s in ids) > 0  # the filter has work to do
    return data, files


@pytest.mark.parametrize("seed", [0, 53])
def test_perplexity_sample_is_the_references(corpus, seed):
    data, files = corpus
    got = EvalData(data, FILE_SAMPLE_SIZE, seed).sample("test_affected")
    assert len(got) == 5000
    assert got == reference_perplexity_sample(files, seed)


@pytest.mark.parametrize("seed", [0, 53])
def test_surprisal_sample_filters_before_drawing_as_the_reference(corpus, seed):
    data, files = corpus
    d = EvalData(data, FILE_SAMPLE_SIZE, seed)
    want = reference_surprisal_sample(files, seed, EOS)
    assert [s + [EOS] for s in d.sample("test_affected", SURPRISAL_MAX_TOKENS)] == want
    # the metric's sequences are exactly those, marker first-found as the reference does
    pairs = marker_pairs(d.sample("test_affected", SURPRISAL_MAX_TOKENS), [MARKER], EOS)
    assert pairs.with_marker == want
    assert pairs.index == [s.index(MARKER) for s in want]
    # filtering after sampling (ilm's old way) would have scored other sentences
    assert d.sample("test_affected", SURPRISAL_MAX_TOKENS) != [
        s for s in d.sample("test_affected") if len(s) <= SURPRISAL_MAX_TOKENS]


def test_a_genre_smaller_than_asked_is_taken_whole_and_reported(corpus):
    data, files = corpus
    d = EvalData(data, 1250, 0)
    with pytest.warns(UserWarning, match=r"fewer than 1250 .*bnc-spoken has 1100.*bnc has 1200.*mid has 1000"):
        got = d.sample("test_affected")
    assert d.shortfall("test_affected") == 150 + 50 + 250
    # the reference crashes here; ilm takes the small files whole, in file order, drawing nothing for them,
    # so aochildes (the only file big enough) gets the stream's first draw
    by_file = {g: [[int(t) for t in line.split()] for line in (files / f"{g}_affected.test").read_text().splitlines()]
               for g in SIZES}
    rng = default_rng(0)
    first = [by_file["aochildes"][i] for i in rng.choice(1300, 1250, replace=False)]
    bnc1 = [by_file["bnc1"][i] for i in rng.choice(1300, 1250, replace=False)]
    assert got == first + by_file["bnc-spoken"] + bnc1 + by_file["bnc"] + by_file["mid"]


def test_shortfall_is_a_warning_and_a_count_in_the_rows(tmp_path):
    data = make_toy_data(tmp_path / "data", per_genre=10)
    run = make_toy_run(tmp_path / "run", steps=(100,), data=data)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = evaluate(run, data, metrics=["perplexity", "marker_surprisal"], sentences_per_genre=12)
    assert any("fewer than 12 sentences" in str(w.message) for w in caught)
    assert (df["sample_short"] == 4).all() and (df["count"] == 20).all()
    assert set(df["sample_scheme"]) == {"reference"} and set(df["sample_size"]) == {12}
    full = evaluate(run, data, metrics=["perplexity"], sentences_per_genre=10)
    assert (full["sample_short"] == 0).all()


def test_per_genre_scheme_is_an_option_and_recorded(corpus, tmp_path):
    data, files = corpus
    ref = EvalData(data, 50, 0).sample("test_affected")
    per = EvalData(data, 50, 0, scheme="per_genre").sample("test_affected")
    assert len(per) == len(ref) == 250 and per != ref  # 5 genres x 50
    # per_genre: one genre's sample does not depend on the others
    assert per == EvalData(data, 50, 0, scheme="per_genre").sample("test_affected")
    with pytest.raises(ILMError, match="unknown sample scheme 'nope'; choose from reference, per_genre"):
        EvalData(data, 50, 0, scheme="nope")
    toy = make_toy_data(tmp_path / "toy", per_genre=6)
    run = make_toy_run(tmp_path / "run", steps=(100,), data=toy)
    df = evaluate(run, toy, metrics=["perplexity"], sentences_per_genre=3, sample_scheme="per_genre")
    assert set(df["sample_scheme"]) == {"per_genre"} and (df["count"] == 6).all()


def test_the_sample_seed_is_the_runs_seed(tmp_path):
    data = make_toy_data(tmp_path / "data", per_genre=10)
    run = make_toy_run(tmp_path / "runs" / "no_hop" / "tiny-gpt2" / "seed14", steps=(100,), data=data, seed=14)
    df = evaluate(run, data, metrics=["perplexity"], sentences_per_genre=4)
    assert set(df["sample_seed"]) == {14} and set(df["seed"]) == {14}
    same = evaluate(run, data, metrics=["perplexity"], sentences_per_genre=4, seed=14)
    assert list(same["value"]) == list(df["value"])


def test_a_reference_run_folder_samples_with_the_seed_in_its_name(tmp_path):
    """The reference trainer's folders carry no run.json: the seed comes from the name, and says so."""
    from impossible_lms.evaluation.subjects import resolve_subject
    from impossible_lms.evaluation.toy import tiny_gpt2

    run = tmp_path / "runs" / "babylm_shuffle_control_10M_randinit_seed14"
    tiny_gpt2().save_pretrained(run / "checkpoint-100")
    with pytest.warns(UserWarning, match=r"seed 14 taken from the folder's name"):
        subj = resolve_subject(run)
    assert subj.seed == 14
