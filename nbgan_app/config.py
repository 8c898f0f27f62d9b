"""Run settings: frozen dataclasses loaded from TOML by a strict loader.

Architecture settings become constructor arguments of the models (so a saved
model carries them); everything else a run needs (data, transform, pyramid,
training and sampling settings) lives here. An unknown key, a wrong type or
inconsistent sizes raise `InputError` naming the key.

Sizes are in voxels, box sizes in Mpc/h. Scales follow the thesis: level 1 is
the full-resolution cube I1 (`pyramid.sizes[0]` per side), level 3 the
coarsest I3 (`pyramid.sizes[-1]`). M3 makes I3 whole; M2 and M1 up-scale
patch by patch; Mu is the uni-scale baseline at level 1 (`nbgan_app.scales`).

Each model section takes only its own keys: [m3] a `CubeModelConfig`, [m2]
and [m1] an `UpscalerConfig`, [mu] a `PatchModelConfig`; a key of another
section is refused by name rather than ignored.

Values are checked for sense as well as type: every float must be finite
(TOML has nan and inf), sizes, counts, filters, strides, learning rates and
the penalty weight positive, seeds non-negative. The in-training evaluation
scores against the held-out cubes, and a score compares at least 2 real
cubes with at least 2 samples: `train.eval_samples` is at least 2, and
`data.held_out = 0` turns the evaluation off.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

from nbgan_app import scales
from nbgan_app.errors import InputError
from nbgan_app.scales import Scale

ARCHITECTURES = ("dcgan", "inception", "inception_residual")


@dataclass(frozen=True)
class SimulationConfig:
    """A particle-mesh simulation suite (jaxpm), LambdaCDM at z = 0."""

    cache: str  # directory the count cubes are written to (relative to the config's project root)
    boxes: int = 8
    particles: int = 64  # particles per side
    mesh: int = 64  # PM mesh cells per side
    grid: int = 64  # count-cube cells per side
    box_size: float = 100.0  # Mpc/h
    steps: int = 20  # kick-drift-kick steps from a = a_start to a = 1
    a_start: float = 0.1
    seed: int = 0  # box i uses seed + i
    omega_m: float = 0.276
    sigma8: float = 0.811
    h: float = 0.7
    n_s: float = 0.961
    omega_b: float = 0.046


@dataclass(frozen=True)
class DataConfig:
    """Where the cubes come from: a directory of cube files, or a simulation."""

    dir: str | None = None
    box_size: float | None = None  # Mpc/h; wins over the files' attribute (the 3Dcosmo files carry none)
    # the last cubes (sorted order) are kept for evaluation only; 0: no evaluation (a score needs 2)
    held_out: int = 2
    simulation: SimulationConfig | None = None

    def declared_box_size(self) -> float | None:
        """The box side in Mpc/h the config states for its full-resolution cubes, or None.

        A simulation's own `box_size` wins: it is the box its cubes were made in
        (and the attribute they carry), so a stray `data.box_size` beside it
        cannot relabel them. Otherwise `data.box_size`; None leaves it to the
        files' attribute. Training, sampling and the dashboard all ask here.
        """
        if self.simulation is not None:
            return self.simulation.box_size
        return self.box_size


@dataclass(frozen=True)
class TransformConfig:
    """Point-wise count transform: thesis eqs. 4.1-4.4, or the released variant."""

    kind: str = "thesis"  # "thesis" | "released"
    c: float = 8000.0
    scale: float = 6.0


@dataclass(frozen=True)
class PyramidConfig:
    """Cube sides per level, finest first (I1, I2, I3), and the patch side of M2/M1/Mu."""

    sizes: tuple[int, ...] = (256, 64, 32)
    patch: int = 32
    # How a coarse voxel is made from its fine block: "transformed" (the released code: the mean of
    # the transformed values) or "counts" (the transform of the mean count, which conserves mass)
    mean: str = "transformed"


@dataclass(frozen=True)
class ModelConfig:
    """Architecture keys every scale has: its generator's and critic's (they become constructor arguments)."""

    architecture: str = "inception"  # "dcgan" | "inception" | "inception_residual"
    generator_filters: tuple[int, ...] = (64, 64, 64, 64, 64, 64, 64, 1)
    critic_filters: tuple[int, ...] = (64, 64, 32, 16, 8, 2)
    critic_strides: tuple[int, ...] = (2, 2, 2, 1, 1, 1)
    critic_dense: tuple[int, ...] = (64, 16)
    kernel_sizes: tuple[int, ...] = (1, 3, 5)
    output_activation: str = "relu"
    # Tukey's h of the generator's view of its latent (models/latent.py): 0 = Gaussian (the thesis); more
    # stretches the tails, for the dense cells every shipped model makes too few of (docs/quality.md)
    latent_tail: float = 0.0


@dataclass(frozen=True)
class CubeModelConfig(ModelConfig):
    """[m3]: a whole-cube generator, latent -> dense -> reshape -> transposed convolutions."""

    generator_strides: tuple[int, ...] = ()  # transposed-conv strides
    latent_dim: int = 100
    dense_units: int = 64  # width after the first dense layer
    initial_size: int = 2  # side of the reshaped dense output, in voxels


@dataclass(frozen=True)
class PatchModelConfig(ModelConfig):
    """[mu]: a patch generator without a coarse condition (stride-1 convolutions, patch in, patch out)."""

    # Cells of neighbour context the critic sees beside the target patch, on each axis's low side:
    # its input is the window's last (patch + margin)^d block. 0 = the whole window (margin = patch).
    # 7/8 of a whole window is context that real and fake windows share.
    critic_margin: int = 0
    # Particles per unit of a count channel the critic sees beside the transformed window (counts /
    # unit); 0 = none. The transform compresses dense cells, so without it a generator can invent
    # cells of thousands of particles at little cost to its critic (docs/quality.md).
    critic_count_unit: float = 0.0
    # The critic's dense layers also see the log power spectrum of the target patch (transformed
    # values, shells of the patch's fundamental; models/spectrum.py), as the released code's did
    critic_spectrum: bool = False
    # Level-1 generators (m1, mu) only: round the output to whole particles inside the model, in
    # training as in sampling, with the gradient straight through (models/whole.py). It made M1 worse
    # on both up-scalers (docs/quality.md) and stays for the ablation
    whole_particles: bool = False
    # Half-width in cells of the binomial kernel that smooths the latent channel inside the generator,
    # each voxel kept N(0, 1) (models/latent.py); 0 = white noise, one draw per voxel (the thesis).
    # The residual M1 came apart sooner with it; the count split's peaks improved (docs/quality.md)
    latent_smoothing: int = 0
    # the most particles an output voxel may hold, in training as in sampling (models/ceiling.py); 0 = no
    # cap. The training suite's densest cell: a residual up-scaler otherwise may write cells hundreds of
    # times denser than their block, whose white power a monitor of a few cubes can miss (docs/quality.md)
    max_count: float = 0.0


@dataclass(frozen=True)
class UpscalerConfig(PatchModelConfig):
    """[m2], [m1]: a patch generator conditioned on the coarser level."""

    # "direct" (the thesis: the network's output is the patch), "residual" (up-sampled condition +
    # a block-mean-free bounded residual) or "split" (each coarse voxel's particles split among its
    # fine voxels; needs pyramid.mean = "counts"); models/residual.py
    upscaler: str = "direct"
    # |r| bound of the residual, in transformed units; 0 = the transform of c (the end of its
    # logarithmic range). A bound near the data's own largest |r| keeps the generator from
    # inventing over-dense cells the data never has (docs/quality.md)
    residual_bound: float = 0.0
    # the residual or split starts from the condition interpolated linearly between coarse voxels
    # (block means kept) instead of copied into each block: a copy lacks power well below the coarse
    # Nyquist frequency (models/residual.py). The residual M1 came apart with it; the count split's
    # mass and peaks improved (docs/quality.md)
    interpolate_condition: bool = False
    # weight of a generator loss on the particles of a batch's target patches against those of the real
    # patches whose conditions they share (squared log ratio, gan/wgan_gp.py); 0 = none. The transformed-space
    # pyramid pins a block's transformed mean, not its particles, and the residual M1 drifted to
    # x1.06-1.2 of the boxes' particles after its best steps (docs/quality.md)
    count_weight: float = 0.0


@dataclass(frozen=True)
class TrainConfig:
    """WGAN-GP optimisation and logging."""

    steps: int = 1000  # generator steps
    batch_size: int = 8
    num_critic_steps: int = 5
    gp_weight: float = 10.0
    optimizer: str = "rmsprop"
    generator_learning_rate: float = 3e-5
    critic_learning_rate: float = 3e-5
    seed: int = 0
    log_every: int = 10
    eval_every: int = 200
    # cubes the monitor generates per evaluation: M3 and Mu draw this many, an up-scaler one per
    # held-out cube at most (it up-scales their coarser level)
    eval_samples: int = 4
    # an evaluation whose generated mean count is off the monitor cubes' by more than this fraction never
    # becomes the run's best (0: no guard); the monitor error alone barely sees a generator adding particles
    # (the demo's M1 scored best at x1.06, docs/quality.md)
    best_count_tolerance: float = 0.03
    checkpoint_every: int = 100
    # momentum of an exponential moving average of the generator's weights, which checkpoints
    # save for sampling and evaluation (0: off, the raw weights)
    generator_ema: float = 0.0
    # both learning rates fall linearly from their values to 0 at this generator step (0: constant);
    # a generator that drifts after its best steps takes ever smaller steps instead. The shipped M1
    # recipe came apart sooner with it (docs/quality.md)
    decay_steps: int = 0
    precision: str = "float32"  # "float32" | "mixed_bfloat16" | "mixed_float16"
    jit_compile: str = "auto"  # "auto" | "on" | "off"


@dataclass(frozen=True)
class SampleConfig:
    order: str = "wavefront"  # "wavefront" | "raster"
    max_batch: int = 64  # most patches per generator call
    # level-1 voxels as "whole" particles (rounded at random, mean kept) or "expected" counts (fractions)
    counts: str = "whole"


@dataclass(frozen=True)
class DemoConfig:
    """`nbgan demo`: generator steps per scale of `--train`, fresh test boxes and generated cubes per
    row of its quality table (`samples`, at least 4 for the floor), where it all goes."""

    steps_m3: int = 600
    steps_m2: int = 400
    steps_m1: int = 400
    steps_mu: int = 400
    samples: int = 6
    out: str = "checkpoints/demo"

    def steps_of(self, scale: str | Scale) -> int:
        """The generator steps of a scale (M3, M2, M1, or Mu, the uni-scale model it is compared with)."""
        section = scales.scale(scale).section
        return {"m3": self.steps_m3, "m2": self.steps_m2, "m1": self.steps_m1, "mu": self.steps_mu}[section]


@dataclass(frozen=True)
class Config:
    data: DataConfig
    transform: TransformConfig = field(default_factory=TransformConfig)
    pyramid: PyramidConfig = field(default_factory=PyramidConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    demo: DemoConfig = field(default_factory=DemoConfig)
    m3: CubeModelConfig = field(default_factory=CubeModelConfig)
    m2: UpscalerConfig = field(default_factory=UpscalerConfig)
    m1: UpscalerConfig = field(default_factory=UpscalerConfig)
    mu: PatchModelConfig = field(default_factory=PatchModelConfig)
    root: str = "."  # directory relative paths resolve against (not read from TOML)
    source: str = ""  # the TOML file it was loaded from (not read from TOML)

    def model(self, scale: str | Scale) -> ModelConfig:
        """The architecture section of a scale (a name "3", "2", "1", "uni" or a Scale)."""
        return getattr(self, scales.scale(scale).section)

    def level_size(self, scale: str | Scale) -> int:
        """Voxels per side of the level the scale's model produces (`Scale.side` of this pyramid)."""
        return scales.scale(scale).side(self.pyramid)

    def factor(self, scale: str | Scale) -> int | None:
        """The scale's side over its conditioning level's side; None for M3 and Mu (`Scale.factor`)."""
        return scales.scale(scale).factor(self.pyramid)

    def resolve(self, path: str) -> Path:
        return (Path(self.root) / path).resolve()


