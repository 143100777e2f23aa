"""The marked tokenizer: exact marker ids, lstrip behaviour, vocabulary sizes, the fallback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from impossible_lms.errors import ILMError
from impossible_lms.tokenizer import EOS_TOKEN, load_tokenizer
from perturbations import MARKER_PLURAL, MARKER_REVERSE, MARKER_SINGULAR, get_language

SHARED_GPT2 = Path(__file__).resolve().parents[2] / "shared" / "data" / "gpt2-tokenizer"
HOP = (MARKER_SINGULAR, MARKER_PLURAL)
BYTES = "".join(chr(c) for c in range(33, 127))  # printable ASCII is its own byte-level symbol


@pytest.fixture(scope="module")
def gpt2_shaped(tmp_path_factory) -> Path:
    """vocab.json + merges.txt laid out like GPT-2: 50257 ids, EOS last (50256)."""
    folder = tmp_path_factory.mktemp("gpt2-shaped")
    alphabet = list(BYTES) + ["Ġ"]  # Ġ is the byte-level space
    merges = [("d", "o"), ("do", "g"), ("Ġ", "r"), ("Ġr", "u"), ("Ġru", "n"), ("Ġrun", "s")]
    vocab = {t: i for i, t in enumerate(alphabet + ["".join(m) for m in merges])}
    for i in range(len(vocab), 50256):
        vocab[f"filler{i}"] = i
    vocab[EOS_TOKEN] = 50256
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n", encoding="utf-8")
    return folder


def test_marker_ids_follow_the_base_vocabulary_in_language_order(gpt2_shaped):
    hop = load_tokenizer(gpt2_shaped, markers=get_language("word_hop").markers)
    assert hop.marker_ids == {MARKER_SINGULAR: 50257, MARKER_PLURAL: 50258}
    assert hop.eos_id == 50256
    rev = load_tokenizer(gpt2_shaped, markers=get_language("partial_reverse").markers)
    assert rev.marker_ids == {MARKER_REVERSE: 50257}


@pytest.mark.parametrize("language, size", [("no_shuffle", 50257), ("full_reverse", 50258), ("token_hop", 50259)])
def test_vocab_size_per_family(gpt2_shaped, language, size):
    assert load_tokenizer(gpt2_shaped, markers=get_language(language).markers).vocab_size == size


def test_marker_absorbs_the_space_on_its_left_only(gpt2_shaped):
    tok = load_tokenizer(gpt2_shaped, markers=HOP)
    dog, runs = tok.encode("dog"), tok.encode(" runs")
    assert dog == [tok.backend.token_to_id("dog")]
    assert runs == [tok.backend.token_to_id("Ġruns")]
    assert tok.encode(f"dog {MARKER_SINGULAR}") == dog + [50257]
    assert tok.encode(f"dog {MARKER_PLURAL} runs") == dog + [50258] + runs
    assert tok.encode(f"dog{MARKER_SINGULAR}") == dog + [50257]
    assert tok.encode_batch([f"dog {MARKER_SINGULAR}", "dog runs"]) == [dog + [50257], dog + runs]


def test_a_saved_tokenizer_loads_back_with_the_same_ids(gpt2_shaped, tmp_path):
    tok = load_tokenizer(gpt2_shaped, markers=HOP)
    tok.save(tmp_path / "tok")
    back = load_tokenizer(tmp_path / "tok")
    assert back.marker_ids == tok.marker_ids
    assert back.fingerprint == tok.fingerprint
    assert back.encode(f"dog {MARKER_PLURAL} runs") == tok.encode(f"dog {MARKER_PLURAL} runs")
    assert not back.is_fallback


def test_a_saved_tokenizer_refuses_other_markers(gpt2_shaped, tmp_path):
    load_tokenizer(gpt2_shaped, markers=HOP).save(tmp_path / "tok")
    with pytest.raises(ILMError, match="saved with markers"):
        load_tokenizer(tmp_path / "tok", markers=(MARKER_REVERSE,))


def test_marker_sets_change_the_fingerprint(gpt2_shaped):
    a = load_tokenizer(gpt2_shaped)
    b = load_tokenizer(gpt2_shaped, markers=(MARKER_REVERSE,))
    assert a.fingerprint != b.fingerprint
    assert a.with_markers((MARKER_REVERSE,)).fingerprint == b.fingerprint


TEXTS = ["the dog runs to the park .", "a cat sleeps in the warm house .", "the dogs run quickly ."] * 50


def test_fallback_is_trained_labelled_and_deterministic():
    a = load_tokenizer("fallback", markers=(MARKER_REVERSE,), corpus=TEXTS, fallback_vocab=320)
    b = load_tokenizer("fallback", markers=(MARKER_REVERSE,), corpus=TEXTS, fallback_vocab=320)
    assert a.is_fallback and a.name == "fallback"
    assert a.describe() == {"name": "fallback", "fallback": True, "fingerprint": b.fingerprint}
    assert a.vocab_size <= 320 + 1
    assert a.eos_id == a.vocab_size - 2  # EOS last in the base vocabulary, then the marker
    assert a.marker_ids == {MARKER_REVERSE: a.vocab_size - 1}
    text = f"the dog {MARKER_REVERSE} runs"
    assert a.encode(text) == a.encode("the dog") + [a.marker_ids[MARKER_REVERSE]] + a.encode(" runs")
    assert a.decode(a.encode("the dog runs")) == "the dog runs"


def test_fallback_label_survives_save(tmp_path):
    load_tokenizer("fallback", corpus=TEXTS, fallback_vocab=320).save(tmp_path / "t")
    back = load_tokenizer(tmp_path / "t")
    assert back.is_fallback and back.describe()["fallback"] is True


def test_fallback_needs_a_corpus():
    with pytest.raises(ILMError, match="trained on the corpus"):
        load_tokenizer("fallback")


def test_uncached_hub_id_explains_the_offline_choices():
    with pytest.raises(ILMError, match="--tokenizer PATH.*--tokenizer fallback"):
        load_tokenizer("no-such-org-ilm/no-such-tokenizer")


@pytest.mark.parametrize("spec", ["./missing-tok", "/nonexistent/tok/dir"])
def test_missing_folder_is_a_user_error(spec):
    with pytest.raises(ILMError, match="not found"):
        load_tokenizer(spec)


def test_folder_without_tokenizer_files_is_a_user_error(tmp_path):
    with pytest.raises(ILMError, match="neither tokenizer.json"):
        load_tokenizer(tmp_path)


def test_broken_tokenizer_json_is_a_user_error(tmp_path):
    (tmp_path / "tokenizer.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ILMError, match="cannot read tokenizer"):
        load_tokenizer(tmp_path)


@pytest.mark.shared
@pytest.mark.skipif(not SHARED_GPT2.is_dir(), reason="needs ../shared/data/gpt2-tokenizer")
def test_real_gpt2_markers():
    tok = load_tokenizer(SHARED_GPT2, markers=HOP)
    assert tok.vocab_size == 50259 and tok.eos_id == 50256
    assert tok.encode(f"dog {MARKER_SINGULAR}") == [9703, 50257]
    assert tok.encode(f"the dog {MARKER_PLURAL} runs") == tok.encode("the dog") + [50258] + tok.encode(" runs")
    assert load_tokenizer(SHARED_GPT2, markers=(MARKER_REVERSE,)).vocab_size == 50258
