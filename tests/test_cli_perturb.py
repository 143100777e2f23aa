"""`ilm perturb` end to end on the embedded synthetic corpus (gold tags, fallback tokenizer)."""

from __future__ import annotations

import datasets
import pytest
from typer.testing import CliRunner

from cli.main import app
from impossible_lms.data import load_manifest

SYNTH = ["--corpus", "synthetic", "--corpus-option", "sentences=400", "--tokenizer", "fallback", "--tagger", "gold"]


def ilm(*args):
    return CliRunner().invoke(app, ["perturb", *map(str, args)])


def one_line_error(result, *fragments):
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    text = " ".join(result.output.split())  # rich may wrap a long line
    assert text.startswith("error:"), result.output
    for f in fragments:
        assert f in text, result.output


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    out = tmp_path_factory.mktemp("data")
    result = ilm("no_shuffle", "partial_reverse", "word_hop", *SYNTH, "--out", out)
    assert result.exit_code == 0, result.output
    return out, result


def test_writes_one_loadable_dataset_per_language(made):
    out, result = made
    assert sorted(p.name for p in out.iterdir()) == ["no_shuffle", "partial_reverse", "word_hop"]
    for name, vocab_extra in [("no_shuffle", 0), ("partial_reverse", 1), ("word_hop", 2)]:
        m = load_manifest(out / name)
        assert m.tokenizer["fallback"] is True and m.tagger == "gold"
        assert m.vocab_size == load_manifest(out / "no_shuffle").vocab_size + vocab_extra
        dd = datasets.load_from_disk(str(out / name))
        assert len(dd["train"]) == m.counts["train"]["sentences"] > 0
    assert "fallback tokenizer" in result.output and "word_hop" in result.output


def test_rerun_skips_and_keeps_the_files(made):
    out, _ = made
    before = (out / "word_hop" / "manifest.json").stat().st_mtime_ns
    result = ilm("word_hop", "no_shuffle", *SYNTH, "--out", out)
    assert result.exit_code == 0, result.output
    assert (out / "word_hop" / "manifest.json").stat().st_mtime_ns == before


def test_other_corpus_in_same_out_is_one_line_error(made):
    out, _ = made
    other = [a if a != "sentences=400" else "sentences=300" for a in SYNTH]
    result = ilm("no_shuffle", *other, "--out", out)
    one_line_error(result, "no_shuffle exists with a different manifest (", "corpus", "--force")
    assert load_manifest(out / "no_shuffle").counts["train"]["sentences"] > 300 * 0.8


def test_unknown_language_names_the_nearest(tmp_path):
    result = ilm("wordy_hop", *SYNTH, "--out", tmp_path / "o")
    one_line_error(result, "unknown language 'wordy_hop'", "word_hop")
    assert not (tmp_path / "o").exists()


def test_missing_and_empty_corpus(tmp_path):
    one_line_error(ilm("no_shuffle", "--corpus", tmp_path / "nope.txt", "--out", tmp_path / "o", "--tokenizer", "fallback"), "corpus not found")
    (tmp_path / "empty.txt").write_text("")
    one_line_error(ilm("no_shuffle", "--corpus", tmp_path / "empty.txt", "--out", tmp_path / "o", "--tokenizer", "fallback"), "empty")
    assert not (tmp_path / "o").exists()


@pytest.fixture
def line_splitter(monkeypatch):
    """One sentence per line, so plain-text tests need no NLTK punkt data."""
    import impossible_lms.tagging.backends as backends

    monkeypatch.setattr(backends, "sentence_splitter", lambda language="english": lambda line: [line])


def test_undecodable_bytes_fail_with_file_and_line_or_are_skipped(tmp_path, line_splitter):
    bad = tmp_path / "tiny.train"
    good_lines = [f"the dog number {i} runs to the park ." for i in range(40)]
    bad.write_bytes(("\n".join(good_lines[:3]) + "\n").encode() + b"caf\xe9 au lait .\n" + "\n".join(good_lines[3:]).encode())
    args = ["no_shuffle", "--corpus", bad, "--tokenizer", "fallback", "--tagger", "none"]
    one_line_error(ilm(*args, "--out", tmp_path / "o"), "tiny.train:4", "not valid UTF-8")
    assert not (tmp_path / "o").exists()
    result = ilm(*args, "--out", tmp_path / "o", "--on-bad-bytes", "skip")
    assert result.exit_code == 0, result.output
    # the CLI shows library warnings as one line each, not Python's file:line: UserWarning form
    assert any(line.startswith("warning:") and "skipped 1 line" in line for line in result.output.splitlines())
    assert load_manifest(tmp_path / "o" / "no_shuffle").counts["train"]["sentences"] == 40


def test_uncached_hub_tokenizer_explains_the_choices(tmp_path):
    result = ilm("no_shuffle", "--corpus", "synthetic", "--tokenizer", "no-such-org-ilm/tok", "--out", tmp_path / "o")
    one_line_error(result, "--tokenizer PATH", "--tokenizer fallback")


def test_bad_option_values(tmp_path):
    one_line_error(ilm("no_shuffle", *SYNTH, "--out", tmp_path, "--on-bad-bytes", "ignore"), "--on-bad-bytes")
    assert ilm("no_shuffle", *SYNTH, "--out", tmp_path, "--workers", "0").exit_code == 2


def test_help_lists_the_options():
    result = CliRunner().invoke(app, ["perturb", "--help"])
    assert result.exit_code == 0
    for option in ["--corpus", "--out", "--tokenizer", "--tagger", "--workers", "--on-bad-bytes", "--force", "reference"]:
        assert option in result.output
