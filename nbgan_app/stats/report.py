"""Writing statistics and scores as strict JSON, atomically (no half-written results)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from nbgan_app.errors import InputError
from nbgan_app.outputs import atomic_file


def check_output_free(path: str | os.PathLike | None, overwrite: bool) -> None:
    """Fail before any work when `path` exists and may not be replaced."""
    if path is not None and Path(path).exists() and not overwrite:
        raise InputError(f"output {path} already exists (pass --overwrite to replace it)")


def write_json(path: str | os.PathLike, result: dict, overwrite: bool = False) -> Path:
    """Write `result` as strict JSON (NaN/inf are not allowed: callers map them to null)."""
    text = json.dumps(result, indent=1, allow_nan=False)
    with atomic_file(path, overwrite=overwrite) as tmp:
        tmp.write_text(text + "\n")
    return Path(path)
