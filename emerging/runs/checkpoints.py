"""Checkpoints with one commit point, checked before they are used.

A checkpoint folder (a run's `checkpoints/` and `best/`) holds checkpoints
`{name}.index` + `{name}.data-00000-of-00001`, each with
`{name}.manifest.json` (the size and SHA-256 of each of its files), and the
pointer file `checkpoint` (TensorFlow's format, so `tf.train.latest_checkpoint`
reads it) that names the kept checkpoints, the latest last.

`commit` writes a checkpoint's files and its manifest under a new name, then
replaces the pointer (written to a temporary file and renamed: one atomic
step, the commit point), then deletes what the pointer no longer names.
A kill at any instant therefore leaves the pointer naming complete
checkpoints only: the old ones, or the new one with them.  Files of a write
that was cut off are never named, and the next commit deletes them.

`verify(prefix)` refuses a checkpoint whose files are missing, truncated or
damaged, naming the file: by its manifest, and, for checkpoints of earlier
versions without one, by TensorFlow's own reading of its index.
`DiskFull` is what a write that ran out of space raises (`writing`), naming
the file; a commit cut off by it leaves the previous checkpoint the latest.
`check_matches(prefix, checkpoint, ...)` refuses a checkpoint whose
variables (names and shapes) are not those of the objects that will read it,
listing every difference.
"""
from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import json
import os
import re
import shutil
from typing import Callable, Optional, Sequence

from emerging.errors import InputError

POINTER = 'checkpoint'
MANIFEST = '.manifest.json'
INDEX, DATA = '.index', '.data-00000-of-00001'
# what follows a checkpoint's name in its files' names (TensorFlow's own temporary folder included)
_SUFFIX = re.compile(r'(\.index|\.data-\d{5}-of-\d{5}|\.manifest\.json|\.tmp.*|_temp)$')
# longest pointer file and manifest read: a few hundred bytes when written, so this only stops a runaway read
MAX_SMALL_FILE = 2 ** 20
NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
NO_SPACE_MESSAGES = ('No space left on device', 'Disk quota exceeded')


class DiskFull(Exception):
    """A write ran out of space on its device (or its quota).

    Args:
      path: the file being written.
    """

    def __init__(self, path: str):
        self.path = path
        super().__init__(f'no space left on device writing {path}')


def is_disk_full(error: BaseException) -> bool:
    """Whether an exception says the device (or the quota) is full: an OSError with ENOSPC / EDQUOT, or a
    TensorFlow error (ResourceExhaustedError, ...) whose message says so.

    Args:
      error: the exception.

    Returns:
      True when it is a full disk.
    """
    if isinstance(error, DiskFull):
        return True
    if isinstance(error, OSError) and error.errno in NO_SPACE_ERRNOS:
        return True
    return any(text in str(error) for text in NO_SPACE_MESSAGES)


@contextlib.contextmanager
def writing(path: str):
    """Inside the block, a write that finds the disk full raises `DiskFull(path)`.

    Args:
      path: the file (or checkpoint prefix) the block writes.
    """
    try:
        yield
    except DiskFull:
        raise
    except Exception as error:  # OSError from Python, several TensorFlow errors from its writers
        if is_disk_full(error):
            raise DiskFull(path) from error
        raise


def atomic_write(path: str, text: str) -> None:
    """Write `text` to `path` through a temporary file and one rename, flushed to disk first.

    Args:
      path: the file to write.
      text: its content.
    """
    tmp = f'{path}.tmp{os.getpid()}'
    with writing(path):
        try:
            with open(tmp, 'w') as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
        except OSError:
            _remove_quietly(tmp)
            raise
        os.replace(tmp, path)


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass  # nothing was written, or the folder is gone


def _digest(path: str) -> str:
    sha = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            sha.update(block)
    return sha.hexdigest()


