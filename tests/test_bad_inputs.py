"""The standing check on bad input: every row runs the real CLI and must give exit 2, one line, no file.

Each row is one bad input a new user or a fault tester would try (issue 12 and the cases that already
held up before it). It runs `nbgan_app.cli.main(argv)` in-process, captured at the file-descriptor level
(capfd, so that C-level writes count too), and asserts:

- exit code 2;
- exactly one line on stderr, `nbgan <command>: error: ...`, which contains the row's culprit (the file
  name, flag or config key at fault) and none of the row's `absent` strings (a misleading word the message
  once held);
- no new, changed or removed file under the test's directory or the shared runs the row read.

A row's `argv` builds its inputs in the test's own directory through `Ctx`, so a row that needs no trained
run never trains one. `nbgan tui` replaces the process (exec), so its rows run as a subprocess.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import h5py
import numpy as np
import pytest
from test_ingest import write_gadget
from test_sample_cli import bad_runs, chain_of  # noqa: F401 (bad_runs is a fixture)
from test_stats_cli import run_cli, snapshot, write_set
from test_train_cli import _data_dir_toml

from nbgan_app.cubes import write_cube

ROOT = Path(__file__).resolve().parents[1]
BOX = 50.0  # Mpc/h, of the particle files


class Ctx:
    """What a row's argv builder may use: the test directory, inputs written there, the session's runs."""

    def __init__(self, request, tmp_path: Path):
        self.request = request
        self.tmp = tmp_path
        self.watched = [tmp_path]

    def __truediv__(self, name: str) -> Path:
        return self.tmp / name

    def _watch(self, path: Path) -> None:
        if path not in self.watched:
            self.watched.append(path)

    # --- the session's fixtures, set up only for the rows that use them
    @property
    def runs(self) -> dict:
        runs = self.request.getfixturevalue("tiny_runs")
        self._watch(runs["3"].parent)
        return runs

    def chain(self, *scales: str) -> str:
        return chain_of(self.runs, *scales)

    def bad_run(self, name: str) -> str:
        runs = self.request.getfixturevalue("bad_runs")
        self._watch(Path(runs[name]).parent)
        return runs[name]

    def toml(self, *edits: tuple[str, str], name: str = "c.toml") -> Path:
        """configs/tiny.toml on the session's simulated cubes, with (old, new) text replacements."""
        tiny_toml = self.request.getfixturevalue("tiny_toml")
        self._watch(Path(self.request.getfixturevalue("tiny_config").data.simulation.cache))
        text = tiny_toml.read_text()
        for old, new in edits:
            assert old in text, f"configs/tiny.toml no longer holds {old!r}"
            text = text.replace(old, new)
        path = self / name
        path.write_text(text)
        return path

    def data_dir_toml(self, data: Path, held_out: int) -> Path:
        return _data_dir_toml(self.request.getfixturevalue("tiny_toml"), self.tmp, data, held_out)

    # --- inputs in the test directory
    def cube(self, name: str, counts=None, box_size: float | None = 64.0, side: int = 8, **attrs) -> Path:
        """A cube file written by nbgan's own writer (Poisson counts unless `counts` is given)."""
        if counts is None:
            counts = np.random.default_rng(0).poisson(20.0, (side,) * 3)
        path = self / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return write_cube(path, counts, box_size, **attrs)

    def h5(self, name: str, data=None, **attrs) -> Path:
        """A raw HDF5 file (what nbgan would never write): `data` as dataset "data" unless None."""
        path = self / name
        with h5py.File(path, "w") as f:
            if data is None:
                f["other"] = np.ones(3)
            else:
                f["data"] = data
            for key, value in attrs.items():
                f.attrs[key] = value
        return path

    def truncated(self, path: Path) -> Path:
        """`path` cut to half its bytes, as a killed copy leaves it."""
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        return path

    def npy(self, name: str, array=None) -> Path:
        if array is None:
            array = np.random.default_rng(0).random((3000, 3)) * BOX
        path = self / name
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, array)
        return path

    def gadget(self, name: str, box: float = BOX, coordinates: bool = True) -> Path:
        """A Gadget HDF5 snapshot of 3000 particles (its header alone without `coordinates`)."""
        path = self / name
        if coordinates:
            write_gadget(path, np.random.default_rng(0).random((3000, 3)) * abs(box), box=box)
        else:
            with h5py.File(path, "w") as f:
                f.create_group("Header").attrs["BoxSize"] = box
        return path

    def text(self, name: str, content: str = "") -> Path:
        path = self / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        return path

    def dir(self, name: str) -> Path:
        path = self / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def cube_set(self, name: str, n: int, **kwargs) -> Path:
        return write_set(self / name, n, **kwargs)

    def run_copy(self, scale: str, name: str = "run", edit: Callable[[dict], None] | None = None) -> Path:
        """A copy of the session's tiny run of `scale` in the test directory; `edit` changes its saved config."""
        run = self / name
        shutil.copytree(self.runs[scale], run)
        if edit is not None:
            saved = json.loads((run / "config.json").read_text())
            edit(saved["config"])
            (run / "config.json").write_text(json.dumps(saved))
        return run

    def truncated_run(self, scale: str) -> Path:
        """A copy of the tiny run of `scale` whose only checkpoint's generator.keras is cut short."""
        run = self.run_copy(scale, "truncated")
        (model,) = run.glob("checkpoints/step-*/generator.keras")
        self.truncated(model)
        return run

    def sample_file(self, name: str = "out.h5", complete: bool = True) -> Path:
        """A real `nbgan sample` output of the tiny chain (1 cube, seed 0); marked interrupted unless complete."""
        out = self / name
        assert run_cli(["sample", "--chain", self.chain("3", "2", "1"), "--n", "1", "--out", str(out), "--quiet"]) == 0
        if not complete:
            with h5py.File(out, "a") as f:
                f.attrs["complete"] = False
        return out


