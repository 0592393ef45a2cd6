"""Flows on vectors [N, d]: BNAF, and TFP's MAF and RealNVP to compare it with.

The contract of this package, unlike `emerging.flows` (images, event ndims 3,
bijector forward = latent -> data): every bijector here has event ndims 1 and
TFP's composition rules (`tfb.Chain` lists bijectors in forward order), and
its *forward* is the map a network computes in closed form.  For BNAF that is
the network itself, x -> f(x), with its exact log-det; its inverse is a root
find.  So a BNAF density model is `tfb.Invert(network)` over a standard
normal base (log_prob runs the network), and a BNAF sampler, trained by
reverse KL against an energy, is the network over the base.  `build_flow`
returns both directions of every flow in TFP's sense (`VectorFlow.density`,
`VectorFlow.sampler`: forward = base sample -> point).

* bnaf.py      `MaskedWeight`, `BNAFNetwork`, `BNAFBijector`, `BNAFFlow`
* stacks.py    `build_flow`: BNAF, MAF or RealNVP of about the same size, as a `VectorFlow`;
               `public_bnaf`, `public_polyak_averages`: the BNAF of a checkpoint of the public BNAF code
* training.py  `clipped_train_step`, `Plateau` (the public BNAF code's schedule)
* residual.py  `VectorResidualBlock` (z = x + g(x), spectrally normalised g, exact or estimated log-det,
               fixed-point inverse), its activations and bijector
* toy_stacks.py  the public train_toy.py's models: `VectorActNorm`, `VectorMovingBatchNorm`,
               `VectorCouplingBlock`, `VectorFlowStack`, `build_toy_flow`
"""
from emerging.vector.bnaf import BNAFBijector, BNAFFlow, BNAFNetwork, MaskedWeight
from emerging.vector.residual import VectorActivation, VectorLayerBijector, VectorResidualBlock
from emerging.vector.stacks import VectorFlow, build_flow, public_bnaf, public_polyak_averages
from emerging.vector.toy_stacks import (
    VectorActNorm,
    VectorCouplingBlock,
    VectorFlowStack,
    VectorMovingBatchNorm,
    build_toy_flow,
)
from emerging.vector.training import Plateau, clipped_train_step

__all__ = ['BNAFBijector', 'BNAFFlow', 'BNAFNetwork', 'MaskedWeight', 'Plateau', 'VectorActivation', 'VectorActNorm',
           'VectorCouplingBlock', 'VectorFlow', 'VectorFlowStack', 'VectorLayerBijector', 'VectorMovingBatchNorm',
           'VectorResidualBlock', 'build_flow', 'build_toy_flow', 'clipped_train_step', 'public_bnaf',
           'public_polyak_averages']
