"""The model configurations' size limits and memory estimates (emerging/models/config.py, limits.py).

The estimates are compared with built models (every stored value counted); the limits are checked to refuse
the sizes of the issue (10^9 steps, channels, pixels, blocks) by name and without building anything, and to
accept every published architecture on a machine of 24 GB.
"""
import time

import pytest

from emerging.errors import InputError
from emerging.models import limits
from emerging.models.config import GlowConfig, ResFlowConfig

TINY_GLOW = dict(image_shape=(8, 8, 3), n_levels=2, depth=2, width=16)
TINY_RESFLOW = dict(image_shape=(16, 16, 3), n_blocks=(2, 2), idim=16, fc_idim=8, fc_nblocks=2)
GIB = 2 ** 30
# the machine README's published command lines must fit: 2 vCPUs and 24 GB, this project's and its CI's
PUBLISHED_MACHINE = 24 * 10 ** 9


def stored(weights):
    return sum(int(w.shape.num_elements()) for w in weights)


@pytest.mark.parametrize('fields', [
    dict(flow_permutation=0), dict(flow_permutation=1, flow_coupling=1, learnprior=True),
    dict(flow_permutation=2, decomposition='PLU', learnprior=True, ycond=True, n_y=10),
    dict(flow_permutation=2, decomposition='QR', flow_coupling=1, ycond=True, n_y=10, weight_y=0.5),
    dict(flow_permutation=3, flow_coupling=1, learnprior=True), dict(flow_permutation=4, learnprior=True),
    dict(flow_permutation=5, decomposition='LU', flow_coupling=1)])
def test_glow_estimates_are_the_built_models_values(fields):
    from emerging.models.glow import Glow
    config = GlowConfig(**{**TINY_GLOW, **fields})
    model = Glow(config)
    assert limits.parameter_count(config) == stored(model.trainable_weights)
    assert limits.stored_values(config) == stored(model.weights)
    # parameter_counts() counts free parameters (a masked or triangular kernel's free entries): never more
    assert model.parameter_counts()['total'] <= limits.parameter_count(config)


@pytest.mark.parametrize('fields', [
    dict(), dict(factor_out=True), dict(squeeze_first=True, fc_end=False, activation='elu', kernels='3-1-1-3'),
    dict(actnorm=False, preact=False, first_resblock=False)])
def test_resflow_estimates_are_the_built_models_values(fields):
    from emerging.models.resflow import ResFlow
    config = ResFlowConfig(**{**TINY_RESFLOW, **fields})
    model = ResFlow(config)
    assert limits.parameter_count(config) == model.parameter_counts()['total'] == stored(model.trainable_weights)
    assert limits.stored_values(config) == stored(model.weights)


@pytest.mark.parametrize('cls,fields,named', [
    (GlowConfig, dict(depth=10 ** 9), 'depth=1000000000 is too large'),
    (GlowConfig, dict(width=10 ** 9), 'width=1000000000 is too large'),
    (GlowConfig, dict(n_levels=10 ** 9), 'n_levels=1000000000 is too large'),
    (GlowConfig, dict(image_shape=(2 ** 20, 2 ** 20, 3)), 'image height=1048576 is too large'),
    (GlowConfig, dict(image_shape=(32, 32, 10 ** 6)), 'image channels=1000000 is too large'),
    (GlowConfig, dict(n_y=10 ** 12, ycond=True), 'n_y=1000000000000 is too large'),
    (ResFlowConfig, dict(n_blocks=(10 ** 9, 16)), 'n_blocks=1000000000 is too large'),
    (ResFlowConfig, dict(n_blocks=(1,) * 1000), 'len(n_blocks)=1000 is too large'),
    (ResFlowConfig, dict(idim=10 ** 9), 'idim=1000000000 is too large'),
    (ResFlowConfig, dict(fc_nblocks=10 ** 9), 'fc_nblocks=1000000000 is too large'),
    (ResFlowConfig, dict(n_power_series=10 ** 9), 'n_power_series=1000000000 is too large'),
    (ResFlowConfig, dict(n_exact_terms=10 ** 9), 'n_exact_terms=1000000000 is too large'),
    (ResFlowConfig, dict(kernels='3-999-3'), 'kernel size=999 is too large'),
])
def test_huge_sizes_are_named_before_anything_is_built(cls, fields, named):
    start = time.perf_counter()
    with pytest.raises(InputError) as error:
        cls(**fields)
    assert named in str(error.value) and 'at most' in str(error.value)
    # refused by arithmetic on the fields alone: far quicker than building even the smallest model
    assert time.perf_counter() - start < 1.