@dataclass(frozen=True)
class Case:
    id: str
    argv: Callable[[Ctx], list]
    culprit: str
    absent: tuple[str, ...] = ()
    watch: Callable[[Ctx], list[Path]] | None = None  # default: the test directory and the shared runs it read
    subprocess: bool = False  # for commands that replace the process


def row(id, argv, culprit, absent=(), watch=None, subprocess=False, slow=False):
    case = Case(id, argv, culprit, (absent,) if isinstance(absent, str) else tuple(absent), watch, subprocess)
    return pytest.param(case, id=id, marks=[pytest.mark.slow] if slow else [])


# ------------------------------------------------------------------ argv builders shared by many rows

def stats(c, *inputs, json_out=None, extra=()):
    return ["stats", *inputs, "--json", json_out or c / "s.json", *extra]


def compare(c, real=None, fake=None, extra=(), json_out=None):
    real = [c.cube_set("real", 4)] if real is None else real
    fake = [c.cube_set("fake", 2)] if fake is None else fake
    return ["compare", "--real", *real, "--fake", *fake, "--json", json_out or c / "c.json", "--floor-splits", "2",
            *extra]


def ingest(c, *inputs, out=None, grid="8", extra=("--box-size", str(BOX))):
    inputs = inputs or (c.npy("p.npy"),)
    return ["ingest", *inputs, "--grid", grid, "--out", out or c / "out", *extra, "--quiet"]


def simulate(c, *flags, out=None):
    return ["simulate", "--out", out or c / "sim", "--boxes", "1", "--particles", "16", "--grid", "8",
            "--box-size", "64", "--steps", "2", *flags, "--quiet"]


def train(c, config=None, *flags, run_dir=None, scale="3"):
    return ["train", "--config", config or c.toml(), "--scale", scale, "--run-dir", run_dir or c / "run",
            "--steps", "2", *flags, "--quiet"]


def train_config(*edits):
    return lambda c: train(c, c.toml(*edits))


def sample(c, chain=None, *flags, out=None, n="1"):
    return ["sample", "--chain", chain or c.chain("3", "2", "1"), "--n", n, "--out", out or c / "out.h5",
            *flags, "--quiet"]


def upscale(c, input=None, *flags, run=None, out=None):
    return ["upscale", "--run", run or c.runs["1"], "--input", input or c.cube("low.h5"),
            "--out", out or c / "up.h5", *flags, "--quiet"]


def zero_cube(c, name="zero.h5"):
    return c.cube(name, np.zeros((12, 12, 12)))


def mixed_grid_dir(c):
    c.cube("mixed/a.h5", side=8)
    c.cube("mixed/b.h5", side=12)
    return c / "mixed"


# ------------------------------------------------------------------ the table: one row per bad input

