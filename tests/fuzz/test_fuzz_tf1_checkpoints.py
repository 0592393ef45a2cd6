"""Fuzzing the TF1 importer's checkpoint check (emerging.runs.tf_checkpoint_index.check_tf1_checkpoint).

A small checkpoint as the original's tf.compat.v1.train.Saver writes it (a few tensors named as the original's,
float32 and int32) is mutated a file at a time: its index (kind `tf1_checkpoint_index`) and its data file
(`tf1_checkpoint_data`), bytes and whole files (missing, empty, another checkpoint's, a second shard).  Byte
mutations of the index rarely pass its blocks' checksums, so the index is also rewritten with its entries'
fields changed (shapes, offsets, sizes, dtypes, shards, the header) under valid checksums: what TensorFlow's
reader then parses and allocates.  Only the reading runs inside the loops: no model is built.

The index is a LevelDB table (https://github.com/google/leveldb/blob/main/doc/table_format.md): data blocks of
(key, value) entries, an index block pointing at them, a 48-byte footer; each block is followed by a type byte
and the masked CRC32C of both.  Key "" holds the BundleHeaderProto, every other key a tensor's BundleEntryProto.
"""
import os
import struct

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given
from hypothesis import strategies as st
from tensorflow.core.protobuf import tensor_bundle_pb2

from emerging.errors import InputError
from emerging.runs.tf_checkpoint_index import check_tf1_checkpoint
from tests.fuzz.contract import FUZZ, holds, mutated, regression_files

DATA = '.data-00000-of-00001'
TABLE_MAGIC = 0xdb4775248b80fb57
FOOTER = 48
# the fields of an index entry changed under valid checksums, and the values they take
ENTRY_CHANGES = {
    'dim': (0, 1, 13, -1, -2 ** 40, 2 ** 31, 2 ** 40, 2 ** 62),
    'extra_dim': (0, 1, 2 ** 20, 2 ** 40, -1),
    'offset': (1, 4, 2 ** 20, 2 ** 40, 2 ** 63 - 1, -1),
    'size': (0, 1, 3, 2 ** 20, 2 ** 40, 2 ** 63 - 1, -1),
    'dtype': (0, 2, 3, 7, 9, 20, 21, 99),
    'shard_id': (1, 2, 2 ** 30, -1),
    'crc32c': (0, 1, 2 ** 32 - 1),
}
HEADER_CHANGES = {'num_shards': (0, 2, 2 ** 30, -1), 'endianness': (1, 7), 'min_consumer': (10 ** 6,),
                  'producer': (-1, 0)}


# ---- the LevelDB table of an index ---------------------------------------------------------------------
def _crc32c_table():
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
        table.append(crc)
    return table


CRC32C_TABLE = _crc32c_table()


