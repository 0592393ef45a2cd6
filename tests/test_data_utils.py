"""data_utils, the data package under the project's first layout's name: each module is its emerging.data
module, and its TensorFlow-free modules import without TensorFlow."""
import subprocess
import sys

import pytest

from tests.helpers import ROOT, env


def test_each_module_is_the_emerging_data_module_it_names():
    import data_utils
    import data_utils.augment
    import data_utils.data
    import data_utils.tabular
    import data_utils.tfrecords
    import data_utils.toy2d
    import emerging.data
    from emerging.data import augment, images, problems, tabular, tfrecords, toy2d
    assert data_utils.data is images and data_utils.augment is augment and data_utils.tabular is tabular
    assert data_utils.tfrecords is tfrecords and data_utils.toy2d is toy2d
    for name in emerging.data.__all__:
        assert getattr(data_utils, name) is getattr(emerging.data, name)
    for name in ('DEFAULT_IMAGE_SIZE', 'N_Y', 'PROBLEMS', 'TFRECORD_PROBLEMS', 'default_n_test'):
        assert getattr(data_utils, name) is getattr(problems, name)
    from data_utils.data import DataConfig, ordered_split  # the import of tests/runs/v0_2_0/make.sh
    assert DataConfig is problems.DataConfig and ordered_split is images.ordered_split
    assert set(data_utils.__all__) <= set(dir(data_utils))
    with pytest.raises(AttributeError, match="module 'data_utils' has no attribute 'get_dataa'"):
        data_utils.get_dataa


def test_the_numpy_modules_import_without_tensorflow():
    code = ('import sys\nimport data_utils.toy2d, data_utils.tabular, data_utils\n'
            'data_utils.PROBLEMS\nprint("tensorflow" in sys.modules)')
    result = subprocess.run([sys.executable, '-c', code], cwd=ROOT, env=env(), capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == 'False'
