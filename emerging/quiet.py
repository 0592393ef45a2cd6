"""TensorFlow's start-up noise, kept out of the output of the command lines and of notebooks.

Importing TensorFlow prints, on every machine, that log messages go to stderr
before absl's logging starts (2.18 also that the cuFFT, cuDNN and cuBLAS
factories are registered twice, a harmless defect of its wheels), and on a
machine without an NVIDIA driver its first device query prints `failed call
to cuInit`.  None of it is the user's concern, and it
buried our own first lines.  TF_CPP_MIN_LOG_LEVEL cannot hide them without
also hiding TensorFlow's real errors (they are logged at the error level, some
before logging is configured).

`import emerging` calls `install()`, which puts a finder in front of
Python's import system: the first `import tensorflow` in the process runs
with the C-level stderr (file descriptor 2) going to a temporary file,
followed by the device query; then every line that is not one of those known
messages is written to stderr as it came.  On a machine with an NVIDIA driver the cuInit line is kept: there it
means the GPU is not usable.
"""
import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile

ALWAYS_NOISE = re.compile(r'Unable to register cu(FFT|DNN|BLAS) factory|'
                          r'All log messages before absl::InitializeLog\(\) is called')
NO_DRIVER_NOISE = re.compile(r'failed call to cuInit')


def has_nvidia_driver() -> bool:
    """Whether the machine has an NVIDIA kernel driver loaded (Linux)."""
    return os.path.exists('/proc/driver/nvidia/version')


def is_noise(line: str, driver: bool) -> bool:
    """Whether a stderr line of TensorFlow's start-up is one of the known harmless messages."""
    return bool(ALWAYS_NOISE.search(line)) or (not driver and bool(NO_DRIVER_NOISE.search(line)))


class _QuietLoader(importlib.abc.Loader):
    """Runs the wrapped loader of `tensorflow` with file descriptor 2 captured and filtered."""

    def __init__(self, loader):
        self.loader = loader

    def __getattr__(self, name):  # is_package, get_code, ... as the wrapped loader has them
        return getattr(self.loader, name)

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        sys.stderr.flush()
        saved = os.dup(2)
        with tempfile.TemporaryFile(mode='w+b') as captured:
            os.dup2(captured.fileno(), 2)
            try:
                self.loader.exec_module(module)
                module.config.list_physical_devices('GPU')  # the cuInit message comes with the first query
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                captured.seek(0)
                text = captured.read().decode(errors='replace')
        driver = has_nvidia_driver()
        kept = [line for line in text.splitlines(keepends=True) if not is_noise(line, driver)]
        sys.stderr.write(''.join(kept))
        sys.stderr.flush()


class _QuietTensorFlowFinder(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` once, through the rest of the import system, and wraps its loader."""

    def find_spec(self, name, path=None, target=None):
        if name != 'tensorflow':
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def install():
    """Filter the start-up noise of this process's first `import tensorflow` (no-op once it is imported)."""
    if 'tensorflow' not in sys.modules and not any(isinstance(f, _QuietTensorFlowFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowFinder())
