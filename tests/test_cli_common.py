"""User mistakes become one line and a non-zero exit; bugs keep their traceback."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from cli.common import command, split_csv
from impossible_lms.errors import ILMError


def _app() -> typer.Typer:
    app = typer.Typer()

    @command(app, "boom")
    def boom(kind: str = "user") -> None:
        if kind == "user":
            raise ILMError("corpus not found: /nope")
        raise ValueError("a bug")

    @command(app, "ok")
    def ok() -> None:
        typer.echo("fine")

    return app


def test_user_error_is_one_line_exit_1() -> None:
    result = CliRunner().invoke(_app(), ["boom"])
    assert result.exit_code == 1
    assert "error: corpus not found: /nope" in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_bug_is_not_swallowed() -> None:
    result = CliRunner().invoke(_app(), ["boom", "--kind", "bug"])
    assert isinstance(result.exception, ValueError)


def test_split_csv() -> None:
    assert split_csv(["a,b", " c ", ""]) == ["a", "b", "c"]
    assert split_csv(None) == []
