"""`bentoml build`: the Bento holds all eight models and both reference tables."""

import subprocess
import sys
from pathlib import Path

import bentoml
import pytest

from vitalcheck.catalog import MODELS, REFERENCE_TABLES

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_bento_holds_every_model_and_table(model_store):
    bentoml_cli = str(Path(sys.executable).parent / "bentoml")
    result = subprocess.run(
        [bentoml_cli, "build", "--output", "tag"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    bento = bentoml.get("vitalcheck:latest")
    packed = {model.tag.name for model in bento.info.all_models}
    assert packed == {spec.store_name for spec in MODELS.values()}
    source = Path(bento.path) / "src"
    for table in REFERENCE_TABLES.values():
        assert (source / "reference" / table).is_file()
    assert (source / "service.py").is_file()
    assert not (source / "artifacts").exists()
