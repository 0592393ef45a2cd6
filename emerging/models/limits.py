"""The sizes a model configuration may ask for, and the memory it implies; TensorFlow-free.

A configuration is checked here before anything is built, so that a size read
from a file or a flag (config.json, train.txt, train.py's and
train_resflow.py's flags, `emerging import-tf1`) is refused with its name
instead of hanging in the build or dying of an out-of-memory error:

* `check_fields(config)`: every size field within `FIELD_LIMITS` (far above
  any published run: they stop a build that would not end, e.g. 10^9 flow
  steps, before the memory estimate is even computed);
* `check_memory(config, batch=1, what='')`: the memory a batch needs (every
  weight and buffer as float32, plus the activations of the widest layer for
  `batch` images; one image when the configuration is validated, a
  subcommand's batch when it asks for one) below the machine's physical
  memory.

The estimates (`parameter_count`, `stored_values`, `activation_values`) follow
the layers' shapes (emerging/models/glow.py, resflow.py): `parameter_count` is
the built model's number of trainable values and `stored_values` the number of
all its values (both tested on built models; a Glow's `parameter_counts()`
counts free parameters, a masked or triangular kernel's free entries, so at
most `parameter_count`).
"""
from __future__ import annotations

import math
import os

from emerging.errors import InputError

BYTES_PER_VALUE = 4  # float32 weights, buffers and activations
# tensors alive at once in the widest layer (a hidden convolution): its input and its output
LIVE_TENSORS = 2
# hidden channels of the autoregressive layers (flow_permutation 5; emerging.flows.autoregressive.HIDDEN_DEPTH)
AUTOREGRESSIVE_HIDDEN = 96

#: field -> (the largest value accepted, why it is enough): a size past it is refused before anything is built
FIELD_LIMITS = {
    'image_side': (4096, 'image height and width'),
    'channels': (64, 'image channels'),
    'n_levels': (12, 'levels (2^12 = 4096, the largest image side)'),
    'depth': (1024, 'flow steps per level (published runs: 32-48)'),
    'width': (16384, 'hidden channels of the coupling network (published runs: 512)'),
    'n_y': (1000000, 'classes'),
    'n_scales': (16, 'scales (entries of n_blocks)'),
    'n_blocks': (1024, 'residual blocks per scale (published runs: 16-32)'),
    'idim': (16384, 'hidden channels of a residual block (published runs: 512)'),
    'fc_nblocks': (1024, 'fully connected residual blocks'),
    'fc_idim': (16384, 'hidden units of a fully connected residual block'),
    'kernel': (15, 'the kernel size of a residual block\'s convolution'),
    'kernel_layers': (16, 'layers of a residual block (kernels)'),
    'iterations': (10000, 'power-series terms, roulette draws or power iterations'),
}


def physical_memory() -> int:
    """The machine's physical memory in bytes (0 when the system does not say)."""
    try:
        return os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE')
    except (ValueError, OSError, AttributeError):
        return 0


def size_text(n_bytes: float) -> str:
    """1536 -> '1.5 KiB': a byte count in binary units, three significant digits."""
    for unit in ('B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'):
        if n_bytes < 1024 or unit == 'PiB':
            break
        n_bytes /= 1024
    return f'{n_bytes:.3g} {unit}' if n_bytes < 1e6 else f'{n_bytes:.3e} {unit}'


def _at_most(name: str, value: int, limit_key: str) -> None:
    limit, meaning = FIELD_LIMITS[limit_key]
    if value > limit:
        raise InputError(f'{name}={value} is too large: at most {limit:,} {meaning}')


def _positive(name: str, value) -> None:
    if value < 1:
        raise InputError(f'{name} must be positive, got {value}')


