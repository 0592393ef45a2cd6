"""PyTorch checkpoint files read without PyTorch (tests/runs/pytorch, written by torch with the scripts there):
every storage type, strides and 0-d tensors as NumPy; containers and argparse.Namespace; foreign objects only as
stand-ins, and only where allowed; a pickle that would run code, or that is not torch's, refused by name.  Files
written here by hand (`write_torch`): a tensor reaching past its storage, a negative offset, a huge declared
element count or size, a deeply nested persistent id, a member inflating past its size, a pickle bomb, each refused
before memory is taken; and checkpoints of the public BNAF and Residual Flows code whose structure is wrong (keys,
types, ranks), named by `load_public_bnaf` and `emerging import-resflow`."""
import argparse
import io
import os
import pickle
import re
import tracemalloc
import zipfile

import numpy as np
import pytest

from emerging.errors import InputError
from emerging.runs.torch_files import PickledObject, read_torch_file
from tests.helpers import run_script
from tests.test_pickles import Opcodes

FOLDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'pytorch')
TENSORS = os.path.join(FOLDER, 'tensors.pt')


def test_every_tensor_as_the_numpy_array_torch_saved():
    saved = read_torch_file(TENSORS, objects=('public.', 'torch.nn.'))
    expected = np.load(os.path.join(FOLDER, 'tensors.npz'))
    for name, array in saved['tensors'].items():
        np.testing.assert_array_equal(np.asarray(array, np.float64) if name == 'bfloat16' else array,
                                      expected[name], err_msg=name)
        assert array.shape == expected[name].shape
    assert saved['tensors']['int16'].dtype == np.int16 and saved['tensors']['bool'].dtype == np.bool_
    np.testing.assert_array_equal(saved['parameter'], np.ones(3, np.float32))
    assert saved['args'] == argparse.Namespace(nblocks='1-1', lr=0.001, flag=True) and saved['epoch'] == 3


def test_objects_become_stand_ins_that_keep_their_attributes_only_where_allowed():
    with pytest.raises(InputError, match=r'public\.utils\.Helper is not something this file may hold'):
        read_torch_file(TENSORS)
    helper = read_torch_file(TENSORS, objects=('public.', 'torch.nn.'))['helper']
    assert isinstance(helper, PickledObject) and helper.pickled_class == 'public.utils.Helper'
    assert helper.decay == 0.999
    expected = np.load(os.path.join(FOLDER, 'tensors.npz'))['helper_weight']
    np.testing.assert_array_equal(helper.shadow_params['0.weight'], expected)
    np.testing.assert_array_equal(helper.module._modules['0']._parameters['weight'], expected)


def archive_with(tmp_path, payload):
    path = tmp_path / 'made.pt'
    with zipfile.ZipFile(path, 'w') as archive:
        archive.writestr('made/data.pkl', payload)
    return str(path)


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    class RunsCode:
        def __reduce__(self):
            return os.system, ('echo this must not run',)

    path = archive_with(tmp_path, pickle.dumps({'model': RunsCode()}, protocol=2))
    with pytest.raises(InputError, match=r'system is not something this file may hold; refused'):
        read_torch_file(path, objects=('torch.nn.',))


def test_what_is_not_a_torch_checkpoint_is_named(tmp_path):
    with pytest.raises(InputError, match='no such file'):
        read_torch_file(str(tmp_path / 'missing.pt'))
    legacy = tmp_path / 'legacy.pt'
    legacy.write_bytes(pickle.dumps({'a': 1}))
    with pytest.raises(InputError, match='not a PyTorch checkpoint of the zip format'):
        read_torch_file(str(legacy))
    other = tmp_path / 'other.zip'
    with zipfile.ZipFile(other, 'w') as archive:
        archive.writestr('readme.txt', 'hello')
    with pytest.raises(InputError, match='no single data.pkl'):
        read_torch_file(str(other))
    buffer = io.BytesIO(open(TENSORS, 'rb').read())
    with zipfile.ZipFile(buffer) as source, zipfile.ZipFile(tmp_path / 'cut.pt', 'w') as target:
        for name in source.namelist():
            if not name.endswith('/data/0'):
                target.writestr(name, source.read(name))
    with pytest.raises(InputError, match=r'data/0 is missing from the archive'):
        read_torch_file(str(tmp_path / 'cut.pt'), objects=('public.', 'torch.nn.'))


