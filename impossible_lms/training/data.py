"""Training data: the perturbed train split packed into context-length blocks.

The recipe (design §3): the train sentences shuffled by the run's seed, EOS after
each sentence, the stream cut into blocks of the context length, the last
partial block dropped.

To make this cheap for every seed, the split is flattened once per dataset into
``DIR/.cache/train.tokens.bin`` (every sentence followed by EOS, in dataset
order) plus ``train.offsets.npy`` (sentence starts). A seed is then only a
permutation of sentence indices; a block is gathered from the memmap by
vectorised index arithmetic, so no per-seed copy of the corpus is made.

Sentence order: ``default_rng(seed).permutation(n)``, the permutation the
reference's training/babylm_dataset.py applies with ``default_rng(seed).shuffle``
to the list of all train lines (the two draw the same Fisher-Yates swaps). The
dataset's rows are already in the reference's file order (each genre file's
unaffected sentences, then its affected ones: see ``perturb.perturb_split``).

Block order: every epoch, the blocks in the order the reference's Hugging Face
Trainer draws them (:func:`epoch_order`), epoch 0 included. Global sample
number s is block ``epoch_order(seed, s // n, n)[s % n]``, so the data position
is a pure function of the number of consumed samples, which is what the trainer
state records, and a resumed run reads exactly what an unbroken one would.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from impossible_lms.errors import ILMError
from impossible_lms.io import atomic_write_json, file_fingerprint, fingerprint

CACHE_DIR = ".cache"
CACHE_VERSION = 1


@dataclass(frozen=True)
class DatasetInfo:
    """What training needs from a dataset folder's manifest.json."""

    path: Path
    language: str
    vocab_size: int
    eos_id: int
    tokenizer: dict
    fingerprint: str  # what the data is: manifest identity (language, corpus, tokenizer, tagger) + counts
    cache_key: str  # this copy of the folder: manifest.json's bytes and the train split's files (split_stamp)

    @property
    def slug(self) -> str:
        """The language as a folder name, as the dataset writer spells it ("local_shuffle_w=3")."""
        from impossible_lms.data import dataset_folder_name

        return dataset_folder_name(self.language)


def read_dataset_info(data_dir: str | Path) -> DatasetInfo:
    """The manifest of a dataset folder (validated by ``impossible_lms.data.load_manifest``)."""
    from impossible_lms.data import check_tokenizer, load_manifest

    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise ILMError(f"dataset folder not found: {data_dir}")
    m = load_manifest(data_dir)
    check_tokenizer(data_dir, m)  # a tokenizer swapped under an unchanged manifest
    try:
        info = DatasetInfo(
            path=data_dir,
            language=str(m.language),
            vocab_size=int(m.vocab_size),
            eos_id=int(m.eos_id),
            tokenizer=dict(m.tokenizer or {}),
            fingerprint=fingerprint(m.identity(), m.counts),
            cache_key=fingerprint(file_fingerprint(data_dir / "manifest.json"), split_stamp(data_dir, "train")),
        )
    except (ValueError, TypeError) as e:
        raise ILMError(f"{data_dir / 'manifest.json'}: invalid manifest ({e})") from None
    if not 0 <= info.eos_id < info.vocab_size:
        raise ILMError(f"{data_dir / 'manifest.json'}: eos_id {info.eos_id} is outside the vocabulary of {info.vocab_size}")
    return info


def split_stamp(data_dir: Path, split: str) -> list:
    """Name, size and modification time of every file the split is read from (and the dataset's
    index): any write to them (deleted, truncated, zeroed, replaced, a garbled state.json) changes
    it, so the token cache built from them is rebuilt, and the rebuild reads and checks the new data."""
    files = [data_dir / "dataset_dict.json", *sorted((data_dir / split).glob("*"))] if (data_dir / split).is_dir() \
        else [data_dir / "dataset_dict.json"]
    stamp = []
    for f in files:
        try:
            st = f.stat()
        except OSError:
            stamp.append([f.name, None])
            continue
        stamp.append([f.relative_to(data_dir).as_posix(), st.st_size, st.st_mtime_ns])
    return stamp


@dataclass(frozen=True)
class TokenCache:
    tokens: np.ndarray  # flat memmap: every train sentence then EOS, dataset order
    offsets: np.ndarray  # int64, len = sentences + 1; sentence i is tokens[offsets[i]:offsets[i+1]]
    max_id: int


