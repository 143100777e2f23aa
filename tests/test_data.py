"""The tokenised dataset: round trip through `datasets`, manifest checks, atomic writes."""

from __future__ import annotations

import contextlib
import json

import datasets
import pytest

from impossible_lms.data import (
    SPLITS,
    Manifest,
    SplitColumns,
    check_compatible,
    dataset_folder_name,
    load_dataset_tokenizer,
    load_manifest,
    load_split,
    write_dataset,
)
from impossible_lms.errors import ILMError
from impossible_lms.tokenizer import load_tokenizer
from perturbations import MARKER_REVERSE


def manifest(**over) -> Manifest:
    base = dict(
        language="partial_reverse",
        family="reverse",
        params={"seed": 21},
        tokenizer={"name": "fallback", "fallback": True, "fingerprint": "abc"},
        vocab_size=300,
        eos_id=298,
        marker_ids={MARKER_REVERSE: 299},
        corpus={"name": "fake", "fingerprint": "c0ffee"},
        tagger="none",
    )
    return Manifest(**{**base, **over})


SPLIT_DATA = {
    "train": {"input_ids": [[1, 2, 3], [299, 4], [70000]], "genre": ["a", "b", "a"], "affected": [True, True, False]},
    "test_affected": {"input_ids": [[5, 6]], "genre": ["b"], "affected": [True]},
}


def test_round_trip_through_load_from_disk(tmp_path):
    write_dataset(tmp_path / "d", SPLIT_DATA, manifest())
    dd = datasets.load_from_disk(str(tmp_path / "d"))
    assert list(dd) == list(SPLITS)
    assert dd["train"]["input_ids"] == [[1, 2, 3], [299, 4], [70000]]
    assert dd["train"]["genre"] == ["a", "b", "a"]
    assert dd["train"]["affected"] == [True, True, False]
    assert dd["train"].features["input_ids"].feature.dtype == "int32"
    assert len(dd["dev"]) == 0 and len(dd["test_unaffected"]) == 0
    assert load_split(tmp_path / "d", "test_affected")["input_ids"] == [[5, 6]]


def test_manifest_records_counts_and_reads_back(tmp_path):
    m = manifest()
    write_dataset(tmp_path / "d", SPLIT_DATA, m)
    back = load_manifest(tmp_path / "d")
    assert back == m
    assert back.counts["train"] == {"sentences": 3, "tokens": 6}
    assert back.counts["dev"] == {"sentences": 0, "tokens": 0}
    on_disk = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert on_disk["format"] == "ilm-dataset/2" and on_disk["marker_ids"] == {MARKER_REVERSE: 299}


def test_columns_concat_keeps_rows_in_order():
    a = SplitColumns.from_lists([[1], [2, 3]], ["x", "x"], [True, False])
    b = SplitColumns.from_lists([[4, 5, 6]], ["y"], [True])
    c = SplitColumns.concat([a, SplitColumns.empty(), b])
    assert c.ids.offsets.tolist() == [0, 1, 3, 6]
    assert c.ids.values.tolist() == [1, 2, 3, 4, 5, 6]
    assert c.genre == ["x", "x", "y"] and c.affected.tolist() == [True, False, True]


def test_tokenizer_is_saved_beside_the_data(tmp_path):
    tok = load_tokenizer("fallback", markers=(MARKER_REVERSE,), corpus=["the dog runs ."] * 20, fallback_vocab=300)
    write_dataset(tmp_path / "d", SPLIT_DATA, manifest(), tokenizer=tok)
    back = load_dataset_tokenizer(tmp_path / "d")
    assert back.fingerprint == tok.fingerprint and back.is_fallback


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    class Boom(Exception):
        pass

    class BadTokenizer:
        def save(self, folder):
            raise Boom()

    with pytest.raises(Boom):
        write_dataset(tmp_path / "d", SPLIT_DATA, manifest(), tokenizer=BadTokenizer())
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fails", [False, True])
def test_writing_leaves_datasets_settings_as_it_found_them(tmp_path, fails):
    from datasets import config

    class BadTokenizer:
        def save(self, folder):
            raise RuntimeError("disk full")

    batch, bars = config.DEFAULT_MAX_BATCH_SIZE, datasets.is_progress_bar_enabled()
    with pytest.raises(RuntimeError) if fails else contextlib.nullcontext():
        write_dataset(tmp_path / "d", SPLIT_DATA, manifest(), tokenizer=BadTokenizer() if fails else None)
    assert (config.DEFAULT_MAX_BATCH_SIZE, datasets.is_progress_bar_enabled()) == (batch, bars)


def test_large_splits_are_written_in_few_record_batches(tmp_path):
    import pyarrow as pa

    rows = 25_000
    write_dataset(tmp_path / "d", {"train": {"input_ids": [[i, i + 1] for i in range(rows)], "genre": ["g"] * rows,
                                              "affected": [True] * rows}}, manifest())
    (arrow,) = (tmp_path / "d" / "train").glob("*.arrow")
    with pa.memory_map(str(arrow)) as source:
        batches = pa.ipc.open_stream(source).read_all().to_batches()
    assert len(batches) == 1 and load_split(tmp_path / "d", "train")["input_ids"][-1] == [rows - 1, rows]


