"""`nbgan ingest`: particle snapshots (Gadget HDF5, .npy) to count cubes, streaming."""

from __future__ import annotations


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "ingest",
        help="bin particle snapshots (Gadget HDF5 or .npy) into count cubes",
        description=(
            "Bin the particles of each snapshot into a periodic GRID^3 nearest-grid-point count cube, "
            "written to DIR/<name>.h5. Gadget HDF5 snapshots: Header/BoxSize and PartType1/Coordinates; "
            "give every file of a split snapshot (snap_005.0.hdf5 snap_005.1.hdf5 ..., e.g. "
            "snap_005.*.hdf5): they make one cube, snap_005.h5. Coordinates are binned against BoxSize "
            "in the snapshot's own unit; --box-size L sets the box_size attribute written, in Mpc/h "
            "(pass it when BoxSize is in kpc/h). .npy files: arrays (N, 3) of positions in [0, L), "
            "one cube each; --box-size is required. Particles are read in chunks, so memory does not "
            "grow with the particle count. All or nothing: every input and output is checked first, and the "
            "cubes are renamed into place together once every snapshot is binned, so a bad file leaves no "
            "cube behind. Snapshots holding no particles, and a --grid whose cube does not fit in the "
            "memory available, are refused."),
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="Gadget HDF5 snapshot files or .npy arrays")
    parser.add_argument("--grid", type=int, required=True, metavar="G", help="cells per side of the cubes")
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory (created if missing; its parent must exist)")
    parser.add_argument("--box-size", type=float, metavar="L", help="box side in Mpc/h (required for .npy)")
    parser.add_argument("--chunk", type=int, metavar="N", help="particles per chunk (default: by grid size)")
    parser.add_argument("--overwrite", action="store_true", help="replace cubes that exist")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args) -> int:
    from nbgan_app.ingest import plan_ingest, run_ingest

    # every check before the progress bar starts: a refusal is the only line on stderr
    plan = plan_ingest(args.inputs, args.grid, args.out, box_size=args.box_size,
                       overwrite=args.overwrite, chunk=args.chunk)
    with _progress(plan.particles, args.quiet) as advance:
        outputs = run_ingest(plan, on_chunk=advance)
    for path in outputs:
        print(path)
    return 0


def _progress(total: int, quiet: bool):
    """A context giving `advance(n)`: a rich bar of particles binned on stderr, when it is a terminal."""
    import contextlib

    from rich.console import Console

    console = Console(stderr=True)
    if quiet or not console.is_terminal:  # a log file gets no bar frames
        return contextlib.nullcontext(lambda n: None)

    @contextlib.contextmanager
    def bar():
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(TextColumn("binning"), BarColumn(), TextColumn("{task.completed:,.0f}/{task.total:,.0f} "
                      "particles"), TimeElapsedColumn(), console=console,
                      transient=True) as progress:  # gone on exit: an error is the only line left
            task = progress.add_task("binning", total=total)
            yield lambda n: progress.advance(task, n)

    return bar()
