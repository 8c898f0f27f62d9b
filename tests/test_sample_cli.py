"""`nbgan sample` and `nbgan upscale` end to end on tiny trained runs (2 steps each on real jaxpm cubes).

The runs come from conftest's session fixture `tiny_runs` (tiny config: levels 16/8/4, patch 4). Sampling is
NumPy around the generators' inference calls, so these run on the default backend only.
"""

from __future__ import annotations

import json
import re
import shutil

import h5py
import numpy as np
import pytest

from nbgan_app.cli import main


def read(path):
    with h5py.File(path, "r") as f:
        return f["data"][()], dict(f.attrs), {k: f["levels"][k][()] for k in f.get("levels", {})}


def chain_of(tiny_runs, *scales):
    return ",".join(str(tiny_runs[s]) for s in scales)


def wave_lines(err):
    """(wave, waves, level) of the progress lines on stderr (not a terminal), as the dashboard reads them."""
    return [tuple(map(int, m)) for m in re.findall(r"^wave (\d+)/(\d+) level (\d+)\b", err, re.M)]


def level_ends(lines):
    return [w for w in lines if w[0] == w[1]]


def valid_counts(data, shape):
    return data.shape == shape and np.all(np.isfinite(data)) and np.all(data >= 0) and data.any()


# --- sampling and up-scaling with the tiny trained runs ---------------------------------

def test_trained_chain_samples_orders_agree_and_resume_is_exact(tiny_runs, tmp_path, capsys, monkeypatch):
    from nbgan_app.sampling import runs as sampling_runs

    chain = chain_of(tiny_runs, "3", "2", "1")
    base = ["sample", "--chain", chain, "--n", "2", "--seed", "3"]
    assert main(base + ["--out", str(tmp_path / "w.h5")]) == 0
    # progress in order, each level to its end: M3 once, M2 3*2-2 waves (2^3 patches), M1 3*4-2 waves (4^3)
    err = capsys.readouterr().err
    lines = wave_lines(err)
    assert level_ends(lines) == [(1, 1, 3), (4, 4, 2), (10, 10, 1)]
    assert lines == sorted(lines, key=lambda w: (-w[2], w[0])) and len(set(lines)) == len(lines)
    assert err.strip().splitlines()[-1].startswith("wave 10/10 level 1  100%  ETA 0:00")
    data, attrs, levels = read(tmp_path / "w.h5")
    assert valid_counts(data, (2, 16, 16, 16)) and bool(attrs["complete"])
    assert attrs["seed"] == 3 and json.loads(attrs["checkpoint_steps"]) == [2, 2, 2]
    assert {k: v.shape for k, v in levels.items()} == {"2": (2, 8, 8, 8), "3": (2, 4, 4, 4)}
    assert attrs["box_size"] == pytest.approx(64.0)

    assert main(base + ["--out", str(tmp_path / "r.h5"), "--order", "raster", "--quiet"]) == 0
    assert capsys.readouterr().err == ""  # --quiet: no progress at all
    np.testing.assert_allclose(read(tmp_path / "r.h5")[0], data, rtol=1e-4, atol=1e-4)

    # interrupt (Ctrl-C) in the middle of the finest level, then --resume: the very same bytes
    real_wrap = sampling_runs.keras_generator
    calls = {"n": 0}

    def interrupting(model):
        generate = real_wrap(model)

        def call(x):
            calls["n"] += 1
            if calls["n"] > 1 + 4 + 5:  # M3, M2's 4 waves, 5 of M1's 10 waves
                raise KeyboardInterrupt
            return generate(x)
        return call

    monkeypatch.setattr(sampling_runs, "keras_generator", interrupting)
    assert main(base + ["--out", str(tmp_path / "cut.h5"), "--quiet"]) == 130
    cut, attrs, _ = read(tmp_path / "cut.h5")
    assert not bool(attrs["complete"]) and not cut[:, 12:, 12:, 12:].any()
    monkeypatch.undo()
    assert main(base + ["--out", str(tmp_path / "cut.h5"), "--order", "raster", "--resume"]) == 2
    assert "order" in capsys.readouterr().err
    assert main(base + ["--out", str(tmp_path / "cut.h5"), "--resume"]) == 0
    assert level_ends(wave_lines(capsys.readouterr().err)) == [(1, 1, 3), (4, 4, 2), (10, 10, 1)]
    resumed, attrs, resumed_levels = read(tmp_path / "cut.h5")
    assert bool(attrs["complete"])
    np.testing.assert_array_equal(resumed, data)
    for name in levels:
        np.testing.assert_array_equal(resumed_levels[name], levels[name])
    assert main(base + ["--out", str(tmp_path / "w.h5"), "--resume"]) == 0
    assert "already complete" in capsys.readouterr().out


