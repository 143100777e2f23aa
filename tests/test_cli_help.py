"""Every command's --help at 80 columns: each option shows its default, nothing is cut or over-long."""

from __future__ import annotations

import re

import pytest
import typer.main
from typer.testing import CliRunner

from cli.main import app

WIDTH = 80


def _commands() -> list[str]:
    return [""] + sorted(typer.main.get_command(app).commands)


def _help(command: str) -> str:
    result = CliRunner().invoke(app, [*command.split(), "--help"], env={"COLUMNS": str(WIDTH)}, terminal_width=WIDTH)
    assert result.exit_code == 0, result.output
    return result.output


def _options(text: str) -> dict[str, str]:
    """Option entries of click's help ("  -x, --name TYPE  help..." plus indented continuation lines)."""
    section = text.split("\nOptions:\n", 1)[1].split("\n\n", 1)[0]
    entries: dict[str, str] = {}
    name = None
    for line in section.splitlines():
        m = re.match(r"^  (?:-\w, )?(--[\w-]+)", line)
        if m:
            name = m.group(1)
            entries[name] = line
        elif name is not None:
            entries[name] += " " + line.strip()
    return entries


@pytest.mark.parametrize("command", _commands())
def test_help_fits_80_columns_and_shows_every_default(command: str) -> None:
    text = _help(command)
    assert all(len(line) <= WIDTH for line in text.splitlines()), [ln for ln in text.splitlines() if len(ln) > WIDTH]
    assert "…" not in text  # nothing cut
    click_cmd = typer.main.get_command(app)
    if command:
        click_cmd = click_cmd.commands[command]
    entries = _options(text)
    for param in click_cmd.params:
        if param.param_type_name != "option" or param.name == "help":
            continue
        long = max(param.opts, key=len)
        assert long in entries, f"{command}: {long} missing from help"
        assert "[default: " in entries[long] or "[required]" in entries[long], f"{command} {long}: {entries[long]}"


def test_defaults_in_help_text_are_not_swallowed() -> None:
    text = _help("eval")
    entries = _options(text)
    assert "[default: (all complete ones)]" in entries["--checkpoints"]
    assert "[default: (the run's seed, else 0)]" in entries["--seed"]


def test_ilm_models_lists_every_preset_with_its_exact_parameter_count():
    from typer.testing import CliRunner

    from cli.main import app
    from impossible_lms.models import PRESETS, build_model, model_config
    from impossible_lms.models.config import preset_table

    rows = {r["preset"]: r for r in preset_table(vocab_size=1000)}
    assert list(rows) == list(PRESETS)
    built = build_model(model_config("tiny-gpt2-exits", vocab_size=1000))
    assert rows["tiny-gpt2-exits"]["parameters"] == sum(p.numel() for p in built.parameters())
    assert rows["backpack-gpt2"]["vocab"] == 50264 and rows["mini-gpt2"]["layers"] == 4
    result = CliRunner().invoke(app, ["models"], env={"COLUMNS": "80"})
    assert result.exit_code == 0 and all(name in result.output for name in PRESETS)
    assert max(len(line) for line in result.output.splitlines()) <= 80
