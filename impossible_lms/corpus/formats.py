"""Pre-tagged corpus formats: CoNLL-U and the reference's Stanza JSON.

CoNLL-U (any UD language): one sentence per block. Each syntactic word becomes
a :class:`Word` with FORM, UPOS, FEATS, LEMMA (FORM when ``_``), HEAD and DEPREL
(HEAD ``_`` reads as None: no tree for that sentence).

Multiword tokens (``2-3 zum`` over ``2 zu`` / ``3 dem``): the *surface* form is
the MWT line's, the *tags and the tree* are the syntactic words'. So
``Sentence.text`` (what the shuffles and reverses tokenise) is the ``# text =``
comment, or when absent the tokens rebuilt from the MWT forms and the single
words outside any range, spaced by ``SpaceAfter=No`` of the token (the MWT
line's MISC for a range); ``Sentence.words`` are the syntactic words (what the
hop and tree languages re-join). Empty nodes (``8.1``) are skipped: they belong
to the enhanced graph, never to the basic tree. Word ids must run 1, 2, ... in
each sentence (HEAD refers to them); other ids are an error naming file:line.

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
    surface: list[tuple[str, bool]] = []  # (token form, space after) for the rebuilt text
    covered = 0  # the last word id inside the current multiword token

    def close() -> None:
        nonlocal text, words, surface, covered
        if words:
            if text is None:
                text = "".join(form + (" " if space else "") for form, space in surface).strip()
            sentences.append(Sentence(text, tuple(words), genre))
        text, words, surface, covered = None, [], [], 0

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
                space = "SpaceAfter=No" not in cols[9]
                if "." in cols[0]:
                    continue  # an empty node: enhanced graph only
                if "-" in cols[0]:
                    first, _, last = cols[0].partition("-")
                    if not (first.isdigit() and last.isdigit()) or int(first) != len(words) + 1 or int(last) < int(first):
                        raise ILMError(f"{path}:{number}: bad multiword token range {cols[0]!r}")
                    covered = int(last)
                    surface.append((cols[1], space))
                    continue
                if cols[0] != str(len(words) + 1):
                    raise ILMError(f"{path}:{number}: word id {cols[0]!r} where {len(words) + 1} was expected")
                head = _head(cols[6], path, number)
                words.append(Word(cols[1], cols[3], _field(cols[5]), cols[2] if cols[2] != "_" else cols[1],
                                  head, None if head is None else cols[7]))
                if len(words) > covered:
                    surface.append((cols[1], space))
        close()
    for s in sentences:
        _check_heads(s, path)
    return sentences


def _head(value: str, path: Path, number: int) -> int | None:
    if value == "_":
        return None
    if not value.isdigit():
        raise ILMError(f"{path}:{number}: HEAD must be a word id or '_', got {value!r}")
    return int(value)


def _check_heads(s: Sentence, path: Path) -> None:
    """Every HEAD names a word of its sentence (or 0); a partly annotated sentence keeps no tree."""
    n = len(s.words)
    bad = next((w for w in s.words if w.head is not None and w.head > n), None)
    if bad is not None:
        raise ILMError(f"{path}: sentence {s.text[:40]!r}: word {bad.text!r} has HEAD {bad.head} beyond its {n} words")


def write_conllu(sentences: Iterable[Sentence], path: Path) -> None:
    """Syntactic words only (a multiword token's surface form survives in ``# text``)."""
    blocks = []
    for s in sentences:
        if s.words is None:
            raise ILMError("cannot write an untagged sentence as CoNLL-U")
        rows = [f"# text = {s.text}"]
        for i, w in enumerate(s.words, 1):
            head = "_" if w.head is None else str(w.head)
            rows.append("\t".join([str(i), w.text, w.lemma or "_", w.upos, "_", w.feats or "_", head,
                                   w.deprel or "_", "_", "_"]))
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
                Word(wa["text"], wa.get("upos") or "X", wa.get("feats") or "_", wa.get("lemma") or wa["text"],
                     *_stanza_arc(wa, path))
                for wa in sent.get("word_annotations", [])
            )
            s = Sentence(sent["sent_text"], words, genre)
            _check_heads(s, path)
            sentences.append(s)
    return sentences


def _stanza_arc(wa: dict, path: Path) -> tuple[int | None, str | None]:
    """A parsed annotation's (head, deprel), as Stanza's ``to_dict`` names them; (None, None) when unparsed."""
    head = wa.get("head")
    if head is None:
        return None, None
    if not isinstance(head, int) or isinstance(head, bool) or head < 0:
        raise ILMError(f"{path}: word {wa.get('text')!r} has head {head!r}; expected a word id or 0")
    return head, wa.get("deprel") or None


def write_stanza_json(sentences: Iterable[Sentence], path: Path) -> None:
    """One line annotation per sentence (the reference grouped 20 input lines per entry)."""
    out = []
    for s in sentences:
        if s.words is None:
            raise ILMError("cannot write an untagged sentence as Stanza JSON")
        words = [
            {"id": i, "text": w.text, "lemma": w.lemma, "upos": w.upos, "xpos": None,
             "feats": None if w.feats == "_" else w.feats,
             **({} if w.head is None else {"head": w.head, "deprel": w.deprel})}
            for i, w in enumerate(s.words, 1)
        ]
        out.append({"sent_annotations": [{"sent_text": s.text, "word_annotations": words}]})
    atomic_write_json(Path(path), out)