# the class of each model section (from Config's fields); a key that is not its class's is refused by name
SECTION_MODELS = {s.section: typing.get_type_hints(Config)[s.section] for s in scales.ALL}
_NOT_IN_TOML = ("root", "source")


def _type_name(tp) -> str:
    return getattr(tp, "__name__", str(tp))


def _convert(value, tp, key: str):
    """Convert a TOML value to the annotated type, or raise InputError naming `key`."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        return _convert(value, options[0], key)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise InputError(f"{key}: expected a table. Received: {value!r}")
        return _build(tp, value, key + ".")
    if origin is tuple:
        (item_type, _) = typing.get_args(tp)
        if not isinstance(value, list):
            raise InputError(f"{key}: expected a list of {_type_name(item_type)}. Received: {value!r}")
        return tuple(_convert(v, item_type, f"{key}[{i}]") for i, v in enumerate(value))
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if tp in (int, float, str, bool) and (type(value) is not tp):
        raise InputError(f"{key}: expected {tp.__name__}. Received: {value!r}")
    if tp is float and not math.isfinite(value):
        raise InputError(f"{key}: expected a finite number. Received: {value!r}")
    return value


def _field_names(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


_ALL_MODEL_KEYS = set().union(*(_field_names(cls) for cls in SECTION_MODELS.values()))


def _refuse_other_sections_keys(cls, table: dict, prefix: str) -> None:
    """InputError naming the first key of `table` that is another model section's, not `cls`'s."""
    for key in sorted(set(table) - _field_names(cls)):
        owners = [scales.of_section(section).title for section, owner in SECTION_MODELS.items()
                  if key in _field_names(owner)]
        if owners:
            raise InputError(f"{prefix}{key}: not a key of [{prefix.rstrip('.')}] ({' and '.join(owners)} only)")


def _build(cls, table: dict, prefix: str = ""):
    if issubclass(cls, ModelConfig):
        _refuse_other_sections_keys(cls, table, prefix)
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.name not in _NOT_IN_TOML}
    unknown = sorted(set(table) - names)
    if unknown:
        raise InputError(f"unknown config key {prefix}{unknown[0]} (known: {', '.join(sorted(names))})")
    kwargs = {k: _convert(v, hints[k], prefix + k) for k, v in table.items()}
    try:
        return cls(**kwargs)
    except TypeError:
        missing = [f.name for f in dataclasses.fields(cls)
                   if f.name not in kwargs and f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING]
        raise InputError(f"missing config key {prefix}{missing[0]}") from None


def _check_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise InputError(f"{key}: expected one of {', '.join(choices)}. Received: {value!r}")


def _positive(key: str, value) -> None:
    if not value > 0:
        raise InputError(f"{key}: expected > 0. Received: {value}")


def _all_positive(key: str, values: tuple, allow_empty: bool = True) -> None:
    if not values and not allow_empty:
        raise InputError(f"{key}: expected at least one value. Received: []")
    for i, value in enumerate(values):
        if not value > 0:
            raise InputError(f"{key}[{i}]: expected > 0. Received: {value}")


def _check_evaluation(config: Config) -> None:
    """The in-training evaluation's counts: a score compares >= 2 real with >= 2 generated cubes."""
    if config.train.eval_samples < 2:
        raise InputError(f"train.eval_samples: expected >= 2 (a score compares at least 2 samples). "
                         f"Received: {config.train.eval_samples}")


def _check_models(config: Config) -> None:
    for scale in scales.ALL:
        name, model = scale.section, config.model(scale)
        _check_choice(f"{name}.architecture", model.architecture, ARCHITECTURES)
        _all_positive(f"{name}.generator_filters", model.generator_filters, allow_empty=False)
        _all_positive(f"{name}.kernel_sizes", model.kernel_sizes, allow_empty=False)
        for key in ("critic_filters", "critic_strides", "critic_dense"):
            _all_positive(f"{name}.{key}", getattr(model, key))
        if len(model.critic_filters) != len(model.critic_strides):
            raise InputError(f"{name}.critic_filters and {name}.critic_strides differ in length")
        if not scale.whole_cube and not 0 <= model.critic_margin <= config.pyramid.patch:
            raise InputError(f"{name}.critic_margin: expected 0 to the patch side {config.pyramid.patch} "
                             f"(0 = the whole window). Received: {model.critic_margin}")
        if not scale.whole_cube and model.critic_count_unit < 0:
            raise InputError(f"{name}.critic_count_unit: expected particles per unit > 0, or 0 for no count "
                             f"channel. Received: {model.critic_count_unit}")
        if not 0 <= model.latent_tail < 0.5:
            raise InputError(f"{name}.latent_tail: expected Tukey's h in [0, 0.5) (0: a Gaussian latent; the "
                             f"variance is infinite from 0.5). Received: {model.latent_tail}")
        if not scale.whole_cube and not 0 <= 2 * model.latent_smoothing < config.pyramid.patch:
            raise InputError(f"{name}.latent_smoothing: expected a half-width in cells from 0 (none) to below "
                             f"half the patch side {config.pyramid.patch}. Received: {model.latent_smoothing}")
        if not scale.whole_cube and model.max_count < 0:
            raise InputError(f"{name}.max_count: expected the most particles a voxel may hold, > 0, or 0 for "
                             f"no cap. Received: {model.max_count}")
        if not scale.whole_cube and model.whole_particles and scale.level != 1:
            raise InputError(f"{name}.whole_particles rounds level 1 to whole particles; {scale.title} makes "
                             f"level {scale.level}, whose voxels hold block means")
        if scale.conditional:
            _check_choice(f"{name}.upscaler", model.upscaler, ("direct", "residual", "split"))
            if model.residual_bound < 0:
                raise InputError(f"{name}.residual_bound: expected a bound >= 0 in transformed units "
                                 f"(0 = the transform of c). Received: {model.residual_bound}")
            if model.count_weight < 0:
                raise InputError(f"{name}.count_weight: expected a loss weight >= 0 (0 = no count loss). "
                                 f"Received: {model.count_weight}")
            if model.residual_bound and model.upscaler == "direct":
                raise InputError(f"{name}.residual_bound bounds the residual up-scaler's output; "
                                 f"{name}.upscaler is {model.upscaler!r}")
            if model.interpolate_condition and model.upscaler == "direct":
                raise InputError(f"{name}.interpolate_condition sets where the residual or split up-scaler "
                                 f"starts; {name}.upscaler is {model.upscaler!r}")
            if model.upscaler == "split" and config.pyramid.mean != "counts":
                raise InputError(f"{name}.upscaler = \"split\" conserves counts, so it needs pyramid.mean = "
                                 f"\"counts\" (pyramid.mean is {config.pyramid.mean!r})")
    m3 = config.m3
    for key in ("latent_dim", "dense_units", "initial_size"):
        _positive(f"m3.{key}", getattr(m3, key))
    _all_positive("m3.generator_strides", m3.generator_strides)
    if len(m3.generator_strides) != len(m3.generator_filters):
        raise InputError("m3.generator_strides and m3.generator_filters differ in length")
    side = m3.initial_size
    for s in m3.generator_strides:
        side *= s
    if side != config.pyramid.sizes[-1]:
        raise InputError(f"m3.generator_strides: initial_size {m3.initial_size} times the strides gives "
                         f"{side}, not pyramid.sizes[-1] {config.pyramid.sizes[-1]}")


def _check_train(train: TrainConfig) -> None:
    _check_choice("train.precision", train.precision, ("float32", "mixed_bfloat16", "mixed_float16"))
    _check_choice("train.jit_compile", train.jit_compile, ("auto", "on", "off"))
    _check_choice("train.optimizer", train.optimizer, ("rmsprop", "adam"))
    if not 0.0 <= train.generator_ema < 1.0:
        raise InputError(f"train.generator_ema: expected a momentum in [0, 1). Received: {train.generator_ema}")
    for key in ("steps", "batch_size", "num_critic_steps", "log_every", "eval_every", "checkpoint_every",
                "generator_learning_rate", "critic_learning_rate", "gp_weight"):
        _positive(f"train.{key}", getattr(train, key))
    if train.seed < 0:
        raise InputError(f"train.seed: expected >= 0. Received: {train.seed}")
    if not train.best_count_tolerance >= 0:
        raise InputError(f"train.best_count_tolerance: expected a fraction >= 0 (0: no guard). "
                         f"Received: {train.best_count_tolerance}")
    if train.decay_steps < 0:
        raise InputError(f"train.decay_steps: expected generator steps to decay over, or 0 for constant "
                         f"learning rates. Received: {train.decay_steps}")
    for key in ("eval_every", "checkpoint_every"):
        # logged losses are means over log intervals; these must fall on their boundaries
        if getattr(train, key) % train.log_every:
            raise InputError(f"train.{key}: {getattr(train, key)} is not a multiple of train.log_every "
                             f"{train.log_every}")


