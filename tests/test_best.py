"""The best generator by monitor error: kept during training, replaced only by a better one, sampled from."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest

from nbgan_app import best, rundir


def _record(psd, mass, peak):
    return {"psd_median_abs_frac_diff": psd, "mass_hist_median_abs_frac_diff": mass,
            "peak_hist_median_abs_frac_diff": peak}


def test_monitor_error_is_the_mean_of_the_three_median_errors():
    assert best.monitor_error(_record(0.1, 0.2, 0.6)) == pytest.approx(0.3)
    assert best.monitor_error({"psd_median_abs_frac_diff": 0.1}) is None  # a statistic missing
    assert best.monitor_error(_record(0.1, float("nan"), 0.6)) is None


@pytest.fixture
def generator(tiny_config):
    from nbgan_app.models.factory import build_generator

    return build_generator(tiny_config.m3, "3", tiny_config)


def test_only_a_lower_error_replaces_the_best(tmp_path, generator):
    assert best.read_best(tmp_path) is None
    assert best.keep_if_best(tmp_path, generator, 100, 0.5)
    assert not best.keep_if_best(tmp_path, generator, 200, 0.5)  # a tie keeps the earlier one
    assert not best.keep_if_best(tmp_path, generator, 300, 0.7)
    step, directory, error = best.read_best(tmp_path)
    assert (step, error) == (100, 0.5) and directory.name == "step-00000100"
    assert best.keep_if_best(tmp_path, generator, 400, 0.25)
    assert sorted(p.name for p in (tmp_path / best.BEST).iterdir()) == ["step-00000400"]  # the old one and no temp
    meta = json.loads((tmp_path / best.BEST / "step-00000400" / "meta.json").read_text())
    assert meta["step"] == 400 and meta["monitor_error"] == 0.25


def test_an_interrupted_replacement_reads_as_the_lower_error(tmp_path, generator):
    best.keep_if_best(tmp_path, generator, 100, 0.5)
    older = tmp_path / best.BEST / "step-00000100"
    newer = tmp_path / best.BEST / "step-00000300"
    shutil.copytree(older, newer)  # as if killed between the rename and the removal of the older best
    (newer / "meta.json").write_text(json.dumps({"step": 300, "monitor_error": 0.2}))
    (tmp_path / best.BEST / "step-00000200").mkdir()  # no meta.json: not a best
    step, _, error = best.read_best(tmp_path)
    assert (step, error) == (300, 0.2)


def test_a_best_scored_on_other_monitor_cubes_is_scored_again(tmp_path, generator):
    """`rescore` asks for a new error only when the best's number of cubes differs (or is unrecorded),
    keeps the earlier error beside it, and leaves the best alone when no score comes back."""
    asked = []

    def score(error, ratio=1.0):
        return lambda step: asked.append(step) or (None if error is None else (error, ratio))

    best.keep_if_best(tmp_path, generator, 100, 0.2, samples=8, mean_ratio=1.0)
    assert best.rescore(tmp_path, 8, score(0.9)) is None and asked == []
    assert best.rescore(tmp_path, 64, score(None)) is None and best.read_best(tmp_path)[2] == 0.2
    assert best.rescore(tmp_path, 64, score(0.35, 1.01)) == (0.35, 1.01) and asked == [100, 100]
    meta = json.loads((tmp_path / best.BEST / "step-00000100" / "meta.json").read_text())
    assert meta["monitor_error"] == 0.35 and meta["eval_samples"] == 64 and meta["mean_count_ratio"] == 1.01
    assert (meta["earlier_error"], meta["earlier_eval_samples"]) == (0.2, 8)
    assert not best.keep_if_best(tmp_path, generator, 200, 0.3 + 0.06)  # compared with the new error
    assert best.keep_if_best(tmp_path, generator, 300, 0.3, samples=64, mean_ratio=1.0)
    legacy = tmp_path / "legacy"
    best.keep_if_best(legacy, generator, 100, 0.2, samples=8)  # kept before runs recorded mean counts
    assert best.rescore(legacy, 8, score(0.25)) == (0.25, 1.0)  # scored once on the new footing
    assert best.rescore(legacy, 8, score(0.5)) is None


def test_a_generator_off_in_mean_counts_never_becomes_the_best(tmp_path, generator):
    """The guard (`within`): a candidate outside the tolerance is refused whatever its error; a kept best
    found outside it (scored again under a tighter tolerance) gives way to any candidate within it."""
    assert best.within(1.029, 0.03) and best.within(0.971, 0.03) and not best.within(1.06, 0.03)
    assert best.within(1.5, 0.0) and best.within(None, 0.03) and not best.within(float("nan"), 0.03)
    assert best.keep_if_best(tmp_path, generator, 100, 0.2, mean_ratio=0.99, tolerance=0.03)
    assert not best.keep_if_best(tmp_path, generator, 200, 0.1, mean_ratio=1.06, tolerance=0.03)
    assert best.read_best(tmp_path)[0] == 100
    assert best.keep_if_best(tmp_path, generator, 300, 0.1, mean_ratio=1.06, tolerance=0.0)  # no guard
    # under a 3% guard the kept best (x1.06) gives way to a worse error within it
    assert best.keep_if_best(tmp_path, generator, 400, 0.4, mean_ratio=1.02, tolerance=0.03)
    assert best.read_best(tmp_path)[:1] == (400,) and best.read_best(tmp_path)[2] == 0.4
    assert not best.keep_if_best(tmp_path, generator, 500, 0.5, mean_ratio=1.0, tolerance=0.03)


def _scored_config(tiny_config):
    # two held-out cubes, so that every evaluation (every other step) is scored
    return dataclasses.replace(tiny_config, data=dataclasses.replace(tiny_config.data, held_out=2))


def _errors(run):
    return {r["step"]: r["monitor_error"] for r in rundir.read_metrics(run) if "monitor_error" in r}


def test_training_keeps_the_best_evaluation_and_sampling_uses_it(tmp_path, tiny_config, tiny_cubes):
    from nbgan_app.sampling.runs import checkpoint_of, load_run
    from nbgan_app.training import train

    config = _scored_config(tiny_config)
    run = tmp_path / "m3"
    train(config, "3", run, steps=6, progress=False)
    train(config, "3", run, steps=10, progress=False)  # a resume carries on with the best so far
    errors = _errors(run)
    assert sorted(errors) == [2, 4, 6, 8, 10]
    chosen = min(errors, key=lambda s: (errors[s], s))
    step, directory, error = best.read_best(run)
    assert (step, error) == (chosen, errors[chosen])
    assert checkpoint_of(load_run(run)) == (chosen, directory)


def test_a_scale_with_monitor_boxes_scores_against_fresh_boxes(tmp_path, tiny_config, tiny_cubes, monkeypatch):
    """`m2.monitor_boxes = 2`: M2's monitor scores against 2 fresh PM boxes (seeds past the suite's, simulated
    into `<cache>-monitor`), not the suite's held-out cubes, and keeps its best by them."""
    import numpy as np

    from nbgan_app import evaluation
    from nbgan_app.dataset import load_dataset
    from nbgan_app.study.quality import MONITOR_SEED_OFFSET, fresh_boxes
    from nbgan_app.training import train

    config = dataclasses.replace(tiny_config, m2=dataclasses.replace(tiny_config.m2, monitor_boxes=2))
    seen = []
    build = evaluation.Evaluator.__init__
    monkeypatch.setattr(evaluation.Evaluator, "__init__",
                        lambda self, config, scale, cubes, *rest: seen.append(cubes) or build(self, config, scale,
                                                                                               cubes, *rest))
    run = tmp_path / "m2"
    train(config, "2", run, steps=2, progress=False)
    fresh = fresh_boxes(config, 2, "-monitor", MONITOR_SEED_OFFSET, progress=False)[0]
    suite, _ = load_dataset(config, progress=False)
    assert len(seen) == 1 and np.array_equal(seen[0], fresh)
    assert not any(np.array_equal(fresh[0], cube) for cube in suite)
    assert _errors(run) and best.read_best(run)[0] == 2


