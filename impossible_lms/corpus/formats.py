"""Pre-tagged corpus formats: CoNLL-U and the reference's Stanza JSON.

CoNLL-U: one sentence per block; the ``# text =`` comment is the sentence text
(when absent, the words joined by spaces, honouring ``SpaceAfter=No``);
multiword tokens (``2-3 don't``) are skipped in favour of their words, as the
hop languages work on UD words; empty nodes (``8.1``) are skipped.

Stanza JSON (jkallini/mission-impossible-language-models ``data/tag.py``): a
list with one entry per batch of joined input lines,
``[{"sent_annotations": [{"sent_text": ..., "word_annotations": [{"id", "text",
"lemma", "upos", "xpos", "feats", "start_char", "end_char", "head", "deprel"},
...]}, ...]}, ...]``. The reference wrote ``feats`` as null unless it ran the
dependency parser; null reads as ``"_"``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

from impossible_lms.errors import ILMError
from impossible_lms.io import atomic_write_json, atomic_write_text
from perturbations.base import Sentence, Word


def _field(value: str) -> str:
    return value if value else "_"


def read_conllu(path: Path, genre: str = "") -> list[Sentence]:
    sentences: list[Sentence] = []
    text: str | None = None
    words: list[Word] = []
    space_after: list[bool] = []

    def close() -> None:
        nonlocal text, words, space_after
        if words:
            if text is None:
                text = "".join(w.text + (" " if sp else "") for w, sp in zip(words, space_after)).strip()
            sentences.append(Sentence(text, tuple(words), genre))
        text, words, space_after = None, [], []

    try:
        handle = open(path, encoding="utf-8")
    except OSError as e:
        raise ILMError(f"cannot read {path}: {e.strerror}") from None
    with handle:
        for number, line in enumerate(handle, 1):
            line = line.rstrip("\n")
            if not line.strip():
                close()
            elif line.startswith("#"):
                key, _, value = line[1:].partition("=")
                if key.strip() == "text":
                    text = value.strip()
            else:
                cols = line.split("\t")
                if len(cols) != 10:
                    raise ILMError(f"{path}:{number}: a CoNLL-U word line has 10 tab-separated columns, found {len(cols)}")
                if "-" in cols[0] or "." in cols[0]:
                    continue  # multiword token or empty node: the words carry the tags
                words.append(Word(cols[1], cols[3], _field(cols[5]), cols[2] if cols[2] != "_" else cols[1]))
                space_after.append("SpaceAfter=No" not in cols[9])
        close()
    return sentences


def write_conllu(sentences: Iterable[Sentence], path: Path) -> None:
    blocks = []
    for s in sentences:
        if s.words is None:
            raise ILMError("cannot write an untagged sentence as CoNLL-U")
        rows = [f"# text = {s.text}"]
        for i, w in enumerate(s.words, 1):
            rows.append("\t".join([str(i), w.text, w.lemma or "_", w.upos, "_", w.feats or "_", "_", "_", "_", "_"]))
        blocks.append("\n".join(rows) + "\n")
    atomic_write_text(Path(path), "\n".join(blocks) + ("\n" if blocks else ""))


def read_stanza_json(path: Path, genre: str = "") -> list[Sentence]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise ILMError(f"cannot read {path}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise ILMError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(data, list):
        raise ILMError(f"{path}: expected a list of line annotations (the reference tag.py layout)")
    sentences = []
    for batch in data:
        for sent in batch.get("sent_annotations", []) if isinstance(batch, dict) else []:
            words = tuple(
                Word(wa["text"], wa.get("upos") or "X", wa.get("feats") or "_", wa.get("lemma") or wa["text"])
                for wa in sent.get("word_annotations", [])
            )
            sentences.append(Sentence(sent["sent_text"], words, genre))
    return sentences


def write_stanza_json(sentences: Iterable[Sentence], path: Path) -> None:
    """One line annotation per sentence (the reference grouped 20 input lines per entry)."""
    out = []
    for s in sentences:
        if s.words is None:
            raise ILMError("cannot write an untagged sentence as Stanza JSON")
        words = [
            {"id": i, "text": w.text, "lemma": w.lemma, "upos": w.upos, "xpos": None,
             "feats": None if w.feats == "_" else w.feats}
            for i, w in enumerate(s.words, 1)
        ]
        out.append({"sent_annotations": [{"sent_text": s.text, "word_annotations": words}]})
    atomic_write_json(Path(path), out)
