"""One table across flow families: the toy densities (BNAF, MAF, RealNVP, Residual Flow) and 8x8 digits (Glow 1x1,
emerging, periodic, Residual Flow), every model trained by its own program under the same budget.

    python scripts/compare_families.py --out runs/compare                          # both parts, ~the defaults
    python scripts/compare_families.py --part toy --datasets 8gaussians,moons --steps 500 --out runs/cmp_toy
    python scripts/compare_families.py --part digits --epochs 40 --out runs/cmp_digits

Every model is trained in a subprocess by the `emerging` command's programs (this Python, `python -m emerging
PROGRAM`, with this `emerging` package first on the path, so it runs from a clone or an installed package alike);
the whole command line of every run is echoed on stderr (`$ ...`) so that any run can be repeated alone, with a
progress line per run, and each run's stdout / stderr is kept in {out}/logs/.  Nothing here imports TensorFlow.

Toy part (`--part toy`): for every data set of `emerging.data.toy2d.DATASETS` (or `--datasets a,b`) and every family
of `--families`:

* BNAF, MAF, RealNVP: `emerging toy --train --flow F` (scripts/toy_density.py) at its defaults (BNAF: one network of
  2 tanh layers of 50 units per dimension, 8,204 parameters; MAF / RealNVP: as many blocks as give about BNAF's
  count; Adam (amsgrad) lr 1e-2 halved on plateaus, gradients clipped to 0.1);
* ResFlow: `emerging resflow-toy` (scripts/train_resflow_toy.py: the public train_toy.py's defaults: i-ResNet
  blocks, LipSwish, spectral norm 0.9, Adam lr 1e-3, the unbiased Russian-roulette log-det) with --resflow_nblocks
  blocks of --resflow_dims hidden widths: 10 x 32-32 by default, 12,210 parameters, of the order of BNAF's.

The budget is the same for all: --steps training steps of --batch_size fresh samples, seed --seed.  Each program
ends with `parameters: N; train steps/s: S` and `test nll: X +- SE nats (true: H +- SE)`: the mean negative
log-likelihood of the same 10,000 fresh test points (seed + 1) and its standard error, and H the data's entropy.
{out}/compare_toy.md holds two tables.  The first has one row per data set: the true entropy H, then per family
`NLL +- SE (gap)` with gap = NLL - H (0 is a perfect model: NLL is H plus KL(data || model), so a gap is always >= 0 up
to the standard errors) and the lowest NLL of the row in bold.  The second has per family the parameter count, the
training steps per second (the first step, which traces the graph, left out) and the gap, both the mean over the
data sets.  {out}/compare_toy.png shows, per data set (columns), the target density and each family's learned
density (rows) at the end of training, cut from each run's own figure.

Digits part (`--part digits`): `emerging train --problem digits` (train.py) with --flow_permutation 2 (Glow 1x1), 3
(emerging) and 4 (periodic), 2 levels of 8 steps, coupling networks 128 wide, affine coupling, learned prior, and
`emerging train-resflow --data digits --nblocks 8-8 --idim 128` (about 0.8M parameters each), all --epochs epochs of
batch 64 with 2 epochs of warm-up (the README's "Digits, both families at about the same size").  Then
`emerging evaluate --logdir RUN --n_dequant 4 --weights latest` scores the final weights on the 300 test images.
{out}/compare_digits.md has per model: the parameter count (the programs' `parameters: ... total N` line), test
bits/dim +- its standard error over the test images (the lowest in bold), the train bits/dim of the last epoch
(train.txt; with the test value, how much a model overfits) and the training images per second (the harmonic mean of
the status lines' `ips` after the first epoch, which traces the graph: total images over total time).
--digits_depth, --digits_width, --digits_nblocks and --digits_idim change the sizes (for a quick check only).

--out is checked before any run starts; bad flags are errors naming the flag (exit code 2).  A run that fails, or
whose output lacks a line parsed here, stops the comparison with an error naming the run and its stderr's last
lines (exit code 1).
"""
import argparse
import json
import math
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass

from emerging.cli.paths import check_output_folder
from emerging.data import toy2d
from emerging.errors import InputError

