"""Presets: a name resolves to its chain, local directories win, listings show the recorded scores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nbgan_app import presets
from nbgan_app.errors import InputError


def _preset(root, name="demo", rows=()):
    path = root / name
    for run in ("m3", "m2", "m1"):
        (path / run).mkdir(parents=True)
    manifest = {"name": name, "description": "a test chain", "chain": ["m3", "m2", "m1"], "command": "x",
                "runs": {r: {"scale": r[1], "steps": 10, "train_seconds": 120.0} for r in ("m3", "m2", "m1")},
                "scores": {"setup": "8 against 8", "rows": list(rows)}, "size_bytes": 2 * 2**20}
    (path / presets.MANIFEST).write_text(json.dumps(manifest))
    return path


def test_a_name_resolves_to_its_chain_and_a_local_directory_wins(tmp_path, monkeypatch):
    root = tmp_path / "presets"
    path = _preset(root)
    assert presets.resolve_chain("demo", root) == [path / "m3", path / "m2", path / "m1"]
    assert presets.resolve_chain("a,b", root) == [Path("a"), Path("b")]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo").mkdir()  # a run directory named like the preset
    assert presets.resolve_chain("demo", root) == [Path("demo")]
    with pytest.raises(InputError, match="preset name \\(demo\\)"):
        presets.resolve_chain(",", root)


def test_a_preset_without_a_readable_manifest_is_not_listed(tmp_path):
    root = tmp_path / "presets"
    _preset(root, "good")
    (root / "broken").mkdir()
    (root / "broken" / presets.MANIFEST).write_text("{not json")
    assert [p.name for p in presets.list_presets(root)] == ["good"]
    assert presets.list_presets(tmp_path / "none") == []


def test_the_listing_shows_chain_steps_scores_and_size(tmp_path):
    root = tmp_path / "presets"
    path = _preset(root, rows=[{"name": "chain M3 -> M2 -> M1", "psd": 0.5, "mass_hist": 0.25, "peak_hist": 0.125}])
    manifest = json.loads((path / presets.MANIFEST).read_text())
    manifest["runs"]["m1"]["sampled_step"] = 6  # its best generator by monitor error (nbgan_app.best)
    manifest["runs"]["m2"]["latent_scale"] = 1.15  # chosen on validation boxes (nbgan_app.latent_scale)
    (path / presets.MANIFEST).write_text(json.dumps(manifest))
    text = presets.format_presets(presets.list_presets(root))
    assert "m3 (10 steps, 2 min)" in text and "m1 (10 steps, samples step 6, 2 min)" in text
    assert "m2 (10 steps at latent scale 1.15, 2 min)" in text
    assert "also" not in text
    manifest["runs"]["mu"] = {"scale": "uni", "steps": 8, "train_seconds": 60.0}  # outside the chain
    (path / presets.MANIFEST).write_text(json.dumps(manifest))
    assert "also    mu (8 steps, 1 min)" in presets.format_presets(presets.list_presets(root))
    assert "psd 0.500  mass_hist 0.250  peak_hist 0.125" in text
    assert "2.0 MiB" in text and "8 against 8" in text
    assert "no presets" in presets.format_presets([])


def test_the_shipped_demo_preset_is_complete():
    """What `nbgan demo` and `sample --chain demo` rely on is in the repository."""
    preset = presets.get_preset("demo")
    assert preset is not None
    for run in preset.chain + [preset.run("mu")]:  # Mu, for the comparison, beside the chain
        assert any(run.glob("checkpoints/step-*/generator.keras")), run
    assert (preset.path / "mock_spectrum.json").is_file()
    assert {row["name"] for row in preset.manifest["scores"]["rows"]} >= {"chain M3 -> M2 -> M1", "Mu (uni-scale)",
                                                                        "lognormal mock"}
    # its scores were measured at the latent scales sampling uses now (nbgan_app.latent_scale)
    from nbgan_app.latent_scale import scale_for
    from nbgan_app.sampling.runs import checkpoint_of, load_run

    for name, run in preset.manifest["runs"].items():
        step = checkpoint_of(load_run(preset.run(name)))[0]
        assert run["sampled_step"] == step
        assert run["latent_scale"] == scale_for(preset.run(name), step), name
