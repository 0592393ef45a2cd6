"""`data_utils.data` is `emerging.data.images` (data_utils/__init__.py says why)."""
import sys

from emerging.data import images

sys.modules[__name__] = images
