"""Plain configuration objects: the model and the library take these, never flags.

`ModelConfig` describes the flow (image shape, L levels of K steps of the
given width, permutation, coupling, priors, bits per channel).  `TrainConfig`
the optimisation and schedule, with the original's derived values in one place:

* per-process batches are scaled to the image size: local_batch_train =
  n_batch_train * anchor_size^2 // image_size^2 (local_batch_init likewise);
* the per-process test batch comes from the original's table
  {64: 50, 32: 25, 28: 25, 16: 10, 8: 5, 4: 2, 2: 2, 1: 1}[local_batch_train];
* train_its = ceil(n_train / (n_batch_train * processes)) steps per epoch;
  full_test_its = n_test / (local_batch_test * processes), which must divide evenly;
* beta2 = 1 - 1 / (train_its * polyak_epochs), the second-moment decay of
  adamax / adam and the decay of the Polyak average.

`TrainConfig`'s last fields (a fixed test batch and beta2, a separate
average decay, gradient accumulation, clipping and L2 decay) default to the
original's behaviour; the Residual Flows driver sets them.  `ResFlowConfig`
describes a Residual Flow (`emerging.resflow`).
"""
import dataclasses
import math

PERMUTATIONS = {0: 'reverse', 1: 'shuffle', 2: '1x1 conv', 3: 'emerging (1x1 + emerging conv)',
                4: 'periodic (Fourier) conv', 5: '1x1 conv + autoregressive (MAF)'}
DECOMPOSITIONS = ('', 'PLU', 'LU', 'QR')
COUPLINGS = {0: 'additive', 1: 'affine'}
COMPUTE_DTYPES = ('float32', 'bfloat16', 'float16')
OPTIMIZERS = ('adam', 'adamax', 'adam2')
VECTOR_FLOWS = ('bnaf', 'maf', 'realnvp')  # emerging.vector_flows.build_flow's kinds
LOCAL_BATCH_TEST = {64: 50, 32: 25, 28: 25, 16: 10, 8: 5, 4: 2, 2: 2, 1: 1}


class ImageModel:
    """What both model configurations share: an image shape and bits per channel."""

    @property
    def n_bins(self):
        return 2 ** self.n_bits_x

    @property
    def n_dims(self):
        return math.prod(self.image_shape)

    def validate_image(self):
        if len(self.image_shape) != 3 or min(self.image_shape) < 1:
            raise ValueError(f'image_shape must be (height, width, channels), got {self.image_shape}')
        if not 1 <= self.n_bits_x <= 8:
            raise ValueError(f'n_bits_x must be in 1..8, got {self.n_bits_x}')


