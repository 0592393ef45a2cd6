"""Import a checkpoint written by the original TF1 code into a `Glow` model.

The original keeps every weight under `model/`:

    model/{level}/{step}/actnorm_center/b, .../actnorm_scale/logs
    model/{level}/{step}/invconv/W | {P, L, sign_S, log_S, U} | {S, U, v_0 .. v_{C-1}}
    model/{level}/{step}/emerging/{W1, W2, b}      model/{level}/{step}/fourier/{W, b}
    model/{level}/{step}/maf1|maf2/{0, 1, 2}/{W, b}
    model/{level}/{step}/shuffle/{indices, indices_inverse}
    model/{level}/{step}/f1/l_1|l_2/{W, actnorm_center/b, actnorm_scale/logs}, .../f1/l_last/{W, b, logs}
    model/pool{level}/conv/{W, b, logs}
    model/prior/p/{W, b, logs}, model/prior/y_emb/{W, b, logs}, model/classifier/{W, b, logs}

`tf1_variable_map(model)` walks the model's structure and names every variable the way the original did;
`import_tf1_checkpoint` first checks the checkpoint's files (`check_tf1_checkpoint` of tf_checkpoint_index.py,
which parses the index before TensorFlow reads it: a fault is an `InputError` naming the file, "missing",
"truncated", "fails its checksum", "damaged"), then copies the values, refusing (with the full list) any `model/`
variable of the checkpoint it cannot place, any variable of the model the checkpoint lacks, and any shape that
differs (shapes equal up to size-1 axes are reshaped, e.g. a bias stored as [C] or [1, 1, 1, C]).  Polyak
averages (`.../ExponentialMovingAverage`) and optimiser slots are not weights and are skipped.
"""
import numpy as np

from emerging.errors import InputError
from emerging.flows.autoregressive import Autoregressive
from emerging.flows.conv1x1 import InvertibleConv1x1
from emerging.flows.emerging_conv import EmergingConv
from emerging.flows.periodic_conv import PeriodicConv
from emerging.flows.permutations import Reverse, Shuffle
from emerging.runs.tf_checkpoint_index import check_tf1_checkpoint, checkpoint_reader

NOT_WEIGHTS = ('ExponentialMovingAverage',)


def _conv_zeros(prefix, layer):
    return {f'{prefix}/W': layer.w, f'{prefix}/b': layer.b, f'{prefix}/logs': layer.logs}


def _actnorm(prefix, actnorm):
    return {f'{prefix}/actnorm_center/b': actnorm.bias, f'{prefix}/actnorm_scale/logs': actnorm.logs}


def _permutation(prefix, layer):
    if isinstance(layer, Reverse):
        return {}
    if isinstance(layer, Shuffle):
        return {f'{prefix}/shuffle/indices': layer.indices, f'{prefix}/shuffle/indices_inverse': layer.indices_inverse}
    if isinstance(layer, InvertibleConv1x1):
        if layer.decomposition == '':
            names = {'W': layer.w}
        elif layer.decomposition in ('PLU', 'LU'):
            names = {'P': layer.p, 'L': layer.lower, 'sign_S': layer.sign_s, 'log_S': layer.log_s, 'U': layer.upper}
        else:
            names = {'S': layer.s, 'U': layer.upper, **{f'v_{i}': v for i, v in enumerate(layer.householder)}}
        return {f'{prefix}/invconv/{name}': variable for name, variable in names.items()}
    if isinstance(layer, EmergingConv):
        return {f'{prefix}/emerging/W1': layer.w1, f'{prefix}/emerging/W2': layer.w2, f'{prefix}/emerging/b': layer.b}
    if isinstance(layer, PeriodicConv):
        return {f'{prefix}/fourier/W': layer.w, f'{prefix}/fourier/b': layer.b}
    if isinstance(layer, Autoregressive):
        mapping = {}
        for i, (kernel, bias) in enumerate(zip(layer.kernels, layer.biases)):
            mapping[f'{prefix}/{layer.name}/{i}/W'] = kernel
            mapping[f'{prefix}/{layer.name}/{i}/b'] = bias
        return mapping
    raise TypeError(f'no original name for layer {layer.name!r} ({type(layer).__name__})')


