"""WGAN-GP: one keras.Model that trains a generator and a critic, on TensorFlow, JAX and PyTorch.

Data of one `train_step` (one generator step after `num_critic_steps` critic
steps, each on a fresh real batch; transformed space, channels last):

- M3 (`whole_cube=True`): real cubes (B, n, s^d, 1).
- M2/M1 (`coarse=True`): a tuple (windows (B, n, (2p)^d, 1), coarse windows
  (B, n, (2p/f)^d, 1)); Mu (`coarse=False`): windows (B, n, (2p)^d, 1) alone.
The batch axis comes first, as Keras and data-parallel sharding expect; axis 1
holds the n fresh real batches of the n critic steps.

For windows the generator input is concat([latent (B, p^d, 1) ~ N(0, 1),
context]) with `context, target = windows.split_window(window, coarse)`; the
fake window is `windows.with_target(window, fake_target)` and the critic sees
`windows.critic_input(window or fake window, coarse)`. The generator step
uses the last critic step's real batch (its windows' neighbours and coarse
target condition the generator; the real target is not used).

The step is written once as a function of variable *values*: on JAX it is the
stateless `train_step(state, data) -> (logs, state)` Keras expects; on
TensorFlow and PyTorch the values are read from the variables, and the
optimizers and metrics update the variables in place. The only
backend-specific code is the gradient computation (`nbgan_app.gan.gradients`).
Random numbers (latents, interpolation weights) come from a
`keras.random.SeedGenerator` whose state is threaded through the step
explicitly (it is one of the model's non-trainable variables, so it is part
of Keras's JAX state), and `save_own_variables` writes it into weights files
(key "seed_state"), so a run resumed from `save_weights`/`load_weights` draws
the same numbers as an uninterrupted one.

Data parallel (`nbgan_app.distribute`): under JAX's DataParallel the step stays
global (the batch arrives sharded and XLA partitions the maths). Under
`tf.distribute.MirroredStrategy` it runs once per replica on its B/R rows:
the random numbers are that replica's rows of one draw for the global batch,
and the gradients are scaled by 1/R before the optimizers' SUM all-reduce, so
both equal single-device training on the global batch up to reduction order.
The losses returned are per-replica means, which Keras averages over replicas.

Mixed precision: the networks follow the global `keras.mixed_precision`
policy; their outputs (generator output, critic score) are float32 layers and
the losses and penalty are computed in float32. No loss scaling is done, which
is fine for `mixed_bfloat16`; `mixed_float16` would need a LossScaleOptimizer.

The metric trackers average over every critic step since the last
`reset_metrics()` (Keras resets them at each epoch of `fit`).
"""

from __future__ import annotations

import contextlib

import keras
from keras import ops

from nbgan_app import transforms, windows
from nbgan_app.distribute import replica_position, replica_rows
from nbgan_app.gan.gradients import input_gradient, value_and_grad
from nbgan_app.gan.step_state import OptimizerPair, StepState

PENALTY_EPSILON = 1e-12  # inside the square root of the gradient norm: finite gradients at norm 0


def gradient_penalty(critic_fn, real, fake, weights, gp_weight: float):
    """Standard per-sample WGAN-GP penalty, in float32.

    `weights` (B, 1, ..., 1) in [0, 1) interpolate x = w real + (1 - w) fake;
    the norm of d critic(x) / dx is taken over all non-batch axes, with an
    epsilon inside the square root; penalty = gp_weight * mean((norm - 1)^2).
    """
    real, fake = ops.cast(real, "float32"), ops.cast(fake, "float32")
    mixed = weights * real + (1.0 - weights) * fake
    grads = ops.cast(input_gradient(critic_fn, mixed), "float32")
    axes = tuple(range(1, len(grads.shape)))
    norm = ops.sqrt(ops.sum(ops.square(grads), axis=axes) + PENALTY_EPSILON)
    return gp_weight * ops.mean(ops.square(norm - 1.0))