@dataclasses.dataclass(frozen=True)
class ModelConfig(ImageModel):
    image_shape: tuple = (32, 32, 3)
    n_levels: int = 3
    depth: int = 32
    width: int = 512
    flow_permutation: int = 2
    flow_coupling: int = 0
    decomposition: str = ''
    learnprior: bool = False
    ycond: bool = False
    n_y: int = 1
    weight_y: float = 0.
    n_bits_x: int = 8
    gradient_checkpointing: bool = False
    compute_dtype: str = 'float32'
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, 'image_shape', tuple(int(d) for d in self.image_shape))
        self.validate()

    @classmethod
    def from_hparams(cls, hparams: dict) -> 'ModelConfig':
        """The model of a run from the hyperparameter line of its train.txt (this port's, or the
        original's: both hold the derived image_size, channels and n_y; keys the original lacks
        take their defaults).  The seed is rank 0's."""
        missing = [key for key in ('image_size', 'n_levels', 'depth', 'width', 'flow_permutation') if key not in hparams]
        if missing:
            raise ValueError(f'the hyperparameters lack {", ".join(missing)}: not a training run\'s train.txt')
        channels = hparams.get('channels', 3)
        size = int(hparams['image_size'])
        processes = int(hparams.get('n_processes', 1))
        return cls(
            image_shape=(size, size, 3 if channels in (-1, None) else int(channels)),
            n_levels=int(hparams['n_levels']), depth=int(hparams['depth']), width=int(hparams['width']),
            flow_permutation=int(hparams['flow_permutation']), flow_coupling=int(hparams.get('flow_coupling', 0)),
            decomposition=hparams.get('decomposition', ''), learnprior=bool(hparams.get('learnprior', False)),
            ycond=bool(hparams.get('ycond', False)), n_y=int(hparams.get('n_y', 1)),
            weight_y=float(hparams.get('weight_y', 0.)), n_bits_x=int(hparams.get('n_bits_x', 8)),
            gradient_checkpointing=bool(hparams.get('gradient_checkpointing', 0)),
            compute_dtype=hparams.get('compute_dtype', 'float32'), seed=processes * int(hparams.get('seed', 0)))

    def validate(self):
        self.validate_image()
        if self.n_levels < 1:
            raise ValueError(f'n_levels must be at least 1, got {self.n_levels}')
        height, width, _ = self.image_shape
        factor = 2 ** self.n_levels
        if height % factor or width % factor:
            raise ValueError(
                f'image size {height}x{width} is not divisible by 2^n_levels = {factor} (n_levels={self.n_levels}): '
                f'every level squeezes by 2; use fewer levels or a larger image_size')
        if self.depth < 1 or self.width < 1:
            raise ValueError(f'depth and width must be positive, got depth={self.depth} width={self.width}')
        if self.flow_permutation not in PERMUTATIONS:
            raise ValueError(f'unknown flow_permutation {self.flow_permutation!r}; allowed: '
                             + ', '.join(f'{k} ({v})' for k, v in PERMUTATIONS.items()))
        if self.flow_coupling not in COUPLINGS:
            raise ValueError(f'unknown flow_coupling {self.flow_coupling!r}; allowed: 0 (additive), 1 (affine)')
        if self.decomposition not in DECOMPOSITIONS:
            raise ValueError(f'unknown decomposition {self.decomposition!r}; allowed: '
                             "'' (plain), 'PLU', 'LU', 'QR'")
        if self.compute_dtype not in COMPUTE_DTYPES:
            raise ValueError(f'unknown compute_dtype {self.compute_dtype!r}; allowed: ' + ', '.join(COMPUTE_DTYPES))
        if self.n_y < 1:
            raise ValueError(f'n_y must be at least 1, got {self.n_y}')


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation and schedule; per-process values derived as the original does."""
    n_train: int = 50000
    n_test: int = 10000
    n_batch_train: int = 64
    n_batch_init: int = 256
    image_size: int = 32
    anchor_size: int = 32
    n_processes: int = 1
    optimizer: str = 'adamax'
    lr: float = 0.001
    beta1: float = 0.9
    polyak_epochs: float = 1.
    weight_decay: float = 1.
    epochs: int = 1000000
    epochs_warmup: float = 10.
    epochs_full_valid: int = 50
    epochs_full_sample: int = 50
    use_polyak_for_eval: bool = False
    jit_compile: bool = False
    test_batch: int = 0             # per-process test batch; 0: the original's table
    grad_accumulation: int = 1      # micro-batches per update, each local_batch_train / grad_accumulation
    max_grad_norm: float = 0.       # clip the averaged gradients to this global norm; 0: off
    l2_decay: float = 0.            # adds l2_decay * w to every gradient (PyTorch's Adam weight_decay)
    fixed_beta2: float = 0.         # the moments' beta2; 0: derived from polyak_epochs
    ema_decay: float = 0.           # the Polyak average's decay; 0: beta2

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f'unknown optimizer {self.optimizer!r}; allowed: {", ".join(OPTIMIZERS)}')
        if self.local_batch_train < 1:
            raise ValueError(f'n_batch_train={self.n_batch_train} at anchor_size={self.anchor_size} gives no images '
                             f'per batch at image_size={self.image_size}')
        if self.grad_accumulation < 1 or self.local_batch_train % self.grad_accumulation:
            raise ValueError(f'per-process batch {self.local_batch_train} is not divisible into grad_accumulation='
                             f'{self.grad_accumulation} micro-batches')
        if self.test_batch < 0 or self.max_grad_norm < 0 or self.l2_decay < 0:
            raise ValueError('test_batch, max_grad_norm and l2_decay must not be negative')
        if not 0. <= self.fixed_beta2 < 1. or not 0. <= self.ema_decay < 1.:
            raise ValueError(f'fixed_beta2 and ema_decay must be in [0, 1), got {self.fixed_beta2}, {self.ema_decay}')
        if not self.test_batch and self.local_batch_train not in LOCAL_BATCH_TEST:
            raise ValueError(f'per-process training batch {self.local_batch_train} has no test batch in the original '
                             f'table; allowed: {sorted(LOCAL_BATCH_TEST)}')
        if self.n_test % (self.local_batch_test * self.n_processes):
            raise ValueError(
                f'n_test={self.n_test} is not divisible by local_batch_test * processes = '
                f'{self.local_batch_test} * {self.n_processes}: the original requires full test batches; '
                f'pick --n_test as a multiple of {self.local_batch_test * self.n_processes}')
        if self.epochs_full_valid < 1 or self.epochs_full_sample < 1:
            raise ValueError('epochs_full_valid and epochs_full_sample must be positive')

    def _scaled(self, n):
        return n * self.anchor_size ** 2 // self.image_size ** 2

    @property
    def local_batch_train(self):
        return self._scaled(self.n_batch_train)

    @property
    def local_batch_init(self):
        return max(1, self._scaled(self.n_batch_init))

    @property
    def local_batch_test(self):
        return self.test_batch or LOCAL_BATCH_TEST.get(self.local_batch_train, 1)

    @property
    def train_its(self):
        return int(math.ceil(self.n_train / (self.n_batch_train * self.n_processes)))

    @property
    def full_test_its(self):
        return self.n_test // (self.local_batch_test * self.n_processes)

    @property
    def beta2(self):
        return self.fixed_beta2 or 1. - 1. / (self.train_its * self.polyak_epochs)

    @property
    def polyak_decay(self):
        return self.ema_decay or self.beta2


RESFLOW_ACTIVATIONS = ('swish', 'lipswish', 'elu', 'softplus')
N_DISTS = ('poisson', 'geometric')


@dataclasses.dataclass(frozen=True)
class ResFlowConfig(ImageModel):
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
    n_samples: int = 1                  # --n-samples: Russian-roulette draws of the number of terms
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

    def validate(self):
        self.validate_image()
        if not self.n_blocks or min(self.n_blocks) < 1:
            raise ValueError(f'n_blocks needs a positive number of blocks per scale, got {self.n_blocks}')
        if self.activation not in RESFLOW_ACTIVATIONS:
            raise ValueError(f'unknown activation {self.activation!r}; allowed: {", ".join(RESFLOW_ACTIVATIONS)}')
        if self.n_dist not in N_DISTS:
            raise ValueError(f'unknown n_dist {self.n_dist!r}; allowed: {", ".join(N_DISTS)}')
        if not 0. < self.coeff < 1.:
            raise ValueError(f'coeff must be in (0, 1) for an invertible block, got {self.coeff}')
        if not 0. < self.logit_alpha < 0.5:
            raise ValueError(f'logit_alpha must be in (0, 0.5), got {self.logit_alpha}')
        if self.compute_dtype != 'float32':
            raise ValueError(f'Residual Flows compute in float32 only, got compute_dtype {self.compute_dtype!r}')