def test_uni_scale_head_reaches_sizes_beyond_m3(tiny_runs, tmp_path, capsys):
    """M3 makes 4^3 whole cubes (16^3 at the end of the chain); Mu makes the coarsest level of 32^3."""
    chain = chain_of(tiny_runs, "uni", "2", "1")
    assert main(["sample", "--chain", chain, "--n", "1", "--size", "32", "--out", str(tmp_path / "big.h5")]) == 0
    waves = wave_lines(capsys.readouterr().err)
    assert level_ends(waves) == [(4, 4, 3), (10, 10, 2), (22, 22, 1)]  # 2^3, 4^3, 8^3 patches
    data, attrs, levels = read(tmp_path / "big.h5")
    assert valid_counts(data, (1, 32, 32, 32)) and bool(attrs["complete"])
    assert levels["3"].shape == (1, 8, 8, 8) and levels["2"].shape == (1, 16, 16, 16)
    assert np.all(np.isfinite(levels["3"])) and levels["3"].any()
    assert attrs["box_size"] == pytest.approx(128.0)  # twice the trained box at twice the side


def test_upscale_real_held_out_cubes(tiny_runs, tiny_config, tiny_cubes, tmp_path):
    """The thesis's conditional evaluation: down-scale held-out cubes as in training, up-scale, score."""
    from nbgan_app.cubes import write_cube
    from nbgan_app.dataset import split_dataset
    from nbgan_app.stats.summary import summary
    from nbgan_app.training_setup import scale_levels
    from nbgan_app.transforms import backward

    _, held_out = split_dataset(tiny_config, tiny_cubes)
    write_cube(tmp_path / "held.h5", held_out, 64.0)
    assert main(["upscale", "--run", str(tiny_runs["1"]), "--input", str(tmp_path / "held.h5"), "--from-fine",
                 "--out", str(tmp_path / "up.h5"), "--quiet"]) == 0
    data, attrs, levels = read(tmp_path / "up.h5")
    assert valid_counts(data, held_out.shape) and bool(attrs["complete"])
    # the model is conditioned on exactly the level training showed it
    np.testing.assert_allclose(levels["2"], scale_levels(tiny_config, "2", held_out), rtol=1e-6, atol=1e-7)
    real, fake = summary(held_out, 64.0), summary(data, 64.0)  # one held-out cube: statistics, no score spread
    np.testing.assert_array_equal(fake["psd"]["k"], real["psd"]["k"])
    assert np.all(np.isfinite(fake["psd"]["mean"])) and np.all(np.isfinite(fake["mass_hist"]["mean"]))

    assert attrs["box_size"] == pytest.approx(64.0)

    # given low-resolution counts (8^3 of the same 64 Mpc/h boxes) condition the same way as the down-scaled
    # fine cubes
    write_cube(tmp_path / "low.h5", backward(levels["2"], tiny_config.transform), 64.0)
    assert main(["upscale", "--run", str(tiny_runs["1"]), "--input", str(tmp_path / "low.h5"),
                 "--out", str(tmp_path / "up2.h5"), "--quiet"]) == 0
    up2, attrs, _ = read(tmp_path / "up2.h5")
    np.testing.assert_allclose(up2, data, rtol=1e-3, atol=1e-3)
    assert attrs["box_size"] == pytest.approx(64.0)  # the input's box, twice the voxels per side


