"""`data_utils.tfrecords` is `emerging.data.tfrecords` (data_utils/__init__.py says why)."""
import sys

from emerging.data import tfrecords

sys.modules[__name__] = tfrecords
