"""The training loop: `Trainer` runs epochs of train steps, validates, samples and saves.

Per epoch e (from 1, or from the resumed epoch + 1, up to `epochs` - 1):

1. `train_its` train steps at learning rate lr * min(1, n_processed /
   (n_train * epochs_warmup)); a non-finite statistic raises
   `TrainingDiverged` at once, before anything of the epoch is saved;
2. a train.txt line and TensorBoard scalars;
3. only if e < 10, or e < 50 and e % 10 == 0, or e % epochs_full_valid == 0:
   a. if e % epochs_full_valid == 0, the whole test set (with Polyak weights
      when use_polyak_for_eval), a test.txt line and, when the loss beats the
      best so far, model_best_loss.ckpt (" *" at the end of the status line);
   b. if e == 10 or e % epochs_full_sample == 0, the sample grids (the same
      weights as a.);
   c. the status line;
4. every process saves its input position, then the chief the checkpoint.

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
        self.state = CheckpointState(model, self.optimizer, logdir, dist,
                                     {'train': self.train_iter, 'test': self.test_iter}, self.loss_scale)
        self.recorder = Recorder(logdir, hparams, chief=dist.is_chief, verbose=verbose)
        self.train_step, self.test_step, self.sample_fn = build_steps(model, self.optimizer, dist, config,
                                                                      self.loss_scale)

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

    def _iterations(self, n, desc):
        if self.progress and self.dist.is_chief:
            from tqdm import tqdm
            return tqdm(range(n), desc=desc, leave=False, file=sys.stderr, dynamic_ncols=True)
        return range(n)

    def evaluate(self):
        """The four statistics over the full test set (process-averaged)."""
        results = [self.test_step(*next(self.test_iter)).numpy() for _ in
                   self._iterations(self.config.full_test_its, 'test')]
        return np.mean(results, axis=0)

    def train_epoch(self, epoch):
        config, size = self.config, self.dist.size
        results = []
        for it in self._iterations(config.train_its, f'epoch {epoch}'):
            lr = self.learning_rate()
            x, y = next(self.train_iter)
            stats = self.train_step(x, y, tf.constant(lr, tf.float32)).numpy()
            if not np.all(np.isfinite(stats)):
                raise TrainingDiverged(
                    f'loss is not finite ({format_results(stats)}) at epoch {epoch}, step {it + 1} '
                    f'(lr {lr:.3g}); stopping without saving: the last good checkpoint is kept')
            results.append(stats)
            self.state.count(size * config.n_batch_train, size * config.local_batch_train)
            self.recorder.step(epoch, it, stats, lr)
        return np.mean(results, axis=0)

    def train(self, resume=False):
        config, state, recorder, chief = self.config, self.state, self.recorder, self.dist.is_chief
        start_epoch = state.resume() if resume else None
        if start_epoch is None:
            start_epoch = 0
            self.initialize()
        recorder.open_logs(start_epoch if resume else None)
        tcurr = time.time()
        for epoch in range(start_epoch + 1, config.epochs):
            start = time.time()
            train_results = self.train_epoch(epoch)
            dtrain = time.time() - start
            ips = config.train_its * self.dist.size * config.local_batch_train / dtrain
            state.train_time.assign_add(dtrain)
            state.epoch.assign(epoch)
            recorder.train_epoch(epoch, **state.counters(), train_time=int(state.train_time.numpy()),
                                 results=train_results, lr=self.learning_rate(), ips=ips)
            test_results, msg, dtest, dsample = [], '', 0., 0.
            if epoch < 10 or (epoch < 50 and epoch % 10 == 0) or epoch % config.epochs_full_valid == 0:
                start = time.time()
                if epoch % config.epochs_full_valid == 0:
                    with state.polyak_weights(config.use_polyak_for_eval):
                        test_results = self.evaluate()
                    recorder.test_epoch(epoch, **state.counters(), results=test_results)
                    if chief and state.save_if_best(test_results[0]):
                        msg += ' *'
                dtest = time.time() - start
                start = time.time()
                if epoch == 10 or epoch % config.epochs_full_sample == 0:
                    self.sample_grids(epoch)
                dsample = time.time() - start
                dcurr, tcurr = time.time() - tcurr, time.time()
                recorder.status(epoch, **state.counters(), ips=ips, dtrain=dtrain, dtest=dtest, dsample=dsample,
                                dtot=dcurr, train_results=train_results, test_results=test_results, msg=msg)
            # the input position first: a checkpoint is only ever paired with its own position
            state.save_epoch(epoch)
        recorder.flush()

    def sample_grids(self, epoch):
        """The chief's sample PNGs for `epoch` (Polyak weights with use_polyak_for_eval); returns their paths."""
        if not self.recorder.chief:
            return []
        with self.state.polyak_weights(self.config.use_polyak_for_eval):
            return self.recorder.sample_grids(epoch, self.sample_fn, self.model.config.image_shape[0],
                                              self.model.n_classes)

    def inference(self):
        """Encode the test set to flat latents and decode them; returns (x, z, recon) of all processes."""
        encode = tf.function(lambda x, y: self.model.flatten_latents(self.model.encode(x, y)))
        decode = tf.function(lambda z, y: self.model.decode(self.model.unflatten_latents(z), y))
        xs, zs, recons = [], [], []
        for _ in self._iterations(self.config.full_test_its, 'inference'):
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