def checkpoint_stem(filename: str) -> str:
    """The checkpoint name a file of a checkpoint folder belongs to ('ckpt-3.index' -> 'ckpt-3').

    Args:
      filename: a file name (no folder).

    Returns:
      The name without its checkpoint suffix (the file name itself for other files).
    """
    return _SUFFIX.sub('', filename)


def _checkpoint_files(prefix: str) -> list:
    return [prefix + INDEX] + sorted(glob.glob(glob.escape(prefix) + '.data-*-of-*'))


def committed(folder: str) -> list:
    """The checkpoint names the folder's pointer file lists, oldest first ([] without one).

    Args:
      folder: a checkpoint folder.

    Returns:
      The names (file names without their suffixes), the latest last.

    Raises:
      InputError: naming the pointer file when it cannot be read.
    """
    path = os.path.join(folder, POINTER)
    if not os.path.exists(path):
        return []
    text = _read_small_text(path, 'a checkpoint pointer')
    names = re.findall(r'^all_model_checkpoint_paths:\s*"(.*)"\s*$', text, re.M)
    latest = re.findall(r'^model_checkpoint_path:\s*"(.*)"\s*$', text, re.M)
    if not latest:
        raise InputError(f'{path} names no checkpoint (model_checkpoint_path is missing): not a checkpoint pointer')
    names = [os.path.basename(name) for name in names if os.path.basename(name) != os.path.basename(latest[0])]
    return names + [os.path.basename(latest[0])]


def _read_small_text(path: str, what: str) -> str:
    """The UTF-8 text of a small file this module writes, or an InputError naming it."""
    if os.path.isdir(path):
        raise InputError(f'{path} is a folder, not {what}')
    try:
        with open(path, 'rb') as f:
            raw = f.read(MAX_SMALL_FILE + 1)
    except OSError as error:
        raise InputError(f'cannot read {path}: {error.strerror}') from None
    if len(raw) > MAX_SMALL_FILE:
        raise InputError(f'{path} is longer than {MAX_SMALL_FILE} bytes: not {what}')
    try:
        return raw.decode('utf-8')
    except UnicodeDecodeError as error:
        raise InputError(f'{path} is not UTF-8 text ({error.reason} at byte {error.start}): not {what}') from None


def latest(folder: str) -> Optional[str]:
    """The prefix of the latest committed checkpoint in `folder`, or None.

    Args:
      folder: a checkpoint folder.

    Returns:
      The checkpoint prefix, or None when the folder has no pointer file.
    """
    names = committed(folder)
    return os.path.join(folder, names[-1]) if names else None


def commit(checkpoint, folder: str, name: str, keep: int = 2,
           on_delete: Optional[Callable[[str], None]] = None) -> str:
    """Write `checkpoint` as `folder/name` and make it the latest (see the module docstring).

    Args:
      checkpoint: a `tf.train.Checkpoint`.
      folder: the checkpoint folder (created when missing).
      name: the new checkpoint's name; must not be one the pointer lists.
      keep: how many committed checkpoints to keep, the new one included.
      on_delete: called with each name the pointer stops listing, after its files are deleted.

    Returns:
      The new checkpoint's prefix.
    """
    os.makedirs(folder, exist_ok=True)
    before = committed(folder)
    if name in before:
        raise ValueError(f'{os.path.join(folder, name)} is committed already: a commit needs a new name')
    prefix = os.path.join(folder, name)
    with writing(prefix):
        checkpoint.write(prefix)
    write_manifest(prefix)
    kept = (before + [name])[-keep:]
    atomic_write(os.path.join(folder, POINTER),
                 f'model_checkpoint_path: "{name}"\n'
                 + ''.join(f'all_model_checkpoint_paths: "{n}"\n' for n in kept))
    family = name.split('-')[0]
    for path in glob.glob(os.path.join(glob.escape(folder), '*')):
        base = os.path.basename(path)
        stem = checkpoint_stem(base)
        if base.startswith(POINTER + '.tmp') or (stem.split('-')[0] == family and stem not in kept):
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    for dropped in before:
        if dropped not in kept and on_delete is not None:
            on_delete(dropped)
    return prefix


