"""2-D toy densities with known distributions, and the energy potentials of Rezende & Mohamed (2015).

Data sets (`sample(name, n, rng)` -> float64 [n, 2], `log_density(name, x)` -> [n]):

* 8gaussians: an equal mixture of N(m_k, 0.5^2 / 2 I), m_k = 2 sqrt(2) (cos(k pi / 4), sin(k pi / 4));
* checkerboard: uniform on the 8 dark squares (side 2) of a 4 x 4 board on [-4, 4]^2, density 1/32 there;
* 2spirals: t = 3 pi sqrt(u), u ~ U(0, 1), the point s (-t cos t, t sin t) / 3 (s = +-1 with probability
  1/2) plus N(0, 0.1^2 I);
* rings: radius uniform among 0.8, 1.6, 2.4, 3.2, angle uniform, plus N(0, 0.08^2 I);
* moons: angle a ~ U(0, pi), the point (cos a, sin a) or (1 - cos a, 0.5 - sin a) (probability 1/2), centred by
  (-0.5, -0.25) and scaled by 2, plus N(0, 0.1^2 I).

The densities of the last three are the noise averaged over the curve parameter, a one-dimensional integral
computed by the midpoint rule on `QUADRATURE_POINTS` nodes (their error is far below the Monte Carlo error of an
entropy estimate).  `entropy(name)` is H = -E[log p(x)]: closed form for checkerboard (log 32), else the Monte
Carlo mean over `ENTROPY_SAMPLES` samples, returned with its standard error.

Energies u1..u4 (`energy(name, z)`), the target exp(-u(z) - sum_i max(|z_i| - 6, 0)^2): the penalty keeps
exp(-u) integrable where u does not grow (u2..u4 along z1), as the BNAF code does; `log_normaliser(name)` is
log of its integral by the midpoint rule on a 1201 x 1201 grid over [-9, 9]^2.
"""
import math

import numpy as np

DATASETS = ('8gaussians', 'checkerboard', '2spirals', 'rings', 'moons')
ENERGIES = ('u1', 'u2', 'u3', 'u4')
QUADRATURE_POINTS = 1000
ENTROPY_SAMPLES = 20000
RING_RADII = (0.8, 1.6, 2.4, 3.2)


def _check(name, names):
    if name not in names:
        raise ValueError(f'unknown data set {name!r}; allowed: {", ".join(names)}')


def _gaussian_centres():
    angles = np.arange(8) * np.pi / 4
    return 2. * math.sqrt(2.) * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def _spiral(u):
    t = 3. * np.pi * np.sqrt(u)
    return np.stack([-t * np.cos(t), t * np.sin(t)], axis=-1) / 3.


def _moon(a, lower):
    upper_arc = np.stack([np.cos(a), np.sin(a)], axis=-1)
    lower_arc = np.stack([1. - np.cos(a), 0.5 - np.sin(a)], axis=-1)
    return 2. * (np.where(lower[..., None], lower_arc, upper_arc) - np.array([0.5, 0.25]))


NOISE = {'8gaussians': 0.5 / math.sqrt(2.), '2spirals': 0.1, 'rings': 0.08, 'moons': 0.1}


