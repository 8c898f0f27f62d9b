import dataclasses
import json
from pathlib import Path

import pytest

from nbgan_app.config import load_config, parse_config, to_dict
from nbgan_app.errors import InputError

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["paper", "demo", "demo-counts", "tiny"])
def test_shipped_configs_load_and_round_trip(name):
    config = load_config(ROOT / "configs" / f"{name}.toml")
    again = parse_config(json.loads(json.dumps(to_dict(config))), config.root, config.source)
    assert again == config


def test_paper_config_is_the_thesis():
    c = load_config(ROOT / "configs" / "paper.toml")
    assert c.pyramid.sizes == (256, 64, 32) and c.pyramid.patch == 32
    assert (c.transform.c, c.transform.scale) == (8000.0, 6.0)
    assert c.train.generator_learning_rate == 3e-5 and c.train.batch_size == 8
    assert c.train.num_critic_steps == 5 and c.train.gp_weight == 10.0
    assert c.data.box_size == 350.0
    assert c.factor("2") == 2 and c.factor("1") == 4 and c.level_size("3") == 32


def _table():
    return to_dict(load_config(ROOT / "configs" / "tiny.toml"))


@pytest.mark.parametrize("mutate, key", [
    (lambda t: t["train"].update(stepz=3), "train.stepz"),
    (lambda t: t["train"].update(steps="10"), "train.steps"),
    (lambda t: t["pyramid"].update(patch=3), "pyramid.patch"),
    (lambda t: t["pyramid"].update(sizes=[16, 6, 4]), "pyramid.sizes"),
    (lambda t: t["m3"].update(generator_strides=[2, 2]), "m3.generator_strides"),
    (lambda t: t["m2"].update(architecture="unet"), "m2.architecture"),
    (lambda t: t["transform"].update(kind="sqrt"), "transform.kind"),
    (lambda t: t["data"].update(dir="somewhere"), "data"),
    (lambda t: t["data"]["simulation"].update(grid=32), "data.simulation.grid"),
    (lambda t: t.update(modle={}), "modle"),
])
def test_bad_configs_name_the_key(mutate, key):
    table = _table()
    mutate(table)
    with pytest.raises(InputError) as info:
        parse_config(table)
    assert key in str(info.value) and "\n" not in str(info.value)


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(InputError, match="no such config"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\nsteps=1")
    with pytest.raises(InputError, match="not valid TOML"):
        load_config(bad)


def test_a_base_config_is_read_first_and_merged_key_by_key(tmp_path):
    (tmp_path / "configs").mkdir()
    tiny = (ROOT / "configs" / "tiny.toml").read_text()
    (tmp_path / "configs" / "tiny.toml").write_text(tiny)
    (tmp_path / "configs" / "variant.toml").write_text(
        'base = "tiny.toml"\n[train]\nsteps = 7\n[m1]\nlatent_smoothing = 1\n')
    base = load_config(tmp_path / "configs" / "tiny.toml")
    variant = load_config(tmp_path / "configs" / "variant.toml")
    assert variant.train.steps == 7 and variant.m1.latent_smoothing == 1
    # every key the variant does not name is the base's, within the tables it changes too
    assert dataclasses.replace(variant.train, steps=base.train.steps) == base.train
    assert dataclasses.replace(variant.m1, latent_smoothing=0) == base.m1
    assert (variant.m3, variant.data, variant.root) == (base.m3, base.data, base.root)


def test_the_count_chain_config_is_the_demo_with_its_own_keys():
    demo = load_config(ROOT / "configs" / "demo.toml")
    counts = load_config(ROOT / "configs" / "demo-counts.toml")
    assert counts.pyramid.mean == "counts" and demo.pyramid.mean != "counts"
    assert counts.m1.upscaler == counts.m2.upscaler == "split"
    assert counts.data == demo.data and counts.m3 == demo.m3 and counts.transform == demo.transform
    # the count chain's M1 and the ablation's rows trained in one stage; the demo's M1 trains in two
    ablation = load_config(ROOT / "configs" / "ablation-base.toml")
    assert demo.m1.refine_at > 0 and counts.m1.refine_at == ablation.m1.refine_at == 0
    assert dataclasses.replace(ablation, m1=demo.m1, source=demo.source) == demo


@pytest.mark.parametrize("text, message", [
    ('base = "missing.toml"\n', "no such base of"),
    ('base = "self.toml"\n', "cycle of bases"),
    ("base = 3\n", "base: expected the path"),
])
def test_bad_bases_are_named(tmp_path, text, message):
    (tmp_path / "self.toml").write_text(text)
    with pytest.raises(InputError, match=message) as info:
        load_config(tmp_path / "self.toml")
    assert "\n" not in str(info.value)


def test_relative_paths_resolve_against_project_root():
    c = load_config(ROOT / "configs" / "demo.toml")
    assert c.resolve(c.data.simulation.cache) == ROOT / "data" / "demo-sim"
    assert dataclasses.is_dataclass(c) and c.model("uni") is c.mu


@pytest.mark.parametrize("section, key, value, owners", [
    ("m2", "latent_dim", 100, "M3"),
    ("m1", "generator_strides", [2, 1], "M3"),
    ("mu", "dense_units", 16, "M3"),
    ("m2", "initial_size", 2, "M3"),
    ("m3", "upscaler", "direct", "M2 and M1"),
    ("mu", "upscaler", "residual", "M2 and M1"),
])
def test_a_key_of_another_model_section_is_refused_by_name(section, key, value, owners):
    table = _table()
    table[section][key] = value
    with pytest.raises(InputError) as info:
        parse_config(table)
    assert str(info.value) == f"{section}.{key}: not a key of [{section}] ({owners} only)"


def test_a_toml_file_with_a_misplaced_key_is_refused(tmp_path):
    text = (ROOT / "configs" / "demo.toml").read_text().replace("[m1]\n", "[m1]\nlatent_dim = 64\n")
    (tmp_path / "demo.toml").write_text(text)
    with pytest.raises(InputError, match=r"^m1\.latent_dim: not a key of \[m1\] \(M3 only\)$"):
        load_config(tmp_path / "demo.toml")


def test_each_section_keeps_and_writes_only_its_own_keys():
    from nbgan_app.config import SECTION_MODELS

    config = load_config(ROOT / "configs" / "demo.toml")
    table = to_dict(config)
    assert set(table["m3"]) >= {"latent_dim", "dense_units", "initial_size", "generator_strides"}
    assert "upscaler" not in table["m3"] and "upscaler" not in table["mu"]
    assert table["m2"]["upscaler"] == table["m1"]["upscaler"] == "residual"  # the shipped recipe
    for section, cls in SECTION_MODELS.items():
        assert set(table[section]) == {f.name for f in dataclasses.fields(cls)}, section
        assert type(getattr(config, section)) is cls
    assert not hasattr(config.mu, "latent_dim") and not hasattr(config.m2, "latent_dim")
    assert config.m3.latent_dim == 64 and config.m1.upscaler == "residual"


def _flat_old_table():
    """A config.json "config" as run directories made before the per-section loader hold it: every
    model key in every section (the old flat defaults), and no `upscaler` (older still)."""
    old_defaults = {"generator_strides": [], "latent_dim": 100, "dense_units": 64, "initial_size": 2}
    table = _table()
    for section in ("m2", "m1", "mu"):
        table[section].update(old_defaults)
        table[section].pop("upscaler", None)
    return table


def test_old_run_directories_still_load_and_resume(tmp_path):
    from nbgan_app.config import parse_saved_config
    from nbgan_app.run_setup import prepare_run_dir
    from nbgan_app.sampling.runs import load_run

    config = load_config(ROOT / "configs" / "tiny.toml")
    with pytest.raises(InputError, match="m2.dense_units: not a key of"):
        parse_config(_flat_old_table())  # a TOML file gets no such leniency
    assert parse_saved_config(_flat_old_table(), config.root, config.source) == config
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"config": _flat_old_table(), "run": {
        "scale": "1", "backend": "tensorflow", "config_path": config.source, "root": config.root}}))
    info = load_run(run)
    assert info.scale == "1" and info.config == config
    assert prepare_run_dir(config, "1", run, "tensorflow") == run  # the resume check sees no difference
    changed = dataclasses.replace(config, m1=dataclasses.replace(config.m1, upscaler="residual"))
    with pytest.raises(InputError, match=r"m1\.upscaler differs"):
        prepare_run_dir(changed, "1", run, "tensorflow")


