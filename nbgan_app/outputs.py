"""Output files that are either complete or absent.

Every file nbgan writes goes through `atomic_file`: it is written under a
temporary name in the same directory and renamed into place only when the
writer finished without error, so an interrupted or failed command never
leaves a file that looks complete, and an existing result is never replaced
unless the caller asked for it.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

from nbgan_app.errors import InputError


def ensure_writable_dir(path: str | os.PathLike) -> Path:
    """Create `path` (and parents) if needed and check that files can be written there."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create output directory {path}: {exc.strerror}") from None
    if not path.is_dir():
        raise InputError(f"output path {path} exists and is not a directory")
    if not os.access(path, os.W_OK | os.X_OK):
        raise InputError(f"output directory {path} is not writable")
    return path


def temporary_name(path: Path) -> Path:
    """The hidden sibling a file is written to before it is renamed into place."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write; rename it to `path` on success, delete it on failure.

    Raises:
        InputError: `path` exists and `overwrite` is false, or its directory
            cannot be written.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise InputError(f"output {path} already exists (pass --overwrite to replace it)")
    ensure_writable_dir(path.parent)
    tmp = temporary_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
