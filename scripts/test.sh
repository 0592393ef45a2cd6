#!/usr/bin/env bash
# Installs everything (scripts/setup.sh), runs the linter (ruff.toml), then the
# whole test suite, including a real two-process mpiexec Horovod run.  Extra
# arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check --quiet .
export TF_CPP_MIN_LOG_LEVEL=2 CUDA_VISIBLE_DEVICES=
exec .venv/bin/python -m pytest -q "$@" tests
