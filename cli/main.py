"""``ilm``: the entry point. Each command lives in its own module and registers itself."""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="ilm",
    help="Impossible language models: perturb corpora, train, evaluate, report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Order is the order of `ilm --help`. Each module defines register(app).
COMMAND_MODULES = ["languages", "perturb", "train", "evaluate", "report", "run", "models", "doctor"]


def _register_all() -> None:
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"cli.{name}")
        module.register(app)


_register_all()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