@keras.saving.register_keras_serializable(package="nbgan")
class WGANGP(keras.Model):
    """Generator and critic trained with the Wasserstein loss and gradient penalty.

    Args:
        generator: M3: latent (B, latent_dim) -> cube (B, s^d, 1); windows:
            (B, p^d, 1 + context) -> target (B, p^d, 1).
        critic: (B, ..., C) -> (B, 1) scores.
        coarse: True for M2/M1 (data carries coarse windows), False for Mu,
            None for M3.
        whole_cube: True for M3 (the generator makes whole cubes from a latent vector).
        num_critic_steps: critic updates per generator update (n).
        gp_weight: weight of the gradient penalty.
        seed: seed of the latent and interpolation randomness.
        counts: for a window model, {"kind", "c", "scale"} of the transform, "unit" (particles per
            unit) and "weight". With unit > 0 the critic also sees the window's counts / unit as its
            last channel; the penalty holds the critic to slope 1 in that channel too, so a cell of
            thousands of particles, which costs a few units in transformed space, costs hundreds
            there. With weight > 0 (an up-scaler's) the generator's loss adds
            weight * (log S_fake - log S_real)^2, S being the particles of the batch's target
            patches and S_real those of the real patches whose conditions the fakes were given:
            the transformed-space pyramid pins a block's transformed mean but not its particles,
            which a generator can add at little cost to the critic. The batch's sum, not each
            patch's: a patch's particles vary given its condition (docs/quality.md).
        lookahead: M2/M1 only: the coarse windows reach one patch past the target's high
            faces, and the generator and critic see those coarse patches too (`windows`).
        spectrum_weight: a window model's generator loss adds spectrum_weight times the mean over
            shells of (mean_b S_fake - mean_b S_real)^2, S being the log shell power of a target
            patch's counts (`models.spectrum.ShellPower`, shells of the patch's fundamental; the
            transform from `counts`) and the real patches those whose contexts the fakes were
            given. Counts, not transformed values: matched in transformed space, the up-scaler
            moved variance from dense cells to voids and lost 40-80% of the boxes' count power at
            every k (docs/quality.md). Batch means: a patch's spectrum varies given its context, as
            its particles do.
    """

    def __init__(self, generator, critic, coarse=None, whole_cube=False, num_critic_steps=5,
                 gp_weight=10.0, seed=0, counts=None, lookahead=False, spectrum_weight=0.0, **kwargs):
        super().__init__(**kwargs)
        if whole_cube != (coarse is None):
            raise ValueError(f"Expected coarse=None exactly when whole_cube=True. "
                             f"Received: coarse={coarse}, whole_cube={whole_cube}")
        if num_critic_steps < 1:
            raise ValueError(f"Expected num_critic_steps >= 1. Received: num_critic_steps={num_critic_steps}")
        self.generator, self.critic = generator, critic
        if lookahead and not coarse:
            raise ValueError("Expected lookahead=False for a model without coarse windows")
        self.coarse, self.whole_cube, self.lookahead = coarse, whole_cube, bool(lookahead)
        if counts is not None and whole_cube:
            raise ValueError("Expected counts=None for a whole-cube critic (the count channel is a window critic's)")
        self.num_critic_steps, self.gp_weight, self.seed = num_critic_steps, gp_weight, seed
        self.counts = dict(counts) if counts else None
        if spectrum_weight and (whole_cube or not counts):
            raise ValueError("Expected spectrum_weight=0 for a whole-cube model or one without counts (the loss is "
                             "on a window's target counts)")
        self.spectrum_weight = float(spectrum_weight)
        self._shell_power = None
        if self.spectrum_weight:
            self._build_shell_power()
        self.seed_generator = keras.random.SeedGenerator(seed, name="wgan_seed")
        self.critic_loss_tracker = keras.metrics.Mean(name="critic_loss")
        self.generator_loss_tracker = keras.metrics.Mean(name="generator_loss")
        self.penalty_tracker = keras.metrics.Mean(name="gradient_penalty")
        self.wasserstein_tracker = keras.metrics.Mean(name="wasserstein")
        self.built = True

    def _build_shell_power(self):
        from nbgan_app.models.spectrum import ShellPower

        patch = self.generator.output_shape[1:-1]
        self._shell_power = ShellPower(patch[0], name="target_shell_power")
        self._shell_power.build((None,) + tuple(patch) + (1,))

    def set_generator_losses(self, count_weight: float, spectrum_weight: float) -> None:
        """Give the generator's count and spectrum losses new weights (a second training stage's,
        `nbgan_app.refine`). A window model built with `counts` only. The next `fit` traces its
        train step again: the weights are constants of the traced step."""
        if not self.counts:
            raise ValueError("Expected a window model built with counts (the losses are on a window's target counts)")
        self.counts["weight"], self.spectrum_weight = float(count_weight), float(spectrum_weight)
        if self.spectrum_weight and self._shell_power is None:
            self._build_shell_power()
        self.train_function = None

    @property
    def metrics(self):
        return [self.critic_loss_tracker, self.generator_loss_tracker, self.penalty_tracker,
                self.wasserstein_tracker]

    def call(self, inputs, training=False):
        return self.generator(inputs, training=training)

    def compile(self, d_optimizer=None, g_optimizer=None, jit_compile="auto", **kwargs):
        """d_optimizer/g_optimizer: critic's and generator's optimizers (RMSprop(3e-5) each by default).

        jit_compile "auto" is Keras's rule: XLA on JAX, and on TensorFlow only when
        an accelerator is present (on this 2-core CPU a demo-size M3 step took
        0.37 s plain tf.function against 8.2 s with XLA; M2 0.51 s against 22 s).
        PyTorch is kept eager: jit_compile would wrap it in torch.compile, which
        refuses the double backward of the penalty.
        """
        if keras.backend.backend() == "torch":
            jit_compile = False
        super().compile(jit_compile=jit_compile, **kwargs)
        self.d_optimizer = d_optimizer or keras.optimizers.RMSprop(3e-5)
        self.g_optimizer = g_optimizer or keras.optimizers.RMSprop(3e-5)
        self.optimizer = OptimizerPair(self, self.d_optimizer, self.g_optimizer)
        self.optimizer.build()

    def get_config(self):
        return {**super().get_config(), "generator": keras.saving.serialize_keras_object(self.generator),
                "critic": keras.saving.serialize_keras_object(self.critic), "coarse": self.coarse,
                "whole_cube": self.whole_cube, "num_critic_steps": self.num_critic_steps,
                "gp_weight": self.gp_weight, "seed": self.seed, "counts": self.counts,
                "lookahead": self.lookahead, "spectrum_weight": self.spectrum_weight}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("generator", "critic"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)

    @contextlib.contextmanager
    def sampling_weights(self):
        """Within the block the generator holds the weights to sample with: the moving average of
        its weights when its optimizer keeps one (`use_ema`), else its own. Restored on exit."""
        optimizer = getattr(self, "g_optimizer", None)
        if optimizer is None or not optimizer.use_ema:
            yield self.generator
            return
        variables = self.generator.trainable_variables
        saved = [ops.copy(v.value) for v in variables]
        for variable, average in zip(variables, optimizer._model_variables_moving_average):
            variable.assign(average)
        try:
            yield self.generator
        finally:
            for variable, value in zip(variables, saved):
                variable.assign(value)

    def load_generator(self, path) -> None:
        """The generator takes the weights of the saved generator `path` (a .keras file of the same
        architecture), and so does the moving average of its weights where one is kept: what sampling
        uses is then that generator. The critic and the optimizers' moments are untouched."""
        self.generator.load_weights(path)
        optimizer = getattr(self, "g_optimizer", None)
        if optimizer is not None and optimizer.use_ema:
            for variable, average in zip(self.generator.trainable_variables,
                                         optimizer._model_variables_moving_average):
                average.assign(variable)

    def get_compile_config(self):
        return None  # the optimizers are saved as state; compile again after loading

    def save_own_variables(self, store):
        """Weights files carry the seed state, so a resumed run draws the same numbers."""
        super().save_own_variables(store)
        store["seed_state"] = ops.convert_to_numpy(self.seed_generator.state.value)

    def load_own_variables(self, store):
        if "seed_state" in store:
            self.seed_generator.state.assign(store["seed_state"])

    # --- the step -------------------------------------------------------------------------------

    def train_step(self, *args):
        """JAX: (state, data) -> (logs, state); TensorFlow and PyTorch: (data) -> logs."""
        if len(args) == 2:
            state = StepState(self, args[0])
            return self._step(state, args[1]), state.result()
        state = StepState(self)
        logs = self._step(state, args[0])
        state.result()
        return logs

    def _read_state(self):
        return ([v.value for v in self.trainable_variables], [v.value for v in self.non_trainable_variables],
                [v.value for v in self.optimizer.variables], [v.value for v in self.metrics_variables])

    def _step(self, state, data):
        reals, coarses = self._unpack(data)
        noise = self._draw_noise(state, reals)
        for i in range(self.num_critic_steps):
            self._critic_step(state, reals[i], coarses[i], noise["critic_latent"][i], noise["weights"][i])
        self._generator_step(state, reals[-1], coarses[-1], noise["generator_latent"])
        return state.logs()

    def _unpack(self, data):
        """Per-critic-step lists of real batches and coarse batches (None where absent).

        Accepts what `fit`/`train_on_batch` pass: `x`, `(x,)`, `(x, y)` or `(x, y, None)`,
        with x the real batches and y the coarse batches of a conditional model.
        """
        n = self.num_critic_steps
        reals, coarse, _ = keras.utils.unpack_x_y_sample_weight(data)
        if self.coarse and coarse is None:
            raise ValueError("Expected data (windows, coarse) for a conditional model. Received: no coarse")
        if reals.shape[1] not in (None, n):
            raise ValueError(f"Expected axis 1 of size num_critic_steps={n} on the real batches. "
                             f"Received: shape={tuple(reals.shape)}")
        reals = ops.convert_to_tensor(reals, "float32")  # torch's train_on_batch passes NumPy arrays
        coarses = [None] * n
        if self.coarse:
            coarse = ops.convert_to_tensor(coarse, "float32")
            coarses = [coarse[:, i] for i in range(n)]
        return [reals[:, i] for i in range(n)], coarses

    def _latent_shape(self, real):
        batch = ops.shape(real)[0]
        if self.whole_cube:
            return (batch, self.generator.input_shape[-1])
        return (batch,) + tuple(s // 2 for s in real.shape[1:-1]) + (1,)

    def _draw_noise(self, state, reals):
        """All random numbers of the step, drawn from the threaded seed state."""
        sg_state = self.seed_generator.state
        _, replicas = replica_position()
        with keras.StatelessScope(state_mapping=[(sg_state, state.values[id(sg_state)])]) as scope:
            # drawn for the global batch; a tf.distribute replica keeps its rows (single-device numbers)
            shape = self._latent_shape(reals[0])
            shape = (shape[0] * replicas,) + shape[1:]
            weight_shape = (shape[0],) + (1,) * (len(reals[0].shape) - 1)

            def normal():
                return replica_rows(keras.random.normal(shape, seed=self.seed_generator))

            noise = {
                "critic_latent": [normal() for _ in reals],
                "weights": [replica_rows(keras.random.uniform(weight_shape, seed=self.seed_generator))
                            for _ in reals],
                "generator_latent": normal(),
            }
            state.values[id(sg_state)] = scope.get_current_value(sg_state)
        return noise

    def _generate(self, g_values, g_free, real, coarse, latent):
        """Fake critic input, real critic input, from generator values (the fake in float32)."""
        if self.whole_cube:
            fake, _ = self.generator.stateless_call(g_values, g_free, latent, training=True)
            return ops.cast(fake, "float32"), real
        context, _ = windows.split_window(real, coarse, self.lookahead)
        g_input = ops.concatenate([ops.cast(latent, context.dtype), context], axis=-1)
        target, _ = self.generator.stateless_call(g_values, g_free, g_input, training=True)
        fake = windows.with_target(real, ops.cast(target, real.dtype))
        counts = self._count_channel if self.counts and self.counts.get("unit") else None
        return (windows.critic_input(fake, coarse, counts, self.lookahead),
                windows.critic_input(real, coarse, counts, self.lookahead))

    def _to_counts(self, values):
        c = self.counts
        return transforms.backward_ops(values, c["kind"], c["c"], c["scale"])

    def _count_channel(self, window):
        return self._to_counts(window) / self.counts["unit"]

    def _target_counts(self, fake_in, real):
        """Particles (float32) of the fake target patches (channel 0 of the critic's input) and of the real
        ones, for the generator's count and spectrum losses."""
        return tuple(self._to_counts(ops.cast(windows.target_patch(w), "float32")) for w in (fake_in[..., :1], real))

    def _count_loss(self, fake, real):
        """weight * (log S_fake - log S_real)^2, S the particles of the batch's target patches (+1), from
        their counts; 0 without a weight."""
        weight = self.counts.get("weight", 0.0)
        if not weight:
            return 0.0
        return weight * ops.square(ops.log1p(ops.sum(fake)) - ops.log1p(ops.sum(real)))

    def _spectrum_loss(self, fake, real):
        """spectrum_weight * mean over shells of the squared difference of the batch's mean log shell
        power of the target patches' counts, fake against real; 0 without a weight."""
        if not self.spectrum_weight:
            return 0.0
        fake, real = (ops.mean(self._shell_power(counts), axis=0) for counts in (fake, real))
        return self.spectrum_weight * ops.mean(ops.square(fake - real))

    def _score(self, c_values, c_free, x):
        score, _ = self.critic.stateless_call(c_values, c_free, x, training=True)
        return ops.cast(score, "float32")

    def _critic_loss(self, c_values, c_free, g_values, g_free, real, coarse, latent, weights):
        fake_in, real_in = self._generate(g_values, g_free, real, coarse, latent)
        fake_in = ops.stop_gradient(fake_in)
        real_score = ops.mean(self._score(c_values, c_free, real_in))
        fake_score = ops.mean(self._score(c_values, c_free, fake_in))
        penalty = gradient_penalty(lambda x: self._score(c_values, c_free, x), real_in, fake_in, weights,
                                   self.gp_weight)
        return fake_score - real_score + penalty, (real_score - fake_score, penalty)

    def _generator_loss(self, g_values, g_free, c_values, c_free, real, coarse, latent):
        fake_in, _ = self._generate(g_values, g_free, real, coarse, latent)
        loss = -ops.mean(self._score(c_values, c_free, fake_in))
        if self.counts and (self.counts.get("weight") or self.spectrum_weight):
            # both losses read the same patches' counts: transformed back once
            counts = self._target_counts(fake_in, real)
            loss = loss + self._count_loss(*counts) + self._spectrum_loss(*counts)
        return loss, ()

    def _critic_step(self, state, real, coarse, latent, weights):
        critic, generator = self.critic, self.generator
        args = (state.read(critic.non_trainable_variables), state.read(generator.trainable_variables),
                state.read(generator.non_trainable_variables), real, coarse, latent, weights)
        (loss, (wasserstein, penalty)), grads = value_and_grad(self._critic_loss)(
            state.read(critic.trainable_variables), *args)
        state.apply(self.d_optimizer, grads, critic.trainable_variables)
        state.update_metric(self.critic_loss_tracker, loss)
        state.update_metric(self.penalty_tracker, penalty)
        state.update_metric(self.wasserstein_tracker, wasserstein)

    def _generator_step(self, state, real, coarse, latent):
        critic, generator = self.critic, self.generator
        args = (state.read(generator.non_trainable_variables), state.read(critic.trainable_variables),
                state.read(critic.non_trainable_variables), real, coarse, latent)
        (loss, _), grads = value_and_grad(self._generator_loss)(state.read(generator.trainable_variables), *args)
        state.apply(self.g_optimizer, grads, generator.trainable_variables)
        state.update_metric(self.generator_loss_tracker, loss)
