"""Presets: trained chains shipped in the repository, named so a user samples without training.

A preset is a directory `checkpoints/presets/<name>/` holding one run
directory per model (`m3`, `m2`, `m1`, and `mu` for the comparison) and a
`manifest.json`:

    {"name", "description", "config" (path relative to the project root),
     "command" (what reproduces it), "chain" (run names, coarsest first),
     "runs": {run name: {"scale", "steps", "train_seconds"}},
     "scores": {statistic: median |fractional error|, ...} with the setup they were measured on,
     "size_bytes"}

A preset's runs were trained elsewhere; the data paths of their configs
resolve against this checkout's project root (the directory holding
`checkpoints/`), not the root recorded at training time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from nbgan_app.errors import InputError

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PRESETS = PROJECT_ROOT / "checkpoints" / "presets"
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Preset:
    name: str
    path: Path
    manifest: dict

    @property
    def chain(self) -> list[Path]:
        """The run directories of the chain, coarsest first."""
        return [self.path / run for run in self.manifest["chain"]]

    def run(self, name: str) -> Path:
        if name not in self.manifest.get("runs", {}):
            raise InputError(f"preset {self.name} has no run {name!r} (has: {', '.join(self.manifest['runs'])})")
        return self.path / name


def list_presets(root: Path = PRESETS) -> list[Preset]:
    """Every preset with a readable manifest, by name."""
    if not root.is_dir():
        return []
    found = []
    for path in sorted(p for p in root.iterdir() if (p / MANIFEST).is_file()):
        try:
            manifest = json.loads((path / MANIFEST).read_text())
        except (OSError, json.JSONDecodeError):
            continue
        found.append(Preset(path.name, path, manifest))
    return found


def get_preset(name: str, root: Path = PRESETS) -> Preset | None:
    return next((p for p in list_presets(root) if p.name == name), None)


def resolve_chain(text: str, root: Path = PRESETS) -> list[Path]:
    """`--chain` as run directories: a preset name, or run directories separated by commas.

    An existing directory of that name wins over a preset, so a local run is never shadowed.
    """
    paths = [p for p in text.split(",") if p]
    if len(paths) == 1 and not Path(paths[0]).exists():
        preset = get_preset(paths[0], root)
        if preset is not None:
            return preset.chain
    if not paths:
        names = ", ".join(p.name for p in list_presets(root)) or "none shipped"
        raise InputError(f"--chain: expected a preset name ({names}) or run directories separated by "
                         f"commas. Received: {text!r}")
    return [Path(p) for p in paths]


def preset_root_for(run_dir: Path, root: Path | None = None) -> Path | None:
    """The project root a preset run's data paths resolve against, or None for an ordinary run."""
    root = root or PRESETS
    try:
        Path(run_dir).resolve().relative_to(root.resolve())
    except ValueError:
        return None
    return PROJECT_ROOT


SKIPPED = ("samples", "lock")  # a run's monitor samples and lock are not shipped (.gitignore)


def directory_size(path: Path) -> int:
    """Bytes of the files a preset ships under `path` (not its runs' monitor samples or locks)."""
    path = Path(path)
    return sum(p.stat().st_size for p in path.rglob("*")
               if p.is_file() and not set(p.relative_to(path).parts) & set(SKIPPED))


def format_presets(presets: list[Preset]) -> str:
    """One block per preset: name, chain, steps and training time per run, scores against the floor."""
    if not presets:
        return f"no presets in {PRESETS}"
    lines = []
    for preset in presets:
        m = preset.manifest
        lines.append(f"{preset.name}: {m.get('description', '')}")
        runs = m.get("runs", {})
        chain = " -> ".join(_run(name, runs[name]) for name in m.get("chain", []) if name in runs)
        lines.append(f"  chain   {chain}")
        others = ", ".join(_run(name, run) for name, run in runs.items() if name not in m.get("chain", []))
        if others:
            lines.append(f"  also    {others}")
        scores = m.get("scores", {})
        width = max([len(row["name"]) for row in scores.get("rows", [])] + [0]) + 2
        for row in scores.get("rows", []):
            values = "  ".join(f"{stat} {row[stat]:.3f}" for stat in ("psd", "mass_hist", "peak_hist")
                               if stat in row)
            lines.append(f"  {row['name']:<{width}}{values}")
        if scores.get("setup"):
            lines.append(f"  ({scores['setup']})")
        lines.append(f"  size    {m.get('size_bytes', 0) / 2**20:.1f} MiB; reproduce: {m.get('command', '?')}")
    return "\n".join(lines)


def _run(name: str, run: dict) -> str:
    """`m1 (3163 steps, samples step 1500, 21 min)`: a run of a preset's manifest."""
    return f"{name} ({_steps(run)}, {run['train_seconds'] / 60:.0f} min)"


def _steps(run: dict) -> str:
    """`3163 steps`, the step sampled from where it is not the last (`nbgan_app.best`), and the latent
    scale it is sampled at where it is not 1 (`nbgan_app.latent_scale`)."""
    sampled = run.get("sampled_step", run["steps"])
    scale = run.get("latent_scale", 1.0)
    return (f"{run['steps']} steps" + (f", samples step {sampled}" if sampled != run["steps"] else "")
            + (f" at latent scale {scale:g}" if scale != 1.0 else ""))


def write_manifest(preset_dir: Path, *, description: str, config: str, command: str, chain: list[str],
                   scores: dict) -> dict:
    """Record a preset's runs (scale, steps, the step sampled from and its latent scale, training time
    from their metrics) and scores in manifest.json."""
    from nbgan_app import best, checkpoints, rundir
    from nbgan_app.latent_scale import scale_for
    from nbgan_app.outputs import atomic_file

    preset_dir = Path(preset_dir)
    runs = {}
    for path in sorted(p for p in preset_dir.iterdir() if (p / rundir.CONFIG).is_file()):
        saved = rundir.read_json(path / rundir.CONFIG)
        latest = checkpoints.latest_checkpoint(path)
        records = rundir.read_metrics(path)
        chosen = best.read_best(path)
        steps = latest[0] if latest else 0
        sampled = chosen[0] if chosen else steps
        runs[path.name] = {"scale": saved["run"]["scale"], "steps": steps, "sampled_step": sampled,
                           "latent_scale": scale_for(path, sampled),
                           "train_seconds": rundir.training_seconds(records)}
    missing = [name for name in chain if name not in runs]
    if missing:
        raise InputError(f"preset {preset_dir}: no run directory {missing[0]!r} for its chain")
    manifest = {"name": preset_dir.name, "description": description, "config": config, "command": command,
                "chain": chain, "runs": runs, "scores": scores}
    manifest["size_bytes"] = directory_size(preset_dir)
    with atomic_file(preset_dir / MANIFEST, overwrite=True) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest

