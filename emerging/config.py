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
"""
import dataclasses
import math

PERMUTATIONS = {0: 'reverse', 1: 'shuffle', 2: '1x1 conv', 3: 'emerging (1x1 + emerging conv)',
                4: 'periodic (Fourier) conv', 5: '1x1 conv + autoregressive (MAF)'}
DECOMPOSITIONS = ('', 'PLU', 'LU', 'QR')
COUPLINGS = {0: 'additive', 1: 'affine'}
COMPUTE_DTYPES = ('float32', 'bfloat16', 'float16')
OPTIMIZERS = ('adam', 'adamax', 'adam2')
LOCAL_BATCH_TEST = {64: 50, 32: 25, 28: 25, 16: 10, 8: 5, 4: 2, 2: 2, 1: 1}


@dataclasses.dataclass(frozen=True)
class ModelConfig:
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

    @property
    def n_bins(self):
        return 2 ** self.n_bits_x

    @property
    def n_dims(self):
        return math.prod(self.image_shape)

    def validate(self):
        if len(self.image_shape) != 3 or min(self.image_shape) < 1:
            raise ValueError(f'image_shape must be (height, width, channels), got {self.image_shape}')
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
        if not 1 <= self.n_bits_x <= 8:
            raise ValueError(f'n_bits_x must be in 1..8, got {self.n_bits_x}')
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

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f'unknown optimizer {self.optimizer!r}; allowed: {", ".join(OPTIMIZERS)}')
        if self.local_batch_train < 1:
            raise ValueError(f'n_batch_train={self.n_batch_train} at anchor_size={self.anchor_size} gives no images '
                             f'per batch at image_size={self.image_size}')
        if self.local_batch_train not in LOCAL_BATCH_TEST:
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
        return LOCAL_BATCH_TEST.get(self.local_batch_train, 1)

    @property
    def train_its(self):
        return int(math.ceil(self.n_train / (self.n_batch_train * self.n_processes)))

    @property
    def full_test_its(self):
        return self.n_test // (self.local_batch_test * self.n_processes)

    @property
    def beta2(self):
        return 1. - 1. / (self.train_its * self.polyak_epochs)
