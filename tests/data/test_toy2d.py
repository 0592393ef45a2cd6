"""The 2-D toy distributions: samplers and densities agree, densities integrate to 1, energies normalise."""
import math

import numpy as np
import pytest
import tensorflow as tf

from emerging.data import toy2d


def grid(limit=6., n=301):
    step = 2. * limit / n
    axis = -limit + step * (np.arange(n) + 0.5)
    return np.stack(np.meshgrid(axis, axis, indexing='ij'), axis=-1).reshape(-1, 2), step


@pytest.mark.slow  # the quadrature densities on a grid
@pytest.mark.parametrize('name', toy2d.DATASETS)
def test_density_integrates_to_one_and_matches_the_samples(name):
    points, step = grid()
    log_p = toy2d.log_density(name, points)
    assert abs(np.exp(log_p).sum() * step * step - 1.) < 0.01
    # the samples fall where the density is: their histogram against the density's cell masses
    samples = toy2d.sample(name, 20000, np.random.default_rng(0))
    assert samples.shape == (20000, 2) and np.all(np.isfinite(toy2d.log_density(name, samples)))
    edges = np.linspace(-6., 6., 13)
    counts, _, _ = np.histogram2d(samples[:, 0], samples[:, 1], bins=[edges, edges])
    centres = (points[:, 0] // 1. + 6., points[:, 1] // 1. + 6.)
    expected = np.zeros([12, 12])
    np.add.at(expected, (np.clip(centres[0].astype(int), 0, 11), np.clip(centres[1].astype(int), 0, 11)),
              np.exp(log_p) * step * step)
    assert np.abs(counts / 20000. - expected).max() < 0.01


def test_entropies():
    h, se = toy2d.entropy('checkerboard')
    assert h == math.log(32.) and se == 0.
    # a Gaussian mixture with well separated components: log 8 + the entropy of one component
    h, se = toy2d.entropy('8gaussians')
    one = math.log(2. * math.pi * math.e * toy2d.NOISE['8gaussians'] ** 2)
    assert abs(h - (math.log(8.) + one)) < 3. * se + 1e-3
    for name in ('2spirals', 'rings', 'moons'):
        h, se = toy2d.entropy(name)
        assert np.isfinite(h) and 0. < se < 0.02


@pytest.mark.parametrize('name', toy2d.ENERGIES)
def test_energies_normalise_and_run_in_tensorflow(name):
    log_z = toy2d.log_normaliser(name)
    assert abs(toy2d.log_normaliser(name, n=801) - log_z) < 1e-3  # converged in the grid
    z = np.random.default_rng(1).normal(0., 3., [50, 2])
    np.testing.assert_allclose(toy2d.energy(name, tf.constant(z), xp=tf.experimental.numpy).numpy(),
                               toy2d.energy(name, z), rtol=1e-6, atol=1e-6)


def test_unknown_names_are_errors():
    with pytest.raises(ValueError, match='unknown data set'):
        toy2d.sample('spiral', 10, np.random.default_rng(0))
    with pytest.raises(ValueError, match='unknown data set'):
        toy2d.energy('u5', np.zeros([1, 2]))
