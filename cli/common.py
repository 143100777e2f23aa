"""What every command shares: one console, one way to report user errors."""

from __future__ import annotations

import contextlib
import errno
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
        except UnicodeDecodeError as e:  # where a reader did not name its file, still one line
            raise fail(f"an input file is not UTF-8 text ({e.reason} at byte {e.start}); give UTF-8 files") from None
        except RecursionError:
            raise fail("an input is nested too deeply to read (thousands of levels of brackets or JSON); "
                       "check the files given") from None
        except Exception as e:
            # What the system refused (a path that is a file, no permission, a full disk)
            # is the user's to fix: one line. Anything else is a bug and keeps its traceback.
            message = os_error_message(e)
            if message is None:
                raise
            raise fail(message) from None
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


# errno → what to tell the user; "{path}" is the file or folder the system named.
OS_ERRORS: dict[int, str] = {
    errno.ENOTDIR: "{path}: part of this path is a file, not a folder; choose another path",
    errno.EEXIST: "{path} already exists (as a file where a folder is needed); choose another path",
    errno.EISDIR: "{path} is a folder where a file is needed; choose another path",
    errno.EACCES: "{path}: permission denied; choose a folder you can write to",
    errno.EPERM: "{path}: operation not permitted; choose a folder you can write to",
    errno.EROFS: "{path} is on a read-only file system; write somewhere else",
    errno.ENOSPC: "no space left on the device writing {path}; free space or write elsewhere, then rerun to resume "
                  "(finished outputs are kept)",
    errno.EDQUOT: "disk quota exceeded writing {path}; free space or write elsewhere, then rerun to resume",
    errno.EFBIG: "{path}: file too large for this file system or your limit (ulimit -f); write elsewhere or "
                 "raise the limit, then rerun to resume",
}


def os_error_message(e: BaseException) -> str | None:
    """The one-line message for an OS refusal in :data:`OS_ERRORS`, else None.

    safetensors reports a full disk as ``SafetensorError(... os error 28 ...)``, not OSError.
    """
    code = e.errno if isinstance(e, OSError) else None
    if code is None and type(e).__name__ == "SafetensorError":
        text = str(e)
        code = errno.ENOSPC if ("os error 28" in text or "No space left" in text or "StorageFull" in text) else None
    if code not in OS_ERRORS:
        return None
    path = getattr(e, "filename", None)
    if getattr(e, "filename2", None):
        path = f"{path} -> {e.filename2}"  # type: ignore[attr-defined]
    return OS_ERRORS[code].format(path=path if path else "(a file)")


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


# -- options every command spells the same way (docs/ARCHITECTURE.md, "CLI conventions") ----------------

PRECISION_HELP = ("float32 (fp32; the reference's, no TF32), bfloat16 (bf16) or float16 (fp16): "
                  "autocast with fp32 weights and an fp32 vocabulary projection")
# `ilm train`'s TrainConfig.precision spells the same choices short
TRAIN_PRECISION = {"float32": "fp32", "fp32": "fp32", "bfloat16": "bf16", "bf16": "bf16", "float16": "fp16",
                   "fp16": "fp16", "auto": "auto"}


def precision_option(default: str | None = "float32", help: str = PRECISION_HELP, **kwargs: Any) -> Any:
    """``--precision`` (``--dtype`` is the same option, its older name): one name, one set of spellings."""
    return typer.Option(default, "--precision", "--dtype", help=help, **kwargs)


def train_precision(value: str | None) -> str | None:
    """A --precision value as TrainConfig spells it (float32 → fp32, ...); ILMError for an unknown one."""
    if value is None:
        return None
    from perturbations.errors import ILMError

    try:
        return TRAIN_PRECISION[value.lower()]
    except KeyError:
        raise ILMError(f"--precision {value!r}: choose auto, float32 (fp32), bfloat16 (bf16) or float16 (fp16)") from None


def device_option(default: str | None = "auto", **kwargs: Any) -> Any:
    return typer.Option(default, "--device", help="auto (CUDA when present), cpu, cuda, cuda:N.", **kwargs)


def progress_option() -> Any:
    return typer.Option(True, "--progress/--no-progress",
                        help="Progress bars on a terminal, plain lines when stderr is a log file.")


def batch_tokens_option(help: str = "Padded tokens per forward pass.", default: int | None = None, **kwargs: Any) -> Any:
    return typer.Option(default, "--batch-tokens", help=help, **kwargs)


def batch_rows_option(default: int, help: str = "Sequences per forward pass.") -> Any:
    return typer.Option(default, "--batch-rows", help=help)


def checkpoints_option(help: str = "Steps: 3000, 100-3000:100, 500,1000 or all.") -> Any:
    return typer.Option(None, "--checkpoints", "-c", help=help, show_default="all complete ones")
