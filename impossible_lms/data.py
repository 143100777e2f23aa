"""The tokenised dataset on disk: one folder per language.

::

    DATA/<language>/  manifest.json, tokenizer/, dataset_dict.json,
                      train/ dev/ test_affected/ test_unaffected/

``datasets.load_from_disk(DATA/<language>)`` reads it as a ``DatasetDict`` with
columns ``input_ids`` (list<int32>), ``genre`` (string) and ``affected`` (bool).
The manifest says what made the data (language, tokenizer, corpus, tagger), so
later stages can refuse data that does not match what they expect.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import pyarrow as pa

from impossible_lms.errors import ILMError
from impossible_lms.io import atomic_dir, atomic_write_json, file_fingerprint, fingerprint
from perturbations.ragged import Ragged

if TYPE_CHECKING:
    import datasets

    from impossible_lms.tokenizer import MarkedTokenizer

# 2: train/dev rows of the hop languages are each file's unaffected sentences, then its
# affected ones (as the reference writes them); format 1 kept corpus order, which gives
# another training stream, so a format-1 folder is refused and rebuilt with --force.
FORMAT = "ilm-dataset/2"
SPLITS = ("train", "dev", "test_affected", "test_unaffected")
MANIFEST = "manifest.json"
TOKENIZER_DIR = "tokenizer"


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("ilm")
    except Exception:
        return "unknown"


@dataclass
class Manifest:
    """What ``manifest.json`` holds. :meth:`identity` is what must match for data to be reused."""

    language: str
    family: str
    params: dict[str, Any]
    tokenizer: dict[str, Any]  # {"name", "fallback", "fingerprint"}
    vocab_size: int
    eos_id: int
    marker_ids: dict[str, int]
    corpus: dict[str, Any]  # {"name", "fingerprint"}
    tagger: str
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)  # per corpus split: sentences the language's filters dropped
    format: str = FORMAT
    ilm_version: str = field(default_factory=_version)
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    # a fingerprint of every other field, written by to_dict: a manifest edited by hand (its
    # vocabulary, its markers) is refused by every stage that reads it, not trusted
    checksum: str = field(default="", compare=False)

    def identity(self) -> dict[str, Any]:
        """Everything that decides the data's content (not counts, version or time)."""
        return {
            "format": self.format,
            "language": self.language,
            "params": self.params,
            "tokenizer": self.tokenizer.get("fingerprint"),
            "corpus": self.corpus.get("fingerprint"),
            "tagger": self.tagger,
        }

    def differences(self, other: Manifest) -> list[str]:
        """Human-readable names of identity fields that differ, e.g. ``["corpus", "tokenizer"]``."""
        a, b = self.identity(), other.identity()
        return [k for k in a if a[k] != b[k]]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("checksum")
        d = {"format": d.pop("format"), **d}
        return {**d, "checksum": fingerprint(d)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = MANIFEST) -> Manifest:
        known = {f.name for f in fields(cls)}
        required = [
            f.name for f in fields(cls)
            if f.name not in data and f.default is MISSING and f.default_factory is MISSING
        ]
        if required:
            raise ILMError(f"{where}: missing {', '.join(required)}")
        if data.get("format", FORMAT) != FORMAT:
            raise ILMError(f"{where}: format {data.get('format')!r} is not {FORMAT!r}: another ilm version "
                           "wrote it; rebuild the dataset (`ilm perturb ... --force`)")
        recorded = data.get("checksum")
        if recorded and recorded != fingerprint({k: v for k, v in data.items() if k != "checksum"}):
            raise ILMError(f"{where}: changed after `ilm perturb` wrote it (its checksum does not match); "
                           "remake the dataset with `ilm perturb ... --force`")
        manifest = cls(**{k: v for k, v in data.items() if k in known})
        manifest.check(where)
        return manifest

    def check(self, where: str = MANIFEST) -> None:
        """The fields every stage relies on, checked on every read (a manifest from before checksums, too)."""
        def whole(name: str, value: Any, low: int, high: int | None) -> None:
            if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value >= high):
                span = f"in [{low}, {high})" if high is not None else f"at least {low}"
                raise ILMError(f"{where}: {name} must be an integer {span}, got {value!r}; "
                               "remake the dataset with `ilm perturb ... --force`")

        whole("vocab_size", self.vocab_size, 1, None)
        whole("eos_id", self.eos_id, 0, self.vocab_size)
        if not isinstance(self.marker_ids, dict):
            raise ILMError(f"{where}: marker_ids must be a mapping of marker to token id")
        for marker, token in self.marker_ids.items():
            whole(f"marker_ids[{marker!r}]", token, 0, self.vocab_size)
        from perturbations import get_language

        try:
            markers = set(get_language(self.language).markers)
        except ILMError:
            return  # a language this version does not know: nothing more to compare with
        if not set(self.marker_ids) <= markers or bool(self.marker_ids) != bool(markers):
            raise ILMError(f"{where}: {self.language} marks with {' '.join(sorted(markers)) or 'no marker'}, but the "
                           f"manifest's marker_ids hold {' '.join(sorted(self.marker_ids)) or 'none'}; "
                           "remake the dataset with `ilm perturb ... --force`")


