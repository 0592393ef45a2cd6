"""Everything a run saves in order to continue, as one object: `CheckpointState`.

The tf.train.Checkpoint holds `model`, `optimizer` (moments and Polyak
averages), the counters `epoch`, `n_processed` (examples seen, all processes,
at the anchor resolution), `n_images` (images seen, all processes),
`train_time` (seconds spent in train steps), `test_loss_best`, and
`loss_scale` when float16 networks use one.  Files in `logdir`:

* checkpoints/ckpt-{epoch}: after every epoch, written by the chief through
  tf.train.CheckpointManager, which keeps the last two;
* checkpoints/input-rank{r}-{epoch}: every process's own input iterators
  (`train`, `test`) after that epoch.  Each is written before the checkpoint
  of the same epoch, so a checkpoint always has its input position beside
  it; the last two epochs are kept;
* model_best_loss.ckpt: the whole checkpoint, whenever a full validation beats
  `test_loss_best`; written under a temporary name and renamed, so a crash
  never leaves half of one.

`resume()` reads the latest checkpoint and this process's input position of
the same epoch (the input stream restarts, with a note, when that file is
missing).  Restored weights are broadcast from rank 0 to every process.
"""
import contextlib
import glob
import os

import numpy as np
import tensorflow as tf

from emerging.runs.folder import BEST_CHECKPOINT, CHECKPOINTS, check_readable, write_checkpoint_atomically


class CheckpointState:
    """A run's checkpointed state and its files (see the module docstring).

    Args:
      model: the model (an `ImageFlowModel`).
      optimizer: its `Optimizer`.
      logdir: the run folder.
      dist: the `Distributed` of this process.
      iterators: this process's input iterators by name ({'train': ..., 'test': ...}).
      loss_scale: the `DynamicLossScale` of float16 networks, or None.
    """

    def __init__(self, model, optimizer, logdir, dist, iterators, loss_scale=None):
        self.model, self.optimizer, self.loss_scale = model, optimizer, loss_scale
        self.logdir, self.dist = logdir, dist
        counter = lambda name: tf.Variable(0, dtype=tf.int64, trainable=False, name=name)  # noqa: E731
        self.epoch, self.n_processed, self.n_images = counter('epoch'), counter('n_processed'), counter('n_images')
        self.train_time = tf.Variable(0., dtype=tf.float64, trainable=False, name='train_time')
        self.test_loss_best = tf.Variable(np.inf, dtype=tf.float64, trainable=False, name='test_loss_best')
        self.checkpoint = tf.train.Checkpoint(
            model=model, optimizer=optimizer, epoch=self.epoch, n_processed=self.n_processed,
            n_images=self.n_images, train_time=self.train_time, test_loss_best=self.test_loss_best,
            **({'loss_scale': loss_scale} if loss_scale is not None else {}))
        # what a run started from another run's checkpoint takes over (--restore_path): not its counters
        self.weights = tf.train.Checkpoint(model=model, optimizer=optimizer,
                                           **({'loss_scale': loss_scale} if loss_scale is not None else {}))
        self.manager = tf.train.CheckpointManager(self.checkpoint, os.path.join(logdir, CHECKPOINTS),
                                                  max_to_keep=2)
        self.inputs = tf.train.Checkpoint(**iterators)

    # ---- counters -------------------------------------------------------------------
    def count(self, n_processed, n_images):
        self.n_processed.assign_add(n_processed)
        self.n_images.assign_add(n_images)

    def counters(self):
        """n_processed and n_images as Python ints (the log lines' counters)."""
        return {'n_processed': int(self.n_processed.numpy()), 'n_images': int(self.n_images.numpy())}

    # ---- weights across processes ---------------------------------------------------
    def broadcast(self):
        """Rank 0's weights and optimiser state on every process."""
        self.dist.broadcast_variables(list(self.model.variables) + list(self.optimizer.variables), root_rank=0)

    @contextlib.contextmanager
    def polyak_weights(self, enabled=True):
        """Inside the block the weights are their Polyak averages (when enabled); afterwards, as before."""
        if not enabled:
            yield
            return
        self.optimizer.swap_polyak()
        try:
            yield
        finally:
            self.optimizer.swap_polyak()

    # ---- reading ----------------------------------------------------------------------
    def restore(self, path, counters=True):
        """Weights and optimiser state from a checkpoint prefix (what it holds of them), and with
        `counters` also its epoch, image counts, train time and best test loss."""
        check_readable(path)
        (self.checkpoint if counters else self.weights).read(path).expect_partial()
        self.broadcast()

    def resume(self):
        """Continue from the latest checkpoint in logdir/checkpoints; returns its epoch (None if none)."""
        latest = self.manager.latest_checkpoint
        if latest is None:
            return None
        self.restore(latest)
        epoch = int(self.epoch.numpy())
        path = self.input_state_path(epoch)
        if os.path.exists(path + '.index'):
            self.inputs.read(path).assert_consumed()
        elif self.dist.is_chief:
            print(f'resume: no saved input position for epoch {epoch}; the data stream restarts', flush=True)
        return epoch

    # ---- writing ----------------------------------------------------------------------
    def input_state_path(self, epoch):
        return os.path.join(self.logdir, CHECKPOINTS, f'input-rank{self.dist.rank}-{epoch}')

    def save_input_state(self, epoch):
        """This process's input position after `epoch`; keeps the last two, as the checkpoints."""
        os.makedirs(os.path.dirname(self.input_state_path(epoch)), exist_ok=True)
        self.inputs.write(self.input_state_path(epoch))
        for old in glob.glob(self.input_state_path('*') + '.index'):
            old_epoch = old[:-len('.index')].rsplit('-', 1)[-1]
            if old_epoch.isdigit() and int(old_epoch) <= epoch - 2:
                for path in glob.glob(old[:-len('.index')] + '.*'):
                    os.remove(path)

    def save_epoch(self, epoch):
        """Every process: its input position; then the chief: checkpoints/ckpt-{epoch}."""
        self.save_input_state(epoch)
        if self.dist.is_chief:
            self.manager.save(checkpoint_number=epoch)

    def save_best(self):
        """Write model_best_loss.ckpt (atomically); returns its prefix."""
        return write_checkpoint_atomically(self.checkpoint, os.path.join(self.logdir, BEST_CHECKPOINT))

    def save_if_best(self, test_loss):
        """A new best validation loss: remember it and write model_best_loss.ckpt; returns whether it was."""
        if test_loss < self.test_loss_best.numpy():
            self.test_loss_best.assign(test_loss)
            self.save_best()
            return True
        return False
