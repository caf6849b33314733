"""vitalcheck.compiled: the compiled serving form against the pickle, its storage and its refusals.

The load-time check compares the compiled form with the pickle on the golden and 1,000 generated
records; these tests add the cases random records rarely hit (values exactly on a knot or a
threshold, just beside one, a micro-batch large enough to take the other search path) and try to
make a tampered or stale stored form serve.
"""

import dataclasses
import shutil
import subprocess
import sys

import numpy as np
import pytest

from vitalcheck import compiled as compiled_module
from vitalcheck.cards import ArtifactCheckError
from vitalcheck.catalog import TABULAR_MODELS
from vitalcheck.compiled import CompiledModel, _positions
from vitalcheck.predictors.tabular import GOLDEN_TOLERANCE, TabularPredictor, generated_records, records_to_frame

MODELS = list(TABULAR_MODELS)


def test_positions_equal_searchsorted_on_both_paths():
    """The broadcast comparison and the per-field search give searchsorted's 'left' index, ties included."""
    rng = np.random.default_rng(0)
    lengths = np.array([5, 1, 12, 3])
    rows = [np.sort(rng.choice(np.arange(20.0), size=k, replace=False)) for k in lengths]
    breaks = np.full((4, 12), np.inf)
    for g, r in enumerate(rows):
        breaks[g, : len(r)] = r
    x = rng.choice(np.arange(-1.0, 21.0, 0.5), size=(3000, 4))  # many exact ties with breakpoints
    expected = np.column_stack([np.searchsorted(r, x[:, g], side="left") for g, r in enumerate(rows)])
    np.testing.assert_array_equal(_positions(breaks, lengths, x[:2]), expected[:2])  # comparison path
    assert 3000 * breaks.size > compiled_module.SEARCH_CELLS
    np.testing.assert_array_equal(_positions(breaks, lengths, x), expected)  # per-field path


