"""A tiny deterministic tokenizer with GPT-2's space and marker behaviour.

Used for ``Language.example()``, tests and notebooks where the real GPT-2
tokenizer is not at hand. Like GPT-2 it splits text into words that carry their
leading space (" dog" differs from "dog"), and marker strings absorb the space
on their left (AddedToken ``lstrip=True``). ``max_piece`` cuts longer words into
pieces, so a word can be several tokens, as in BPE.
"""

from __future__ import annotations

import re
from typing import Sequence

from perturbations.base import MARKER_PLURAL, MARKER_REVERSE, MARKER_SINGULAR

ALL_MARKERS = (MARKER_REVERSE, MARKER_SINGULAR, MARKER_PLURAL)

_WORD = re.compile(r" ?\S+|\s+")


class ToyTokenizer:
    """Pieces get ids in order of first sight from 0; markers get ``first_marker_id`` upward."""

    def __init__(
        self,
        markers: Sequence[str] = ALL_MARKERS,
        max_piece: int | None = None,
        first_marker_id: int = 50257,
    ) -> None:
        self.max_piece = max_piece
        self.marker_ids = {m: first_marker_id + i for i, m in enumerate(markers)}
        self.eos_id = first_marker_id - 1
        self._ids: dict[str, int] = {}
        self._pieces: dict[int, str] = {i: m for m, i in self.marker_ids.items()}
        split = "|".join(re.escape(m) for m in markers)
        self._marker_split = re.compile(rf"\s*({split})") if markers else None

    def pieces(self, text: str) -> list[str]:
        """The token strings of ``text``."""
        chunks = self._marker_split.split(text) if self._marker_split else [text]
        out: list[str] = []
        for chunk in chunks:
            if chunk in self.marker_ids:
                out.append(chunk)
                continue
            for word in _WORD.findall(chunk):
                out.extend(self._cut(word))
        return out

    def _cut(self, word: str) -> list[str]:
        if self.max_piece is None or len(word.strip()) <= self.max_piece:
            return [word]
        lead = " " if word.startswith(" ") else ""
        body = word[len(lead) :]
        parts = [body[i : i + self.max_piece] for i in range(0, len(body), self.max_piece)]
        parts[0] = lead + parts[0]
        return parts

    def id(self, piece: str) -> int:
        if piece in self.marker_ids:
            return self.marker_ids[piece]
        if piece not in self._ids:
            self._ids[piece] = len(self._ids)
            self._pieces[self._ids[piece]] = piece
        return self._ids[piece]

    def ids(self, pieces: Sequence[str]) -> list[int]:
        """Ids of explicit token strings (for writing expected outputs by hand)."""
        return [self.id(p) for p in pieces]

    def encode(self, text: str) -> list[int]:
        return self.ids(self.pieces(text))

    def to_pieces(self, ids: Sequence[int]) -> list[str]:
        return [self._pieces[i] for i in ids]

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(self._pieces[i] if i not in self.marker_ids.values() else " " + self._pieces[i] for i in ids).strip()