def _cache_paths(data_dir: Path) -> tuple[Path, Path, Path]:
    d = data_dir / CACHE_DIR
    return d / "train.tokens.bin", d / "train.offsets.npy", d / "train.meta.json"


def token_cache(info: DatasetInfo) -> TokenCache:
    """The flat token memmap for ``info``'s train split, built on first use."""
    bin_path, off_path, meta_path = _cache_paths(info.path)
    meta = _read_meta(meta_path)
    if meta is None or meta.get("fingerprint") != info.cache_key or meta.get("version") != CACHE_VERSION:
        meta = _build_cache(info, bin_path, off_path, meta_path)
    tokens = np.memmap(bin_path, dtype=np.dtype(meta["dtype"]), mode="r")
    offsets = np.load(off_path)
    if len(tokens) != meta["tokens"] or len(offsets) != meta["sentences"] + 1:
        # A cache from another writer that does not match its meta: rebuild once.
        meta = _build_cache(info, bin_path, off_path, meta_path)
        tokens = np.memmap(bin_path, dtype=np.dtype(meta["dtype"]), mode="r")
        offsets = np.load(off_path)
    return TokenCache(tokens=tokens, offsets=offsets, max_id=int(meta["max_id"]))


def _read_meta(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _train_column(data_dir: Path):
    import datasets
    import pyarrow as pa

    try:
        dd = datasets.load_from_disk(str(data_dir))
    except (FileNotFoundError, ValueError, KeyError, TypeError, pa.ArrowException, OSError) as e:
        # ValueError covers a garbled state.json / dataset_info.json (json errors are ValueErrors)
        raise ILMError(f"{data_dir}: cannot read the dataset ({type(e).__name__}: {str(e)[:120]}); "
                       f"rewrite it with `ilm perturb ... --force`") from None
    if not isinstance(dd, datasets.DatasetDict) or "train" not in dd:
        raise ILMError(f"{data_dir}: the dataset has no train split")
    ds = dd["train"]
    if "input_ids" not in ds.column_names:
        raise ILMError(f"{data_dir}: the train split has no input_ids column")
    return ds.data.table.column("input_ids")


def _build_cache(info: DatasetInfo, bin_path: Path, off_path: Path, meta_path: Path) -> dict:
    import pyarrow.compute as pc

    column = _train_column(info.path)
    dtype = np.uint16 if info.vocab_size <= 2**16 else np.uint32
    bin_path.parent.mkdir(parents=True, exist_ok=True)
    # Temp names unique per process: several seeds may build the same cache at once;
    # each rename is atomic and they all write the same bytes.
    suffix = f".{os.getpid()}.tmp"
    tmp_bin, tmp_off = bin_path.with_name(bin_path.name + suffix), off_path.with_name(off_path.name + suffix)
    starts, total, max_id = [np.zeros(1, np.int64)], 0, -1
    try:
        with open(tmp_bin, "wb") as f:
            for chunk in column.chunks:
                lengths = pc.list_value_length(chunk).to_numpy(zero_copy_only=False).astype(np.int64)
                flat = chunk.flatten().to_numpy(zero_copy_only=False).astype(np.int64)
                if len(flat):
                    max_id = max(max_id, int(flat.max()))
                    if flat.min() < 0:
                        raise ILMError(f"{info.path}: negative token id in the train split")
                    if max_id >= info.vocab_size:  # also keeps ids in the cache's dtype
                        raise ILMError(f"{info.path}: token id {max_id} in the train split is outside the "
                                       f"manifest's vocabulary of {info.vocab_size}; rewrite it with `ilm perturb ... --force`")
                # Each sentence is shifted right by the number of EOS tokens before it.
                out = np.full(len(flat) + len(lengths), info.eos_id, dtype=dtype)
                out[np.arange(len(flat)) + np.repeat(np.arange(len(lengths)), lengths)] = flat
                f.write(out.tobytes())
                starts.append(total + np.cumsum(lengths + 1))
                total += len(out)
            f.flush()
            os.fsync(f.fileno())
        offsets = np.concatenate(starts)
        with open(tmp_off, "wb") as f:
            np.save(f, offsets)
        os.replace(tmp_bin, bin_path)
        os.replace(tmp_off, off_path)
    except BaseException:
        for p in (tmp_bin, tmp_off):
            p.unlink(missing_ok=True)
        raise
    meta = {
        "version": CACHE_VERSION,
        "fingerprint": info.cache_key,
        "dtype": np.dtype(dtype).name,
        "tokens": int(total),
        "sentences": int(len(offsets) - 1),
        "max_id": int(max(max_id, info.eos_id)),
    }
    atomic_write_json(meta_path, meta)  # written last: the cache's commit marker
    return meta


class PackedBlocks:
    """The seed's packed blocks: ``blocks(samples)`` → int64 array [len(samples), context]."""

    def __init__(self, cache: TokenCache, seed: int, context: int):
        self.cache, self.seed, self.context = cache, seed, context
        lengths = np.diff(cache.offsets)
        self.order = np.random.default_rng(seed).permutation(len(lengths))
        self.cum = np.concatenate([[0], np.cumsum(lengths[self.order])])
        self.n_blocks = int(self.cum[-1] // context)  # the last partial block is dropped
        if self.n_blocks == 0:
            raise ILMError(
                f"the train split has {int(self.cum[-1])} tokens, fewer than one block of {context}"
            )
        self._epoch, self._epoch_order = 0, None

    def block_ids(self, samples: np.ndarray) -> np.ndarray:
        """Global sample numbers (0, 1, ... across epochs) → packed block indices."""
        samples = np.asarray(samples, dtype=np.int64)
        epochs, within = np.divmod(samples, self.n_blocks)
        out = np.empty_like(within)
        for e in np.unique(epochs):
            sel = epochs == e
            out[sel] = self._order_for(int(e))[within[sel]]
        return out

    def _order_for(self, epoch: int) -> np.ndarray:
        if self._epoch != epoch or self._epoch_order is None:
            self._epoch, self._epoch_order = epoch, epoch_order(self.seed, epoch, self.n_blocks)
        return self._epoch_order

    def blocks(self, samples: np.ndarray) -> np.ndarray:
        ids = self.block_ids(samples)
        pos = ids[:, None] * self.context + np.arange(self.context)[None, :]
        k = np.searchsorted(self.cum, pos, side="right") - 1
        src = self.cache.offsets[self.order[k]] + (pos - self.cum[k])
        return self.cache.tokens[src].astype(np.int64)


def epoch_order(seed: int, epoch: int, n_blocks: int) -> np.ndarray:
    """The blocks of one epoch in the order the reference's trainer reads them.

    The reference trains with the Hugging Face Trainer (transformers 4.46.2 in its
    requirements.txt). ``Trainer._get_train_sampler`` returns a plain
    ``RandomSampler(train_dataset)``; the Trainer's ``AcceleratorConfig`` has
    ``use_seedable_sampler=True`` by default, so accelerate's
    ``prepare_data_loader`` (accelerate >= 0.28) swaps it for a
    ``SeedableRandomSampler`` whose ``initial_seed`` is ``torch.random.initial_seed()``
    (``TrainingArguments.data_seed`` is unset: the ``set_seed(args.seed)`` of
    ``Trainer.__init__``, i.e. the run's seed). Before each epoch the training loop
    calls ``set_epoch(epoch)``, and ``SeedableRandomSampler.__iter__`` seeds a CPU
    ``torch.Generator`` with ``initial_seed + epoch``; ``RandomSampler.__iter__`` then
    yields ``torch.randperm(n, generator=...)``. That permutation is this one.
    """
    import torch

    generator = torch.Generator()
    generator.manual_seed(int(seed) + int(epoch))
    return torch.randperm(n_blocks, generator=generator).numpy()


def packed_blocks(info: DatasetInfo, seed: int, context: int, model_vocab: int) -> PackedBlocks:
    """Load (or build) the cache, check it fits the model's vocabulary, pack for ``seed``."""
    if model_vocab != info.vocab_size:
        raise ILMError(
            f"vocabulary mismatch: the dataset {info.path} uses {info.vocab_size} token ids "
            f"(tokenizer {info.tokenizer.get('name', '?')}), the model has {model_vocab}; drop the vocab_size override"
        )
    cache = token_cache(info)
    if cache.max_id >= model_vocab:
        raise ILMError(
            f"vocabulary mismatch: {info.path} contains token id {cache.max_id}, the model has {model_vocab}"
        )
    return PackedBlocks(cache, seed, context)