PROG = 'compare_families.py'
# the folder holding this `emerging` package: first on the children's path, so that they run this same code
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PARTS = ('toy', 'digits', 'all')
DESCRIPTION = ('One table across flow families: toy densities (BNAF, MAF, RealNVP, Residual Flow) and 8x8 digits '
               '(Glow 1x1, emerging, periodic, Residual Flow), each model trained by its own program under the same '
               'budget.')
#: toy family -> its name in the tables
TOY_FAMILIES = {'bnaf': 'BNAF', 'maf': 'MAF', 'realnvp': 'RealNVP', 'resflow': 'ResFlow'}
#: digits model -> (its name in the table, train.py's --flow_permutation; None: train_resflow.py)
DIGITS_MODELS = {'glow': ('Glow 1x1', 2), 'emerging': ('emerging', 3), 'periodic': ('periodic', 4),
                 'resflow': ('Residual Flow', None)}
EMERGING = (sys.executable, '-m', 'emerging')
N_DEQUANT = 4
TAIL_LINES = 15
CELL_PIXELS = 100
# what a comparison writes into --out: a second run into the same folder is refused without --overwrite
OUTPUTS = ('compare_toy.md', 'compare_toy.png', 'compare_digits.md', 'toy', 'digits')

TRAIN_LINE = re.compile(r'^parameters: ([\d,]+); train steps/s: (\S+)\s*$', re.M)
NLL_LINE = re.compile(r'^test nll: (\S+) \+- (\S+) nats \(true: (\S+) \+- (\S+)\)\s*$', re.M)
PARAMETERS_LINE = re.compile(r'^parameters: .*\btotal ([\d,]+)\s*$', re.M)
BITS_LINE = re.compile(r'^test bits_x: (\S+) \+- (\S+)\s*$', re.M)
# recorder.py's status line: epoch n_processed n_images ips dtrain dtest dsample dtot [train] [test] msg
STATUS_LINE = re.compile(r'^(\d+) \d+ \d+ (\S+) \S+ \S+ \S+ \S+ \[', re.M)


class RunFailed(Exception):
    """A run that failed, or whose output lacks a line parsed here; the message names the run."""


# ---- the output parsers (no subprocess) -----------------------------------------------------------------------
def _last(pattern, text, what):
    matches = list(pattern.finditer(text))
    if not matches:
        raise ValueError(f'no {what} line in its output')
    return matches[-1]


def parse_train_line(text: str) -> tuple[int, float]:
    """The toy scripts' `parameters: N; train steps/s: S` line (the last one in `text`).

    Args:
      text: a run's stdout.

    Returns:
      (parameters, training steps per second; nan when the script printed nan).

    Raises:
      ValueError: when there is no such line.
    """
    match = _last(TRAIN_LINE, text, '"parameters: N; train steps/s: S"')
    return int(match.group(1).replace(',', '')), float(match.group(2))


def parse_nll_line(text: str) -> tuple[float, float, float, float]:
    """The toy scripts' `test nll: X +- SE nats (true: H +- SE)` line (the last one in `text`).

    Args:
      text: a run's stdout.

    Returns:
      (test NLL, its standard error, the true entropy H, H's standard error), in nats.

    Raises:
      ValueError: when there is no such line.
    """
    match = _last(NLL_LINE, text, '"test nll: X +- SE nats (true: H +- SE)"')
    return tuple(float(value) for value in match.groups())


def parse_parameters_line(text: str) -> int:
    """train.py's / train_resflow.py's `parameters: KIND N, ..., total N` line (launch.py).

    Args:
      text: a run's stdout.

    Returns:
      The total parameter count.

    Raises:
      ValueError: when there is no such line.
    """
    return int(_last(PARAMETERS_LINE, text, '"parameters: ..., total N"').group(1).replace(',', ''))


