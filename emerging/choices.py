"""Every choice table of the library, written once (TensorFlow-free).

The flag parsers take their `choices` and help texts from here, the
configurations validate against these tables, and the layers build from
them, so that a code or a name means the same thing everywhere.
"""

#: --flow_permutation: code -> (name, the invertible layers between actnorm and coupling, data -> latent order)
FLOW_PERMUTATIONS = {
    0: ('reverse', ('reverse',)),
    1: ('shuffle', ('shuffle',)),
    2: ('1x1 conv', ('1x1',)),
    3: ('emerging (1x1 + emerging conv)', ('1x1', 'emerging')),
    4: ('periodic (Fourier) conv', ('periodic',)),
    5: ('1x1 conv + autoregressive (MAF)', ('1x1', 'maf_lower', 'maf_upper')),
}
#: --flow_coupling: code -> name
COUPLINGS = {0: 'additive', 1: 'affine'}
#: --decomposition of the 1x1 convolution: value -> name ('LU' is PLU, as in the original)
DECOMPOSITIONS = {'': 'plain', 'PLU': 'PLU', 'LU': 'PLU', 'QR': 'QR'}
#: --compute_dtype of the coupling networks
COMPUTE_DTYPES = ('float32', 'bfloat16', 'float16')
#: --optimizer of train.py (the original's; train_resflow.py takes the first two)
OPTIMIZERS = ('adam', 'adamax', 'adam2')
#: activations of a residual block's network ('swish' is the Residual Flows code's name for LipSwish)
LIPSCHITZ_ACTIVATIONS = ('swish', 'lipswish', 'elu', 'softplus')
#: activations of the residual blocks on vectors (emerging.vector.residual; --act of train_resflow_toy.py, whose
#: public train_toy.py offers relu, tanh, elu, selu, fullsort, maxmin, swish, lcube): all 1-Lipschitz but selu
VECTOR_ACTIVATIONS = LIPSCHITZ_ACTIVATIONS + ('relu', 'tanh', 'selu', 'lcube', 'fullsort', 'maxmin')
#: distributions of the Russian-roulette number of power-series terms
ROULETTE_DISTRIBUTIONS = ('poisson', 'geometric')
#: flows on vectors (emerging.vector.build_flow)
VECTOR_FLOWS = ('bnaf', 'maf', 'realnvp')
#: a BNAF network's residual: flag value -> the network's argument
BNAF_RESIDUALS = {'none': None, 'normal': 'normal', 'gated': 'gated'}
#: the weights of a run: best validation checkpoint, latest epoch, latest Polyak averages
WEIGHTS = ('best', 'latest', 'polyak')
#: temperatures of the sample grids a run writes (and `emerging sample`'s default)
TEMPERATURES = (0., .25, .5, .6, .7, .8, .9, 1.)


def described(table) -> str:
    """'0 (reverse), 1 (shuffle), ...' for a {code: name or (name, ...)} table, or 'a, b' for a tuple.

    Args:
      table: a dict of codes to names (or to tuples whose first entry is the name), or a tuple of names.

    Returns:
      The allowed values as one line, for error messages and help texts.
    """
    if isinstance(table, dict):
        return ', '.join(f'{code!r} ({name[0] if isinstance(name, tuple) else name})' for code, name in table.items())
    return ', '.join(str(value) for value in table)