def validate(config: Config, saved: bool = False) -> Config:
    """Check values and cross-field consistency; raise InputError naming the first bad key.

    `saved`: the config a run directory recorded. It skips the evaluation
    counts (`data.held_out`, `train.eval_samples`), which only a new training
    run needs, so a run trained before those rules can still be sampled.
    """
    data, pyr = config.data, config.pyramid
    if (data.dir is None) == (data.simulation is None):
        raise InputError("data: give exactly one of data.dir and [data.simulation]")
    if data.held_out < 0:
        raise InputError(f"data.held_out: expected >= 0. Received: {data.held_out}")
    if data.box_size is not None:
        _positive("data.box_size", data.box_size)
    if data.simulation is not None:
        from nbgan_app.simulate import check_simulation  # here: simulate imports this module

        try:
            check_simulation(data.simulation)
        except InputError as exc:  # its keys are `simulation.<key>`, the [data.simulation] table's
            raise InputError(f"data.{exc}") from None
    _check_choice("transform.kind", config.transform.kind, ("thesis", "released"))
    if config.transform.c <= 0 or config.transform.scale <= 0:
        raise InputError("transform.c and transform.scale must be positive")
    sizes = pyr.sizes
    if len(sizes) != 3:
        raise InputError(f"pyramid.sizes: expected 3 sides (I1, I2, I3). Received: {list(sizes)}")
    _all_positive("pyramid.sizes", sizes)
    _positive("pyramid.patch", pyr.patch)
    _check_choice("pyramid.mean", pyr.mean, ("transformed", "counts"))
    for fine, coarse in zip(sizes, sizes[1:]):
        if fine % coarse or fine <= coarse:
            raise InputError(f"pyramid.sizes: {coarse} must divide {fine} and be smaller")
    for side in sizes[:2]:
        if side % pyr.patch:
            raise InputError(f"pyramid.patch: {pyr.patch} does not divide the level side {side}")
    for scale in scales.UPSCALERS:
        if pyr.patch % scale.factor(pyr):
            raise InputError(f"pyramid.patch: {pyr.patch} is not divisible by the scale-{scale} "
                             f"down-scaling factor {scale.factor(pyr)}")
    if data.simulation is not None and data.simulation.grid != sizes[0]:
        raise InputError(f"data.simulation.grid: {data.simulation.grid} differs from pyramid.sizes[0] {sizes[0]}")
    _check_models(config)
    _check_train(config.train)
    if not saved:
        _check_evaluation(config)
    _check_choice("sample.order", config.sample.order, ("wavefront", "raster"))
    _check_choice("sample.counts", config.sample.counts, ("whole", "expected"))
    _positive("sample.max_batch", config.sample.max_batch)
    for key in ("steps_m3", "steps_m2", "steps_m1", "steps_mu", "samples"):
        if getattr(config.demo, key) <= 0:
            raise InputError(f"demo.{key}: expected > 0. Received: {getattr(config.demo, key)}")
    return config


