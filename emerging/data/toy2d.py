"""2-D toy densities with known distributions, and the energy potentials of Rezende & Mohamed (2015).

The data sets are those of the Residual Flows / FFJORD toy generator (`inf_train_gen` in toy_data.py; its
8gaussians, 2spirals and checkerboard are also the BNAF code's), each its distribution in the limit of a large
batch.  That code takes evenly spaced angles (np.linspace) for rings, moons and circles and equal counts per class
or arm; here every point is drawn i.i.d. from the limiting distribution instead (the angle or curve parameter
uniform, the class uniform).  `sample(name, n, rng)` -> float64 [n, 2] from a NumPy Generator; below e = (e1, e2)
is standard normal, independent of the rest, and U(a, b) uniform:

* 8gaussians: m_k + (0.5 / 1.414) e, m_k = (4 / 1.414) (cos(k pi / 4), sin(k pi / 4)), k uniform in 0..7;
* checkerboard: 2 (x1, x2) with x1 ~ U(-2, 2) and x2 = v - 2 b + (floor(x1) mod 2), v ~ U(0, 1), b uniform in
  {0, 1}: uniform on the 8 squares [2i - 4, 2i - 2) x [2j - 4, 2j - 2) with i + j even (i, j in 0..3);
* 2spirals: s ((-t cos t, t sin t) + o) / 3 + 0.1 e, t = 3 pi sqrt(u), u ~ U(0, 1), o ~ U(0, 0.5)^2, s = +-1
  with probability 1/2 each (the second arm is the first negated, offset included);
* rings: 3 rho (cos a, sin a) + 0.08 e, rho uniform in {1, 0.75, 0.5, 0.25}, a ~ U(0, 2 pi);
* moons (scikit-learn's make_moons(noise=0.1), times 2, plus (-1, -0.2)): 2 c + (-1, -0.2) + 0.2 e, a ~ U(0, pi),
  c = (cos a, sin a) or (1 - cos a, 0.5 - sin a) with probability 1/2 each;
* pinwheel: class k uniform in 0..4, features f = (1 + 0.3 e1, 0.1 e2), theta = 2 pi k / 5 + 0.25 exp(f1), and
  x = 2 R(-theta) f with R(a) the rotation by a (the code's einsum multiplies f by the transposed rotation);
* swissroll (make_swiss_roll(noise=1.0), columns 0 and 2, divided by 5): (t cos t, t sin t) / 5 + 0.2 e,
  t = 1.5 pi (1 + 2 u), u ~ U(0, 1) (the 3-D isotropic noise with the height column dropped);
* circles (make_circles(factor=0.5, noise=0.08), times 3): 3 rho (cos a, sin a) + 0.24 e, rho uniform in
  {1, 0.5}, a ~ U(0, 2 pi).

`log_density(name, x)` -> [n], float64.  8gaussians: its mixture; checkerboard: 1/32 on its squares.  The curve
sets (2spirals, rings, moons, swissroll, circles): the noise kernel averaged over the curve parameter (a, u, or
s = sqrt(u) of density 2 s for 2spirals) and the class, a one-dimensional integral taken by the midpoint rule on
`QUADRATURE_POINTS` nodes per curve: on the angle for the closed curves (spectrally accurate), for the open ones
after the substitution u = v - sin(2 pi v) / (2 pi), whose derivative vanishes at both ends (the plain rule's
error there is of order (node spacing / noise)^2).  The weights sum to 1, so the mass is exactly 1; against 16
times the nodes log p changes by less than 1e-12 on samples, 1e-10 anywhere in [-6, 6]^2.  The kernel is
N(0, s^2 I), for 2spirals the uniform offset square of side 1/6 convolved with N(0, 0.1^2 I): 36 prod_i
(Phi((d_i + 1/12) / 0.1) - Phi((d_i - 1/12) / 0.1)) at d from the square's centre.  Blocks of nodes that by
bounds from the distance add less than e^-40 of the sum in all are left out of it.
Pinwheel is exact by change of variables: per class the map f -> y = x / 2 keeps the radius r = |f| = |y| and
takes the polar angle alpha of f to beta = phi(alpha) - 2 pi k / 5, phi(alpha) = alpha - 0.25 exp(r cos alpha),
so p(x) = (1/4) (1/5) sum_k sum_alpha N(f; (1, 0), diag(0.3^2, 0.1^2)) / |phi'(alpha)| over every root alpha in
[0, 2 pi) of phi(alpha) = beta + 2 pi k / 5 (mod 2 pi), phi'(alpha) = 1 + 0.25 r sin(alpha) exp(r cos alpha).
phi' is at least 1 where sin(alpha) >= 0 and falls, on (-pi, 0), to its minimum at alpha* = -arccos(2 r / (1 +
sqrt(1 + 4 r^2))) and rises again; where phi'(alpha*) < 0 (r > 1.6955) it has a zero each side of alpha*, found
by bisection, and phi is monotone between them and on the rest of the period: each level beta + 2 pi (k / 5 + m)
in the range of a monotone piece has one root there, found by Newton's method kept inside its bracket (to
1e-13).  Every root is found, so the density is exact also where several exist (the far tail: the folds of the
map, where the density is infinite, lie where the features' density is below e^-17 of its peak).  The number of
roots grows like exp(r): beyond |x| = 2 PINWHEEL_MAX_RADIUS log_density returns -inf (the mass there is below e^-270).

`entropy(name)` is H = -E[log p(x)]: closed form for checkerboard (log 32), else the Monte Carlo mean over
`ENTROPY_SAMPLES` samples, returned with its standard error.

Energies u1..u4 (`energy(name, z)`), the target exp(-u(z) - sum_i max(|z_i| - 6, 0)^2): the penalty keeps
exp(-u) integrable where u does not grow (u2..u4 along z1), as the BNAF code does; `log_normaliser(name)` is
log of its integral by the midpoint rule on a 1201 x 1201 grid over [-9, 9]^2.
"""
import math