def check_fields(config) -> None:
    """Refuse a size field of a model configuration past `FIELD_LIMITS` (or below 1).

    Args:
      config: a `GlowConfig` or `ResFlowConfig` (its image shape already of three integers).

    Raises:
      InputError: naming the field, its value and the limit.
    """
    height, width, channels = config.image_shape
    for name, value in (('image height', height), ('image width', width)):
        _positive(name, value)
        _at_most(name, value, 'image_side')
    _positive('image channels', channels)
    _at_most('image channels', channels, 'channels')
    if config.kind == 'glow':
        for name in ('n_levels', 'depth', 'width', 'n_y'):
            _positive(name, getattr(config, name))
            _at_most(name, getattr(config, name), name)
    elif config.kind == 'resflow':
        _check_resflow_fields(config)


def _check_resflow_fields(config) -> None:
    if not config.n_blocks:
        raise InputError('n_blocks needs a positive number of blocks per scale, got none')
    _at_most('len(n_blocks)', len(config.n_blocks), 'n_scales')
    for blocks in config.n_blocks:
        _positive('n_blocks', blocks)
        _at_most('n_blocks', blocks, 'n_blocks')
    for name in ('idim', 'fc_idim', 'n_samples'):
        _positive(name, getattr(config, name))
    for name in ('idim', 'fc_nblocks', 'fc_idim'):
        _at_most(name, getattr(config, name), name)
    if config.fc_nblocks < 0:
        raise InputError(f'fc_nblocks must not be negative, got {config.fc_nblocks}')
    if config.n_exact_terms < 0:
        raise InputError(f'n_exact_terms must not be negative, got {config.n_exact_terms}')
    for name in ('n_power_series', 'n_lipschitz_iters'):
        if getattr(config, name) is not None:
            _positive(name, getattr(config, name))
    for name in ('n_power_series', 'n_lipschitz_iters', 'n_samples', 'n_exact_terms'):
        if getattr(config, name) is not None:
            _at_most(name, getattr(config, name), 'iterations')
    sizes = kernel_sizes(config.kernels)
    _at_most('the number of kernels', len(sizes), 'kernel_layers')
    for size in sizes:
        _positive('kernel size', size)
        _at_most('kernel size', size, 'kernel')


def kernel_sizes(kernels: str) -> list:
    """'3-1-3' -> [3, 1, 3]: a residual block's kernel sizes; InputError unless sizes joined by '-' (two or more).

    Args:
      kernels: `ResFlowConfig.kernels`.

    Returns:
      The kernel sizes, one per layer.
    """
    parts = kernels.split('-')
    if len(parts) < 2 or not all(part.isdigit() and len(part) <= 4 for part in parts):
        raise InputError(f'kernels must be two or more kernel sizes joined by "-" (e.g. 3-1-3), got {kernels!r}')
    return [int(part) for part in parts]


# ---- Glow ------------------------------------------------------------------------------------------
def glow_level_shapes(config) -> list:
    """[(h, w, c)] of the tensors each Glow level's steps work on (level 0 after the first squeeze; each
    split keeps half the channels, and the next squeeze quadruples them)."""
    height, width, channels = config.image_shape
    h, w, c = height // 2, width // 2, 4 * channels
    shapes = []
    for _ in range(config.n_levels):
        shapes.append((h, w, c))
        h, w, c = h // 2, w // 2, 2 * c
    return shapes


def _conv_zeros(c_in: int, c_out: int) -> int:
    """A 3x3 convolution with the edge channel, its bias and log-scale (the original's conv2d_zeros)."""
    return 9 * (c_in + 1) * c_out + 2 * c_out


def _glow_permutation(config, c: int) -> int:
    invconv = {'': c * c, 'PLU': 2 * c * c + c, 'LU': 2 * c * c + c, 'QR': c * c + c + c * c}[config.decomposition]
    hidden = AUTOREGRESSIVE_HIDDEN
    autoregressive = 9 * c * hidden + hidden + hidden * hidden + hidden + 9 * hidden * 2 * c + 2 * c
    return {0: 0, 1: 0, 2: invconv, 3: invconv + 18 * c * c + c, 4: 9 * c * c + c,
            5: invconv + 2 * autoregressive}.get(config.flow_permutation, 0)