STATS = [
    row("stats-missing-file", lambda c: stats(c, c / "absent.h5"), "absent.h5"),
    row("stats-directory-named-h5", lambda c: stats(c, c.dir("cubes.h5")), "cubes.h5"),
    row("stats-empty-file", lambda c: stats(c, c.text("empty.h5")), "empty.h5"),
    row("stats-truncated-file", lambda c: stats(c, c.truncated(c.cube("trunc.h5", side=16))), "trunc.h5"),
    row("stats-garbage-file", lambda c: stats(c, c.text("garbage.h5", "not hdf5 at all")), "garbage.h5"),
    row("stats-no-data-dataset", lambda c: stats(c, c.h5("nodata.h5")), "nodata.h5"),
    row("stats-non-cubic", lambda c: stats(c, c.h5("noncubic.h5", np.ones((8, 8, 6)), box_size=64.0)),
        "noncubic.h5"),
    row("stats-negative-counts", lambda c: stats(c, c.h5("neg.h5", -np.ones((8, 8, 8)), box_size=64.0)), "neg.h5"),
    row("stats-nan-counts", lambda c: stats(c, c.h5("nan.h5", np.full((8, 8, 8), np.nan), box_size=64.0)),
        "nan.h5"),
    row("stats-inf-counts", lambda c: stats(c, c.h5("inf.h5", np.full((8, 8, 8), np.inf), box_size=64.0)),
        "inf.h5"),
    row("stats-string-counts", lambda c: stats(c, c.h5("str.h5", np.full((4, 4, 4), b"x"), box_size=64.0)),
        "str.h5"),
    row("stats-empty-directory", lambda c: stats(c, c.dir("emptydir")), "emptydir"),
    row("stats-mixed-grid-directory", lambda c: stats(c, mixed_grid_dir(c)), "b.h5"),
    row("stats-npy-file", lambda c: stats(c, c.npy("cube.npy", np.ones((8, 8, 8)))), "cube.npy"),
    row("stats-incomplete-sample-file", lambda c: stats(c, c.cube("partial.h5", complete=False)), "partial.h5"),
    row("stats-box-size-negative", lambda c: stats(c, c.cube("a.h5"), extra=["--box-size", "-5"]), "--box-size"),
    row("stats-box-size-zero", lambda c: stats(c, c.cube("a.h5"), extra=["--box-size", "0"]), "--box-size"),
    row("stats-box-size-nan", lambda c: stats(c, c.cube("a.h5"), extra=["--box-size", "nan"]), "--box-size"),
    row("stats-box-size-abc", lambda c: stats(c, c.cube("a.h5"), extra=["--box-size", "abc"]), "--box-size"),
    row("stats-box-size-inf", lambda c: stats(c, c.cube("a.h5"), extra=["--box-size", "inf"]), "--box-size"),
    row("stats-no-box-size-anywhere", lambda c: stats(c, c.cube("bare.h5", box_size=None)), "--box-size"),
    row("stats-output-exists", lambda c: stats(c, c.cube("a.h5"), json_out=c.text("s.json", "{}")), "s.json"),
    row("stats-output-is-a-directory", lambda c: stats(c, c.cube("a.h5"), json_out=c.dir("outdir")), "outdir"),
    row("stats-output-is-a-directory-overwrite",
        lambda c: stats(c, c.cube("a.h5"), json_out=c.dir("outdir"), extra=["--overwrite"]), "outdir"),
    row("stats-output-in-missing-directory", lambda c: stats(c, c.cube("a.h5"), json_out=c / "typo" / "s.json"),
        "typo"),
    row("stats-all-zero-cube", lambda c: stats(c, zero_cube(c)), "zero.h5"),
    row("stats-same-file-twice", lambda c: stats(c, c.cube("a.h5"), c / "a.h5"), "a.h5"),
]

