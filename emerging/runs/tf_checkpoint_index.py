"""Checking a TensorFlow checkpoint's files before TensorFlow reads them: the tensor bundle's index parsed here.

A checkpoint PREFIX is PREFIX.index and its data files PREFIX.data-0000i-of-0000N.  The index is a LevelDB table
(github.com/google/leveldb, doc/table_format.md): data blocks of (key, value) entries with their restart points,
an index block pointing at them, and a 48-byte footer of two block handles and the magic number.  Key "" holds
the BundleHeaderProto (the number of data files, the byte order), every other key a tensor's BundleEntryProto
(dtype, shape, data file, byte range, CRC32C).  The table is read here, in pure Python, because TensorFlow's
reader aborts the whole process, with no exception to catch, on some damaged indexes (a negative dimension, an
element count past 2^63): nothing in an index reaches it unchecked.

`check_tf1_checkpoint(path)` checks the data files present, the index's structure (blocks, restart points, keys
in order, the header) and every entry's shape, dtype, data file and byte range within the data files; only then
does TensorFlow read every tensor (checking each one's CRC32C).  A fault is an `InputError` naming the file:
"missing", "truncated", "fails its checksum", "damaged".  `checkpoint_reader(path)` is TensorFlow's reader of a
checkpoint, its failure an `InputError` too.
"""
import glob
import math
import os
import re

import tensorflow as tf

from emerging.errors import InputError

_SHARD = re.compile(r'\.data-(\d{5})-of-(\d{5})$')
# the table's footer, the trailer after each block (a type byte and a CRC), the magic number ending the footer
_FOOTER, _TRAILER, _MAGIC = 48, 5, 0xdb4775248b80fb57


class _Damaged(ValueError):
    """The index does not have the structure TensorFlow's reader expects (the message says where)."""


def _varint(buffer: bytes, at: int, end: int) -> tuple:
    """(value, position after it) of the varint at `at`, which must end before `end`."""
    value = 0
    for shift in range(0, 64, 7):
        if at >= end:
            raise _Damaged('a number runs past the end of its block')
        byte = buffer[at]
        value, at = value | (byte & 0x7F) << shift, at + 1
        if not byte & 0x80:
            return value, at
    raise _Damaged('a number longer than 64 bits')


def _handle(buffer: bytes, at: int, end: int, table_end: int) -> tuple:
    """((offset, size) of the block a handle at `at` points to, position after the handle)."""
    offset, at = _varint(buffer, at, end)
    size, at = _varint(buffer, at, end)
    if offset + size + _TRAILER > table_end:
        raise _Damaged(f'a block at bytes {offset:,}..{offset + size:,} reaches past the table')
    return (offset, size), at


def _block(table: bytes, handle: tuple) -> list:
    """[(key, value)] of a block, which must be as a LevelDB writer makes it: every restart point at an entry
    that shares no prefix, so that TensorFlow's binary search over them meets the entries read here."""
    offset, size = handle
    if size < 4:
        raise _Damaged(f'the block at byte {offset:,} is too short')
    block = table[offset:offset + size]
    n_restarts = int.from_bytes(block[-4:], 'little')
    end = size - 4 * (n_restarts + 1)
    if n_restarts < 1 or end < 0:
        raise _Damaged(f'the block at byte {offset:,} has {n_restarts:,} restart points')
    restarts = [int.from_bytes(block[end + 4 * i:end + 4 * i + 4], 'little') for i in range(n_restarts)]
    entries, starts, at, key = [], {}, 0, b''
    while at < end:
        start = at
        shared, at = _varint(block, at, end)
        unshared, at = _varint(block, at, end)
        length, at = _varint(block, at, end)
        if shared > len(key) or at + unshared + length > end:
            raise _Damaged(f'an entry of the block at byte {offset:,} reaches past its end')
        key = key[:shared] + block[at:at + unshared]
        starts[start] = shared
        entries.append((key, block[at + unshared:at + unshared + length]))
        at += unshared + length
    if restarts != sorted(set(restarts)) or any(starts.get(r, 1) != 0 for r in restarts if r or entries):
        raise _Damaged(f'the restart points of the block at byte {offset:,} are not at its entries')
    return entries


