"""A run folder's config.json and train.txt are checked before use: each fault is an InputError naming the file;
checkpoint paths resolve (a prefix, a folder, a run, the original's model_best_loss.ckpt name)."""
import json
import os

import pytest
import tensorflow as tf

from emerging.errors import InputError
from emerging.models.config import GlowConfig
from emerging.runs.checkpoints import commit
from emerging.runs.folder import read_config, resolve_checkpoint, write_best

GLOW = GlowConfig(image_shape=(8, 8, 3), n_levels=2, depth=2, width=16).to_dict()
BAD_CONFIGS = {
    'empty': ('', 'is not valid JSON'),
    'a list': ('[1, 2]', 'holds a JSON list, not the object'),
    'no model': ('{"model_kind": "glow"}', 'lacks "model"'),
    'model not an object': ('{"model": 3}', '"model" must be a JSON object'),
    'unknown kind': (json.dumps({'model_kind': 'realnvp', 'model': GLOW}), "unknown model kind 'realnvp'"),
    'wrong type': (json.dumps({'model_kind': 'glow', 'model': dict(GLOW, depth='two')}),
                   "depth must be an integer, got 'two'"),
    'a bool for a number': (json.dumps({'model_kind': 'glow', 'model': dict(GLOW, width=True)}),
                            'width must be an integer, got True'),
    'unknown key': (json.dumps({'model_kind': 'glow', 'model': dict(GLOW, colour='red')}),
                    "unknown field 'colour'"),
    'bad value': (json.dumps({'model_kind': 'glow', 'model': dict(GLOW, n_levels=5)}), 'not divisible by 2'),
    'bad shape': (json.dumps({'model_kind': 'glow', 'model': dict(GLOW, image_shape=[8, 'x', 3])}),
                  'image_shape must be a list of integers'),
}


@pytest.mark.parametrize('case', list(BAD_CONFIGS))
def test_a_bad_config_json_is_named(tmp_path, case):
    text, expected = BAD_CONFIGS[case]
    (tmp_path / 'config.json').write_text(text)
    with pytest.raises(InputError, match=str(tmp_path / 'config.json')) as error:
        read_config(str(tmp_path))
    assert expected in str(error.value)


@pytest.mark.parametrize('first_line, expected', [
    ('', 'is not valid JSON'), ('[]', 'holds a JSON list'), ('{"depth": 2}', 'lack image_size'),
    ('{"image_size": 8, "n_levels": 2, "depth": "x", "width": 4, "flow_permutation": 2}', 'invalid literal')])
def test_a_bad_train_txt_is_named(tmp_path, first_line, expected):
    (tmp_path / 'train.txt').write_text(first_line + '\n')
    with pytest.raises(InputError, match=str(tmp_path / 'train.txt')) as error:
        read_config(str(tmp_path))
    assert expected in str(error.value)


def test_checkpoint_paths_resolve(tmp_path):
    checkpoint = tf.train.Checkpoint(v=tf.Variable(1.))
    run = str(tmp_path / 'run')
    best = write_best(checkpoint, run, 'ckpt-2')
    latest = commit(checkpoint, os.path.join(run, 'checkpoints'), 'ckpt-3')
    assert resolve_checkpoint(best) == best
    assert resolve_checkpoint(run) == best
    assert resolve_checkpoint(os.path.join(run, 'model_best_loss.ckpt')) == best  # the original's name
    assert resolve_checkpoint(os.path.join(run, 'checkpoints')) == latest
    assert write_best(checkpoint, run, 'ckpt-2').endswith('ckpt-2-1')  # a new name, never the committed one
    legacy = checkpoint.write(str(tmp_path / 'old' / 'model_best_loss.ckpt'))  # an earlier version's best
    assert resolve_checkpoint(legacy) == legacy == resolve_checkpoint(str(tmp_path / 'old'))
    with pytest.raises(InputError, match='no checkpoint at'):
        resolve_checkpoint(str(tmp_path / 'nothing'))