def _edge_records(predictor, per_field=40):
    """Records whose numeric values sit exactly on, and one float either side of, each breakpoint."""
    spec, terms = predictor.spec, predictor.terms
    base = generated_records(spec, 1, seed=3)[0]
    breakpoints = {}
    for g, j in enumerate(terms.curve_field):
        breakpoints[int(j)] = terms.curve_knots[g, : terms.curve_length[g]]
    for g, j in enumerate(terms.step_field):
        if spec.features[int(j)].type != "category":
            breakpoints[int(j)] = terms.step_thresholds[g, : terms.step_length[g]]
    records = []
    for j, points in breakpoints.items():
        feature = spec.features[j]
        for point in points[:: max(1, len(points) // per_field)]:
            for value in (np.nextafter(point, -np.inf), point, np.nextafter(point, np.inf)):
                if feature.type == "integer" and value != round(value):
                    continue
                record = dict(base)
                record[feature.name] = bool(value) if feature.type == "boolean" else float(value)
                if feature.type == "integer":
                    record[feature.name] = int(value)
                records.append(record)
    return records


@pytest.mark.parametrize("name", MODELS)
def test_compiled_equals_the_pickle_on_and_beside_every_breakpoint(svc, name):
    predictor = svc.api.registry.tabular[name]
    records = _edge_records(predictor)
    assert records
    frame = records_to_frame(predictor.spec, records)
    served = predictor.explained(records)
    reference = predictor.reference_explained(frame)
    outputs = np.asarray(predictor.served_outputs(served)).reshape(len(records), -1)
    expected = np.asarray(predictor.outputs(frame)).reshape(len(records), -1)
    assert np.max(np.abs(outputs - expected)) <= GOLDEN_TOLERANCE
    assert np.max(np.abs(served.shap - reference.shap)) <= GOLDEN_TOLERANCE
    np.testing.assert_array_equal(served.ood, reference.ood)


@pytest.mark.parametrize("name", ["breast_cancer", "insurance"])
def test_a_large_micro_batch_gives_each_record_s_own_answer_bit_for_bit(svc, name):
    """Above SEARCH_CELLS the search takes the per-field path: the answers must not move."""
    predictor = svc.api.registry.tabular[name]
    records = generated_records(predictor.spec, 400, seed=5)
    together = predictor.explained(records)
    assert len(records) * predictor.terms.curve_knots.size > compiled_module.SEARCH_CELLS
    for i in range(0, 400, 37):
        alone = predictor.explained([records[i]])
        np.testing.assert_array_equal(alone.raw[0], together.raw[i])
        np.testing.assert_array_equal(alone.shap[0], together.shap[i])
        assert alone.ood[0] == together.ood[i]


def test_a_stored_form_round_trips_exactly(svc, tmp_path):
    predictor = svc.api.registry.tabular["insurance"]
    path = tmp_path / "form.npz"
    predictor.compiled.save(path)
    loaded = CompiledModel.load(path)
    values = predictor.compiled.encode(generated_records(predictor.spec, 50))
    for a, b in zip(predictor.compiled.models, loaded.models, strict=True):
        np.testing.assert_array_equal(a.raw(values), b.raw(values))
    np.testing.assert_array_equal(predictor.compiled.ood_percentile(values), loaded.ood_percentile(values))
    assert set(loaded.reference) == set(predictor.compiled.reference)


def _store_copy(svc, name, tmp_path):
    predictor = svc.api.registry.tabular[name]
    folder = tmp_path / name
    folder.mkdir()
    spec = predictor.spec
    for file in (spec.artifact, spec.card_file, spec.compiled_file):
        shutil.copy2(predictor._directory / file, folder / file)
    return spec, folder


def _rewrite(path, change):
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    change(arrays)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def test_a_tampered_compiled_form_is_refused_by_a_worker(svc, tmp_path):
    spec, folder = _store_copy(svc, "diabetes", tmp_path)
    assert TabularPredictor.load(spec, folder, "t:1").compiled.reference  # the untouched copy loads

    def shift_a_curve(arrays):
        arrays["m0_curve_values"] = arrays["m0_curve_values"] + 1e-3

    _rewrite(folder / spec.compiled_file, shift_a_curve)
    with pytest.raises(ArtifactCheckError, match="compiled form differs from the card's golden outputs"):
        TabularPredictor.load(spec, folder, "t:1")


def test_recorded_answers_that_agree_with_a_tampered_form_are_caught_by_the_pickle_check(svc, tmp_path):
    """A worker trusts the recorded answers; the check before workers recomputes them from the pickle."""
    spec, folder = _store_copy(svc, "heart", tmp_path)
    predictor = TabularPredictor.load(spec, folder, "t:1")
    terms = predictor.compiled.models[0]
    golden = predictor.compiled.encode([g["input"] for g in predictor.card.golden])
    values = terms.curve_values.copy()
    for g, j in enumerate(terms.curve_field):  # a curve's top segment that no golden record reaches
        last = terms.curve_length[g] - 1
        if np.all(golden[:, j] < terms.curve_knots[g, last - 1]):
            values[:, g, last] += 0.5
            break
    else:
        pytest.fail("every curve's top segment holds a golden record")
    forged = dataclasses.replace(terms, curve_values=values)
    tampered = dataclasses.replace(predictor.compiled, models=(forged,))
    fake = TabularPredictor.load(spec, folder, "t:1")
    fake.compiled, fake.terms = tampered, forged
    _, own = fake.compiled_answers(fake.check_records())
    tampered.with_reference(own).save(folder / spec.compiled_file)
    TabularPredictor.load(spec, folder, "t:1")  # consistent with itself: a worker cannot tell
    with pytest.raises(ArtifactCheckError, match="differs from the pickle"):
        TabularPredictor.load(spec, folder, "t:1", check_pickle=True)


def test_an_older_or_missing_form_is_compiled_from_the_pickle(svc, tmp_path):
    spec, folder = _store_copy(svc, "sleep", tmp_path)
    _rewrite(folder / spec.compiled_file, lambda arrays: arrays.update(format=np.asarray(0)))
    stale = TabularPredictor.load(spec, folder, "t:1")
    (folder / spec.compiled_file).unlink()
    missing = TabularPredictor.load(spec, folder, "t:1")
    records = generated_records(spec, 20)
    np.testing.assert_array_equal(stale.explained(records).raw, missing.explained(records).raw)


def test_an_unreadable_form_refuses_the_start(svc, tmp_path):
    spec, folder = _store_copy(svc, "stroke", tmp_path)
    (folder / spec.compiled_file).write_bytes(b"PK\x03\x04 not a zip archive")
    with pytest.raises(ArtifactCheckError, match="could not be read"):
        TabularPredictor.load(spec, folder, "t:1")


def test_a_worker_s_load_imports_no_scikit_learn(model_store):
    """Serving answers from the compiled form: a worker neither unpickles nor imports scikit-learn."""
    code = (
        "import sys, service; service.load_registry(); "
        "print(sorted(m for m in ('sklearn', 'scipy', 'joblib') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=".")
    assert done.stdout.strip().splitlines()[-1] == "[]"
