"""`data_utils.toy2d` is `emerging.data.toy2d` (data_utils/__init__.py says why)."""
import sys

from emerging.data import toy2d

sys.modules[__name__] = toy2d
