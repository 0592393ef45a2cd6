"""`python -m emerging ...`: the `emerging` command line."""
import sys

from emerging.cli.command import main

sys.exit(main())
