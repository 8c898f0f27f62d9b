"""Device memory of one training run, estimated from its config without building anything.

The dashboard asks this before it starts a run (the memory guard), so it must
be cheap and must not import a Keras backend (importing TensorFlow in the
dashboard would also take memory on every GPU). The networks' shapes are
traced here from the config by the rules of `models.blocks`,
`models.generators` and `models.critics`; `tests/test_memory_estimate.py`
pins the traced parameter counts to the Keras models', so a change of
architecture that is not mirrored here fails a test.

What one train step of `gan.wgan_gp` holds on the device, in bytes:

- `parameters`: every weight of generator and critic, float32 (mixed
  precision keeps variables in float32).
- `optimizer`: the optimizer slots, float32: RMSprop 1 per weight (no
  momentum, not centred, as `models.factory.build_optimizers` makes it),
  Adam 2; plus the generator's moving average when `train.generator_ema` > 0.
- `gradients`: one gradient per weight of the network being updated.
- `inputs`: the step's real data, float32: B x n windows (whole cubes for
  M3) and, for M2/M1, their coarse windows, n = `train.num_critic_steps`.
- `activations`: the larger of the two steps, per sample times the batch:
  - critic step: the critic's saved forward activations on the real, the
    fake and the interpolated inputs, and once more for the penalty's input
    gradient, which the outer gradient differentiates again (the double
    backward): 4 critic forwards; the generator's forward making the fake is
    not differentiated, so only its two largest layer outputs are live at once;
  - generator step: generator and critic forward activations, saved for the
    backward pass;
  - either way the window arithmetic around the networks (`windows.split_window`,
    `with_target`, `critic_input`) and, for the backward pass, two of the
    largest layer output (the gradient flowing in and the one flowing out).
  Hidden activations are 2 bytes under mixed precision, else 4.
- `runtime`: what the framework holds whatever the model: on a GPU the CUDA
  context and the cuDNN/XLA workspaces (`RUNTIME_GPU`); on the CPU the whole
  process's fixed part (`RUNTIME_CPU`): TensorFlow resident after import
  (about 690 MiB on this project's CPU machine) and the traced step's graph
  and kernel caches (about 260 MiB: the batch-independent part of the
  measured peak of a demo-config step).

Not counted: the training cubes, which the trainer holds in host memory (on
the CPU they share the device's memory), and data-parallel replicas (pass the
per-device batch).

An activation "element" below is per sample: the tensors' sizes without the
batch axis. The figures are an estimate of the peak, not a bound: how much a
framework keeps alive depends on its scheduler and allocator (on the CPU, oneDNN
pads 8-channel tensors to 16-channel blocks); the test states the factor it
holds to against a measured peak.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from nbgan_app import scales, windows
from nbgan_app.config import Config
from nbgan_app.scales import Scale

NDIM = 3
FLOAT = 4  # bytes of a float32
GIB = 1024**3
MIB = 1024**2
RUNTIME_GPU = 512 * MIB  # CUDA context plus cuDNN/XLA workspaces, typical of a recent GPU and driver
RUNTIME_CPU = 960 * MIB  # TensorFlow's resident footprint, traced step and kernel caches (measured, see above)
# window-sized temporaries per pass through `with_target` (mask, its complement, the padded target,
# the masked window, their sum) and the up-sampled coarse window and residual of `critic_input`
WITH_TARGET_TEMPORARIES = 5
CRITIC_INPUT_TEMPORARIES = 2


@dataclass
class Network:
    """The traced shapes of one network: parameter count and per-sample layer outputs (elements)."""

    name: str
    params: int = 0
    outputs: list[int] = field(default_factory=list)  # one entry per layer output, the input first

    def add(self, elements: int) -> None:
        self.outputs.append(int(elements))

    @property
    def activations(self) -> int:
        """Elements of every layer output of one forward pass, the input included (per sample)."""
        return sum(self.outputs)

    @property
    def largest(self) -> int:
        return max(self.outputs) if self.outputs else 0


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a run needs on its device: the total and what it is made of (insertion order: largest terms
    of a typical run first)."""

    scale: str
    batch_size: int
    breakdown: dict[str, int]
    generator: Network
    critic: Network

    @property
    def total(self) -> int:
        return sum(self.breakdown.values())

    @property
    def per_sample(self) -> float:
        """Bytes each sample of the batch adds (activations and inputs)."""
        return (self.breakdown["activations"] + self.breakdown["inputs"]) / self.batch_size

    def describe(self) -> str:
        """One line, e.g. `1.2 GiB (activations 900 MiB, runtime 512 MiB, ...)`."""
        parts = ", ".join(f"{name} {format_bytes(value)}" for name, value in self.breakdown.items() if value)
        return f"{format_bytes(self.total)} ({parts})"