def test_a_saved_config_still_refuses_unknown_keys():
    from nbgan_app.config import parse_saved_config

    table = _flat_old_table()
    table["m2"]["latent_dims"] = 3
    with pytest.raises(InputError, match=r"unknown config key m2\.latent_dims"):
        parse_saved_config(table)


def test_box_size_the_config_states():
    sim = load_config(ROOT / "configs" / "tiny.toml")
    assert sim.data.declared_box_size() == sim.data.simulation.box_size == 64.0
    # beside a simulation, data.box_size cannot relabel the simulated boxes
    stray = dataclasses.replace(sim.data, box_size=999.0)
    assert stray.declared_box_size() == 64.0
    paper = load_config(ROOT / "configs" / "paper.toml").data
    assert paper.declared_box_size() == 350.0
    assert dataclasses.replace(paper, box_size=None).declared_box_size() is None


def test_project_root_rule(tmp_path):
    from nbgan_app.config import project_root

    (tmp_path / "configs").mkdir()
    assert project_root(tmp_path / "configs" / "a.toml") == tmp_path.resolve()
    assert project_root(tmp_path / "elsewhere.toml") == tmp_path.resolve()
    assert project_root(ROOT / "configs" / "demo.toml") == ROOT
    assert load_config(ROOT / "configs" / "demo.toml").root == str(ROOT)