def _glow_step(config, c: int) -> int:
    width = config.width
    network = (9 * (c // 2 + 1) * width + 2 * width + width * width + 2 * width
               + _conv_zeros(width, c if config.flow_coupling == 1 else c // 2))
    return 2 * c + _glow_permutation(config, c) + network


def _glow_parameters(config) -> int:
    shapes = glow_level_shapes(config)
    total = sum(config.depth * _glow_step(config, c) for _, _, c in shapes)
    top = shapes[-1][2]
    if config.learnprior:
        total += sum(_conv_zeros(c // 2, c) for _, _, c in shapes[:-1]) + _conv_zeros(2 * top, 2 * top)
    if config.ycond:
        total += config.n_y * 2 * top + 4 * top
        if config.weight_y > 0:
            total += top * config.n_y + 2 * config.n_y
    return total


def _glow_buffers(config) -> int:
    """The values a Glow stores that are not trained: the shuffles' permutations, the PLU's P and sign(S)."""
    def fixed(c):
        if config.flow_permutation == 1:
            return 2 * c
        if config.flow_permutation in (2, 3, 5) and config.decomposition in ('PLU', 'LU'):
            return c * c + c
        return 0
    return sum(config.depth * fixed(c) for _, _, c in glow_level_shapes(config))


def _glow_activations(config) -> int:
    return max(h * w * max(config.width, c) for h, w, c in glow_level_shapes(config)) * LIVE_TENSORS


# ---- Residual Flows -----------------------------------------------------------------------------------
def resflow_scale_shapes(config) -> list:
    """[(h, w, c)] of each Residual Flow scale's blocks (after squeeze_first; each scale squeezes, and with
    factor_out keeps half the channels); as many as `emerging.models.resflow.n_scales` gives."""
    h, w, c = config.image_shape
    if config.squeeze_first:
        h, w, c = h // 2, w // 2, 4 * c
    shapes = []
    while h >= 4 and w >= 4 and len(shapes) < len(config.n_blocks):
        shapes.append((h, w, c))
        h, w, c = h // 2, w // 2, (2 if config.factor_out else 4) * c
    return shapes


def _residual_block(config, shape, fc: bool, preact: bool) -> tuple:
    """(parameters, buffers) of one residual block on `shape`: its layers, their spectral-norm vectors and
    the LipSwish activations' beta."""
    h, w, c = shape
    sizes = kernel_sizes(config.kernels)
    if fc:
        d, hidden = h * w * c, config.fc_idim
        widths = [hidden] * (len(sizes) - 1) + [d]
        inputs = [d] + [hidden] * (len(sizes) - 1)
        parameters = sum(i * o + o for i, o in zip(inputs, widths))
        buffers = sum(i + o for i, o in zip(inputs, widths))
    else:
        widths = [config.idim] * (len(sizes) - 1) + [c]
        inputs = [c] + [config.idim] * (len(sizes) - 1)
        parameters = sum(k * k * i * o + o for k, i, o in zip(sizes, inputs, widths))
        buffers = sum((h * w if k > 1 else 1) * (i + o) for k, i, o in zip(sizes, inputs, widths))
    if config.activation in ('swish', 'lipswish'):
        parameters += len(sizes) - (0 if preact else 1)
    return parameters, buffers


def _resflow_values(config) -> tuple:
    """(parameters, buffers) of a Residual Flow."""
    shapes = resflow_scale_shapes(config)
    parameters = buffers = 0
    actnorm = 2 if config.actnorm else 0
    for i, shape in enumerate(shapes):
        last = i == len(shapes) - 1
        if i == 0 and config.first_resblock:
            parameters += actnorm * shape[2]
        for b in range(config.n_blocks[i]):
            first = config.first_resblock and i == 0 and b == 0 and not last
            block = _residual_block(config, shape, fc=False, preact=config.preact and not first)
            parameters, buffers = parameters + block[0] + actnorm * shape[2], buffers + block[1]
    if config.fc_end and shapes:
        block = _residual_block(config, shapes[-1], fc=True, preact=config.preact)
        parameters += config.fc_nblocks * (block[0] + actnorm * math.prod(shapes[-1]))
        buffers += config.fc_nblocks * block[1]
    return parameters, buffers


def _resflow_activations(config) -> int:
    shapes = resflow_scale_shapes(config)
    widest = max((h * w * max(config.idim, c) for h, w, c in shapes), default=0)
    if config.fc_end and shapes:
        widest = max(widest, math.prod(shapes[-1]), config.fc_idim)
    return widest * LIVE_TENSORS


# ---- the estimates and the checks ---------------------------------------------------------------------------
def parameter_count(config) -> int:
    """The trainable values of the model `config` describes (the sizes of its trainable weights).

    Args:
      config: a `GlowConfig` or `ResFlowConfig` within `FIELD_LIMITS`.

    Returns:
      The number of parameters.
    """
    return _glow_parameters(config) if config.kind == 'glow' else _resflow_values(config)[0]


def stored_values(config) -> int:
    """Every value the model stores: its parameters, its buffers (a Residual Flow's power-iteration vectors,
    Glow's fixed permutations) and its `initialized` flag.

    Args:
      config: a `GlowConfig` or `ResFlowConfig` within `FIELD_LIMITS`.

    Returns:
      The number of values.
    """
    if config.kind == 'glow':
        return _glow_parameters(config) + _glow_buffers(config) + 1
    return sum(_resflow_values(config)) + 1


def activation_values(config) -> int:
    """The values alive at once for one image in the model's widest layer (a lower bound of one pass).

    Args:
      config: a `GlowConfig` or `ResFlowConfig` within `FIELD_LIMITS`.

    Returns:
      The number of values.
    """
    return _glow_activations(config) if config.kind == 'glow' else _resflow_activations(config)


def describe(config) -> str:
    """The sizes of a configuration that decide its memory, e.g. 'glow: image 32x32x3, n_levels=3, depth=32,
    width=512'."""
    shape = 'x'.join(str(d) for d in config.image_shape)
    if config.kind == 'glow':
        return f'glow: image {shape}, n_levels={config.n_levels}, depth={config.depth}, width={config.width}'
    blocks = '-'.join(str(n) for n in config.n_blocks)
    fc = f', fc_nblocks={config.fc_nblocks}, fc_idim={config.fc_idim}' if config.fc_end else ''
    return f'resflow: image {shape}, n_blocks={blocks}, idim={config.idim}, kernels={config.kernels}{fc}'


def check_bytes(n_bytes: int, what: str) -> None:
    """Refuse to hold `n_bytes` at once when the machine's physical memory is smaller.

    Args:
      n_bytes: the memory asked for.
      what: what asks for it and how much of it, the start of the message.

    Raises:
      InputError: saying what was asked, the memory it implies and what the machine has.
    """
    available = physical_memory()
    if available and n_bytes > available:
        raise InputError(f'{what} needs at least {size_text(n_bytes)} of memory; this machine has '
                         f'{size_text(available)}')


def check_memory(config, batch: int = 1, what: str = '') -> None:
    """Refuse a configuration whose weights, buffers and the activations of `batch` images exceed the
    machine's physical memory.

    Args:
      config: a `GlowConfig` or `ResFlowConfig` within `FIELD_LIMITS`.
      batch: images processed at once.
      what: what asks for the batch (e.g. '--steps 9'), named in the message.

    Raises:
      InputError: saying what was asked, the memory it implies and what the machine has.
    """
    stored = stored_values(config) * BYTES_PER_VALUE
    activations = batch * activation_values(config) * BYTES_PER_VALUE
    images = f'{batch:,} images' if batch > 1 else 'one image'
    check_bytes(stored + activations,
                f'the model ({describe(config)}){f" with {what}" if what else ""} ({parameter_count(config):,} '
                f'parameters: {size_text(stored)} of weights and buffers as float32, and {size_text(activations)} of '
                f'activations for {images})')
