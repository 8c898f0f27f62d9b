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
    return [tuple(map(int, m)) for m in re.findall(r"^wave (\d+)/(\d+) level (\d+)$", err, re.M)]


def valid_counts(data, shape):
    return data.shape == shape and np.all(np.isfinite(data)) and np.all(data >= 0) and data.any()


def test_trained_chain_samples_orders_agree_and_resume_is_exact(tiny_runs, tmp_path, capsys, monkeypatch):
    from nbgan_app.sampling import runs as sampling_runs

    chain = chain_of(tiny_runs, "3", "2", "1")
    base = ["sample", "--chain", chain, "--n", "2", "--seed", "3"]
    assert main(base + ["--out", str(tmp_path / "w.h5")]) == 0
    # progress per wave, in order: M3 once, M2 3*2-2 waves (2^3 patches), M1 3*4-2 waves (4^3 patches)
    assert wave_lines(capsys.readouterr().err) == (
        [(1, 1, 3)] + [(w, 4, 2) for w in range(1, 5)] + [(w, 10, 1) for w in range(1, 11)])
    data, attrs, levels = read(tmp_path / "w.h5")
    assert valid_counts(data, (2, 16, 16, 16)) and bool(attrs["complete"])
    assert attrs["seed"] == 3 and json.loads(attrs["checkpoint_steps"]) == [2, 2, 2]
    assert {k: v.shape for k, v in levels.items()} == {"2": (2, 8, 8, 8), "3": (2, 4, 4, 4)}
    assert attrs["box_size"] == pytest.approx(64.0)

    assert main(base + ["--out", str(tmp_path / "r.h5"), "--order", "raster", "--quiet"]) == 0
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
    assert wave_lines(capsys.readouterr().err)[-1] == (10, 10, 1)
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
    assert [w for w in waves if w[1] == w[0]] == [(4, 4, 3), (10, 10, 2), (22, 22, 1)]  # 2^3, 4^3, 8^3 patches
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
    from nbgan_app.training import scale_levels
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

    # given low-resolution counts condition the same way as the down-scaled fine cubes
    write_cube(tmp_path / "low.h5", backward(levels["2"], tiny_config.transform), 128.0)
    assert main(["upscale", "--run", str(tiny_runs["1"]), "--input", str(tmp_path / "low.h5"),
                 "--out", str(tmp_path / "up2.h5"), "--quiet"]) == 0
    np.testing.assert_allclose(read(tmp_path / "up2.h5")[0], data, rtol=1e-3, atol=1e-3)


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
    from nbgan_app.transforms import backward

    names = ("3", "2", "1")
    shipped = presets.Preset("tiny-preset", tiny_runs["3"].parent, {"chain": [tiny_runs[s].name for s in names]})
    monkeypatch.setattr(presets, "get_preset", lambda name, root: shipped if name == shipped.name else None)
    args = ["--n", "3", "--seed", "7", "--max-batch", "5", "--quiet"]
    assert main(["sample", "--chain", shipped.name, "--out", str(tmp_path / "f.h5")] + args) == 0
    data, attrs, levels = read(tmp_path / "f.h5")
    assert json.loads(attrs["runs"]) == [str(tiny_runs[s].resolve()) for s in names]

    chain = load_chain([tiny_runs[s] for s in names])
    made = []
    for plan in chain.plans:
        target = ArrayTarget(3, plan.side, plan.patch)
        make_level(plan, load_generator(plan.run), target, 3, coarse=made[-1] if made else None, seed=7, max_batch=5)
        made.append(target.values)
    np.testing.assert_array_equal(made[0], levels["3"])
    np.testing.assert_array_equal(made[1], levels["2"])
    np.testing.assert_array_equal(backward(made[2], tiny_config.transform), data)
    fake, _ = run_steps([load_step(tiny_runs[s]) for s in names], 3, 7, max_batch=5)
    np.testing.assert_array_equal(fake, data)

    # a chain that starts from given cubes: the ablation's scoring and `nbgan upscale --from-fine`
    _, held_out = split_dataset(tiny_config, tiny_cubes)
    write_cube(tmp_path / "held.h5", held_out, 64.0)
    assert main(["upscale", "--run", str(tiny_runs["1"]), "--input", str(tmp_path / "held.h5"), "--from-fine",
                 "--seed", "7", "--out", str(tmp_path / "up.h5"), "--quiet"]) == 0
    fake, _ = run_steps([load_step(tiny_runs["1"])], len(held_out), 7, level_of(tiny_config, held_out, 8))
    np.testing.assert_array_equal(fake, read(tmp_path / "up.h5")[0])


@pytest.fixture(scope="module")
def bad_runs(tiny_runs, tmp_path_factory):
    """Copies of the tiny M1 run: without checkpoint, and with another transform, patch or level sizes."""
    root = tmp_path_factory.mktemp("bad-runs")

    def variant(name, edit=None, checkpoint=True):
        run = root / name
        shutil.copytree(tiny_runs["1"], run, ignore=None if checkpoint else shutil.ignore_patterns("checkpoints"))
        if edit is not None:
            saved = json.loads((run / "config.json").read_text())
            edit(saved["config"])
            (run / "config.json").write_text(json.dumps(saved))
        return str(run)

    return {"bare": variant("bare", checkpoint=False),
            "transform": variant("transform", lambda c: c["transform"].update(c=50.0)),
            "patch": variant("patch", lambda c: c["pyramid"].update(patch=2)),
            "sizes": variant("sizes", lambda c: (c["pyramid"].update(sizes=[16, 4, 2]),
                                                 c["m3"].update(generator_strides=[1, 1])))}


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
    bad(base + ["--chain", f"{head},{bad_runs['transform']}"], capsys, "different transforms")
    bad(base + ["--chain", f"{head},{bad_runs['patch']}"], capsys, "patch sizes")
    bad(base + ["--chain", f"{head},{bad_runs['sizes']}"], capsys, "different scales")
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
    bad(["upscale", "--run", str(tiny_runs["1"]), "--from-fine"] + args, capsys, "not divisible")
    bad(["upscale", "--run", str(tiny_runs["1"])] + args, capsys, "not a multiple")
    assert not (tmp_path / "up.h5").exists()