def parse_config(table: dict, root: str | Path = ".", source: str | Path = "", saved: bool = False) -> Config:
    """A config table (TOML's, or with `saved` a run directory's: see `validate`) as a checked Config."""
    config = _build(Config, table)
    return validate(dataclasses.replace(config, root=str(root), source=str(source)), saved=saved)


def parse_saved_config(table: dict, root: str | Path = ".", source: str | Path = "") -> Config:
    """A run directory's saved config (config.json's "config"), read as `parse_config` reads TOML,
    except that model keys of another section are dropped.

    Run directories made before each section took only its own keys hold every
    model key under every section (e.g. m2.latent_dim); there only the
    section's own ones ever took effect, so dropping the rest loses nothing.
    Unknown keys are still refused; the evaluation counts a new run needs are
    not checked (`validate`).
    """
    table = dict(table)
    for section, cls in SECTION_MODELS.items():
        if isinstance(table.get(section), dict):
            foreign = _ALL_MODEL_KEYS - _field_names(cls)
            table[section] = {k: v for k, v in table[section].items() if k not in foreign}
    return parse_config(table, root, source, saved=True)


def read_toml(path: str | Path, what: str = "config file") -> dict:
    """The table of a TOML file; InputError naming the file when it is missing or not TOML."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{what} {path} is a directory; expected a TOML file")
    if not path.is_file():
        raise InputError(f"no such {what}: {path}")
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not valid TOML: {exc}") from None


def project_root(config_path: str | Path) -> Path:
    """The directory a config file's relative paths resolve against (absolute).

    The parent of its directory when the file sits in a `configs/` directory
    (configs/demo.toml -> the repository), else the file's own directory.
    """
    parent = Path(config_path).resolve().parent
    return parent.parent if parent.name == "configs" else parent


def merge_tables(base: dict, top: dict) -> dict:
    """`base` with `top`'s keys put in, table by table: a key `top` names replaces base's value, and
    a table in both is merged the same way (so `[m1] upscaler = "split"` keeps [m1]'s other keys)."""
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            value = merge_tables(merged[key], value)
        merged[key] = value
    return merged


def read_config_table(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict:
    """A config file's table, with its `base` (another config file, relative to this one's directory)
    read first and this file's keys merged over it (`merge_tables`); a base may have a base."""
    path = Path(path)
    table = read_toml(path, "config file" if not _seen else f"base of {_seen[-1]}")
    base = table.pop("base", None)
    if base is None:
        return table
    if not isinstance(base, str):
        raise InputError(f"{path}: base: expected the path of a config file. Received: {base!r}")
    seen = (*_seen, path.resolve())
    base_path = (path.parent / base).resolve()
    if base_path in seen:
        raise InputError(f"{path}: base {base} leads back to a file already read (a cycle of bases)")
    return merge_tables(read_config_table(base_path, seen), table)


def load_config(path: str | Path) -> Config:
    """Load and validate a TOML config (with its `base`, if it names one: `read_config_table`);
    relative data paths resolve against `project_root(path)`."""
    path = Path(path)
    return parse_config(read_config_table(path), project_root(path), path.resolve())


def to_dict(config: Config) -> dict:
    """The config as a plain dict (tuples as lists, None dropped), for writing TOML/JSON."""
    def clean(value):
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if v is not None}
        if isinstance(value, (tuple, list)):
            return [clean(v) for v in value]
        return value
    table = clean(dataclasses.asdict(config))
    for key in _NOT_IN_TOML:
        table.pop(key, None)
    return table
