"""Plot train / test bits per dimension of one or more runs (this port's or the original's logs).

    python scripts/plot_logs.py LOGDIR [LOGDIR ...] [--out plots] [--metrics bits_x loss]

Each LOGDIR holds train.txt (and usually test.txt) in the original's format:
JSON lines, the first one all hyperparameters, then one line per epoch with
"epoch", "n_images" and the statistics as strings.  Writes one PNG per metric
({out}/{metric}.png): against epoch on the left, against n_images on the
right; train solid, test dashed; each run labelled by the hyperparameters in
which the runs differ (or, for one run, by its architecture).  Prints a table
of the final and best values.
"""
import argparse
import json
import os
import sys

PROG = 'plot_logs.py'
LABEL_KEYS = ('problem', 'flow_permutation', 'flow_coupling', 'decomposition', 'n_levels', 'depth', 'width',
              'learnprior', 'lr', 'n_batch_train', 'seed')
IGNORED_KEYS = {'logdir', 'restore_path', 'data_dir', 'verbose', 'inference', 'export_dir', 'resume',
                'no_progress', 'imported_from'}


def read_log(path):
    """(hyperparameters, [record]) of one JSON-lines log; statistics become floats."""
    with open(path) as f:
        lines = [line for line in f if line.strip()]
    if not lines:
        raise ValueError(f'{path} is empty')
    try:
        hparams = json.loads(lines[0])
        records = [json.loads(line) for line in lines[1:]]
    except json.JSONDecodeError as error:
        raise ValueError(f'{path}: not a JSON-lines log ({error})') from None
    for record in records:
        for key, value in record.items():
            if isinstance(value, str):
                try:
                    record[key] = float(value)
                except ValueError:
                    pass
    return hparams, records


def read_run(logdir):
    train_path = os.path.join(logdir, 'train.txt')
    if not os.path.exists(train_path):
        raise ValueError(f'{train_path} not found: each argument must be a log folder with train.txt')
    hparams, train = read_log(train_path)
    test_path = os.path.join(logdir, 'test.txt')
    test = read_log(test_path)[1] if os.path.exists(test_path) else []
    return {'logdir': logdir, 'hparams': hparams, 'train': train, 'test': test}


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
    points = [(r[x_key], r[metric]) for r in records if x_key in r and isinstance(r.get(metric), float)]
    return [p[0] for p in points], [p[1] for p in points]


def plot(runs, names, metric, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    colours = plt.rcParams['axes.prop_cycle'].by_key()['color']
    for i, (run, name) in enumerate(zip(runs, names)):
        colour = colours[i % len(colours)]
        for axis, x_key in zip(axes, ('epoch', 'n_images')):
            for split, style in (('train', '-'), ('test', '--')):
                xs, ys = series(run[split], x_key, metric)
                if xs:
                    axis.plot(xs, ys, style, color=colour, marker='.' if len(xs) < 30 else None,
                              label=f'{name} ({split})')
    for axis, x_key in zip(axes, ('epoch', 'n_images')):
        axis.set_xlabel(x_key)
        axis.set_ylabel(metric)
        axis.grid(alpha=.3)
    axes[0].legend(fontsize=7)
    figure.suptitle(f'{metric} (train solid, test dashed)')
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def final_table(runs, names, metric):
    rows = [('run', 'epochs', f'final train {metric}', f'final test {metric}', f'best test {metric}')]
    for run, name in zip(runs, names):
        _, train = series(run['train'], 'epoch', metric)
        _, test = series(run['test'], 'epoch', metric)
        epochs = run['train'][-1]['epoch'] if run['train'] else 0
        rows.append((name, str(int(epochs)), f'{train[-1]:.4f}' if train else '-',
                     f'{test[-1]:.4f}' if test else '-', f'{min(test):.4f}' if test else '-'))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return '\n'.join('  '.join(cell.ljust(width) for cell, width in zip(row, widths)) for row in rows)


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

    Args:
      argv: the arguments (default: the process's).
      prog: the program's name in the usage line and error messages.
    """
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    try:
        runs = [read_run(logdir) for logdir in args.logdirs]
    except ValueError as error:
        parser.error(str(error))
    names = labels(runs)
    os.makedirs(args.out, exist_ok=True)
    for metric in args.metrics:
        path = os.path.join(args.out, f'{metric}.png')
        plot(runs, names, metric, path)
        print(f'wrote {path}')
    print(final_table(runs, names, args.metrics[0]))
    return 0


if __name__ == '__main__':
    sys.exit(main())