def _index_entries(table: bytes) -> list:
    """[(key, value)] of every entry of an index, in order; its keys strictly increasing and its index block's
    keys separating its data blocks, as TensorFlow's reader relies on when it seeks."""
    if len(table) < _FOOTER or int.from_bytes(table[-8:], 'little') != _MAGIC:
        raise _Damaged('it does not end with the footer of a LevelDB table')
    table_end, footer = len(table) - _FOOTER, len(table) - _FOOTER
    _, at = _handle(table, footer, footer + 40, table_end)
    index_handle, _ = _handle(table, at, footer + 40, table_end)
    entries, previous = [], None
    for separator, value in _block(table, index_handle):
        handle, at = _handle(value, 0, len(value), table_end)
        block = _block(table, handle)
        if at != len(value) or not block or block[-1][0] > separator:
            raise _Damaged('its index block does not point at its data blocks in order')
        for key, entry in block:
            if previous is not None and key <= previous:
                raise _Damaged(f'its keys are not in order at {key!r}')
            previous = key
            entries.append((key, entry))
    return entries


def _data_files(path: str) -> list:
    """The data files of the checkpoint `path` (PREFIX.data-0000i-of-0000N, i < N), every one present."""
    found = sorted(glob.glob(glob.escape(path) + '.data-*-of-*'))
    counts = {int(match.group(2)) for match in map(_SHARD.search, found) if match}
    if not counts:
        raise InputError(f'{path}.data-00000-of-00001 is missing: a TF1 checkpoint is PREFIX.index with its data '
                         f'files PREFIX.data-0000i-of-0000N')
    if len(counts) > 1:
        raise InputError(f'the data files of {path} disagree on their number: ' + ', '.join(found))
    n = counts.pop()
    expected = [f'{path}.data-{i:05d}-of-{n:05d}' for i in range(n)]
    missing = [name for name in expected if not os.path.isfile(name)]
    if missing:
        raise InputError(f'checkpoint {path} is incomplete: {", ".join(missing)} missing')
    return expected


def _entries(path: str, files: list) -> dict:
    """{tensor name: BundleEntryProto} of the index, each checked against the data files, or an InputError.

    TensorFlow's reader aborts the process on some indexes it parses (a negative dimension, an element count
    past 2^63): nothing it reads is given to it unchecked.
    """
    from google.protobuf.message import DecodeError
    from tensorflow.core.protobuf import tensor_bundle_pb2
    index = path + '.index'
    with open(index, 'rb') as f:
        table = f.read()
    try:
        entries = _index_entries(table)
        if not entries or entries[0][0] != b'':
            raise _Damaged('it has no header entry')
        header = tensor_bundle_pb2.BundleHeaderProto.FromString(entries[0][1])
        tensors = {key.decode(): tensor_bundle_pb2.BundleEntryProto.FromString(value) for key, value in entries[1:]}
    except (_Damaged, DecodeError, UnicodeDecodeError) as error:
        raise InputError(f'{index} is damaged: {error}') from None
    if header.num_shards != len(files) or header.endianness != header.LITTLE:
        raise InputError(f'{index} is damaged or of another machine: it names {header.num_shards} data file(s) '
                         f'({"little" if header.endianness == header.LITTLE else "big"}-endian), '
                         f'{len(files)} found')
    sizes = [os.path.getsize(name) for name in files]
    for name, entry in tensors.items():
        problem = _entry_problem(entry, sizes)
        if problem:
            data = files[entry.shard_id] if 0 <= entry.shard_id < len(files) else f'the data files of {path}'
            raise InputError(f'{data if "past the end" in problem else index} is '
                             f'{"truncated" if "past the end" in problem else "damaged"}: tensor {name} {problem}')
    return tensors