COMPARE = [
    row("compare-box-size-mismatch", lambda c: compare(c, fake=[c.cube_set("fake", 2, box_size=100.0)]), "box size"),
    row("compare-grid-mismatch", lambda c: compare(c, fake=[c.cube_set("fake", 2, size=8)]), "grid"),
    row("compare-3-real-cubes", lambda c: compare(c, real=[c.cube_set("real", 3)]), "real cubes"),
    row("compare-1-fake-cube", lambda c: compare(c, fake=[c.cube_set("fake", 1)]), "fake set"),
    row("compare-no-fake-cube", lambda c: compare(c, fake=[c.dir("fake")]), "/fake"),
    row("compare-nan-cube", lambda c: compare(c, fake=[c.cube_set("fake", 1),
                                                      c.h5("nan.h5", np.full((12,) * 3, np.nan), box_size=64.0)]),
        "nan.h5"),
    row("compare-floor-splits-zero", lambda c: compare(c, extra=["--floor-splits", "0"]), "--floor-splits"),
    row("compare-floor-splits-abc", lambda c: compare(c, extra=["--floor-splits", "abc"]), "--floor-splits"),
    row("compare-seed-negative", lambda c: compare(c, extra=["--seed", "-1"]), "--seed"),
    row("compare-seed-abc", lambda c: compare(c, extra=["--seed", "abc"]), "--seed"),
    row("compare-json-exists", lambda c: compare(c, json_out=c.text("c.json", "{}")), "c.json"),
    row("compare-plot-exists", lambda c: compare(c, extra=["--plot", c.text("c.png", "png")]), "c.png"),
    row("compare-same-real-file-4-times", lambda c: compare(c, real=[c.cube("r.h5")] * 4), "r.h5"),
    row("compare-real-file-and-its-directory", lambda c: compare(c, real=[c.cube_set("real", 4), c / "real" / "c0.h5"]),
        "c0.h5"),
    row("compare-json-in-missing-directory", lambda c: compare(c, json_out=c / "typo" / "c.json"), "typo"),
    row("compare-plot-in-missing-directory", lambda c: compare(c, extra=["--plot", c / "typo" / "c.png"]), "typo"),
    row("compare-all-zero-fake-cube", lambda c: compare(c, fake=[c.cube_set("fake", 1), zero_cube(c)]), "zero.h5"),
]

STRINGS = np.array([["a", "b", "c"]] * 10)

INGEST = [
    row("ingest-missing-file", lambda c: ingest(c, c / "absent.npy"), "absent.npy"),
    row("ingest-not-hdf5", lambda c: ingest(c, c.text("text.hdf5", "not hdf5")), "text.hdf5"),
    row("ingest-npy-shape-n2", lambda c: ingest(c, c.npy("flat.npy", np.ones((100, 2)))), "flat.npy"),
    row("ingest-npy-1d", lambda c: ingest(c, c.npy("line.npy", np.ones(300))), "line.npy"),
    row("ingest-npy-strings", lambda c: ingest(c, c.npy("strings.npy", STRINGS)), "strings.npy"),
    row("ingest-npy-outside-box", lambda c: ingest(c, c.npy("outside.npy", np.full((10, 3), 2 * BOX))), "outside.npy"),
    row("ingest-npy-nan", lambda c: ingest(c, c.npy("nan.npy", np.full((10, 3), np.nan))), "nan.npy"),
    row("ingest-npy-truncated", lambda c: ingest(c, c.truncated(c.npy("trunc.npy"))), "trunc.npy"),
    row("ingest-npy-no-box-size", lambda c: ingest(c, c.npy("p.npy"), extra=()), "--box-size"),
    row("ingest-npy-zero-particles", lambda c: ingest(c, c.npy("zero.npy", np.empty((0, 3)))), "zero.npy"),
    row("ingest-gadget-no-coordinates", lambda c: ingest(c, c.gadget("nocoords.hdf5", coordinates=False)),
        "nocoords.hdf5"),
    row("ingest-gadget-negative-boxsize", lambda c: ingest(c, c.gadget("negbox.hdf5", box=-5.0)), "negbox.hdf5"),
    row("ingest-cube-file-as-input", lambda c: ingest(c, c.cube("cube.h5")), "cube.h5"),
    row("ingest-directory-as-input", lambda c: ingest(c, c.dir("snapdir")), "snapdir", absent="no such file"),
    row("ingest-grid-zero", lambda c: ingest(c, grid="0"), "--grid"),
    row("ingest-grid-negative", lambda c: ingest(c, grid="-4"), "--grid"),
    row("ingest-grid-abc", lambda c: ingest(c, grid="abc"), "--grid"),
    row("ingest-grid-fraction", lambda c: ingest(c, grid="16.5"), "--grid"),
    row("ingest-grid-too-big-for-memory", lambda c: ingest(c, grid="100000"), "--grid"),
    row("ingest-chunk-zero", lambda c: ingest(c, extra=("--box-size", str(BOX), "--chunk", "0")), "--chunk"),
    row("ingest-output-exists", lambda c: ingest(c, out=c.cube("out/p.h5").parent), "p.h5"),
    row("ingest-two-inputs-same-name", lambda c: ingest(c, c.npy("a/p.npy"), c.npy("b/p.npy")), "p.npy"),
    row("ingest-good-then-bad-input", lambda c: ingest(c, c.npy("ok.npy"), c.npy("bad.npy", np.ones((10, 2)))),
        "bad.npy"),
    row("ingest-output-in-missing-directory", lambda c: ingest(c, out=c / "typo" / "out"), "typo"),
    row("ingest-output-is-a-file", lambda c: ingest(c, out=c.text("outfile")), "outfile"),
]