import numpy as np
from scipy.special import log_ndtr, ndtr

DATASETS = ('8gaussians', 'checkerboard', '2spirals', 'rings', 'moons', 'pinwheel', 'swissroll', 'circles')
ENERGIES = ('u1', 'u2', 'u3', 'u4')
QUADRATURE_POINTS = 1000
ENTROPY_SAMPLES = 20000
RING_RADII = (3., 2.25, 1.5, 0.75)
CIRCLE_RADII = (3., 1.5)
MOON_OFFSET = (-1., -0.2)
SPIRAL_OFFSET = 0.5 / 3.  # the side of the offset square, after the division by 3
PINWHEEL_CLASSES, PINWHEEL_STD, PINWHEEL_RATE = 5, (0.3, 0.1), 0.25
PINWHEEL_MAX_RADIUS = 8.
NOISE = {'8gaussians': 0.5 / 1.414, '2spirals': 0.1, 'rings': 0.08, 'moons': 0.2, 'swissroll': 0.2,
         'circles': 0.24}
_TAIL = 40.  # nodes left out of a kernel sum weigh below e^-_TAIL of it in all


def _check(name, names):
    if name not in names:
        raise ValueError(f'unknown data set {name!r}; allowed: {", ".join(names)}')


def _gaussian_centres():
    angles = np.arange(8) * np.pi / 4
    return 4. / 1.414 * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def _circle(radius, angle):
    return radius[..., None] * np.stack([np.cos(angle), np.sin(angle)], axis=-1)


def _spiral(u):
    t = 3. * np.pi * np.sqrt(u)
    return np.stack([-t * np.cos(t), t * np.sin(t)], axis=-1) / 3.


def _moon(a, lower):
    upper_arc = np.stack([np.cos(a), np.sin(a)], axis=-1)
    lower_arc = np.stack([1. - np.cos(a), 0.5 - np.sin(a)], axis=-1)
    return 2. * np.where(lower[..., None], lower_arc, upper_arc) + np.array(MOON_OFFSET)


def _swiss_roll(u):
    t = 1.5 * np.pi * (1. + 2. * u)
    return np.stack([t * np.cos(t), t * np.sin(t)], axis=-1) / 5.


def _pinwheel(features, k):
    """x = 2 R(-theta) f for features f [n, 2] of classes k [n]."""
    theta = 2. * np.pi * k / PINWHEEL_CLASSES + PINWHEEL_RATE * np.exp(features[:, 0])
    cos, sin = np.cos(theta), np.sin(theta)
    return 2. * np.stack([features[:, 0] * cos + features[:, 1] * sin, features[:, 1] * cos - features[:, 0] * sin],
                         axis=1)


