"""Run folders: what a run writes, read back; the shipped pretrained models; export and import.

* folder.py     the files of a run folder (config.json, logs, checkpoints) and how they are written, found and
                checked
* checkpoints.py checkpoint folders with one commit point; a checkpoint verified and matched to a model
* load.py       `load_run`: a run's model with its best, latest or Polyak-averaged weights
* export.py     `export_savedmodel`: a SavedModel that loads without this project
* tf1_import.py `import_tf1_checkpoint`: the original TF1 code's checkpoints into a `Glow` model
* tf_checkpoint_index.py  a TensorFlow checkpoint's index parsed and checked before TensorFlow reads it
* lock.py       `RunLock`: one process at a time in a run folder
* torch_files.py, resflow_import.py  PyTorch checkpoint files read without PyTorch; the public Residual Flows
                code's checkpoints into `ResFlow`
* pretrained/   run folders shipped with the package (`--pretrained digits`)

Never imports the training code.  The names below are imported on first use.
"""
from emerging.exports import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    'Run': 'emerging.runs.load',
    'load_run': 'emerging.runs.load',
    'read_config': 'emerging.runs.folder',
    'write_config': 'emerging.runs.folder',
    'checkpoint_for': 'emerging.runs.folder',
    'pretrained_run': 'emerging.runs.folder',
    'export_savedmodel': 'emerging.runs.export',
    'import_tf1_checkpoint': 'emerging.runs.tf1_import',
})
__all__ = ['Run', 'load_run', 'read_config', 'write_config', 'checkpoint_for', 'pretrained_run', 'export_savedmodel',
           'import_tf1_checkpoint']
