"""Small files in the layouts of the MAF tabular benchmark archive, written by the tests."""
import os

import numpy as np

ROWS = 300


def write_power(root, rng, columns=8):
    data = rng.normal(size=[ROWS, columns])
    data[:, [1, 3]] = 7.  # constant: the loader must drop columns 1 and 3 or normalising fails
    os.makedirs(os.path.join(root, 'power'), exist_ok=True)
    np.save(os.path.join(root, 'power', 'data.npy'), data)


def write_gas(root, rng, old_pandas=False):
    """ethylene_CO.pickle as this pandas writes it, or (`old_pandas`) as the archive's old pandas did."""
    frame = gas_frame(rng).sample(frac=1., random_state=0)  # the archive's rows are a sample: shuffled labels
    os.makedirs(os.path.join(root, 'gas'), exist_ok=True)
    path = os.path.join(root, 'gas', 'ethylene_CO.pickle')
    if old_pandas:
        with open(path, 'wb') as f:
            f.write(old_pandas_pickle(frame))
    else:
        frame.to_pickle(path)


def gas_frame(rng):
    """The GAS frame write_gas pickles: labels, then sensors of which b correlates with a above 0.98."""
    import pandas as pd
    sensors = rng.normal(size=[ROWS, 4])
    return pd.DataFrame({'Time': np.arange(ROWS, dtype=float), 'Meth': rng.normal(size=ROWS),
                         'Eth': rng.normal(size=ROWS), 'a': sensors[:, 0],
                         'b': 2. * sensors[:, 0] + 1e-3 * rng.normal(size=ROWS),
                         'c': sensors[:, 1], 'd': sensors[:, 2], 'e': sensors[:, 3]})


def old_pandas_pickle(frame):
    """`frame` (floats) pickled as pandas 0.19 under Python 2 did, as the MAF archive's ethylene_CO.pickle is:
    protocol 2, byte strings, NumPy's old module names, pandas' old class names, a shuffled Int64Index, the
    0.14.1 block manager state."""
    from tests.test_pickles import Opcodes as o
    columns = o.reduce(o.name('pandas.indexes.base', '_new_Index'), o.name('pandas.indexes.base', 'Index'),
                       o.dict((o.py2_str(b'data'), o.array(np.array(list(frame.columns), dtype=object))),
                              (o.py2_str(b'name'), b'N')))
    rows = o.reduce(o.name('pandas.indexes.base', '_new_Index'), o.name('pandas.indexes.numeric', 'Int64Index'),
                    o.dict((o.py2_str(b'data'), o.array(frame.index.to_numpy().astype('<i8'))),
                           (o.py2_str(b'name'), b'N')))
    values = o.array(frame.to_numpy().T.copy())
    places = o.reduce(o.name('__builtin__', 'slice'), o.int(0), o.int(frame.shape[1]), o.int(1))
    block = o.dict((o.py2_str(b'values'), values), (o.py2_str(b'mgr_locs'), places))
    state = o.tuple(o.list(columns, rows), o.list(values), o.list(columns),
                    o.dict((o.py2_str(b'0.14.1'), o.dict((o.py2_str(b'axes'), o.list(columns, rows)),
                                                         (o.py2_str(b'blocks'), o.list(block))))))
    manager = o.newobj(o.name('pandas.core.internals', 'BlockManager'), state)
    return o.pickle(o.newobj(o.name('pandas.core.frame', 'DataFrame'),
                             o.dict((o.py2_str(b'_data'), manager), (o.py2_str(b'_typ'), o.py2_str(b'dataframe')),
                                    (o.py2_str(b'_metadata'), o.list()))))


def write_hepmass(root, rng):
    """label, f0..f4, mass: f2 and mass take few values (dropped as discrete), half the rows background."""
    os.makedirs(os.path.join(root, 'hepmass'), exist_ok=True)
    for name, rows in (('1000_train.csv', ROWS), ('1000_test.csv', ROWS // 2)):
        label = np.arange(rows) % 2
        features = rng.normal(size=[rows, 5])
        features[:, 2] = rng.integers(0, 2, rows)
        mass = rng.choice([500., 750., 1000.], rows)
        table = np.column_stack([label, features, mass])
        np.savetxt(os.path.join(root, 'hepmass', name), table, delimiter=',', fmt='%.6f',
                   header='# label,f0,f1,f2,f3,f4,mass', comments='')


def write_miniboone(root, rng, columns=7):
    os.makedirs(os.path.join(root, 'miniboone'), exist_ok=True)
    np.save(os.path.join(root, 'miniboone', 'data.npy'), rng.normal(size=[ROWS, columns]) * 3. + 1.)


def write_bsds300(root, rng, parts=('train', 'validation', 'test')):
    import h5py
    os.makedirs(os.path.join(root, 'BSDS300'), exist_ok=True)
    with h5py.File(os.path.join(root, 'BSDS300', 'BSDS300.hdf5'), 'w') as file:
        for part, rows in zip(parts, (ROWS, 60, 80)):
            file.create_dataset(part, data=rng.uniform(-1., 1., [rows, 63]).astype(np.float32))


WRITERS = {'power': write_power, 'gas': write_gas, 'hepmass': write_hepmass, 'miniboone': write_miniboone,
           'bsds300': write_bsds300}


def write_all(root, seed=0):
    rng = np.random.default_rng(seed)
    for write in WRITERS.values():
        write(root, rng)
    return root
