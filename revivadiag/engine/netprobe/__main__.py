"""``python3 -m netprobe``: JSON jobs in, JSON results out."""

import sys

from . import main

sys.exit(main())
