"""`python -m zero1to3 ...`: see `zero1to3.cli`."""

import sys

from zero1to3.cli import main

sys.exit(main())
