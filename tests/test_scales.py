"""The Scale object: what each of "3", "2", "1", "uni" is, on the shipped pyramids."""

from pathlib import Path

import pytest

from nbgan_app import scales
from nbgan_app.config import CubeModelConfig, PatchModelConfig, UpscalerConfig, load_config
from nbgan_app.errors import InputError

ROOT = Path(__file__).resolve().parents[1]

# (name, level, section, title, whole_cube, conditional, model section class)
KINDS = [
    ("3", 3, "m3", "M3", True, False, CubeModelConfig),
    ("2", 2, "m2", "M2", False, True, UpscalerConfig),
    ("1", 1, "m1", "M1", False, True, UpscalerConfig),
    ("uni", 1, "mu", "Mu", False, False, PatchModelConfig),
]
# per config: {scale name: (side in voxels, factor)}, from pyramid.sizes (I1, I2, I3)
SIDES = {
    "tiny": {"3": (4, None), "2": (8, 2), "1": (16, 2), "uni": (16, None)},  # sizes 16, 8, 4
    "demo": {"3": (16, None), "2": (32, 2), "1": (64, 2), "uni": (64, None)},  # sizes 64, 32, 16
    "paper": {"3": (32, None), "2": (64, 2), "1": (256, 4), "uni": (256, None)},  # sizes 256, 64, 32
}


@pytest.mark.parametrize("name, level, section, title, whole_cube, conditional, model_class", KINDS)
def test_each_scale_knows_what_it_is(name, level, section, title, whole_cube, conditional, model_class):
    s = scales.scale(name)
    assert (s.name, s.level, s.section, s.title) == (name, level, section, title)
    assert (s.whole_cube, s.conditional) == (whole_cube, conditional)
    assert str(s) == name and scales.of_section(section) is s and scales.title_of(name) == title
    for config_name in SIDES:
        assert isinstance(load_config(ROOT / "configs" / f"{config_name}.toml").model(s), model_class)


@pytest.mark.parametrize("config_name", sorted(SIDES))
def test_side_and_factor_follow_each_shipped_pyramid(config_name):
    config = load_config(ROOT / "configs" / f"{config_name}.toml")
    for s in scales.ALL:
        side, factor = SIDES[config_name][s.name]
        assert (s.side(config.pyramid), s.factor(config.pyramid)) == (side, factor), s
        # the Config shorthands take names and Scales alike and agree with the Scale
        assert config.level_size(s.name) == config.level_size(s) == side
        assert config.factor(s.name) == factor
        assert config.model(s.name) is getattr(config, s.section)
    # an up-scaler's factor maps its level onto the level it is conditioned on
    for s in scales.UPSCALERS:
        coarser = next(c for c in scales.CHAIN if c.level == s.level + 1)
        assert s.side(config.pyramid) == s.factor(config.pyramid) * coarser.side(config.pyramid)


def test_lookup_takes_names_and_scales_and_refuses_others():
    assert scales.scale(scales.M2) is scales.M2 and scales.scale("uni") is scales.MU
    assert scales.NAMES == ("3", "2", "1", "uni")
    assert [s.level for s in scales.CHAIN] == [3, 2, 1]
    for bad in ("4", "m3", "U", 3, None):
        with pytest.raises(InputError, match=r"Expected scale in 3, 2, 1, uni\. Received: scale="):
            scales.scale(bad)
    assert scales.title_of("?") == "?"  # a corrupt run directory's scale is shown as it is


def test_train_cli_offers_exactly_the_scales(capsys):
    from nbgan_app.cli import main

    with pytest.raises(SystemExit):
        main(["train", "--config", "x.toml", "--scale", "mu"])
    assert "choose from '3', '2', '1', 'uni'" in capsys.readouterr().err
