"""One flow step: actnorm -> permutation (by flow_permutation) -> coupling.

flow_permutation: 0 reverse, 1 shuffle, 2 1x1 conv, 3 1x1 conv + emerging
conv, 4 periodic conv, 5 1x1 conv + autoregressive lower (maf1) + upper
(maf2).  The step's bijector is the chain of its layers' bijectors; the
reverse pass runs their exact inverses in reverse order.  With
`gradient_checkpointing` the step's activations are recomputed in the
backward pass instead of being kept (the original's default).
"""
from emerging.flows.actnorm import ActNorm
from emerging.flows.autoregressive import Autoregressive
from emerging.flows.base import FlowSequence
from emerging.flows.conv1x1 import InvertibleConv1x1
from emerging.flows.coupling import Coupling
from emerging.flows.emerging_conv import EmergingConv
from emerging.flows.periodic_conv import PeriodicConv
from emerging.flows.permutations import Reverse, Shuffle


def permutation_layers(flow_permutation, decomposition='', rng=None):
    if flow_permutation == 0:
        return [Reverse()]
    if flow_permutation == 1:
        return [Shuffle(rng=rng)]
    if flow_permutation == 2:
        return [InvertibleConv1x1(decomposition, rng=rng)]
    if flow_permutation == 3:
        return [InvertibleConv1x1(decomposition, rng=rng), EmergingConv(rng=rng)]
    if flow_permutation == 4:
        return [PeriodicConv(rng=rng)]
    if flow_permutation == 5:
        return [InvertibleConv1x1(decomposition, rng=rng), Autoregressive(upper=False, rng=rng),
                Autoregressive(upper=True, rng=rng)]
    raise ValueError(f'unknown flow_permutation {flow_permutation!r}; allowed: 0..5')


class FlowStep(FlowSequence):
    def __init__(self, width, flow_permutation=2, flow_coupling=0, decomposition='', rng=None,
                 compute_dtype='float32', gradient_checkpointing=False, name='step', **kwargs):
        actnorm = ActNorm(name='actnorm')
        permutation = permutation_layers(flow_permutation, decomposition, rng)
        coupling = Coupling(width, flow_coupling, rng=rng, compute_dtype=compute_dtype, name='coupling')
        super().__init__([actnorm, *permutation, coupling], recompute_gradients=gradient_checkpointing,
                         name=name, **kwargs)
        self.actnorm, self.permutation, self.coupling = actnorm, permutation, coupling

    def parameter_counts(self):
        counts = {}
        for layer in self.flow_layers:
            counts[layer.count_kind] = counts.get(layer.count_kind, 0) + layer.parameter_count()
        return counts
