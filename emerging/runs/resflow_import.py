"""Import a checkpoint of the public Residual Flows code (train_img.py's `checkpt.pth`) into a `ResFlow`.

The public model `ResidualFlow` keeps its scales in `transforms.{i}`, each a
`chain` of modules: the logit transform first (scale 0), an actnorm after it
with `--first-resblock` and `--actnorm`, then per block an `iResBlock` and its
`ActNorm2d`, the squeeze (every scale but the last), and with `--fc-end` four
fully connected blocks with their per-element `ActNorm1d` (`fc_module`) at
the end of the last scale.  That is this package's `ResFlow` composition
(models/resflow.py) layer for layer, so every weight has one place:

* a block's network `nnet` (fully connected: `nnet.nnet`) is a sequence of
  activations and spectrally normalised layers in the order of
  `ResidualBlock.activations` / `.linears`: LipSwish's `beta` [1] -> `beta`;
  a convolution's `weight` [O, I, k, k] -> `kernel` [k, k, I, O], its power
  iteration vectors `u` [O H W], `v` [I H W] (channels first) -> [1, H, W, O],
  [1, H, W, I] (1 x 1: [O], [I] as they are); a dense layer's `weight`
  [out, in] -> `kernel` [in, out];
* `ActNorm2d` `bias`, `weight` [C] -> `actnorm_center/b`, `actnorm_scale/logs`
  [1, 1, 1, C] (the same y = (x + b) exp(logs) with logscale factor 1);
  `ActNorm1d` [C H W] -> [1, H, W, C];
* the fully connected blocks flatten [C, H, W] where this package flattens
  [H, W, C]: their first layer's inputs and their last layer's outputs (and
  `v`, `u`, the bias, the per-element actnorm) are permuted accordingly.

Left out, by name: `geom_p` and `lamb` (the roulette's parameters, which the
public code never trains), `last_n_samples`, `last_firmom`, `last_secmom`
(statistics for logging), `scale` (the last sigma, recomputed from u and v),
`spatial_dims` and actnorm's `initialized` (checked to be 1).  Anything else,
or any shape that differs, stops the import with the complete list.

The EMA (`ema.shadow_params`, by parameter name) maps the same way onto the
model's trainable variables.
"""
from __future__ import annotations

import numpy as np

from emerging.errors import InputError
from emerging.pickles import describe

SKIPPED = ('geom_p', 'lamb', 'last_n_samples', 'last_firmom', 'last_secmom', 'scale', 'spatial_dims',
           'initialized')


def _flatten_permutation(shape):
    """P with ours[i] = theirs[P[i]] for an [H, W, C] tensor flattened as [H, W, C] (ours) and [C, H, W]."""
    height, width, channels = shape
    return np.arange(channels * height * width).reshape(channels, height, width).transpose(1, 2, 0).reshape(-1)


def _channels_last(vector, channels, spatial):
    """A [C H W] vector of the public code as [1, H, W, C]."""
    height, width = spatial
    return np.reshape(vector, [channels, height, width]).transpose(1, 2, 0)[None]


def _places(model) -> list:
    """[(public name, our variable, conversion)] for every weight of a `ResFlow` (see the module docstring)."""
    from emerging.flows.actnorm import ActNorm
    from emerging.flows.nets.lipschitz import SpectralNormDense
    from emerging.flows.residual import ResidualBlock
    from emerging.models.resflow import n_scales

    config = model.config
    layers = {layer.name: layer for layer in model.submodules if isinstance(layer, (ResidualBlock, ActNorm))}
    places = []

    def actnorm(layer, prefix, per_element):
        shape = layer.bias.shape.as_list()
        if per_element:
            convert = lambda t, s=shape: _channels_last(t, s[3], s[1:3])  # noqa: E731
        else:
            convert = lambda t, s=shape: np.reshape(t, s)  # noqa: E731
        places.extend([(f'{prefix}.bias', layer.bias, convert), (f'{prefix}.weight', layer.logs, convert)])

    def block(layer, prefix):
        index = 0
        event = tuple(layer.event_shape)
        for k, (activation, linear) in enumerate(zip(layer.activations, layer.linears)):
            if activation is not None:
                if activation.beta is not None:
                    places.append((f'{prefix}.{index}.beta', activation.beta, lambda t: np.reshape(t, [])))
                index += 1
            name = f'{prefix}.{index}'
            if isinstance(linear, SpectralNormDense):
                first, last = k == 0, k == len(layer.linears) - 1
                perm = _flatten_permutation(event)
                places.append((f'{name}.weight', linear.kernel,
                               lambda t, f=first, e=last, p=perm: np.transpose(t)[p if f else slice(None)][
                                   :, p if e else slice(None)]))
                places.append((f'{name}.bias', linear.bias, lambda t, e=last, p=perm: t[p] if e else t))
                places.append((f'{name}.u', linear.u, lambda t, e=last, p=perm: t[p] if e else t))
                places.append((f'{name}.v', linear.v, lambda t, f=first, p=perm: t[p] if f else t))
            else:
                places.append((f'{name}.weight', linear.kernel, lambda t: np.transpose(t, (2, 3, 1, 0))))
                places.append((f'{name}.bias', linear.bias, lambda t: t))
                for vector in ('u', 'v'):
                    shape = getattr(linear, vector).shape.as_list()
                    if len(shape) == 1:
                        places.append((f'{name}.{vector}', getattr(linear, vector), lambda t: t))
                    else:
                        places.append((f'{name}.{vector}', getattr(linear, vector),
                                       lambda t, s=shape: _channels_last(t, s[3], s[1:3])))
            index += 1

    count = n_scales(config)
    for i in range(count):
        last, j = i == count - 1, 0

        def chain():
            nonlocal j
            j += 1
            return f'transforms.{i}.chain.{j - 1}'

        if i == 0:
            chain()  # the logit transform
            if config.first_resblock and config.actnorm:
                actnorm(layers['scale0_actnorm'], chain(), per_element=False)
        for b in range(config.n_blocks[i]):
            block(layers[f'scale{i}_block{b}'], chain() + '.nnet')
            if config.actnorm:
                actnorm(layers[f'scale{i}_block{b}_actnorm'], chain(), per_element=False)
        if last and config.fc_end:
            for b in range(config.fc_nblocks):
                block(layers[f'fc_block{b}'], chain() + '.nnet.nnet')
                if config.actnorm:
                    actnorm(layers[f'fc_block{b}_actnorm'], chain() + '.fc_module', per_element=True)
    return places


