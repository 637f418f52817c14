"""`python -m labs.engine.cli ...`: the `lab` command without the console script."""

import sys

from labs.engine.cli import main

sys.exit(main())
