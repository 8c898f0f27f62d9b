"""The quality ablation on the tiny config: variants, segments, scores on fresh boxes, resumable."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nbgan_app.errors import InputError
from nbgan_app.study import ablation


def _plan(tmp_path, tiny_toml):
    plan = tmp_path / "plan.toml"
    plan.write_text(f'''
[ablation]
base = "{tiny_toml}"
eval_boxes = 2
n_fake = 2
sampling_seeds = [0, 1]

[[m1]]
name = "direct"
segments = [2, 4]

[[m1]]
name = "residual"
segments = [2]
overrides = {{ "m1.upscaler" = "residual", "train.optimizer" = "adam" }}
''')
    return plan


@pytest.mark.slow
def test_plan_trains_each_variant_by_segment_scores_it_and_resumes(tmp_path, tiny_toml):
    plan = _plan(tmp_path, tiny_toml)
    out = tmp_path / "out"
    ablation.run_plan(plan, out, log=lambda line: None)
    results = ablation.read_results(out)
    assert sorted(results) == ["m1/direct", "m1/residual"]
    direct = results["m1/direct"]
    assert [r["step"] for r in direct] == [2, 4]
    assert direct[1]["train_seconds"] > direct[0]["train_seconds"] > 0
    for record in direct + results["m1/residual"]:
        for stat in ("psd", "mass_hist", "peak_hist"):
            assert np.isfinite(record[stat]) and record[stat] >= 0
        # each sampling seed draws its own cubes; the headline is their median
        assert record["sampling_seeds"] == [0, 1]
        for stat in ablation.HEADLINE:
            assert len(record["by_seed"][stat]) == 2
            assert record[stat] == pytest.approx(np.median(record["by_seed"][stat]))
        assert record["by_seed"]["psd"][0] != record["by_seed"]["psd"][1]
    saved = json.loads((out / "m1" / "residual" / "config.json").read_text())["config"]
    assert saved["m1"]["upscaler"] == "residual" and saved["train"]["optimizer"] == "adam"
    # the evaluation boxes are fresh seeds after the training suite's, in their own cache
    config = ablation.variant_config(ablation.read_plan(plan)["base"], {}, 4)
    eval_dir = config.resolve(config.data.simulation.cache.rstrip("/") + "-eval")
    assert len(list(eval_dir.glob("*.h5"))) == 2
    # a rerun scores nothing new
    ablation.run_plan(plan, out, log=lambda line: pytest.fail("rerun trained again"))
    assert ablation.read_results(out) == results
    # each segment is scored on its own newest checkpoint, never on the older best generator that
    # sampling prefers (an untrained one planted as best here)
    from nbgan_app.best import keep_if_best
    from nbgan_app.models.factory import build_generator

    assert [r["checkpoint_step"] for r in direct] == [2, 4]
    assert keep_if_best(out / "m1" / "direct", build_generator(config.m1, "1", config), 2, float("-inf"))
    evaluation, box_size = ablation.evaluation_boxes(ablation.read_plan(plan)["base"], 2, progress=False)
    again = ablation.score_run(out / "m1" / "direct", "1", evaluation, box_size, 2, seeds=(0, 1))
    assert again["checkpoint_step"] == 4
    assert (again["psd"], again["mass_hist"]) == (direct[1]["psd"], direct[1]["mass_hist"])
    # one seed alone is that seed's score, and the per-bin PSD error is the mean over the seeds'
    first = ablation.score_run(out / "m1" / "direct", "1", evaluation, box_size, 2, seeds=(1,))
    assert first["psd"] == direct[1]["by_seed"]["psd"][1]
    second = ablation.score_run(out / "m1" / "direct", "1", evaluation, box_size, 2, seeds=(0,))
    bins = np.array([first["psd_frac"], second["psd_frac"]], dtype=float)  # null: a bin without power
    assert np.allclose(np.array(again["psd_frac"], dtype=float), bins.mean(axis=0), equal_nan=True)
    table = "\n".join(ablation.markdown_results(out))
    low, high = sorted(direct[1]["by_seed"]["psd"])
    assert f"{direct[1]['psd']:.3f} ({low:.3f}-{high:.3f})" in table


def test_override_replaces_dotted_keys_without_touching_the_base():
    base = {"m1": {"upscaler": "direct"}, "train": {"steps": 3}}
    out = ablation.override(base, {"m1.upscaler": "residual", "transform.scale": 1.0})
    assert out == {"m1": {"upscaler": "residual"}, "train": {"steps": 3}, "transform": {"scale": 1.0}}
    assert base["m1"]["upscaler"] == "direct"


def test_bad_plans_are_refused(tmp_path):
    plan = tmp_path / "plan.toml"
    plan.write_text('[ablation]\neval_boxes = 2\n')
    with pytest.raises(InputError, match="base"):
        ablation.read_plan(plan)
    plan.write_text('[ablation]\nbase = "x.toml"\n[[m4]]\nname = "a"\nsegments = [1]\n')
    with pytest.raises(InputError, match="m4"):
        ablation.read_plan(plan)
    for seeds in ("[]", "[1, 1]", '["1"]', "3", "[-1]"):
        plan.write_text(f'[ablation]\nbase = "x.toml"\nsampling_seeds = {seeds}\n')
        with pytest.raises(InputError, match="sampling_seeds"):
            ablation.read_plan(plan)


def test_a_stopped_variant_stops_the_plan(tmp_path, tiny_toml, monkeypatch):
    """A signal stops the variant training (train returns short of its segment): nothing is scored,
    and the plan does not go on to train the next variant."""
    import nbgan_app.training

    calls = []

    def stopped_train(config, scale, run_dir, steps=None, progress=None):
        calls.append(run_dir.name)
        return {"step": steps - 1}

    monkeypatch.setattr(nbgan_app.training, "train", stopped_train)
    monkeypatch.setattr(ablation, "evaluation_boxes", lambda *args, **kwargs: (np.zeros((2, 8, 8, 8)), 16.0))
    results = ablation.run_plan(_plan(tmp_path, tiny_toml), tmp_path / "out", log=lambda line: None)
    assert calls == ["direct"]
    assert results == {("m1", "direct"): []}
