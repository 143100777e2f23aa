"""GPT-2 BPE plus the impossible languages' marker tokens.

Markers are added as special tokens that absorb the space on their left
(``AddedToken(lstrip=True)``), as in the reference: ``"dog 🅂"`` encodes to the
ids of ``"dog"`` then the marker id. They take the ids after the base
vocabulary in the order the language lists them (GPT-2: 50257, 50258), so the
vocabulary size is 50257 (shuffles), 50258 (reverses) or 50259 (hops).

Where the tokenizer comes from (:func:`load_tokenizer`):

- a folder with ``tokenizer.json`` (also a dataset's ``tokenizer/``) or
  ``vocab.json`` + ``merges.txt``;
- a Hugging Face hub id such as ``gpt2``, read from the local HF cache only:
  ``ilm`` never downloads;
- ``fallback``: a byte-level BPE trained on the corpus itself, for machines
  without GPT-2 files. Results are not comparable with GPT-2 runs, so the
  dataset manifest records ``"fallback": true``.

The ``tokenizers`` Rust library does the work (``encode_batch`` is parallel).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

from impossible_lms.errors import ILMError
from impossible_lms.io import atomic_write_json, atomic_write_text, fingerprint

EOS_TOKEN = "<|endoftext|>"
FALLBACK = "fallback"
DEFAULT_FALLBACK_VOCAB = 4096
META_FILE = "ilm_tokenizer.json"


@dataclass(frozen=True)
class _Meta:
    """What ``tokenizer.json`` cannot say: where the tokenizer came from."""

    name: str
    fallback: bool
    markers: tuple[str, ...]


class MarkedTokenizer:
    """A ``tokenizers.Tokenizer`` with marker tokens; satisfies ``perturbations.TokenizerFns``."""

    def __init__(self, tokenizer: Tokenizer, name: str, markers: Sequence[str] = (), is_fallback: bool = False):
        self._tok = tokenizer
        self.name = name
        self.is_fallback = is_fallback
        self.markers = tuple(markers)
        eos = tokenizer.token_to_id(EOS_TOKEN)
        if eos is None:
            raise ILMError(f"tokenizer {name!r} has no {EOS_TOKEN} token")
        self.eos_id: int = eos
        self.marker_ids: dict[str, int] = _add_markers(tokenizer, self.markers)
        self._json: str | None = None  # serialising GPT-2 takes ~0.3 s: do it once
        self._fingerprint: str | None = None

    # -- encoding ------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``, no special tokens added (markers in the text become marker ids)."""
        return self._tok.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """``encode`` for many texts at once, in parallel in Rust."""
        # The "fast" variant skips character offsets, which nothing here needs.
        return [e.ids for e in self._tok.encode_batch_fast(list(texts), add_special_tokens=False)]

    def decode(self, ids: Sequence[int]) -> str:
        return self._tok.decode(list(ids), skip_special_tokens=False)

    # -- identity ------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        """Number of ids, markers included (the model's vocabulary size)."""
        return self._tok.get_vocab_size(with_added_tokens=True)

    @property
    def fingerprint(self) -> str:
        """Hash of the full tokenizer (vocabulary, merges, markers): equal means same ids."""
        if self._fingerprint is None:
            self._fingerprint = fingerprint(self.to_json())
        return self._fingerprint

    def to_json(self) -> str:
        """The full tokenizer as Hugging Face ``tokenizer.json`` text."""
        if self._json is None:
            self._json = self._tok.to_str()
        return self._json

    def with_markers(self, markers: Sequence[str]) -> MarkedTokenizer:
        """The same base tokenizer with another marker set (markers must extend the current ones)."""
        markers = tuple(markers)
        if markers[: len(self.markers)] != self.markers:
            raise ILMError(
                f"tokenizer {self.name!r} already has markers {''.join(self.markers)!r}; "
                f"cannot give it {''.join(markers)!r}"
            )
        clone = Tokenizer.from_str(self.to_json())
        return MarkedTokenizer(clone, self.name, markers, self.is_fallback)

    def describe(self) -> dict[str, Any]:
        """The manifest's ``tokenizer`` entry."""
        return {"name": self.name, "fallback": self.is_fallback, "fingerprint": self.fingerprint}

    # -- persistence ---------------------------------------------------------

    def save(self, folder: str | Path) -> Path:
        """Write ``tokenizer.json`` (+ HF config so ``AutoTokenizer`` loads it) and our metadata."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / "tokenizer.json", self.to_json())
        atomic_write_json(
            folder / "tokenizer_config.json",
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "bos_token": EOS_TOKEN,
                "eos_token": EOS_TOKEN,
                "unk_token": EOS_TOKEN,
                "additional_special_tokens": list(self.markers),
                "model_max_length": 1024,
            },
        )
        atomic_write_json(folder / META_FILE, {"name": self.name, "fallback": self.is_fallback, "markers": list(self.markers)})
        return folder

    @property
    def backend(self) -> Tokenizer:
        """The underlying ``tokenizers.Tokenizer``."""
        return self._tok

    def __getstate__(self) -> dict[str, Any]:
        return {"json": self.to_json(), "name": self.name, "markers": self.markers, "fallback": self.is_fallback}

    def __setstate__(self, state: dict[str, Any]) -> None:
        # The saved JSON already holds the markers; re-adding them is a no-op.
        self.__init__(Tokenizer.from_str(state["json"]), state["name"], state["markers"], state["fallback"])

    def __repr__(self) -> str:
        return f"MarkedTokenizer({self.name!r}, vocab_size={self.vocab_size}, markers={''.join(self.markers)!r})"


def _add_markers(tokenizer: Tokenizer, markers: Sequence[str]) -> dict[str, int]:
    # special=True as in the reference (add_special_tokens); normalized=False so the
    # byte-level pre-tokenizer never splits the marker's UTF-8 bytes.
    tokenizer.add_special_tokens(
        [AddedToken(m, lstrip=True, rstrip=False, normalized=False, special=True) for m in markers]
    )
    ids = {m: tokenizer.token_to_id(m) for m in markers}
    if len(set(ids.values())) != len(ids):
        raise ILMError(f"markers {list(markers)} did not get distinct ids")
    return ids


# -- loading ------------------------------------------------------------------


def load_tokenizer(
    spec: str | Path | MarkedTokenizer = "gpt2",
    markers: Sequence[str] = (),
    corpus: Any = None,
    fallback_vocab: int = DEFAULT_FALLBACK_VOCAB,
) -> MarkedTokenizer:
    """A tokenizer with ``markers``: ``spec`` is a folder, a hub id in the local cache, or ``fallback``.

    ``corpus`` (an ``open_corpus`` result or an iterable of texts) is needed only
    by ``fallback``, which trains a byte-level BPE of ``fallback_vocab`` ids on it.
    """
    if isinstance(spec, MarkedTokenizer):
        return spec if tuple(markers) == spec.markers else spec.with_markers(markers)
    text = str(spec)
    if text == FALLBACK:
        if corpus is None:
            raise ILMError("the fallback tokenizer is trained on the corpus; give a corpus")
        return MarkedTokenizer(train_fallback(_texts(corpus), fallback_vocab), FALLBACK, markers, is_fallback=True)
    path = Path(text).expanduser()
    if path.exists():
        return _from_folder(path, markers)
    if text.startswith((".", "/", "~")) or text.count("/") > 1:
        raise ILMError(f"tokenizer folder not found: {text}")
    return _from_hub_cache(text, markers)


def _from_folder(path: Path, markers: Sequence[str]) -> MarkedTokenizer:
    if not path.is_dir():
        raise ILMError(f"--tokenizer {path} is not a folder (expected tokenizer.json or vocab.json + merges.txt)")
    meta = _read_meta(path)
    if (path / "tokenizer.json").is_file():
        tok = _read(lambda: Tokenizer.from_file(str(path / "tokenizer.json")), path / "tokenizer.json")
    elif (path / "vocab.json").is_file() and (path / "merges.txt").is_file():
        tok = _read(lambda: _byte_level_bpe(str(path / "vocab.json"), str(path / "merges.txt")), path)
    else:
        raise ILMError(f"{path} has neither tokenizer.json nor vocab.json + merges.txt")
    name, fallback, saved = (meta.name, meta.fallback, meta.markers) if meta else (str(path), False, ())
    markers = tuple(markers) or saved
    if saved and markers[: len(saved)] != saved:
        raise ILMError(
            f"{path} was saved with markers {''.join(saved)!r}; it cannot serve markers {''.join(markers)!r}"
        )
    return MarkedTokenizer(tok, name, markers, fallback)


def _read_meta(path: Path) -> _Meta | None:
    f = path / META_FILE
    if not f.is_file():
        return None
    try:
        d = json.loads(f.read_text(encoding="utf-8"))
        return _Meta(str(d["name"]), bool(d["fallback"]), tuple(d.get("markers", ())))
    except (ValueError, KeyError, TypeError):
        raise ILMError(f"{f} is not a valid ilm tokenizer description") from None


def _read(load: Any, where: Path) -> Tokenizer:
    try:
        return load()
    except Exception as e:  # the Rust library raises plain Exceptions on bad files
        raise ILMError(f"cannot read tokenizer {where}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None


def _byte_level_bpe(vocab: str, merges: str) -> Tokenizer:
    """GPT-2's layout from its two classic files."""
    tok = Tokenizer(models.BPE.from_file(vocab, merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    if tok.token_to_id(EOS_TOKEN) is not None:
        tok.add_special_tokens([AddedToken(EOS_TOKEN, special=True, normalized=False)])
    return tok


def _from_hub_cache(repo_id: str, markers: Sequence[str]) -> MarkedTokenizer:
    """A hub tokenizer from the local Hugging Face cache only (no network, ever)."""
    from huggingface_hub import try_to_load_from_cache

    def cached(filename: str) -> str | None:
        try:
            p = try_to_load_from_cache(repo_id, filename)
        except Exception:  # an invalid repo id: treat as not cached
            return None
        return p if isinstance(p, str) else None

    if tj := cached("tokenizer.json"):
        tok = _read(lambda: Tokenizer.from_file(tj), Path(tj))
    elif (vj := cached("vocab.json")) and (mt := cached("merges.txt")):
        tok = _read(lambda: _byte_level_bpe(vj, mt), Path(vj).parent)
    else:
        raise ILMError(
            f"tokenizer {repo_id!r} is not a folder and not in the local Hugging Face cache "
            "(ilm never downloads); pass --tokenizer PATH (a folder with tokenizer.json or "
            "vocab.json + merges.txt) or --tokenizer fallback (a BPE trained on the corpus)"
        )
    return MarkedTokenizer(tok, repo_id, markers)


# -- the offline fallback -----------------------------------------------------


def train_fallback(texts: Iterable[str], vocab_size: int = DEFAULT_FALLBACK_VOCAB) -> Tokenizer:
    """A GPT-2-style byte-level BPE trained on ``texts``; ``<|endoftext|>`` is its last id.

    Deterministic for the same texts, so reruns reproduce the same ids.
    """
    if vocab_size < 300:
        raise ILMError(f"fallback vocabulary must be at least 300 (256 bytes + merges), got {vocab_size}")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - 1,  # the EOS below takes the last id, as in GPT-2
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    tok.add_special_tokens([AddedToken(EOS_TOKEN, special=True, normalized=False)])
    return tok


def _texts(corpus: Any) -> Iterator[str]:
    """Lines of an ``open_corpus`` result's train files (all files if it has none), or texts."""
    if hasattr(corpus, "files"):
        files = list(corpus.files())
        for f in [f for f in files if f.split == "train"] or files:
            yield from f.lines()
    else:
        yield from corpus
