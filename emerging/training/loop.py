"""The training loop: `Trainer` runs epochs of train steps, validates, samples and saves.

Per epoch e (from 1, or from the resumed epoch + 1, up to `epochs` - 1):

1. `train_its` train steps (from the saved step, when resumed within the
   epoch) at learning rate lr * min(1, n_processed / (n_train *
   epochs_warmup)); a non-finite statistic raises `TrainingDiverged` at
   once, before anything of the epoch is saved;
2. a train.txt line and TensorBoard scalars;
3. only if e < 10, or e < 50 and e % 10 == 0, or e % epochs_full_valid == 0:
   a. if e % epochs_full_valid == 0, the whole test set (with Polyak weights
      when use_polyak_for_eval), a test.txt line and, when the loss beats the
      best so far, the best checkpoint (" *" at the end of the status line);
   b. if e == 10 or e % epochs_full_sample == 0, the sample grids (the same
      weights as a.);
   c. the status line;
4. the checkpoint of the epoch (every process its input position and
   random generator, then the chief the checkpoint: `CheckpointState.save`).

Before every train and test step the loop polls `StopSignals`
(preemption.py): on SIGTERM / SIGINT it checkpoints the exact position (the
steps done; during a validation, the position before it) and raises
`Stopped`; with `save_every_minutes` it also checkpoints within an epoch.

`inference()`: every process encodes its shard of the test set to flat
latents and decodes them again; the shards are gathered in rank order and the
chief writes the whole test set's x.npy (uint8 images), z.npy (float32
[n_test, H * W * C]: every split's latents, then the top's) and recon.npy
(uint8).
"""
import os
import sys
import time

import numpy as np
import tensorflow as tf

from emerging.training.optim import DynamicLossScale, Optimizer
from emerging.training.preemption import Stopped, StopSignals
from emerging.training.recorder import Recorder, format_results
from emerging.training.state import CheckpointState
from emerging.training.steps import build_steps


class TrainingDiverged(RuntimeError):
    """A train step's statistics were not all finite; raised at once, before anything of the epoch is saved,
    so the last good checkpoint is kept.  The message names the epoch, the step and the learning rate."""


