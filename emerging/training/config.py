"""`TrainConfig`: the optimisation and schedule of a run, with the original's derived values in one place.

* per-process batches are scaled to the image size: local_batch_train =
  n_batch_train * anchor_size^2 // image_size^2 (local_batch_init likewise);
* the per-process test batch comes from the original's table
  {64: 50, 32: 25, 28: 25, 16: 10, 8: 5, 4: 2, 2: 2, 1: 1}[local_batch_train];
* train_its = ceil(n_train / (n_batch_train * processes)) steps per epoch;
  full_test_its = n_test / (local_batch_test * processes), which must divide evenly;
* beta2 = 1 - 1 / (train_its * polyak_epochs), the second-moment decay of
  adamax / adam and the decay of the Polyak average.

Every count is checked against `SIZES` first (far above any published run), so
that a value read from a flag or a run's files that would make an epoch, a
validation or a batch never end is refused before anything starts.

The last fields (a fixed test batch and beta2, a separate average decay,
gradient accumulation, clipping and L2 decay) default to the original's
behaviour; the Residual Flows command line sets them.  TensorFlow-free.
"""
import dataclasses
import math

from emerging.choices import OPTIMIZERS, described

LOCAL_BATCH_TEST = {64: 50, 32: 25, 28: 25, 16: 10, 8: 5, 4: 2, 2: 2, 1: 1}
MAX_BATCH = 65536
# the counts: name -> (smallest, largest value, what it counts)
SIZES = {
    'n_train': (1, 10 ** 9, 'training images per epoch'),
    'n_test': (1, 10 ** 8, 'test images per validation'),
    'n_batch_train': (1, MAX_BATCH, 'images per training batch'),
    'n_batch_init': (1, MAX_BATCH, 'images of the initialisation batch'),
    'image_size': (1, 4096, 'pixels per image side'),
    'anchor_size': (1, 4096, 'pixels per image side'),
    'n_processes': (1, MAX_BATCH, 'processes'),
    'epochs': (1, 10 ** 9, 'epochs'),
    'epochs_full_valid': (1, 10 ** 9, 'epochs'),
    'epochs_full_sample': (1, 10 ** 9, 'epochs'),
    'test_batch': (0, MAX_BATCH, 'images per test batch (0: the original table)'),
    'grad_accumulation': (1, MAX_BATCH, 'micro-batches per update'),
}
# the optimisation fields' ranges: name -> (test of a finite value, what it must be)
RANGES = {
    'lr': (lambda v: v > 0., 'a positive learning rate'),
    'beta1': (lambda v: 0. <= v < 1., 'a decay in [0, 1)'),
    'polyak_epochs': (lambda v: v > 0., 'a positive number of epochs'),
    'weight_decay': (lambda v: 0. < v <= 1., 'a multiplicative decay per step in (0, 1] (1: off)'),
    'epochs_warmup': (lambda v: v >= 0., 'a number of epochs >= 0'),
    'max_grad_norm': (lambda v: v >= 0., 'a norm >= 0 (0: off)'),
    'l2_decay': (lambda v: v >= 0., 'a decay >= 0'),
    'save_every_minutes': (lambda v: v >= 0., 'minutes >= 0 (0: off)'),
}


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation and schedule; per-process values derived as the original does (see the module docstring).

    Args: the fields below (train.py's flags of the same names, `use_polyak_for_eval` its --polyak_eval).
    """
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
    save_every_minutes: float = 0.  # also checkpoint within an epoch this often; 0: at epoch ends only

    def __post_init__(self):
        self._check_sizes()
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f'unknown optimizer {self.optimizer!r}; allowed: {described(OPTIMIZERS)}')
        if self.local_batch_train < 1:
            raise ValueError(f'n_batch_train={self.n_batch_train} at anchor_size={self.anchor_size} gives no images '
                             f'per batch at image_size={self.image_size}')
        for name, local in (('local_batch_train', self.local_batch_train), ('local_batch_init', self.local_batch_init)):
            if local > MAX_BATCH:
                raise ValueError(f'{name}={local:,} (n_batch_train={self.n_batch_train}, n_batch_init='
                                 f'{self.n_batch_init} scaled by (anchor_size={self.anchor_size} / image_size='
                                 f'{self.image_size})^2) is too large: at most {MAX_BATCH} images per batch')
        if self.local_batch_train % self.grad_accumulation:
            raise ValueError(f'per-process batch {self.local_batch_train} is not divisible into grad_accumulation='
                             f'{self.grad_accumulation} micro-batches')
        if not 0. <= self.fixed_beta2 < 1. or not 0. <= self.ema_decay < 1.:
            raise ValueError(f'fixed_beta2 and ema_decay must be in [0, 1), got {self.fixed_beta2}, {self.ema_decay}')
        if not self.test_batch and self.local_batch_train not in LOCAL_BATCH_TEST:
            raise ValueError(f'per-process training batch {self.local_batch_train} (n_batch_train={self.n_batch_train} '
                             f'scaled by (anchor_size={self.anchor_size} / image_size={self.image_size})^2) has no '
                             f'test batch in the original table; allowed: {sorted(LOCAL_BATCH_TEST)}. For '
                             f'{self.image_size}x{self.image_size} images pass anchor_size={self.image_size} to keep '
                             f'n_batch_train as it is')
        if self.n_test % (self.local_batch_test * self.n_processes):
            raise ValueError(
                f'n_test={self.n_test} is not divisible by local_batch_test * processes = '
                f'{self.local_batch_test} * {self.n_processes}: the original requires full test batches; '
                f'pick --n_test as a multiple of {self.local_batch_test * self.n_processes}')
        for name, (fits, meaning) in RANGES.items():
            value = getattr(self, name)
            if not (math.isfinite(value) and fits(value)):
                raise ValueError(f'{name} must be {meaning}, got {value}')

    def _check_sizes(self):
        """Raise ValueError naming the first count outside its range in `SIZES`."""
        for name, (smallest, largest, meaning) in SIZES.items():
            value = getattr(self, name)
            if not smallest <= value <= largest:
                raise ValueError(f'{name}={value:,} is out of range: {meaning}, {smallest} .. {largest:,}')

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