def clashing_box(c):
    """A box_000.h5 that `simulate` made with --steps 4: the rows' --steps 2 clashes with it."""
    from nbgan_app import simulate as simulation
    from nbgan_app.config import SimulationConfig

    sim = SimulationConfig(cache="", boxes=1, particles=16, mesh=16, grid=8, box_size=64.0, steps=4, seed=0)
    c.cube("sim/box_000.h5", side=8, **simulation.box_attrs(sim, 0))
    return simulate(c)


SIMULATE = [
    row("simulate-boxes-zero", lambda c: simulate(c, "--boxes", "0"), "boxes"),
    row("simulate-boxes-negative", lambda c: simulate(c, "--boxes", "-1"), "boxes"),
    row("simulate-particles-zero", lambda c: simulate(c, "--particles", "0"), "particles"),
    row("simulate-steps-zero", lambda c: simulate(c, "--steps", "0"), "steps"),
    row("simulate-steps-negative", lambda c: simulate(c, "--steps", "-3"), "steps"),
    row("simulate-grid-zero", lambda c: simulate(c, "--grid", "0"), "grid"),
    row("simulate-box-size-negative", lambda c: simulate(c, "--box-size", "-1"), "box_size"),
    row("simulate-mesh-not-particles", lambda c: simulate(c, "--mesh", "32"), "mesh"),
    row("simulate-a-start-2", lambda c: simulate(c, "--a-start", "2"), "a_start"),
    row("simulate-settings-clash", clashing_box, "box_000.h5"),
    row("simulate-output-is-a-file", lambda c: simulate(c, out=c.text("simfile")), "simfile"),
    row("simulate-output-in-missing-directory", lambda c: simulate(c, out=c / "typo" / "sim"), "typo"),
    row("simulate-missing-config", lambda c: ["simulate", "--config", c / "nope.toml", "--quiet"], "nope.toml"),
    row("simulate-no-output", lambda c: ["simulate", "--boxes", "1", "--quiet"], "--out"),
]