def sample(name, n, rng):
    _check(name, DATASETS)
    if name == '8gaussians':
        return _gaussian_centres()[rng.integers(0, 8, n)] + rng.normal(0., NOISE[name], [n, 2])
    if name == 'checkerboard':
        x1 = rng.uniform(-2., 2., n)
        x2 = rng.uniform(0., 1., n) - 2. * rng.integers(0, 2, n) + np.floor(x1) % 2.
        return 2. * np.stack([x1, x2], axis=1)
    if name == 'pinwheel':
        features = rng.normal(0., 1., [n, 2]) * np.array(PINWHEEL_STD) + np.array([1., 0.])
        return _pinwheel(features, rng.integers(0, PINWHEEL_CLASSES, n))
    if name == '2spirals':
        arm = _spiral(rng.uniform(0., 1., n)) + rng.uniform(0., SPIRAL_OFFSET, [n, 2])
        points = arm * rng.choice([-1., 1.], n)[:, None]
    elif name in ('rings', 'circles'):
        radii = np.asarray(RING_RADII if name == 'rings' else CIRCLE_RADII)
        points = _circle(radii[rng.integers(0, len(radii), n)], rng.uniform(0., 2. * np.pi, n))
    elif name == 'moons':
        points = _moon(rng.uniform(0., np.pi, n), rng.integers(0, 2, n).astype(bool))
    else:
        points = _swiss_roll(rng.uniform(0., 1., n))
    return points + rng.normal(0., NOISE[name], [n, 2])


def _curve_nodes(name):
    """The kernels' centres [m, 2] and weights [m] (summing to 1): the midpoint rule over each curve's parameter,
    for an open curve after the substitution u = v - sin(2 pi v) / (2 pi), whose derivative vanishes at the ends."""
    v = (np.arange(QUADRATURE_POINTS) + 0.5) / QUADRATURE_POINTS
    u = v - np.sin(2. * np.pi * v) / (2. * np.pi)
    du = 1. - np.cos(2. * np.pi * v)
    if name == '8gaussians':
        centres, weights = _gaussian_centres(), np.ones(8)
    elif name == '2spirals':  # the offset squares' centres, both arms; t = 3 pi s, s = sqrt(u) has density 2 s
        arm = _spiral(u ** 2) + SPIRAL_OFFSET / 2.
        centres, weights = np.concatenate([arm, -arm]), np.tile(2. * u * du, 2)
    elif name in ('rings', 'circles'):  # closed curves: the angle's plain midpoint rule
        radii = RING_RADII if name == 'rings' else CIRCLE_RADII
        centres = np.concatenate([_circle(np.full_like(v, r), 2. * np.pi * v) for r in radii])
        weights = np.ones(len(centres))
    elif name == 'moons':
        angle = np.pi * u
        centres = np.concatenate([_moon(angle, np.zeros_like(angle, bool)), _moon(angle, np.ones_like(angle, bool))])
        weights = np.tile(du, 2)
    else:
        centres, weights = _swiss_roll(u), du
    return centres, weights / weights.sum()


