"""`nbgan simulate`: a suite of particle-mesh N-body boxes (jaxpm) as count cubes."""

from __future__ import annotations

import argparse
import dataclasses

from nbgan_app.errors import InputError

# Flag name -> SimulationConfig field; each flag, when given, overrides the config.
FLAGS = {"boxes": int, "particles": int, "mesh": int, "grid": int, "box_size": float,
         "steps": int, "seed": int, "a_start": float}


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="run particle-mesh N-body simulations (jaxpm) and write count cubes",
        description=(
            "Simulate BOXES periodic LambdaCDM boxes (Omega_m 0.276, sigma8 0.811, h 0.7, z = 0) with a "
            "jaxpm particle-mesh code (LPT start, kick-drift-kick steps to a = 1) and write each one's "
            "nearest-grid-point particle counts, GRID^3, to DIR/box_000.h5 ... Box i uses seed SEED + i, "
            "so runs are reproducible. Boxes already in DIR with the same settings are kept (a rerun is "
            "instant; an interrupted run resumes); boxes made with other settings are an error. "
            "Settings come from --config's [data.simulation] (DIR defaults to its cache) and the flags, "
            "which win."),
    )
    parser.add_argument("--out", metavar="DIR", help="output directory, created if missing (its parent must exist; "
                        "default: the config's cache directory)")
    parser.add_argument("--config", metavar="C", help="take the settings from this config's [data.simulation]")
    parser.add_argument("--boxes", type=int, metavar="N", help="number of boxes (default 8)")
    parser.add_argument("--particles", type=int, metavar="P", help="particles per side (default 64)")
    parser.add_argument("--mesh", type=int, metavar="M", help="PM mesh cells per side; must equal --particles "
                        "(jaxpm 0.1.6), which it follows by default")
    parser.add_argument("--grid", type=int, metavar="G", help="count-cube cells per side (default 64)")
    parser.add_argument("--box-size", type=float, metavar="L", help="box side in Mpc/h (default 100)")
    parser.add_argument("--steps", type=int, metavar="S", help="kick-drift-kick steps to a = 1 (default 20)")
    parser.add_argument("--seed", type=int, metavar="K", help="seed of box 0 (default 0)")
    parser.add_argument("--a-start", type=float, metavar="A", help="scale factor of the LPT start (default 0.1)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def settings(args: argparse.Namespace):
    """The SimulationConfig and output directory the arguments ask for."""
    from pathlib import Path

    from nbgan_app.config import SimulationConfig, load_config

    if args.config:
        config = load_config(args.config)
        if config.data.simulation is None:
            raise InputError(f"{args.config} has no [data.simulation] section")
        sim, out = config.data.simulation, config.resolve(config.data.simulation.cache)
    elif args.out:
        sim, out = SimulationConfig(cache=args.out), None
    else:
        raise InputError("give --out DIR (or --config C to use its cache directory)")
    given = {name: getattr(args, name) for name in FLAGS if getattr(args, name) is not None}
    if "particles" in given and "mesh" not in given:
        given["mesh"] = given["particles"]
    out = Path(args.out) if args.out else out
    return dataclasses.replace(sim, cache=str(out), **given), out


def run(args) -> int:
    import numpy as np

    from nbgan_app.cubes import iter_cubes
    from nbgan_app.simulate import check_simulation, simulate_suite

    sim, out = settings(args)
    check_simulation(sim)
    # --out is the user's own path: only DIR itself is made; a config's cache may make its parents
    paths = simulate_suite(sim, out, progress=not args.quiet, parents=not args.out)
    # Clustering: count variance over mean, 1 for Poisson (unclustered) particles; one cube at a time.
    ratio = float(np.mean([cube.var() / cube.mean() for path in paths for cube in iter_cubes(path)]))
    print(f"{len(paths)} boxes of {sim.grid}^3 counts ({sim.particles}^3 particles, {sim.box_size:g} Mpc/h) "
          f"in {out}; count variance/mean {ratio:.2f} (Poisson: 1)")
    return 0
