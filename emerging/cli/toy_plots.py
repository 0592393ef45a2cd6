"""The figure of a 2-D density run: target density, learned density and model samples side by side.

Shared by the toy scripts (toy_density.py, train_resflow_toy.py): each evaluates its densities on `grid_points()`
(the square [-limit, limit]^2, `resolution` points a side, x varying fastest) and draws samples, then
`save_density_panels` writes the three panels (9 x 3 inches).  TensorFlow-free; matplotlib loads on first use.
"""
from __future__ import annotations

import numpy as np

LIMIT, RESOLUTION, N_SAMPLES, SAMPLE_BINS, DPI = 4.5, 150, 2000, 80, 60


def grid_points(limit: float = LIMIT, resolution: int = RESOLUTION) -> np.ndarray:
    """The points the density panels are evaluated at.

    Args:
      limit: the half-width of the square.
      resolution: points a side.

    Returns:
      float64 [resolution^2, 2], row by row from the bottom (x varying fastest).
    """
    axis = np.linspace(-limit, limit, resolution)
    return np.stack(np.meshgrid(axis, axis, indexing='xy'), axis=-1).reshape(-1, 2)


def save_density_panels(path: str, target, learned, samples, learned_title: str, limit: float = LIMIT,
                        resolution: int = RESOLUTION, bins: int = SAMPLE_BINS, dpi: int = DPI) -> str:
    """Write the three panels: 'target', `learned_title`, 'samples' (a 2-D histogram), without ticks.

    Args:
      path: the image file to write (PNG by its extension).
      target: the target density at `grid_points(limit, resolution)` [resolution^2].
      learned: the model density at the same points [resolution^2].
      samples: model samples [n, 2].
      learned_title: the middle panel's title.
      limit: the half-width of the square shown.
      resolution: the grid's points a side.
      bins: the histogram's bins a side.
      dpi: the image's dots per inch.

    Returns:
      `path`.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    extent = (-limit, limit, -limit, limit)
    figure, axes = plt.subplots(1, 3, figsize=(9, 3))
    for ax, image, title in ((axes[0], target, 'target'), (axes[1], learned, learned_title)):
        ax.imshow(np.reshape(image, [resolution, resolution]), origin='lower', extent=extent)
        ax.set_title(title)
    samples = np.asarray(samples)
    axes[2].hist2d(samples[:, 0], samples[:, 1], bins=bins, range=[[-limit, limit], [-limit, limit]])
    axes[2].set_title('samples')
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    figure.tight_layout()
    figure.savefig(path, dpi=dpi)
    plt.close(figure)
    return path
