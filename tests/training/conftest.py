"""Fixtures of the tabular-model tests.

``tabular_artifacts`` uses the artifacts directory from the settings when it holds all seven
pickles and cards; otherwise (or with ``VITALCHECK_TEST_RETRAIN=1``) it trains the seven
models once into a temporary directory (about a minute).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vitalcheck.catalog import TABULAR_MODELS


def _complete(directory: Path) -> bool:
    return all(
        (directory / s.artifact).is_file() and (directory / s.card_file).is_file() for s in TABULAR_MODELS.values()
    )


@pytest.fixture
def one_thread():
    """Keep OpenMP/BLAS to one thread: the machine is shared, and oversubscribed OpenMP makes small predicts slow."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="session")
def tabular_artifacts(settings, data_dir, tmp_path_factory) -> Path:
    if _complete(settings.artifacts_dir) and os.environ.get("VITALCHECK_TEST_RETRAIN") != "1":
        return settings.artifacts_dir
    from vitalcheck.training.tabular import train_model

    out = tmp_path_factory.mktemp("artifacts")
    for name in TABULAR_MODELS:
        train_model(name, data_dir, out)
    return out
