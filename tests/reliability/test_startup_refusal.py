"""`bentoml serve` refuses to start, within a bounded time and with a non-zero exit, for every damage.

Every damage, golden drift included, is refused by the service's ``@bentoml.on_deployment`` check
(:func:`vitalcheck.preflight.check_before_workers`, which loads everything in a child process)
before any worker is spawned.

Slow (one server start each): run by `make reliability`, not `make test`.
"""

import os
import time

import pytest

from tests.utils.serving import DAMAGES, damaged_copy, run_until_exit

pytestmark = [pytest.mark.slow, pytest.mark.integration]

REFUSAL_BOUND_S = 60
"""A refused start must end within this many seconds (the ready timeout is 90 s)."""


@pytest.mark.parametrize("kind", list(DAMAGES))
def test_serve_refuses(model_store, settings, tmp_path, kind, record_property):
    home, tables, marker = damaged_copy(kind, model_store, settings.reference_dir, tmp_path)
    env = {**os.environ, "BENTOML_HOME": str(home), "VITALCHECK_REFERENCE_DIR": str(tables)}
    started = time.monotonic()
    status, output, seconds = run_until_exit(env, timeout=REFUSAL_BOUND_S)
    record_property("refusal_seconds", round(time.monotonic() - started, 1))
    assert status is not None, f"still running after {REFUSAL_BOUND_S} s:\n{output[-3000:]}"
    assert status != 0, output[-3000:]
    assert "refuses to start" in output, output[-3000:]
    assert DAMAGES[kind] in output, output[-3000:]
    assert "Starting production HTTP BentoServer" not in output, "workers were started"
    assert not marker.exists(), "the tampered pickle was unpickled"
