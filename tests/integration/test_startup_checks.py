"""Start-up checks in-process: every damaged artifact or table is refused, naming it, without loading it.

The same damages against a real `bentoml serve` (exit status, time to refuse) are in
tests/reliability/test_startup_refusal.py (`make reliability`); the diabetes cases run in
tests/integration/test_serve.py.
"""

import pickle

import pytest

from tests.utils.serving import DAMAGES, damaged_copy, marker_pickle
from vitalcheck.cards import ArtifactCheckError
from vitalcheck.catalog import MODELS
from vitalcheck.registry import Registry, StoredArtifact

FAST = ["pickle-marker", "golden-drift", "onnx-corrupt", "card-invalid", "fitbit-missing", "hospital-corrupt"]
"""The kinds run in `make test` (each loads every model once); the slow suite runs all of DAMAGES."""


def locations(home):
    """Catalog name → the latest stored version in ``home`` (what service.load_registry builds)."""
    found = {}
    for name, spec in MODELS.items():
        folder = home / "models" / spec.store_name
        version = (folder / "latest").read_text().strip()
        found[name] = StoredArtifact(folder / version, f"{spec.store_name}:{version}")
    return found


def test_marker_pickle_works(tmp_path):
    """Control: loading the booby-trapped pickle does create its marker, so its absence below means something."""
    marker = tmp_path / "proof"
    pickle.loads(marker_pickle(marker))  # noqa: S301 (that is the point)
    assert marker.exists()


def test_undamaged_copy_loads(model_store, settings, tmp_path):
    """Control: the copies themselves are loadable, so each refusal below is due to its damage."""
    from tests.utils.serving import copy_store

    home = copy_store(model_store, tmp_path)
    registry = Registry.load(locations(home), settings.reference_dir, settings)
    assert set(registry.tabular) == {n for n in MODELS if n != "brain_tumor"}


@pytest.mark.parametrize("kind", FAST)
def test_damage_is_refused_without_loading(model_store, settings, tmp_path, kind):
    home, tables, marker = damaged_copy(kind, model_store, settings.reference_dir, tmp_path)
    with pytest.raises(ArtifactCheckError) as refused:
        Registry.load(locations(home), tables, settings)
    assert DAMAGES[kind] in str(refused.value)
    assert not marker.exists(), "the tampered pickle was unpickled"
    if kind == "golden-drift":
        assert "golden" in str(refused.value)


@pytest.mark.parametrize("kind", ["pickle-marker", "golden-drift", "hospital-schema"])
def test_the_check_before_workers_names_each_damage_on_one_line(model_store, settings, tmp_path, kind, capsys):
    """The pre-start check (a child process running the workers' whole load) refuses with status 1."""
    from vitalcheck.preflight import check_before_workers

    home, tables, marker = damaged_copy(kind, model_store, settings.reference_dir, tmp_path)
    with pytest.raises(SystemExit) as refused:
        check_before_workers(locations(home), tables)
    assert refused.value.code == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith("VitalCheck refuses to start") and len(lines) == 2, lines
    assert DAMAGES[kind] in lines[1]
    assert not marker.exists(), "the tampered pickle was unpickled"


def test_the_check_before_workers_passes_an_undamaged_store(model_store, settings):
    from vitalcheck.preflight import full_check

    assert full_check(locations(model_store), settings.reference_dir) == []
