"""``python -m spillway``: the same as the ``spillway`` console script."""

import sys

from spillway.main import main

sys.exit(main())