def test_a_resume_ignores_the_demo_section_but_not_training_settings(tmp_path):
    """[demo] only tells `nbgan demo --train` how far to train, the monitor's cadence and samples
    change no training step, and a second stage is planned like the step budget: a preset run resumes
    under new ones."""
    from nbgan_app.run_setup import prepare_run_dir

    config = load_config(ROOT / "configs" / "tiny.toml")
    run = prepare_run_dir(config, "3", tmp_path / "run", "tensorflow")
    longer = dataclasses.replace(config, demo=dataclasses.replace(config.demo, steps_m3=10**6))
    assert prepare_run_dir(longer, "3", run, "tensorflow") == run
    monitored = dataclasses.replace(config, train=dataclasses.replace(config.train, eval_every=4, eval_samples=64,
                                                                      best_count_tolerance=0.5))
    assert prepare_run_dir(monitored, "3", run, "tensorflow") == run
    planned = dataclasses.replace(config, m3=dataclasses.replace(config.m3, refine_at=2, refine_rate=0.5))
    assert prepare_run_dir(planned, "3", run, "tensorflow") == run  # refused later if the run is past it
    m2 = prepare_run_dir(config, "2", tmp_path / "run2", "tensorflow")
    weighed = dataclasses.replace(config, m2=dataclasses.replace(config.m2, refine_at=2, refine_spectrum_weight=1.0,
                                                                 refine_count_weight=1.0))
    assert prepare_run_dir(weighed, "2", m2, "tensorflow") == m2
    faster = dataclasses.replace(config, train=dataclasses.replace(config.train, critic_learning_rate=1.0))
    with pytest.raises(InputError, match=r"train\.critic_learning_rate differs"):
        prepare_run_dir(faster, "3", run, "tensorflow")


def test_a_resume_ignores_other_scales_architectures_but_not_its_own(tmp_path):
    """An M3 run resumes under a config whose [m1] changed (M3 never reads it); an M1 run does not."""
    from nbgan_app.run_setup import prepare_run_dir

    config = load_config(ROOT / "configs" / "tiny.toml")
    m3, m1 = (prepare_run_dir(config, s, tmp_path / f"run{s}", "tensorflow") for s in ("3", "1"))
    bounded = dataclasses.replace(config, m1=dataclasses.replace(config.m1, upscaler="residual", residual_bound=6.0))
    assert prepare_run_dir(bounded, "3", m3, "tensorflow") == m3
    with pytest.raises(InputError, match=r"m1\.residual_bound differs"):
        prepare_run_dir(bounded, "1", m1, "tensorflow")


