"""TrainConfig refuses optimisation and schedule values out of range, naming the field."""
import math

import pytest

from emerging.training.config import TrainConfig

TINY = dict(n_train=64, n_test=50, n_batch_train=16, image_size=8, anchor_size=8, test_batch=10)


@pytest.mark.parametrize('field, value', [
    ('lr', 0.), ('lr', -1.), ('lr', math.nan), ('lr', math.inf), ('beta1', 1.), ('beta1', 2.), ('beta1', -0.1),
    ('polyak_epochs', 0.), ('polyak_epochs', -1.), ('weight_decay', 0.), ('weight_decay', 1.5),
    ('epochs_warmup', -1.), ('max_grad_norm', -1.), ('l2_decay', math.nan), ('save_every_minutes', -1.)])
def test_out_of_range_values_are_named(field, value):
    with pytest.raises(ValueError, match=f'^{field} must be'):
        TrainConfig(**TINY, **{field: value})


@pytest.mark.parametrize('field, value', [('beta1', 0.), ('weight_decay', 1.), ('epochs_warmup', 0.),
                                          ('save_every_minutes', 0.5), ('lr', 1e-5)])
def test_the_bounds_that_mean_something_are_allowed(field, value):
    assert getattr(TrainConfig(**TINY, **{field: value}), field) == value


def test_a_batch_without_a_test_batch_says_which_anchor_size_keeps_it():
    """`train.py --problem digits` at the default anchor 32 scales 64 images to 1024 per process."""
    with pytest.raises(ValueError, match=r'training batch 1024 \(n_batch_train=64 scaled by \(anchor_size=32 / '
                                         r'image_size=8\)\^2\).*pass anchor_size=8'):
        TrainConfig(n_train=64, n_test=50, n_batch_train=64, image_size=8, anchor_size=32)


@pytest.mark.parametrize('field, value', [
    ('n_test', 10 ** 9), ('n_test', 0), ('n_train', 10 ** 12), ('n_train', -1), ('n_batch_train', 10 ** 9),
    ('n_batch_init', 10 ** 9), ('image_size', 10 ** 6), ('anchor_size', 0), ('n_processes', 10 ** 9),
    ('epochs', 10 ** 12), ('epochs_full_valid', 0), ('epochs_full_sample', 0), ('test_batch', -1),
    ('test_batch', 10 ** 9), ('grad_accumulation', 10 ** 9)])
def test_counts_out_of_range_are_named(field, value):
    """A count that would make an epoch, a validation or a batch never end (or mean nothing) is refused."""
    with pytest.raises(ValueError, match=f'^{field}={value:,} is out of range: .*, ' + r'\d+ \.\. [\d,]+$'):
        TrainConfig(**{**TINY, field: value})


def test_a_batch_scaled_past_the_limit_is_named():
    """A large anchor_size multiplies the per-process batch: 16 * (4096 / 8)^2 images are refused."""
    with pytest.raises(ValueError, match=r'^local_batch_train=4,194,304 .*anchor_size=4096.* at most 65536'):
        TrainConfig(**{**TINY, 'anchor_size': 4096})


def test_the_largest_counts_are_allowed():
    from emerging.training.config import SIZES
    assert TrainConfig(**{**TINY, 'n_test': 10, 'n_train': SIZES['n_train'][1],
                          'epochs': SIZES['epochs'][1]}).train_its == SIZES['n_train'][1] // 16
