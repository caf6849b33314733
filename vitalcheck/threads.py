"""Size the native thread pools of a serving process before NumPy, scikit-learn or OpenMP load.

Imported for its effect, first thing in ``service.py``. OpenMP and OpenBLAS read these
variables once, when they load; setting them later (or with ``threadpoolctl`` from the
main thread) does not reach the worker threads that run API calls. Single-record
predictions only lose from extra threads, and on a small machine OpenMP threads spinning
against another busy process made a 2 ms prediction take seconds. Variables already set
in the environment win; otherwise ``VITALCHECK_COMPUTE_THREADS`` (default 1) applies.
"""

import os

from vitalcheck.settings import get_settings

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, str(get_settings().compute_threads))
