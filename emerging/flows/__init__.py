"""Flow layers: each a Keras layer owning its weights with a TFP bijector over
them (`layer.bijector`); see base.py for the contract they share."""
from emerging.flows.actnorm import ActNorm, ActNormBijector
from emerging.flows.autoregressive import Autoregressive, AutoregressiveBijector
from emerging.flows.base import FlowBijector, FlowChain, FlowLayer, FlowSequence, JointFlowBijector
from emerging.flows.bnaf import BNAFBijector, BNAFFlow, BNAFNetwork, MaskedWeight
from emerging.flows.conv1x1 import (InvertibleConv1x1, PlainConv1x1Bijector, PLUConv1x1Bijector,
                                    QRConv1x1Bijector)
from emerging.flows.coupling import Coupling, CouplingBijector, CouplingNetwork
from emerging.flows.emerging_conv import EmergingConv, EmergingConvBijector
from emerging.flows.lipschitz import Activation, SpectralNormConv2D, SpectralNormDense
from emerging.flows.logit import LogitBijector, LogitTransform
from emerging.flows.periodic_conv import PeriodicConv, PeriodicConvBijector
from emerging.flows.permutations import ChannelPermuteBijector, Reverse, ReverseBijector, Shuffle
from emerging.flows.priors import Classifier, TopPrior, TopPriorBijector, standardize, unstandardize
from emerging.flows.residual import ResidualBlock, ResidualBlockBijector
from emerging.flows.split import FirstHalf, FirstHalfBijector, SplitPrior, SplitPriorBijector
from emerging.flows.squeeze import Squeezed, SqueezedBijector, squeeze2d, unsqueeze2d
from emerging.flows.step import FlowStep

__all__ = [
    'Activation', 'ActNorm', 'ActNormBijector', 'Autoregressive', 'AutoregressiveBijector', 'BNAFBijector',
    'BNAFFlow', 'BNAFNetwork', 'ChannelPermuteBijector', 'Classifier', 'Coupling', 'CouplingBijector',
    'CouplingNetwork', 'EmergingConv', 'EmergingConvBijector', 'FirstHalf', 'FirstHalfBijector', 'FlowBijector',
    'FlowChain', 'FlowLayer', 'FlowSequence', 'FlowStep', 'InvertibleConv1x1', 'JointFlowBijector', 'LogitBijector',
    'LogitTransform', 'MaskedWeight', 'PeriodicConv', 'PeriodicConvBijector', 'PlainConv1x1Bijector',
    'PLUConv1x1Bijector', 'QRConv1x1Bijector', 'ResidualBlock', 'ResidualBlockBijector', 'Reverse',
    'ReverseBijector', 'Shuffle', 'SpectralNormConv2D', 'SpectralNormDense', 'SplitPrior', 'SplitPriorBijector',
    'squeeze2d', 'Squeezed', 'SqueezedBijector', 'standardize', 'TopPrior', 'TopPriorBijector', 'unsqueeze2d',
    'unstandardize',
]
