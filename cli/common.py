"""What every command shares: one console, one way to report user errors."""

from __future__ import annotations

import contextlib
import functools
import warnings
from typing import Any, Callable, TypeVar

import typer
from rich.console import Console

F = TypeVar("F", bound=Callable[..., Any])

console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print a one-line error and return the Exit to raise."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def user_errors(fn: F) -> F:
    """Turn :class:`ILMError` (a user mistake) into one line and a non-zero exit."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        # The torch-free home of the same class: commands that never touch a model
        # (`ilm languages`) then start without importing torch.
        from perturbations.errors import ILMError

        try:
            with one_line_warnings():
                return fn(*args, **kwargs)
        except ILMError as e:
            raise fail(str(e), getattr(e, "exit_code", 1)) from None
        except KeyboardInterrupt:
            raise fail("interrupted; finished outputs are kept, rerun to resume", 130) from None

    return wrapper  # type: ignore[return-value]


@contextlib.contextmanager
def one_line_warnings():
    """The library's warnings (a short sample, uneven checkpoints) as one ``warning:`` line each."""

    def show(message, category, filename, lineno, file=None, line=None):
        err_console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)

    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = show
        yield


def command(app: typer.Typer, name: str | None = None, **kwargs: Any) -> Callable[[F], F]:
    """``@command(app)``: register a Typer command with the shared error handling."""

    def deco(fn: F) -> F:
        app.command(name, **kwargs)(user_errors(fn))
        return fn

    return deco


def split_csv(values: list[str] | None) -> list[str]:
    """Options given as ``--x a,b --x c`` → ``[a, b, c]``."""
    out: list[str] = []
    for v in values or []:
        out.extend(p.strip() for p in v.split(",") if p.strip())
    return out
