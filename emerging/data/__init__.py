"""Input pipelines and data sets; never imports a model.

* problems.py  the image problems, their sizes and classes, `DataConfig` (TensorFlow-free)
* images.py    `get_data`: one process's tf.data pipelines; `ordered_split`: images in stored order
* augment.py   the original's augmentation (and random flips), stateless per batch
* tfrecords.py Glow-format TFRecord shards: writing, checking, reading
* toy2d.py     2-D densities with known distributions and the energies u1-u4 (NumPy)
* tabular.py   the MAF tabular benchmarks POWER, GAS, HEPMASS, MINIBOONE, BSDS300 (NumPy)

The names below are imported on first use, so that the TensorFlow-free
modules import without starting TensorFlow.
"""
from emerging.exports import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    'DataConfig': 'emerging.data.problems',
    'Data': 'emerging.data.images',
    'get_data': 'emerging.data.images',
    'ordered_split': 'emerging.data.images',
})
__all__ = ['DataConfig', 'Data', 'get_data', 'ordered_split']
