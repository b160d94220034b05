"""`python -m edge.daemon --config FILE`: the daemon without the CLI around it."""

import sys

from edge.daemon._main import main

sys.exit(main())
