"""Training, evaluation, sampling, checkpoints and logs (SPEC sections 4 and 5).

`Trainer` knows nothing of flags: it takes a model, a `TrainConfig`, the
per-process data, a `Distributed` and a log folder.  Only the chief (rank 0)
writes files.  Outputs in `logdir`:

* train.txt / test.txt: JSON lines, first the hyperparameters, then the
  original's keys (values of the four statistics as strings with 4 decimals);
* checkpoints/ (every epoch; `resume` continues from the latest) and
  model_best_loss.ckpt (after each full validation that improves);
* epoch_{e}_sample_{k}.png sample grids at the eight temperatures;
* tensorboard/ summaries: losses, learning rate, images/s, sample grids.
"""
import glob
import json
import math
import os
import sys
import time

import numpy as np
import tensorflow as tf
from PIL import Image

from emerging.optim import DynamicLossScale, Optimizer

STATS = ('loss', 'bits_x', 'bits_y', 'pred_loss')
TEMPERATURES = (0., .25, .5, .6, .7, .8, .9, 1.)
BEST_CHECKPOINT = 'model_best_loss.ckpt'


class TrainingDiverged(RuntimeError):
    pass


class ResultLogger:
    """JSON-lines log; on resume, lines past the restored epoch are dropped first (atomically)."""

    def __init__(self, path, hparams, resume_epoch=None):
        self.path = path
        if resume_epoch is not None and os.path.exists(path):
            with open(path) as f:
                lines = f.read().splitlines()
            kept = lines[:1] + [line for line in lines[1:] if line.strip() and
                                json.loads(line).get('epoch', 0) <= resume_epoch]
            tmp = path + '.tmp'
            with open(tmp, 'w') as f:
                f.write(''.join(line + '\n' for line in kept))
            os.replace(tmp, path)
        else:
            with open(path, 'w') as f:
                f.write(json.dumps(hparams) + '\n')

    def log(self, **kwargs):
        with open(self.path, 'a') as f:
            f.write(json.dumps(kwargs) + '\n')
            f.flush()
            os.fsync(f.fileno())


def write_checkpoint_atomically(checkpoint, prefix):
    """checkpoint.write(prefix) via temporary files, so a crash never leaves half of one."""
    written = checkpoint.write(prefix + '.tmp')
    for suffix in ('.data-00000-of-00001', '.index'):
        os.replace(written + suffix, prefix + suffix)
    return prefix


def format_results(results):
    return {name: f'{value:.4f}' for name, value in zip(STATS, results)}


