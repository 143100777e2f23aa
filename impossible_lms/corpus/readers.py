"""``open_corpus``: one entry point, one reader per kind of source, tried in order.

Sources and how they map to (split, genre) files:

- ``"synthetic"``: the embedded grammar (``synthetic.py``); options ``sentences``
  (total, default 30000) and ``seed`` (default 0). Three genres × train/dev/test.
- A BabyLM folder, 2023 layout (``babylm_10M/`` or ``babylm_100M/`` → train,
  ``babylm_dev/`` → dev, ``babylm_test/`` → test, ``<genre>.<split>`` files) or
  2024 layout (``train_10M/`` or ``train_100M/`` (any ``*train_10M`` name), ``dev/``,
  ``test/``). Option ``train`` ("10M"/"100M") picks the training size; the default
  is the only one present. A Stanza JSON next to a text file
  (``<genre>.json`` or ``<genre>_parsed.json``, the reference's output) gives gold tags.
- A folder of ``<genre>.train|.dev|.test`` files (one BabyLM split folder, say).
- One text file: ``x.train|.dev|.test`` is that split; any other file (``x.txt``)
  is split by line index, deterministically: of every 20 lines, the 19th goes to
  dev, the 20th to test, the rest to train (90/5/5, stable as the file grows).
- One ``.conllu`` or Stanza ``.json`` file (gold tags), or a folder of ``.conllu``
  files (UD treebanks: ``en_ewt-ud-train.conllu`` ...); split from the name
  (``-train``/``-dev``/``-test``), else train.
- A ``datasets.save_to_disk`` folder: splits train / validation|dev / test (a
  single Dataset is split 90/5/5 like a text file); option ``text_column``
  (default "text") and ``genre_column`` (default "genre" when present).
- ``"hf:org/name"``: ``datasets.load_dataset`` from the local cache only (needs
  ``HF_HUB_OFFLINE=1``; ilm never downloads); options as for a datasets folder
  plus ``config``.

In every source, switchboard lines that start with a speaker tag (``A:\\t``, the
2024 release) lose it, so both releases give the same text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from impossible_lms.corpus.base import (
    SPLITS,
    Corpus,
    CorpusFile,
    ReadStats,
    read_lines,
    sort_files,
)
from impossible_lms.corpus.formats import read_conllu, read_stanza_json
from impossible_lms.errors import ILMError
from impossible_lms.io import file_fingerprint, fingerprint

SUFFIX_SPLITS = {".train": "train", ".dev": "dev", ".test": "test"}
BABYLM_2023 = {"dev": "babylm_dev", "test": "babylm_test"}
BABYLM_2024 = {"dev": "dev", "test": "test"}
TRAIN_DIR = re.compile(r"^(?:babylm_|(?:.*[_-])?train_)(\d+M)$")
SPEAKER = re.compile(r"^[A-Z]:\t")
DATASET_SPLITS = {"train": "train", "validation": "dev", "valid": "dev", "dev": "dev", "test": "test"}


def strip_speaker(line: str) -> str:
    return SPEAKER.sub("", line, count=1)


def ratio_split(index: int) -> str:
    """The 90/5/5 split of line ``index`` (0-based) of a single text file."""
    r = index % 20
    return "dev" if r == 18 else "test" if r == 19 else "train"


# -- text files -------------------------------------------------------------------------


def text_file(
    path: Path, split: str, genre: str, errors: str, keep: Callable[[int], bool] | None = None, mode: str = ""
) -> CorpusFile:
    stats = ReadStats()
    transform = strip_speaker if genre == "switchboard" else None
    tagged = _sidecar_tags(path, genre)
    return CorpusFile(
        split=split,
        genre=genre,
        name=f"{genre}.{split}",
        path=path,
        fingerprint=fingerprint(file_fingerprint(path), mode, errors, bool(transform)),
        _lines=lambda: read_lines(path, errors, stats, transform, keep),
        _tagged=tagged,
        stats=stats,
    )


def _sidecar_tags(path: Path, genre: str):
    """The reference's Stanza JSON written next to a BabyLM text file, if any."""
    for candidate in (path.with_suffix(".json"), path.with_name(f"{path.stem}_parsed.json")):
        if candidate.is_file():
            return lambda c=candidate: read_stanza_json(c, genre)
    return None