def test_one_latent_scheme_in_memory_and_in_files(tiny_runs, tiny_config, tiny_cubes, tmp_path, monkeypatch):
    """make_level into arrays, the study's chains and `nbgan sample`/`upscale` make the same cubes, bit for bit."""
    from nbgan_app import presets
    from nbgan_app.cubes import write_cube
    from nbgan_app.dataset import split_dataset
    from nbgan_app.pyramid import level_of
    from nbgan_app.sampling import load_chain, make_level
    from nbgan_app.sampling.levels import ArrayTarget
    from nbgan_app.sampling.runs import load_generator
    from nbgan_app.study.generate import load_step, run_steps
    from nbgan_app.sampling.particles import level_counts

    names = ("3", "2", "1")
    shipped = presets.Preset("tiny-preset", tiny_runs["3"].parent, {"chain": [tiny_runs[s].name for s in names]})
    monkeypatch.setattr(presets, "get_preset", lambda name, root: shipped if name == shipped.name else None)
    args = ["--n", "3", "--seed", "7", "--max-batch", "5", "--quiet"]
    assert main(["sample", "--chain", shipped.name, "--out", str(tmp_path / "f.h5")] + args) == 0
    data, attrs, levels = read(tmp_path / "f.h5")
    assert json.loads(attrs["runs"]) == [str(tiny_runs[s].resolve()) for s in names]
    assert attrs["counts"] == "whole"

    chain = load_chain([tiny_runs[s] for s in names])
    made = []
    for plan in chain.plans:
        target = ArrayTarget(3, plan.side, plan.patch)
        make_level(plan, load_generator(plan.run), target, 3, coarse=made[-1] if made else None, seed=7, max_batch=5)
        made.append(target.values)
    np.testing.assert_array_equal(made[0], levels["3"])
    np.testing.assert_array_equal(made[1], levels["2"])
    assert np.array_equal(data, np.round(data))  # whole particles, drawn by cube and patch as the latents
    np.testing.assert_array_equal(level_counts(made[2], tiny_config, 1, chain.plans[-1].patch, 7), data)
    fake, _ = run_steps([load_step(tiny_runs[s]) for s in names], 3, 7, max_batch=5)
    np.testing.assert_array_equal(fake, data)

    # a chain that starts from given cubes: the ablation's scoring and `nbgan upscale --from-fine`
    _, held_out = split_dataset(tiny_config, tiny_cubes)
    write_cube(tmp_path / "held.h5", held_out, 64.0)
    assert main(["upscale", "--run", str(tiny_runs["1"]), "--input", str(tmp_path / "held.h5"), "--from-fine",
                 "--seed", "7", "--out", str(tmp_path / "up.h5"), "--quiet"]) == 0
    fake, _ = run_steps([load_step(tiny_runs["1"])], len(held_out), 7, level_of(tiny_config, held_out, 8))
    np.testing.assert_array_equal(fake, read(tmp_path / "up.h5")[0])


# --- bad input: exit 2, one line naming the culprit, nothing overwritten -------------------

@pytest.fixture(scope="module")
def bad_runs(tiny_runs, tmp_path_factory):
    """Copies of the tiny M1 run: without checkpoint, and with another transform, patch or level sizes."""
    root = tmp_path_factory.mktemp("bad-runs")

    def variant(name, edit=None, checkpoint=True, scale="1"):
        run = root / name
        shutil.copytree(tiny_runs[scale], run, ignore=None if checkpoint else shutil.ignore_patterns("checkpoints"))
        if edit is not None:
            saved = json.loads((run / "config.json").read_text())
            edit(saved["config"])
            (run / "config.json").write_text(json.dumps(saved))
        return str(run)

    return {"bare": variant("bare", checkpoint=False),
            "transform": variant("transform", lambda c: c["transform"].update(c=50.0)),
            "patch": variant("patch", lambda c: c["pyramid"].update(patch=2)),
            "sizes": variant("sizes", lambda c: (c["pyramid"].update(sizes=[16, 4, 2]),
                                                 c["m3"].update(generator_strides=[1, 1]))),
            # the case: an M3 trained on 100 Mpc/h boxes, in a chain whose M2 and M1 saw 64 Mpc/h
            "m3_box": variant("m3-box", lambda c: c["data"]["simulation"].update(box_size=100.0), scale="3")}


