"""Shared fixtures: the tiny config, with its real (jaxpm) data cached once per session."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # as the CLI: cuInit errors would be stray stderr lines
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest  # noqa: E402

import nbgan_app  # noqa: E402,F401 - sets TensorFlow's oneDNN switch before any test loads TensorFlow

ROOT = Path(__file__).resolve().parents[1]


def config_named(name: str):
    """configs/<name>.toml as shipped (its simulation cache as written there)."""
    from nbgan_app.config import load_config

    return load_config(ROOT / "configs" / f"{name}.toml")


@pytest.fixture(scope="session")
def tiny_config(tmp_path_factory):
    """configs/tiny.toml with its simulation cache in a per-session directory."""
    from nbgan_app.config import load_config

    config = load_config(ROOT / "configs" / "tiny.toml")
    cache = tmp_path_factory.mktemp("tiny-sim")
    sim = dataclasses.replace(config.data.simulation, cache=str(cache))
    return dataclasses.replace(config, data=dataclasses.replace(config.data, simulation=sim))


@pytest.fixture
def tiny_toml(tiny_config, tiny_cubes, tmp_path):
    """configs/tiny.toml pointing at the session's simulated cubes."""
    text = (ROOT / "configs" / "tiny.toml").read_text()
    text = text.replace('cache = "data/tiny-sim"', f'cache = "{tiny_config.data.simulation.cache}"')
    path = tmp_path / "tiny.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="session")
def tiny_cubes(tiny_config):
    """The tiny config's count cubes, (N, 16, 16, 16) float32, made by a real PM simulation."""
    from nbgan_app.dataset import load_dataset

    counts, _box_size = load_dataset(tiny_config)
    return counts


@pytest.fixture(scope="session")
def tiny_runs(tiny_config, tiny_cubes, tmp_path_factory):
    """Tiny runs of every scale trained for 2 steps: {"3": path, "2": ..., "1": ..., "uni": ...}."""
    from nbgan_app.training import train

    root = tmp_path_factory.mktemp("tiny-runs")
    runs = {}
    for scale in ("3", "2", "1", "uni"):
        runs[scale] = root / f"tiny-{scale}"
        train(tiny_config, scale, runs[scale], steps=2, progress=False)
    return runs
