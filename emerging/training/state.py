"""Everything a run saves in order to continue, as one object: `CheckpointState`.

The tf.train.Checkpoint holds `model`, `optimizer` (moments and Polyak
averages), the counters `epoch` (the last completed epoch), `step` (train
steps done in the next one, 0 at an epoch's end), `epoch_sums` (the sums of
the four statistics over those steps), `n_processed` (examples seen, all
processes, at the anchor resolution), `n_images` (images seen, all
processes), `train_time` (seconds spent in train steps), `test_loss_best`,
and `loss_scale` when float16 networks use one.  Files in `logdir`:

* checkpoints/: a checkpoint folder (emerging.runs.checkpoints: one commit
  point, the last two kept) of `ckpt-{epoch}` after every epoch and
  `ckpt-{epoch}-step{step}` when a run stops or saves within an epoch;
* checkpoints/input-rank{r}-{epoch}[-step{step}]: every process's own input
  iterators (`train`, `test`) and random generator (`rng`) at that checkpoint,
  with a manifest (sizes and SHA-256, as checkpoints have).  Every process
  writes its own, all wait for each other, and only then does the chief commit
  the checkpoint: a committed checkpoint always has every input position
  beside it;
* best/: the checkpoint of the best full validation so far, the only one
  kept there (`ckpt-{epoch}`).

`resume()` checks the latest checkpoint against the model, reads it and
this process's input position beside it, checked first (`read_input_position`;
the input stream restarts, with a note, when no file of it is there: runs of
versions that did not write it).
Restored weights are broadcast from rank 0 to every process.
"""
import contextlib
import glob
import os
import shutil

import numpy as np
import tensorflow as tf

from emerging.errors import InputError
from emerging.runs.checkpoints import (
    check_matches,
    checkpoint_stem,
    commit,
    committed,
    latest,
    verify,
    write_manifest,
    writing,
)
from emerging.runs.folder import CHECKPOINTS, check_resumable, resolve_checkpoint, write_best


class CheckpointState:
    """A run's checkpointed state and its files (see the module docstring).

    Args:
      model: the model (an `ImageFlowModel`).
      optimizer: its `Optimizer`.
      logdir: the run folder.
      dist: the `Distributed` of this process.
      iterators: this process's input iterators by name ({'train': ..., 'test': ...}), and its random
        generator ('rng'), saved with them.
      loss_scale: the `DynamicLossScale` of float16 networks, or None.
    """

    def __init__(self, model, optimizer, logdir, dist, iterators, loss_scale=None):
        self.model, self.optimizer, self.loss_scale = model, optimizer, loss_scale
        self.logdir, self.dist = logdir, dist
        counter = lambda name: tf.Variable(0, dtype=tf.int64, trainable=False, name=name)  # noqa: E731
        self.epoch, self.n_processed, self.n_images = counter('epoch'), counter('n_processed'), counter('n_images')
        self.step = counter('step')
        self.epoch_sums = tf.Variable(tf.zeros([4], tf.float64), trainable=False, name='epoch_sums')
        self.train_time = tf.Variable(0., dtype=tf.float64, trainable=False, name='train_time')
        self.test_loss_best = tf.Variable(np.inf, dtype=tf.float64, trainable=False, name='test_loss_best')
        scale = {'loss_scale': loss_scale} if loss_scale is not None else {}
        self.checkpoint = tf.train.Checkpoint(
            model=model, optimizer=optimizer, epoch=self.epoch, step=self.step, epoch_sums=self.epoch_sums,
            n_processed=self.n_processed, n_images=self.n_images, train_time=self.train_time,
            test_loss_best=self.test_loss_best, **scale)
        # what a run started from another run's checkpoint takes over (--restore_path): not its counters
        self.weights = tf.train.Checkpoint(model=model, optimizer=optimizer, **scale)
        self.folder = os.path.join(logdir, CHECKPOINTS)
        self.iterators = dict(iterators)
        self.inputs = tf.train.Checkpoint(**iterators)

    # ---- counters -------------------------------------------------------------------
    def count(self, n_processed, n_images):
        """Add one train step's examples and images (of all processes) to the counters."""
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
        """Weights and optimiser state from a checkpoint (what it holds of them), and with `counters` also its
        epoch, position, image counts, train time and best test loss.

        Args:
          path: a checkpoint prefix, checkpoint folder or run folder (`resolve_checkpoint`).
          counters: take over the counters too (resuming), or only the weights (fine-tuning).

        Raises:
          InputError: naming the checkpoint when it is damaged or holds another architecture.
        """
        prefix = resolve_checkpoint(path)
        reader = self.checkpoint if counters else self.weights
        # resuming needs this very run's optimiser state; fine-tuning may change the optimiser
        check_matches(prefix, reader, ['model', 'optimizer'] if counters else ['model'],
                      "this run's model and optimiser")
        reader.read(prefix).expect_partial()
        self.broadcast()

    def resume(self):
        """Continue from the latest checkpoint in logdir/checkpoints.

        Returns:
          Its name ('ckpt-3', 'ckpt-3-step12'), or None when the folder holds no run yet.

        Raises:
          InputError: naming the file, when the folder holds a run but no checkpoint to continue it from.
        """
        prefix = latest(self.folder)
        if prefix is None:
            return check_resumable(self.logdir)  # None for a new folder; a run's missing pointer is refused
        self.restore(prefix)
        name = os.path.basename(prefix)
        path = self.input_state_path(name)
        if glob.glob(glob.escape(path) + '.*'):
            read_input_position(self.inputs, path)
        elif self.dist.is_chief:
            print(f'resume: no saved input position beside {name}; the data stream restarts', flush=True)
        return name

    def input_position(self, name):
        """The position of the input iterator `name`, in memory (its checkpoint tensors)."""
        return self.iterators[name]._serialize_to_tensors()

    def restore_input_position(self, name, position):
        """Put the input iterator `name` back to a position `input_position` gave."""
        self.iterators[name]._restore_from_tensors(position)

    # ---- writing ----------------------------------------------------------------------
    def input_state_path(self, name):
        """This process's input-position file beside the checkpoint `name` ('ckpt-3' -> input-rank{r}-3)."""
        return input_position_path(self.folder, self.dist.rank, name)

    def save(self):
        """Commit the current state as checkpoints/ckpt-{epoch}[-step{step}], every process's input position
        beside it (see the module docstring); every process calls it.

        Returns:
          The checkpoint's prefix.
        """
        name = f'ckpt-{int(self.epoch.numpy())}'
        if int(self.step.numpy()):
            name += f'-step{int(self.step.numpy())}'
        prefix = os.path.join(self.folder, name)
        if name in committed(self.folder) and os.path.exists(self.input_state_path(name) + '.index'):
            return prefix  # nothing happened since that save
        os.makedirs(self.folder, exist_ok=True)
        with writing(self.input_state_path(name)):
            self.inputs.write(self.input_state_path(name))
        write_manifest(self.input_state_path(name))
        self.dist.barrier('inputs_written')
        if self.dist.is_chief:
            commit(self.checkpoint, self.folder, name, keep=2)
        self.dist.barrier('checkpoint_committed')
        kept = {os.path.basename(self.input_state_path(n)) for n in committed(self.folder) + [name]}
        for path in glob.glob(glob.escape(self.input_state_path('ckpt-')) + '*'):
            if checkpoint_stem(os.path.basename(path)) not in kept:
                shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
        return prefix

    def save_best(self, epoch):
        """Commit the whole state as the run's best checkpoint, best/ckpt-{epoch}; returns its prefix."""
        return write_best(self.checkpoint, self.logdir, f'ckpt-{epoch}')

    def save_if_best(self, test_loss, epoch):
        """A new best validation loss at `epoch`: remember it and write the best checkpoint; returns whether it
        was."""
        if test_loss < self.test_loss_best.numpy():
            self.test_loss_best.assign(test_loss)
            self.save_best(epoch)
            return True
        return False