def tf1_variable_map(model) -> dict:
    """{original TF1 name: the model's tf.Variable} for every weight of `model`."""
    mapping = {}
    for level, steps in enumerate(model.levels):
        for k, step in enumerate(steps):
            prefix = f'model/{level}/{k}'
            mapping.update(_actnorm(prefix, step.actnorm))
            for layer in step.permutation:
                mapping.update(_permutation(prefix, layer))
            network = step.coupling.network
            for name in ('l_1', 'l_2'):
                conv = getattr(network, name)
                mapping[f'{prefix}/f1/{name}/W'] = conv.w
                mapping.update(_actnorm(f'{prefix}/f1/{name}', conv.actnorm))
            mapping.update(_conv_zeros(f'{prefix}/f1/l_last', network.l_last))
    for level, split in enumerate(model.splits):
        if split.conv is not None:
            mapping.update(_conv_zeros(f'model/pool{level}/conv', split.conv))
    if model.prior.p is not None:
        mapping.update(_conv_zeros('model/prior/p', model.prior.p))
    if model.prior.y_emb is not None:
        mapping.update(_conv_zeros('model/prior/y_emb', model.prior.y_emb))
    if model.classifier is not None:
        mapping.update(_conv_zeros('model/classifier', model.classifier.linear))
    return mapping


def _squeezed(shape):
    return tuple(d for d in shape if d != 1)


class CheckpointMismatch(InputError):
    """The checkpoint does not fit the model; the message lists every problem."""


def import_tf1_checkpoint(model, path: str) -> dict:
    """Copy the original's weights from the TF1 checkpoint `path` into `model`.

    Returns a report {'imported': [names], 'skipped': [names]}; raises
    InputError naming a missing, truncated or damaged file (`check_tf1_checkpoint`),
    and CheckpointMismatch listing every unmapped, missing or mis-shaped variable,
    before assigning anything.  On success the model is marked initialised,
    so the data-dependent init does not run again.

    Args:
      model: a built `Glow` with the original run's structure (flow_permutation, decomposition, learnprior,
        ycond, n_levels, depth, width, image size).
      path: the TF1 checkpoint prefix (e.g. .../model.ckpt).

    Returns:
      {'imported': the sorted original names of the copied variables, 'skipped': the sorted names of the
      checkpoint's other variables (outside `model/`, Polyak averages)}.

    Raises:
      InputError: a file of the checkpoint is missing, truncated or damaged.
      CheckpointMismatch: the checkpoint does not fit the model (the message lists every problem).
    """
    stored = check_tf1_checkpoint(path)
    reader = checkpoint_reader(path)
    mapping = tf1_variable_map(model)
    weights = {name for name in stored
               if name.startswith('model/') and not any(part in name for part in NOT_WEIGHTS)}
    skipped = sorted(set(stored) - weights)
    unmapped = sorted(weights - set(mapping))
    missing = sorted(set(mapping) - weights)
    mismatched = [f'{name}: checkpoint {list(stored[name])}, model {variable.shape.as_list()}'
                  for name, variable in sorted(mapping.items())
                  if name in weights and _squeezed(stored[name]) != _squeezed(variable.shape.as_list())]
    problems = []
    if unmapped:
        problems.append(f'{len(unmapped)} checkpoint variable(s) with no place in this model '
                        f'(check --flow_permutation, --decomposition, --learnprior, --ycond, --n_levels, '
                        f'--depth):\n  ' + '\n  '.join(unmapped))
    if missing:
        problems.append(f'{len(missing)} model variable(s) not in the checkpoint:\n  ' + '\n  '.join(missing))
    if mismatched:
        problems.append(f'{len(mismatched)} shape mismatch(es) (check --width, --image_size, --n_levels):\n  '
                        + '\n  '.join(mismatched))
    if problems:
        raise CheckpointMismatch(f'TF1 checkpoint {path} does not fit the model:\n' + '\n'.join(problems))
    for name, variable in mapping.items():
        value = np.asarray(reader.get_tensor(name)).reshape(variable.shape.as_list())
        variable.assign(value.astype(variable.dtype.as_numpy_dtype))
    # trained weights: the data-dependent init must not run again
    model.initialized.assign(True)
    return {'imported': sorted(mapping), 'skipped': skipped}