def write_manifest(prefix: str) -> None:
    """Write {prefix}.manifest.json: the size and SHA-256 of each file of the checkpoint at `prefix`.

    Args:
      prefix: a checkpoint prefix just written.
    """
    manifest = {os.path.basename(path): {'bytes': os.path.getsize(path), 'sha256': _digest(path)}
                for path in _checkpoint_files(prefix)}
    atomic_write(prefix + MANIFEST, json.dumps(manifest, indent=1))


def _read_manifest(prefix: str) -> dict:
    """{file name: (bytes, sha256)} of a checkpoint's manifest, each a file of that checkpoint."""
    path = prefix + MANIFEST
    try:
        manifest = json.loads(_read_small_text(path, "a checkpoint's manifest"))
        records = {name: (int(entry['bytes']), str(entry['sha256'])) for name, entry in manifest.items()}
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError, RecursionError) as error:
        raise InputError(f'{path} is damaged: {type(error).__name__}: {str(error)[:200]}') from None
    stem = os.path.basename(prefix)
    for name in records:  # a name elsewhere (a path, another checkpoint's file) is never opened
        if os.path.basename(name) != name or checkpoint_stem(name) != stem:
            raise InputError(f'{path} is damaged: it lists {name[:100]!r}, not a file of checkpoint {stem}')
    if os.path.basename(prefix + INDEX) not in records:
        raise InputError(f'{path} is damaged: it does not list {stem + INDEX}')
    return records


def verify(prefix: str) -> None:
    """Refuse a checkpoint whose files are missing, truncated or damaged.

    Args:
      prefix: the checkpoint prefix.

    Raises:
      InputError: naming the file and what is wrong with it.
    """
    if not os.path.exists(prefix + INDEX):
        raise InputError(f'no checkpoint at {prefix}: {prefix + INDEX} does not exist')
    manifest_path = prefix + MANIFEST
    if os.path.exists(manifest_path):
        records = _read_manifest(prefix)
        folder = os.path.dirname(prefix)
        for name, (size, digest) in records.items():
            path = os.path.join(folder, name)
            if not os.path.isfile(path):
                raise InputError(f'checkpoint {prefix} is incomplete: {path} is '
                                 f'{"not a file" if os.path.exists(path) else "missing"}')
            if os.path.getsize(path) != size:
                raise InputError(f'{path} is truncated or damaged: {os.path.getsize(path)} bytes, '
                                 f'{size} when it was written')
            if _digest(path) != digest:
                raise InputError(f'{path} is damaged: its SHA-256 differs from the one recorded when it was '
                                 f'written ({os.path.basename(manifest_path)})')
        return
    import tensorflow as tf
    try:  # without a manifest, reading every tensor makes TensorFlow check each one's CRC32C
        reader = tf.train.load_checkpoint(prefix)
        for key, dtype in reader.get_variable_to_dtype_map().items():
            if dtype != tf.variant:  # an iterator's state reads only into its iterator (restoring checks it)
                reader.get_tensor(key)
    except Exception as error:  # TensorFlow raises several kinds; all mean "cannot be read"
        message = str(error).splitlines()[0] if str(error) else ''
        raise InputError(f'cannot read checkpoint {prefix}: {type(error).__name__}: {message}') from None


def _variables_by_path(checkpoint) -> dict:
    """{checkpoint key the objects would be written under: variable} of every variable of a checkpoint's
    objects."""
    import tensorflow as tf
    from tensorflow.python.checkpoint import graph_view, save_util
    tensors = save_util.serialize_graph_view(graph_view.ObjectGraphView(checkpoint))[0]
    return {key: trackable for trackable, keys in tensors.items() if isinstance(trackable, tf.Variable)
            for key in keys}


