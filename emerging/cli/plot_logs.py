"""Plot train / test bits per dimension of one or more runs (this port's or the original's logs).

    python scripts/plot_logs.py LOGDIR [LOGDIR ...] [--out plots] [--metrics bits_x loss]

Each LOGDIR holds train.txt (and usually test.txt) in the original's format:
JSON lines, the first one all hyperparameters, then one line per epoch with
"epoch", "n_images" and the statistics as strings.  Writes one PNG per metric
({out}/{metric}.png): against epoch on the left, against n_images on the
right; train solid, test dashed; each run labelled by the hyperparameters in
which the runs differ (or, for one run, by its architecture).  Prints a table
of the final and best values.

Everything is checked before anything is written: every line of a log must be
a JSON object (a last line cut off by a kill is left out, with a note), every
later line needs a numeric "epoch"; each --metrics name must be a statistic of
the logs; --out must be a folder that can be written.
"""
import argparse
import json
import math
import os
import sys

from emerging.cli.paths import check_output_file, check_output_folder
from emerging.errors import InputError

PROG = 'plot_logs.py'
LABEL_KEYS = ('problem', 'flow_permutation', 'flow_coupling', 'decomposition', 'n_levels', 'depth', 'width',
              'learnprior', 'lr', 'n_batch_train', 'seed')
IGNORED_KEYS = {'logdir', 'restore_path', 'data_dir', 'verbose', 'inference', 'export_dir', 'resume',
                'no_progress', 'imported_from'}
X_KEYS = ('epoch', 'n_images')
COUNTERS = {'epoch', 'n_processed', 'n_images', 'train_time'}  # on every line, not statistics to plot


def read_log(path):
    """One JSON-lines log, checked line by line.

    Args:
      path: the log (train.txt or test.txt).

    Returns:
      (hyperparameters, [record]): the first line's object, then one dict per later line, its numbers and
      numeric strings as floats.  A last line cut off by a kill (no line end, not JSON) is left out with a note
      on stderr, as training drops it on --resume.

    Raises:
      InputError: naming the file (and line) when it cannot be read, is not UTF-8, or a line is not a JSON
        object, or a line after the first has no finite "epoch" or a non-numeric "n_images".
    """
    lines = _lines(path)
    if not lines:
        raise InputError(f'{path} is empty: expected the JSON lines of a training log')
    objects = []
    for position, (number, line, ended) in enumerate(lines):
        try:
            objects.append(_json_object(line))
        except InputError as error:
            if position == len(lines) - 1 and position > 0 and not ended:
                print(f'{path}, line {number}: left out, cut off ({error})', file=sys.stderr)
                break
            raise InputError(f'{path}, line {number}: {error}') from None
    hparams, records = objects[0], objects[1:]
    for (number, _, _), record in zip(lines[1:], records):
        _numbers(record, f'{path}, line {number}')
    return hparams, records


def _lines(path):
    """[(line number, text, whether a line end follows)] of the non-blank lines of a UTF-8 file."""
    try:
        with open(path, 'rb') as f:
            raw = f.read()
    except OSError as error:
        raise InputError(f'{path}: cannot be read ({error.strerror or error})') from None
    try:
        text = raw.decode('utf-8')
    except UnicodeDecodeError as error:
        raise InputError(f'{path}: not UTF-8 text (byte {error.start} is 0x{raw[error.start]:02x}): expected the '
                         f'JSON lines of a training log') from None
    parts = text.split('\n')
    return [(number, line, number < len(parts)) for number, line in enumerate(parts, start=1) if line.strip()]


def _json_object(line):
    try:
        value = json.loads(line)
    except (ValueError, RecursionError) as error:  # ValueError: bad JSON, or an integer of too many digits
        raise InputError(f'not JSON ({type(error).__name__}: {str(error)[:200]})') from None
    if not isinstance(value, dict):
        raise InputError(f'a JSON {type(value).__name__}, expected a JSON object {{"key": value, ...}}')
    return value


def _numbers(record, where):
    """Numbers and numeric strings of a record become floats (in place); the plot's x values are checked."""
    for key, value in record.items():
        number = _number(value)
        if number is not None:
            record[key] = number
    for key in X_KEYS:
        value = record.get(key)
        if (key == 'epoch' or key in record) and not (isinstance(value, float) and math.isfinite(value)):
            raise InputError(f'{where}: "{key}" must be a finite number, got {json.dumps(value)[:100]}')


def _number(value):
    """`value` as a float when it is a JSON number or a string of one (as the original wrote statistics); else
    None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        try:
            return float(value)
        except OverflowError:  # an integer beyond float's range
            return math.inf if value > 0 else -math.inf
    if isinstance(value, str) and len(value) < 100:
        try:
            return float(value)
        except ValueError:
            return None
    return None


def read_run(logdir):
    """A run's logs: {'logdir', 'hparams', 'train': [record], 'test': [record]} (no test.txt: no test records).

    Raises:
      InputError: naming the folder or file that is missing or not a log.
    """
    train_path = os.path.join(logdir, 'train.txt')
    if not os.path.isfile(train_path):
        raise InputError(f'{train_path} not found: each argument must be a log folder with train.txt')
    hparams, train = read_log(train_path)
    test_path = os.path.join(logdir, 'test.txt')
    test = read_log(test_path)[1] if os.path.exists(test_path) else []
    return {'logdir': logdir, 'hparams': hparams, 'train': train, 'test': test}


def statistics(runs):
    """The names of the statistics the runs' logs hold (numbers, besides the counters), sorted."""
    return sorted({key for run in runs for record in run['train'] + run['test'] for key, value in record.items()
                   if isinstance(value, float) and key not in COUNTERS})


