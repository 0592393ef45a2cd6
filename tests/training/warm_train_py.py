"""train.py's main in a process started before it is needed: tests/cli/test_faults.py starts the next process it
will kill while the one before it trains, so that the kills do not wait for TensorFlow's start.

    python tests/training/warm_train_py.py TRAIN.PY-FLAGS...

It imports what train.py runs on, then waits for a line on its stdin: `go` runs train.py's main with the flags,
whose exit code is the process's; anything else (the end of stdin: the test stopped early) exits 0 without
training.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
import emerging.cli.launch  # noqa: E402, F401  (train.py's modules, which it imports only when it runs)
import emerging.data.images  # noqa: E402, F401
import emerging.models.registry  # noqa: E402, F401
import emerging.training.distributed  # noqa: E402, F401
import emerging.training.loop  # noqa: E402, F401
from emerging.cli import train  # noqa: E402

if __name__ == '__main__':
    sys.exit(train.main(sys.argv[1:]) if sys.stdin.readline() == 'go\n' else 0)
