"""Input pipelines (never imports the model)."""
from data_utils.data import (DEFAULT_IMAGE_SIZE, N_Y, PROBLEMS, TFRECORD_PROBLEMS, Data, DataConfig,  # noqa: F401
                             default_n_test, get_data)