def tagged_file(path: Path, errors: str) -> CorpusFile:
    """A CoNLL-U or Stanza JSON file; its lines are the sentence texts."""
    reader = read_conllu if path.suffix == ".conllu" else read_stanza_json
    stem = path.stem.removesuffix("_parsed")
    split = next((s for s in SPLITS if re.search(rf"(?:^|[-_.]){s}(?:$|[-_.])", stem)), "train")
    genre = re.sub(r"(?:[-_.](?:train|dev|test))$", "", stem) or stem
    return CorpusFile(
        split=split,
        genre=genre,
        name=f"{genre}.{split}",
        path=path,
        fingerprint=fingerprint(file_fingerprint(path), "tagged"),
        _lines=lambda: (s.text for s in reader(path, genre)),
        _tagged=lambda: reader(path, genre),
    )


def split_folder(folder: Path, split: str | None, errors: str) -> list[CorpusFile]:
    """``<genre>.<split>`` files of one folder (split from the suffix unless given)."""
    files = []
    for path in sorted(folder.iterdir()):
        file_split = SUFFIX_SPLITS.get(path.suffix)
        if path.is_file() and file_split and (split is None or file_split == split):
            files.append(text_file(path, file_split, path.stem, errors))
    return files


# -- the readers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Reader:
    name: str
    options: tuple[str, ...]
    detect: Callable[[Any], bool]
    open: Callable[[Any, str, dict], tuple[str, list[CorpusFile]]]


def _is_path(source: Any) -> bool:
    return isinstance(source, Path) or (isinstance(source, str) and not source.startswith("hf:") and source != "synthetic")


SYNTHETIC_MAX_SENTENCES = 10_000_000


def _open_synthetic(source: Any, errors: str, options: dict) -> tuple[str, list[CorpusFile]]:
    from impossible_lms.corpus import synthetic

    # the synthetic grammar makes ~10k sentences/s: a bound keeps a typo from running for days
    total = _int_option(options, "sentences", 30000, minimum=1, maximum=SYNTHETIC_MAX_SENTENCES)
    seed = _int_option(options, "seed", 0, minimum=0, maximum=2**32 - 1)
    files = []
    for (genre, split), count in synthetic.split_sizes(total).items():
        cache: list = []

        def sentences(genre=genre, split=split, count=count, cache=cache):
            if not cache:
                cache.append(synthetic.generate_file(genre, split, count, seed))
            return cache[0]

        files.append(
            CorpusFile(
                split=split,
                genre=genre,
                name=f"{genre}.{split}",
                path=None,
                fingerprint=fingerprint("synthetic", synthetic.GRAMMAR_VERSION, seed, genre, split, count),
                _lines=lambda s=sentences: (x.text for x in s()),
                _tagged=lambda s=sentences: list(s()),
            )
        )
    return f"synthetic-{total}-seed{seed}", files


