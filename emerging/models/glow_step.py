"""The Glow-only pieces: one flow step (actnorm -> permutation -> coupling) and the class head.

`FlowStep`: the permutation layers are those `emerging.choices.FLOW_PERMUTATIONS`
lists for the step's flow_permutation (0 reverse, 1 shuffle, 2 1x1 conv, 3
1x1 conv + emerging conv, 4 periodic conv, 5 1x1 conv + autoregressive lower
(maf1) + upper (maf2)).  The step's bijector is the chain of its layers'
bijectors; the reverse pass runs their exact inverses in reverse order.
With `gradient_checkpointing` the step's activations are recomputed in the
backward pass instead of being kept (the original's default).

`Classifier` (`classifier`, with ycond and weight_y > 0): logits =
linear_zeros(mean_{H, W}(z_top)).
"""
import tensorflow as tf
import tf_keras

from emerging.choices import FLOW_PERMUTATIONS, described
from emerging.flows.actnorm import ActNorm
from emerging.flows.autoregressive import Autoregressive
from emerging.flows.base import FlowSequence
from emerging.flows.conv1x1 import InvertibleConv1x1
from emerging.flows.coupling import Coupling
from emerging.flows.emerging_conv import EmergingConv
from emerging.flows.nets.conv import LinearZeros
from emerging.flows.periodic_conv import PeriodicConv
from emerging.flows.permutations import Reverse, Shuffle

# the layer kinds of FLOW_PERMUTATIONS -> (decomposition, rng) -> the layer
PERMUTATION_LAYERS = {
    'reverse': lambda decomposition, rng: Reverse(),
    'shuffle': lambda decomposition, rng: Shuffle(rng=rng),
    '1x1': lambda decomposition, rng: InvertibleConv1x1(decomposition, rng=rng),
    'emerging': lambda decomposition, rng: EmergingConv(rng=rng),
    'periodic': lambda decomposition, rng: PeriodicConv(rng=rng),
    'maf_lower': lambda decomposition, rng: Autoregressive(upper=False, rng=rng),
    'maf_upper': lambda decomposition, rng: Autoregressive(upper=True, rng=rng),
}


def permutation_layers(flow_permutation, decomposition='', rng=None):
    """The invertible layers of one step for a --flow_permutation code, in data -> latent order.

    Args:
      flow_permutation: a code of `FLOW_PERMUTATIONS`.
      decomposition: the 1x1 convolution's parametrisation.
      rng: the numpy Generator of the initial weights.

    Returns:
      A list of flow layers.
    """
    if flow_permutation not in FLOW_PERMUTATIONS:
        raise ValueError(f'unknown flow_permutation {flow_permutation!r}; allowed: {described(FLOW_PERMUTATIONS)}')
    return [PERMUTATION_LAYERS[kind](decomposition, rng) for kind in FLOW_PERMUTATIONS[flow_permutation][1]]


class FlowStep(FlowSequence):
    """One step of a Glow level: actnorm, the permutation layers, the coupling.

    Args:
      width: the coupling network's hidden channels.
      flow_permutation, flow_coupling, decomposition: as in `GlowConfig`.
      rng: the numpy Generator of the initial weights.
      compute_dtype: the coupling network's dtype.
      gradient_checkpointing: recompute the step's activations in the backward pass.
      name: the layer's name (level{i}_step{k} in a model).
    """

    def __init__(self, width, flow_permutation=2, flow_coupling=0, decomposition='', rng=None,
                 compute_dtype='float32', gradient_checkpointing=False, name='step', **kwargs):
        actnorm = ActNorm(name='actnorm')
        permutation = permutation_layers(flow_permutation, decomposition, rng)
        coupling = Coupling(width, flow_coupling, rng=rng, compute_dtype=compute_dtype, name='coupling')
        super().__init__([actnorm, *permutation, coupling], recompute_gradients=gradient_checkpointing,
                         name=name, **kwargs)
        self.actnorm, self.permutation, self.coupling = actnorm, permutation, coupling

    def parameter_counts(self):
        """{count kind of the layer ('1x1', 'emerging', 'periodic', 'rest'): its trainable parameters}."""
        counts = {}
        for layer in self.flow_layers:
            counts[layer.count_kind] = counts.get(layer.count_kind, 0) + layer.parameter_count()
        return counts


class Classifier(tf_keras.layers.Layer):
    """Class logits from the spatial mean of the top latent: [N, H, W, C] -> [N, n_y].

    Args:
      n_channels: C of the top latent.
      n_y: the number of classes.
      name: the layer's name.
    """

    def __init__(self, n_channels, n_y, name='classifier', **kwargs):
        super().__init__(name=name, **kwargs)
        self.n_channels = int(n_channels)
        self.linear = LinearZeros(n_y, name='linear')

    def build(self, input_shape=None):
        self.linear.build([None, self.n_channels])
        self.built = True

    def call(self, z):
        return self.linear(tf.reduce_mean(z, axis=[1, 2]))
