#!/usr/bin/env bash
# Installs everything (scripts/setup.sh), runs the linter (ruff.toml), then the
# whole test suite, including real two-process mpiexec Horovod runs: first every
# test not marked `serial` on two pytest-xdist workers, then the `serial` ones
# (mpiexec, signals to a job, TensorBoard's port) alone in one process.  Ends
# with the suite's wall time and its 15 slowest tests, so that growth shows in
# CI's log.  Extra arguments go to both pytest runs (`-n 0` runs the first in
# one process too; both runs choose their tests with -m, so give no -m here).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check --quiet .
export TF_CPP_MIN_LOG_LEVEL=2 CUDA_VISIBLE_DEVICES=
# each test's seconds (tests/conftest.py); a file the caller names is kept, for the whole table
keep_times=${EMERGING_TEST_TIMES:+yes}
EMERGING_TEST_TIMES=${EMERGING_TEST_TIMES:-$(mktemp)}
export EMERGING_TEST_TIMES
start=$SECONDS
status=0
passed() { [ "$1" = 0 ] || [ "$1" = 5 ]; }  # 5: no test chosen (a selection without serial tests)
code=0; .venv/bin/python -m pytest -q -n 2 --dist loadfile -m "not serial" "$@" tests || code=$?
passed "$code" || status=$code
code=0; .venv/bin/python -m pytest -q -n 0 -m serial "$@" tests || code=$?
passed "$code" || status=$code
echo "the 15 slowest tests (seconds: setup + call + teardown):"
# awk reads to the end (head would close the pipe early: sort's SIGPIPE fails the script under pipefail)
sort -t$'\t' -k1,1 -rn "$EMERGING_TEST_TIMES" | awk -F'\t' 'NR <= 15 {printf "%8.1f  %s\n", $1, $2}'
echo "test suite: $(wc -l < "$EMERGING_TEST_TIMES") tests, wall time $(( (SECONDS - start) / 60 )) min $(( (SECONDS - start) % 60 )) s (exit $status)"
[ -n "$keep_times" ] || rm -f "$EMERGING_TEST_TIMES"
exit $status