def _int_option(options: dict, key: str, default: int, minimum: int | None = None,
                maximum: int | None = None) -> int:
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).lstrip("-").isdigit():
        raise ILMError(f"corpus option {key} must be an integer, got {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ILMError(f"corpus option {key} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ILMError(f"corpus option {key} must be at most {maximum:,}, got {value:,}")
    return value


def _is_babylm(source: Any) -> bool:
    path = Path(source)
    return path.is_dir() and any(p.is_dir() and TRAIN_DIR.match(p.name) for p in path.iterdir())


def _open_babylm(source: Any, errors: str, options: dict) -> tuple[str, list[CorpusFile]]:
    root = Path(source)
    trains = {m.group(1): p for p in sorted(root.iterdir()) if p.is_dir() and (m := TRAIN_DIR.match(p.name))}
    size = options.get("train")
    if size is None:
        if len(trains) > 1:
            raise ILMError(f"{root} has several training sets ({', '.join(trains)}); choose one with train=<size>")
        size = next(iter(trains))
    if str(size) not in trains:
        raise ILMError(f"{root}: no {size} training set; choose from {', '.join(trains)}")
    train_dir = trains[str(size)]
    layout = BABYLM_2023 if train_dir.name.startswith("babylm_") else BABYLM_2024
    files = split_folder(train_dir, "train", errors)
    for split, dirname in layout.items():
        if (root / dirname).is_dir():
            files += split_folder(root / dirname, split, errors)
    return f"{root.name}-{size}", files


def _is_split_folder(source: Any) -> bool:
    path = Path(source)
    return path.is_dir() and any(p.suffix in SUFFIX_SPLITS for p in path.iterdir())


def _open_split_folder(source: Any, errors: str, options: dict) -> tuple[str, list[CorpusFile]]:
    return Path(source).name, split_folder(Path(source), None, errors)


def _is_tagged_folder(source: Any) -> bool:
    path = Path(source)
    return path.is_dir() and any(p.suffix == ".conllu" for p in path.iterdir())


def _open_tagged_folder(source: Any, errors: str, options: dict) -> tuple[str, list[CorpusFile]]:
    files = [tagged_file(p, errors) for p in sorted(Path(source).glob("*.conllu"))]
    names = [f.name for f in files]
    if len(set(names)) != len(names):
        raise ILMError(f"{source}: several .conllu files map to the same genre and split ({', '.join(sorted(names))})")
    return Path(source).name, files


def _is_tagged_file(source: Any) -> bool:
    return Path(source).is_file() and Path(source).suffix in (".conllu", ".json")


def _open_tagged_file(source: Any, errors: str, options: dict) -> tuple[str, list[CorpusFile]]:
    return Path(source).stem, [tagged_file(Path(source), errors)]


def _open_text_file(source: Any, errors: str, options: dict) -> tuple[str, list[CorpusFile]]:
    path = Path(source)
    split = SUFFIX_SPLITS.get(path.suffix)
    if split:
        return path.stem, [text_file(path, split, path.stem, errors)]
    files = [
        text_file(path, s, path.stem, errors, keep=lambda i, s=s: ratio_split(i) == s, mode=f"ratio90/5/5:{s}")
        for s in SPLITS
    ]
    return path.stem, files


def _is_datasets_folder(source: Any) -> bool:
    path = Path(source)
    return path.is_dir() and any((path / n).is_file() for n in ("dataset_dict.json", "state.json"))


def _open_datasets_folder(source: Any, errors: str, options: dict) -> tuple[str, list[CorpusFile]]:
    import datasets

    try:
        data = datasets.load_from_disk(str(source))
    except Exception as e:  # datasets raises many kinds; the user needs the one line
        raise ILMError(f"cannot load the datasets folder {source}: {str(e).splitlines()[0]}") from None
    return Path(source).name, dataset_files(data, Path(source).name, options)


def _open_hf(source: Any, errors: str, options: dict) -> tuple[str, list[CorpusFile]]:
    name = str(source)[3:]
    if not name:
        raise ILMError("hf: needs a dataset id, e.g. hf:org/name")
    import datasets

    if not datasets.config.HF_HUB_OFFLINE:
        raise ILMError(
            f"ilm never downloads: to read hf:{name}, fetch it first (huggingface-cli download --repo-type dataset "
            f"{name}) and run with HF_HUB_OFFLINE=1, or pass a datasets.save_to_disk folder"
        )
    try:
        data = datasets.load_dataset(name, options.get("config"))
    except Exception as e:
        raise ILMError(f"cannot load hf:{name} from the local cache: {str(e).splitlines()[0]}") from None
    return name.replace("/", "_"), dataset_files(data, name.split("/")[-1], options)


def dataset_files(data: Any, default_genre: str, options: dict) -> list[CorpusFile]:
    """CorpusFiles over a Dataset or DatasetDict: one per (split, genre)."""
    import datasets

    text_col = options.get("text_column", "text")
    genre_col = options.get("genre_column", "genre")
    if isinstance(data, datasets.Dataset):
        parts = {s: (data, lambda i, s=s: ratio_split(i) == s) for s in SPLITS}
    else:
        parts = {}
        for key, ds in data.items():
            split = DATASET_SPLITS.get(key)
            if split is None:
                continue
            parts[split] = (ds, None)
    files = []
    for split, (ds, keep) in parts.items():
        if text_col not in ds.column_names:
            raise ILMError(f"dataset has no column {text_col!r} (columns: {', '.join(ds.column_names)}); set text_column")
        has_genre = genre_col in ds.column_names
        genres = sorted(ds.unique(genre_col)) if has_genre else [default_genre]
        for genre in genres:

            def lines(ds=ds, keep=keep, genre=genre, has_genre=has_genre):
                texts = ds[text_col]
                tags = ds[genre_col] if has_genre else None
                for i, text in enumerate(texts):
                    if (keep is None or keep(i)) and (tags is None or tags[i] == genre) and text:
                        yield strip_speaker(text) if genre == "switchboard" else text

            files.append(
                CorpusFile(split, genre, f"{genre}.{split}", None,
                           fingerprint(ds._fingerprint, split, genre, text_col, keep is not None), lines)
            )
    return files


READERS: tuple[Reader, ...] = (
    Reader("synthetic", ("sentences", "seed"), lambda s: s == "synthetic", _open_synthetic),
    Reader("hf", ("config", "text_column", "genre_column"), lambda s: isinstance(s, str) and s.startswith("hf:"), _open_hf),
    Reader("datasets", ("text_column", "genre_column"), lambda s: _is_path(s) and _is_datasets_folder(s), _open_datasets_folder),
    Reader("babylm", ("train",), lambda s: _is_path(s) and _is_babylm(s), _open_babylm),
    Reader("text-folder", (), lambda s: _is_path(s) and _is_split_folder(s), _open_split_folder),
    Reader("conllu-folder", (), lambda s: _is_path(s) and _is_tagged_folder(s), _open_tagged_folder),
    Reader("tagged-file", (), lambda s: _is_path(s) and _is_tagged_file(s), _open_tagged_file),
    Reader("text-file", (), lambda s: _is_path(s) and Path(s).is_file(), _open_text_file),
)


def open_corpus(source: str | Path, errors: str = "fail", options: dict | None = None) -> Corpus:
    """Open a corpus by name or path (see the module docstring for the sources)."""
    if errors not in ("fail", "skip"):
        raise ILMError(f"errors must be 'fail' or 'skip', got {errors!r}")
    options = dict(options or {})
    if _is_path(source) and not Path(source).exists():
        raise ILMError(f"corpus not found: {source} (give a BabyLM folder, a text file, hf:<id> or 'synthetic')")
    reader = next((r for r in READERS if r.detect(source)), None)
    if reader is None:
        raise ILMError(
            f"{source}: not a corpus ilm can read (expected BabyLM split folders, <genre>.train/.dev/.test files, "
            "a text file, a .conllu/.json file or a datasets folder)"
        )
    unknown = sorted(set(options) - set(reader.options))
    if unknown:
        known = ", ".join(reader.options) or "none"
        raise ILMError(f"unknown option {unknown[0]!r} for a {reader.name} corpus (options: {known})")
    name, files = reader.open(source, errors, options)
    if not files:
        raise ILMError(f"{source}: no corpus files found")
    if all(f.path is not None and f.path.stat().st_size == 0 for f in files):
        raise ILMError(f"{source}: the corpus is empty")
    ordered = sort_files(files)
    return Corpus(
        name=name,
        fingerprint=fingerprint(reader.name, [(f.split, f.name, f.fingerprint) for f in ordered]),
        _files=ordered,
        source=str(source),
    )


def iter_sources() -> Iterable[str]:
    """Reader names, in detection order (for help texts)."""
    return (r.name for r in READERS)