def image_grid(images, columns):
    n, height, width, channels = images.shape
    rows = int(math.ceil(n / columns))
    grid = np.zeros([rows * height, columns * width, channels], np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        grid[r * height:(r + 1) * height, c * width:(c + 1) * width] = image
    return grid


def save_png(array, path):
    array = array[..., 0] if array.shape[-1] == 1 else array
    tmp = path + '.tmp.png'
    Image.fromarray(array).save(tmp)
    os.replace(tmp, path)


class Trainer:
    def __init__(self, model, config, data, dist, logdir, hparams=None, verbose=False, progress=True):
        self.model, self.config, self.data, self.dist = model, config, data, dist
        self.logdir, self.hparams = logdir, dict(hparams or {})
        self.verbose, self.progress = verbose, progress
        self.optimizer = Optimizer(model.trainable_variables, config.optimizer, config.beta1, config.beta2,
                                   config.weight_decay)
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name='epoch')
        self.n_processed = tf.Variable(0, dtype=tf.int64, trainable=False, name='n_processed')
        self.n_images = tf.Variable(0, dtype=tf.int64, trainable=False, name='n_images')
        self.train_time = tf.Variable(0., dtype=tf.float64, trainable=False, name='train_time')
        # float16 networks need loss scaling (bfloat16 has float32's exponent range)
        self.loss_scale = DynamicLossScale() if model.config.compute_dtype == 'float16' else None
        self.test_loss_best = tf.Variable(np.inf, dtype=tf.float64, trainable=False, name='test_loss_best')
        self.checkpoint = tf.train.Checkpoint(
            model=model, optimizer=self.optimizer, epoch=self.epoch, n_processed=self.n_processed,
            n_images=self.n_images, train_time=self.train_time, test_loss_best=self.test_loss_best,
            **({'loss_scale': self.loss_scale} if self.loss_scale is not None else {}))
        self.manager = tf.train.CheckpointManager(self.checkpoint, os.path.join(logdir, 'checkpoints'),
                                                  max_to_keep=2)
        self.train_iter, self.test_iter = iter(data.train), iter(data.test)
        # every process saves its own input position beside the (chief's) checkpoint
        self.input_state = tf.train.Checkpoint(train=self.train_iter, test=self.test_iter)
        self.writer = tf.summary.create_file_writer(os.path.join(logdir, 'tensorboard')) if dist.is_chief else None
        self._build_functions()

    # ---- compiled steps -----------------------------------------------------------
    def _build_functions(self):
        model, dist, optimizer, loss_scale = self.model, self.dist, self.optimizer, self.loss_scale
        variables = model.trainable_variables
        adam2 = self.config.optimizer == 'adam2'
        shape = model.config.image_shape
        images = tf.TensorSpec([None, *shape], tf.uint8)
        labels = tf.TensorSpec([None], tf.int32)

        def gradients(x, y, scale):
            with tf.GradientTape() as tape:
                losses = model.losses_per_example(x, y)
                loss = tf.reduce_mean(losses['loss'])
                if scale is not None:
                    loss = loss * scale
            grads = tape.gradient(loss, variables)
            grads = [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g) for v, g in zip(variables, grads)]
            if scale is not None:
                grads = [g / scale for g in grads]
            return tf.stack([tf.reduce_mean(losses[k]) for k in STATS]), grads

        # Horovod's allreduce is not XLA-compiled: only the loss and gradients are jitted.
        gradients = tf.function(gradients, jit_compile=self.config.jit_compile)

        @tf.function(input_signature=[images, labels, tf.TensorSpec([], tf.float32)])
        def train_step(x, y, lr):
            stats, grads = gradients(x, y, None if loss_scale is None else loss_scale.scale.read_value())
            squared = dist.allreduce_mean([tf.square(g) for g in grads], name='grad_sq') if adam2 else None
            grads = dist.allreduce_mean(grads, name='grad')
            if loss_scale is None:
                optimizer.apply(grads, lr, squared)
            else:
                # every process sees the same averaged gradients, so all skip or all apply
                finite = loss_scale.all_finite(grads)
                tf.cond(finite, lambda: optimizer.apply(grads, lr, squared), lambda: None)
                loss_scale.update(finite)
            return dist.allreduce_mean([stats], name='train_stats')[0]

        @tf.function(input_signature=[images, labels])
        def test_step(x, y):
            losses = model.losses_per_example(x, y)
            stats = tf.stack([tf.reduce_mean(losses[k]) for k in STATS])
            return dist.allreduce_mean([stats], name='test_stats')[0]

        @tf.function(input_signature=[labels, tf.TensorSpec([None], tf.float32)])
        def sample(y, temperature):
            return model.sample(y, temperature)

        self.train_step, self.test_step, self.sample_fn = train_step, test_step, sample

    # ---- state ----------------------------------------------------------------------
    def _broadcast(self):
        self.dist.broadcast_variables(self.model.variables + list(self.optimizer.variables), root_rank=0)

    def initialize(self):
        """Data-dependent init on this process's init batch, then rank 0's values everywhere."""
        if not bool(self.model.initialized.numpy()):
            x, y = self.data.init_batch
            self.model.initialize(tf.constant(x), tf.constant(y))
        self._broadcast()

    def restore(self, path):
        """Restore weights (and optimiser state when present) from a checkpoint prefix."""
        try:
            tf.train.load_checkpoint(path)
        except Exception as error:
            raise ValueError(f'cannot read checkpoint {path!r}: {type(error).__name__}: '
                             f'{str(error).splitlines()[0]}') from None
        self.checkpoint.read(path).expect_partial()
        self._broadcast()

    def _input_state_path(self, epoch):
        return os.path.join(self.logdir, 'checkpoints', f'input-rank{self.dist.rank}-{epoch}')

    def save_input_state(self, epoch):
        """This process's data position after `epoch`; keeps the last two, as the checkpoints."""
        os.makedirs(os.path.dirname(self._input_state_path(epoch)), exist_ok=True)
        self.input_state.write(self._input_state_path(epoch))
        for old in glob.glob(self._input_state_path('*') + '.index'):
            old_epoch = old[:-len('.index')].rsplit('-', 1)[-1]
            if old_epoch.isdigit() and int(old_epoch) <= epoch - 2:
                for path in glob.glob(old[:-len('.index')] + '.*'):
                    os.remove(path)

    def resume(self):
        """Continue from the latest checkpoint in logdir/checkpoints; returns its epoch (None if none)."""
        latest = self.manager.latest_checkpoint
        if latest is None:
            return None
        self.restore(latest)
        epoch = int(self.epoch.numpy())
        path = self._input_state_path(epoch)
        if os.path.exists(path + '.index'):
            self.input_state.read(path).assert_consumed()
        elif self.dist.is_chief:
            print(f'resume: no saved input position for epoch {epoch}; the data stream restarts', flush=True)
        return epoch

    def save_best(self):
        """Write model_best_loss.ckpt (atomically)."""
        return write_checkpoint_atomically(self.checkpoint, os.path.join(self.logdir, BEST_CHECKPOINT))

    # ---- loop -------------------------------------------------------------------------
    def learning_rate(self):
        warmup = self.config.n_train * self.config.epochs_warmup
        fraction = 1. if warmup <= 0 else min(1., float(self.n_processed.numpy()) / warmup)
        return self.config.lr * fraction

    def _iterations(self, n, desc):
        if self.progress and self.dist.is_chief:
            from tqdm import tqdm
            return tqdm(range(n), desc=desc, leave=False, file=sys.stderr, dynamic_ncols=True)
        return range(n)

    def evaluate(self):
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
            self.n_processed.assign_add(size * config.n_batch_train)
            self.n_images.assign_add(size * config.local_batch_train)
            if self.verbose and self.dist.is_chief:
                print(epoch, it, format_results(stats), f'lr {lr:.3g}', flush=True)
        return np.mean(results, axis=0)

    def train(self, resume=False):
        config, chief = self.config, self.dist.is_chief
        start_epoch = self.resume() if resume else None
        if start_epoch is None:
            start_epoch = 0
            self.initialize()
        if chief:
            self.train_logger = ResultLogger(os.path.join(self.logdir, 'train.txt'), self.hparams,
                                             start_epoch if resume else None)
            self.test_logger = ResultLogger(os.path.join(self.logdir, 'test.txt'), self.hparams,
                                            start_epoch if resume else None)
        tcurr = time.time()
        for epoch in range(start_epoch + 1, config.epochs):
            start = time.time()
            train_results = self.train_epoch(epoch)
            dtrain = time.time() - start
            ips = config.train_its * self.dist.size * config.local_batch_train / dtrain
            self.train_time.assign_add(dtrain)
            self.epoch.assign(epoch)
            if chief:
                self.train_logger.log(epoch=epoch, n_processed=int(self.n_processed.numpy()),
                                      n_images=int(self.n_images.numpy()), train_time=int(self.train_time.numpy()),
                                      **format_results(train_results))
                self._summaries('train', epoch, train_results, lr=self.learning_rate(), ips=ips)
            test_results, msg, dtest, dsample = [], '', 0., 0.
            if epoch < 10 or (epoch < 50 and epoch % 10 == 0) or epoch % config.epochs_full_valid == 0:
                start = time.time()
                if epoch % config.epochs_full_valid == 0:
                    with self._polyak_weights():
                        test_results = self.evaluate()
                    if chief:
                        self.test_logger.log(epoch=epoch, n_processed=int(self.n_processed.numpy()),
                                             n_images=int(self.n_images.numpy()), **format_results(test_results))
                        self._summaries('test', epoch, test_results)
                        if test_results[0] < self.test_loss_best.numpy():
                            self.test_loss_best.assign(test_results[0])
                            self.save_best()
                            msg += ' *'
                dtest = time.time() - start
                start = time.time()
                if chief and (epoch == 10 or epoch % config.epochs_full_sample == 0):
                    self.sample_grids(epoch)
                dsample = time.time() - start
                if chief:
                    dcurr, tcurr = time.time() - tcurr, time.time()
                    print(epoch, int(self.n_processed.numpy()), int(self.n_images.numpy()),
                          f'{ips:.1f} {dtrain:.1f} {dtest:.1f} {dsample:.1f} {dcurr:.1f}',
                          train_results, test_results, msg, flush=True)
            # the input position first: a checkpoint is only ever paired with its own position
            self.save_input_state(epoch)
            if chief:
                self.manager.save(checkpoint_number=epoch)
        if self.writer is not None:
            self.writer.flush()

    # ---- outputs ----------------------------------------------------------------------
    def _polyak_weights(self):
        trainer = self

        class _Swap:
            def __enter__(self):
                if trainer.config.use_polyak_for_eval:
                    trainer.optimizer.swap_polyak()

            def __exit__(self, *exc):
                if trainer.config.use_polyak_for_eval:
                    trainer.optimizer.swap_polyak()

        return _Swap()

    def _summaries(self, prefix, epoch, results, **extra):
        if self.writer is None:
            return
        with self.writer.as_default(step=epoch):
            for name, value in zip(STATS, results):
                tf.summary.scalar(f'{prefix}/{name}', float(value))
            for name, value in extra.items():
                tf.summary.scalar(f'{prefix}/{name}', float(value))

    def sample_grids(self, epoch):
        """One PNG per temperature: 10x10 (4x4 above 64 px) samples, labels y = i mod n_y."""
        image_size = self.model.config.image_shape[0]
        side = 10 if image_size <= 64 else 4
        y = tf.constant(np.arange(side * side) % self.model.config.n_y, tf.int32)
        paths = []
        with self._polyak_weights():
            for k, temperature in enumerate(TEMPERATURES):
                images = self.sample_fn(y, tf.fill([side * side], float(temperature))).numpy()
                grid = image_grid(images, side)
                path = os.path.join(self.logdir, f'epoch_{epoch}_sample_{k}.png')
                save_png(grid, path)
                paths.append(path)
                if self.writer is not None:
                    with self.writer.as_default(step=epoch):
                        tf.summary.image(f'samples/temperature_{temperature}', grid[None], step=epoch)
        return paths

    def inference(self):
        """Encode the whole test set to flat eps, decode back; x.npy, z.npy, recon.npy in logdir."""
        encode = tf.function(lambda x, y: self.model.flatten_latents(self.model.encode(x, y)))
        decode = tf.function(lambda z, y: self.model.decode(self.model.unflatten_latents(z), y))
        xs, zs, recons = [], [], []
        for _ in self._iterations(self.config.full_test_its, 'inference'):
            x, y = next(self.test_iter)
            z = encode(x, y)
            xs.append(x.numpy())
            zs.append(z.numpy())
            recons.append(decode(z, y).numpy())
        if self.dist.is_chief:
            for name, arrays in (('x', xs), ('z', zs), ('recon', recons)):
                np.save(os.path.join(self.logdir, f'{name}.npy'), np.concatenate(arrays))
        return np.concatenate(xs), np.concatenate(zs), np.concatenate(recons)
