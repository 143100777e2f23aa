"""Sentence splitting: the short cut past punkt gives punkt's own answer.

The short cut only looks at where sentence-end characters are, never at punkt's
learned parameters (abbreviations, collocations), so an untrained punkt, which
needs no NLTK data, checks it on any line; the ``shared`` test checks it with the
real English model on every line of the BabyLM sample.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from impossible_lms.corpus.splitting import split_with

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def untrained_punkt():
    from nltk.tokenize.punkt import PunktSentenceTokenizer

    return PunktSentenceTokenizer()


class Counting:
    """punkt's tokenize, counting calls."""

    def __init__(self, tokenize):
        self.tokenize, self.calls = tokenize, 0

    def __call__(self, line: str) -> list[str]:
        self.calls += 1
        return self.tokenize(line)


@pytest.mark.parametrize(
    "line, asks_punkt",
    [
        ("what's that ?", False),
        ("yeah", False),
        ("  padded line .  ", False),
        ("", False),
        ("   ", False),
        ("He came. She left.", True),
        ("wow!!!", True),
        ("Mr. Smith", True),
        ("so... okay", True),
    ],
)
def test_short_cut_only_where_punkt_cannot_break(line: str, asks_punkt: bool) -> None:
    punkt = untrained_punkt()
    counting = Counting(punkt.tokenize)
    assert split_with(counting, line) == punkt.tokenize(line)
    assert counting.calls == int(asks_punkt)


WORDS = st.sampled_from(["the", "dog", "Mr", "U.S", "a", "b", "'s", "(", ")", '"', "", "..."])
ENDS = st.sampled_from(["", "", ".", "?", "!", "!!", ".)", '."', " .", ";"])


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(st.tuples(WORDS, ENDS), max_size=8), space=st.sampled_from([" ", "  ", "\t"]))
def test_equals_punkt_on_generated_lines(parts: list[tuple[str, str]], space: str) -> None:
    line = space.join(w + e for w, e in parts)
    punkt = untrained_punkt()
    assert split_with(punkt.tokenize, line) == punkt.tokenize(line)


@pytest.mark.shared
def test_equals_the_english_model_on_babylm(monkeypatch: pytest.MonkeyPatch) -> None:
    babylm, nltk_data = SHARED / "babylm", SHARED / "nltk_data"
    if not (babylm.is_dir() and nltk_data.is_dir()):
        pytest.skip(f"{SHARED} lacks babylm/ or nltk_data/")
    import nltk
    from nltk.tokenize import PunktTokenizer

    monkeypatch.setattr(nltk.data, "path", [str(nltk_data), *nltk.data.path])
    punkt = PunktTokenizer("english")
    lines = [line for f in sorted(babylm.glob("babylm_*/*")) for line in f.read_text(encoding="utf-8").splitlines()]
    # Only the short-cut lines can differ: the others get punkt's answer by construction.
    asked = object()
    short = [(line, got) for line in lines if (got := split_with(lambda _: asked, line)) is not asked]
    assert len(short) > 100_000
    assert [got for _, got in short] == [punkt.tokenize(line) for line, _ in short]