def bad(args, capsys, match):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert match in err and len(err.strip().splitlines()) == 1, err


def test_bad_input_exits_2_and_overwrites_nothing(tiny_runs, bad_runs, tmp_path, capsys):
    chain = chain_of(tiny_runs, "3", "2", "1")
    head = chain_of(tiny_runs, "3", "2")
    out = tmp_path / "out.h5"
    base = ["sample", "--n", "1", "--out", str(out), "--quiet"]
    bad(base + ["--chain", f"{head},{bad_runs['bare']}"], capsys, "no checkpoint")
    bad(base + ["--chain", f"{head},{bad_runs['transform']}"], capsys, "disagree on transform.c: 8000 vs 50")
    bad(base + ["--chain", f"{head},{bad_runs['patch']}"], capsys, "disagree on pyramid.patch: 4 vs 2")
    bad(base + ["--chain", f"{head},{bad_runs['sizes']}"], capsys,
        "disagree on pyramid.sizes: [16, 8, 4] vs [16, 4, 2]")
    bad(base + ["--chain", chain_of(tiny_runs, "3", "1", "2")], capsys, "coarse to fine")
    bad(base + ["--chain", chain, "--size", "24"], capsys, "whole cubes of side 4")
    bad(base + ["--chain", chain_of(tiny_runs, "uni", "1"), "--size", "18"], capsys, "not a multiple")
    bad(base + ["--chain", str(tmp_path)], capsys, "not a run directory")
    bad(["sample", "--n", "0", "--out", str(out), "--chain", chain], capsys, "--n")
    bad(base + ["--chain", chain, "--resume"], capsys, "does not exist")
    assert list(tmp_path.iterdir()) == []
    out.write_bytes(b"precious")
    bad(base + ["--chain", chain], capsys, "already exists")
    from nbgan_app.cubes import write_cube

    write_cube(tmp_path / "low.h5", np.ones((1, 8, 8, 8), np.float32), 64.0)
    bad(["upscale", "--run", str(tiny_runs["1"]), "--input", str(tmp_path / "low.h5"), "--out", str(out)], capsys,
        "already exists")
    assert out.read_bytes() == b"precious"


def test_upscale_bad_input(tiny_runs, tmp_path, capsys):
    from nbgan_app.cubes import write_cube

    write_cube(tmp_path / "odd.h5", np.ones((1, 15, 15, 15), np.float32), 60.0)
    args = ["--input", str(tmp_path / "odd.h5"), "--out", str(tmp_path / "up.h5")]
    bad(["upscale", "--run", str(tiny_runs["3"])] + args, capsys, "needs an M2 or M1 run")
    bad(["upscale", "--run", str(tiny_runs["1"]), "--from-fine"] + args, capsys,
        f"{tmp_path / 'odd.h5'}: cubes of side 15; with --from-fine run {tiny_runs['1']} (M1) cuts them into "
        "patches of 4, so it needs a side that is a multiple of 4, e.g. 12 or 16")
    bad(["upscale", "--run", str(tiny_runs["1"])] + args, capsys,
        f"{tmp_path / 'odd.h5'}: cubes of side 15; run {tiny_runs['1']} (M1) up-scales them by 2 into patches "
        "of 4, so it needs a side that is a multiple of 2, e.g. 14 or 16")
    assert not (tmp_path / "up.h5").exists()


def files_in(path):
    """Every file under `path` and its bytes, as nested dicts: equal before and after means nothing changed."""
    return {p.name: files_in(p) if p.is_dir() else p.read_bytes() for p in path.iterdir()}


