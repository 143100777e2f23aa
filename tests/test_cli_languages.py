"""``ilm languages``: the table, the family filter, parametric specs, one-line errors."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from cli.languages import register
from perturbations import REFERENCE_LANGUAGES


def invoke(*args: str):
    app = typer.Typer()

    @app.callback()
    def main() -> None:  # a group, as in cli.main, so "languages" is a subcommand
        pass

    register(app)
    return CliRunner().invoke(app, ["languages", *args], env={"COLUMNS": "250"})


def test_lists_the_fifteen_languages() -> None:
    result = invoke()
    assert result.exit_code == 0, result.output
    for name in REFERENCE_LANGUAGES:
        assert f" {name} " in result.output
    assert "the dog see the cats , a hen \U0001F142 and you ." in result.output  # WordHop example
    assert "\U0001F141" in result.output  # reverse marker column


def test_family_filter() -> None:
    result = invoke("--family", "hop")
    assert result.exit_code == 0, result.output
    assert " word_hop " in result.output and " token_hop " in result.output
    assert "shuffle" not in result.output and "reverse" not in result.output


def test_parametric_specs() -> None:
    result = invoke("local_shuffle:w=7", "token_hop:n=2")
    assert result.exit_code == 0, result.output
    assert "LocalShuffle (w=7)" in result.output and "TokenHop (n=2)" in result.output
    assert "no_shuffle" not in result.output


def test_unknown_language_is_one_line_exit_1() -> None:
    result = invoke("local_shufle:w=3")
    assert result.exit_code == 1
    assert result.output.strip().startswith("error: unknown language 'local_shufle:w=3'; did you mean local_shuffle:w=3")
    assert "Traceback" not in result.output


def test_unknown_family_is_one_line_exit_1() -> None:
    result = invoke("--family", "shufle")
    assert result.exit_code == 1
    assert result.output.strip() == "error: unknown family 'shufle'; choose from shuffle, reverse, hop, tree"


def test_listing_languages_never_imports_torch(heavy_imports) -> None:
    # The whole CLI, as `ilm languages` runs it: a listing must start in well under
    # a second, not after the seconds that importing torch and transformers take.
    code = (
        "from cli.main import app; from typer.testing import CliRunner; "
        "print(CliRunner().invoke(app, ['languages', 'nope']).exit_code)"
    )
    exit_code, loaded = heavy_imports(code)
    assert exit_code == "1"  # a user error, handled
    assert "torch" not in loaded and "transformers" not in loaded
