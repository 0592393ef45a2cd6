"""`python -m emerging ...`: the `emerging` command line."""
import sys

from emerging.cli import main

sys.exit(main())