def masked_crc32c(data: bytes) -> int:
    """LevelDB's masked CRC32C (Castagnoli) of `data`."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + 0xa282ead8) & 0xFFFFFFFF


def varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def read_varint(buffer: bytes, at: int) -> tuple:
    value = shift = 0
    while True:
        byte = buffer[at]
        value, shift, at = value | (byte & 0x7F) << shift, shift + 7, at + 1
        if not byte & 0x80:
            return value, at


def block_entries(table: bytes, offset: int, size: int) -> list:
    """[(key, value)] of the block at `offset`."""
    contents = table[offset:offset + size]
    restarts = struct.unpack('<I', contents[-4:])[0]
    end, at, key, entries = len(contents) - 4 * (restarts + 1), 0, b'', []
    while at < end:
        shared, at = read_varint(contents, at)
        unshared, at = read_varint(contents, at)
        length, at = read_varint(contents, at)
        key = key[:shared] + contents[at:at + unshared]
        entries.append((key, contents[at + unshared:at + unshared + length]))
        at += unshared + length
    return entries


def index_entries(table: bytes) -> list:
    """[(key, value)] of every data block of a table, in order."""
    footer = table[-FOOTER:]
    _, at = read_varint(footer, read_varint(footer, 0)[1])
    index_offset, at = read_varint(footer, at)
    index_size, _ = read_varint(footer, at)
    entries = []
    for _, handle in block_entries(table, index_offset, index_size):
        offset, at = read_varint(handle, 0)
        entries += block_entries(table, offset, read_varint(handle, at)[0])
    return entries


def block(entries: list) -> bytes:
    """A block of `entries` (each a restart point), with its type byte and masked CRC32C."""
    contents, restarts = bytearray(), []
    for key, value in entries:
        restarts.append(len(contents))
        contents += varint(0) + varint(len(key)) + varint(len(value)) + key + value
    contents += b''.join(struct.pack('<I', r) for r in restarts or [0]) + struct.pack('<I', len(restarts or [0]))
    return bytes(contents) + b'\x00' + struct.pack('<I', masked_crc32c(bytes(contents) + b'\x00'))


def table_file(entries: list) -> bytes:
    """A LevelDB table of the sorted `entries`: one data block, its index, an empty meta index, the footer."""
    data = block(entries)
    index = block([(entries[-1][0], varint(0) + varint(len(data) - 5))])
    meta = block([])
    handles = varint(len(data) + len(index)) + varint(len(meta) - 5) + varint(len(data)) + varint(len(index) - 5)
    return data + index + meta + handles.ljust(40, b'\x00') + struct.pack('<Q', TABLE_MAGIC)


def changed_entry(value: bytes, field: str, new) -> bytes:
    """A BundleEntryProto with one field changed."""
    entry = tensor_bundle_pb2.BundleEntryProto.FromString(value)
    if field == 'dim':
        entry.shape.dim[0].size = new
    elif field == 'extra_dim':
        entry.shape.dim.add(size=new)
    else:
        setattr(entry, field, new)
    return entry.SerializeToString()


def changed_header(value: bytes, field: str, new) -> bytes:
    """A BundleHeaderProto with one field (or one of its version's) changed."""
    header = tensor_bundle_pb2.BundleHeaderProto.FromString(value)
    setattr(header.version if field in ('min_consumer', 'producer') else header, field, new)
    return header.SerializeToString()


def tensors(scale=1.):
    """{name: value} of a small checkpoint of the original's (its values fixed, so its files are too)."""
    return {'model/0/0/actnorm_center/b': np.linspace(-1., 1., 12, dtype=np.float32).reshape(1, 1, 1, 12) * scale,
            'model/0/0/invconv/W': np.eye(12, dtype=np.float32) * scale,
            'model/0/0/shuffle/indices': np.arange(12, dtype=np.int32)[::-1].copy(),
            'model/prior/p/logs': np.full([1, 24], 0.5 * scale, np.float32)}


def write(prefix, values):
    """Write `values` as a TF1 checkpoint at `prefix` (tf.compat.v1.train.Saver); returns the prefix."""
    with tf.Graph().as_default():
        variables = [tf.compat.v1.Variable(value, name=name) for name, value in values.items()]
        saver = tf.compat.v1.train.Saver(variables)
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            return saver.save(session, str(prefix), write_meta_graph=False)


@pytest.fixture(scope='module')
def valid(tmp_path_factory):
    """(prefix, {suffix: bytes}) of the valid checkpoint, and the bytes of another one (other values)."""
    prefix = write(tmp_path_factory.mktemp('tf1') / 'model.ckpt', tensors())
    other = write(tmp_path_factory.mktemp('tf1_other') / 'model.ckpt', tensors(scale=2.))
    files = {suffix: open(prefix + suffix, 'rb').read() for suffix in ('.index', DATA)}
    return prefix, files, open(other + DATA, 'rb').read()


def placed(folder, files):
    """Write {suffix: bytes or None (left out)} as the files of the checkpoint folder/model.ckpt; its prefix."""
    prefix = os.path.join(folder, 'model.ckpt')
    for suffix in ('.index', DATA):
        if os.path.exists(prefix + suffix):
            os.remove(prefix + suffix)
    for suffix, data in files.items():
        if data is not None:
            with open(prefix + suffix, 'wb') as f:
                f.write(data)
    return prefix


def test_the_valid_checkpoint_reads(valid):
    prefix, _, _ = valid
    assert check_tf1_checkpoint(prefix) == {name: list(value.shape) for name, value in tensors().items()}


def test_the_rewritten_index_is_the_same_checkpoint(valid, tmp_path):
    """The table writer above writes an index TensorFlow reads as the one it wrote."""
    _, files, _ = valid
    entries = index_entries(files['.index'])
    assert [key for key, _ in entries][0] == b'' and len(entries) == len(tensors()) + 1
    rewritten = table_file(entries)
    assert rewritten != files['.index']
    assert check_tf1_checkpoint(placed(tmp_path, {**files, '.index': rewritten})) == check_tf1_checkpoint(
        placed(tmp_path, files))


@FUZZ
@given(draw=st.data())
def test_mutated_index(valid, tmp_path, draw):
    _, files, _ = valid
    data = draw.draw(mutated(files['.index']))
    holds('tf1_checkpoint_index', data, check_tf1_checkpoint, placed(tmp_path, {**files, '.index': data}))


@FUZZ
@given(draw=st.data())
def test_index_fields_changed(valid, tmp_path, draw):
    _, files, _ = valid
    entries = index_entries(files['.index'])
    for _ in range(draw.draw(st.integers(1, 3))):
        at = draw.draw(st.integers(0, len(entries) - 1))
        key, value = entries[at]
        if key:
            field = draw.draw(st.sampled_from(sorted(ENTRY_CHANGES)))
            value = changed_entry(value, field, draw.draw(st.sampled_from(ENTRY_CHANGES[field])))
        else:
            field = draw.draw(st.sampled_from(sorted(HEADER_CHANGES)))
            value = changed_header(value, field, draw.draw(st.sampled_from(HEADER_CHANGES[field])))
        entries[at] = (key, value)
    data = table_file(entries)
    holds('tf1_checkpoint_index', data, check_tf1_checkpoint, placed(tmp_path, {**files, '.index': data}))


@FUZZ
@given(draw=st.data())
def test_mutated_data(valid, tmp_path, draw):
    _, files, _ = valid
    data = draw.draw(mutated(files[DATA]))
    holds('tf1_checkpoint_data', data, check_tf1_checkpoint, placed(tmp_path, {**files, DATA: data}))


@pytest.mark.parametrize('change,message', [
    ({'.index': None}, 'model.ckpt.index is missing'),
    ({DATA: None}, f'model.ckpt{DATA} is missing'),
    ({'.index': b''}, 'model.ckpt.index is damaged'),
    ({DATA: b''}, f'model.ckpt{DATA} is truncated'),
    ({DATA: None, '.data-00000-of-00002': b''}, 'model.ckpt.data-00001-of-00002 missing'),
    ({'.data-00001-of-00002': b''}, 'disagree on their number'),
])
def test_files_missing_empty_or_extra(valid, tmp_path, change, message):
    _, files, _ = valid
    with pytest.raises(InputError, match=message.replace('.', r'\.')):
        check_tf1_checkpoint(placed(tmp_path, {**files, **change}))


def test_another_checkpoints_data_fails_its_checksum(valid, tmp_path):
    _, files, other = valid
    assert len(other) == len(files[DATA]) and other != files[DATA]
    with pytest.raises(InputError, match=f'model.ckpt{DATA} fails its checksum'):
        check_tf1_checkpoint(placed(tmp_path, {**files, DATA: other}))


@pytest.mark.parametrize('data', regression_files('tf1_checkpoint_index'))
def test_kept_index_inputs(valid, tmp_path, data):
    _, files, _ = valid
    holds('tf1_checkpoint_index', data, check_tf1_checkpoint, placed(tmp_path, {**files, '.index': data}))


@pytest.mark.parametrize('data', regression_files('tf1_checkpoint_data'))
def test_kept_data_inputs(valid, tmp_path, data):
    _, files, _ = valid
    holds('tf1_checkpoint_data', data, check_tf1_checkpoint, placed(tmp_path, {**files, DATA: data}))


def test_a_checkpoint_in_the_current_format_is_read_too(tmp_path):
    """tf.train.Checkpoint's files (the same bundle format) pass the same check."""
    prefix = tf.train.Checkpoint(v=tf.Variable(np.arange(6, dtype=np.float32))).write(str(tmp_path / 'ckpt'))
    assert list(check_tf1_checkpoint(prefix)['v/.ATTRIBUTES/VARIABLE_VALUE']) == [6]
