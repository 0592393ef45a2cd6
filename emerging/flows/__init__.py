"""Flow layers on images [N, H, W, C]: each a Keras layer owning its weights with a TFP bijector over
them (`layer.bijector`); base.py states the contract they share.  The networks inside them that are
not flows are in `emerging.flows.nets`."""
from emerging.flows.actnorm import ActNorm, ActNormBijector
from emerging.flows.autoregressive import Autoregressive, AutoregressiveBijector
from emerging.flows.base import FlowBijector, FlowChain, FlowLayer, FlowSequence, JointFlowBijector
from emerging.flows.conv1x1 import InvertibleConv1x1, PlainConv1x1Bijector, PLUConv1x1Bijector, QRConv1x1Bijector
from emerging.flows.coupling import Coupling, CouplingBijector, CouplingNetwork
from emerging.flows.emerging_conv import EmergingConv, EmergingConvBijector
from emerging.flows.logit import LogitBijector, LogitTransform
from emerging.flows.periodic_conv import PeriodicConv, PeriodicConvBijector
from emerging.flows.permutations import ChannelPermuteBijector, Reverse, ReverseBijector, Shuffle
from emerging.flows.priors import TopPrior, TopPriorBijector, standardize, unstandardize
from emerging.flows.residual import ResidualBlock, ResidualBlockBijector
from emerging.flows.split import FirstHalf, FirstHalfBijector, SplitPrior, SplitPriorBijector
from emerging.flows.squeeze import Squeezed, SqueezedBijector, squeeze2d, unsqueeze2d

__all__ = [
    'ActNorm', 'ActNormBijector', 'Autoregressive', 'AutoregressiveBijector', 'ChannelPermuteBijector', 'Coupling',
    'CouplingBijector', 'CouplingNetwork', 'EmergingConv', 'EmergingConvBijector', 'FirstHalf', 'FirstHalfBijector',
    'FlowBijector', 'FlowChain', 'FlowLayer', 'FlowSequence', 'InvertibleConv1x1', 'JointFlowBijector',
    'LogitBijector', 'LogitTransform', 'PeriodicConv', 'PeriodicConvBijector', 'PlainConv1x1Bijector',
    'PLUConv1x1Bijector', 'QRConv1x1Bijector', 'ResidualBlock', 'ResidualBlockBijector', 'Reverse',
    'ReverseBijector', 'Shuffle', 'SplitPrior', 'SplitPriorBijector', 'squeeze2d', 'Squeezed', 'SqueezedBijector',
    'standardize', 'TopPrior', 'TopPriorBijector', 'unsqueeze2d', 'unstandardize',
]
