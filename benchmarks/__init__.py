"""VitalCheck benchmarks (issue #5): what loading once buys, side by side with the original design.

``python -m benchmarks`` (or ``make bench``) starts every contender on this machine, drives the
same requests at all of them, interleaved, with ``wrk`` (closed loop, fixed request counts), and
writes ``benchmarks/results/REPORT.md`` with PNG plots. ``BENCH_QUICK=1`` runs a 2-3 minute smoke
version. See ``benchmarks/run.py`` for the order of events and ``docs/BENCHMARKS.md`` for results.
"""
