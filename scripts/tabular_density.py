"""Tabular density estimation (POWER, GAS, HEPMASS, MINIBOONE, BSDS300) with BNAF, MAF or RealNVP
(emerging/cli/tabular.py)."""
import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from emerging.cli.tabular import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