class Raw(bytes):
    """Opcodes placed as they are by `opcodes`."""


def tensor(key, numel, offset, size, stride, storage='FloatStorage'):
    """The opcodes of a tensor on storage `key` of `numel` elements, with the offset, size and stride given."""
    o = Opcodes
    pid = o.tuple(o.text('storage'), o.name('torch', storage), o.text(key), o.text('cpu'), o.int(numel)) + b'Q'
    return Raw(o.reduce(o.name('torch._utils', '_rebuild_tensor_v2'), pid, o.int(offset),
                        o.tuple(*map(o.int, size)), o.tuple(*map(o.int, stride)), b'\x89',
                        o.reduce(o.name('collections', 'OrderedDict'))))


def opcodes(value, storages):
    """The opcodes of a value as torch.save pickles it: arrays become float32 tensors on storages of their own."""
    o = Opcodes
    if isinstance(value, Raw):
        return bytes(value)
    if isinstance(value, np.ndarray):
        key = str(len(storages))
        storages[key] = np.ascontiguousarray(value, np.float32).tobytes()
        strides = [int(np.prod(value.shape[i + 1:])) for i in range(value.ndim)]
        return tensor(key, value.size, 0, value.shape, strides)
    if isinstance(value, argparse.Namespace):
        return o.newobj(o.name('argparse', 'Namespace'), opcodes(vars(value), storages))
    if isinstance(value, dict):
        return o.dict(*[(opcodes(k, storages), opcodes(v, storages)) for k, v in value.items()])
    if isinstance(value, (list, tuple)):
        return (o.list if isinstance(value, list) else o.tuple)(*[opcodes(v, storages) for v in value])
    if isinstance(value, str):
        return o.text(value)
    if value is None or isinstance(value, bool):
        return {None: b'N', True: b'\x88', False: b'\x89'}[value]
    if isinstance(value, int):
        return o.int(value)
    return b'G' + np.array(value, '>f8').tobytes()


def write_torch(path, value=None, storages=None, compression=zipfile.ZIP_STORED):
    """A checkpoint in torch.save's layout holding `value` (or the opcodes `Raw` gives, with `storages`)."""
    storages = dict(storages or {})
    body = opcodes(value, storages)
    with zipfile.ZipFile(path, 'w', compression) as archive:
        archive.writestr('made/data.pkl', Opcodes.pickle(body))
        archive.writestr('made/byteorder', 'little')
        for key, data in storages.items():
            archive.writestr(f'made/data/{key}', data)
    return str(path)


def refused_lightly(path, match, **options):
    """read_torch_file refuses `path` with `match`, and its peak memory stays under 4 MiB."""
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match=match):
            read_torch_file(path, **options)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2 ** 20, peak


def test_a_file_written_here_reads_back(tmp_path):
    value = {'w': np.arange(6.).reshape(2, 3), 'args': argparse.Namespace(lr=0.1, nblocks='1-1'), 'n': [1, 'x', None]}
    saved = read_torch_file(write_torch(tmp_path / 'ok.pt', value))
    np.testing.assert_array_equal(saved['w'], value['w'])
    assert saved['args'] == value['args'] and saved['n'] == value['n']
    strided = tensor('0', 6, 1, (2, 2), (3, 1))  # a view: rows 1-2 and 4-5 of 0..5
    view = read_torch_file(write_torch(tmp_path / 'view.pt', strided, {'0': np.arange(6, dtype=np.float32).tobytes()}))
    np.testing.assert_array_equal(view, [[1, 2], [4, 5]])


FOUR = {'0': np.arange(4, dtype=np.float32).tobytes()}


