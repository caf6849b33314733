"""Size the native thread pools of a serving process before NumPy, scikit-learn or OpenMP load.

OpenMP and OpenBLAS read these variables once, when they load; setting them later (or with
``threadpoolctl`` from the main thread) does not reach the worker threads that run API calls.
Single-record predictions only lose from extra threads, and on a small machine OpenMP threads
spinning against another busy process made a 2 ms prediction take seconds. The service calls
:func:`size_thread_pools` before the scientific stack is imported (its module imports none of it).
"""

import os

VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def size_thread_pools(compute_threads: int) -> None:
    """Set each thread-count variable to ``compute_threads`` unless the environment already sets it."""
    for variable in VARIABLES:
        os.environ.setdefault(variable, str(compute_threads))
