"""PyTorch checkpoint files read without PyTorch (tests/runs/pytorch, written by torch with the scripts there):
every storage type, strides and 0-d tensors as NumPy; containers and argparse.Namespace; foreign objects only as
stand-ins, and only where allowed; a pickle that would run code, or that is not torch's, refused by name."""
import argparse
import io
import os
import pickle
import zipfile

import numpy as np
import pytest

from emerging.errors import InputError
from emerging.runs.torch_files import PickledObject, read_torch_file

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
    with pytest.raises(InputError, match=r'public\.utils\.Helper is not something a checkpoint holds'):
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
    with pytest.raises(InputError, match=r'system is not something a checkpoint holds; refused'):
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
    with pytest.raises(InputError, match='the storage 0 is missing'):
        read_torch_file(str(tmp_path / 'cut.pt'), objects=('public.', 'torch.nn.'))
