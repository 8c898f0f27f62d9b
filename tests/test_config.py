import dataclasses
import json
from pathlib import Path

import pytest

from nbgan_app.config import load_config, parse_config, to_dict
from nbgan_app.errors import InputError

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["paper", "demo", "tiny"])
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


def test_relative_paths_resolve_against_project_root():
    c = load_config(ROOT / "configs" / "demo.toml")
    assert c.resolve(c.data.simulation.cache) == ROOT / "data" / "demo-sim"
    assert dataclasses.is_dataclass(c) and c.model("uni") is c.mu
