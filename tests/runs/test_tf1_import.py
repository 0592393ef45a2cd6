"""Importing checkpoints of the original TF1 code (scripts/import_tf1_checkpoint.py).

The tests write TF1-format checkpoints themselves with tf.compat.v1 variables
named and shaped as the original's (spelled out again below, independently
of emerging/runs/tf1_import.py), and compare the imported model's
objective with a direct transcription of the original's graph in raw TF ops.
"""
import math
import os
import runpy
import sys

import numpy as np
import pytest
import tensorflow as tf

from emerging.cli import train as train_cli
from emerging.errors import InputError
from emerging.models.base import standard_normal_log_prob
from emerging.models.config import GlowConfig
from emerging.models.glow import Glow
from emerging.runs.folder import best_checkpoint
from emerging.runs.tf1_import import CheckpointMismatch, import_tf1_checkpoint
from tests.helpers import DIGITS, ROOT, TINY

HIDDEN = 96  # hidden depth of the autoregressive layers


def original_variables(config, rng):
    """{name: random array} for every weight the original creates for `config`."""
    height, width, channels = config.image_shape
    h, w, c = height // 2, width // 2, channels * 4
    out = {}

    def add(name, shape, dtype=np.float32):
        out[name] = (rng.normal(0., 0.05, shape) if dtype == np.float32 else np.zeros(shape)).astype(dtype)

    def conv_zeros(prefix, c_in, c_out, kernel=3):
        add(f'{prefix}/W', [kernel, kernel, c_in + (1 if kernel > 1 else 0), c_out])
        add(f'{prefix}/b', [1, 1, 1, c_out])
        add(f'{prefix}/logs', [1, c_out])

    for i in range(config.n_levels):
        for k in range(config.depth):
            p = f'model/{i}/{k}'
            add(f'{p}/actnorm_center/b', [1, 1, 1, c])
            add(f'{p}/actnorm_scale/logs', [1, 1, 1, c])
            perm = config.flow_permutation
            if perm == 1:
                order = rng.permutation(c)
                out[f'{p}/shuffle/indices'] = order.astype(np.int32)
                out[f'{p}/shuffle/indices_inverse'] = np.argsort(order).astype(np.int32)
            if perm in (2, 3, 5):
                if config.decomposition == '':
                    out[f'{p}/invconv/W'] = np.linalg.qr(rng.normal(size=[c, c]))[0].astype(np.float32)
                elif config.decomposition in ('PLU', 'LU'):
                    out[f'{p}/invconv/P'] = np.eye(c)[rng.permutation(c)].astype(np.float32)
                    add(f'{p}/invconv/L', [c, c])
                    add(f'{p}/invconv/U', [c, c])
                    out[f'{p}/invconv/sign_S'] = np.sign(rng.normal(size=c)).astype(np.float32)
                    add(f'{p}/invconv/log_S', [c])
                else:
                    out[f'{p}/invconv/S'] = (1. + rng.uniform(0., .2, c)).astype(np.float32)
                    add(f'{p}/invconv/U', [c, c])
                    for j in range(c):
                        out[f'{p}/invconv/v_{j}'] = rng.normal(size=c).astype(np.float32)
            if perm == 3:
                for name in ('W1', 'W2'):
                    kernel = rng.normal(0., 0.02, [3, 3, c, c])
                    kernel[1, 1] += np.eye(c)
                    out[f'{p}/emerging/{name}'] = kernel.astype(np.float32)
                add(f'{p}/emerging/b', [1, 1, 1, c])  # stored 4-D: imported by squeezing
            if perm == 4:
                kernel = rng.normal(0., 0.02, [3, 3, c, c])
                kernel[1, 1] += np.linalg.qr(rng.normal(size=[c, c]))[0]
                out[f'{p}/fourier/W'] = kernel.astype(np.float32)
                add(f'{p}/fourier/b', [c])
            if perm == 5:
                for maf in ('maf1', 'maf2'):
                    for j, shape in enumerate([[3, 3, c, HIDDEN], [1, 1, HIDDEN, HIDDEN], [3, 3, HIDDEN, 2 * c]]):
                        add(f'{p}/{maf}/{j}/W', shape)
                        add(f'{p}/{maf}/{j}/b', [shape[-1]])
            add(f'{p}/f1/l_1/W', [3, 3, c // 2 + 1, config.width])
            add(f'{p}/f1/l_2/W', [1, 1, config.width, config.width])
            for layer in ('l_1', 'l_2'):
                add(f'{p}/f1/{layer}/actnorm_center/b', [1, 1, 1, config.width])
                add(f'{p}/f1/{layer}/actnorm_scale/logs', [1, 1, 1, config.width])
            conv_zeros(f'{p}/f1/l_last', config.width, c if config.flow_coupling == 1 else c // 2)
        if i < config.n_levels - 1:
            if config.learnprior:
                conv_zeros(f'model/pool{i}/conv', c // 2, c)
            h, w, c = h // 2, w // 2, c * 2
    if config.learnprior:
        conv_zeros('model/prior/p', 2 * c, 2 * c)
    if config.ycond:
        add('model/prior/y_emb/W', [config.n_y, 2 * c])
        add('model/prior/y_emb/b', [1, 2 * c])
        add('model/prior/y_emb/logs', [1, 2 * c])
        if config.weight_y > 0:
            add('model/classifier/W', [c, config.n_y])
            add('model/classifier/b', [1, config.n_y])
            add('model/classifier/logs', [1, config.n_y])
    return out


def write_tf1_checkpoint(path, variables):
    """A checkpoint as the original's tf.compat.v1.train.Saver wrote it."""
    with tf.Graph().as_default():
        tf_vars = [tf.compat.v1.Variable(value, name=name) for name, value in variables.items()]
        saver = tf.compat.v1.train.Saver(tf_vars)
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            return saver.save(session, str(path))


# ---- the original's graph, transcribed in raw TF ops (plain 1x1, affine coupling) -------------
def squeeze(x):
    n, h, w, c = x.shape
    x = tf.reshape(x, [-1, h // 2, 2, w // 2, 2, c])
    return tf.reshape(tf.transpose(x, [0, 1, 3, 5, 2, 4]), [-1, h // 2, w // 2, 4 * c])


def edge_conv(x, kernel):
    if kernel.shape[0] == 1:
        return tf.nn.conv2d(x, kernel, 1, 'VALID')
    x_pad = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
    border = tf.pad(tf.zeros_like(x[..., :1]), [[0, 0], [1, 1], [1, 1], [0, 0]], constant_values=1.)
    return tf.nn.conv2d(tf.concat([x_pad, border], -1), kernel, 1, 'VALID')


def gaussian_log_prob(x, mean, logsd):
    return tf.reduce_sum(-0.5 * (math.log(2 * math.pi) + 2. * logsd + (x - mean) ** 2 / tf.exp(2. * logsd)),
                         axis=[1, 2, 3])


def reference_objective(v, config, x, y):
    n_pixels = np.prod(x.shape[1:])
    objective = -math.log(2 ** config.n_bits_x) * n_pixels + tf.zeros([x.shape[0]])
    z = squeeze(tf.constant(x))

    def actnorm(t, prefix):
        return (t + v[f'{prefix}/actnorm_center/b']) * tf.exp(3. * v[f'{prefix}/actnorm_scale/logs'])

    def conv_zeros(t, prefix):
        return (edge_conv(t, v[f'{prefix}/W']) + v[f'{prefix}/b']) * tf.exp(3. * v[f'{prefix}/logs'])

    for i in range(config.n_levels):
        for k in range(config.depth):
            p = f'model/{i}/{k}'
            hw = z.shape[1] * z.shape[2]
            z = actnorm(z, p)
            objective += hw * 3. * np.sum(v[f'{p}/actnorm_scale/logs'])
            weight = v[f'{p}/invconv/W']
            z = tf.nn.conv2d(z, weight[None, None], 1, 'VALID')
            objective += hw * np.log(np.abs(np.linalg.det(weight.astype(np.float64))))
            half = z.shape[-1] // 2
            z1, z2 = z[..., :half], z[..., half:]
            h = tf.nn.relu(actnorm(edge_conv(z1, v[f'{p}/f1/l_1/W']), f'{p}/f1/l_1'))
            h = tf.nn.relu(actnorm(edge_conv(h, v[f'{p}/f1/l_2/W']), f'{p}/f1/l_2'))
            h = conv_zeros(h, f'{p}/f1/l_last')
            scale = tf.sigmoid(h[..., 1::2] + 2.)
            z = tf.concat([z1, (z2 + h[..., 0::2]) * scale], -1)
            objective += tf.reduce_sum(tf.math.log(scale), axis=[1, 2, 3])
        if i < config.n_levels - 1:
            half = z.shape[-1] // 2
            z1, z2 = z[..., :half], z[..., half:]
            h = conv_zeros(z1, f'model/pool{i}/conv')
            objective += gaussian_log_prob(z2, h[..., 0::2], h[..., 1::2])
            z = squeeze(z1)
    c = z.shape[-1]
    h = conv_zeros(tf.zeros([x.shape[0], z.shape[1], z.shape[2], 2 * c]), 'model/prior/p')
    onehot = tf.one_hot(y, config.n_y)
    emb = (onehot @ v['model/prior/y_emb/W'] + v['model/prior/y_emb/b']) * tf.exp(3. * v['model/prior/y_emb/logs'])
    h += tf.reshape(emb, [-1, 1, 1, 2 * c])
    objective += gaussian_log_prob(z, h[..., :c], h[..., c:])
    return objective.numpy()


def our_objective(model, x_float, y):
    z, log_det = model.bijector(tf.constant(y)).inverse_and_log_det(tf.constant(x_float))
    return (-math.log(model.config.n_bins) * model.config.n_dims + log_det + standard_normal_log_prob(z)).numpy()


REFERENCE_CONFIG = dict(image_shape=(8, 8, 3), n_levels=2, depth=2, width=8, flow_permutation=2, flow_coupling=1,
                        learnprior=True, ycond=True, n_y=10)


def test_imported_objective_equals_the_original_graph(tmp_path):
    config = GlowConfig(**REFERENCE_CONFIG)
    rng = np.random.default_rng(0)
    variables = original_variables(config, rng)
    x = (np.floor(rng.uniform(0, 256, [4, 8, 8, 3])) / 256. - .5 + rng.uniform(0, 1. / 256, [4, 8, 8, 3]))
    x = x.astype(np.float32)
    y = np.arange(4, dtype=np.int32)
    model = Glow(config)
    import_tf1_checkpoint(model, write_tf1_checkpoint(tmp_path / 'a' / 'model.ckpt', variables))
    assert bool(model.initialized.numpy())
    expected = reference_objective(variables, config, x, y)
    np.testing.assert_allclose(our_objective(model, x, y), expected, rtol=1e-5, atol=1e-2)
    # the imported weights are the ones used both ways: decode(encode(x)) == x
    # (`+ 0.`: a new tensor, so that TFP's cache does not simply hand back x)
    bijector = model.bijector(tf.constant(y))
    np.testing.assert_allclose(bijector.forward(bijector.inverse(tf.constant(x)) + 0.).numpy(), x, atol=1e-4)

    # change one weight of the original: the imported model follows the original's graph
    changed = dict(variables)
    changed['model/1/0/invconv/W'] = (variables['model/1/0/invconv/W'] * 1.5).astype(np.float32)
    changed_expected = reference_objective(changed, config, x, y)
    assert np.all(np.abs(changed_expected - expected) > 1.)
    model = Glow(config)
    import_tf1_checkpoint(model, write_tf1_checkpoint(tmp_path / 'b' / 'model.ckpt', changed))
    np.testing.assert_allclose(our_objective(model, x, y), changed_expected, rtol=1e-5, atol=1e-2)


@pytest.mark.parametrize('flow_permutation,decomposition,flow_coupling', [
    (0, '', 0), (1, '', 1), (2, 'PLU', 0), (2, 'QR', 1), (3, '', 1), (4, '', 0), (5, 'LU', 1)])
def test_every_variable_maps(tmp_path, flow_permutation, decomposition, flow_coupling):
    config = GlowConfig(image_shape=(8, 8, 3), n_levels=2, depth=1, width=8, flow_permutation=flow_permutation,
                         flow_coupling=flow_coupling, decomposition=decomposition, learnprior=True, ycond=True,
                         n_y=10, weight_y=0.5)
    variables = original_variables(config, np.random.default_rng(1))
    # Polyak averages and the optimiser's own variables are not weights: skipped
    extras = {'model/0/0/actnorm_center/b/ExponentialMovingAverage': np.zeros([1, 1, 1, 12], np.float32),
              'Variable': np.zeros([3], np.float32)}
    model = Glow(config)
    report = import_tf1_checkpoint(model, write_tf1_checkpoint(tmp_path / 'model.ckpt', {**variables, **extras}))
    assert sorted(report['imported']) == sorted(variables)
    assert sorted(report['skipped']) == sorted(extras)
    # every trainable weight of the model received a value from the checkpoint
    from emerging.runs.tf1_import import tf1_variable_map
    mapping = tf1_variable_map(model)
    assert {v.ref() for v in mapping.values()} >= {v.ref() for v in model.trainable_variables}
    for name, variable in mapping.items():
        np.testing.assert_array_equal(variable.numpy().reshape(-1), variables[name].reshape(-1), err_msg=name)
    # and the model still inverts exactly with them
    x = np.random.default_rng(2).uniform(-.5, .5, [2, 8, 8, 3]).astype(np.float32)
    y = tf.constant([1, 2])
    bijector = model.bijector(y)
    np.testing.assert_allclose(bijector.forward(bijector.inverse(tf.constant(x)) + 0.).numpy(), x, atol=1e-3)


def test_refuses_what_does_not_fit(tmp_path):
    config = GlowConfig(**REFERENCE_CONFIG)
    variables = original_variables(config, np.random.default_rng(3))
    bad = dict(variables)
    bad['model/0/0/emerging/W1'] = np.zeros([3, 3, 12, 12], np.float32)  # a different flow_permutation
    del bad['model/1/1/f1/l_2/W']
    bad['model/0/1/f1/l_1/W'] = np.zeros([3, 3, 7, 16], np.float32)  # a different width
    model = Glow(config)
    before = [v.numpy().copy() for v in model.variables]
    with pytest.raises(CheckpointMismatch) as error:
        import_tf1_checkpoint(model, write_tf1_checkpoint(tmp_path / 'model.ckpt', bad))
    message = str(error.value)
    assert 'model/0/0/emerging/W1' in message and '--flow_permutation' in message
    assert 'model/1/1/f1/l_2/W' in message and 'not in the checkpoint' in message
    assert 'model/0/1/f1/l_1/W: checkpoint [3, 3, 7, 16], model [3, 3, 7, 8]' in message
    # nothing was assigned
    for old, variable in zip(before, model.variables):
        np.testing.assert_array_equal(old, variable.numpy())
    with pytest.raises(InputError, match=r'missing\.ckpt\.index is missing'):
        import_tf1_checkpoint(model, str(tmp_path / 'missing.ckpt'))


def damage(prefix, how):
    """Damage the TF1 checkpoint at `prefix` as the issue found it: its data file missing, cut short, a byte
    flipped, or its index cut short; returns the damaged file."""
    data, index = prefix + '.data-00000-of-00001', prefix + '.index'
    if how == 'data missing':
        os.remove(data)
        return data
    path = index if how == 'index truncated' else data
    content = bytearray(open(path, 'rb').read())
    if how == 'data flipped':
        content[len(content) // 2] ^= 0x04
    else:
        del content[len(content) // 2:]
    with open(path, 'wb') as f:
        f.write(content)
    return path


DAMAGES = {'data missing': 'missing', 'data truncated': 'is truncated', 'data flipped': 'fails its checksum',
           'index truncated': 'is damaged'}


@pytest.mark.parametrize('how', DAMAGES)
def test_damaged_files_are_named_before_anything_is_assigned(tmp_path, how):
    config = GlowConfig(**REFERENCE_CONFIG)
    prefix = write_tf1_checkpoint(tmp_path / 'model.ckpt', original_variables(config, np.random.default_rng(5)))
    damaged = damage(prefix, how)
    model = Glow(config)
    before = [v.numpy().copy() for v in model.variables]
    with pytest.raises(InputError) as error:
        import_tf1_checkpoint(model, prefix)
    assert damaged in str(error.value) and DAMAGES[how] in str(error.value), str(error.value)
    for old, variable in zip(before, model.variables):
        np.testing.assert_array_equal(old, variable.numpy())
    assert not bool(model.initialized.numpy())


@pytest.mark.parametrize('how', ['data truncated', 'data flipped'])
def test_import_tf1_exits_2_naming_the_damaged_file(tmp_path, capsys, how):
    """`emerging import-tf1` on a damaged checkpoint: one line naming the file, exit code 2, nothing written."""
    import emerging.cli.command as command
    config = GlowConfig(image_shape=(8, 8, 3), n_levels=2, depth=2, width=16, flow_permutation=2)
    prefix = write_tf1_checkpoint(tmp_path / 'tf1' / 'model.ckpt',
                                  original_variables(config, np.random.default_rng(6)))
    damaged = damage(prefix, how)
    out = tmp_path / 'imported'
    code = command.main(['import-tf1', *DIGITS, *TINY, '--flow_permutation', '2', '--tf1_checkpoint', prefix,
                         '--logdir', str(out)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith('emerging import-tf1: error: ') and damaged in err and DAMAGES[how] in err, err
    assert 'Traceback' not in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists() or not os.listdir(out)


def script(monkeypatch, capsys, name, *args):
    """(exit code, stdout, stderr) of scripts/NAME ARGS, run in-process as its command line runs it."""
    path = os.path.join(ROOT, 'scripts', name)
    monkeypatch.setattr(sys, 'argv', [path, *args])
    monkeypatch.setattr(sys, 'path', list(sys.path))  # the script puts the repository first
    with pytest.raises(SystemExit) as exit_status:
        runpy.run_path(path, run_name='__main__')
    captured = capsys.readouterr()
    return exit_status.value.code, captured.out, captured.err


@pytest.mark.slow
def test_script_output_feeds_inference_and_export(tmp_path, capsys, monkeypatch):
    """import -> train.py --inference -> scripts/export_savedmodel.py, as a user would (in-process: a SavedModel
    in a fresh process is tests/cli/test_train.py's)."""
    flags = [*DIGITS, *TINY, '--flow_permutation', '3', '--flow_coupling', '1', '--learnprior']
    config = GlowConfig(image_shape=(8, 8, 3), n_levels=2, depth=2, width=16, flow_permutation=3,
                         flow_coupling=1, learnprior=True)
    variables = original_variables(config, np.random.default_rng(4))
    prefix = write_tf1_checkpoint(tmp_path / 'tf1' / 'model_best_loss.ckpt', variables)
    out = tmp_path / 'imported'
    code, stdout, stderr = script(monkeypatch, capsys, 'import_tf1_checkpoint.py', *flags, '--tf1_checkpoint',
                                  prefix, '--logdir', str(out))
    assert code == 0, stderr
    assert f'imported {len(variables)} variables' in stdout
    assert best_checkpoint(str(out)) is not None and (out / 'train.txt').exists()
    # a second import into the same folder refuses instead of overwriting
    code, _, stderr = script(monkeypatch, capsys, 'import_tf1_checkpoint.py', *flags, '--tf1_checkpoint', prefix,
                             '--logdir', str(out))
    assert code != 0 and 'must be a new folder' in stderr
    # a mismatching architecture is refused, naming the flag to check, and writes nothing
    code, _, stderr = script(monkeypatch, capsys, 'import_tf1_checkpoint.py', *[f if f != '3' else '2' for f in flags],
                             '--tf1_checkpoint', prefix, '--logdir', str(tmp_path / 'wrong'))
    assert code == 2 and 'emerging/W1' in stderr and '--flow_permutation' in stderr
    assert not (tmp_path / 'wrong').exists()

    code, _ = train_cli.run([*flags, '--inference', '--logdir', str(out)])
    assert code == 0, capsys.readouterr().err
    x, recon = np.load(out / 'x.npy'), np.load(out / 'recon.npy')
    assert np.abs(x.astype(int) - recon.astype(int)).max() <= 1
    code, _, stderr = script(monkeypatch, capsys, 'export_savedmodel.py', '--logdir', str(out), '--export_dir',
                             str(tmp_path / 'saved'))
    assert code == 0, stderr
    assert (tmp_path / 'saved' / 'saved_model.pb').exists()
