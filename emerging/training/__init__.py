"""Training a flow: the loop, its compiled steps, the saved state and the records.

* loop.py     `Trainer`: epochs, learning-rate warm-up, validation schedule,
              divergence check (`TrainingDiverged`), evaluation, inference;
* steps.py    the compiled train step, test step and sampling function;
* state.py    `CheckpointState`: checkpoint, counters, epoch and best
              checkpoints, per-process input positions, restore and resume,
              the Polyak swap;
* recorder.py `Recorder`: train.txt / test.txt, status lines, TensorBoard,
              sample-grid PNGs (chief only).
"""
from emerging.training.loop import Trainer, TrainingDiverged  # noqa: F401
from emerging.training.recorder import TEMPERATURES, Recorder  # noqa: F401
from emerging.training.state import BEST_CHECKPOINT, CheckpointState, write_checkpoint_atomically  # noqa: F401
from emerging.training.steps import STATS  # noqa: F401
