"""What a run leaves behind for people to read: logs, status lines, TensorBoard, sample PNGs.

Only the chief process (rank 0) records anything; a `Recorder` built with
`chief=False` accepts every call and writes nothing.  Files in `logdir`:

* train.txt and test.txt, JSON lines.  The first line holds all
  hyperparameters.  Every later line of train.txt is
  {"epoch", "n_processed", "n_images", "train_time", "loss", "bits_x",
  "bits_y", "pred_loss"} (in that order); test.txt lines have the same keys
  without "train_time".  The four statistics are strings with 4 decimals
  ("7.1234"), the counters are integers (train_time in whole seconds), as
  in the original code.  Lines are
  appended and fsynced one at a time.  When a run resumes from epoch e, the
  lines of epochs after e are dropped first (the file is rewritten through a
  temporary file), so a log never holds an epoch twice; a log that is not a
  file or whose first line is not the hyperparameters' JSON object is
  refused then (InputError naming it) rather than started again; a missing
  one too, unless the run resumes within its first epoch (nothing logged yet:
  an imported run).
* epoch_{e}_sample_{k}.png: one grid of samples for each of the eight
  temperatures 0, .25, .5, .6, .7, .8, .9, 1 (k = 0..7); sample i has label
  (i mod columns) mod n_y, one class per column, as the original; 10x10
  samples, 4x4 above 64 px, one pixel of grey between them (`image_grid`).
* tensorboard/: scalars train/<stat>, train/lr, train/ips, test/<stat> per
  epoch and the sample grids as images.

On stdout, after each epoch of the validation schedule (see loop.py), the status line
`epoch n_processed n_images ips dtrain dtest dsample dtot [train results] [test results] msg`
(ips: images per second of the epoch's training; the d* are seconds spent
training, validating, sampling and in all since the last status line, each
with one decimal; the results are the four statistics with 4 decimals in
brackets, test `[]` when not validated; msg is " *" when the best checkpoint
was written), after a header line naming these columns, printed once with the
first status line.
"""
import json
import math
import os

import numpy as np
import tensorflow as tf
from PIL import Image

from emerging.choices import TEMPERATURES
from emerging.runs.checkpoints import writing
from emerging.runs.folder import read_hparams_line
from emerging.training.steps import STATS


def format_results(results):
    """The four statistics as the original logged them: strings with 4 decimals."""
    return {name: f'{value:.4f}' for name, value in zip(STATS, results)}


def bracketed(results):
    """The statistics for the status line: '[7.1234 7.1234 0.0000 1.0000]', '[]' for none."""
    return '[' + ' '.join(f'{float(value):.4f}' for value in results) + ']'


class ResultLogger:
    """One JSON-lines log; on resume, lines past the restored epoch (and a line cut off by a kill) are dropped
    first (atomically)."""

    def __init__(self, path, hparams, resume_epoch=None):
        self.path = path
        if resume_epoch is not None and (resume_epoch > 0 or os.path.exists(path)):
            read_hparams_line(path)  # a log that is gone or garbled is refused, not started again
            with open(path, errors='replace') as f:
                lines = f.read().splitlines()
            kept = lines[:1] + [line for line in lines[1:] if _epoch_of(line) <= resume_epoch]
            self._rewrite(''.join(line + '\n' for line in kept))
        else:
            self._rewrite(json.dumps(hparams) + '\n')

    def _rewrite(self, text):
        tmp = self.path + '.tmp'
        with writing(self.path):
            with open(tmp, 'w') as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)

    def log(self, **kwargs):
        """Append one line (a JSON object of `kwargs`), flushed to disk."""
        with writing(self.path), open(self.path, 'a') as f:
            f.write(json.dumps(kwargs) + '\n')
            f.flush()
            os.fsync(f.fileno())


def _epoch_of(line):
    """The epoch of a log line; infinite for a line that is not a whole JSON object with an integer epoch (cut
    off by a kill, or garbled)."""
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):
        return math.inf
    epoch = record.get('epoch') if isinstance(record, dict) else None
    return epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else math.inf


# Mid grey: it stands out against black backgrounds (digits) and white ones alike, where black or white
# separators would merge with the cells' own edges.
SEPARATOR = 128


