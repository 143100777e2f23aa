"""One writer per output folder: an exclusive ``flock`` on a sibling lock file.

``hold(folder, what)`` locks ``<parent>/.<name>.lock`` (a sibling, because
dataset folders are replaced whole by a rename, which would take a lock file
inside them along). The holder writes its PID into the file so that a second
process can say who has it. The kernel drops a ``flock`` when its holder dies,
even by SIGKILL, so a stale lock file never blocks: the next process simply
takes it. The holder deletes the file when done; since a process may have opened
the file just before it was deleted (and then lock a file no longer at that
path), a lock counts only when the locked file is still the one at the path.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

from impossible_lms.errors import ILMError


def lock_path(folder: str | Path) -> Path:
    """The lock file of ``folder``, named from its resolved path: two names of one folder (a
    symlink, ``..``, a relative path) share one lock."""
    folder = Path(folder).resolve()
    return folder.parent / f".{folder.name}.lock"


@contextlib.contextmanager
def hold(folder: str | Path, what: str = "folder", enabled: bool = True) -> Iterator[Path | None]:
    """Hold the lock of ``folder`` for the block; ILMError naming the holder's PID when taken.

    ``enabled=False`` holds nothing (the non-main ranks of a distributed run, whose
    rank 0 holds it for all of them).
    """
    if not enabled:
        yield None
        return
    path = lock_path(folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = _lock(path, f"{what} {Path(folder)}")
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # while still locked, so no one can take the file on its way out
        os.close(fd)  # releases the flock


def _lock(path: Path, what: str) -> int:
    """An fd holding an exclusive flock on the file now at ``path``."""
    import fcntl

    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _holder(fd)
            os.close(fd)
            raise ILMError(
                f"{what} is in use by process {pid} (lock {path}); wait for it to finish or stop it, or write elsewhere"
            ) from None
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        os.close(fd)  # the holder deleted it between our open and our lock: try the new file


def _holder(fd: int) -> str:
    """The holder's PID from the lock file; it writes it just after locking, so give it a moment."""
    import time

    for _ in range(20):
        pid = os.pread(fd, 64, 0).decode(errors="replace").strip()
        if pid:
            return pid
        time.sleep(0.025)
    return "unknown"


@contextlib.contextmanager
def hold_all(folders: list[Path], what: str = "folder") -> Iterator[None]:
    """Hold the locks of several folders (in sorted order, so two callers cannot deadlock)."""
    with contextlib.ExitStack() as stack:
        for folder in sorted(set(map(Path, folders))):
            stack.enter_context(hold(folder, what))
        yield
