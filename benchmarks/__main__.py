"""Entry point: ``python -m benchmarks`` runs the whole comparison (see :mod:`benchmarks.run`)."""

import sys

from benchmarks.run import main

sys.exit(main())
