"""Output files that are either complete or absent.

Every file nbgan writes goes through `atomic_file`: it is written under a
temporary name in the same directory and renamed into place only when the
writer finished without error, so an interrupted or failed command never
leaves a file that looks complete, and an existing result is never replaced
unless the caller asked for it.

Only the output's own file or directory is ever created. A missing parent
directory is an error naming it, so that a typo in a path (`reslts/s.json`)
does not quietly make directories. Where nbgan itself owns a layout (a run
directory's `checkpoints/`, the demo's `checkpoints/demo/...`, a config's
simulation cache), the caller opts in with `parents=True`.

`check_output_file` and `check_output_dir` make every check without writing
anything, so that a command can refuse a bad output path before it starts work.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

from nbgan_app.errors import InputError


def _check_writable_dir(path: Path, what: str = "output directory") -> None:
    if not path.is_dir():
        raise InputError(f"cannot create {what} {path}: it exists and is not a directory")
    if not os.access(path, os.W_OK | os.X_OK):
        raise InputError(f"{what} {path} is not writable")


def _missing_parent(path: Path, what: str = "output directory") -> InputError:
    return InputError(f"cannot create {what} {path}: its parent directory {path.parent} does not exist "
                      "(create it first, or check the path for a typo)")


def check_output_dir(path: str | os.PathLike, parents: bool = False, what: str = "output directory") -> Path:
    """Check, creating nothing, that `ensure_writable_dir(path, parents)` would succeed.

    `what` names the directory in messages ("run directory").

    Raises:
        InputError: `path` exists and is not a writable directory, or it is
            missing and so is its parent (without `parents`), or the parent
            is not a writable directory.
    """
    path = Path(path)
    if path.exists():
        _check_writable_dir(path, what)
        return path
    parent = path.parent
    if parents:
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
    elif not parent.exists():
        raise _missing_parent(path, what)
    if not parent.is_dir():
        raise InputError(f"cannot create {what} {path}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"cannot create {what} {path}: {parent} is not writable")
    return path


def ensure_writable_dir(path: str | os.PathLike, parents: bool = False) -> Path:
    """Create the directory `path` if needed and check that files can be written there.

    Only `path` itself is created: its parent must exist, unless `parents` is
    true (a layout nbgan owns), when missing parents are created too.
    """
    path = Path(path)
    if path.exists():
        _check_writable_dir(path)
        return path
    try:
        path.mkdir(parents=parents, exist_ok=True)
    except FileNotFoundError:
        raise _missing_parent(path) from None
    except OSError as exc:
        raise InputError(f"cannot create output directory {path}: {exc.strerror}") from None
    _check_writable_dir(path)
    return path


def check_output_file(path: str | os.PathLike, overwrite: bool = False, parents: bool = False) -> Path:
    """Check, creating nothing, that `atomic_file(path, overwrite, parents)` may write `path`.

    Raises:
        InputError: `path` is a directory; it exists and `overwrite` is false;
            its directory is missing (without `parents`) or not writable.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"output {path} is a directory; expected the name of a file to write")
    if path.exists() and not overwrite:
        raise InputError(f"output {path} already exists (pass --overwrite to replace it)")
    parent = path.parent
    if parent.exists() or not parents:
        if not parent.exists():
            raise InputError(f"output {path}: directory {parent} does not exist "
                             "(create it first, or check the path for a typo)")
        if not parent.is_dir():
            raise InputError(f"output {path}: {parent} is not a directory")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise InputError(f"output {path}: directory {parent} is not writable")
    else:
        check_output_dir(parent, parents=True)
    return path


def temporary_name(path: Path) -> Path:
    """The hidden sibling a file is written to before it is renamed into place."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, overwrite: bool = False, parents: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write; rename it to `path` on success, delete it on failure.

    `path`'s directory must exist unless `parents` (a layout nbgan owns).

    Raises:
        InputError: `path` is a directory, or exists and `overwrite` is
            false, or its directory is missing or cannot be written.
    """
    path = check_output_file(path, overwrite, parents)
    if parents:
        ensure_writable_dir(path.parent, parents=True)
    tmp = temporary_name(path)
    try:
        yield tmp
        if path.is_dir():  # made while we wrote: never rename a file over it
            raise InputError(f"output {path} is a directory; expected the name of a file to write")
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
