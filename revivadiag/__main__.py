import sys

from revivadiag.cli import main

sys.exit(main())