def parse_images_per_second(text: str) -> float:
    """The training images per second from the status lines (recorder.py) of train.py / train_resflow.py.

    Args:
      text: a run's stdout.

    Returns:
      The harmonic mean of the `ips` of the status lines after the first epoch's (the first traces the graph),
      i.e. their images over their training time (epochs have equal sizes); the first epoch's when it is the
      only one.

    Raises:
      ValueError: when there is no status line.
    """
    rates = {int(match.group(1)): float(match.group(2)) for match in STATUS_LINE.finditer(text)}
    if not rates:
        raise ValueError('no status line ("epoch n_processed n_images ips ...") in its output')
    later = [rate for epoch, rate in rates.items() if epoch > min(rates)] or list(rates.values())
    if any(rate <= 0. for rate in later):
        return float('nan')
    return len(later) / sum(1. / rate for rate in later)


def parse_bits_line(text: str) -> tuple[float, float]:
    """`emerging evaluate`'s last line, `test bits_x: X +- SE`.

    Args:
      text: its stdout.

    Returns:
      (test bits/dim, its standard error over the test images).

    Raises:
      ValueError: when there is no such line.
    """
    match = _last(BITS_LINE, text, '"test bits_x: X +- SE"')
    return float(match.group(1)), float(match.group(2))


def read_last_train_bits(path: str) -> float:
    """The bits_x of the last epoch line of a train.txt (recorder.py's JSON lines).

    Args:
      path: the train.txt.

    Returns:
      Its last line's bits_x.

    Raises:
      ValueError: when the file is missing or has no epoch line.
    """
    if not os.path.exists(path):
        raise ValueError(f'{path} is missing')
    with open(path) as f:
        records = [json.loads(line) for line in f.read().splitlines() if line.strip()][1:]
    records = [r for r in records if isinstance(r, dict) and 'bits_x' in r]
    if not records:
        raise ValueError(f'{path} has no epoch line')
    return float(records[-1]['bits_x'])


