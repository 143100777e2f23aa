"""Small stand-ins for a corpus and a tagger, so the pipeline tests need neither
``impossible_lms.corpus`` nor a tagging model (both are built elsewhere)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from impossible_lms.io import fingerprint
from perturbations import Sentence, Word

# word → (upos, feats, lemma); anything else is a NOUN.
LEXICON = {
    "runs": ("VERB", "Number=Sing|Person=3|Tense=Pres|VerbForm=Fin", "run"),
    "sleeps": ("VERB", "Number=Sing|Person=3|Tense=Pres|VerbForm=Fin", "sleep"),
    "run": ("VERB", "Number=Plur|Person=3|Tense=Pres|VerbForm=Fin", "run"),
    "ran": ("VERB", "Mood=Ind|Tense=Past|VerbForm=Fin", "run"),
    "the": ("DET", "_", "the"),
    "a": ("DET", "_", "a"),
    ".": ("PUNCT", "_", "."),
}

SUBJECTS = ["the dog", "a cat", "the small bird", "the dogs", "the old man"]
VERBS = ["runs", "sleeps", "run", "ran"]
TAILS = ["to the big park near the river .", "in the warm house all day long .", "quickly .", "under a tree with the other animals ."]


def lines(n: int, seed: int) -> list[str]:
    """``n`` deterministic sentences, two per line sometimes (the tagger splits on '. ')."""
    out = []
    for i in range(n):
        k = i * 7 + seed
        s = f"{SUBJECTS[k % 5]} {VERBS[(k // 5) % 4]} {TAILS[(k // 3) % 4]}"
        if i % 3 == 0:
            s += f" {SUBJECTS[(k + 1) % 5]} ran {TAILS[(k + 2) % 4]}"
        out.append(s)
    return out


@dataclass
class FakeFile:
    split: str
    genre: str
    name: str
    text: list[str]
    path: Path | None = None

    def lines(self):
        return iter(self.text)

    def pretagged(self):
        return None


@dataclass
class FakeCorpus:
    name: str = "fake"
    files_: list[FakeFile] = field(default_factory=list)

    @property
    def fingerprint(self) -> str:
        return fingerprint([(f.split, f.genre, f.name, f.text) for f in self.files_])

    def files(self):
        return list(self.files_)


def fake_corpus(scale: int = 30, name: str = "fake") -> FakeCorpus:
    files = []
    for split, mult in (("train", 2), ("dev", 1), ("test", 1)):
        for g, genre in enumerate(("stories", "speech")):
            files.append(FakeFile(split, genre, f"{genre}.{split}", lines(scale * mult, seed=g + len(files))))
    return FakeCorpus(name, files)


class FakeTagger:
    """Splits lines after ' .' and tags words from LEXICON."""

    name = "fake"

    def __init__(self) -> None:
        self.calls = 0

    def process(self, file, cache_dir=None):
        self.calls += 1
        out = []
        for line in file.lines():
            for part in line.split(" . "):
                text = part if part.endswith(".") else part + " ."
                words = tuple(Word(w, *LEXICON.get(w, ("NOUN", "_", w))) for w in text.split())
                out.append(Sentence(text, words, file.genre))
        return out