def test_failed_rewrite_keeps_the_old_dataset(tmp_path):
    write_dataset(tmp_path / "d", SPLIT_DATA, manifest())

    class BadTokenizer:
        def save(self, folder):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_dataset(tmp_path / "d", {"train": SPLIT_DATA["test_affected"]}, manifest(), tokenizer=BadTokenizer())
    assert load_split(tmp_path / "d", "train")["input_ids"] == [[1, 2, 3], [299, 4], [70000]]
    assert [p.name for p in tmp_path.iterdir()] == ["d"]


def test_unknown_split_name_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown split"):
        write_dataset(tmp_path / "d", {"validation": SPLIT_DATA["train"]}, manifest())


def test_load_manifest_errors(tmp_path):
    with pytest.raises(ILMError, match="not an ilm dataset"):
        load_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{oops")
    with pytest.raises(ILMError, match="invalid JSON"):
        load_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"language": "x"}))
    with pytest.raises(ILMError, match="missing family"):
        load_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({**manifest().to_dict(), "format": "other/9"}))
    with pytest.raises(ILMError, match="format"):
        load_manifest(tmp_path)


def test_load_split_names_the_available_splits(tmp_path):
    write_dataset(tmp_path / "d", SPLIT_DATA, manifest())
    with pytest.raises(ILMError, match="no split 'validation'; it has train, dev, test_affected, test_unaffected"):
        load_split(tmp_path / "d", "validation")


def test_check_compatible():
    m = manifest()
    check_compatible(m, vocab_size=300, tokenizer_fingerprint="abc")
    check_compatible(m, vocab_size=50264)  # padded vocabularies are fine
    with pytest.raises(ILMError, match="300 token ids but the model has a vocabulary of 299"):
        check_compatible(m, vocab_size=299)
    with pytest.raises(ILMError, match="tokenised with 'fallback'"):
        check_compatible(m, tokenizer_fingerprint="other")


def test_identity_ignores_counts_and_time():
    a, b = manifest(), manifest(created="yesterday", counts={"train": {"sentences": 1, "tokens": 1}})
    assert a.differences(b) == []
    assert a.differences(manifest(corpus={"name": "x", "fingerprint": "1"}, tagger="nltk")) == ["corpus", "tagger"]


def test_folder_names():
    assert dataset_folder_name("local_shuffle:w=3") == "local_shuffle_w=3"
    assert dataset_folder_name("no_shuffle") == "no_shuffle"
    assert dataset_folder_name("local_shuffle:w=3,seed=5") == "local_shuffle_w=3,seed=5"
    from perturbations import get_language

    assert get_language(dataset_folder_name("local_shuffle:w=3,seed=5")).name == "local_shuffle:w=3,seed=5"


def test_a_manifest_edited_by_hand_is_refused_by_every_stage_that_reads_it(tmp_path):
    """vocab_size: 100 or marker_ids: {} written into a dataset's manifest: train, eval and a perturb
    rerun refuse it in one line instead of trusting it."""
    import json

    from typer.testing import CliRunner

    from cli.main import app
    from impossible_lms.data import Manifest
    from impossible_lms.evaluation.toy import make_toy_data, make_toy_run
    from impossible_lms.perturb import _is_done

    data = make_toy_data(tmp_path / "data", per_genre=3)
    run = make_toy_run(tmp_path / "run", steps=[1], data=data)
    path = data / "manifest.json"
    good = json.loads(path.read_text())
    assert load_manifest(data).checksum == good["checksum"] != ""

    edited = {**good, "vocab_size": 100}
    path.write_text(json.dumps(edited))
    with pytest.raises(ILMError, match=r"changed after `ilm perturb` wrote it \(its checksum does not match\)"):
        load_manifest(data)
    for args in (["eval", str(run), "--data", str(data)], ["train", "--data", str(data), "--model", "tiny-gpt2"]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 1 and "its checksum does not match" in result.output, result.output
    with pytest.raises(ILMError, match="exists but its manifest cannot be reused.*pass --force"):
        _is_done(data, Manifest.from_dict(good), force=False, needs_tags=False)

    older = {k: v for k, v in good.items() if k != "checksum"}  # from before checksums: checked field by field
    for field, value, message in (("marker_ids", {}, "no_hop marks with 🄿 🅂, but the manifest's marker_ids hold none"),
                                  ("eos_id", 10**6, r"eos_id must be an integer in \[0, "),
                                  ("vocab_size", "many", "vocab_size must be an integer at least 1")):
        path.write_text(json.dumps({**older, field: value}))
        with pytest.raises(ILMError, match=message):
            load_manifest(data)