# ---- flags ---------------------------------------------------------------------------------------------------
def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """compare_families.py's parser.

    Args:
      prog: the program's name in the usage line and error messages.

    Returns:
      The `argparse.ArgumentParser`.
    """
    p = argparse.ArgumentParser(prog=prog, description=DESCRIPTION, allow_abbrev=False,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    a = p.add_argument
    a('--part', choices=PARTS, default='all', help='the toy densities, the digits, or both (default)')
    a('--out', default='compare_families',
      help='the output folder: compare_toy.md, compare_toy.png, compare_digits.md, the runs, logs/')
    a('--overwrite', action='store_true',
      help='--out holds an earlier comparison: train its runs again over it (each run with --overwrite)')
    a('--seed', type=int, default=0, help='every run\'s --seed')
    g = p.add_argument_group('toy part')
    g.add_argument('--datasets', default='',
                   help='data sets joined by "," (default: every one of emerging.data.toy2d.DATASETS)')
    g.add_argument('--families', default=','.join(TOY_FAMILIES),
                   help=f'families joined by "," (default {",".join(TOY_FAMILIES)})')
    g.add_argument('--steps', type=int, default=2000, help='training steps of every toy run')
    g.add_argument('--batch_size', type=int, default=200, help='fresh samples per step of every toy run')
    g.add_argument('--resflow_nblocks', type=int, default=10, help='the Residual Flow\'s blocks (--nblocks)')
    g.add_argument('--resflow_dims', default='32-32',
                   help='the hidden widths of every Residual Flow block (--dims), joined by "-"; with the default '
                        '10 blocks 12,210 parameters, of the order of BNAF\'s 8,204')
    g = p.add_argument_group('digits part')
    g.add_argument('--epochs', type=int, default=40, help='training epochs of every digits model')
    g.add_argument('--digits_depth', type=int, default=8, help='train.py --depth (steps per level)')
    g.add_argument('--digits_width', type=int, default=128, help='train.py --width (coupling network channels)')
    g.add_argument('--digits_nblocks', default='8-8', help='train_resflow.py --nblocks')
    g.add_argument('--digits_idim', type=int, default=128, help='train_resflow.py --idim')
    return p


def _names(text: str, allowed, flag: str) -> list:
    names = [name.strip() for name in text.split(',') if name.strip()]
    if not names:
        raise InputError(f'{flag} needs at least one name; allowed: {", ".join(allowed)}')
    unknown = [name for name in names if name not in allowed]
    if unknown:
        raise InputError(f'{flag} {unknown[0]!r} is not one of {", ".join(allowed)}')
    if len(set(names)) < len(names):
        raise InputError(f'{flag} {text!r} names one twice')
    return names


def _widths(text: str, flag: str) -> str:
    try:
        widths = [int(w) for w in text.split('-')]
    except ValueError:
        raise InputError(f'{flag} must be positive integers joined by "-" (e.g. 32-32), got {text!r}') from None
    if min(widths) < 1:
        raise InputError(f'{flag} must be positive integers joined by "-", got {text!r}')
    return text


def check(args: argparse.Namespace) -> tuple[list, list]:
    """Check every flag and the output folder before any run.

    Args:
      args: the parsed flags.

    Returns:
      (the toy data sets, the toy families) chosen.

    Raises:
      InputError: naming the first bad flag (or a program that is missing).
    """
    datasets = _names(args.datasets, toy2d.DATASETS, '--datasets') if args.datasets else list(toy2d.DATASETS)
    families = _names(args.families, tuple(TOY_FAMILIES), '--families')
    for flag in ('steps', 'batch_size', 'resflow_nblocks', 'epochs', 'digits_depth', 'digits_width',
                 'digits_idim'):
        if getattr(args, flag) < 1:
            raise InputError(f'--{flag} must be positive, got {getattr(args, flag)}')
    _widths(args.resflow_dims, '--resflow_dims')
    _widths(args.digits_nblocks, '--digits_nblocks')
    check_output_folder(args.out, '--out')
    earlier = [name for name in OUTPUTS if os.path.exists(os.path.join(args.out, name))]
    if earlier and not args.overwrite:
        raise InputError(f'--out {args.out} holds an earlier comparison ({", ".join(earlier)}): add --overwrite to '
                         f'train its runs again over it, or choose another folder; nothing was changed')
    return datasets, families


# ---- running -------------------------------------------------------------------------------------------------
def _tail(text: str, n: int = TAIL_LINES) -> str:
    lines = [line for line in re.split(r'[\r\n]+', text) if line.strip()]
    return '\n'.join('    ' + line for line in lines[-n:]) or '    (empty)'


class Runner:
    """Runs the programs one after another in the current folder, echoing each command line and a progress line.

    Args:
      total: the number of runs, for the progress lines.
      log_dir: where each run's stdout and stderr are kept ({name}.out, {name}.err).
    """

    def __init__(self, total: int, log_dir: str):
        self.total, self.done, self.log_dir = total, 0, log_dir

    def run(self, label: str, name: str, command: list) -> str:
        """Run one program to its end.

        Args:
          label: what the run is, for the progress line and errors ('bnaf on 8gaussians').
          name: the base name of its log files.
          command: the command line.

        Returns:
          Its stdout.

        Raises:
          RunFailed: when it exits with a code other than 0.
        """
        self.done += 1
        print(f'[{self.done}/{self.total}] {label}\n    $ {shlex.join(command)}',
              file=sys.stderr, flush=True)
        start = time.time()
        path = os.pathsep.join(p for p in (PACKAGE_PARENT, os.environ.get('PYTHONPATH')) if p)
        environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get('TF_CPP_MIN_LOG_LEVEL', '2'),
                           PYTHONPATH=path)
        result = subprocess.run(command, env=environment, capture_output=True, text=True)
        os.makedirs(self.log_dir, exist_ok=True)
        for suffix, text in (('out', result.stdout), ('err', result.stderr)):
            with open(os.path.join(self.log_dir, f'{name}.{suffix}'), 'w') as f:
                f.write(text)
        if result.returncode != 0:
            raise RunFailed(f'run "{label}" failed with exit code {result.returncode}; the end of its stderr '
                            f'({os.path.join(self.log_dir, name + ".err")}):\n{_tail(result.stderr)}')
        print(f'    done in {time.time() - start:.1f} s', file=sys.stderr, flush=True)
        return result.stdout

    def parsed(self, label: str, name: str, parse, text: str):
        """`parse(text)`, a missing line turned into a `RunFailed` naming the run.

        Args:
          label: the run, as for `run`.
          name: the base name of its log files.
          parse: a function of the text that raises ValueError when a line is missing.
          text: the run's stdout.

        Returns:
          What `parse` returns.

        Raises:
          RunFailed: naming the run, with the end of its stdout and stderr.
        """
        try:
            return parse(text)
        except ValueError as error:
            err = ''
            path = os.path.join(self.log_dir, name + '.err')
            if os.path.exists(path):
                with open(path) as f:
                    err = f.read()
            raise RunFailed(f'run "{label}": {error}; the end of its stdout:\n{_tail(text)}\nand of its stderr '
                            f'({path}):\n{_tail(err)}') from None


