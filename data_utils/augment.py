"""`data_utils.augment` is `emerging.data.augment` (data_utils/__init__.py says why)."""
import sys

from emerging.data import augment

sys.modules[__name__] = augment