@pytest.mark.parametrize('cls,fields,named', [
    (GlowConfig, dict(depth=0), 'depth must be positive'),
    (GlowConfig, dict(width=-5), 'width must be positive'),
    (GlowConfig, dict(n_y=0), 'n_y must be positive'),
    (GlowConfig, dict(seed=-1), 'seed must not be negative'),
    (GlowConfig, dict(weight_y=float('nan')), 'weight_y must be a finite number'),
    (ResFlowConfig, dict(n_blocks=(16, 0)), 'n_blocks must be positive'),
    (ResFlowConfig, dict(n_blocks=()), 'n_blocks needs'),
    (ResFlowConfig, dict(n_power_series=0), 'n_power_series must be positive'),
    (ResFlowConfig, dict(n_exact_terms=-1), 'n_exact_terms must not be negative'),
    (ResFlowConfig, dict(kernels='3-x-3'), 'kernels must be two or more kernel sizes'),
    (ResFlowConfig, dict(kernels='3'), 'kernels must be two or more kernel sizes'),
    (ResFlowConfig, dict(sn_tol=float('inf')), 'sn_tol must be a finite tolerance'),
])
def test_zero_negative_and_malformed_sizes_are_named(cls, fields, named):
    with pytest.raises(ValueError, match=named.replace('(', r'\(')):
        cls(**fields)


def test_memory_past_the_machine_is_named_with_what_it_needs_and_has():
    """Within every field's limit, but 16384 channels in 1024 steps per level do not fit this machine."""
    config = dict(depth=1024, width=16384)
    with pytest.raises(InputError) as error:
        GlowConfig(**config)
    message = str(error.value)
    assert 'depth=1024, width=16384' in message and 'needs at least' in message
    assert f'this machine has {limits.size_text(limits.physical_memory())}' in message


def test_the_estimate_is_what_the_message_reports(monkeypatch):
    config = GlowConfig(**TINY_GLOW)
    needed = (limits.stored_values(config) + limits.activation_values(config)) * limits.BYTES_PER_VALUE
    monkeypatch.setattr(limits, 'physical_memory', lambda: needed - 1)
    with pytest.raises(InputError) as error:
        GlowConfig(**TINY_GLOW)
    assert f'{limits.parameter_count(config):,} parameters' in str(error.value)
    assert f'needs at least {limits.size_text(needed)}' in str(error.value)
    monkeypatch.setattr(limits, 'physical_memory', lambda: needed)
    GlowConfig(**TINY_GLOW)


def test_one_image_larger_than_memory_is_refused():
    """The largest image side accepted, at the widest network: one image's activations do not fit."""
    limit = limits.FIELD_LIMITS['image_side'][0]
    with pytest.raises(InputError, match='of activations for one image'):
        GlowConfig(image_shape=(limit, limit, 3), n_levels=2, depth=1, width=limits.FIELD_LIMITS['width'][0])


def test_a_batch_past_the_machine_is_named():
    config = GlowConfig(**TINY_GLOW)
    per_image = limits.activation_values(config) * limits.BYTES_PER_VALUE
    batch = limits.physical_memory() // per_image + 1
    with pytest.raises(InputError, match=f'with --n {batch} .*activations for {batch:,} images'):
        limits.check_memory(config, batch, f'--n {batch}')
    limits.check_memory(config, 1, '--n 1')


def published_runs():
    """The RunConfigs of every published command line this port runs as printed (both command lines)."""
    import shlex

    from emerging.cli import train, train_resflow
    from tests.cli.test_train_flags import PUBLISHED as GLOW_LINES
    from tests.cli.test_train_resflow import PUBLISHED as RESFLOW_LINES
    runs = [train.derive(train.build_parser().parse_args(shlex.split(line)[2:])) for line in GLOW_LINES]
    runs += [train_resflow.derive(train_resflow.build_parser().parse_args(shlex.split(line)))
             for line in RESFLOW_LINES]
    return runs


def test_published_architectures_fit_a_24_gb_machine(monkeypatch):
    monkeypatch.setattr(limits, 'physical_memory', lambda: PUBLISHED_MACHINE)
    runs = published_runs()
    assert {run.model.image_shape[0] for run in runs} >= {32, 64, 256}
    for run in runs:
        limits.check_memory(run.model, run.train.local_batch_test, 'the test batch')
        limits.check_memory(run.model, run.train.local_batch_train, 'the training batch')
    largest = max(runs, key=lambda run: limits.parameter_count(run.model))
    # the largest is far from the limit: its weights take a few percent of the machine
    assert limits.stored_values(largest.model) * limits.BYTES_PER_VALUE < PUBLISHED_MACHINE / 10


def test_config_json_sizes_are_named_with_the_file(tmp_path):
    """Through the config reader: the file and the field named, as `emerging evaluate` prints them."""
    import json

    from emerging.runs.folder import read_config
    for field, value in (('depth', 10 ** 9), ('width', 10 ** 9), ('image_shape', [10 ** 9, 10 ** 9, 3])):
        model = {**GlowConfig(**TINY_GLOW).to_dict(), field: value}
        (tmp_path / 'config.json').write_text(json.dumps({'model_kind': 'glow', 'model': model}))
        with pytest.raises(InputError) as error:
            read_config(str(tmp_path))
        assert str(tmp_path / 'config.json') in str(error.value) and 'is too large' in str(error.value)