@dataclass
class ToyResult:
    """One toy run's numbers and final figure.

    Attributes:
      nll, nll_se: the test NLL and its standard error (nats).
      entropy, entropy_se: the data's entropy H and its standard error.
      parameters: the model's parameter count.
      steps_per_second: training steps per second.
      figure: the run's last [target | learned | samples] PNG.
    """
    nll: float
    nll_se: float
    entropy: float
    entropy_se: float
    parameters: int
    steps_per_second: float
    figure: str

    @property
    def gap(self) -> float:
        """NLL - H."""
        return self.nll - self.entropy


def toy_command(family: str, dataset: str, args: argparse.Namespace, folder: str) -> tuple[list, str]:
    """The command line of one toy run and the figure it writes last.

    Args:
      family: a key of `TOY_FAMILIES`.
      dataset: a toy2d data set.
      args: compare_families.py's flags (--steps, --batch_size, --seed, --resflow_*).
      folder: the run's output folder (absolute).

    Returns:
      (the command line, the path of its final figure).
    """
    n, batch, seed = str(args.steps), str(args.batch_size), str(args.seed)
    if family == 'resflow':
        command = [*EMERGING, 'resflow-toy', '--data', dataset, '--niters', n,
                   '--batch_size', batch, '--nblocks', str(args.resflow_nblocks), '--dims', args.resflow_dims,
                   '--viz_freq', n, '--val_freq', n, '--save', folder, '--seed', seed, '--no_progress',
                   *overwrite(args)]
        return command, os.path.join(folder, 'figs', f'{args.steps:04d}.png')
    command = [*EMERGING, 'toy', '--train', '--dataset', dataset, '--flow', family,
               '--n_steps', n, '--batch_size', batch, '--log_interval', n, '--output_dir', folder, '--seed', seed,
               '--no_progress', *overwrite(args)]
    return command, os.path.join(folder, f'step_{args.steps}.png')


def run_toy(args: argparse.Namespace, datasets: list, families: list, runner: Runner) -> dict:
    """Train every family on every data set.

    Args:
      args: compare_families.py's flags.
      datasets: the data sets, in table order.
      families: the families (keys of `TOY_FAMILIES`), in table order.
      runner: the `Runner`.

    Returns:
      {(data set, family): `ToyResult`}.

    Raises:
      RunFailed: naming the first run that failed or lacks a line.
    """
    results = {}
    for dataset in datasets:
        for family in families:
            name = f'toy_{dataset}_{family}'
            label = f'toy: {TOY_FAMILIES[family]} on {dataset}'
            command, figure = toy_command(family, dataset, args, os.path.join(args.out, 'toy', f'{dataset}_{family}'))
            out = runner.run(label, name, command)
            parameters, rate = runner.parsed(label, name, parse_train_line, out)
            nll = runner.parsed(label, name, parse_nll_line, out)
            results[dataset, family] = ToyResult(*nll, parameters, rate, figure)
            print(f'    test nll {nll[0]:.4f} +- {nll[1]:.4f} (H {nll[2]:.4f}), {parameters:,} parameters, '
                  f'{rate:.3g} steps/s', file=sys.stderr, flush=True)
    return results


def _finite(values):
    return [v for v in values if math.isfinite(v)]


def _mean(values) -> float:
    values = _finite(values)
    return sum(values) / len(values) if values else float('nan')


