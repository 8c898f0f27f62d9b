"""`nbgan upscale` refuses what it cannot up-scale faithfully, and never loses a result.

On the tiny runs (conftest `tiny_runs`: levels 16/8/4 of 64 Mpc/h boxes, patch 4), M1 up-scales level-2
cubes of 8 Mpc/h voxels by 2. Every refusal is exit 2, one line naming the culprit, and no new or changed file.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_sample_cli import bad, files_in, interrupt_after, read

from nbgan_app.cli import main
from nbgan_app.cubes import write_cube


def upscale(tiny_runs, input, out, *flags):
    return ["upscale", "--run", str(tiny_runs["1"]), "--input", str(input), "--out", str(out), "--quiet", *flags]


@pytest.fixture
def low(tmp_path):
    """Two 8^3 count cubes of 64 Mpc/h boxes: the voxels M1 up-scales."""
    path = tmp_path / "in" / "low.h5"
    path.parent.mkdir()
    rng = np.random.default_rng(0)
    write_cube(path, rng.poisson(20.0, (2, 8, 8, 8)).astype(np.float32), 64.0)
    return path


def test_a_bad_seed_writes_nothing_and_the_rerun_works(tiny_runs, low, tmp_path, capsys):
    out = tmp_path / "up.h5"
    for seed in ("-3", "1e23", str(2**63)):
        bad(upscale(tiny_runs, low, out, "--seed", seed), capsys,
            f"--seed: expected a whole number from 0 to 2^63-1. Received: '{seed}'")
    bad(upscale(tiny_runs, low, out, "--max-batch", "0"), capsys, "--max-batch: expected a whole number >= 1")
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["in"]
    assert main(upscale(tiny_runs, low, out, "--seed", "3")) == 0  # nothing left behind blocks the rerun
    before = files_in(tmp_path)
    bad(upscale(tiny_runs, low, out, "--seed", "-3", "--overwrite"), capsys, "--seed")
    assert files_in(tmp_path) == before


def test_overwrite_replaces_only_with_a_complete_file(tiny_runs, low, tmp_path, monkeypatch):
    out = tmp_path / "up.h5"
    assert main(upscale(tiny_runs, low, out, "--seed", "1")) == 0
    before, everything = out.read_bytes(), files_in(tmp_path)
    interrupt_after(monkeypatch, 4, out, before)  # 4 of the 10 waves
    assert main(upscale(tiny_runs, low, out, "--seed", "2", "--overwrite")) == 130
    assert files_in(tmp_path) == everything  # the old result, and no temporary file left
    monkeypatch.undo()
    assert main(upscale(tiny_runs, low, out, "--seed", "2", "--overwrite")) == 0
    _, attrs, _ = read(out)
    assert bool(attrs["complete"]) and attrs["seed"] == 2 and out.read_bytes() != before


def test_voxels_must_be_the_runs(tiny_runs, low, tmp_path, capsys):
    """A cube's voxels are its box_size over its side; the output keeps the input's box."""
    out = tmp_path / "up.h5"
    fine, coarse = tmp_path / "fine.h5", tmp_path / "coarse.h5"
    write_cube(fine, np.ones((1, 16, 16, 16), np.float32), 64.0)  # 4 Mpc/h voxels: level 1
    write_cube(coarse, np.ones((1, 8, 8, 8), np.float32), 128.0)  # 16 Mpc/h voxels: no level of these runs
    run = tiny_runs["1"]
    # the case: a 16^3 cube of a 64 Mpc/h box, taken as if its voxels were the run's 8 Mpc/h
    bad(upscale(tiny_runs, fine, out), capsys,
        f"{fine}: voxels of 4 Mpc/h (box_size 64 Mpc/h over 16), but run {run} (M1) takes voxels of 8 Mpc/h "
        "(its 64 Mpc/h box over 8 at level 2); they look like cubes at the run's own resolution: pass --from-fine")
    bad(upscale(tiny_runs, coarse, out), capsys, f"{coarse}: voxels of 16 Mpc/h (box_size 128 Mpc/h over 8), but "
        f"run {run} (M1) takes voxels of 8 Mpc/h (its 64 Mpc/h box over 8 at level 2)")
    bad(upscale(tiny_runs, low, out, "--from-fine"), capsys,
        f"{low}: voxels of 8 Mpc/h (box_size 64 Mpc/h over 8), but run {run} (M1) takes voxels of 4 Mpc/h "
        "(its 64 Mpc/h box over 16 at level 1); they look like cubes at its conditioning resolution: "
        "drop --from-fine")
    assert not out.exists()

    # what fits is up-scaled, labelled with the input's box: 12^3 cubes of a 96 Mpc/h box are 24^3 of 96 Mpc/h
    wide = tmp_path / "wide.h5"
    write_cube(wide, np.full((1, 12, 12, 12), 20.0, np.float32), 96.0)
    assert main(upscale(tiny_runs, wide, out)) == 0
    data, attrs, _ = read(out)
    assert data.shape == (1, 24, 24, 24) and attrs["box_size"] == pytest.approx(96.0)
    assert main(upscale(tiny_runs, fine, tmp_path / "from-fine.h5", "--from-fine")) == 0
    assert read(tmp_path / "from-fine.h5")[1]["box_size"] == pytest.approx(64.0)
    # an input without a box size is taken at the run's voxels
    bare = tmp_path / "bare.h5"
    write_cube(bare, np.full((1, 8, 8, 8), 20.0, np.float32))
    assert main(upscale(tiny_runs, bare, tmp_path / "bare-up.h5")) == 0
    assert read(tmp_path / "bare-up.h5")[1]["box_size"] == pytest.approx(64.0)


def test_messages_name_the_input_and_the_side_needed(tiny_runs, low, tmp_path, capsys):
    out = tmp_path / "up.h5"
    five = tmp_path / "five.h5"
    write_cube(five, np.ones((1, 5, 5, 5), np.float32), 40.0)
    assert main(upscale(tiny_runs, five, out)) == 2
    err = capsys.readouterr().err
    assert err == (f"nbgan upscale: error: {five}: cubes of side 5; run {tiny_runs['1']} (M1) up-scales them by 2 "
                   "into patches of 4, so it needs a side that is a multiple of 2, e.g. 4 or 6\n")
    bad(upscale(tiny_runs, five, out, "--from-fine"), capsys,
        f"{five}: cubes of side 5; with --from-fine run {tiny_runs['1']} (M1) cuts them into patches of 4, so it "
        "needs a side that is a multiple of 4, e.g. 4 or 8")
    empty = tmp_path / "empty.h5"
    write_cube(empty, np.ones((0, 8, 8, 8), np.float32), 64.0)
    bad(upscale(tiny_runs, empty, out), capsys, f"{empty}: holds no cubes")
    assert not out.exists()


def test_the_output_is_never_the_input(tiny_runs, low, tmp_path, capsys):
    before = files_in(low.parent)
    bad(upscale(tiny_runs, low, low, "--overwrite"), capsys,
        f"--out {low} is the --input file; write the up-scaled cubes to another file")
    bad(upscale(tiny_runs, low.parent, low.parent / "up.h5"), capsys,
        f"--out {low.parent / 'up.h5'} lies in the --input directory {low.parent}")
    bad(upscale(tiny_runs, low, tmp_path / "missing" / "up.h5"), capsys,
        f"output {tmp_path / 'missing' / 'up.h5'}: directory {tmp_path / 'missing'} does not exist")
    assert files_in(low.parent) == before and sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_resume_needs_the_same_input(tiny_runs, low, tmp_path, capsys):
    out = tmp_path / "up.h5"
    assert main(upscale(tiny_runs, low, out)) == 0
    other = tmp_path / "other.h5"
    write_cube(other, np.ones((2, 8, 8, 8), np.float32), 64.0)
    before = out.read_bytes()
    bad(upscale(tiny_runs, other, out, "--resume"), capsys,
        f"--resume: {out} was written with --input {low.resolve()}, not {other.resolve()}")
    assert out.read_bytes() == before
    assert main(upscale(tiny_runs, low, out, "--resume")) == 0
    assert out.read_bytes() == before
