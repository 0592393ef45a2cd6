"""The 2-D toy distributions: the reference generator's geometry, samplers and densities agree, densities integrate
to 1, pinwheel's roots and change of variables, entropies, energies normalise."""
import math

import numpy as np
import pytest
import scipy.stats
import sklearn.datasets
import tensorflow as tf

from emerging.data import toy2d

N = 200_000
BIN = 0.25  # histogram bins
# per data set the half-width of the box [-limit, limit]^2 and the step of the grid over it (BIN / step even): the
# box leaves out less than 1e-11 of the mass (at least 7 noise deviations past the curves, 7.5 radial ones past
# pinwheel's radius 1 in feature units), so the grid's sum times step^2 is the integral over the plane up to the
# rule's error: for a Gaussian kernel of deviation s below 4 exp(-2 pi^2 s^2 / step^2) < 1e-13 (Poisson summation;
# 2spirals' kernel is smoother), and a curve's quadrature is a mixture of such kernels with weights summing to 1;
# exact for checkerboard (its squares half-open on the grid): hence the tolerance 1e-8.  Pinwheel is smooth but on
# its folds, integrable singularities where the density is e^-17 of its peak, which the rule meets with an error
# measured as 6.5e-8 at this step (4e-10 at half of it): tolerance 2e-7.
GRIDS = {'8gaussians': (6.5, 0.125), 'checkerboard': (5., 0.125), '2spirals': (4.5, 0.0625), 'rings': (4., 0.0625),
         'moons': (5., 0.125), 'pinwheel': (6.5, 0.0625), 'swissroll': (4.5, 0.125), 'circles': (5.5, 0.125)}


