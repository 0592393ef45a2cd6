"""emerging: Glow-family normalizing flows (1x1, emerging, periodic and
autoregressive convolutions), Residual Flows and flows on vectors (BNAF, MAF,
RealNVP) in TensorFlow 2 / Keras / TensorFlow Probability, trained on one
process or many with Horovod.

The public names below are imported on first use, so that `import emerging`
alone does not start TensorFlow.  Where things live:

* emerging.flows     image flow layers (TFP bijectors + Keras layers), flows/nets the networks inside them
* emerging.vector    flows on vectors: BNAF, TFP's MAF and RealNVP
* emerging.models    the image-flow model interface, Glow, ResFlow, their configurations
* emerging.training  the trainer, its steps, checkpoints, records, optimiser, Horovod
* emerging.runs      run folders, load_run, the pretrained models, export, TF1 import
* emerging.data      input pipelines and data sets
* emerging.cli       every command line (train.py, train_resflow.py, the density scripts, `emerging`)
"""
import os

from emerging import quiet
from emerging.exports import lazy_exports

# tf.keras as Keras 2 (tf_keras), the Keras of this package: TensorFlow then does not import Keras 3 when it
# starts (about a third of `import tensorflow`, 3 s on 2 cores).  A setting of the user's own wins.
os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

__version__ = '0.3.0'

__getattr__, __dir__ = lazy_exports(__name__, {
    'GlowConfig': 'emerging.models.config',
    'ResFlowConfig': 'emerging.models.config',
    'TrainConfig': 'emerging.training.config',
    'ImageFlowModel': 'emerging.models.base',
    'ImageFlowBijector': 'emerging.models.base',
    'Glow': 'emerging.models.glow',
    'ResFlow': 'emerging.models.resflow',
    'build_model': 'emerging.models.registry',
    'Optimizer': 'emerging.training.optim',
    'DynamicLossScale': 'emerging.training.optim',
    'PolyakAverage': 'emerging.averaging',
    'Distributed': 'emerging.training.distributed',
    'Trainer': 'emerging.training.loop',
    'TrainingDiverged': 'emerging.training.loop',
    'CheckpointState': 'emerging.training.state',
    'Recorder': 'emerging.training.recorder',
    'load_run': 'emerging.runs.load',
    'Run': 'emerging.runs.load',
    'load_pretrained': 'emerging.runs.load',
    'pretrained_run': 'emerging.runs.folder',
    'export_savedmodel': 'emerging.runs.export',
    'import_tf1_checkpoint': 'emerging.runs.tf1_import',
    'InputError': 'emerging.errors',
})
__all__ = ['__version__', 'GlowConfig', 'ResFlowConfig', 'TrainConfig', 'ImageFlowModel', 'ImageFlowBijector',
           'Glow', 'ResFlow', 'build_model', 'Optimizer', 'DynamicLossScale', 'PolyakAverage', 'Distributed',
           'Trainer', 'TrainingDiverged', 'CheckpointState', 'Recorder', 'load_run', 'Run', 'load_pretrained',
           'pretrained_run', 'export_savedmodel', 'import_tf1_checkpoint', 'InputError']
quiet.install()

