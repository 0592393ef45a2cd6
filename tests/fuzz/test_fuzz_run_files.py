"""The readers of a run folder's own files keep the contract of contract.py on mutated files: config.json
(`read_config`), a log's first line and epoch lines as --resume reads them (`read_hparams_line`, `ResultLogger`),
the checkpoint pointer (`committed`), a checkpoint's manifest (`verify`) and an input-position file, its data
and its index (`read_input_position`, the TensorFlow reader of files without a manifest).  Each is given
bytes-level mutations of a valid file, the fields of the valid file changed to huge, negative and wrongly typed
values, and the kept failing inputs of its kind."""
import json
import os

import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from emerging.models.config import GlowConfig
from emerging.runs.checkpoints import MANIFEST, POINTER, commit, committed, verify
from emerging.runs.folder import CONFIG_FILE, read_config, read_hparams_line
from emerging.training.recorder import ResultLogger
from emerging.training.state import read_input_position
from tests.fuzz.contract import FUZZ, holds, mutated, regression_files

MODEL = GlowConfig(image_shape=(8, 8, 3), n_levels=2, depth=2, width=16, flow_permutation=3).to_dict()
HPARAMS = {'problem': 'digits', 'image_size': 8, 'n_levels': 2, 'depth': 2, 'width': 16, 'flow_permutation': 3,
           'flow_coupling': 1, 'n_batch_train': 32, 'seed': 0}
CONFIG = json.dumps({'emerging_version': '0.3.0', 'model_kind': 'glow', 'model': MODEL, 'hparams': HPARAMS},
                    indent=1).encode()
TRAIN_TXT = (json.dumps(HPARAMS) + '\n' + ''.join(
    json.dumps({'epoch': e, 'n_processed': 64 * e, 'n_images': 64 * e, 'train_time': e, 'loss': '4.1000'}) + '\n'
    for e in (1, 2, 3))).encode()
POINTER_TEXT = b'model_checkpoint_path: "ckpt-3"\nall_model_checkpoint_paths: "ckpt-2"\n' \
               b'all_model_checkpoint_paths: "ckpt-3"\n'
# values a field is changed to: huge, negative, of every JSON type, nested
ODD_VALUES = st.sampled_from([10 ** 30, -1, -10 ** 30, 0, 1e308, -0.5, '', 'two', None, True, [], [1, 2, 3], {},
                              {'a': 1}, '9' * 5000, [[[[[]]]]]])


def changed_fields(document: dict):
    """A strategy: `document` with one to three fields (at any depth, in dicts) set to odd values, as bytes."""
    paths = []

    def walk(value, path):
        if isinstance(value, dict):
            for key, child in value.items():
                paths.append(path + (key,))
                walk(child, path + (key,))
    walk(document, ())

    @st.composite
    def strategy(draw):
        changed = json.loads(json.dumps(document))
        for path in draw(st.lists(st.sampled_from(paths), min_size=1, max_size=3)):
            parent = changed
            for key in path[:-1]:
                parent = parent.get(key) if isinstance(parent, dict) else None
            if isinstance(parent, dict):
                parent[path[-1]] = draw(ODD_VALUES)
        return json.dumps(changed).encode()
    return strategy()


def write(path, data: bytes):
    with open(path, 'wb') as f:
        f.write(data)


# ---- config.json ----------------------------------------------------------------------------------------------

def read_config_json(folder, data):
    write(os.path.join(folder, CONFIG_FILE), data)
    return read_config(folder)


def test_the_valid_config_json_reads(tmp_path):
    model, hparams = read_config_json(str(tmp_path), CONFIG)
    assert model.to_dict() == GlowConfig.from_dict(MODEL).to_dict() and hparams == HPARAMS


@FUZZ
@given(data=st.one_of(mutated(CONFIG), changed_fields(json.loads(CONFIG))))
def test_config_json(tmp_path, data):
    holds('config_json', data, read_config_json, str(tmp_path), data)


@pytest.mark.parametrize('data', regression_files('config_json'))
def test_config_json_regressions(tmp_path, data):
    holds('config_json', data, read_config_json, str(tmp_path), data)


# ---- train.txt: the hyperparameter line (runs without config.json) and the epoch lines --resume keeps -------------

def read_train_log(folder, data):
    path = os.path.join(folder, 'train.txt')
    write(path, data)
    read_hparams_line(path)
    ResultLogger(path, {}, resume_epoch=2)  # keeps the first line and the lines of epochs up to 2
    return read_config(folder)


def test_the_valid_train_log_reads_and_keeps_epochs_up_to_the_checkpoint(tmp_path):
    _, hparams = read_train_log(str(tmp_path), TRAIN_TXT)
    assert hparams == HPARAMS
    with open(tmp_path / 'train.txt') as f:
        assert [json.loads(line).get('epoch') for line in f.read().splitlines()] == [None, 1, 2]


