"""The variable values one WGAN-GP step works on, and the optimizer pair Keras's trainers see.

The step is written once as a function of values. `StepState` holds them:
stateless (JAX: the values come in and go out as Keras's `state` tuple, the
optimizers' `stateless_apply` and metrics' `stateless_update_state` make new
values) or stateful (TensorFlow, PyTorch: values are read from the variables
and the optimizers and metrics update them in place).
"""

from __future__ import annotations

from nbgan_app.distribute import replica_gradients


class OptimizerPair:
    """What Keras's trainers see as `model.optimizer`: the critic's and generator's optimizers together.

    Keras threads `model.optimizer.variables` through a JAX train step; a GAN
    has two optimizers, so their variables are listed critic's first.
    """

    def __init__(self, model, d_optimizer, g_optimizer):
        self.model, self.d_optimizer, self.g_optimizer = model, d_optimizer, g_optimizer

    @property
    def variables(self):
        return list(self.d_optimizer.variables) + list(self.g_optimizer.variables)

    @property
    def built(self):
        return self.d_optimizer.built and self.g_optimizer.built

    def build(self, _variables=None):
        if not self.d_optimizer.built:
            self.d_optimizer.build(self.model.critic.trainable_variables)
        if not self.g_optimizer.built:
            self.g_optimizer.build(self.model.generator.trainable_variables)

    def scale_loss(self, loss):
        return loss


class StepState:
    """The current values of a model's variables during one step, stateless (JAX) or stateful."""

    def __init__(self, model, state=None):
        self.model, self.stateless = model, state is not None
        if state is None:
            state = model._read_state()
        trainable, non_trainable, optimizer_values, metric_values = state
        self.values = {id(v): x for v, x in zip(model.trainable_variables, trainable)}
        self.values.update({id(v): x for v, x in zip(model.non_trainable_variables, non_trainable)})
        self.values.update({id(v): x for v, x in zip(model.optimizer.variables, optimizer_values)})
        self.values.update({id(v): x for v, x in zip(model.metrics_variables, metric_values)})

    def read(self, variables):
        return [self.values[id(v)] for v in variables]

    def write(self, variables, new_values):
        self.values.update({id(v): x for v, x in zip(variables, new_values)})

    def apply(self, optimizer, grads, variables):
        """One optimizer update of `variables` by `grads`."""
        if self.stateless:
            new_vars, new_opt = optimizer.stateless_apply(self.read(optimizer.variables), grads,
                                                          self.read(variables))
            self.write(variables, new_vars)
            self.write(optimizer.variables, new_opt)
        else:  # under tf.distribute the optimizer sums the replicas' gradients
            optimizer.apply(replica_gradients(grads), variables)
            self.write(variables, [v.value for v in variables])

    def update_metric(self, metric, value):
        if self.stateless:
            self.write(metric.variables, metric.stateless_update_state(self.read(metric.variables), value))
        else:
            metric.update_state(value)

    def logs(self):
        if not self.stateless:
            return {m.name: m.result() for m in self.model.metrics}
        return {m.name: m.stateless_result(self.read(m.variables)) for m in self.model.metrics}

    def result(self):
        """The new state tuple (stateless), or None after writing the seed back (stateful)."""
        model = self.model
        if not self.stateless:
            state = model.seed_generator.state
            state.assign(self.values[id(state)])
            return None
        return (self.read(model.trainable_variables), self.read(model.non_trainable_variables),
                self.read(model.optimizer.variables), self.read(model.metrics_variables))
