"""`data_utils.tabular` is `emerging.data.tabular` (data_utils/__init__.py says why)."""
import sys

from emerging.data import tabular

sys.modules[__name__] = tabular