def input_position_path(folder, rank, name):
    """The input-position file of process `rank` beside the checkpoint `name` of a checkpoint folder.

    Args:
      folder: the checkpoint folder (a run's checkpoints/).
      rank: the process.
      name: the checkpoint's name ('ckpt-3', 'ckpt-3-step12').

    Returns:
      Its prefix ({folder}/input-rank{rank}-3, ...-3-step12).
    """
    return os.path.join(folder, f'input-rank{rank}-{name.split("-", 1)[-1]}')


def check_input_position(logdir, rank):
    """Refuse, before a resumed run writes anything, a damaged input position of process `rank` beside the
    run's latest checkpoint (none there: the stream restarts, see `CheckpointState.resume`).

    Args:
      logdir: the run folder.
      rank: the process.

    Raises:
      InputError: naming the file when it is incomplete, truncated or damaged.
    """
    folder = os.path.join(logdir, CHECKPOINTS)
    prefix = latest(folder)
    if prefix is not None:
        path = input_position_path(folder, rank, os.path.basename(prefix))
        if glob.glob(glob.escape(path) + '.*'):
            verify(path)


def read_input_position(inputs, path):
    """Put input iterators and a random generator back where an input-position file says, checked first.

    Args:
      inputs: a `tf.train.Checkpoint` of the iterators and the generator (what `CheckpointState.save` wrote).
      path: the input-position file's prefix (checkpoints/input-rank{r}-{name}).

    Raises:
      InputError: naming the file when it is incomplete, truncated or damaged (its manifest, or TensorFlow's
        checksums for files of earlier versions), or holds positions of other iterators (another batch size or
        data set).
    """
    verify(path)
    try:
        inputs.read(path).assert_existing_objects_matched()  # earlier versions saved no generator
    except (tf.errors.OpError, AssertionError, ValueError, IndexError) as error:
        message = str(error).splitlines()[0][:300] if str(error) else ''
        raise InputError(f'input position {path} does not fit this run\'s input streams '
                         f'({type(error).__name__}: {message})') from None