@pytest.mark.parametrize("mutate, message", [
    (lambda t: t["train"].update(generator_learning_rate=-1.0), "train.generator_learning_rate: expected > 0"),
    (lambda t: t["train"].update(critic_learning_rate=0.0), "train.critic_learning_rate: expected > 0"),
    (lambda t: t["train"].update(gp_weight=-10.0), "train.gp_weight: expected > 0"),
    (lambda t: t["train"].update(seed=-1), "train.seed: expected >= 0"),
    (lambda t: t["train"].update(decay_steps=-100), "train.decay_steps: expected generator steps"),
    (lambda t: t["train"].update(eval_samples=1), "train.eval_samples: expected >= 2"),
    (lambda t: t["train"].update(best_count_tolerance=-0.1), "train.best_count_tolerance: expected a fraction >= 0"),
    (lambda t: t["m3"].update(latent_tail=0.5), "m3.latent_tail: expected Tukey's h in [0, 0.5)"),
    (lambda t: t["m1"].update(latent_tail=-0.1), "m1.latent_tail: expected Tukey's h in [0, 0.5)"),
    (lambda t: t["m2"].update(count_weight=-1.0), "m2.count_weight: expected a loss weight >= 0"),
    (lambda t: t["m1"].update(refine_at=-2), "m1.refine_at: expected the generator step of the second stage"),
    (lambda t: t["m1"].update(refine_at=3), "m1.refine_at: 3 is not a multiple of train.checkpoint_every 2"),
    (lambda t: t["m3"].update(refine_rate=1.0), "m3.refine_rate: expected a factor of the learning rates in (0, 1)"),
    (lambda t: t["m2"].update(refine_rate=0.0), "m2.refine_rate: expected a factor of the learning rates in (0, 1)"),
    (lambda t: (t["train"].update(decay_steps=100), t["mu"].update(refine_at=4)),
     "mu.refine_at: a second stage sets the learning rates, and train.decay_steps (100) schedules them"),
    (lambda t: t["m1"].update(refine_spectrum_weight=10.0),
     "m1.refine_count_weight and refine_spectrum_weight weigh the losses of a second stage; set m1.refine_at"),
    (lambda t: t["m2"].update(refine_at=2, refine_count_weight=-1.0),
     "m2.refine_count_weight: expected a loss weight >= 0"),
    (lambda t: t["m3"].update(refine_eval_every=-1), "m3.refine_eval_every: expected the monitor's spacing"),
    (lambda t: t["m3"].update(refine_eval_every=2), "m3.refine_eval_every spaces the monitor in a second stage; "
                                                    "set m3.refine_at"),
    (lambda t: t["m1"].update(refine_at=2, refine_losses_at=4),
     "m1.refine_losses_at starts the second stage's losses; m1.refine_count_weight and refine_spectrum_weight "
     "are 0"),
    (lambda t: t["m1"].update(refine_at=4, refine_count_weight=1.0, refine_losses_at=4),
     "m1.refine_losses_at: expected a multiple of train.checkpoint_every 2 after m1.refine_at 4"),
    (lambda t: t["m2"].update(refine_at=2, refine_count_weight=1.0, refine_losses_at=5),
     "m2.refine_losses_at: expected a multiple of train.checkpoint_every 2 after m2.refine_at 2"),
    (lambda t: t["m3"].update(refine_losses_at=4), "m3.refine_losses_at: not a key of [m3]"),
    (lambda t: t["m1"].update(monitor_boxes=1), "m1.monitor_boxes: expected 0 (the held-out cubes) or at least 2"),
    (lambda t: (t.update(data={"dir": "cubes", "box_size": 64.0}), t["m3"].update(monitor_boxes=4)),
     "m3.monitor_boxes: fresh monitor boxes are simulated; give a [data.simulation] or set m3.monitor_boxes = 0"),
    (lambda t: t["m1"].update(spectrum_weight=-1.0), "m1.spectrum_weight: expected a loss weight >= 0"),
    (lambda t: t["train"].update(generator_learning_rate=float("nan")), "train.generator_learning_rate: "
                                                                         "expected a finite number"),
    (lambda t: t["transform"].update(c=float("inf")), "transform.c: expected a finite number"),
    (lambda t: t["sample"].update(max_batch=0), "sample.max_batch: expected > 0"),
    (lambda t: t["pyramid"].update(patch=0), "pyramid.patch: expected > 0"),
    (lambda t: t["pyramid"].update(patch=-4), "pyramid.patch: expected > 0"),
    (lambda t: t["pyramid"].update(sizes=[0, 8, 4]), "pyramid.sizes[0]: expected > 0"),
    (lambda t: t["m3"].update(latent_dim=0), "m3.latent_dim: expected > 0"),
    (lambda t: t["m3"].update(generator_strides=[4, -1]), "m3.generator_strides[1]: expected > 0"),
    (lambda t: t["m2"].update(generator_filters=[4, 0, 1]), "m2.generator_filters[1]: expected > 0"),
    (lambda t: t["m1"].update(kernel_sizes=[]), "m1.kernel_sizes: expected at least one value"),
    (lambda t: t["mu"].update(critic_dense=[-8]), "mu.critic_dense[0]: expected > 0"),
    (lambda t: t["data"]["simulation"].update(boxes=0), "data.simulation.boxes: expected > 0"),
    (lambda t: t["data"]["simulation"].update(box_size=-64.0), "data.simulation.box_size"),
    (lambda t: t.update(data={"dir": "cubes", "box_size": -5.0}), "data.box_size: expected > 0"),
    (lambda t: t["data"].update(held_out=-1), "data.held_out: expected >= 0"),
    (lambda t: t.update(demo={"m3_latent_scales": [1.0, 0.0]}), "demo.m3_latent_scales: expected distinct numbers > 0"),
    (lambda t: t.update(demo={"m3_latent_scales": [1.1, 1.1]}), "demo.m3_latent_scales: expected distinct numbers > 0"),
])
def test_senseless_values_are_refused_in_one_line_naming_the_key(mutate, message):
    table = _table()
    mutate(table)
    with pytest.raises(InputError) as info:
        parse_config(table)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_a_nan_in_the_toml_file_is_refused_by_key(tmp_path):
    text = (ROOT / "configs" / "tiny.toml").read_text().replace("gp_weight = 10.0", "gp_weight = nan")
    (tmp_path / "tiny.toml").write_text(text)
    with pytest.raises(InputError, match=r"^train\.gp_weight: expected a finite number"):
        load_config(tmp_path / "tiny.toml")


def test_held_out_zero_is_a_config_without_evaluation():
    table = _table()
    table["data"]["held_out"] = 0
    assert parse_config(table).data.held_out == 0
