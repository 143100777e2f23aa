"""The result store: long-format rows, one Parquet file per (subject, checkpoint, data, metric, settings).

::

    RESULTS/<subject-slug>/<checkpoint|model>/<metric>--<eval-language>--<key>.parquet

``key`` hashes everything the numbers depend on (data fingerprint, scorer
version, sample size, seed, EOS conditioning, unit, dtype), so a rerun finds a
file and skips that work, while a changed setting writes a new file. Each file
is written atomically: a crash leaves finished files and no partial ones.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable

import pandas as pd

from impossible_lms.errors import ILMError
from impossible_lms.io import atomic_path

COLUMNS = [
    "subject", "language", "model", "seed", "checkpoint", "metric", "subset", "layer", "value",
    "ci_low", "ci_high", "count", "unit", "eval_language", "data_fingerprint", "scorer_version",
    "dtype", "sample_scheme", "sample_size", "sample_seed", "sample_short", "condition_on_eos",
    # analyses (impossible_lms/analysis): the token position and the span label a row is about
    "position", "label",
    # where the subject lay when scored: information only (``subject`` is the key)
    "path",
    # an analysis's options that change its numbers ("region_metric=first, local_agreement=True")
    "options",
]
REQUIRED_COLUMNS = ("language", "model", "seed", "metric", "value")  # what every report groups or aggregates by
INT_COLUMNS = ("checkpoint", "seed", "layer", "count", "sample_size", "sample_seed", "sample_short", "position")


def slug(text: str) -> str:
    """A folder-safe name: ``runs/x/tiny-gpt2/seed0`` → ``runs_x_tiny-gpt2_seed0``."""
    return re.sub(r"[^A-Za-z0-9._=+-]+", "_", str(text).strip("/")).strip("_") or "subject"


def chunk_path(results: Path, subject: str, step: int | None, revision: str | None,
               metric: str, eval_language: str, key: str) -> Path:
    where = f"checkpoint-{step}" if step is not None else slug(revision or "main")
    return Path(results) / slug(subject) / where / f"{metric}--{slug(eval_language)}--{key}.parquet"


def write_chunk(path: Path, rows: list[dict]) -> None:
    frame = pd.DataFrame(rows, columns=COLUMNS)
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def _read_table(path: Path) -> pd.DataFrame:
    """One results file; ILMError naming it when it is truncated or not a table."""
    import pyarrow as pa

    kind = "CSV" if path.suffix == ".csv" else "Parquet"
    try:
        frame = pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)
    except (pa.ArrowInvalid, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as e:
        raise ILMError(f"{path} is not a readable {kind} results file (truncated, or not {kind}: {type(e).__name__}); "
                       "delete it (`ilm eval` rewrites it) or leave it out") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if len(frame) and missing:
        raise ILMError(f"{path} is not an ilm results file (no {', '.join(missing)} column); leave it out")
    if len(frame):
        numbers = pd.to_numeric(frame["value"], errors="coerce")
        if (numbers.isna() & frame["value"].notna()).any():
            bad = frame["value"][numbers.isna() & frame["value"].notna()].iloc[0]
            raise ILMError(f"{path}: the value column holds {bad!r}, not a number; delete the file "
                           "(`ilm eval` rewrites it) or leave it out")
        frame["value"] = numbers
    return frame


def load_results(paths: Iterable[str | Path]) -> pd.DataFrame:
    """Every result row under the given folders or files, as one long DataFrame."""
    files: list[Path] = []
    for p in paths if not isinstance(paths, (str, Path)) else [paths]:
        p = Path(p)
        if p.is_dir():
            files += sorted(f for f in p.rglob("*.parquet") if not f.name.startswith("."))
        elif p.is_file():
            files.append(p)
        else:
            raise ILMError(f"results path not found: {p}")
    frames = [_read_table(f) for f in files]
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in COLUMNS})
    return with_integer_columns(pd.concat(frames, ignore_index=True))


def with_integer_columns(df: pd.DataFrame) -> pd.DataFrame:
    """The store's integer columns as nullable Int64 (a missing layer or position stays <NA>)."""
    for col in INT_COLUMNS:
        if col in df.columns:
            df[col] = pd.to_numeric(df[col], errors="coerce").astype("Int64")
    return df
