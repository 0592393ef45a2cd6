"""Small files in the layouts of the MAF tabular benchmark archive, written by the tests."""
import os

import numpy as np

ROWS = 300


def write_power(root, rng, columns=8):
    data = rng.normal(size=[ROWS, columns])
    data[:, [1, 3]] = 7.  # constant: the loader must drop columns 1 and 3 or normalising fails
    os.makedirs(os.path.join(root, 'power'), exist_ok=True)
    np.save(os.path.join(root, 'power', 'data.npy'), data)


def write_gas(root, rng):
    import pandas as pd
    sensors = rng.normal(size=[ROWS, 4])
    frame = pd.DataFrame({'Time': np.arange(ROWS, dtype=float), 'Meth': rng.normal(size=ROWS),
                          'Eth': rng.normal(size=ROWS), 'a': sensors[:, 0],
                          'b': 2. * sensors[:, 0] + 1e-3 * rng.normal(size=ROWS),  # correlated with a above 0.98
                          'c': sensors[:, 1], 'd': sensors[:, 2], 'e': sensors[:, 3]})
    os.makedirs(os.path.join(root, 'gas'), exist_ok=True)
    frame.to_pickle(os.path.join(root, 'gas', 'ethylene_CO.pickle'))


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
