"""Residual Flow image model (Chen et al., NeurIPS 2019): configuration.

The model class is added beside this configuration.
"""
import dataclasses
import math

ACTIVATIONS = ('lipswish', 'swish', 'elu', 'softplus')
N_DISTS = ('poisson', 'geometric')


@dataclasses.dataclass(frozen=True)
class ResFlowConfig:
    """The architecture and estimators of a Residual Flow (the public code's flag names in comments)."""
    image_shape: tuple = (32, 32, 3)
    n_blocks: tuple = (16, 16, 16)      # --nblocks 16-16-16: residual blocks per scale
    idim: int = 512                     # --idim: hidden channels of g
    kernels: str = '3-1-3'              # --kernels
    activation: str = 'swish'           # --act
    factor_out: bool = False            # --factor-out
    squeeze_first: bool = False         # --squeeze-first
    actnorm: bool = True                # --actnorm: an actnorm after every block
    fc_end: bool = True                 # --fc-end: fully connected blocks at the end of the last scale
    fc_nblocks: int = 4
    fc_idim: int = 128                  # --fc-idim
    preact: bool = True                 # --preact
    first_resblock: bool = True         # --first-resblock: the first block without its leading activation
    coeff: float = 0.98                 # --coeff: Lipschitz bound of every layer of g
    n_lipschitz_iters: int = None       # --n-lipschitz-iters
    sn_tol: float = 1e-3                # --sn-tol
    n_power_series: int = None          # --n-power-series: None = Russian roulette
    n_dist: str = 'poisson'             # --n-dist
    n_samples: int = 1                  # --n-samples: Hutchinson probes
    n_exact_terms: int = 2              # --n-exact-terms
    neumann_grad: bool = True           # --neumann-grad
    mem_eff: bool = True                # --mem-eff: the log-det's gradient in the forward pass
    logit_alpha: float = 0.05           # the logit transform's alpha: 1e-6 for mnist, else 0.05 (the public code)
    n_bits_x: int = 8                   # --nbits
    n_y: int = 1
    ycond: bool = False                 # not in the public code's density task: always False there
    compute_dtype: str = 'float32'
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, 'image_shape', tuple(int(d) for d in self.image_shape))
        object.__setattr__(self, 'n_blocks', tuple(int(n) for n in self.n_blocks))
        self.validate()

    @property
    def n_bins(self):
        return 2 ** self.n_bits_x

    @property
    def n_dims(self):
        return math.prod(self.image_shape)

    def validate(self):
        if len(self.image_shape) != 3 or min(self.image_shape) < 1:
            raise ValueError(f'image_shape must be (height, width, channels), got {self.image_shape}')
        if not self.n_blocks or min(self.n_blocks) < 1:
            raise ValueError(f'n_blocks needs a positive number of blocks per scale, got {self.n_blocks}')
        if self.activation not in ACTIVATIONS:
            raise ValueError(f'unknown activation {self.activation!r}; allowed: {", ".join(ACTIVATIONS)}')
        if self.n_dist not in N_DISTS:
            raise ValueError(f'unknown n_dist {self.n_dist!r}; allowed: {", ".join(N_DISTS)}')
        if not 0. < self.coeff < 1.:
            raise ValueError(f'coeff must be in (0, 1) for an invertible block, got {self.coeff}')
        if not 0. < self.logit_alpha < 0.5:
            raise ValueError(f'logit_alpha must be in (0, 0.5), got {self.logit_alpha}')
        if not 1 <= self.n_bits_x <= 8:
            raise ValueError(f'n_bits_x must be in 1..8, got {self.n_bits_x}')
        if self.compute_dtype != 'float32':
            raise ValueError(f'Residual Flows compute in float32 only, got compute_dtype {self.compute_dtype!r}')
