"""The configurations of the image-flow models: plain frozen dataclasses, TensorFlow-free.

A model takes its configuration, never flags.  Every configuration is an
`ImageFlowConfig`: it names its model kind (`kind`, the name config.json
records, see registry.py), has an image shape and bits per channel, says
whether the model reads class labels (`conditional`, `n_classes`), and
reads and writes itself as a dict (`to_dict`, `from_dict`: config.json's
"model"), and checks its sizes and the memory they imply when it is made,
before any model is built (limits.py).  Each holds only its own model's fields:

* `GlowConfig`: the Glow-family flow of train.py (image shape, L levels of K
  steps of the given width, permutation, coupling, priors, classes, bits per
  channel, gradient checkpointing, the coupling networks' dtype);
* `ResFlowConfig`: a Residual Flow (the public code's flag names in comments).
"""
from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

from emerging.choices import (
    COMPUTE_DTYPES,
    COUPLINGS,
    DECOMPOSITIONS,
    FLOW_PERMUTATIONS,
    LIPSCHITZ_ACTIVATIONS,
    ROULETTE_DISTRIBUTIONS,
    described,
)
from emerging.models import limits


class ImageFlowConfig:
    """What every image-flow model's configuration has (a base for frozen dataclasses).

    Subclasses are dataclasses with the fields `image_shape` (height, width,
    channels), `n_bits_x` (bits per colour channel) and `seed`, and set the
    class attribute `kind`.
    """

    kind: ClassVar[str] = ''
    #: config.json fields that an earlier version wrote and this one no longer has: {name: the only value it had}
    retired_fields: ClassVar[dict] = {}

    @property
    def n_bins(self) -> int:
        """2^n_bits_x, the number of values per sub-pixel."""
        return 2 ** self.n_bits_x

    @property
    def n_dims(self) -> int:
        """H * W * C, the sub-pixels per image."""
        return math.prod(self.image_shape)

    @property
    def conditional(self) -> bool:
        """Whether the model reads class labels (class-conditional)."""
        return False

    @property
    def n_classes(self) -> int:
        """The number of classes of the labels the model reads (1 when it reads none)."""
        return 1

    def validate_image(self):
        """Check the image shape, bits per channel, seed and every size field (`limits.check_fields`)."""
        if len(self.image_shape) != 3 or min(self.image_shape) < 1:
            raise ValueError(f'image_shape must be (height, width, channels), got {self.image_shape}')
        if not 1 <= self.n_bits_x <= 8:
            raise ValueError(f'n_bits_x must be in 1..8, got {self.n_bits_x}')
        if self.seed < 0:
            raise ValueError(f'seed must not be negative, got {self.seed}')
        # sizes first: the checks below compute with them (2^n_levels, the layers' shapes)
        limits.check_fields(self)

    def to_dict(self) -> dict:
        """The fields as a JSON-ready dict (config.json's "model")."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, fields: dict):
        """The configuration config.json's "model" describes.

        Args:
          fields: {field name: value}; fields of an earlier version that this one retired are accepted when
            they hold the only value they could have had (`retired_fields`, None: any).

        Returns:
          The configuration (validated).

        Raises:
          ValueError: naming an unknown field, a retired one with another value, a value of the wrong type, or
            a bad value.
        """
        known = {f.name: f for f in dataclasses.fields(cls)}
        kept = {}
        for name, value in fields.items():
            if name in known:
                _check_type(known[name], value)
                kept[name] = value
            elif name in cls.retired_fields:
                allowed = cls.retired_fields[name]
                if allowed is not None and value != allowed:
                    raise ValueError(f'{name} = {value!r} is not supported by a {cls.kind} model (only {allowed!r})')
            else:
                raise ValueError(f'unknown field {name!r} for a {cls.kind} model; known: {", ".join(sorted(known))}')
        return cls(**kept)


# a field's declared type -> the JSON values it accepts (a bool is no number here)
_JSON_TYPES = {'int': (int,), 'float': (int, float), 'bool': (bool,), 'str': (str,), 'tuple': (list, tuple)}


def _check_type(field: dataclasses.Field, value) -> None:
    """Raise ValueError naming the field unless `value` is of its declared type (a tuple: of integers)."""
    if value is None and field.default is None:
        return
    kinds = _JSON_TYPES[field.type]
    numbers = field.type in ('int', 'float')
    fits = isinstance(value, kinds) and not (numbers and isinstance(value, bool))
    if fits and field.type == 'tuple':
        fits = all(isinstance(item, int) and not isinstance(item, bool) for item in value)
    if not fits:
        wanted = {'tuple': 'a list of integers', 'int': 'an integer', 'float': 'a number', 'bool': 'true or false',
                  'str': 'a string'}[field.type]
        raise ValueError(f'{field.name} must be {wanted}' + (' or null' if field.default is None else '')
                         + f', got {value!r}')


@dataclasses.dataclass(frozen=True)
class GlowConfig(ImageFlowConfig):
    """A Glow-family flow: L levels of K steps (actnorm, permutation, coupling), multi-scale splits.

    Args:
      image_shape: (height, width, channels); height and width divisible by 2^n_levels.
      n_levels: L.  depth: K, steps per level.  width: hidden channels of the coupling network.
      flow_permutation: a code of `emerging.choices.FLOW_PERMUTATIONS` (0 reverse ... 5 1x1 + autoregressive).
      flow_coupling: 0 additive, 1 affine.
      decomposition: the 1x1 convolution's parametrisation: '' (plain), 'PLU' / 'LU', 'QR'.
      learnprior: learned top and split priors.  ycond: a class-conditional top prior.
      n_y: the number of classes.  weight_y: the weight of the class-prediction loss (a classifier head when > 0).
      n_bits_x: bits per colour channel.
      gradient_checkpointing: recompute each step's activations in the backward pass.
      compute_dtype: the coupling networks' dtype (float32, bfloat16, float16).
      seed: the seed of the weights' initial values.
    """
    kind: ClassVar[str] = 'glow'

    image_shape: tuple = (32, 32, 3)
    n_levels: int = 3
    depth: int = 32
    width: int = 512
    flow_permutation: int = 2
    flow_coupling: int = 0
    decomposition: str = ''
    learnprior: bool = False
    ycond: bool = False
    n_y: int = 1
    weight_y: float = 0.
    n_bits_x: int = 8
    gradient_checkpointing: bool = False
    compute_dtype: str = 'float32'
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, 'image_shape', tuple(int(d) for d in self.image_shape))
        self.validate()

    @property
    def conditional(self) -> bool:
        return self.ycond

    @property
    def n_classes(self) -> int:
        return self.n_y

    @classmethod
    def from_hparams(cls, hparams: dict) -> GlowConfig:
        """The model of a run from the hyperparameter line of its train.txt (this port's, or the
        original's: both hold the derived image_size, channels and n_y; keys the original lacks
        take their defaults).  The seed is rank 0's.

        Args:
          hparams: the first line of train.txt, parsed.

        Returns:
          The configuration.
        """
        needed = ('image_size', 'n_levels', 'depth', 'width', 'flow_permutation')
        missing = [key for key in needed if key not in hparams]
        if missing:
            raise ValueError(f'the hyperparameters lack {", ".join(missing)}: not a training run\'s train.txt')
        channels = hparams.get('channels', 3)
        size = int(hparams['image_size'])
        processes = int(hparams.get('n_processes', 1))
        return cls(
            image_shape=(size, size, 3 if channels in (-1, None) else int(channels)),
            n_levels=int(hparams['n_levels']), depth=int(hparams['depth']), width=int(hparams['width']),
            flow_permutation=int(hparams['flow_permutation']), flow_coupling=int(hparams.get('flow_coupling', 0)),
            decomposition=hparams.get('decomposition', ''), learnprior=bool(hparams.get('learnprior', False)),
            ycond=bool(hparams.get('ycond', False)), n_y=int(hparams.get('n_y', 1)),
            weight_y=float(hparams.get('weight_y', 0.)), n_bits_x=int(hparams.get('n_bits_x', 8)),
            gradient_checkpointing=bool(hparams.get('gradient_checkpointing', 0)),
            compute_dtype=hparams.get('compute_dtype', 'float32'), seed=processes * int(hparams.get('seed', 0)))

    def validate(self):
        self.validate_image()
        height, width, _ = self.image_shape
        factor = 2 ** self.n_levels
        if height % factor or width % factor:
            raise ValueError(
                f'image size {height}x{width} is not divisible by 2^n_levels = {factor} (n_levels={self.n_levels}): '
                f'every level squeezes by 2; use fewer levels or a larger image_size')
        if self.flow_permutation not in FLOW_PERMUTATIONS:
            raise ValueError(f'unknown flow_permutation {self.flow_permutation!r}; allowed: '
                             + described(FLOW_PERMUTATIONS))
        if self.flow_coupling not in COUPLINGS:
            raise ValueError(f'unknown flow_coupling {self.flow_coupling!r}; allowed: {described(COUPLINGS)}')
        if self.decomposition not in DECOMPOSITIONS:
            raise ValueError(f'unknown decomposition {self.decomposition!r}; allowed: {described(DECOMPOSITIONS)}')
        if self.compute_dtype not in COMPUTE_DTYPES:
            raise ValueError(f'unknown compute_dtype {self.compute_dtype!r}; allowed: {described(COMPUTE_DTYPES)}')
        if not (math.isfinite(self.weight_y) and self.weight_y >= 0.):
            raise ValueError(f'weight_y must be a finite number >= 0, got {self.weight_y}')
        limits.check_memory(self)


@dataclasses.dataclass(frozen=True)
class ResFlowConfig(ImageFlowConfig):
    """The architecture and estimators of a Residual Flow (the public code's flag names in comments).

    Args: the fields below; `emerging.models.resflow` states the model and
    `emerging.flows.residual` the estimators they select.
    """
    kind: ClassVar[str] = 'resflow'
    # written by version 0.2.0, which gave every model configuration these fields
    retired_fields: ClassVar[dict] = {'ycond': False, 'n_y': None, 'compute_dtype': 'float32'}

    image_shape: tuple = (32, 32, 3)
    n_blocks: tuple = (16, 16, 16)      # --nblocks 16-16-16: residual blocks per scale
    idim: int = 512                     # --idim: hidden channels of g
    kernels: str = '3-1-3'              # --kernels
    activation: str = 'swish'           # --act
    factor_out: bool = False            # --factor-out
    squeeze_first: bool = False         # --squeeze-first
    actnorm: bool = True                # --actnorm: an actnorm after every block
    fc_end: bool = True                 # --fc-end: fully connected blocks at the end of the last scale
    fc_nblocks: int = 4
    fc_idim: int = 128                  # --fc-idim
    preact: bool = True                 # --preact
    first_resblock: bool = True         # --first-resblock: the first block without its leading activation
    coeff: float = 0.98                 # --coeff: Lipschitz bound of every layer of g
    n_lipschitz_iters: int = None       # --n-lipschitz-iters
    sn_tol: float = 1e-3                # --sn-tol
    n_power_series: int = None          # --n-power-series: None = Russian roulette
    n_dist: str = 'poisson'             # --n-dist
    n_samples: int = 1                  # --n-samples: Russian-roulette draws of the number of terms
    n_exact_terms: int = 2              # --n-exact-terms
    neumann_grad: bool = True           # --neumann-grad
    mem_eff: bool = True                # --mem-eff: the log-det's gradient in the forward pass
    logit_alpha: float = 0.05           # the logit transform's alpha: 1e-6 for mnist, else 0.05 (the public code)
    n_bits_x: int = 8                   # --nbits
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, 'image_shape', tuple(int(d) for d in self.image_shape))
        object.__setattr__(self, 'n_blocks', tuple(int(n) for n in self.n_blocks))
        self.validate()

    def validate(self):
        self.validate_image()
        if self.activation not in LIPSCHITZ_ACTIVATIONS:
            raise ValueError(f'unknown activation {self.activation!r}; allowed: {described(LIPSCHITZ_ACTIVATIONS)}')
        if self.n_dist not in ROULETTE_DISTRIBUTIONS:
            raise ValueError(f'unknown n_dist {self.n_dist!r}; allowed: {described(ROULETTE_DISTRIBUTIONS)}')
        if not 0. < self.coeff < 1.:
            raise ValueError(f'coeff must be in (0, 1) for an invertible block, got {self.coeff}')
        if not 0. < self.logit_alpha < 0.5:
            raise ValueError(f'logit_alpha must be in (0, 0.5), got {self.logit_alpha}')
        if not (math.isfinite(self.sn_tol) and self.sn_tol >= 0.):
            raise ValueError(f'sn_tol must be a finite tolerance >= 0, got {self.sn_tol}')
        limits.check_memory(self)
