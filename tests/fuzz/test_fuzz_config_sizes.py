"""Fuzzing the sizes of config.json's "model" through the config reader (emerging.runs.folder.read_config).

The shipped digits model's config.json (a Glow) and a small Residual Flow's are mutated as bytes, and field by
field: every size field set to huge, negative, zero, fractional, non-finite or wrongly typed values (kind
`config_sizes`).  A configuration the reader returns must be within the size limits and fit this machine's
memory; anything else must be an InputError, at once (the contract's time and memory bounds).
"""
import json
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emerging.models import limits
from emerging.models.config import ResFlowConfig
from emerging.runs.folder import PRETRAINED, read_config
from tests.fuzz.contract import FUZZ, holds, mutated, regression_files

with open(os.path.join(PRETRAINED, 'digits', 'config.json'), 'rb') as f:
    GLOW = f.read()
RESFLOW = json.dumps({'model_kind': 'resflow', 'hparams': {},
                      'model': ResFlowConfig(image_shape=(16, 16, 3), n_blocks=(2, 2), idim=16).to_dict()},
                     indent=1).encode()
SIZE_FIELDS = {'glow': ('image_shape', 'n_levels', 'depth', 'width', 'n_y', 'n_bits_x', 'seed'),
               'resflow': ('image_shape', 'n_blocks', 'idim', 'kernels', 'fc_nblocks', 'fc_idim',
                           'n_lipschitz_iters', 'n_power_series', 'n_samples', 'n_exact_terms', 'n_bits_x', 'seed')}
VALUES = (10 ** 9, 10 ** 18, 2 ** 63, 2 ** 64 + 1, 10 ** 400, -1, 0, -10 ** 9, 1.5, 1e308, float('inf'),
          float('nan'), '7', '3-1000000-3', '', None, True, [], {}, [1, 2], [10 ** 9] * 3, [8, 8, 10 ** 9],
          [0, 8, 3], [2 ** 31] * 64)


def read(folder, data):
    """read_config of a run folder whose config.json holds `data`; the configuration, checked against the
    limits when one is returned."""
    with open(os.path.join(folder, 'config.json'), 'wb') as f:
        f.write(data)
    config, _ = read_config(folder)
    limits.check_fields(config)
    assert limits.stored_values(config) * limits.BYTES_PER_VALUE <= limits.physical_memory()
    return config


def changed(valid: bytes, field: str, value) -> bytes:
    config = json.loads(valid)
    config['model'][field] = value
    return json.dumps(config).encode()


def test_the_valid_files_read(tmp_path):
    assert read(str(tmp_path), GLOW).kind == 'glow' and read(str(tmp_path), RESFLOW).kind == 'resflow'


@FUZZ
@given(data=mutated(GLOW))
def test_mutated_glow_config(tmp_path, data):
    holds('config_sizes', data, read, str(tmp_path), data)


@FUZZ
@given(data=mutated(RESFLOW))
def test_mutated_resflow_config(tmp_path, data):
    holds('config_sizes', data, read, str(tmp_path), data)


@FUZZ
@given(kind=st.sampled_from(sorted(SIZE_FIELDS)), draw=st.data(), value=st.sampled_from(VALUES))
def test_size_fields_changed(tmp_path, kind, draw, value):
    field = draw.draw(st.sampled_from(SIZE_FIELDS[kind]))
    data = changed(GLOW if kind == 'glow' else RESFLOW, field, value)
    holds('config_sizes', data, read, str(tmp_path), data)


@pytest.mark.parametrize('data', regression_files('config_sizes'))
def test_kept_inputs(tmp_path, data):
    holds('config_sizes', data, read, str(tmp_path), data)