def test_bad_numbers_exit_2_and_touch_nothing(tiny_runs, tmp_path, capsys):
    """Seeds, counts and sizes out of range or not whole numbers: one line naming the flag, no file."""
    chain = chain_of(tiny_runs, "3", "2", "1")
    out = tmp_path / "out.h5"
    base = ["sample", "--chain", chain, "--out", str(out), "--quiet"]
    cases = [
        (["--n", "1", "--seed", "-1"], "--seed: expected a whole number from 0 to 2^63-1. Received: '-1'"),
        (["--n", "1", "--seed", "1e23"], "--seed: expected a whole number from 0 to 2^63-1. Received: '1e23'"),
        (["--n", "1", "--seed", str(10**23)], f"--seed: expected a whole number from 0 to 2^63-1. "
                                             f"Received: '{10**23}'"),
        (["--n", "1", "--seed", "2.5"], "--seed: expected a whole number"),
        (["--n", "1e23"], "--n: expected a whole number >= 1. Received: '1e23'"),
        (["--n", "0"], "--n: expected a whole number >= 1. Received: '0'"),
        (["--n", "1", "--max-batch", "0"], "--max-batch: expected a whole number >= 1"),
        (["--n", "1", "--max-batch", "many"], "--max-batch: expected a whole number >= 1. Received: 'many'"),
        (["--n", "1", "--size", "-16"], "--size: expected a whole number >= 1. Received: '-16'"),
    ]
    for flags, culprit in cases:
        bad(base + flags, capsys, culprit)
    # a count that parses but cannot be written: refused before the file is made
    assert main(base + ["--n", str(10**23)]) == 2
    assert re.fullmatch(rf"nbgan sample: error: output {re.escape(str(out))}: {10**23} cubes of 16\^3 need about "
                        r"\S+ \S+, more than the .+ free in \S+ \(lower --n or --size\)\n", capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []
    # with --overwrite, a bad seed leaves an existing result as it was
    assert main(base + ["--n", "1"]) == 0
    before = files_in(tmp_path)
    bad(base + ["--n", "1", "--seed", "-1", "--overwrite"], capsys, "--seed")
    assert files_in(tmp_path) == before


def interrupt_after(monkeypatch, calls: int, out, before: bytes) -> None:
    """Make every generator call check that `out` still holds `before` (what a SIGKILL at that moment
    would leave under the name), and the call after `calls` raise KeyboardInterrupt (Ctrl+C)."""
    from nbgan_app.sampling import runs as sampling_runs

    real_wrap, made = sampling_runs.keras_generator, {"n": 0}

    def watched(model):
        generate = real_wrap(model)

        def call(x):
            made["n"] += 1
            assert out.read_bytes() == before
            if made["n"] > calls:
                raise KeyboardInterrupt
            return generate(x)
        return call

    monkeypatch.setattr(sampling_runs, "keras_generator", watched)


def test_overwrite_replaces_only_with_a_complete_file(tiny_runs, tmp_path, capsys, monkeypatch):
    """A kill at any moment of `sample --overwrite` leaves the old complete result; success replaces it."""
    out = tmp_path / "w.h5"
    base = ["sample", "--chain", chain_of(tiny_runs, "3", "2", "1"), "--n", "2", "--out", str(out), "--quiet"]
    assert main(base + ["--seed", "1"]) == 0
    before = out.read_bytes()
    interrupt_after(monkeypatch, 1 + 4 + 5, out, before)  # M3, M2's 4 waves, 5 of M1's 10 waves
    assert main(base + ["--seed", "2", "--overwrite"]) == 130
    assert files_in(tmp_path) == {"w.h5": before}  # the old file, and no temporary one left
    monkeypatch.undo()
    assert main(base + ["--seed", "2", "--overwrite"]) == 0
    data, attrs, _ = read(out)
    assert bool(attrs["complete"]) and attrs["seed"] == 2 and out.read_bytes() != before
    assert list(tmp_path.iterdir()) == [out]


def test_chain_messages_name_the_culprit(tiny_runs, bad_runs, tmp_path, capsys):
    out = tmp_path / "out.h5"
    base = ["sample", "--n", "1", "--out", str(out), "--quiet"]
    # runs trained on different boxes: the setting and its two values, not dataclass reprs
    bad(base + ["--chain", f"{bad_runs['m3_box']},{chain_of(tiny_runs, '2', '1')}"], capsys,
        f"runs {bad_runs['m3_box']} and {tiny_runs['2']} disagree on box_size: 100 vs 64 Mpc/h")
    bad(base + ["--chain", chain_of(tiny_runs, "3", "2", "2")], capsys,
        f"chain scales 3,2,2: runs {tiny_runs['2']} and {tiny_runs['2']} both have scale 2; a chain takes each "
        "scale once")
    # M2 missing: named, and no --size that nobody gave
    assert main(base + ["--chain", chain_of(tiny_runs, "3", "1")]) == 2
    err = capsys.readouterr().err
    assert "scale 2 is missing between run" in err and "--size" not in err and "None" not in err, err
    assert len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []
    # resume with another chain, seed or n: refused by name, the file untouched
    assert main(base + ["--chain", chain_of(tiny_runs, "3", "2", "1")]) == 0
    before = files_in(tmp_path)
    full = chain_of(tiny_runs, "3", "2", "1")
    bad(base + ["--chain", chain_of(tiny_runs, "3", "2"), "--resume"], capsys,
        f'--resume: {out} was written with --chain ["{tiny_runs["3"]}", "{tiny_runs["2"]}", "{tiny_runs["1"]}"], '
        f'not ["{tiny_runs["3"]}", "{tiny_runs["2"]}"]')
    bad(base + ["--chain", full, "--seed", "4", "--resume"], capsys, f"{out} was written with --seed 0, not 4")
    bad(base[:2] + ["2"] + base[3:] + ["--chain", full, "--resume"], capsys, f"{out} was written with --n 1, not 2")
    assert files_in(tmp_path) == before


# --- the progress line ----------------------------------------------------------------------

def test_progress_is_one_line_with_an_eta():
    """Not a terminal: a few tens of lines the dashboard parses, each with the share done and an ETA."""
    import io

    from nbgan_app.sampling.progress import ProgressLine
    from nbgan_app.sampling.orders import waves
    from tui.processes import WAVE_LINE

    # 1, 4 and 8 cubes' worth of patch grids: 1 + 22 + 46 waves, as a 128^3 chain of 16^3 patches
    work = [(3, [(0, 4)])] + [(level, [(0, 4 * len(w)) for w in waves(n, 3, "wavefront")])
                              for level, n in ((2, 8), (1, 16))]
    total = sum(todo for _, per_wave in work for _, todo in per_wave)
    now = {"t": 0.0}
    stream = io.StringIO()
    progress = ProgressLine(stream=stream, clock=lambda: now["t"])
    with progress:
        progress.begin(work)
        made = 0
        for level, per_wave in work:
            for wave, (_, todo) in enumerate(per_wave, 1):
                made += todo
                now["t"] = made * 0.01  # 10 ms per patch
                progress(wave, len(per_wave), level)
    lines = stream.getvalue().splitlines()
    assert 20 <= len(lines) <= 26, lines  # one per 5% and one per level end, not one per wave (69)
    parsed = [tuple(map(int, WAVE_LINE.match(line).groups())) for line in lines]
    assert level_ends(parsed) == [(1, 1, 3), (22, 22, 2), (46, 46, 1)]
    # the share done and the ETA, the rest of the work at the rate so far: exact here, as the fake work is uniform
    for line in lines:
        wave, _, level, pct, minutes, seconds = map(int, re.fullmatch(
            r"wave (\d+)/(\d+) level (\d+)  (\d+)%  ETA (\d+):(\d\d)", line).groups())
        done = sum(todo for lv, per_wave in work for k, (_, todo) in enumerate(per_wave, 1)
                   if lv > level or (lv == level and k <= wave))
        assert pct == done * 100 // total
        assert minutes * 60 + seconds == round((total - done) * 0.01)
    assert lines[-1] == "wave 46/46 level 1  100%  ETA 0:00"

    # a resumed run counts what the file held already, and its ETA only what it makes itself;
    # a slow one prints at least once a minute
    now["t"] = 100.0
    stream = io.StringIO()
    progress = ProgressLine(stream=stream, clock=lambda: now["t"])
    progress.begin([(1, [(4, 0), (4, 0)] + [(0, 4)] * 98)])
    for wave in range(1, 101):
        now["t"] = 100 + 20 * max(wave - 2, 0)  # the two waves done before are skipped at once
        progress(wave, 100, 1)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "wave 1/100 level 1  1%"  # nothing made yet: no rate, no ETA
    printed = [int(WAVE_LINE.match(line).group(1)) for line in lines]
    at = [100 + 20 * max(wave - 2, 0) for wave in printed]
    assert max(b - a for a, b in zip(at, at[1:])) == 60 and printed[-1] == 100  # the first wave after 60 s
    assert len(lines) <= 50  # of 100 waves over 33 minutes
    for line, wave in zip(lines[1:], printed[1:]):
        assert line.endswith(f"ETA {(98 - (wave - 2)) * 20 // 60}:{(98 - (wave - 2)) * 20 % 60:02d}"), line


def test_progress_on_a_terminal_rewrites_one_line():
    import io

    from nbgan_app.sampling.progress import ProgressLine

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    now = {"t": 0.0}
    stream = Terminal()
    with ProgressLine(stream=stream, clock=lambda: now["t"]) as progress:
        progress.begin([(3, [(0, 2)]), (1, [(0, 2)] * 100)])
        now["t"] = 1.0
        progress(1, 1, 3)
        for wave in range(1, 101):
            now["t"] = 1.0 + wave * 0.05  # 20 waves a second: drawn at most 5 times a second
            progress(wave, 100, 1)
        assert "\n" not in stream.getvalue()
    text = stream.getvalue()
    assert text.endswith("\n") and text.count("\n") == 1
    draws = text.rstrip("\n").split("\r")[1:]
    assert 20 <= len(draws) <= 27 and all(d.endswith("\x1b[K") for d in draws)
    assert draws[-1] == "[####################] 100% level 1 wave 100/100 0:06 elapsed ETA 0:00\x1b[K"
    # 2 of 202 patches (rounded down) after a second: 200 to go at 2 a second
    assert draws[0] == "[--------------------]   0% level 3 wave 1/1 0:01 elapsed ETA 1:40\x1b[K"
    assert draws[len(draws) // 2].startswith("[##########----------]  5")
    # --quiet draws nothing
    stream = Terminal()
    with ProgressLine(enabled=False, stream=stream) as progress:
        progress.begin([(1, [(0, 1)])])
        progress(1, 1, 1)
    assert stream.getvalue() == ""


def test_demo_reports_sampling_through_the_same_progress_line(tiny_runs, tmp_path, capsys):
    """`nbgan demo` samples its chain with the progress line of `nbgan sample`: sparse lines with a share and ETA."""
    from nbgan_app.demo import _sample

    cubes = _sample({"m3": tiny_runs["3"], "m2": tiny_runs["2"], "m1": tiny_runs["1"]}, 2, tmp_path / "s.h5", 3)
    assert cubes.shape == (2, 16, 16, 16)
    err = capsys.readouterr().err
    assert level_ends(wave_lines(err)) == [(1, 1, 3), (4, 4, 2), (10, 10, 1)]
    assert err.strip().splitlines()[-1] == "wave 10/10 level 1  100%  ETA 0:00"
    np.testing.assert_array_equal(cubes, read(tmp_path / "s.h5")[0])