def _log_kernel_sum(x, centres, weights, sigma, half_width=0., block=8):
    """log sum_j weights_j k(x - centres_j) for x [n, 2], centres [m, 2], weights [m] summing to 1: the kernel k is
    N(0, sigma^2 I), convolved with the uniform law on [-h, h]^2 when h = half_width > 0.

    The centres go in blocks of `block` consecutive ones.  At distance q from x, (2 h)^2 k <= exp(-max(q - sqrt(2)
    h, 0)^2 / (2 sigma^2)) and >= (2 h / (sigma sqrt(2 pi)))^2 exp(-(q + sqrt(2) h)^2 / (2 sigma^2)) (for h = 0 both
    are 2 pi sigma^2 k); with the nearest and farthest distance a block's members can have, each block's weight
    times the lower bound bounds the sum from below, and a block whose upper bound is below e^-_TAIL times the
    largest of those is left out: the blocks left out weigh at most 1, so they add less than e^-_TAIL of the sum."""
    m = len(centres)
    groups = centres.reshape(m // block, block, 2)
    middle = groups.mean(axis=1)
    spread = np.sqrt(np.max(np.sum((groups - middle[:, None]) ** 2, axis=-1), axis=1))
    log_mass = np.log(weights.reshape(-1, block).sum(axis=1))
    distance = np.sqrt((x[:, 0, None] - middle[:, 0]) ** 2 + (x[:, 1, None] - middle[:, 1]) ** 2)  # [n, blocks]
    corner = math.sqrt(2.) * half_width
    log_scale = 2. * math.log(2. * half_width / (sigma * math.sqrt(2. * math.pi))) if half_width else 0.
    least = np.max(log_mass - (distance + spread + corner) ** 2 / (2. * sigma ** 2), axis=1, keepdims=True)
    keep = -np.maximum(distance - spread - corner, 0.) ** 2 / (2. * sigma ** 2) >= least + log_scale - _TAIL
    rows, blocks = np.nonzero(keep)
    log_terms = np.log(weights.reshape(-1, block))[blocks]  # [pairs, block]
    for i in range(2):
        difference = x[rows, i, None] - centres[:, i].reshape(-1, block)[blocks]
        if not half_width:
            log_terms -= difference ** 2 / (2. * sigma ** 2) + 0.5 * math.log(2. * math.pi * sigma ** 2)
        else:  # log((Phi(hi) - Phi(lo)) / (2 h)), lo = hi - 2 h / sigma < 0: no cancellation
            hi = (half_width - np.abs(difference)) / sigma
            lo = hi - 2. * half_width / sigma
            with np.errstate(divide='ignore'):
                log_factor = np.log(ndtr(hi) - ndtr(lo))
            tail = hi < -30.  # Phi underflows: in logs
            log_hi = log_ndtr(hi[tail])
            log_factor[tail] = log_hi + np.log1p(-np.exp(log_ndtr(lo[tail]) - log_hi))
            log_terms += log_factor - math.log(2. * half_width)
    starts = np.searchsorted(rows, np.arange(len(x)))
    peak = np.maximum.reduceat(log_terms.max(axis=1), starts)
    return peak + np.log(np.add.reduceat(np.exp(log_terms - peak[rows, None]).sum(axis=1), starts))


def _pinwheel_phase(alpha, r):
    return alpha - PINWHEEL_RATE * np.exp(r * np.cos(alpha))


def _pinwheel_slope(alpha, r):
    return 1. + PINWHEEL_RATE * r * np.sin(alpha) * np.exp(r * np.cos(alpha))


def _bisect_slope(r, lo, hi, increasing):
    """The zero of phi' on [lo, hi] where it is monotone (increasing or not) with a sign change."""
    for _ in range(60):
        middle = 0.5 * (lo + hi)
        right = (_pinwheel_slope(middle, r) < 0.) == increasing  # the zero is right of middle
        lo, hi = np.where(right, middle, lo), np.where(right, hi, middle)
    return 0.5 * (lo + hi)


def _solve_phase(r, level, lo, hi, sign, tolerance=1e-13):
    """alpha in [lo, hi] with phi(alpha) = level, where sign (phi - level) increases from <= 0 to >= 0: Newton's
    method, bisection whenever a step leaves the bracket."""
    lo, hi = lo.copy(), hi.copy()
    alpha = 0.5 * (lo + hi)
    active = np.arange(len(r))
    for _ in range(200):
        a, rr, s = alpha[active], r[active], sign[active]
        grow = PINWHEEL_RATE * np.exp(rr * np.cos(a))
        g = s * (a - grow - level[active])
        slope = s * (1. + grow * rr * np.sin(a))
        below = g < 0.
        lo[active] = np.where(below, a, lo[active])
        hi[active] = np.where(below, hi[active], a)
        with np.errstate(divide='ignore', invalid='ignore'):
            step = a - g / slope
        inside = (step > lo[active]) & (step < hi[active])
        new = np.where(g == 0., a, np.where(inside, step, 0.5 * (lo[active] + hi[active])))
        alpha[active] = new
        active = active[(np.abs(new - a) > tolerance) & (hi[active] - lo[active] > tolerance)]
        if not len(active):
            break
    return alpha


def _pinwheel_roots(r, beta):
    """Every root of phi(alpha) = beta + 2 pi k / 5 (mod 2 pi), for the points (r [n], beta [n]) and the classes k:
    (the point's index, alpha) per root, sorted by point; a period's monotone pieces are [z1, z2] (phi decreasing)
    and [z2, z1 + 2 pi] (increasing), z1 = z2 = alpha* where phi' > 0."""
    n = len(r)
    cos_star = 2. * r / (1. + np.sqrt(1. + 4. * r ** 2))
    alpha_star = -np.arccos(cos_star)
    folded = _pinwheel_slope(alpha_star, r) < 0.
    z1, z2 = alpha_star.copy(), alpha_star.copy()
    if folded.any():
        rf, af = r[folded], alpha_star[folded]
        z1[folded] = _bisect_slope(rf, np.full_like(rf, -np.pi), af, increasing=False)
        z2[folded] = _bisect_slope(rf, af, np.zeros_like(rf), increasing=True)
    target = beta[:, None] + 2. * np.pi * np.arange(PINWHEEL_CLASSES) / PINWHEEL_CLASSES  # [n, k]
    v1 = (_pinwheel_phase(z1, r)[:, None] - target) / (2. * np.pi)  # phi(z1), phi(z2) in periods from the target
    v2 = (_pinwheel_phase(z2, r)[:, None] - target) / (2. * np.pi)
    # levels target + 2 pi m: m in [floor(v2) + 1, floor(v1)] on the decreasing piece, [ceil(v2), ceil(v1)] on the
    # increasing one (phi(z1 + 2 pi) = phi(z1) + 2 pi)
    first = np.stack([np.floor(v2) + 1., np.ceil(v2)], axis=-1)  # [n, k, piece]
    count = (np.stack([np.floor(v1), np.ceil(v1)], axis=-1) - first + 1.).astype(np.int64)
    count = np.maximum(count, 0).reshape(-1)
    group = np.repeat(np.arange(len(count)), count)
    offset = np.arange(len(group)) - np.repeat(np.cumsum(count) - count, count)
    point, piece = group // (2 * PINWHEEL_CLASSES), group % 2
    level = np.repeat(target.reshape(-1), 2)[group] + 2. * np.pi * (first.reshape(-1)[group] + offset)
    lo = np.where(piece == 0, z1[point], z2[point])
    hi = np.where(piece == 0, z2[point], z1[point] + 2. * np.pi)
    assert np.all(np.bincount(point, minlength=n) >= PINWHEEL_CLASSES)
    return point, _solve_phase(r[point], level, lo, hi, np.where(piece == 0, -1., 1.))


def _pinwheel_log_density(x, chunk=20000):
    out = np.full(len(x), -np.inf)
    y = x / 2.
    r = np.hypot(y[:, 0], y[:, 1])
    beta = np.arctan2(y[:, 1], y[:, 0])
    near = np.nonzero(r <= PINWHEEL_MAX_RADIUS)[0]
    std0, std1 = PINWHEEL_STD
    for i in range(0, len(near), chunk):
        index = near[i:i + chunk]
        point, alpha = _pinwheel_roots(r[index], beta[index])
        rr = r[index][point]
        f0, f1 = rr * np.cos(alpha), rr * np.sin(alpha)
        terms = (-0.5 * ((f0 - 1.) / std0) ** 2 - 0.5 * (f1 / std1) ** 2 - math.log(2. * math.pi * std0 * std1)
                 - np.log(np.abs(_pinwheel_slope(alpha, rr))))
        starts = np.searchsorted(point, np.arange(len(index)))
        peak = np.maximum.reduceat(terms, starts)
        total = np.log(np.add.reduceat(np.exp(terms - peak[point]), starts)) + peak
        out[index] = total - math.log(PINWHEEL_CLASSES) - math.log(4.)  # x = 2 y
    return out


def log_density(name, x, chunk=None):
    """log p(x) [n] of the data set's distribution at x [n, 2]; `chunk` rows at a time (default: about 2^21
    kernel terms for a curve set, 20,000 points for pinwheel)."""
    _check(name, DATASETS)
    x = np.asarray(x, np.float64).reshape(-1, 2)
    if name == 'checkerboard':
        column, row = np.floor(x[:, 0] / 2.) + 2., np.floor(x[:, 1] / 2.) + 2.
        inside = ((x >= -4.) & (x < 4.)).all(axis=1) & ((column + row) % 2. == 0.)
        return np.where(inside, -math.log(32.), -np.inf)
    if name == 'pinwheel':
        return _pinwheel_log_density(x, chunk or 20000)
    centres, weights = _curve_nodes(name)
    half_width = SPIRAL_OFFSET / 2. if name == '2spirals' else 0.
    chunk = chunk or max(1, 2 ** 21 // len(centres))
    return np.concatenate([_log_kernel_sum(x[i:i + chunk], centres, weights, NOISE[name], half_width)
                           for i in range(0, len(x), chunk)] + [np.zeros(0)])


def entropy(name, seed=0):
    """(H, standard error) in nats."""
    _check(name, DATASETS)
    if name == 'checkerboard':
        return math.log(32.), 0.
    values = -log_density(name, sample(name, ENTROPY_SAMPLES, np.random.default_rng(seed)))
    return float(values.mean()), float(values.std(ddof=1) / math.sqrt(len(values)))


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
