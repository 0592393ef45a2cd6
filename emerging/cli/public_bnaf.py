"""Checkpoints of the public BNAF code for the density scripts' --restore_file (toy.py, tabular.py).

density_estimation.py saves `{'model': model.state_dict(), 'optimizer': optimizer.state_dict(), 'epoch': e}`
and toy2d.py `{'model': ..., 'optimizer': ...}` with `torch.save`; such a file is read without PyTorch
(emerging.runs.torch_files) and becomes a BNAF of this package with the same weights (emerging.vector
.public_bnaf), once its layout is checked against the flags that describe it.
"""
import os
import zipfile

from emerging.errors import InputError
from emerging.pickles import describe


def is_torch_file(path: str) -> bool:
    """Whether `path` is a file `torch.save` wrote (a zip archive), not a TensorFlow checkpoint prefix.

    Args:
      path: the --restore_file value.

    Returns:
      True for a zip archive.
    """
    return os.path.isfile(path) and zipfile.is_zipfile(path)


def check_restore_file(path: str, flow: str) -> None:
    """The density scripts' --restore_file check, before TensorFlow loads: a checkpoint.pt of the public BNAF code
    (for --flow bnaf only) or a TensorFlow checkpoint prefix.

    Args:
      path: the --restore_file value ('' for none).
      flow: the --flow value.

    Raises:
      FileNotFoundError: when neither kind of checkpoint is there.
      ValueError: when a public BNAF checkpoint is given with another --flow.
    """
    if not path:
        return
    public = is_torch_file(path)
    if not (public or os.path.exists(path + '.index')):
        raise FileNotFoundError(f'--restore_file {path}: neither a checkpoint.pt file nor a checkpoint prefix '
                                f'(expected {path}.index)')
    if public and flow != 'bnaf':
        raise ValueError(f'--restore_file {path} is a checkpoint of the public BNAF code: it needs --flow bnaf, '
                         f'not {flow}')


def _arrays(mapping, what, path) -> dict:
    """`mapping` checked to be {name: numeric array}, as a state dict of the public code is."""
    import numpy as np
    if not isinstance(mapping, dict):
        raise InputError(f'{path}: its {what} is {describe(mapping)}, not a dict of tensors')
    for name, value in mapping.items():
        if not (isinstance(name, str) and name.isascii()):
            raise InputError(f'{path}: its {what} holds the key {describe(name)}, not a parameter name')
        if not (isinstance(value, np.ndarray) and value.dtype.kind in 'biuf'):
            raise InputError(f'{path}: {what} {name} is {describe(value)}, not a tensor of numbers')
    return mapping


def _optimizer(saved, path) -> None:
    """The optimiser entry checked to be {'state': {index: {name: tensor or number}}} before it is used."""
    import numpy as np
    optimizer = saved.get('optimizer')
    state = optimizer.get('state', {}) if isinstance(optimizer, dict) else None
    if not isinstance(state, dict):
        raise InputError(f'{path} holds no "optimizer" state dict: not a checkpoint of the public BNAF code')
    for index, entry in state.items():
        if type(index) is not int or not isinstance(entry, dict):
            raise InputError(f'{path}: optimizer state {describe(index)} is {describe(entry)}, not a dict of tensors')
        for name, value in entry.items():
            if not isinstance(value, (np.ndarray, int, float)) or (isinstance(value, np.ndarray)
                                                                     and value.dtype.kind not in 'biuf'):
                raise InputError(f'{path}: optimizer state {index} {describe(name)} is {describe(value)}')


def _layout(state, path) -> dict:
    """What the state dict's names and first weight say of its BNAF, before anything is built from it."""
    first = state.get('0.0._weight')
    if first is None or first.ndim != 2 or first.shape[1] == 0 or first.shape[0] % first.shape[1]:
        raise InputError(f'{path}: its model has no 0.0._weight matrix [d * hidden, d]: not a checkpoint of the '
                         f'public BNAF code')
    return {'dimensions': first.shape[1], 'networks (--flows)': len({name.split('.')[0] for name in state}),
            'hidden units per dimension (--hidden_dim)': first.shape[0] // first.shape[1],
            'tanh layers per network': sum(name.startswith('0.') and name.endswith('._weight') for name in state) - 1}


def load_public_bnaf(path: str, residual, dims: int, n_flows: int, n_tanh: int, hidden: int) -> tuple:
    """The BNAF of a public BNAF checkpoint, checked against the flags.

    Args:
      path: the checkpoint file.
      residual: the residual of every network but the last (--residual; 'gated' for toy2d.py's models).
      dims, n_flows, n_tanh, hidden: what the flags describe (dimensions of the data, networks, tanh layers per
        network, which is the public --layers, hidden units per dimension); n_flows None: as the checkpoint has.

    Returns:
      (the `VectorFlow`, its variables in the checkpoint's parameter order, the saved dict).

    Raises:
      InputError: naming the file and what does not fit: its structure (keys, types, ranks) before its layout
        against the flags, and that before anything is built.
    """
    from emerging.runs.torch_files import read_torch_file
    from emerging.vector import public_bnaf

    saved = read_torch_file(path)
    if not isinstance(saved, dict) or not isinstance(saved.get('model'), dict):
        raise InputError(f'{path} holds no "model" state dict: not a checkpoint of the public BNAF code')
    state = _arrays(saved['model'], 'model', path)
    _optimizer(saved, path)
    found = _layout(state, path)
    wanted = {'dimensions': dims, 'networks (--flows)': n_flows, 'hidden units per dimension (--hidden_dim)': hidden,
              'tanh layers per network': n_tanh}
    wrong = [f'{name}: {found[name]} in the checkpoint, {value} by the flags' for name, value in wanted.items()
             if value is not None and found[name] != value]
    if wrong:
        raise InputError(f'{path} does not fit the flags: ' + '; '.join(wrong))
    try:
        flow, order = public_bnaf(state, residual)
    except ValueError as error:
        raise InputError(f'{path}: {error}') from None
    return flow, order, saved
