"""The config's sections: one frozen dataclass per TOML table, with its defaults.

Sizes are in voxels, box sizes in Mpc/h. Scales follow the thesis: level 1 is
the full-resolution cube I1 (`pyramid.sizes[0]` per side), level 3 the
coarsest I3 (`pyramid.sizes[-1]`). M3 makes I3 whole; M2 and M1 up-scale
patch by patch; Mu is the uni-scale baseline at level 1 (`nbgan_app.scales`).

Architecture settings become constructor arguments of the models (so a saved
model carries them). Each model section has its own class: [m3] a
`CubeModelConfig`, [m2] and [m1] an `UpscalerConfig`, [mu] a
`PatchModelConfig`.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from pathlib import Path

from nbgan_app import scales
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
    """Keys every scale has: its generator's and critic's architecture (they become constructor arguments),
    and the second stage of its training."""

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
    # A second stage of training (nbgan_app/refine.py): at this generator step (0: none; a multiple of
    # train.checkpoint_every) the run goes on from its best generator so far, its critic and both
    # optimizers' moments as they are, both learning rates times `refine_rate`. Trained on at the full
    # rate, the demo's M1 came apart after its best step; from its best at a tenth of the rate it
    # improved on all three statistics (docs/quality.md)
    refine_at: int = 0
    refine_rate: float = 0.1
    # the monitor's spacing in generator steps from the switch on (0: train.eval_every). The mean-count
    # guard turns most of the demo M1's second-stage evaluations away: every 500 steps, a retrain keeps a
    # step from before its losses' start, every 100 a later one (docs/quality.md)
    refine_eval_every: int = 0
    # the monitor's cubes: 0, the suite's held-out cubes (data.held_out); N >= 2, N fresh PM boxes of the
    # config's simulation (`evaluation.monitor_cubes`). The demo's 8 held-out boxes favoured a worse M1
    # under every sampling seed; scored on 32 fresh boxes its steps ranked as the validation boxes rank
    # them (rank correlation 0.60-0.89 against 0.12, docs/quality.md)
    monitor_boxes: int = 0


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
    # weight of a generator loss on the log power spectrum of a batch's target patches' counts (shells of
    # the patch's fundamental, models/spectrum.py): the squared difference of the batch means of fake and
    # real, averaged over shells; 0 = none. Aimed at the residual M1's power, 20-30% short at 5-10 Mpc/h and
    # in excess near the grid's corner; at weight 10 it lost particles and added power above k = 1.5 h/Mpc,
    # behind the recipe by step 1500 (docs/quality.md)
    spectrum_weight: float = 0.0
    # the count and spectrum losses' weights from the second stage's switch on (`refine_at`,
    # nbgan_app/refine.py); before it, count_weight and spectrum_weight. Trained on from the demo M1's
    # best at a tenth of the rate, the spectrum loss cut its excess power near the grid's corner three- to
    # fourfold where from the first step it had not helped (docs/quality.md)
    refine_count_weight: float = 0.0
    refine_spectrum_weight: float = 0.0
    # the generator step those losses start at (0: the switch; else a checkpoint step after it). The
    # shipped demo M1 trained 1500 steps of its second stage before them (docs/quality.md)
    refine_losses_at: int = 0
    # the generator, and its critic in the target octant, also see the coarse patches of the target's
    # neighbours past its high faces, generated after it at its own level but already made at the
    # coarser one (windows.py); the thesis's conditioning is the coarse target alone. On M1 it was level
    # with the recipe and did not bring back its missing power at 5-10 Mpc/h (docs/quality.md)
    lookahead: bool = False


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
    # cubes the monitor generates per evaluation: M3 and Mu from nothing, an up-scaler from the held-out
    # cubes' coarser level, each in turn (several draws of each when there are more samples than cubes)
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
    max_batch: int = 64  # most patches assembled per sampler step (the model runs on sampling.runs.CALL_ROWS at a time)
    # level-1 voxels as "whole" particles (rounded at random, mean kept) or "expected" counts (fractions)
    counts: str = "whole"


@dataclass(frozen=True)
class DemoConfig:
    """`nbgan demo`: generator steps per scale of `--train`, fresh test boxes and generated cubes per
    row of its quality table (`samples`, at least 4 for the floor), where it all goes, and the
    candidate latent scales `--train` chooses M3's among on validation boxes after training
    (`nbgan_app.latent_scale`; none: M3 is sampled as trained)."""

    steps_m3: int = 600
    steps_m2: int = 400
    steps_m1: int = 400
    steps_mu: int = 400
    samples: int = 6
    out: str = "checkpoints/demo"
    m3_latent_scales: tuple[float, ...] = ()

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

    def lookahead(self, scale: str | Scale) -> bool:
        """Whether the scale's up-scaler sees the coarse patches past its target's high faces (`windows`)."""
        return bool(getattr(self.model(scale), "lookahead", False))

    def second_stage_losses(self, scale: str | Scale) -> tuple[float, float]:
        """(count, spectrum) loss weights of the scale's second stage (`refine_count_weight`,
        `refine_spectrum_weight`); (0, 0) for a scale without them (M3, Mu)."""
        model = self.model(scale)
        return (float(getattr(model, "refine_count_weight", 0.0)), float(getattr(model, "refine_spectrum_weight", 0.0)))

    def resolve(self, path: str) -> Path:
        return (Path(self.root) / path).resolve()


# the class of each model section (from Config's fields); a key that is not its class's is refused by name
SECTION_MODELS = {s.section: typing.get_type_hints(Config)[s.section] for s in scales.ALL}