@pytest.mark.parametrize('offset, size, stride, match', [
    (0, (3, 3), (3, 1), r'size \[3, 3\], strides \[3, 1\] at offset 0 reaches element 8 of storage 0, which has 4'),
    (0, (2, 2), (10 ** 9, 1), 'reaches element 1000000001 of storage 0'),
    (4, (), (), 'at offset 4 reaches element 4'),
    (-1, (2,), (1,), 'a tensor on .* at offset -1'),
    (0, (2,), (-1,), r'a tensor stride \(-1,\), not non-negative integers'),
    (0, (2, 2), (1,), r'a tensor of size \[2, 2\] with strides \[1\]'),
    (0, (10 ** 12,), (0,), r'a tensor of size \[1000000000000\] \(4000000000000 bytes\) takes the tensors past the'),
])
def test_a_tensor_that_does_not_fit_its_storage_is_refused_before_it_is_built(tmp_path, offset, size, stride, match):
    path = write_torch(tmp_path / 'bad.pt', {'w': tensor('0', 4, offset, size, stride)}, FOUR)
    refused_lightly(path, match)


def test_declared_sizes_past_the_data_or_the_bound_are_refused(tmp_path):
    path = write_torch(tmp_path / 'numel.pt', tensor('0', 10 ** 12, 0, (2,), (1,)), FOUR)
    refused_lightly(path, r'made/data/0 holds 16 bytes, fewer than the 4000000000000 its use needs')
    views = {'a': tensor('0', 1000, 0, (1000,), (1,)), 'b': tensor('0', 1000, 0, (1000,), (1,))}
    path = write_torch(tmp_path / 'big.pt', views, {'0': np.zeros(1000, np.float32).tobytes()})
    refused_lightly(path, r'a tensor of size \[1000\] \(4000 bytes\) takes the tensors past the 6000 bytes '
                          r'EMERGING_MAX_READ_BYTES', max_bytes=6000)
    refused_lightly(path, r'made/data/0 declares 4000 bytes, past the 3000 bytes', max_bytes=3000)
    np.testing.assert_array_equal(read_torch_file(path, max_bytes=9000)['b'], np.zeros(1000))


def test_a_deeply_nested_persistent_id_is_refused(tmp_path):
    path = write_torch(tmp_path / 'deep.pt', Raw(Opcodes.int(0) + b'\x85' * 100_000 + b'Q'))
    refused_lightly(path, 'objects nested more than 200 deep')


def test_a_member_that_inflates_past_its_size_or_the_bound_is_refused(tmp_path):
    huge = Raw(Opcodes.text('x' * 2 ** 26))  # 64 MiB of text, deflated to ~64 KiB
    path = write_torch(tmp_path / 'inflates.pt', huge, compression=zipfile.ZIP_DEFLATED)
    assert os.path.getsize(path) < 2 ** 20
    refused_lightly(path, r'made/data.pkl declares 671088\d\d bytes, past the 16777216 bytes', max_bytes=2 ** 24)
    data = bytearray(open(path, 'rb').read())
    with zipfile.ZipFile(path) as archive:
        size = archive.getinfo('made/data.pkl').file_size
    declared = size.to_bytes(4, 'little')
    assert data.count(declared) == 2  # the local header's and the central directory's sizes
    lied = bytes(data).replace(declared, (1000).to_bytes(4, 'little'))
    (tmp_path / 'lies.pt').write_bytes(lied)
    refused_lightly(str(tmp_path / 'lies.pt'), 'cannot read the checkpoint: Bad CRC-32')


def test_a_pickle_bomb_is_read_as_references(tmp_path):
    saved = read_torch_file(write_torch(tmp_path / 'bomb.pt', Raw(Opcodes.bomb(60))))
    assert len(saved) == 2 and saved[0] is saved[1]


def public_bnaf_file(tmp_path, change):
    """bnaf_d6_gated.pt written again with `change(saved)` applied."""
    saved = read_torch_file(os.path.join(FOLDER, 'bnaf_d6_gated.pt'))
    change(saved)
    return write_torch(tmp_path / 'changed.pt', saved)


