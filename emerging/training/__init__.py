"""Training a flow: the loop, its compiled steps, the saved state, the records, optimiser and processes.

* config.py      `TrainConfig`: optimisation and schedule (TensorFlow-free)
* loop.py        `Trainer`: epochs, learning-rate warm-up, validation schedule,
                 divergence check (`TrainingDiverged`), evaluation, inference
* steps.py       the compiled train step, test step and sampling function
* state.py       `CheckpointState`: checkpoint, counters, epoch and best
                 checkpoints, per-process input positions, restore and resume,
                 the Polyak swap
* preemption.py  `StopSignals`: SIGTERM / SIGINT as stop requests agreed by
                 every process, time-based saves; `Stopped`
* recorder.py    `Recorder`: train.txt / test.txt, status lines, TensorBoard,
                 sample-grid PNGs (chief only)
* optim.py       the original's adamax / adam / adam2 with Polyak averaging; loss scaling
* distributed.py `Distributed`: the only module that imports Horovod

The trainer takes a model (any `emerging.models.ImageFlowModel`), a
`TrainConfig` and data; it reads no flags.  The names below are imported on
first use.
"""
from emerging.exports import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    'TrainConfig': 'emerging.training.config',
    'Trainer': 'emerging.training.loop',
    'TrainingDiverged': 'emerging.training.loop',
    'CheckpointState': 'emerging.training.state',
    'Recorder': 'emerging.training.recorder',
    'Optimizer': 'emerging.training.optim',
    'DynamicLossScale': 'emerging.training.optim',
    'Distributed': 'emerging.training.distributed',
    'STATS': 'emerging.training.steps',
})
__all__ = ['TrainConfig', 'Trainer', 'TrainingDiverged', 'CheckpointState', 'Recorder', 'Optimizer',
           'DynamicLossScale', 'Distributed', 'STATS']
