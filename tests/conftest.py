"""Fixtures several test files share."""

from __future__ import annotations

import subprocess
import sys
from typing import Callable

import pytest

HEAVY = ("torch", "transformers", "datasets", "impossible_lms")


@pytest.fixture
def heavy_imports() -> Callable[[str], tuple[str, list[str]]]:
    """``run(code)``: run ``code`` in a fresh interpreter; its output and which of HEAVY it loaded."""

    def run(code: str) -> tuple[str, list[str]]:
        probe = f"{code}\nimport sys\nprint('@@', *[m for m in {HEAVY!r} if m in sys.modules])"
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
        printed, _, loaded = out.rpartition("@@")
        return printed.strip(), loaded.split()

    return run


@pytest.fixture(autouse=True)
def _own_tag_cache(tmp_path_factory, monkeypatch):
    """Each test's perturbations cache tags in a folder of its own, never in the user's ~/.cache."""
    monkeypatch.setenv("ILM_CACHE_DIR", str(tmp_path_factory.mktemp("ilm-cache")))


@pytest.fixture
def head_rows(monkeypatch) -> list[int]:
    """Rows that go through an ilm model's projection to the vocabulary during the test
    (both ways of scoring the head project ``LinearHead.inputs``' rows)."""
    from impossible_lms.evaluation.scoring import LinearHead

    rows: list[int] = []
    real = LinearHead.inputs

    def counting(self, h):
        rows.append(h.shape[0] if h.dim() == 2 else h.shape[0] * h.shape[1])
        return real(self, h)

    monkeypatch.setattr(LinearHead, "inputs", counting)
    return rows