def reference_sample(name, batch_size, rng):
    """The sampling lines of toy_data.inf_train_gen (Residual Flows, FFJORD; BNAF's generate2d has the same
    8gaussians, 2spirals and checkerboard), with np.random -> rng (a RandomState), 8gaussians' loop vectorised and
    the shuffles left out (they do not change the batch's distribution)."""
    if name == 'swissroll':
        data = sklearn.datasets.make_swiss_roll(n_samples=batch_size, noise=1.0, random_state=rng)[0]
        data = data.astype('float32')[:, [0, 2]]
        return data / 5
    if name == 'circles':
        data = sklearn.datasets.make_circles(n_samples=batch_size, factor=.5, noise=0.08, random_state=rng)[0]
        return data.astype('float32') * 3
    if name == 'rings':
        n_samples4 = n_samples3 = n_samples2 = batch_size // 4
        n_samples1 = batch_size - n_samples4 - n_samples3 - n_samples2
        linspace4 = np.linspace(0, 2 * np.pi, n_samples4, endpoint=False)
        linspace3 = np.linspace(0, 2 * np.pi, n_samples3, endpoint=False)
        linspace2 = np.linspace(0, 2 * np.pi, n_samples2, endpoint=False)
        linspace1 = np.linspace(0, 2 * np.pi, n_samples1, endpoint=False)
        circ4_x, circ4_y = np.cos(linspace4), np.sin(linspace4)
        circ3_x, circ3_y = np.cos(linspace4) * 0.75, np.sin(linspace3) * 0.75
        circ2_x, circ2_y = np.cos(linspace2) * 0.5, np.sin(linspace2) * 0.5
        circ1_x, circ1_y = np.cos(linspace1) * 0.25, np.sin(linspace1) * 0.25
        X = np.vstack([np.hstack([circ4_x, circ3_x, circ2_x, circ1_x]),
                       np.hstack([circ4_y, circ3_y, circ2_y, circ1_y])]).T * 3.0
        X = X + rng.normal(scale=0.08, size=X.shape)
        return X.astype('float32')
    if name == 'moons':
        data = sklearn.datasets.make_moons(n_samples=batch_size, noise=0.1, random_state=rng)[0]
        data = data.astype('float32')
        return data * 2 + np.array([-1, -0.2])
    if name == '8gaussians':
        scale = 4.
        centers = [(1, 0), (-1, 0), (0, 1), (0, -1), (1. / np.sqrt(2), 1. / np.sqrt(2)),
                   (1. / np.sqrt(2), -1. / np.sqrt(2)), (-1. / np.sqrt(2), 1. / np.sqrt(2)),
                   (-1. / np.sqrt(2), -1. / np.sqrt(2))]
        centers = np.array([(scale * x, scale * y) for x, y in centers])
        point = rng.randn(batch_size, 2) * 0.5
        dataset = (point + centers[rng.randint(8, size=batch_size)]).astype('float32')
        return dataset / 1.414
    if name == 'pinwheel':
        radial_std, tangential_std, num_classes, rate = 0.3, 0.1, 5, 0.25
        num_per_class = batch_size // 5
        rads = np.linspace(0, 2 * np.pi, num_classes, endpoint=False)
        features = rng.randn(num_classes * num_per_class, 2) * np.array([radial_std, tangential_std])
        features[:, 0] += 1.
        labels = np.repeat(np.arange(num_classes), num_per_class)
        angles = rads[labels] + rate * np.exp(features[:, 0])
        rotations = np.stack([np.cos(angles), -np.sin(angles), np.sin(angles), np.cos(angles)])
        rotations = np.reshape(rotations.T, (-1, 2, 2))
        return 2 * np.einsum('ti,tij->tj', features, rotations)
    if name == '2spirals':
        n = np.sqrt(rng.rand(batch_size // 2, 1)) * 540 * (2 * np.pi) / 360
        d1x = -np.cos(n) * n + rng.rand(batch_size // 2, 1) * 0.5
        d1y = np.sin(n) * n + rng.rand(batch_size // 2, 1) * 0.5
        x = np.vstack((np.hstack((d1x, d1y)), np.hstack((-d1x, -d1y)))) / 3
        return x + rng.randn(*x.shape) * 0.1
    assert name == 'checkerboard'
    x1 = rng.rand(batch_size) * 4 - 2
    x2_ = rng.rand(batch_size) - rng.randint(0, 2, batch_size) * 2
    x2 = x2_ + (np.floor(x1) % 2)
    return np.concatenate([x1[:, None], x2[:, None]], 1) * 2


def features(x):
    """Statistics whose means describe the geometry: moments to order 4, signs, the radius, the angle's harmonics."""
    x1, x2 = x[:, 0], x[:, 1]
    radius, angle = np.hypot(x1, x2), np.arctan2(x2, x1)
    columns = [x1, x2, x1 ** 2, x2 ** 2, x1 * x2, x1 ** 3, x2 ** 3, x1 ** 2 * x2, x1 * x2 ** 2, x1 ** 4, x2 ** 4,
               np.sign(x1), np.sign(x2), np.sign(x1 * x2), radius, radius ** 2, np.abs(x1), np.abs(x2)]
    columns += [f(j * angle) for j in range(1, 6) for f in (np.cos, np.sin)]
    return np.stack(columns, axis=1)


def histogram(x, limit):
    edges = np.arange(-limit, limit + BIN / 2, BIN)
    return np.histogram2d(x[:, 0], x[:, 1], bins=[edges, edges])[0]


@pytest.mark.parametrize('name', toy2d.DATASETS)
def test_samples_have_the_reference_generators_geometry(name):
    """Our i.i.d. draws against the reference's lines (evenly spaced angles, equal counts per class: a stratified
    sample, whose statistics vary less than i.i.d. ones, so the i.i.d. standard errors are conservative)."""
    ours = toy2d.sample(name, N, np.random.default_rng(1))
    theirs = reference_sample(name, N, np.random.RandomState(2)).astype(np.float64)
    assert ours.shape == theirs.shape == (N, 2) and ours.dtype == np.float64
    a, b = features(ours), features(theirs)
    z = (a.mean(0) - b.mean(0)) / np.sqrt((a.var(0) + b.var(0)) / N + 1e-300)
    assert np.abs(z).max() < 5., z
    # the two histograms (bins of side 1/4): chi-square on the bins with 20 points or more, the rest lumped
    limit = GRIDS[name][0] + 2.
    ours, theirs = histogram(ours, limit).ravel(), histogram(theirs, limit).ravel()
    assert ours.sum() == theirs.sum() == N
    big = ours + theirs >= 20
    ours = np.append(ours[big], ours[~big].sum())
    theirs = np.append(theirs[big], theirs[~big].sum())
    used = ours + theirs > 0
    statistic = np.sum((ours - theirs)[used] ** 2 / (ours + theirs)[used])
    assert scipy.stats.chi2.sf(statistic, used.sum() - 1) > 1e-4, (statistic, used.sum() - 1)


@pytest.mark.slow  # the quadrature densities on a grid
@pytest.mark.parametrize('name', toy2d.DATASETS)
def test_density_integrates_to_one_and_matches_a_histogram_of_samples(name):
    limit, step = GRIDS[name]
    n = int(round(2. * limit / step))
    axis = -limit + step * np.arange(n + 1)
    points = np.stack(np.meshgrid(axis, axis, indexing='ij'), axis=-1).reshape(-1, 2)
    p = np.exp(toy2d.log_density(name, points)).reshape(n + 1, n + 1)
    assert abs(p.sum() * step * step - 1.) < (2e-7 if name == 'pinwheel' else 1e-8)
    # the bins' masses (side 1/4) against 200,000 samples' histogram: chi-square on the bins expecting 5 points or
    # more, the rest lumped.  The masses by Simpson's rule in each bin, whose error, (step / deviation)^4 / 180
    # times the density's scale, is well below the counts' noise; checkerboard's, constant on each bin and whose
    # squares are half-open, by the left Riemann sum, exact
    per_bin = int(round(BIN / step))
    if name == 'checkerboard':
        weights = np.append(np.full(per_bin, step), 0.)
    else:
        weights = step / 3. * np.array([1.] + [4., 2.] * (per_bin // 2 - 1) + [4., 1.])
    to_bins = np.zeros([n // per_bin, n + 1])
    for i in range(n // per_bin):
        to_bins[i, i * per_bin:(i + 1) * per_bin + 1] = weights
    expected = N * (to_bins @ p @ to_bins.T).ravel()
    samples = toy2d.sample(name, N, np.random.default_rng(3))
    assert np.all(np.abs(samples) < limit) and np.all(np.isfinite(toy2d.log_density(name, samples[:1000])))
    counts = histogram(samples, limit).ravel()
    big = expected >= 5.
    assert counts[~big].sum() == 0 or expected[~big].sum() > 0.
    counts, expected = np.append(counts[big], counts[~big].sum()), np.append(expected[big], expected[~big].sum())
    statistic = np.sum((counts - expected)[expected > 0.] ** 2 / expected[expected > 0.])
    dof = np.sum(expected > 0.) - 1
    assert scipy.stats.chi2.sf(statistic, dof) > 1e-4, (statistic, dof)


def brute_force_roots(r, beta):
    """The roots alpha in [0, 2 pi) of phi(alpha) = beta + 2 pi k / 5 (mod 2 pi) per class k, from sign changes of
    the wrapped difference on a grid of 2^17 angles (a wrap from pi to -pi is no root), interpolated linearly."""
    alpha = np.arange(2 ** 17) * (2. * np.pi / 2 ** 17)
    phase = alpha - toy2d.PINWHEEL_RATE * np.exp(r * np.cos(alpha))
    target = beta + 2. * np.pi * np.arange(5) / 5
    wrapped = (phase[None, :] - target[:, None] + np.pi) % (2. * np.pi) - np.pi
    after = np.roll(wrapped, -1, axis=1)
    k, j = np.nonzero((np.sign(wrapped) != np.sign(after)) & (np.abs(after - wrapped) < np.pi))
    step = 2. * np.pi / 2 ** 17
    return np.sort((alpha[j] + step * wrapped[k, j] / (wrapped[k, j] - after[k, j])) % (2. * np.pi))


def test_pinwheel_finds_every_root_also_where_there_are_several():
    radii = np.repeat([0., 0.4, 1., 1.6, 1.8, 2., 2.5, 3., 4.], 4)
    betas = np.tile([-2.9, -0.6, 0.7, 2.3], 9)
    point, alpha = toy2d._pinwheel_roots(radii, betas)
    counts = np.bincount(point, minlength=len(radii))
    several = 0
    for i, (r, beta) in enumerate(zip(radii, betas)):
        expected = brute_force_roots(r, beta)
        found = np.sort(alpha[point == i] % (2. * np.pi))
        assert len(found) == len(expected) == counts[i], (r, beta, found, expected)
        assert np.abs(np.angle(np.exp(1j * (found - expected)))).max() < 1e-5
        several += len(found) > 5
        # each is a root to rounding
        phase = found - toy2d.PINWHEEL_RATE * np.exp(r * np.cos(found))
        assert np.min(np.abs(np.angle(np.exp(1j * (phase[:, None] - beta - 2. * np.pi * np.arange(5) / 5)))),
                      axis=1).max() < 1e-12
    assert several >= 12 and counts.max() >= 20  # a class with several roots from r = 1.8 on


@pytest.mark.parametrize('r', [0.5, 1., 1.5, 2., 2.5, 3.2])
def test_pinwheel_density_is_the_change_of_variables(r):
    """At radius r = |x| / 2 the density integrated against a narrow von Mises bump in the polar angle beta equals
    the features' density integrated against the bump at the image angle: (1 / 5) sum_k of the integral over
    alpha of N(f(r, alpha)) psi(phi(alpha) - 2 pi k / 5), no roots needed, the periodic midpoint rule converged.
    The bump sits between the folds (where the density is infinite), which r >= 2 has; there several roots add
    up."""
    std0, std1 = toy2d.PINWHEEL_STD
    alpha = (np.arange(2 ** 17) + 0.5) * (2. * np.pi / 2 ** 17)
    phase = alpha - toy2d.PINWHEEL_RATE * np.exp(r * np.cos(alpha))
    slope = 1. + toy2d.PINWHEEL_RATE * r * np.sin(alpha) * np.exp(r * np.cos(alpha))
    folds = np.concatenate([phase[np.sign(slope) != np.sign(np.roll(slope, -1))] - 2. * np.pi * k / 5
                            for k in range(5)]) % (2. * np.pi)
    if len(folds):  # the middle of the widest gap between folds
        folds = np.sort(folds)
        gaps = np.diff(np.append(folds, folds[0] + 2. * np.pi))
        centre, room = folds[np.argmax(gaps)] + gaps.max() / 2., gaps.max() / 2.
    else:
        centre, room = 1., np.pi
    kappa = 60. / (1. - math.cos(min(room, 1.)))  # the bump is below e^-60 at the nearest fold

    def bump(angle):
        return np.exp(kappa * (np.cos(angle - centre) - 1.))

    log_f = -0.5 * ((r * np.cos(alpha) - 1.) / std0) ** 2 - 0.5 * (r * np.sin(alpha) / std1) ** 2
    density = np.exp(log_f) / (2. * np.pi * std0 * std1)
    pushed = np.mean([np.sum(density * bump(phase - 2. * np.pi * k / 5)) for k in range(5)]) * 2. * np.pi / 2 ** 17
    beta = centre + min(room, 1.) * (2. * np.arange(4000) + 1. - 4000) / 4000
    x = 2. * r * np.stack([np.cos(beta), np.sin(beta)], axis=1)
    p_y = 4. * np.exp(toy2d.log_density('pinwheel', x))  # y = x / 2
    direct = np.sum(p_y * bump(beta)) * 2. * min(room, 1.) / 4000
    assert direct == pytest.approx(pushed, rel=1e-7)
    if r >= 2.5:  # several roots for every angle
        assert np.all(np.bincount(toy2d._pinwheel_roots(np.full(len(beta), r), beta)[0]) > 5)


def test_pinwheel_is_five_fold_symmetric_and_vanishes_far_out():
    x = toy2d.sample('pinwheel', 2000, np.random.default_rng(4))
    turn = 2. * np.pi / 5
    rotated = x @ np.array([[math.cos(turn), math.sin(turn)], [-math.sin(turn), math.cos(turn)]])
    np.testing.assert_allclose(toy2d.log_density('pinwheel', rotated), toy2d.log_density('pinwheel', x), atol=1e-9)
    far = toy2d.log_density('pinwheel', np.array([[2. * toy2d.PINWHEEL_MAX_RADIUS + 0.1, 0.], [0., 0.]]))
    assert far[0] == -np.inf and np.isfinite(far[1])


def test_checkerboard_has_the_references_parity():
    # the reference's x1 in [-2, -1) column (times 2) holds x2 in [0, 1) and [-2, -1) (times 2)
    x = 2. * np.array([[-1.5, 0.5], [-1.5, -1.5], [-1.5, 1.5], [-1.5, -0.5], [0.5, 0.5], [1.5, 1.5], [1.5, 0.5]])
    np.testing.assert_array_equal(toy2d.log_density('checkerboard', x),
                                  [-math.log(32.)] * 2 + [-np.inf] * 2 + [-math.log(32.)] * 2 + [-np.inf])


def test_entropies():
    h, se = toy2d.entropy('checkerboard')
    assert h == math.log(32.) and se == 0.
    # a Gaussian mixture with well separated components: log 8 + the entropy of one component
    h, se = toy2d.entropy('8gaussians')
    one = math.log(2. * math.pi * math.e * toy2d.NOISE['8gaussians'] ** 2)
    assert abs(h - (math.log(8.) + one)) < 3. * se + 1e-3
    for name in ('2spirals', 'rings', 'moons', 'pinwheel', 'swissroll', 'circles'):
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
