"""Networks inside the flow layers that are not flows themselves.

* conv.py       the original's convolutions: edge-bias padding, an actnorm after (`Conv2dActnorm`) or zero
                init (`Conv2dZeros`), and `LinearZeros`: the coupling network's and the priors' layers
* lipschitz.py  spectrally normalised convolution and dense layers and 1-Lipschitz activations: the
                residual blocks' network g
"""
from emerging.flows.nets.conv import Conv2dActnorm, Conv2dZeros, LinearZeros, edge_conv
from emerging.flows.nets.lipschitz import Activation, SpectralNormConv2D, SpectralNormDense

__all__ = ['Activation', 'Conv2dActnorm', 'Conv2dZeros', 'LinearZeros', 'SpectralNormConv2D', 'SpectralNormDense',
           'edge_conv']