def image_grid(images, columns):
    """[n, h, w, c] uint8 -> one [rows * (h + 1) - 1, columns * (w + 1) - 1, c] image: the images row by row,
    one pixel of `SEPARATOR` between neighbouring cells (no border), black cells past n."""
    n, height, width, channels = images.shape
    rows = int(math.ceil(n / columns))
    grid = np.full([rows * (height + 1) - 1, columns * (width + 1) - 1, channels], SEPARATOR, np.uint8)
    for i in range(rows * columns):
        top, left = (i // columns) * (height + 1), (i % columns) * (width + 1)
        grid[top:top + height, left:left + width] = images[i] if i < n else 0
    return grid


def save_png(array, path):
    """Write a uint8 image (one channel saved as grey) through a temporary file."""
    array = array[..., 0] if array.shape[-1] == 1 else array
    tmp = path + '.tmp.png'
    with writing(path):
        Image.fromarray(array).save(tmp)
        os.replace(tmp, path)


class Recorder:
    """Writes a run's logs, status lines, TensorBoard scalars and sample grids (see the module docstring).

    Args:
      logdir: the run folder the files are written to (it must exist on the chief).
      hparams: every hyperparameter, the first line of train.txt and test.txt (None: {}).
      chief: whether this process records; a non-chief `Recorder` writes nothing.
      verbose: True (or 1) prints a line for every train step, an int n for every n-th one from the first;
        False or 0: none.
    """

    def __init__(self, logdir, hparams=None, chief=True, verbose=False):
        self.logdir, self.hparams, self.chief, self.verbose = logdir, dict(hparams or {}), chief, verbose
        self.writer = tf.summary.create_file_writer(os.path.join(logdir, 'tensorboard')) if chief else None
        self.train_log = self.test_log = None
        self.status_header_printed = False

    def open_logs(self, resume_epoch=None):
        """Start train.txt / test.txt, or (resume_epoch given) keep them up to that epoch."""
        if self.chief:
            self.train_log = ResultLogger(os.path.join(self.logdir, 'train.txt'), self.hparams, resume_epoch)
            self.test_log = ResultLogger(os.path.join(self.logdir, 'test.txt'), self.hparams, resume_epoch)

    def step(self, epoch, it, stats, lr):
        """With verbose, one line per train step (verbose an int n: every n-th step, from the first)."""
        if self.verbose and self.chief and it % int(self.verbose) == 0:
            print(epoch, it, format_results(stats), f'lr {lr:.3g}', flush=True)

    def train_epoch(self, epoch, n_processed, n_images, train_time, results, lr, ips):
        if self.chief:
            self.train_log.log(epoch=epoch, n_processed=n_processed, n_images=n_images, train_time=train_time,
                               **format_results(results))
            self.scalars('train', epoch, results, lr=lr, ips=ips)

    def test_epoch(self, epoch, n_processed, n_images, results):
        if self.chief:
            self.test_log.log(epoch=epoch, n_processed=n_processed, n_images=n_images, **format_results(results))
            self.scalars('test', epoch, results)

    def status(self, epoch, n_processed, n_images, ips, dtrain, dtest, dsample, dtot, train_results,
               test_results, msg):
        """One status line (see the module docstring), the first one after the header."""
        if not self.chief:
            return
        if not self.status_header_printed:
            statistics = ' '.join(STATS)
            print(f'epoch n_processed n_images ips dtrain dtest dsample dtot [train {statistics}] '
                  f'[test {statistics}] (* best checkpoint written)', flush=True)
            self.status_header_printed = True
        print(epoch, n_processed, n_images, f'{ips:.1f} {dtrain:.1f} {dtest:.1f} {dsample:.1f} {dtot:.1f}',
              bracketed(train_results), bracketed(test_results), msg, flush=True)

    def scalars(self, prefix, epoch, results, **extra):
        """TensorBoard: {prefix}/{stat} for the four statistics, then {prefix}/{name} for each extra."""
        if self.writer is None:
            return
        with self.writer.as_default(step=epoch):
            for name, value in zip(STATS, results):
                tf.summary.scalar(f'{prefix}/{name}', float(value))
            for name, value in extra.items():
                tf.summary.scalar(f'{prefix}/{name}', float(value))

    def sample_grids(self, epoch, sample, image_size, n_y):
        """Call sample(labels, temperatures) -> uint8 images once per temperature; write the grids.

        Returns the PNG paths (none, and `sample` is never called, on a non-chief)."""
        if not self.chief:
            return []
        side = 10 if image_size <= 64 else 4
        y = tf.constant(np.arange(side * side) % side % n_y, tf.int32)  # one class per column
        paths = []
        for k, temperature in enumerate(TEMPERATURES):
            grid = image_grid(np.asarray(sample(y, tf.fill([side * side], float(temperature)))), side)
            path = os.path.join(self.logdir, f'epoch_{epoch}_sample_{k}.png')
            save_png(grid, path)
            paths.append(path)
            if self.writer is not None:
                with self.writer.as_default(step=epoch):
                    tf.summary.image(f'samples/temperature_{temperature}', grid[None], step=epoch)
        return paths

    def flush(self):
        if self.writer is not None:
            self.writer.flush()
