"""The only module that imports Horovod: rank, size, allreduce, allgather, broadcast.

Without Horovod installed (or when its import fails) everything runs as one
process and `Distributed.note` says so once.  Under `mpiexec -n N` or
`horovodrun -np N` each process takes its rank from Horovod; with GPUs each
process is pinned to the GPU of its local rank.
"""
import tensorflow as tf

try:
    import horovod.tensorflow as hvd
    _IMPORT_ERROR = None
except Exception as error:  # ImportError, or a Horovod built against another TensorFlow
    hvd, _IMPORT_ERROR = None, error


class Distributed:
    """This process's place among the training processes, and the collective operations over them.

    `rank` (0 .. `size` - 1), `size` and `is_chief` (rank 0); `note` a line saying how training runs.  On one
    process every collective operation is the identity.

    Args:
      use_horovod: use Horovod when it can be imported: it is initialised and, with GPUs, this process sees
        only the GPU of its local rank (with memory growth on).  False, or Horovod missing: one process.
    """

    def __init__(self, use_horovod: bool = True):
        self.hvd = hvd if use_horovod else None
        if self.hvd is not None:
            self.hvd.init()
            gpus = tf.config.list_physical_devices('GPU')
            if gpus:
                for gpu in gpus:
                    tf.config.experimental.set_memory_growth(gpu, True)
                tf.config.set_visible_devices(gpus[self.hvd.local_rank() % len(gpus)], 'GPU')
            self.note = f'Horovod: process {self.hvd.rank()} of {self.hvd.size()}'
        else:
            reason = 'disabled' if not use_horovod else f'not available ({_IMPORT_ERROR})'
            self.note = f'Horovod {reason}: training as a single process'

    @property
    def rank(self):
        return self.hvd.rank() if self.hvd else 0

    @property
    def size(self):
        return self.hvd.size() if self.hvd else 1

    @property
    def is_chief(self):
        return self.rank == 0

    def allreduce_mean(self, tensors, name=None):
        """Average a list of tensors over processes (identity on one process)."""
        if self.hvd is None or self.size == 1:
            return list(tensors)
        return [self.hvd.allreduce(t, op=self.hvd.Average, name=f'{name}_{i}' if name else None)
                for i, t in enumerate(tensors)]

    def allgather(self, tensor, name=None):
        """Concatenate every process's `tensor` along axis 0, in rank order (identity on one process)."""
        if self.hvd is None or self.size == 1:
            return tensor
        return self.hvd.allgather(tf.convert_to_tensor(tensor), name=name)

    def agree(self, counts, name):
        """Every process's integer counts summed over processes (the counts themselves on one process).

        Args:
          counts: a list of Python ints, the same length on every process.
          name: the collective's name, the same on every process.

        Returns:
          The summed counts as a list of Python ints.
        """
        if self.hvd is None or self.size == 1:
            return list(counts)
        summed = self.hvd.allreduce(tf.constant(counts, tf.int64), op=self.hvd.Sum, name=name)
        return [int(c) for c in summed.numpy()]

    def barrier(self, name):
        """Return only when every process has reached this call (at once on one process).

        Args:
          name: the collective's name, the same on every process.
        """
        self.agree([0], name)

    def broadcast_variables(self, variables, root_rank=0):
        if self.hvd is not None and self.size > 1:
            self.hvd.broadcast_variables(list(variables), root_rank=root_rank)