def test_training_keeps_the_best_within_the_mean_count_guard(tmp_path, tiny_config, tiny_cubes):
    """Every scored record carries its mean count ratio; with a guard, the kept best is the lowest error
    among the evaluations within it (training is exact, so the same run from scratch repeats its scores)."""
    from nbgan_app.training import train

    config = _scored_config(tiny_config)
    train(config, "3", tmp_path / "free", steps=10, progress=False)
    ratios = {r["step"]: r["mean_count_ratio"] for r in rundir.read_metrics(tmp_path / "free") if "monitor_error" in r}
    assert sorted(ratios) == [2, 4, 6, 8, 10] and all(r > 0 for r in ratios.values())
    errors = _errors(tmp_path / "free")
    free_best = best.read_best(tmp_path / "free")[0]
    drift = {s: abs(r - 1) for s, r in ratios.items()}
    # a tolerance just too tight for the unguarded best: the evaluations closer in mean counts pass
    tolerance = max([d for d in drift.values() if d < drift[free_best]], default=drift[free_best] / 2)
    guarded = dataclasses.replace(config, train=dataclasses.replace(config.train, best_count_tolerance=tolerance))
    train(guarded, "3", tmp_path / "guarded", steps=10, progress=False)
    assert _errors(tmp_path / "guarded") == errors
    allowed = [s for s in errors if drift[s] <= tolerance]
    kept = best.read_best(tmp_path / "guarded")
    if not allowed:
        assert kept is None
        return
    step, directory, error = kept
    assert step != free_best and step == min(allowed, key=lambda s: (errors[s], s)) and error == errors[step]
    assert json.loads((directory / "meta.json").read_text())["mean_count_ratio"] == ratios[step]


def test_sampling_falls_back_to_the_newest_checkpoint_when_the_best_is_damaged(tmp_path, tiny_config, tiny_cubes,
                                                                               capfd):
    from nbgan_app.sampling.runs import checkpoint_of, load_run
    from nbgan_app.training import train

    run = tmp_path / "m3"
    train(_scored_config(tiny_config), "3", run, steps=4, progress=False)
    _, directory, _ = best.read_best(run)
    (directory / "generator.keras").write_bytes(b"not a keras file")
    capfd.readouterr()
    step, used = checkpoint_of(load_run(run))
    assert step == 4 and used.parent.name == rundir.CHECKPOINTS
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "best generator" in err[0] and "newest checkpoint" in err[0]


def test_a_run_without_evaluation_samples_from_its_newest_checkpoint(tiny_runs):
    from nbgan_app.sampling.runs import checkpoint_of, load_run

    assert best.read_best(tiny_runs["3"]) is None  # tiny.toml holds out one cube: no scores, no best
    assert checkpoint_of(load_run(tiny_runs["3"]))[0] == 2