def toy_tables(results: dict, datasets: list, families: list, args: argparse.Namespace) -> str:
    """The toy part's markdown: the NLL table and the parameter / speed table.

    Args:
      results: {(data set, family): `ToyResult`} as `run_toy` returns.
      datasets: the rows, in order.
      families: the families, in column order.
      args: compare_families.py's flags (for the heading's budget).

    Returns:
      The markdown text.
    """
    names = [TOY_FAMILIES[f] for f in families]
    lines = [f'### Toy densities: test NLL (nats), {args.steps} steps of batch {args.batch_size}, seed {args.seed}',
             '',
             'Each cell: NLL +- SE on 10,000 fresh test points (gap: NLL - H, 0 for a perfect model); the lowest '
             'NLL of a row in bold.',
             '',
             '| data set | true H | ' + ' | '.join(names) + ' |',
             '|---|---|' + '---|' * len(names)]
    for dataset in datasets:
        row = [results[dataset, f] for f in families]
        scores = _finite([r.nll for r in row])
        best = min(scores) if scores else None
        cells = []
        for r in row:
            cell = f'{r.nll:.3f} +- {r.nll_se:.3f} ({r.gap:+.3f})'
            cells.append(f'**{cell}**' if best is not None and r.nll == best else cell)
        lines.append(f'| {dataset} | {row[0].entropy:.3f} +- {row[0].entropy_se:.3f} | ' + ' | '.join(cells) + ' |')
    lines += ['', f'### Toy densities: size and speed (mean over {len(datasets)} data set'
                  f'{"s" * (len(datasets) > 1)})', '',
              '| family | parameters | train steps/s | mean gap (nats) |', '|---|---|---|---|']
    for family, name in zip(families, names):
        row = [results[d, family] for d in datasets]
        counts = sorted({r.parameters for r in row})
        count = f'{counts[0]:,}' if len(counts) == 1 else f'{counts[0]:,}-{counts[-1]:,}'
        lines.append(f'| {name} | {count} | {_mean([r.steps_per_second for r in row]):.3g} | '
                     f'{_mean([r.gap for r in row]):+.3f} |')
    return '\n'.join(lines) + '\n'


def _panel_box(mask):
    """The rows and columns (slices) of the densely filled rectangle of a boolean image, or None."""
    rows = mask.mean(axis=1) > 0.6
    cols = mask.mean(axis=0) > 0.6
    if rows.sum() < 10 or cols.sum() < 10:
        return None
    r, c = rows.nonzero()[0], cols.nonzero()[0]
    return slice(r[0], r[-1] + 1), slice(c[0], c[-1] + 1)


def density_panels(path: str, size: int = CELL_PIXELS):
    """The target and learned-density panels (the left and middle thirds) of a toy run's figure, without their
    titles, resized.

    Args:
      path: the [target | learned density | samples] PNG.
      size: the side of the square images returned, in pixels.

    Returns:
      (target, learned): uint8 [size, size, 3] arrays.
    """
    import numpy as np
    from PIL import Image

    with Image.open(path) as image:
        pixels = np.asarray(image.convert('RGB'))
    third = pixels.shape[1] // 3
    panels = []
    for k in range(2):
        part = pixels[:, k * third:(k + 1) * third]
        box = _panel_box(np.any(part < 235, axis=-1))  # the image is dense; titles and margins are mostly white
        if box is not None:
            part = part[box]
        panels.append(np.asarray(Image.fromarray(np.ascontiguousarray(part)).resize((size, size), Image.LANCZOS)))
    return tuple(panels)