def _entry_problem(entry, sizes: list) -> str:
    """What is wrong with an index entry given the data files' sizes ('' when nothing)."""
    dims = [dim.size for dim in entry.shape.dim]
    if min(dims, default=0) < 0:
        return f'has a negative dimension {dims}'
    try:  # reference types are the values + 100 (DataType in types.proto): no tensor is stored as one
        dtype = tf.dtypes.as_dtype(entry.dtype if entry.dtype < 100 else -1)
    except TypeError:
        return f'has an unknown dtype {entry.dtype}'
    if not (dtype.size or dtype == tf.string):
        return f'has dtype {dtype.name}, which no checkpoint of weights holds'
    if not 0 <= entry.shard_id < len(sizes):
        return f'is in data file {entry.shard_id}, of {len(sizes)}'
    needed = math.prod(dims) * max(dtype.size, 1)
    if not entry.slices and (needed > entry.size if dtype == tf.string else needed != entry.size):
        return f'({dtype.name} {dims}) needs {needed:,} bytes, the index gives it {entry.size:,}'
    if entry.offset < 0 or entry.offset + entry.size > sizes[entry.shard_id]:
        return (f'lies at bytes {entry.offset:,}..{entry.offset + entry.size:,}, past the end of its data file '
                f'({sizes[entry.shard_id]:,} bytes)')
    if needed > sum(sizes):  # a partitioned variable's slices: all of them lie in the data files
        return f'({dtype.name} {dims}) needs {needed:,} bytes, more than the data files hold'
    return ''


def checkpoint_reader(path: str):
    """TensorFlow's reader of a checkpoint, or an InputError naming its index.

    Args:
      path: the checkpoint prefix.

    Returns:
      The `tf.train.CheckpointReader`.

    Raises:
      InputError: TensorFlow cannot read the index.
    """
    try:
        return tf.train.load_checkpoint(path)
    except Exception as error:  # TensorFlow raises several kinds; all mean "cannot be read"
        raise InputError(f'{path}.index is damaged: {_first_line(error)}') from None


def _first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return f'{type(error).__name__}: {lines[0] if lines else ""}'


def _read_tensor(reader, name: str, path: str, data: str) -> None:
    """Read one tensor (TensorFlow checks its CRC32C), or raise an InputError naming the file at fault."""
    try:
        reader.get_tensor(name)
    except IndexError:  # TensorFlow's "Read less bytes than requested"
        raise InputError(f'{data} is truncated: tensor {name} reaches past its end') from None
    except Exception as error:  # TensorFlow raises several kinds; all mean "cannot be read"
        message = _first_line(error)
        if 'Checksum does not match' in message:
            raise InputError(f'{data} fails its checksum: the bytes of tensor {name} are damaged') from None
        raise InputError(f'tensor {name} of {path} cannot be read ({data} or {path}.index is damaged): '
                         f'{message}') from None


def check_tf1_checkpoint(path: str) -> dict:
    """Refuse a TF1 checkpoint whose files are missing, truncated or damaged, before its values are used.

    Args:
      path: the checkpoint prefix (PREFIX.index and PREFIX.data-0000i-of-0000N exist).

    Returns:
      {tensor name: shape} of every tensor the checkpoint holds.

    Raises:
      InputError: naming the file and what is wrong with it: missing, truncated, failing its checksum, damaged.
    """
    if not os.path.isfile(path + '.index'):
        raise InputError(f'{path}.index is missing: --tf1_checkpoint must be the prefix of a TF1 checkpoint '
                         f'(PREFIX.index and PREFIX.data-00000-of-00001, e.g. logs/model_best_loss.ckpt)')
    files = _data_files(path)
    tensors = _entries(path, files)
    reader = checkpoint_reader(path)
    for name, entry in sorted(tensors.items()):
        _read_tensor(reader, name, path, files[entry.shard_id])
    return {name: [dim.size for dim in entry.shape.dim] for name, entry in tensors.items()}
