"""Checkpoints written by the public Residual Flows code (tests/runs/pytorch, made by make_resflow_checkpoints.py
with that code: 28x28x1 without fc-end; 32x32x3 with squeeze-first, factor-out, fc-end and ELU) imported with
`emerging import-resflow`: every example's bits/dim (exact log-det from the full Jacobian) equal to the public
model's, for its weights and for its EMA, to float32 rounding; decode(encode(x)) = x; the run folder works with
load_run and the subcommands; what does not fit is named before anything is written."""
import hashlib
import json
import math
import os

import numpy as np
import pytest
import tensorflow as tf

import emerging
from emerging.cli.import_resflow import PICKLED_OBJECTS, public_run_config
from emerging.errors import InputError
from emerging.models.resflow import ResFlow
from emerging.runs.resflow_import import import_public_resflow
from emerging.runs.torch_files import read_torch_file

FOLDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'pytorch')
with open(os.path.join(FOLDER, 'resflow_expected.json')) as f:
    EXPECTED = json.load(f)


def command(capsys, *args):
    from emerging.cli.command import main
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def exact_bits_per_dim(model, x):
    """bits/dim of dequantised images x [N, H, W, C] in [0, 1) with log|det| from the map's full Jacobian."""
    values = []
    for image in x:
        flat = tf.constant(image.reshape(1, -1), tf.float32)
        with tf.GradientTape() as tape:
            tape.watch(flat)
            z = tf.reshape(model.bijector().inverse_and_log_det(tf.reshape(flat, [1, *image.shape]),
                                                                map_only=True)[0], [1, -1])
        jacobian = tape.batch_jacobian(z, flat).numpy().astype(np.float64)[0]
        z = z.numpy().astype(np.float64)[0]
        log_px = -0.5 * np.sum(z ** 2) - 0.5 * z.size * math.log(2 * math.pi) + np.linalg.slogdet(jacobian)[1]
        values.append(log_px)
    return bits(np.array(values), x[0].size)


def bits(log_px, n_dims):
    """bits/dim of the uint8 image from the log-density of its dequantised value in [0, 1)^D."""
    return -(np.asarray(log_px) - n_dims * math.log(256.)) / (n_dims * math.log(2.))


@pytest.fixture(scope='module', params=sorted(EXPECTED))
def imported(request, tmp_path_factory):
    logdir = str(tmp_path_factory.mktemp(request.param) / 'run')
    from emerging.cli.command import main
    assert main(['import-resflow', '--checkpoint', os.path.join(FOLDER, f'{request.param}.pth'),
                 '--logdir', logdir]) == 0
    return request.param, logdir


