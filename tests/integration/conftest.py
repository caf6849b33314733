"""Integration fixtures: one `bentoml serve` for the whole session (client round trips, log leaks)."""

import pytest

from tests.utils.serving import Served


@pytest.fixture(scope="session")
def served(model_store):
    """`bentoml serve` on 127.0.0.1 with the session's model store, token and limits; output in a log file."""
    with Served() as server:
        yield server