def format_bytes(value: float) -> str:
    """Bytes in the largest binary unit that keeps the number >= 1: `512 MiB`, `1.2 GiB`."""
    for unit, size in (("GiB", GIB), ("MiB", MIB), ("KiB", 1024)):
        if value >= size:
            number = value / size
            return f"{number:.3g} {unit}" if number < 100 else f"{number:.0f} {unit}"
    return f"{int(value)} B"


# --- tracing the networks (mirrors nbgan_app.models) -------------------------------------------------


def branch_filters(filters: int, num_branches: int) -> list[int]:
    """As `models.blocks.branch_filters` (not imported: that module imports Keras)."""
    base, extra = divmod(filters, num_branches)
    return [base + int(i >= num_branches - extra) for i in range(num_branches)]


def _conv(net: Network, side: int, cin: int, cout: int, kernel: int, stride: int, transpose: bool) -> int:
    """A 'same' (transposed) convolution with bias; returns the output side."""
    net.params += kernel**NDIM * cin * cout + cout
    side = side * stride if transpose else math.ceil(side / stride)
    net.add(side**NDIM * cout)
    return side


def _block(net: Network, side: int, cin: int, filters: int, architecture: str, kernels, stride: int,
           transpose: bool) -> int:
    """`blocks.conv_block` (merge=False, as the factory builds every model)."""
    if architecture == "dcgan":
        return _conv(net, side, cin, filters, max(kernels), stride, transpose)
    branches = [(n, k) for n, k in zip(branch_filters(filters, len(kernels)), sorted(kernels)) if n > 0]
    out = side
    for n, k in branches:
        out = _conv(net, side, cin, n, k, stride, transpose)
    if len(branches) > 1:
        net.add(out**NDIM * filters)  # the concatenation
    return out


def _stack(net: Network, side: int, cin: int, filters, strides, architecture: str, kernels,
           transpose: bool = False, residual: bool = False) -> tuple[int, int]:
    """`blocks.conv_stack`; returns (side, channels) of its output."""

    def unit(side, cin, i, act=True):
        side = _block(net, side, cin, filters[i], architecture, kernels, strides[i], transpose)
        if act:
            net.add(side**NDIM * filters[i])
        return side, filters[i]

    channels, i = cin, 0
    while i < len(filters):
        pair = residual and 0 < i < len(filters) - 1
        if pair and strides[i] == strides[i + 1] == 1 and filters[i + 1] == channels:
            s, c = unit(side, channels, i)
            s, c = unit(s, c, i + 1, act=False)
            net.add(2 * s**NDIM * c)  # the addition and its activation
            side, channels = s, c
            i += 2
        elif pair:
            side, channels = unit(*unit(side, channels, i), i + 1)
            i += 2
        else:
            side, channels = unit(side, channels, i)
            i += 1
    return side, channels


def trace_generator(config: Config, scale: str | Scale) -> Network:
    """The generator of `scale` as `models.factory.build_generator` builds it."""
    scale = scales.scale(scale)
    m = config.model(scale)
    net = Network(f"generator_{scale.name}")
    kernels = m.kernel_sizes
    residual = m.architecture == "inception_residual"
    if scale.whole_cube:
        cells = m.initial_size**NDIM
        net.add(m.latent_dim)
        net.params += m.latent_dim * m.dense_units + m.dense_units
        net.add(2 * m.dense_units)  # dense, activation (the reshape is a view)
        side, channels = _stack(net, m.initial_size, m.dense_units // cells, m.generator_filters[:-1],
                                m.generator_strides[:-1], m.architecture, kernels, transpose=True, residual=residual)
        side = _block(net, side, channels, 1, m.architecture, kernels, m.generator_strides[-1], True)
        net.add(side**NDIM)  # output activation
        return net
    patch = config.pyramid.patch
    cin = 1 + windows.context_channels(NDIM, scale.conditional, config.lookahead(scale))
    net.add(patch**NDIM * cin)
    hidden = m.generator_filters[:-1]
    side, channels = _stack(net, patch, cin, hidden, [1] * len(hidden), m.architecture, kernels, residual=residual)
    upscaler = getattr(m, "upscaler", "direct") if scale.conditional else "direct"
    if upscaler != "direct":
        side = _conv(net, side, channels, 1, max(kernels), 1, False)
        # the consistent residual: tanh, block mean, up-sampled mean, sum; the split adds the
        # backward transform, the exponential and the forward transform
        net.add((4 if upscaler == "residual" else 7) * side**NDIM)
    else:
        side = _block(net, side, channels, 1, m.architecture, kernels, 1, False)
        net.add(side**NDIM)
    return net


