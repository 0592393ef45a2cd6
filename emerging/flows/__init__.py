"""Flow layers: each a Keras layer owning its weights with a TFP bijector over
them (`layer.bijector`); see base.py for the contract they share."""
from emerging.flows.actnorm import ActNorm, ActNormBijector
from emerging.flows.autoregressive import Autoregressive, AutoregressiveBijector
from emerging.flows.base import FlowBijector, FlowChain, FlowLayer, FlowSequence, JointFlowBijector
from emerging.flows.conv1x1 import (InvertibleConv1x1, PlainConv1x1Bijector, PLUConv1x1Bijector,
                                    QRConv1x1Bijector)
from emerging.flows.coupling import Coupling, CouplingBijector, CouplingNetwork
from emerging.flows.emerging_conv import EmergingConv, EmergingConvBijector
from emerging.flows.periodic_conv import PeriodicConv, PeriodicConvBijector
from emerging.flows.permutations import ChannelPermuteBijector, Reverse, ReverseBijector, Shuffle
from emerging.flows.priors import Classifier, TopPrior, TopPriorBijector, standardize, unstandardize
from emerging.flows.split import FirstHalf, FirstHalfBijector, SplitPrior, SplitPriorBijector
from emerging.flows.squeeze import Squeezed, SqueezedBijector, squeeze2d, unsqueeze2d
from emerging.flows.step import FlowStep

__all__ = [
    'ActNorm', 'ActNormBijector', 'Autoregressive', 'AutoregressiveBijector', 'ChannelPermuteBijector',
    'Classifier', 'Coupling', 'CouplingBijector', 'CouplingNetwork', 'EmergingConv', 'EmergingConvBijector',
    'FirstHalf', 'FirstHalfBijector', 'FlowBijector', 'FlowChain', 'FlowLayer', 'FlowSequence', 'FlowStep',
    'InvertibleConv1x1', 'JointFlowBijector', 'PLUConv1x1Bijector', 'PeriodicConv', 'PeriodicConvBijector',
    'PlainConv1x1Bijector', 'QRConv1x1Bijector', 'Reverse', 'ReverseBijector', 'Shuffle', 'SplitPrior',
    'SplitPriorBijector', 'Squeezed', 'SqueezedBijector', 'TopPrior', 'TopPriorBijector', 'squeeze2d',
    'standardize', 'unsqueeze2d', 'unstandardize',
]
