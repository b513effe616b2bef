"""``python -m steerlm.server``: same as ``steerlm-server``."""

import sys

from steerlm.server.cli import main

sys.exit(main())