def critic_input_shape(config: Config, scale: str | Scale) -> tuple[int, int]:
    """(side, channels) of what the critic of `scale` sees (`models.factory.build_critic`)."""
    scale = scales.scale(scale)
    if scale.whole_cube:
        return scale.side(config.pyramid), 1
    return 2 * config.pyramid.patch, windows.critic_channels(scale.conditional,
                                                             bool(config.model(scale).critic_count_unit),
                                                             config.lookahead(scale), NDIM)


def trace_critic(config: Config, scale: str | Scale) -> Network:
    """The critic of `scale` as `models.factory.build_critic` builds it."""
    scale = scales.scale(scale)
    m = config.model(scale)
    net = Network(f"critic_{scale.name}")
    side, channels = critic_input_shape(config, scale)
    net.add(side**NDIM * channels)
    if not scale.whole_cube and m.critic_margin:  # the focus crop is a copy of the last (p + m)^d cells
        side = config.pyramid.patch + m.critic_margin
        net.add(side**NDIM * channels)
    architecture = "inception" if m.architecture == "inception_residual" else m.architecture
    side, channels = _stack(net, side, channels, m.critic_filters, m.critic_strides, architecture, m.kernel_sizes)
    width = side**NDIM * channels  # the flatten is a view
    for units in m.critic_dense:
        net.params += width * units + units
        net.add(2 * units)  # dense, activation
        width = units
    net.params += width + 1
    net.add(1)
    return net


# --- the estimate --------------------------------------------------------------------------------------


def optimizer_slots(config: Config) -> int:
    """Slot variables per weight of `models.factory.build_optimizers`' optimizers."""
    return 2 if config.train.optimizer == "adam" else 1


def input_elements(config: Config, scale: str | Scale) -> int:
    """Elements per sample of one train step's real data (all n critic steps)."""
    scale = scales.scale(scale)
    n = config.train.num_critic_steps
    if scale.whole_cube:
        return n * scale.side(config.pyramid) ** NDIM
    window = 2 * config.pyramid.patch
    span = windows.coarse_span(config.lookahead(scale)) * config.pyramid.patch
    coarse = (span // scale.factor(config.pyramid)) ** NDIM if scale.conditional else 0
    return n * (window**NDIM + coarse)


def glue_elements(config: Config, scale: str | Scale) -> int:
    """Per sample, the window arithmetic of one pass that makes a fake critic input (none for M3)."""
    scale = scales.scale(scale)
    if scale.whole_cube:
        return 0
    window = (2 * config.pyramid.patch) ** NDIM
    channels = 1 + windows.context_channels(NDIM, scale.conditional, config.lookahead(scale))
    context = window // 2**NDIM * channels
    extra = CRITIC_INPUT_TEMPORARIES if scale.conditional else 0
    return 2 * context + (WITH_TARGET_TEMPORARIES + extra) * window


def step_activation_elements(generator: Network, critic: Network, glue: int) -> dict[str, int]:
    """Per-sample elements live at the peak of the critic step and of the generator step."""
    backward = 2 * max(generator.largest, critic.largest)
    generator_pass = sorted(generator.outputs)[-2:]
    return {
        "critic_step": 4 * critic.activations + sum(generator_pass) + glue + backward,
        "generator_step": generator.activations + critic.activations + glue + backward,
    }


def estimate_training(config: Config, scale: str | Scale, device: str = "gpu",
                      batch_size: int | None = None) -> MemoryEstimate:
    """Device memory of `nbgan train --scale SCALE` with `config` on a `device` ("gpu" or "cpu").

    `batch_size` overrides `train.batch_size` (a data-parallel run's per-device batch).
    """
    scale = scales.scale(scale)
    batch = int(batch_size or config.train.batch_size)
    generator, critic = trace_generator(config, scale), trace_critic(config, scale)
    activation = 2 if config.train.precision.startswith("mixed") else FLOAT
    per_sample = max(step_activation_elements(generator, critic, glue_elements(config, scale)).values())
    weights = generator.params + critic.params
    ema = generator.params if config.train.generator_ema > 0 else 0
    breakdown = {
        "activations": batch * per_sample * activation,
        "inputs": batch * input_elements(config, scale) * FLOAT,
        "parameters": weights * FLOAT,
        "optimizer": (optimizer_slots(config) * weights + ema) * FLOAT,
        "gradients": max(generator.params, critic.params) * FLOAT,
        "runtime": RUNTIME_CPU if str(device).startswith("cpu") else RUNTIME_GPU,
    }
    return MemoryEstimate(scale.name, batch, breakdown, generator, critic)


def estimate_chain(config: Config, device: str = "gpu") -> MemoryEstimate:
    """M3, M2 and M1 trained at once on one device: three processes, so three runtimes too."""
    parts = [estimate_training(config, s, device) for s in scales.CHAIN]
    breakdown = {key: sum(p.breakdown[key] for p in parts) for key in parts[0].breakdown}
    return MemoryEstimate("chain", parts[0].batch_size, breakdown, parts[0].generator, parts[0].critic)
