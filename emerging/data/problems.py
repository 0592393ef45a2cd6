"""The image problems (data sets) and what a run needs to know of each, TensorFlow-free.

* `PROBLEMS`: train.py's `--problem` values; `TFRECORD_PROBLEMS` read
  Glow-format TFRecord shards (tfrecords.py), the others are held in memory.
* `DEFAULT_IMAGE_SIZE`: train.py's `--image_size -1`; `N_Y`: the number of
  class labels (1 when a problem has none).
* `TRAIN_SIZE` / `default_n_test`: the training and test sets' sizes (train.py
  keeps the original's n_train of 50,000 for every problem but digits and
  space; the Residual Flows command line uses these); `check_n_test` refuses
  a validation longer than a test set of fixed size (the test stream repeats,
  so it would never end).
* digits: scikit-learn's 1,797 8x8 handwritten digits, the last
  `DIGITS_N_TEST` of them the test set.
* `DataConfig`: what `get_data` (images.py) builds one process's pipelines from, its
  sizes within `SIZES`.
"""
import dataclasses

TFRECORD_PROBLEMS = ('imagenet-oord', 'imagenet', 'celeba', 'lsun', 'lsun_realnvp')
PROBLEMS = ('digits', 'mnist', 'cifar10', 'space') + TFRECORD_PROBLEMS
DEFAULT_IMAGE_SIZE = {'digits': 8, 'mnist': 32, 'space': 64, 'cifar10': 32, 'imagenet-oord': 64,
                      'imagenet': 256, 'celeba': 256, 'lsun_realnvp': 64, 'lsun': 256}
N_Y = {'digits': 10, 'mnist': 10, 'cifar10': 10, 'imagenet-oord': 1000, 'imagenet': 1000}
DIGITS_N_TEST = 300
DIGITS_N_TRAIN = 1797 - DIGITS_N_TEST
TRAIN_SIZE = {'digits': DIGITS_N_TRAIN, 'mnist': 60000, 'cifar10': 50000, 'space': 5000,
              'imagenet-oord': 1281167, 'celeba': 27000}
AUGMENTATIONS = ('original', 'hflip')
#: the test sets whose size is fixed (the others are files of the user's: their size is known when read)
TEST_SIZE = {'digits': DIGITS_N_TEST, 'mnist': 10000, 'cifar10': 10000}
# DataConfig's counts: name -> (smallest, largest value)
SIZES = {'image_size': (1, 4096), 'channels': (1, 64), 'fmap': (1, 1024), 'pmap': (1, 1024),
         'local_batch_train': (1, 65536), 'local_batch_test': (1, 65536), 'local_batch_init': (1, 65536),
         'size': (1, 65536)}


def default_n_test(problem: str, n_processes: int) -> int:
    """The test images a full validation reads.

    Args:
      problem: one of `PROBLEMS`.
      n_processes: the number of processes (LSUN's 300 validation images are per process, as the original's).

    Returns:
      The number of test images.
    """
    if problem in ('lsun', 'lsun_realnvp'):
        return 300 * n_processes
    return {'digits': DIGITS_N_TEST, 'mnist': 10000, 'space': 5000, 'cifar10': 10000, 'imagenet-oord': 50000,
            'imagenet': 50000, 'celeba': 3000}[problem]


def check_n_test(problem: str, n_test: int, flag: str = '--n_test') -> None:
    """Refuse more test images than a test set of fixed size holds.

    Args:
      problem: one of `PROBLEMS`.
      n_test: the test images a validation reads.
      flag: how the value is named in the message.

    Raises:
      ValueError: naming the flag, the value and the test set's size.
    """
    if problem in TEST_SIZE and n_test > TEST_SIZE[problem]:
        raise ValueError(f'{flag} {n_test:,} is more than the {problem} test set holds ({TEST_SIZE[problem]:,} '
                         f'images): a validation reads each test image once')


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """One process's input pipelines.

    Args:
      problem: one of `PROBLEMS`.
      data_dir: the data folder (tfds data_dir, the galaxy pickle, or the TFRecord shards' folder).
      category: LSUN's category, appended to data_dir.
      image_size: images are block-averaged down or repeated up to this size.
      channels: 3, or 1 (mnist only).
      dal: the original's augmentation level 0, 1 or 2.
      fmap, pmap: parallel file reads and map calls.
      local_batch_train, local_batch_test, local_batch_init: this process's batch sizes.
      rank, size: this process and the number of processes (each takes its contiguous 1/size).
      seed: the shuffle and augmentation seed of this process.
      augmentation: 'original' (by dal) or 'hflip' (random horizontal flips only).
    """
    problem: str = 'digits'
    data_dir: str = ''
    category: str = ''
    image_size: int = 8
    channels: int = 3
    dal: int = 1
    fmap: int = 1
    pmap: int = 16
    local_batch_train: int = 64
    local_batch_test: int = 50
    local_batch_init: int = 256
    rank: int = 0
    size: int = 1
    seed: int = 0
    augmentation: str = 'original'

    def __post_init__(self):
        for name, (smallest, largest) in SIZES.items():
            if not smallest <= getattr(self, name) <= largest:
                raise ValueError(f'{name} must be {smallest} .. {largest}, got {getattr(self, name)}')
        if not 0 <= self.rank < self.size:
            raise ValueError(f'rank must be 0 .. size - 1 = {self.size - 1}, got {self.rank}')
        if self.problem not in PROBLEMS:
            raise ValueError(f'unknown problem {self.problem!r}; allowed: {", ".join(PROBLEMS)}')
        if self.dal not in (0, 1, 2):
            raise ValueError(f'--dal must be 0, 1 or 2, got {self.dal}')
        if self.augmentation not in AUGMENTATIONS:
            raise ValueError(f"augmentation must be 'original' or 'hflip', got {self.augmentation!r}")
