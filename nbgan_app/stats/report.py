"""Statistics and scores as strict JSON, written atomically (no half-written results), and as text tables.

`score_table` is what `nbgan compare` and the demo print, `markdown_score_table`
the table in the demo's report.md: one row per statistic of the registry, each
score next to its real-vs-real floor (the mean over half-splits; "-" where
there is no floor or a value is null).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from nbgan_app.outputs import atomic_file, check_output_file
from nbgan_app.stats import registry


def check_output_free(path: str | os.PathLike | None, overwrite: bool) -> None:
    """Fail before any work when `path` may not be written: it is a directory, exists and may not be
    replaced, or its directory is missing or read-only (`outputs.check_output_file`)."""
    if path is not None:
        check_output_file(path, overwrite)


def write_json(path: str | os.PathLike, result: dict, overwrite: bool = False) -> Path:
    """Write `result` as strict JSON (NaN/inf are not allowed: callers map them to null)."""
    text = json.dumps(result, indent=1, allow_nan=False)
    with atomic_file(path, overwrite=overwrite) as tmp:
        tmp.write_text(text + "\n")
    return Path(path)


def _num(value) -> str:
    return "-" if value is None else f"{value:.3g}"


def score_table(result: dict) -> str:
    """A `compare` result as a fixed-width text table: score, log-L2 and median |frac|, each with its floor."""
    lines = [
        f"{result['n_fake']} fake against {result['n_real']} real cubes, box {result['box_size']:g} Mpc/h",
        f"{'statistic':<10} {'score':>9} {'floor':>17} {'log-L2':>9} {'floor':>9} {'|frac|':>7} {'floor':>7}",
    ]
    for name in registry.names():
        block = result[name]
        floor = block.get("floor", {})
        f_score = floor.get("score", {})
        cells = [
            _num(block["score"]),
            f"{_num(f_score.get('mean'))}±{_num(f_score.get('std'))}" if floor else "-",
            _num(block["log_l2"]),
            _num(floor.get("log_l2", {}).get("mean")),
            _num(block["median_abs_frac_diff"]),
            _num(floor.get("median_abs_frac_diff", {}).get("mean")),
        ]
        lines.append(f"{name:<10} {cells[0]:>9} {cells[1]:>17} {cells[2]:>9} {cells[3]:>9} {cells[4]:>7} {cells[5]:>7}")
    return "\n".join(lines)


def markdown_score_table(result: dict) -> list[str]:
    """A `compare` result as Markdown lines: score and median |frac| per statistic, each with its floor."""
    lines = ["| statistic | score | floor score | median abs frac diff | floor |", "|---|---|---|---|---|"]
    for name in registry.names():
        block = result[name]
        floor = block.get("floor", {})
        f_score = floor.get("score", {}).get("mean")
        f_frac = floor.get("median_abs_frac_diff", {}).get("mean")
        lines.append(f"| {name} | {_num(block.get('score'))} | {_num(f_score)} "
                     f"| {_num(block.get('median_abs_frac_diff'))} | {_num(f_frac)} |")
    return lines
