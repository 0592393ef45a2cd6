"""Binary attributes of the training images, for `emerging manipulate`.

An attribute is a yes / no value per image of the ordered train split
(`emerging.data.images.ordered_split(config, 'train')`: image k of that order is row k).
The sources, chosen by `attribute_source`:

* class labels (no --attribute_file): attribute c is "label == c" against the
  rest; named by the class index ('3') or, for cifar10, by the class name
  ('airplane' ... 'truck').
* --attribute_file list_attr_celeba.txt: CelebA's layout.  Line 1: the count of
  images; line 2: the attribute names, separated by blanks; then one line per
  image: a file name and one value per attribute, 1 (has it) or -1 (has not).
* --attribute_file FILE.npy: an array [N, A] of 0 / 1 values (or booleans),
  with --attribute_names giving the A names, comma-separated.

Only the first n_examples rows are read.  A file that cannot be used (missing,
not UTF-8 text, a line of the wrong layout, a .npy that is not a 2-D array of
0 / 1 numbers or whose header does not match its size) is an InputError
naming it (and the line) before any image is encoded.
"""
import hashlib
import os

import numpy as np

from emerging.data.npy import read_npy
from emerging.errors import InputError

CLASS_NAMES = {'cifar10': ('airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck')}


class LabelAttributes:
    """Attribute c: the image's class label is c."""

    def __init__(self, problem, n_classes):
        self.problem, self.n_classes = problem, n_classes
        self.class_names = CLASS_NAMES.get(problem, tuple(str(c) for c in range(n_classes)))
        self.description = f'{problem} class labels'

    def canonical(self, name):
        """The attribute's name as saved ('0' -> 'airplane' for cifar10); an unknown name is an error."""
        if name in self.class_names:
            return name
        if name.isdigit() and int(name) < self.n_classes:
            return self.class_names[int(name)]
        shown = ', '.join(self.class_names) if self.n_classes <= 20 else f'0 .. {self.n_classes - 1}'
        raise InputError(f'--attributes: unknown attribute {name!r} of the {self.description}; known: {shown}')

    def identity(self, name):
        """What the attribute's values depend on, for deciding whether a saved dz still applies."""
        return {'source': self.description, 'label': self.class_names.index(name)}

    def check(self, name):
        pass  # the labels are only seen while encoding

    def values(self, name, labels, start):
        return np.asarray(labels) == self.class_names.index(name)


class TableAttributes:
    """Attributes read from a file: `table` is a bool array [rows, A] of the first rows of the file."""

    def __init__(self, path, names, table):
        self.path, self.names, self.table = path, list(names), table
        self.description = f'--attribute_file {path}'

    def canonical(self, name):
        if name not in self.names:
            raise InputError(f'--attributes: {name!r} is not in {self.path}; known: {", ".join(self.names)}')
        return name

    def identity(self, name):
        column = np.ascontiguousarray(self.table[:, self.names.index(name)], np.uint8)
        return {'source': os.path.abspath(self.path), 'values_sha256': hashlib.sha256(column.tobytes()).hexdigest()}

    def check(self, name):
        """Stop before any encoding when the rows read hold no positive or no negative."""
        column = self.table[:, self.names.index(name)]
        if column.all() or not column.any():
            raise InputError(f'attribute {name!r}: all of the first {len(column)} rows of {self.path} are '
                             f'{"positive" if column.all() else "negative"}: nothing to contrast')

    def values(self, name, labels, start):
        stop = start + len(labels)
        if stop > len(self.table):
            raise InputError(f'--attribute_file {self.path} has {len(self.table)} image rows, fewer than the '
                             f'training images used (at least {stop}): lower --n_examples')
        return self.table[start:stop, self.names.index(name)]


def attribute_source(problem, n_classes, attribute_file=None, attribute_names=None, n_examples=None):
    """The attribute source for these flags; n_classes: the problem's label count (None: no labels)."""
    if attribute_names is not None and (attribute_file is None or not attribute_file.endswith('.npy')):
        raise InputError('--attribute_names names the columns of a .npy --attribute_file; the CelebA text '
                         'layout names its own, and class labels are named by class')
    if attribute_file is None:
        if not n_classes:
            raise InputError(f'the {problem} data has no class labels: pass --attribute_file (e.g. CelebA\'s '
                             f'list_attr_celeba.txt)')
        return LabelAttributes(problem, n_classes)
    if not os.path.isfile(attribute_file):
        raise InputError(f'--attribute_file not found: {attribute_file}')
    if attribute_file.endswith('.npy'):
        return _npy(attribute_file, attribute_names, n_examples)
    return _celeba_text(attribute_file, n_examples)


def _npy(path, names, n_examples):
    array = read_npy(path, f'--attribute_file {path}')
    if array.ndim != 2 or array.dtype.kind not in 'biuf':
        raise InputError(f'--attribute_file {path} must be an array [N, A] of 0 / 1, got {array.dtype} of shape '
                         f'{list(array.shape)}')
    names = [n.strip() for n in (names or '').split(',') if n.strip()]
    if len(names) != array.shape[1]:
        raise InputError(f'--attribute_names must give the {array.shape[1]} column names of {path} '
                         f'(comma-separated), got {len(names)}')
    table = array[:n_examples]
    if not np.isin(table, (0, 1)).all():
        raise InputError(f'--attribute_file {path} must hold only 0 / 1 values')
    return TableAttributes(path, names, table.astype(bool))


def _celeba_text(path, n_examples):
    try:
        with open(path, 'rb') as f:
            return _celeba_rows(path, _text_lines(path, f), n_examples)
    except OSError as error:
        raise InputError(f'--attribute_file {path}: cannot be read ({error.strerror or error})') from None


def _text_lines(path, f):
    """(line number, text) of the lines of a binary file, each decoded as UTF-8 when it is reached."""
    for number, raw in enumerate(f, start=1):
        try:
            yield number, raw.decode('utf-8')
        except UnicodeDecodeError as error:
            raise InputError(f'--attribute_file {path}, line {number}: not UTF-8 text (byte {error.start} of the '
                             f'line): expected the list_attr_celeba.txt layout') from None


def _celeba_rows(path, lines, n_examples):
    """The CelebA layout's table from `lines` ((number, text) pairs): [rows, A] booleans, at most n_examples
    rows."""
    count, header = next(lines, (1, ''))[1].strip(), next(lines, (2, ''))[1].split()
    if not count.isdigit() or not header:
        raise InputError(f'--attribute_file {path} is not in the list_attr_celeba.txt layout: line 1 must be '
                         f'the image count and line 2 the attribute names')
    rows = []
    for number, line in lines:
        if n_examples is not None and len(rows) >= n_examples:
            break
        if not line.strip():
            continue
        values = line.split()[1:]
        if len(values) != len(header) or not set(values) <= {'1', '-1'}:
            raise InputError(f'--attribute_file {path}, line {number}: expected a file name and {len(header)} '
                             f'values 1 / -1, got {line.strip()[:200]!r}')
        rows.append([v == '1' for v in values])
    return TableAttributes(path, header, np.array(rows, bool).reshape(-1, len(header)))