TRAIN = [
    row("train-unknown-key", train_config(("gp_weight = 10.0", "gp_weight = 10.0\nbogus_key = 1")), "bogus_key"),
    row("train-unknown-section", train_config(("[pyramid]", "[bogus_section]\nx = 1\n\n[pyramid]")), "bogus_section"),
    row("train-wrong-type", train_config(("batch_size = 2", 'batch_size = "two"')), "batch_size"),
    row("train-bool-for-int", train_config(("batch_size = 2", "batch_size = true")), "batch_size"),
    row("train-float-for-int", train_config(("batch_size = 2", "batch_size = 2.5")), "batch_size"),
    row("train-bad-architecture", train_config(('architecture = "inception"', 'architecture = "nope"')),
        "architecture"),
    row("train-inconsistent-sizes", train_config(("sizes = [16, 8, 4]", "sizes = [16, 8, 3]")), "sizes"),
    row("train-patch-too-big", train_config(("patch = 4", "patch = 32")), "patch"),
    row("train-grid-not-sizes-0", train_config(("grid = 16", "grid = 32")), "grid"),
    row("train-malformed-toml", lambda c: train(c, c.text("bad.toml", "[train\nsteps = 4\n")), "bad.toml"),
    row("train-empty-config", lambda c: train(c, c.text("empty.toml")), "key data"),
    row("train-config-is-a-directory", lambda c: train(c, c.dir("confdir")), "confdir", absent="no such"),
    row("train-config-missing", lambda c: train(c, c / "nope.toml"), "nope.toml"),
    row("train-steps-zero", lambda c: [*train(c), "--steps", "0"], "--steps"),
    row("train-steps-negative", lambda c: [*train(c), "--steps", "-5"], "--steps"),
    row("train-steps-abc", lambda c: [*train(c), "--steps", "abc"], "--steps"),
    row("train-scale-4", lambda c: train(c, scale="4"), "--scale"),
    row("train-device-tpu", lambda c: train(c, None, "--device", "tpu"), "--device", absent="unrecognized"),
    row("train-device-gpu-absent", lambda c: train(c, None, "--device", "gpu:64"), "gpu:64", absent="unrecognized"),
    row("train-run-dir-is-a-file", lambda c: train(c, run_dir=c.text("runfile")), "runfile"),
    row("train-run-dir-in-missing-directory", lambda c: train(c, run_dir=c / "typo" / "run"), "typo"),
    row("train-run-of-another-scale", lambda c: train(c, run_dir=c.run_copy("3"), scale="2"), "--scale"),
    row("train-run-of-another-config", lambda c: train(c, c.toml(("gp_weight = 10.0", "gp_weight = 5.0")),
                                                        run_dir=c.run_copy("3")), "gp_weight"),
    row("train-data-dir-empty", lambda c: train(c, c.data_dir_toml(c.dir("cubes"), 1)), "cubes"),
    row("train-data-dir-missing", lambda c: train(c, c.data_dir_toml(c / "cubes", 1)), "cubes"),
    row("train-data-all-held-out", lambda c: train(c, c.data_dir_toml(c.cube_set("cubes", 2, size=16), 2)),
        "held_out"),
    # data.held_out = 1 is valid, with a warning (tests/test_train_cli.py)
    row("train-generator-learning-rate-negative",
        train_config(("generator_learning_rate = 1e-4", "generator_learning_rate = -1.0")), "generator_learning_rate"),
    row("train-critic-learning-rate-negative",
        train_config(("critic_learning_rate = 1e-4", "critic_learning_rate = -1.0")), "critic_learning_rate"),
    row("train-generator-learning-rate-nan",
        train_config(("generator_learning_rate = 1e-4", "generator_learning_rate = nan")), "generator_learning_rate"),
    # the NaN guard: a diverging run stops with the losses by name, and no claim of a checkpoint it lacks;
    # it trained, so its run directory stays (state "failed"): only the config and the session's data are watched
    row("train-diverges-to-nan", train_config(("critic_learning_rate = 1e-4", "critic_learning_rate = 1e30"),
                                              ("generator_learning_rate = 1e-4", "generator_learning_rate = 1e30"),
                                              ("held_out = 1", "held_out = 0")),  # no held-out warning line
        "non-finite", absent=("{'", "last good checkpoint is kept"), watch=lambda c: [c / "c.toml", *c.watched[1:]],
        slow=True),
]


def bad_config_json(c):
    run = c.run_copy("1", "badconfig")
    (run / "config.json").write_text("{not json")
    return sample(c, f"{c.chain('3', '2')},{run}")


def m3_of_another_box(c):
    run = c.run_copy("3", "m3-100", lambda cfg: cfg["data"]["simulation"].update(box_size=100.0))
    return sample(c, f"{run},{c.chain('2', '1')}")


def m1_of_a_cube_directory(c):
    run = c.run_copy("1", "m1-dir", lambda cfg: cfg.update(data={"dir": str(c / "cubes"), "box_size": 64.0,
                                                                  "held_out": 1}))
    return sample(c, f"{c.chain('3', '2')},{run}")