@FUZZ
@given(data=st.one_of(mutated(TRAIN_TXT), changed_fields(HPARAMS).map(lambda line: line + b'\n' + TRAIN_TXT.split(
    b'\n', 1)[1]), st.lists(changed_fields({'epoch': 1, 'loss': '4.1'}), min_size=1, max_size=3).map(
        lambda lines: TRAIN_TXT + b'\n'.join(lines) + b'\n')))
def test_train_log(tmp_path, data):
    holds('train_log', data, read_train_log, str(tmp_path), data)


@pytest.mark.parametrize('data', regression_files('train_log'))
def test_train_log_regressions(tmp_path, data):
    holds('train_log', data, read_train_log, str(tmp_path), data)


# ---- the checkpoint pointer -----------------------------------------------------------------------------------

def read_pointer(folder, data):
    write(os.path.join(folder, POINTER), data)
    return committed(folder)


def test_the_valid_pointer_reads(tmp_path):
    assert read_pointer(str(tmp_path), POINTER_TEXT) == ['ckpt-2', 'ckpt-3']


@FUZZ
@given(data=mutated(POINTER_TEXT))
def test_checkpoint_pointer(tmp_path, data):
    holds('checkpoint_pointer', data, read_pointer, str(tmp_path), data)


@pytest.mark.parametrize('data', regression_files('checkpoint_pointer'))
def test_checkpoint_pointer_regressions(tmp_path, data):
    holds('checkpoint_pointer', data, read_pointer, str(tmp_path), data)


# ---- a checkpoint's manifest ----------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    """A small committed checkpoint: (its prefix, its manifest's bytes)."""
    folder = str(tmp_path_factory.mktemp('checkpoint'))
    prefix = commit(tf.train.Checkpoint(w=tf.Variable(tf.range(12.)), step=tf.Variable(3)), folder, 'ckpt-3')
    with open(prefix + MANIFEST, 'rb') as f:
        return prefix, f.read()


def read_manifest(prefix, data):
    write(prefix + MANIFEST, data)
    return verify(prefix)


def test_the_valid_manifest_verifies(checkpoint):
    prefix, valid = checkpoint
    read_manifest(prefix, valid)


@FUZZ
@given(data=st.data())
def test_manifest(checkpoint, data):
    prefix, valid = checkpoint
    manifest = data.draw(st.one_of(mutated(valid), changed_fields(json.loads(valid))))
    holds('manifest', manifest, read_manifest, prefix, manifest)


@pytest.mark.parametrize('data', regression_files('manifest'))
def test_manifest_regressions(checkpoint, data):
    holds('manifest', data, read_manifest, checkpoint[0], data)


# ---- an input-position file -------------------------------------------------------------------------------------

def input_streams():
    """The iterators and generator of an input position, as the trainer holds them (a tiny stand-in)."""
    dataset = tf.data.Dataset.range(100).shuffle(10, seed=1).batch(4).repeat()
    return tf.train.Checkpoint(train=iter(dataset), rng=tf.random.Generator.from_seed(1))


@pytest.fixture(scope='module')
def input_position(tmp_path_factory):
    """An input position written as an earlier version wrote it (no manifest: TensorFlow's reader checks it):
    (its prefix, its index's bytes, its data's bytes)."""
    prefix = str(tmp_path_factory.mktemp('inputs') / 'input-rank0-3')
    streams = input_streams()
    next(streams.train)
    streams.write(prefix)
    with open(prefix + '.index', 'rb') as f, open(prefix + '.data-00000-of-00001', 'rb') as g:
        return prefix, f.read(), g.read()


def read_position(prefix, index, data):
    write(prefix + '.index', index)
    write(prefix + '.data-00000-of-00001', data)
    return read_input_position(input_streams(), prefix)


def test_the_valid_input_position_reads(input_position):
    prefix, index, data = input_position
    read_position(prefix, index, data)


# each example runs TensorFlow's reader: fewer of them
INPUT_FUZZ = settings(parent=FUZZ, max_examples=min(FUZZ.max_examples, 40))


@INPUT_FUZZ
@given(draw=st.data())
def test_input_position(input_position, draw):
    prefix, index, data = input_position
    data = draw.draw(mutated(data))
    holds('input_position', data, read_position, prefix, index, data)


@INPUT_FUZZ
@given(draw=st.data())
def test_input_position_index(input_position, draw):
    prefix, index, data = input_position
    index = draw.draw(mutated(index))
    holds('input_position_index', index, read_position, prefix, index, data)


@pytest.mark.parametrize('data', regression_files('input_position'))
def test_input_position_regressions(input_position, data):
    prefix, index, _ = input_position
    holds('input_position', data, read_position, prefix, index, data)


@pytest.mark.parametrize('index', regression_files('input_position_index'))
def test_input_position_index_regressions(input_position, index):
    prefix, _, data = input_position
    holds('input_position_index', index, read_position, prefix, index, data)
