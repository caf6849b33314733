"""Fixtures of the plausibility suite: one :class:`~tests.plausibility.support.Task` per tabular model.

The suite is the acceptance check of the "plausible, bounded, explained" issue: it compares each served
model with itself under medical and statistical rules (no expected outputs are stored). Measured
figures (worst tail variation, calibration and out-of-distribution facts) are printed at the end of
the run.
"""

import pytest

from tests.plausibility.support import REPORT, load_task


@pytest.fixture(scope="session")
def tasks(svc, service_module, data_dir):
    """name → Task, loaded on first use."""
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = load_task(svc, service_module, data_dir, name)
        return cache[name]

    return get


def pytest_terminal_summary(terminalreporter):
    if not REPORT:
        return
    terminalreporter.section("plausibility: measured figures")
    for section, lines in REPORT.items():
        terminalreporter.write_line(f"{section}:")
        for line in lines:
            terminalreporter.write_line(f"  {line}")