def _stored_keys_of(checkpoint, reader) -> dict:
    """{variable ref: the key it is stored under in the checkpoint `reader` reads}, by matching the
    objects' graph against the checkpoint's object graph by child names from the root, as a restore does
    (keys are the paths the writer saw first; the same object can be reached by several)."""
    from tensorflow.core.protobuf import trackable_object_graph_pb2
    from tensorflow.python.checkpoint import graph_view
    graph = trackable_object_graph_pb2.TrackableObjectGraph.FromString(
        reader.get_tensor('_CHECKPOINTABLE_OBJECT_GRAPH'))
    view = graph_view.ObjectGraphView(checkpoint)
    keys, queue, seen = {}, [(checkpoint, 0)], {0}
    while queue:
        obj, node_id = queue.pop()
        node = graph.nodes[node_id]
        keys.update({obj.ref(): attribute.checkpoint_key for attribute in node.attributes
                     if attribute.name == 'VARIABLE_VALUE' and hasattr(obj, 'ref')})
        children = {child.name: child.ref for child in view.list_children(obj)}
        for child in node.children:
            if child.local_name in children and child.node_id not in seen:
                seen.add(child.node_id)
                queue.append((children[child.local_name], child.node_id))
    return keys


def check_matches(prefix: str, checkpoint, roots: Sequence[str], described_by: str,
                  subset_roots: Sequence[str] = ()) -> None:
    """Refuse a checkpoint whose variables under `roots` are not those of the objects that will read it.

    Variables are matched as a restore matches them (by the names on the way from the root); each
    difference is listed by name: a variable the checkpoint lacks, one it holds that the objects do not,
    and one of another shape.

    Args:
      prefix: the checkpoint prefix (verified first).
      checkpoint: a `tf.train.Checkpoint` over the objects to read into.
      roots: the checkpoint's top-level names that must match ('model', 'optimizer', ...); a root other than
        'model' that the checkpoint does not hold at all is not compared (weights without an optimiser).
      described_by: what describes those objects, for the message ('the model of RUN/config.json').
      subset_roots: those of `roots` whose objects read only part of what the checkpoint holds there (a
        Polyak average out of a whole optimiser): variables the objects lack are not differences.

    Raises:
      InputError: listing every difference.
    """
    import tensorflow as tf
    from tensorflow.python.checkpoint import graph_view
    verify(prefix)
    reader = tf.train.load_checkpoint(prefix)
    stored_shapes = reader.get_variable_to_shape_map()
    stored_keys = _stored_keys_of(checkpoint, reader)
    objects = {child.name: child.ref for child in graph_view.ObjectGraphView(checkpoint).list_children(checkpoint)}
    problems = []
    for root in roots:
        theirs = {key for key in stored_shapes if key.split('/')[0] == root}
        if root not in objects or (not theirs and root != 'model'):
            continue
        # every variable the object under `root` reaches (an optimiser reaches the model's weights too)
        mine = _variables_by_path(tf.train.Checkpoint(**{root: objects[root]}))
        matched = set()
        for path, variable in sorted(mine.items()):
            key = stored_keys.get(variable.ref())
            if key is None or key not in stored_shapes:
                problems.append(f'{path}: missing from the checkpoint')
                continue
            matched.add(key)
            if list(stored_shapes[key]) != variable.shape.as_list():
                problems.append(f'{path}: shape {list(stored_shapes[key])} in the checkpoint, '
                                f'{variable.shape.as_list()} in the model')
        if root not in subset_roots:
            problems += [f'{key}: in the checkpoint, not in the model' for key in sorted(theirs - matched)]
    if problems:
        shown = problems[:20] + ([f'... and {len(problems) - 20} more'] if len(problems) > 20 else [])
        raise InputError(f'checkpoint {prefix} does not fit {described_by} ({len(problems)} differences):\n  '
                         + '\n  '.join(shown))