SAMPLE = [
    row("sample-chain-wrong-order", lambda c: sample(c, c.chain("3", "1", "2")), "3,1,2"),
    row("sample-chain-duplicated-scale", lambda c: sample(c, c.chain("3", "2", "2")), "3,2,2"),
    row("sample-chain-missing-m2", lambda c: sample(c, c.chain("3", "1")), "tiny-1", absent="--size"),
    row("sample-chain-different-pyramid", lambda c: sample(c, f"{c.chain('3', '2')},{c.bad_run('sizes')}"),
        "pyramid.sizes", absent="Config("),
    row("sample-chain-different-patch", lambda c: sample(c, f"{c.chain('3', '2')},{c.bad_run('patch')}"),
        "pyramid.patch", absent="Config("),
    row("sample-chain-different-transform", lambda c: sample(c, f"{c.chain('3', '2')},{c.bad_run('transform')}"),
        "transform.c", absent="Config("),
    row("sample-chain-different-box-size", m3_of_another_box, "100 vs 64", absent="Config("),
    row("sample-chain-different-data", m1_of_a_cube_directory, "data", absent="Config("),
    row("sample-missing-run", lambda c: sample(c, str(c / "absent-run")), "absent-run"),
    row("sample-run-without-checkpoint", lambda c: sample(c, f"{c.chain('3', '2')},{c.bad_run('bare')}"), "bare"),
    row("sample-truncated-only-checkpoint", lambda c: sample(c, f"{c.chain('3', '2')},{c.truncated_run('1')}"),
        "generator.keras"),
    row("sample-bad-config-json", bad_config_json, "config.json"),
    row("sample-empty-chain", lambda c: ["sample", "--chain", "", "--n", "1", "--out", c / "out.h5"], "--chain"),
    row("sample-size-not-multiple-of-patch", lambda c: sample(c, c.chain("uni", "1"), "--size", "18"), "--size"),
    row("sample-size-zero", lambda c: sample(c, None, "--size", "0"), "--size"),
    row("sample-size-abc", lambda c: sample(c, None, "--size", "abc"), "--size"),
    row("sample-n-zero", lambda c: sample(c, n="0"), "--n"),
    row("sample-n-negative", lambda c: sample(c, n="-1"), "--n"),
    row("sample-n-abc", lambda c: sample(c, n="abc"), "--n"),
    row("sample-device-tpu", lambda c: sample(c, None, "--device", "tpu"), "--device", absent="unrecognized"),
    row("sample-device-gpu-absent", lambda c: sample(c, None, "--device", "gpu:64"), "gpu:64", absent="unrecognized"),
    row("sample-device-with-workers", lambda c: sample(c, None, "--device", "cpu", "--workers", "2"), "--device",
        absent="unrecognized"),
    row("sample-max-batch-zero", lambda c: sample(c, None, "--max-batch", "0"), "--max-batch"),
    row("sample-max-batch-abc", lambda c: sample(c, None, "--max-batch", "abc"), "--max-batch"),
    row("sample-seed-negative", lambda c: sample(c, None, "--seed", "-1"), "--seed"),
    row("sample-seed-1e23", lambda c: sample(c, None, "--seed", "1e23"), "--seed"),
    row("sample-seed-10-to-the-23", lambda c: sample(c, None, "--seed", str(10**23)), "--seed"),
    row("sample-output-exists", lambda c: sample(c, out=c.text("out.h5", "precious")), "out.h5"),
    row("sample-output-is-a-directory", lambda c: sample(c, out=c.dir("outdir")), "outdir"),
    row("sample-output-in-missing-directory", lambda c: sample(c, out=c / "typo" / "out.h5"), "typo"),
    row("sample-resume-without-file", lambda c: sample(c, None, "--resume"), "out.h5"),
    row("sample-resume-other-seed", lambda c: sample(c, None, "--resume", "--seed", "5",
                                                     out=c.sample_file(complete=False)), "--seed"),
    row("sample-resume-other-n", lambda c: sample(c, None, "--resume", out=c.sample_file(complete=False), n="2"),
        "--n"),
    row("sample-resume-other-order", lambda c: sample(c, None, "--resume", "--order", "raster",
                                                      out=c.sample_file(complete=False)), "--order"),
]

UPSCALE = [
    row("upscale-m3-run", lambda c: upscale(c, run=c.runs["3"]), "tiny-3"),
    row("upscale-uni-run", lambda c: upscale(c, run=c.runs["uni"]), "tiny-uni"),
    row("upscale-missing-run", lambda c: upscale(c, run=c / "absent-run"), "absent-run"),
    row("upscale-truncated-only-checkpoint", lambda c: upscale(c, run=c.truncated_run("1")), "generator.keras"),
    row("upscale-missing-input", lambda c: upscale(c, c / "absent.h5"), "absent.h5"),
    row("upscale-truncated-input", lambda c: upscale(c, c.truncated(c.cube("trunc.h5", side=16))), "trunc.h5"),
    row("upscale-nan-input", lambda c: upscale(c, c.cube("nan.h5", np.full((8,) * 3, np.nan))), "nan.h5"),
    row("upscale-negative-input", lambda c: upscale(c, c.cube("neg.h5", -np.ones((8,) * 3))), "neg.h5"),
    row("upscale-2d-input", lambda c: upscale(c, c.cube("flat.h5", np.ones((8, 8)))), "flat.h5"),
    row("upscale-non-cubic-input", lambda c: upscale(c, c.h5("noncubic.h5", np.ones((8, 8, 6)), box_size=64.0)),
        "noncubic.h5"),
    row("upscale-incomplete-input", lambda c: upscale(c, c.cube("partial.h5", complete=False)), "partial.h5"),
    row("upscale-side-5-input", lambda c: upscale(c, c.cube("five.h5", side=5)), "five.h5", absent="--size"),
    row("upscale-odd-side-from-fine", lambda c: upscale(c, c.cube("odd.h5", side=15), "--from-fine"), "odd.h5"),
    row("upscale-voxel-scale-mismatch", lambda c: upscale(c, c.cube("fine.h5", side=16)), "fine.h5"),
    row("upscale-seed-negative", lambda c: upscale(c, None, "--seed", "-3"), "--seed"),
    row("upscale-max-batch-zero", lambda c: upscale(c, None, "--max-batch", "0"), "--max-batch"),
    row("upscale-output-exists", lambda c: upscale(c, out=c.text("up.h5", "precious")), "up.h5"),
    row("upscale-output-in-missing-directory", lambda c: upscale(c, out=c / "typo" / "up.h5"), "typo"),
]

