"""``python -m vadpack`` is the ``vadpack`` command."""

import sys

from pipeline.cli import main

sys.exit(main())