class Trainer:
    """Takes a model, a `TrainConfig`, this process's data, a `Distributed` and a log folder (no flags).

    It builds the optimiser (with its Polyak average), a `DynamicLossScale` for float16 networks, the
    checkpoint state, the `Recorder` and the compiled steps; `train()` then runs the schedule of the module
    docstring, `inference()` encodes and decodes the test set.

    Args:
      model: the `ImageFlowModel` to train.
      config: its `TrainConfig` (optimiser, learning rate, schedule, iterations per epoch).
      data: this process's `emerging.data.images.Data`: `train` and `test` datasets of batches (uint8 images
        [B, H, W, C], int32 labels [B]), iterated without end, and `init_batch` (numpy) for the data-dependent
        initialisation.
      dist: the `Distributed` of this process.
      logdir: the run folder for checkpoints, logs and samples.
      hparams: every hyperparameter, the first line of the logs (see `Recorder`).
      verbose: a line per train step (or every n-th, see `Recorder`).
      progress: tqdm progress bars on the chief's stderr.
    """

    def __init__(self, model, config, data, dist, logdir, hparams=None, verbose=False, progress=True):
        self.model, self.config, self.data, self.dist = model, config, data, dist
        self.logdir, self.progress = logdir, progress
        self.optimizer = Optimizer(model.trainable_variables, config.optimizer, config.beta1, config.beta2,
                                   config.weight_decay, config.polyak_decay)
        # float16 networks need loss scaling (bfloat16 has float32's exponent range)
        self.loss_scale = DynamicLossScale() if model.compute_dtype == 'float16' else None
        self.train_iter, self.test_iter = iter(data.train), iter(data.test)
        # every random draw of the steps, per process; its position is saved beside the input position
        self.rng = tf.random.Generator.from_seed(model.config.seed)
        self.state = CheckpointState(model, self.optimizer, logdir, dist,
                                     {'train': self.train_iter, 'test': self.test_iter, 'rng': self.rng},
                                     self.loss_scale)
        self.recorder = Recorder(logdir, hparams, chief=dist.is_chief, verbose=verbose)
        self.train_step, self.test_step, self.sample_fn = build_steps(model, self.optimizer, dist, config,
                                                                      self.loss_scale, self.rng)

    @property
    def epoch(self):
        """The last completed epoch (a tf.Variable, saved with the checkpoint)."""
        return self.state.epoch

    def initialize(self):
        """Data-dependent init on this process's init batch, then rank 0's values everywhere."""
        if not bool(self.model.initialized.numpy()):
            x, y = self.data.init_batch
            self.model.initialize(tf.constant(x), tf.constant(y))
        self.state.broadcast()

    def restore(self, path, counters=True):
        """Weights (and optimiser state when present) from a checkpoint prefix, on every process;
        `counters=False` starts the epochs, counts and best loss afresh (fine-tuning)."""
        self.state.restore(path, counters)

    def learning_rate(self):
        warmup = self.config.n_train * self.config.epochs_warmup
        fraction = 1. if warmup <= 0 else min(1., float(self.state.n_processed.numpy()) / warmup)
        return self.config.lr * fraction

    def _iterations(self, start, stop, desc):
        if self.progress and self.dist.is_chief:
            from tqdm import tqdm
            return tqdm(range(start, stop), desc=desc, initial=start, total=stop, leave=False, file=sys.stderr,
                        dynamic_ncols=True)
        return range(start, stop)

    def evaluate(self, stops=None):
        """The four statistics over the full test set (process-averaged).

        Args:
          stops: the run's `StopSignals`, polled before every test step; None: never stop.

        Returns:
          The statistics; None when a stop was requested (the test stream and the random generator are then
          back where they were).
        """
        before = (self.state.input_position('test'), self.rng.state.numpy()) if stops is not None else None
        results = []
        for _ in self._iterations(0, self.config.full_test_its, 'test'):
            if stops is not None and stops.poll()[0] is not None:
                self.state.restore_input_position('test', before[0])
                self.rng.reset(before[1])
                return None
            results.append(self.test_step(*next(self.test_iter)).numpy())
        return np.mean(results, axis=0)

    def train_epoch(self, epoch, stops):
        """The train steps of `epoch` from the saved position on; returns the mean statistics of all its steps.

        Before every step the stop and time-based save requests are polled (see preemption.py): a save writes
        the position, a stop writes it and raises `Stopped`."""
        config, state, size = self.config, self.state, self.dist.size
        start = time.time()
        for it in self._iterations(int(state.step.numpy()), config.train_its, f'epoch {epoch}'):
            signum, save = stops.poll()
            if signum is not None or save:
                state.train_time.assign_add(time.time() - start)
                start = time.time()
                prefix = state.save()
                stops.saved()
                if signum is not None:
                    raise Stopped(signum, prefix, f'epoch {epoch}, after step {it} of {config.train_its}')
            lr = self.learning_rate()
            x, y = next(self.train_iter)
            stats = self.train_step(x, y, tf.constant(lr, tf.float32)).numpy()
            if not np.all(np.isfinite(stats)):
                raise TrainingDiverged(
                    f'loss is not finite ({format_results(stats)}) at epoch {epoch}, step {it + 1} '
                    f'(lr {lr:.3g}); stopping without saving: the last good checkpoint is kept')
            state.epoch_sums.assign_add(stats.astype(np.float64))
            state.step.assign_add(1)
            state.count(size * config.n_batch_train, size * config.local_batch_train)
            self.recorder.step(epoch, it, stats, lr)
        state.train_time.assign_add(time.time() - start)
        return state.epoch_sums.numpy() / config.train_its

    def train(self, resume=False):
        """Run the epochs after the last completed one (from the first, or from the latest checkpoint with
        `resume`) up to `epochs` - 1 (see the module docstring).

        Raises:
          Stopped: after SIGTERM / SIGINT, once the position is checkpointed.
          TrainingDiverged: on a non-finite statistic, with nothing of the epoch saved.
        """
        config, state, recorder = self.config, self.state, self.recorder
        with StopSignals(self.dist, config.save_every_minutes * 60.) as stops:
            resumed = state.resume() if resume else None
            if resumed is None:
                self.initialize()
            recorder.open_logs(int(state.epoch.numpy()) if resumed is not None else None)
            tcurr = time.time()
            for epoch in range(int(state.epoch.numpy()) + 1, config.epochs):
                start = time.time()
                steps = config.train_its - int(state.step.numpy())
                train_results = self.train_epoch(epoch, stops)
                dtrain = time.time() - start
                ips = steps * self.dist.size * config.local_batch_train / max(dtrain, 1e-9)
                recorder.train_epoch(epoch, **state.counters(), train_time=int(state.train_time.numpy()),
                                     results=train_results, lr=self.learning_rate(), ips=ips)
                test_results, msg, dtest, dsample = [], '', 0., 0.
                if epoch < 10 or (epoch < 50 and epoch % 10 == 0) or epoch % config.epochs_full_valid == 0:
                    start = time.time()
                    if epoch % config.epochs_full_valid == 0:
                        test_results = self.validate(epoch, stops)
                        if self.dist.is_chief and state.save_if_best(test_results[0], epoch):
                            msg += ' *'
                    dtest = time.time() - start
                    start = time.time()
                    if epoch == 10 or epoch % config.epochs_full_sample == 0:
                        self.sample_grids(epoch)
                    dsample = time.time() - start
                    dcurr, tcurr = time.time() - tcurr, time.time()
                    recorder.status(epoch, **state.counters(), ips=ips, dtrain=dtrain, dtest=dtest,
                                    dsample=dsample, dtot=dcurr, train_results=train_results,
                                    test_results=test_results, msg=msg)
                state.epoch.assign(epoch)
                state.step.assign(0)
                state.epoch_sums.assign(tf.zeros([4], tf.float64))
                prefix = state.save()
                stops.saved()
                signum = stops.poll()[0]
                if signum is not None:
                    raise Stopped(signum, prefix, f'the end of epoch {epoch}')
        recorder.flush()

    def validate(self, epoch, stops):
        """The full validation of `epoch` (Polyak weights with use_polyak_for_eval) and its test.txt line.

        A stop requested during it saves the position before it (the epoch's steps done, the test stream
        where it was) and raises `Stopped`: a resumed run validates the epoch again from the start."""
        with self.state.polyak_weights(self.config.use_polyak_for_eval):
            test_results = self.evaluate(stops)
        if test_results is None:
            prefix = self.state.save()
            raise Stopped(stops.stop_signal, prefix, f'the validation of epoch {epoch} (its train steps are done)')
        self.recorder.test_epoch(epoch, **self.state.counters(), results=test_results)
        return test_results

    def sample_grids(self, epoch):
        """The chief's sample PNGs for `epoch` (Polyak weights with use_polyak_for_eval); returns their paths."""
        if not self.recorder.chief:
            return []
        with self.state.polyak_weights(self.config.use_polyak_for_eval):
            return self.recorder.sample_grids(epoch, self.sample_fn, self.model.config.image_shape[0],
                                              self.model.n_classes)

    def inference(self):
        """Encode the test set to flat latents and decode them; returns (x, z, recon) of all processes."""
        encode = tf.function(lambda x, y: self.model.flatten_latents(self.model.encode(x, y)), autograph=False)
        decode = tf.function(lambda z, y: self.model.decode(self.model.unflatten_latents(z), y), autograph=False)
        xs, zs, recons = [], [], []
        for _ in self._iterations(0, self.config.full_test_its, 'inference'):
            x, y = next(self.test_iter)
            z = encode(x, y)
            xs.append(x.numpy())
            zs.append(z.numpy())
            recons.append(decode(z, y).numpy())
        arrays = {name: np.asarray(self.dist.allgather(np.concatenate(parts), name=f'inference_{name}'))
                  for name, parts in (('x', xs), ('z', zs), ('recon', recons))}
        if self.dist.is_chief:
            for name, array in arrays.items():
                np.save(os.path.join(self.logdir, f'{name}.npy'), array)
        return arrays['x'], arrays['z'], arrays['recon']