def sample(name, n, rng):
    _check(name, DATASETS)
    if name == '8gaussians':
        return _gaussian_centres()[rng.integers(0, 8, n)] + rng.normal(0., NOISE[name], [n, 2])
    if name == 'checkerboard':
        x1 = rng.uniform(-4., 4., n)
        column = np.floor(x1 / 2.).astype(int)  # -2..1
        row = 2 * rng.integers(0, 2, n) + (column + 1) % 2  # the dark squares of this column: rows 0-3 from -4
        x2 = -4. + 2. * row + rng.uniform(0., 2., n)
        return np.stack([x1, x2], axis=1)
    if name == '2spirals':
        points = _spiral(rng.uniform(0., 1., n)) * rng.choice([-1., 1.], n)[:, None]
    elif name == 'rings':
        radius = np.asarray(RING_RADII)[rng.integers(0, len(RING_RADII), n)]
        angle = rng.uniform(0., 2. * np.pi, n)
        points = radius[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    else:
        points = _moon(rng.uniform(0., np.pi, n), rng.integers(0, 2, n).astype(bool))
    return points + rng.normal(0., NOISE[name], [n, 2])


def _log_mean_gaussian(x, curve, sigma):
    """log of the mean over the curve's nodes [m, 2] of N(x; node, sigma^2 I), for x [n, 2]."""
    squared = np.sum((x[:, None, :] - curve[None, :, :]) ** 2, axis=-1)
    log_kernel = -squared / (2. * sigma ** 2) - math.log(2. * math.pi * sigma ** 2)
    peak = log_kernel.max(axis=1, keepdims=True)
    return (peak + np.log(np.mean(np.exp(log_kernel - peak), axis=1, keepdims=True)))[:, 0]


def _curve_nodes(name):
    nodes = (np.arange(QUADRATURE_POINTS) + 0.5) / QUADRATURE_POINTS
    if name == '2spirals':
        arm = _spiral(nodes)
        return np.concatenate([arm, -arm])
    if name == 'rings':
        angle = 2. * np.pi * nodes
        circle = np.stack([np.cos(angle), np.sin(angle)], axis=1)
        return np.concatenate([r * circle for r in RING_RADII])
    angle = np.pi * nodes
    return np.concatenate([_moon(angle, np.zeros_like(angle, bool)), _moon(angle, np.ones_like(angle, bool))])


def log_density(name, x, chunk=2000):
    """log p(x) [n] of the data set's distribution at x [n, 2]."""
    _check(name, DATASETS)
    x = np.asarray(x, np.float64)
    if name == 'checkerboard':
        column = np.floor(x[:, 0] / 2.)
        row = np.floor((x[:, 1] + 4.) / 2.)
        inside = (np.abs(x) < 4.).all(axis=1) & ((column + 2 + row) % 2 == 1)
        return np.where(inside, -math.log(32.), -np.inf)
    curve = _gaussian_centres() if name == '8gaussians' else _curve_nodes(name)
    return np.concatenate([_log_mean_gaussian(x[i:i + chunk], curve, NOISE[name]) for i in range(0, len(x), chunk)])


def entropy(name, seed=0):
    """(H, standard error) in nats."""
    _check(name, DATASETS)
    if name == 'checkerboard':
        return math.log(32.), 0.
    values = -log_density(name, sample(name, ENTROPY_SAMPLES, np.random.default_rng(seed)))
    return float(values.mean()), float(values.std(ddof=1) / math.sqrt(len(values)))


def _w1(z):
    return np.sin(2. * np.pi * z[..., 0] / 4.)


def energy(name, z, xp=np):
    """u(z) + sum_i max(|z_i| - 6, 0)^2 for z [..., 2]; `xp` numpy or tensorflow.math-like (tf.experimental.numpy)."""
    _check(name, ENERGIES)
    z1, z2 = z[..., 0], z[..., 1]
    w1 = xp.sin(2. * np.pi * z1 / 4.)
    if name == 'u1':
        radius = xp.sqrt(z1 ** 2 + z2 ** 2)
        u = 0.5 * ((radius - 2.) / 0.4) ** 2 - xp.logaddexp(-0.5 * ((z1 - 2.) / 0.6) ** 2,
                                                           -0.5 * ((z1 + 2.) / 0.6) ** 2)
    elif name == 'u2':
        u = 0.5 * ((z2 - w1) / 0.4) ** 2
    elif name == 'u3':
        w2 = 3. * xp.exp(-0.5 * ((z1 - 1.) / 0.6) ** 2)
        u = -xp.logaddexp(-0.5 * ((z2 - w1) / 0.35) ** 2, -0.5 * ((z2 - w1 + w2) / 0.35) ** 2)
    else:
        w3 = 3. / (1. + xp.exp(-(z1 - 1.) / 0.3))
        u = -xp.logaddexp(-0.5 * ((z2 - w1) / 0.4) ** 2, -0.5 * ((z2 - w1 + w3) / 0.35) ** 2)
    penalty = xp.maximum(xp.abs(z1) - 6., 0.) ** 2 + xp.maximum(xp.abs(z2) - 6., 0.) ** 2
    return u + penalty


def log_normaliser(name, limit=9., n=1201):
    """log of the integral of exp(-energy) over R^2 (midpoint rule on [-limit, limit]^2)."""
    step = 2. * limit / n
    axis = -limit + step * (np.arange(n) + 0.5)
    grid = np.stack(np.meshgrid(axis, axis, indexing='ij'), axis=-1)
    log_values = -energy(name, grid)
    peak = log_values.max()
    return float(peak + math.log(np.sum(np.exp(log_values - peak)) * step * step))
