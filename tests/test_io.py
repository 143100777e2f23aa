"""Atomic writes: a failure leaves the previous output untouched and no temp litter."""

from __future__ import annotations

from pathlib import Path

import pytest

from impossible_lms.io import atomic_dir, atomic_write_json, file_fingerprint, fingerprint


def test_atomic_dir_replaces_only_on_success(tmp_path: Path) -> None:
    final = tmp_path / "out"
    with atomic_dir(final) as tmp:
        (tmp / "a.txt").write_text("one")
    assert (final / "a.txt").read_text() == "one"

    with pytest.raises(RuntimeError):
        with atomic_dir(final) as tmp:
            (tmp / "a.txt").write_text("two")
            raise RuntimeError("crash mid-write")
    assert (final / "a.txt").read_text() == "one"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]

    with atomic_dir(final) as tmp:
        (tmp / "b.txt").write_text("three")
    assert sorted(p.name for p in final.iterdir()) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_atomic_json_and_fingerprints(tmp_path: Path) -> None:
    p = tmp_path / "sub" / "m.json"
    atomic_write_json(p, {"b": 1, "a": [1, 2]})
    assert p.read_text().startswith("{\n")
    assert fingerprint({"a": 1, "b": 2}) == fingerprint({"b": 2, "a": 1})
    assert fingerprint("x") != fingerprint("y")
    f1 = file_fingerprint(p)
    p.write_text(p.read_text() + " ")
    assert file_fingerprint(p) != f1


def test_atomic_path_keeps_the_old_file_on_failure(tmp_path: Path) -> None:
    from impossible_lms.io import atomic_path

    target = tmp_path / "fig.png"
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp != target
        tmp.write_bytes(b"first")
    assert target.read_bytes() == b"first"

    with pytest.raises(OSError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise OSError("disk full")
    assert target.read_bytes() == b"first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig.png"]