# `tui` replaces the process, and a refused `ablate` that went ahead would train for hours: subprocesses
OTHERS = [
    row("tui-runs-is-a-file", lambda c: ["tui", "--runs", c.text("runs.txt")], "runs.txt", subprocess=True),
    row("tui-runs-missing", lambda c: ["tui", "--runs", c / "absent-runs"], "absent-runs", subprocess=True),
    row("tui-configs-is-a-file", lambda c: ["tui", "--runs", c.dir("runs"), "--configs", c.text("configs.txt")],
        "configs.txt", subprocess=True),
    row("evaluate-output-in-missing-directory", lambda c: ["evaluate", "--config", c.toml(), "--out",
                                                           c / "typo" / "study", "--quiet"], "typo"),
    row("evaluate-max-steps-zero", lambda c: ["evaluate", "--config", c.toml(), "--out", c / "study",
                                              "--max-steps", "0", "--quiet"], "--max-steps"),
    row("bench-json-in-missing-directory", lambda c: ["bench", "--quick", "--json", c / "typo" / "b.json"], "typo"),
    row("demo-missing-config", lambda c: ["demo", "--config", c / "nope.toml"], "nope.toml"),
    row("demo-n-zero", lambda c: ["demo", "--n", "0"], "--n"),
    row("ablate-missing-plan", lambda c: ["ablate", "--plan", c / "nope.toml", "--out", c / "abl"], "nope.toml",
        subprocess=True),
    row("ablate-output-in-missing-directory", lambda c: ["ablate", "--out", c / "typo" / "abl"], "typo",
        subprocess=True),
]

CASES = STATS + COMPARE + INGEST + SIMULATE + TRAIN + SAMPLE + UPSCALE + OTHERS


def run_subprocess(argv: list[str]) -> tuple[int, str]:
    """The CLI as its own process: (exit code, stderr); a process still running after 20 s counts as a hang."""
    try:
        done = subprocess.run([sys.executable, "-m", "nbgan_app.cli", *argv], cwd=ROOT, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail(f"nbgan {' '.join(argv)} was still running after 20 s instead of refusing its input")
    return done.returncode, done.stderr


def snapshot_of(path: Path) -> dict:
    """`snapshot` of a directory (every file's bytes, every directory), or of one file."""
    if path.is_dir():
        return snapshot(path)
    return {path: path.read_bytes() if path.exists() else None}


@pytest.mark.parametrize("case", CASES)
def test_bad_input_exits_2_with_one_line_naming_the_culprit_and_writes_nothing(case, request, tmp_path, capfd):
    ctx = Ctx(request, tmp_path)
    argv = [str(arg) for arg in case.argv(ctx)]
    before = {root: snapshot_of(root) for root in (case.watch(ctx) if case.watch else ctx.watched)}
    capfd.readouterr()  # what building the inputs printed is not the command's
    if case.subprocess:
        code, err = run_subprocess(argv)
    else:
        code = run_cli(argv)
        err = capfd.readouterr().err
    lines = err.splitlines()
    assert code == 2, f"exit {code}: {err[-2000:]}"
    assert len(lines) == 1, f"{len(lines)} lines on stderr:\n{err[-2000:]}"
    assert lines[0].startswith(f"nbgan {argv[0]}: error: "), lines[0]
    assert case.culprit in lines[0], f"{case.culprit!r} not named in: {lines[0]}"
    for word in case.absent:
        assert word not in lines[0], f"misleading {word!r} in: {lines[0]}"
    for root, files in before.items():
        after = snapshot_of(root)
        changed = sorted(str(p) for p in set(files) | set(after) if files.get(p, "gone") != after.get(p, "gone"))
        assert not changed, f"written, changed or removed: {changed}"
