"""``ilm``: the entry point. Each command lives in its own module and registers itself."""

from __future__ import annotations

import importlib
import os

import typer

app = typer.Typer(
    name="ilm",
    help="Impossible language models: perturb corpora, train, evaluate, report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)



@app.callback()
def _options(
    progress_every: float = typer.Option(
        None, "--progress-every", metavar="SECONDS", show_default="20, or $ILM_PROGRESS_EVERY",
        help="When stderr is not a terminal: seconds between plain progress lines.",
    ),
) -> None:
    """Impossible language models: perturb corpora, train, evaluate, report."""
    if progress_every is not None:
        import math

        from cli.common import fail
        from impossible_lms.progress import INTERVAL_ENV

        if not math.isfinite(progress_every) or progress_every < 0:  # 0: a line at every update
            raise fail(f"--progress-every must be a number of seconds >= 0, got {progress_every:g}")

        # The library reads it where each loop starts; the environment also reaches torchrun workers.
        os.environ[INTERVAL_ENV] = str(progress_every)


# Order is the order of `ilm --help`. Each module defines register(app).
COMMAND_MODULES = ["languages", "perturb", "train", "evaluate", "intervene", "probe", "pairs", "syntaxgym", "treeproj", "production", "report", "baselines", "run", "models", "export", "doctor"]


def _register_all() -> None:
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"cli.{name}")
        module.register(app)
    for info in app.registered_commands:
        _show_every_default(info.callback)


def _show_every_default(fn) -> None:
    """Every option says its default in --help: click prints none for an unset (None)
    option or an off flag, so those say "none" / "off" unless the option says better."""
    import inspect

    from typer.models import OptionInfo

    for param in inspect.signature(fn).parameters.values():
        opt = param.default
        if not isinstance(opt, OptionInfo) or opt.show_default is not True:
            continue  # an argument, or an option with its own wording
        if opt.default is None:
            opt.show_default = "none"
        elif opt.default is False and not any("/" in d for d in opt.param_decls):
            opt.show_default = "off"


_register_all()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