def toy_picture(results: dict, datasets: list, families: list, path: str, size: int = CELL_PIXELS) -> str:
    """The grid of learned densities: the target row, then one row per family; one column per data set.

    Args:
      results: {(data set, family): `ToyResult`}.
      datasets: the columns, in order.
      families: the family rows, in order.
      path: the PNG to write.
      size: pixels per cell.

    Returns:
      `path`.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    rows = [('target', None)] + [(TOY_FAMILIES[f], f) for f in families]
    left, top, dpi = 70, 30, 100  # pixels for the labels
    width, height = left + size * len(datasets), top + size * len(rows)
    figure = plt.figure(figsize=((width + 0.01) / dpi, (height + 0.01) / dpi), dpi=dpi)  # whole pixels
    for j, dataset in enumerate(datasets):
        for i, (label, family) in enumerate(rows):
            ax = figure.add_axes([(left + j * size) / width, 1. - (top + (i + 1) * size) / height,
                                  size / width, size / height])
            ax.set_xticks([])
            ax.set_yticks([])
            figure_path = results[dataset, family or families[0]].figure
            if os.path.exists(figure_path):
                target, learned = density_panels(figure_path, size)
                ax.imshow(target if family is None else learned, interpolation='nearest')
            else:
                ax.text(0.5, 0.5, 'missing', ha='center', va='center', fontsize=7, transform=ax.transAxes)
            if i == 0:
                ax.set_title(dataset, fontsize=8, pad=3)
            if j == 0:
                ax.set_ylabel(label, fontsize=8, rotation=0, ha='right', va='center', labelpad=4)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    figure.savefig(path, dpi=dpi)
    plt.close(figure)
    return path


@dataclass
class DigitsResult:
    """One digits model's numbers.

    Attributes:
      parameters: its total parameter count.
      bits, bits_se: test bits/dim of the final weights and its standard error.
      train_bits: the train bits/dim of the last epoch.
      images_per_second: training images per second.
    """
    parameters: int
    bits: float
    bits_se: float
    train_bits: float
    images_per_second: float


def digits_title(model: str, args: argparse.Namespace) -> str:
    """A digits model's name in the table, with the flags that make it.

    Args:
      model: a key of `DIGITS_MODELS`.
      args: compare_families.py's flags.

    Returns:
      E.g. 'Glow 1x1 (`--flow_permutation 2`)'.
    """
    name, permutation = DIGITS_MODELS[model]
    if permutation is None:
        return f'{name} (`--nblocks {args.digits_nblocks} --idim {args.digits_idim}`)'
    return f'{name} (`--flow_permutation {permutation}`)'


def digits_command(model: str, args: argparse.Namespace, folder: str) -> list:
    """The training command line of one digits model.

    Args:
      model: a key of `DIGITS_MODELS`.
      args: compare_families.py's flags (--epochs, --seed, --digits_*).
      folder: the run folder (absolute).

    Returns:
      The command line.
    """
    epochs, seed = args.epochs, str(args.seed)
    permutation = DIGITS_MODELS[model][1]
    if permutation is None:
        return [*EMERGING, 'train-resflow', '--data', 'digits', '--nblocks', args.digits_nblocks,
                '--idim', str(args.digits_idim), '--nepochs', str(epochs), '--warmup-iters', '48',
                '--valid-freq', str(epochs), '--save', folder, '--seed', seed, '--no-progress', *overwrite(args)]
    return [*EMERGING, 'train', '--problem', 'digits', '--image_size', '8', '--anchor_size', '8',
            '--n_batch_train', '64', '--n_levels', '2', '--depth', str(args.digits_depth), '--width',
            str(args.digits_width), '--flow_permutation', str(permutation), '--flow_coupling', '1', '--learnprior',
            '--epochs', str(epochs + 1), '--epochs_warmup', '2', '--epochs_full_valid', str(epochs),
            '--logdir', folder, '--seed', seed, '--no_progress', *overwrite(args)]


def overwrite(args: argparse.Namespace) -> list:
    """['--overwrite'] when compare_families.py was given it (every program names the flag so), else []."""
    return ['--overwrite'] if args.overwrite else []


def evaluate_command(folder: str) -> list:
    """`emerging evaluate` of a run's final weights.

    Args:
      folder: the run folder.

    Returns:
      The command line.
    """
    return [*EMERGING, 'evaluate', '--logdir', folder, '--n_dequant', str(N_DEQUANT),
            '--weights', 'latest']


def run_digits(args: argparse.Namespace, runner: Runner) -> dict:
    """Train and evaluate every digits model.

    Args:
      args: compare_families.py's flags.
      runner: the `Runner`.

    Returns:
      {model: `DigitsResult`} in `DIGITS_MODELS` order.

    Raises:
      RunFailed: naming the first run that failed or lacks a line.
    """
    results = {}
    for model in DIGITS_MODELS:
        title = digits_title(model, args)
        folder = os.path.join(args.out, 'digits', model)
        label, name = f'digits: train {title}', f'digits_{model}_train'
        out = runner.run(label, name, digits_command(model, args, folder))
        parameters = runner.parsed(label, name, parse_parameters_line, out)
        rate = runner.parsed(label, name, parse_images_per_second, out)
        train_bits = runner.parsed(label, name, lambda _: read_last_train_bits(os.path.join(folder, 'train.txt')),
                                   out)
        label, name = f'digits: evaluate {title}', f'digits_{model}_evaluate'
        out = runner.run(label, name, evaluate_command(folder))
        bits, se = runner.parsed(label, name, parse_bits_line, out)
        results[model] = DigitsResult(parameters, bits, se, train_bits, rate)
        print(f'    {parameters:,} parameters, test {bits:.4f} +- {se:.4f} bits/dim, train {train_bits:.4f}, '
              f'{rate:.0f} images/s', file=sys.stderr, flush=True)
    return results


def digits_table(results: dict, args: argparse.Namespace) -> str:
    """The digits part's markdown table.

    Args:
      results: {model: `DigitsResult`} as `run_digits` returns.
      args: compare_families.py's flags (for the heading).

    Returns:
      The markdown text.
    """
    scores = _finite([r.bits for r in results.values()])
    best = min(scores) if scores else None
    lines = [f'### 8x8 digits: {args.epochs} epoch{"s" * (args.epochs > 1)} of batch 64, seed {args.seed}', '',
             f'Test bits/dim of the final weights (`emerging evaluate --n_dequant {N_DEQUANT} --weights latest`, '
             '+- one standard error over the 300 test images; the lowest in bold); train bits/dim of the last '
             'epoch (train.txt); training images per second (the first epoch, which traces the graph, left out '
             'when there are more).', '',
             '| model | parameters | test bits/dim | train bits/dim | train images/s |', '|---|---|---|---|---|']
    for model, r in results.items():
        cell = f'{r.bits:.3f} +- {r.bits_se:.3f}'
        if best is not None and r.bits == best:
            cell = f'**{cell}**'
        lines.append(f'| {digits_title(model, args)} | {r.parameters:,} | {cell} | {r.train_bits:.3f} | '
                     f'{r.images_per_second:.0f} |')
    return '\n'.join(lines) + '\n'


def _write(path: str, text: str) -> None:
    with open(path, 'w') as f:
        f.write(text)
    print(text)
    print(f'written: {path}', file=sys.stderr, flush=True)


def main(argv=None, prog: str = PROG) -> int:
    """compare_families.py: run the parts, print and write the tables.

    Args:
      argv: the arguments (default: the process's).
      prog: the program's name in the usage line and error messages.

    Returns:
      The exit code: 0 done, 1 a run failed or lacks a line, 2 bad input (before any run).
    """
    args = build_parser(prog).parse_args(argv)
    try:
        datasets, families = check(args)
    except InputError as error:
        print(f'{prog}: error: {error}', file=sys.stderr)
        return 2
    args.out = os.path.abspath(args.out)  # the runs' cwd is the repository
    toy, digits = args.part in ('toy', 'all'), args.part in ('digits', 'all')
    total = toy * len(datasets) * len(families) + digits * 2 * len(DIGITS_MODELS)
    runner = Runner(total, os.path.join(args.out, 'logs'))
    os.makedirs(args.out, exist_ok=True)
    start = time.time()
    try:
        if toy:
            results = run_toy(args, datasets, families, runner)
            _write(os.path.join(args.out, 'compare_toy.md'), toy_tables(results, datasets, families, args))
            path = toy_picture(results, datasets, families, os.path.join(args.out, 'compare_toy.png'))
            print(f'written: {path}', file=sys.stderr, flush=True)
        if digits:
            _write(os.path.join(args.out, 'compare_digits.md'), digits_table(run_digits(args, runner), args))
    except RunFailed as error:
        print(f'{prog}: error: {error}', file=sys.stderr)
        return 1
    print(f'{total} runs in {time.time() - start:.0f} s', file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
