"""VitalCheck benchmarks: issue #14's targets (compiled inference) and issue #5's comparison with the original design.

``python -m benchmarks`` (or ``make bench``) measures the in-process floor, starts every contender on
this machine, drives the same requests at all of them, interleaved, with ``wrk`` (closed loop, fixed
request counts), and writes ``benchmarks/results/REPORT.md`` with PNG plots. ``BENCH_QUICK=1`` runs a
3-4 minute smoke version. See ``benchmarks/run.py`` for the order of events and ``docs/BENCHMARKS.md``
for results.
"""