def check_metrics(runs, metrics):
    """Refuse a --metrics name that no run's log holds, listing the ones they hold."""
    held = statistics(runs)
    unknown = [metric for metric in metrics if metric not in held]
    if unknown:
        logs = ', '.join(os.path.join(run['logdir'], 'train.txt') for run in runs)
        raise InputError(f'--metrics {" ".join(unknown)}: not in the logs ({logs} and their test.txt); they hold '
                         f'{", ".join(held) if held else "no statistics yet"}')


def labels(runs):
    """Label each run by the hyperparameters that differ between the runs."""
    # only keys every run has: the original's logs and this port's have different extras
    keys = sorted(set.intersection(*[set(run['hparams']) for run in runs]) - IGNORED_KEYS)
    differing = [k for k in keys if len({json.dumps(run['hparams'].get(k)) for run in runs}) > 1]
    if len(runs) == 1 or not differing:
        differing = [k for k in LABEL_KEYS if k in runs[0]['hparams']]
    differing = differing[:6]
    names = []
    for run in runs:
        parts = [f'{k}={run["hparams"].get(k)}' for k in differing]
        names.append(f'{os.path.basename(os.path.normpath(run["logdir"]))}: ' + ' '.join(parts))
    return names


def series(records, x_key, metric):
    """(xs, ys): the records' `x_key` and `metric` values, where both are there."""
    points = [(r[x_key], r[metric]) for r in records if x_key in r and isinstance(r.get(metric), float)]
    return [p[0] for p in points], [p[1] for p in points]


def finite(xs, ys):
    """The points whose y is finite: a diverged run's inf / nan values are shown in the table, not drawn."""
    kept = [(x, y) for x, y in zip(xs, ys) if math.isfinite(y)]
    return [x for x, _ in kept], [y for _, y in kept]


def plot(runs, names, metric, path):
    """One figure of `metric`: against epoch (left) and n_images (right), written to `path`."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    colours = plt.rcParams['axes.prop_cycle'].by_key()['color']
    for i, (run, name) in enumerate(zip(runs, names)):
        colour = colours[i % len(colours)]
        for axis, x_key in zip(axes, X_KEYS):
            for split, style in (('train', '-'), ('test', '--')):
                xs, ys = finite(*series(run[split], x_key, metric))
                if xs:
                    axis.plot(xs, ys, style, color=colour, marker='.' if len(xs) < 30 else None,
                              label=f'{name} ({split})')
    for axis, x_key in zip(axes, X_KEYS):
        axis.set_xlabel(x_key)
        axis.set_ylabel(metric)
        axis.grid(alpha=.3)
    if axes[0].lines:
        axes[0].legend(fontsize=7)
    figure.suptitle(f'{metric} (train solid, test dashed)')
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def final_table(runs, names, metric):
    """The table printed at the end: per run, its last epoch and the final and best values of `metric`."""
    rows = [('run', 'epochs', f'final train {metric}', f'final test {metric}', f'best test {metric}')]
    for run, name in zip(runs, names):
        _, train = series(run['train'], 'epoch', metric)
        _, test = series(run['test'], 'epoch', metric)
        epochs = run['train'][-1]['epoch'] if run['train'] else 0
        rows.append((name, str(int(epochs)), f'{train[-1]:.4f}' if train else '-',
                     f'{test[-1]:.4f}' if test else '-', f'{min(test):.4f}' if test else '-'))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return '\n'.join('  '.join(cell.ljust(width) for cell, width in zip(row, widths)) for row in rows)


def figure_path(out, metric):
    """{out}/{metric}.png, with any character of the name other than letters, digits, '-' and '_' as '_' (the
    names come from the logs)."""
    return os.path.join(out, ''.join(c if c.isalnum() or c in '-_' else '_' for c in metric) + '.png')


def build_parser(prog=PROG):
    """plot_logs.py's parser (`prog`: the program's name in the usage line and error messages)."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument('logdirs', nargs='+', help='log folders with train.txt (and test.txt)')
    parser.add_argument('--out', default='plots', help='folder for the PNGs')
    parser.add_argument('--metrics', nargs='+', default=['bits_x', 'loss'],
                        help='the statistics to plot, one PNG each; the table shows the first')
    return parser


def main(argv=None, prog=PROG):
    """plot_logs.py: write the plots, print the table; returns the exit code.

    Every log, --metrics and --out are checked before anything is written: a fault is one line
    `<prog>: error: <what is wrong>` on stderr and exit code 2.

    Args:
      argv: the arguments (default: the process's).
      prog: the program's name in the usage line and error messages.
    """
    args = build_parser(prog).parse_args(argv)
    try:
        check_output_folder(args.out, '--out')
        paths = [check_output_file(figure_path(args.out, metric), '--out') for metric in args.metrics]
        runs = [read_run(logdir) for logdir in args.logdirs]
        check_metrics(runs, args.metrics)
    except InputError as error:
        print(f'{prog}: error: {error}', file=sys.stderr)
        return 2
    names = labels(runs)
    os.makedirs(args.out, exist_ok=True)
    for metric, path in zip(args.metrics, paths):
        plot(runs, names, metric, path)
        print(f'wrote {path}')
    print(final_table(runs, names, args.metrics[0]))
    return 0


if __name__ == '__main__':
    sys.exit(main())