def _tensors(mapping, what) -> dict:
    """`mapping` checked to be {name: numeric array}, the structure of a state dict, before any is used."""
    if not isinstance(mapping, dict):
        raise InputError(f'its {what} is {describe(mapping)}, not a dict of tensors')
    for name, value in mapping.items():
        if not isinstance(name, str):
            raise InputError(f'its {what} holds the key {describe(name)}, not a parameter name')
        if not (isinstance(value, np.ndarray) and value.dtype.kind in 'biuf'):
            raise InputError(f'{what} {name}: {describe(value)}, not a tensor of numbers')
    return mapping


def import_public_resflow(model, state_dict: dict, shadow_params: dict | None = None) -> dict:
    """Put the weights of a public Residual Flows checkpoint into `model`, checking every name and shape first.

    Args:
      model: a `ResFlow` of the checkpoint's architecture (its config from the checkpoint's args).
      state_dict: the checkpoint's `state_dict` ({name: array}).
      shadow_params: the EMA's `shadow_params` ({parameter name: array}), or None.

    Returns:
      {'imported': [names], 'skipped': [names], 'ema': the EMA's values in the order of
      `model.trainable_variables` (None without `shadow_params`)}.

    Raises:
      InputError: naming a state dict that is not {name: tensor of numbers}; listing every public name without a
        place here, every weight of the model the checkpoint lacks, every shape that differs, and an actnorm that
        was never initialised; nothing is assigned then.
    """
    state_dict = _tensors(state_dict, 'state_dict')
    if shadow_params is not None:
        shadow_params = _tensors(shadow_params, 'EMA')
    places = _places(model)
    problems, values = [], []
    known = {name for name, _, _ in places}

    def converted(name, variable, convert, source):
        try:
            value = np.asarray(convert(source[name]), np.float32)
        except (ValueError, IndexError):  # a vector that does not reshape to the variable's layout
            value = None
        if value is None or list(value.shape) != variable.shape.as_list():
            problems.append(f'{name}: shape {list(np.shape(source[name]))}'
                            + (f' gives {list(value.shape)}' if value is not None else '')
                            + f', the model has {variable.shape.as_list()} ({variable.name})')
        return value

    for name, variable, convert in places:
        if name not in state_dict:
            problems.append(f'{name}: missing from the checkpoint (for {variable.name})')
            continue
        values.append(converted(name, variable, convert, state_dict))
    skipped = sorted(name for name in state_dict if name not in known and name.rsplit('.', 1)[-1] in SKIPPED)
    problems += [f'{name}: has no place in this model' for name in sorted(state_dict)
                 if name not in known and name not in skipped]
    problems += [f'{name}: the actnorm was never initialised' for name in skipped
                 if name.endswith('.initialized') and (state_dict[name].size != 1 or state_dict[name].item() != 1)]
    ema = None
    if shadow_params is not None:
        by_variable = {}
        for name, variable, convert in places:
            if variable.trainable:
                if name not in shadow_params:
                    problems.append(f'{name}: missing from the EMA')
                    continue
                by_variable[variable.ref()] = converted(name, variable, convert, shadow_params)
        ema = [by_variable.get(variable.ref()) for variable in model.trainable_variables]
        problems += [f'{variable.name}: has no EMA value' for variable, value in zip(model.trainable_variables, ema)
                     if value is None]
    if problems:
        raise InputError(f'the checkpoint does not fit the model its args describe ({len(problems)} problems):\n  '
                         + '\n  '.join(problems))
    for (_, variable, _), value in zip(places, values):
        variable.assign(value)
    model.initialized.assign(True)
    return {'imported': [name for name, _, _ in places], 'skipped': skipped, 'ema': ema}
