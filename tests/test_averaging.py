"""The Polyak average shared by the optimiser, load_run and the tabular benchmarks."""
import numpy as np
import pytest
import tensorflow as tf

from emerging.averaging import PolyakAverage


def test_polyak_average_is_debiased_and_swaps_back():
    w = tf.Variable([0., 0.])
    average = PolyakAverage([w], decay=0.5)
    average.swap_polyak()  # before any update: the weights themselves
    np.testing.assert_array_equal(w.numpy(), [0., 0.])
    average.swap_polyak()
    for value in ([2., 4.], [4., 8.]):
        w.assign(value)
        average.update()
    average.swap_polyak()
    # biased = 0.5 (0.5 * 0 + 0.5 * 2) + 0.5 * 4 = 2.5, debiased by 1 - 0.25: 10 / 3
    np.testing.assert_allclose(w.numpy(), [10. / 3., 20. / 3.], rtol=1e-6)
    average.swap_polyak()
    np.testing.assert_array_equal(w.numpy(), [4., 8.])
    with pytest.raises(ValueError, match='Polyak decay'):
        PolyakAverage([w], decay=1.)