def drop(key):
    return lambda saved: saved.pop(key)


def model_entry(name, value):
    return lambda saved: saved['model'].__setitem__(name, value)


@pytest.mark.parametrize('change, match', [
    (drop('model'), 'holds no "model" state dict'),
    (model_entry('0.0._weight', 'text'), r'model 0\.0\._weight is \'text\', not a tensor of numbers'),
    (model_entry(5, np.zeros(3)), 'its model holds the key 5, not a parameter name'),
    (model_entry('0.0._weight', np.zeros(24)), r'has no 0\.0\._weight matrix \[d \* hidden, d\]'),
    (model_entry('0.0._weight', np.zeros((24, 5))), r'has no 0\.0\._weight matrix'),
    (drop('optimizer'), 'holds no "optimizer" state dict'),
    (lambda saved: saved['optimizer']['state'].__setitem__(0, [1]), r'optimizer state 0 is \[1\], not a dict'),
    (lambda saved: saved['optimizer']['state'][0].__setitem__('exp_avg_param', 'text'),
     "optimizer state 0 'exp_avg_param' is 'text'"),
    (model_entry('0.0._weight', np.zeros((6000, 6))),
     r'does not fit the flags: hidden units per dimension \(--hidden_dim\): 1000 in the checkpoint, 4 by the flags'),
])
def test_a_public_bnaf_checkpoint_of_the_wrong_structure_is_named_before_anything_is_built(tmp_path, change, match):
    from emerging.cli.public_bnaf import load_public_bnaf
    path = public_bnaf_file(tmp_path, lambda saved: None)
    assert load_public_bnaf(path, 'gated', 6, None, None, 4)[0].dims == 6
    with pytest.raises(InputError, match=match):
        load_public_bnaf(public_bnaf_file(tmp_path, change), 'gated', 6, None, None, 4)


def test_a_public_resflow_checkpoint_of_the_wrong_structure_is_named_and_nothing_is_written(tmp_path, capsys):
    from emerging.cli.command import main
    from emerging.cli.import_resflow import PICKLED_OBJECTS
    saved = read_torch_file(os.path.join(FOLDER, 'resflow_mnist.pth'), objects=PICKLED_OBJECTS)
    bomb = Raw(Opcodes.bomb(60))  # np.asarray would expand its 2^60 items
    weight = 'transforms.0.chain.2.nnet.0.weight'
    for state, match in (({**saved['state_dict'], weight: bomb}, f'state_dict {weight}: a tuple, not a tensor'),
                         ({**saved['state_dict'], 7: np.zeros(2)}, 'its state_dict holds the key 7'),
                         ({**saved['state_dict'], weight: saved['state_dict'][weight].ravel()},
                          rf'{weight}: shape \[72\], the model has \[3, 3, 1, 8\]')):
        path = write_torch(tmp_path / 'changed.pth', {'state_dict': state, 'args': saved['args']})
        code = main(['import-resflow', '--checkpoint', path, '--logdir', str(tmp_path / 'run'), '--weights', 'model'])
        err = capsys.readouterr().err
        assert code == 2 and 'Traceback' not in err and not os.path.exists(tmp_path / 'run'), err
        assert re.search(match, err), err


@pytest.mark.slow
def test_toy_density_names_a_tensor_past_its_storage_instead_of_crashing(tmp_path):
    state = read_torch_file(os.path.join(FOLDER, 'bnaf_d2_toy.pt'))
    state['model']['0.0._weight'] = tensor('reach', 4, 0, (16, 2), (1000, 1))
    path = write_torch(tmp_path / 'reach.pt', state, {'reach': np.zeros(4, np.float32).tobytes()})
    result = run_script('toy_density.py', ['--plot', '--restore_file', path, '--dataset', '8gaussians', '--flows',
                                           '2', '--hidden_dim', '8', '--output_dir', str(tmp_path / 'out')],
                        check=False, timeout=300)
    assert result.returncode == 2 and 'Traceback' not in result.stderr, result.stderr
    assert 'reaches element 15001 of storage reach, which has 4' in result.stderr