def load_manifest(folder: str | Path) -> Manifest:
    """The dataset's manifest; ILMError when the folder is not an ilm dataset."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise ILMError(f"{folder} is not an ilm dataset (no {MANIFEST}); make one with `ilm perturb`")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise ILMError(f"{path}: invalid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ILMError(f"{path}: expected a JSON object")
    return Manifest.from_dict(data, str(path))


def check_compatible(
    manifest: Manifest, vocab_size: int | None = None, tokenizer_fingerprint: str | None = None
) -> None:
    """ILMError unless a model of ``vocab_size`` with this tokenizer can read the data.

    A larger model vocabulary is fine (padded vocabularies); a smaller one would
    index past the embedding table.
    """
    if vocab_size is not None and vocab_size < manifest.vocab_size:
        raise ILMError(
            f"data for {manifest.language} has {manifest.vocab_size} token ids but the model "
            f"has a vocabulary of {vocab_size}"
        )
    fp = manifest.tokenizer.get("fingerprint")
    if tokenizer_fingerprint is not None and tokenizer_fingerprint != fp:
        raise ILMError(
            f"data for {manifest.language} was tokenised with {manifest.tokenizer.get('name')!r} "
            f"(fingerprint {fp}), not the expected tokenizer ({tokenizer_fingerprint})"
        )


# -- columns ----------------------------------------------------------------------------


@dataclass
class SplitColumns:
    """One split held compactly: the token ids as one :class:`Ragged` (Arrow's list layout)."""

    ids: Ragged  # any int dtype (the hops pack int64); written as int32
    genre: list[str]
    affected: np.ndarray  # bool

    @classmethod
    def empty(cls) -> SplitColumns:
        return cls(Ragged.empty(np.int32), [], np.zeros(0, bool))

    @classmethod
    def from_lists(cls, input_ids: Sequence[Sequence[int]], genre: Sequence[str], affected: Sequence[bool]) -> SplitColumns:
        if not (len(input_ids) == len(genre) == len(affected)):
            raise ValueError("input_ids, genre and affected must have the same length")
        return cls(Ragged.from_lists(input_ids, np.int32), list(genre), np.asarray(affected, bool))

    @classmethod
    def concat(cls, parts: Sequence[SplitColumns]) -> SplitColumns:
        if not parts:
            return cls.empty()
        genre = [g for p in parts for g in p.genre]
        return cls(Ragged.concat(p.ids for p in parts), genre, np.concatenate([p.affected for p in parts]))

    def __len__(self) -> int:
        return len(self.genre)

    def take(self, rows: np.ndarray) -> SplitColumns:
        """The rows a boolean mask (or indices) picks, in order."""
        picked = np.flatnonzero(rows) if rows.dtype == bool else np.asarray(rows)
        return SplitColumns(self.ids.take(rows), [self.genre[i] for i in picked.tolist()], self.affected[rows])

    @property
    def tokens(self) -> int:
        return len(self.ids.values)

    def to_arrow(self) -> pa.Table:
        values = pa.array(self.ids.values.astype(np.int32, copy=False), pa.int32())
        ids = pa.ListArray.from_arrays(pa.array(self.ids.offsets.astype(np.int32)), values)
        return pa.table(
            {
                "input_ids": ids,
                "genre": pa.array(self.genre, pa.string()),
                "affected": pa.array(self.affected, pa.bool_()),
            }
        )


def _as_columns(split: str, data: SplitColumns | Mapping[str, Sequence[Any]]) -> SplitColumns:
    if isinstance(data, SplitColumns):
        return data
    try:
        return SplitColumns.from_lists(data["input_ids"], data["genre"], data["affected"])
    except KeyError as e:
        raise ValueError(f"split {split!r} lacks column {e}") from None


# -- writing and reading --------------------------------------------------------------


def write_dataset(
    folder: str | Path,
    splits: Mapping[str, SplitColumns | Mapping[str, Sequence[Any]]],
    manifest: Manifest,
    tokenizer: MarkedTokenizer | None = None,
) -> Path:
    """Write the four splits, ``manifest.json`` (with counts) and ``tokenizer/``, atomically.

    ``splits`` maps split names to :class:`SplitColumns` or to dicts of
    ``input_ids``/``genre``/``affected`` lists; missing splits are written empty.
    (:class:`DatasetWriter` writes the same folder a piece at a time.)
    """
    unknown = sorted(set(splits) - set(SPLITS))
    if unknown:
        raise ValueError(f"unknown split(s) {unknown}; expected {SPLITS}")
    folder = Path(folder)
    with atomic_dir(folder) as tmp:
        writer = DatasetWriter(tmp)
        for name, data in splits.items():
            writer.write(name, _as_columns(name, data))
        writer.finish(manifest, tokenizer)
    return folder


DATA_FILE = "data-00000-of-00001.arrow"  # the one shard `datasets.save_to_disk` would write


def _features():
    import datasets

    return datasets.Features({
        "input_ids": datasets.List(datasets.Value("int32")),
        "genre": datasets.Value("string"),
        "affected": datasets.Value("bool"),
    })


class SplitWriter:
    """One split's Arrow file (the IPC stream ``datasets`` reads), appended a record batch at a time."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.schema = schema
        self._writer = pa.ipc.new_stream(str(path), schema)  # opened from a path: closing it closes the file
        self.sentences = 0
        self.tokens = 0

    def write(self, columns: SplitColumns) -> None:
        if len(columns):
            table = columns.to_arrow().replace_schema_metadata(self.schema.metadata)
            self._writer.write_table(table, max_chunksize=WRITE_BATCH_ROWS)
            self.sentences += len(columns)
            self.tokens += columns.tokens

    def append(self, other: "SplitWriter") -> None:
        """Copy ``other``'s rows after this one's (``other`` is closed first)."""
        other.close()
        with pa.OSFile(str(other.path), "rb") as source:
            for batch in pa.ipc.open_stream(source):
                self._writer.write_batch(batch)
        self.sentences += other.sentences
        self.tokens += other.tokens

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class DatasetWriter:
    """A dataset folder written as rows arrive: each split's Arrow file grows on disk, so memory
    does not depend on the corpus size. ``grouped`` splits (train, dev: :meth:`write_grouped`)
    hold each source file's unaffected rows, then its affected ones, as the reference writes them:
    affected rows wait in a spill file until :meth:`end_file`. ``finish`` writes the metadata
    ``datasets.load_from_disk`` reads, the tokenizer and, last, the manifest."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.features = _features()
        self.schema = self.features.arrow_schema
        self.splits = {s: SplitWriter(self.folder / s / DATA_FILE, self.schema) for s in SPLITS}
        self._spills: dict[str, SplitWriter] = {}

    def write(self, split: str, columns: SplitColumns) -> None:
        self.splits[split].write(columns)

    def write_grouped(self, split: str, columns: SplitColumns) -> None:
        """Rows of the current source file: unaffected ones now, affected ones after the file ends."""
        if not columns.affected.all():
            self.splits[split].write(columns.take(~columns.affected))
        if columns.affected.any():
            if split not in self._spills:
                self._spills[split] = SplitWriter(self.folder / split / ".affected.arrow", self.schema)
            self._spills[split].write(columns.take(columns.affected))

    def end_file(self) -> None:
        """The source file is done: its affected rows follow its unaffected ones."""
        for split, spill in self._spills.items():
            self.splits[split].append(spill)
            spill.path.unlink()
        self._spills.clear()

    def finish(self, manifest: Manifest, tokenizer: MarkedTokenizer | None = None) -> None:
        self.end_file()
        # Counts a language adds before writing (tree languages: sentences left unchanged, by reason) stay.
        manifest.counts = {s: {**manifest.counts.get(s, {}), "sentences": w.sentences, "tokens": w.tokens}
                           for s, w in self.splits.items()}
        info = {"citation": "", "description": "", "features": self.features.to_dict(), "homepage": "", "license": ""}
        for name, writer in self.splits.items():
            writer.close()
            # What made the data (the manifest) and its counts identify each split, as `datasets` would
            # otherwise hash every table to fingerprint it.
            state = {"_data_files": [{"filename": DATA_FILE}],
                     "_fingerprint": fingerprint(manifest.identity(), name, manifest.counts[name]),
                     "_format_columns": None, "_format_kwargs": {}, "_format_type": None,
                     "_output_all_columns": False, "_split": None}
            # plain writes: the folder itself is renamed into place only once complete (atomic_dir)
            (self.folder / name / "state.json").write_text(json.dumps(state, indent=2) + "\n")
            (self.folder / name / "dataset_info.json").write_text(json.dumps(info, indent=2) + "\n")
        (self.folder / "dataset_dict.json").write_text(json.dumps({"splits": list(SPLITS)}) + "\n")
        if tokenizer is not None:
            tokenizer.save(self.folder / TOKENIZER_DIR)
            # The bytes written, so a tokenizer.json swapped later is noticed (check_tokenizer).
            manifest.tokenizer = {**manifest.tokenizer,
                                  "file_fingerprint": file_fingerprint(self.folder / TOKENIZER_DIR / "tokenizer.json")}
        # The manifest goes last: a folder with a manifest is a finished dataset.
        atomic_write_json(self.folder / MANIFEST, manifest.to_dict())


# Rows per Arrow record batch when writing: large batches, as the reader's work is per batch.
WRITE_BATCH_ROWS = 100_000


def load_split(folder: str | Path, split: str) -> datasets.Dataset:
    """One split as a ``datasets.Dataset`` (memory-mapped)."""
    import datasets

    folder = Path(folder)
    load_manifest(folder)
    if split not in SPLITS or not (folder / split).is_dir():
        have = [s for s in SPLITS if (folder / s).is_dir()]
        raise ILMError(f"{folder} has no split {split!r}; it has {', '.join(have) or 'none'}")
    try:
        return datasets.load_from_disk(str(folder / split))
    except (FileNotFoundError, ValueError, KeyError, TypeError, pa.ArrowException, OSError) as e:
        # a truncated or overwritten .arrow file, a garbled state.json: the folder, not a traceback
        raise ILMError(f"{folder / split}: cannot read the split ({type(e).__name__}: {str(e)[:120]}); "
                       "remake the dataset with `ilm perturb ... --force`") from None


def load_dataset_tokenizer(folder: str | Path) -> MarkedTokenizer:
    """The tokenizer (markers included) the dataset was made with."""
    from impossible_lms.tokenizer import load_tokenizer

    path = Path(folder) / TOKENIZER_DIR
    if not path.is_dir():
        raise ILMError(f"{folder} has no {TOKENIZER_DIR}/ folder")
    check_tokenizer(folder, load_manifest(folder))
    return load_tokenizer(path)


def check_tokenizer(folder: str | Path, manifest: Manifest) -> None:
    """ILMError when ``tokenizer/tokenizer.json`` is not the one the manifest records.

    ``write_dataset`` records the written file's fingerprint (``tokenizer.file_fingerprint``),
    so a file swapped after `ilm perturb` (its ids no longer mean what they meant) is
    caught before training or scoring on it. A folder without a tokenizer, or from
    before this was recorded, has nothing to check.
    """
    path = Path(folder) / TOKENIZER_DIR / "tokenizer.json"
    recorded = (manifest.tokenizer or {}).get("file_fingerprint")
    if not recorded:
        return
    if not path.is_file():
        raise ILMError(f"{path} is missing (the dataset's manifest records one); restore it or remake the dataset")
    found = file_fingerprint(path)
    if found != recorded:
        raise ILMError(
            f"{path} is not the tokenizer this dataset was made with (fingerprint {found}, manifest {recorded}); "
            "restore it or remake the dataset with `ilm perturb --force`"
        )


def dataset_folder_name(language: str) -> str:
    """``local_shuffle:w=3`` → ``local_shuffle_w=3`` (``:`` is awkward in paths).

    The registry reads these names back (``get_language("local_shuffle_w=3")``).
    """
    return language.replace(":", "_").replace("/", "_")


def resolve_folder(path: str | Path) -> Path:
    """A path as the user typed it, with language names where folder names are meant.

    ``data/local_shuffle:w=3`` and ``runs/local_shuffle:w=3/gpt2/seed0`` find the
    folders ``ilm`` wrote (``local_shuffle_w=3``, by :func:`dataset_folder_name`);
    a path that exists, or whose parts name no language, comes back unchanged
    (so the caller's "not found" error names what was typed).
    """
    path = Path(path)
    if path.exists() or ":" not in str(path):
        return path
    from perturbations import get_language
    from perturbations.errors import ILMError

    parts = []
    for part in path.parts:
        try:
            parts.append(dataset_folder_name(get_language(part).name) if ":" in part else part)
        except ILMError:
            parts.append(part)
    candidate = Path(*parts)
    return candidate if candidate.exists() else path
