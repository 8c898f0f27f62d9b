"""`nbgan bench`: every benchmark side by side in one run, a table of ratios on stdout."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
from pathlib import Path

# Module names under nbgan_app.benchmarks, in the order they run.
SUITES = ("binning", "stats", "train_step", "sampling")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench", help="run the benchmark suite (medians of repeats, ratios side by side)",
        description="Runs every benchmark in one process, side by side with its reference, and prints a "
                    "table of absolute times (medians of repeats) and ratios. Figures are printed, never "
                    "asserted.")
    parser.add_argument("--quick", action="store_true",
                        help="smaller sizes and fewer repeats (about 75 s of CPU time)")
    parser.add_argument("--gpu", action="store_true",
                        help="the GPU figures instead (about 8 min): paper train steps per backend in fp32 and "
                             "bf16, XLA on and off; wavefront vs raster; a paper-chain 256^3 cube vs the simulation")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    parser.add_argument("--only", action="append", choices=SUITES, help="run only these suites")
    parser.set_defaults(func=run)


def machine() -> dict:
    import psutil

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        # absolute times on a shared machine mean little without the load they ran under
        "load_1min": round(os.getloadavg()[0], 1),
    }


def _fmt(value, digits=3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def print_table(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="nbgan bench (median seconds; ratio = reference / ours)")
    for column in ("benchmark", "ours (s)", "reference", "reference (s)", "ratio", "repeats", "note"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(row["benchmark"], _fmt(row.get("ours_s")), row.get("reference") or "",
                      _fmt(row.get("reference_s")), _fmt(row.get("ratio")), _fmt(row.get("repeats")),
                      row.get("note", ""))
    Console(width=160).print(table)


def run(args: argparse.Namespace) -> int:
    from nbgan_app.outputs import atomic_file, check_output_file

    if args.json is not None:
        check_output_file(args.json)  # before the benchmarks run, not after
    if args.gpu and (args.quick or args.only):
        from nbgan_app.errors import InputError

        raise InputError("--gpu runs its own suite: it takes neither --quick nor --only")
    info = machine()
    print("machine: " + ", ".join(f"{k}={v}" for k, v in info.items()), flush=True)
    rows: list[dict] = []
    totals: dict[str, float] = {}
    started = time.time()
    for name in ("gpu",) if args.gpu else (args.only or SUITES):
        try:
            module = importlib.import_module(f"nbgan_app.benchmarks.{name}")
        except ModuleNotFoundError:
            continue
        print(f"running {name} ...", file=sys.stderr, flush=True)
        suite_started = time.time()
        suite_rows = module.run(quick=args.quick)
        suite_s = time.time() - suite_started
        for row in suite_rows:
            row.setdefault("suite", name)
        rows.extend(suite_rows)
        totals[name] = suite_s
    print_table(rows)
    # per-suite wall times say where a slow run went (imports and compiles are in no row)
    print(f"total {time.time() - started:.0f} s (" + ", ".join(f"{k} {v:.0f} s" for k, v in totals.items()) + ")")
    if args.json is not None:
        with atomic_file(args.json) as tmp:
            tmp.write_text(json.dumps({"machine": info, "quick": args.quick, "gpu": args.gpu, "suite_s": totals,
                                       "rows": rows},
                                      indent=1))
    return 0
