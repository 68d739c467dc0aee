"""``python -m snnjax.bench cost ...``: the same as ``snnjax bench cost ...``."""

import sys

from snnjax.bench.command import main

sys.exit(main())