def weights_digest(model):
    """A digest of every variable's name, dtype, shape and bytes: equal digests, the same map."""
    digest = hashlib.sha256()
    for variable in model.variables:
        value = variable.numpy()
        digest.update(f'{variable.name} {value.dtype} {value.shape}'.encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


@pytest.mark.slow
def test_bits_per_dim_are_the_public_models(imported):
    """For the model's weights ('latest') and the EMA ('best', and 'polyak', whose averages the import set to
    the EMA's values)."""
    name, logdir = imported
    case = EXPECTED[name]
    x = (np.array(case['pixels'], np.float32) + np.array(case['noise'], np.float32)) / 256.
    # by weights digest: the best and the Polyak weights are the same EMA values, whose full Jacobians (3,072
    # dimensions for CIFAR) are computed once for both
    bits_of = {}
    for weights, key in (('latest', 'log_px_model'), ('best', 'log_px_ema'), ('polyak', 'log_px_ema')):
        model = emerging.load_run(logdir, weights).model
        digest = weights_digest(model)
        if digest not in bits_of:
            bits_of[digest] = exact_bits_per_dim(model, x)
        np.testing.assert_allclose(bits_of[digest], bits(case[key], x[0].size), rtol=0, atol=1e-6,
                                   err_msg=f'{name}, {weights} weights')
    assert len(bits_of) == 2, 'the best and the Polyak weights differ'


@pytest.mark.slow
def test_decode_encode_and_the_subcommands(imported, capsys, tmp_path):
    name, logdir = imported
    model = emerging.load_run(logdir).model
    pixels = tf.constant(EXPECTED[name]['pixels'], tf.uint8)
    np.testing.assert_array_equal(model.decode(model.encode(pixels, noise=False)).numpy(), pixels.numpy())
    with open(os.path.join(logdir, 'config.json')) as f:
        config = json.load(f)
    assert config['model_kind'] == 'resflow' and config['hparams']['imported_weights'] == 'ema'
    code, out, err = command(capsys, 'sample', '--logdir', logdir, '--n', '4', '--temperatures', '0.5', '--seed', '0',
                             '--out', str(tmp_path / 'samples.npy'))
    assert code == 0, err
    assert np.load(tmp_path / 'samples.npy').shape == (1, 4, *model.config.image_shape)
    code, out, err = command(capsys, 'export', '--logdir', logdir, '--export_dir', str(tmp_path / 'sm'))
    assert code == 0 and os.path.exists(tmp_path / 'sm' / 'saved_model.pb'), err


def test_the_model_weights_and_a_second_import(capsys, tmp_path):
    path = os.path.join(FOLDER, 'resflow_mnist.pth')
    code, out, err = command(capsys, 'import-resflow', '--checkpoint', path, '--logdir', str(tmp_path / 'run'),
                             '--weights', 'model')
    assert code == 0 and 'model weights' in out, err
    best = emerging.load_run(str(tmp_path / 'run'), 'best').model
    latest = emerging.load_run(str(tmp_path / 'run'), 'latest').model
    for mine, theirs in zip(best.trainable_variables, latest.trainable_variables):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
    code, out, err = command(capsys, 'import-resflow', '--checkpoint', path, '--logdir', str(tmp_path / 'run'))
    assert code == 2 and 'must be a new folder' in err


def test_what_does_not_fit_is_named_and_nothing_is_written(capsys, tmp_path):
    saved = read_torch_file(os.path.join(FOLDER, 'resflow_mnist.pth'), objects=PICKLED_OBJECTS)
    args = saved['args']
    other = public_run_config(args, 'checkpoint').model
    model = ResFlow(type(other)(**{**other.to_dict(), 'idim': other.idim * 2}))
    with pytest.raises(InputError) as error:
        import_public_resflow(model, saved['state_dict'])
    message = str(error.value)
    assert 'transforms.0.chain.2.nnet.0.weight: shape [8, 1, 3, 3] gives [3, 3, 1, 8], the model has [3, 3, 1, 16]' \
        in message and message.count('\n') > 10
    state = dict(saved['state_dict'], **{'transforms.0.chain.9.weight': np.zeros(3)})
    with pytest.raises(InputError, match='transforms.0.chain.9.weight: has no place in this model'):
        import_public_resflow(ResFlow(other), state)
    for flag, value, named in (('fc_actnorm', True, '--fc-actnorm'), ('task', 'hybrid', '--task'),
                               ('logit_transform', False, '--logit-transform')):
        setattr(args, flag, value)
        with pytest.raises(InputError, match=named):
            public_run_config(args, 'checkpoint')
        setattr(args, flag, {'fc_actnorm': False, 'task': 'density', 'logit_transform': True}[flag])
    for flag, value, named in (('nblocks', 5, r'--nblocks is 5, not of type str'),
                               ('idim', 'x', r"--idim is 'x', not of type int"),
                               ('coeff', [1], r'--coeff is \[1\], not of type float')):
        saved_value = getattr(args, flag)
        setattr(args, flag, value)
        with pytest.raises(InputError, match=named):
            public_run_config(args, 'checkpoint')
        setattr(args, flag, saved_value)
    public_run_config(args, 'checkpoint')
    code, _, err = command(capsys, 'import-resflow', '--checkpoint', os.path.join(FOLDER, 'bnaf_d6_gated.pt'),
                           '--logdir', str(tmp_path / 'run'))
    assert code == 2 and 'holds no "state_dict"' in err and not os.path.exists(tmp_path / 'run')
