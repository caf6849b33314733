"""The service class's methods called directly (in-process), on the real artifacts.

The single-record tabular methods are ``async`` (they go through the per-model micro-batcher):
in-process callers await them.
"""

import asyncio
import math

import pytest

from tests.utils.payloads import BINARY, EXAMPLES, assert_close, mri_test_image
from vitalcheck.catalog import TABULAR_MODELS
from vitalcheck.predictors.tabular import records_to_frame
from vitalcheck.schemas.fitbit import FitbitInput
from vitalcheck.schemas.hospital import HospitalQuery
from vitalcheck.training.loaders import data_file, load


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_method_equals_pipeline(svc, service_module, name):
    record = service_module.INPUT_MODELS[name].model_validate(EXAMPLES[name])
    answer = asyncio.run(getattr(svc, name)(record))
    predictor = svc.api.registry.tabular[name]
    expected = predictor.outputs(records_to_frame(TABULAR_MODELS[name], [EXAMPLES[name]]))[0]
    prediction = answer.prediction
    if name in BINARY:
        assert prediction.probability == pytest.approx(expected[1], abs=1e-12)
    elif name == "sleep":
        assert list(prediction.probabilities.values()) == pytest.approx(list(expected), abs=1e-12)
    elif name == "insurance":
        assert [prediction.charges_usd, prediction.lower_usd, prediction.upper_usd] == pytest.approx(list(expected))
    else:
        assert prediction.life_expectancy_years == pytest.approx(float(expected))
    assert answer.model.sha256 == predictor.card.sha256


def test_contributors_add_up_to_the_served_log_odds(svc, service_module):
    """Through the service method: base + Σ contributions is the log-odds of the served probability."""
    record = service_module.INPUT_MODELS["heart"].model_validate(EXAMPLES["heart"])
    prediction = asyncio.run(svc.heart(record)).prediction
    explanation = prediction.explanation
    assert explanation.base_value + sum(explanation.contributions.values()) == pytest.approx(
        explanation.output_value, abs=1e-9
    )
    assert 1 / (1 + math.exp(-explanation.output_value)) == pytest.approx(prediction.probability, abs=1e-12)
    for contributor in prediction.contributors:
        assert contributor.contribution == explanation.contributions[contributor.feature]


def test_risk_levels_follow_settings(svc, settings, service_module):
    batch = service_module.INPUT_MODELS["stroke"].model_validate(EXAMPLES["stroke"])
    prediction = asyncio.run(svc.stroke(batch)).prediction
    if prediction.probability >= settings.risk_high_threshold:
        assert prediction.risk_level == "high"
    elif prediction.probability >= settings.risk_moderate_threshold:
        assert prediction.risk_level == "moderate"
    else:
        assert prediction.risk_level == "low"


def test_extrapolation_warning_names_field_not_value(svc, service_module):
    payload = {**EXAMPLES["insurance"], "bmi_kg_m2": 69.5}
    record = service_module.INPUT_MODELS["insurance"].model_validate(payload)
    warnings = asyncio.run(svc.insurance(record)).warnings
    assert any(w.startswith("bmi_kg_m2: outside the training range") for w in warnings)
    assert not any("69.5" in w for w in warnings)


def test_brain_tumor_reads_real_slices(svc, data_dir):
    for label in ("glioma", "meningioma", "notumor", "pituitary"):
        answer = asyncio.run(svc.brain_tumor(mri_test_image(data_dir, label)))
        assert answer.prediction.predicted_class in answer.prediction.probabilities


def test_fitbit_and_hospital(svc):
    percentiles = svc.fitbit_percentiles(FitbitInput(total_steps=8000, minutes_asleep=400)).prediction.percentiles
    assert [p.metric for p in percentiles] == ["total_steps", "minutes_asleep"]
    result = svc.hospital_analytics(HospitalQuery(week_from=10, week_to=12)).prediction
    assert result.summary.n_rows == len(result.rows) == 12
    assert result.summary.total_patients_request == sum(r.patients_request for r in result.rows)


@pytest.mark.parametrize("name", ["diabetes", "stroke", "insurance", "sleep"])
def test_concurrent_single_calls_are_batched_and_each_gets_its_own_answer(svc, service_module, data_dir, name):
    """40 concurrent calls on real rows: fewer vectorised calls than requests, and every answer
    (prediction, contributors, warnings) equals what that record gets alone."""
    X, _ = load(name, data_file(name, data_dir))
    rows = X.sample(40, random_state=1)
    records = [
        service_module.INPUT_MODELS[name].model_validate(r)
        for r in rows.astype(object).where(rows.notna(), None).to_dict("records")
    ]
    batcher = svc.batchers[name]
    calls_before, items_before = batcher.batches, batcher.items

    async def concurrently():
        return await asyncio.gather(*(getattr(svc, name)(r) for r in records))

    answers = asyncio.run(concurrently())
    assert batcher.items - items_before == len(records)
    assert batcher.batches - calls_before < len(records)
    for record, answer in zip(records, answers, strict=True):
        assert_close(answer.model_dump(mode="json"), svc.api.single(name, record).model_dump(mode="json"))


SERVE_AND_LIST_MODULES = """
import asyncio, json, sys
import service
svc = service.VitalCheck()
from tests.utils.payloads import EXAMPLES, mri_test_image
record = service.INPUT_MODELS["insurance"].model_validate(EXAMPLES["insurance"])
asyncio.run(svc.insurance(record))
svc.insurance_file(__import__("pathlib").Path(sys.argv[1]))
print(json.dumps(sorted(m for m in sys.modules if m.startswith(("vitalcheck.training", "vitalcheck.batch")))))
"""


def test_a_serving_worker_loads_no_training_module(model_store, data_dir, tmp_path):
    """The Bento leaves vitalcheck/training/ out: a worker that has loaded and served a record and a file must not need it."""
    import json
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    upload = tmp_path / "rows.csv"
    upload.write_text("\n".join(data_file("insurance", data_dir).read_text().splitlines()[:20]) + "\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", SERVE_AND_LIST_MODULES, str(upload)],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.splitlines()[-1]) == []


def test_a_server_without_a_token_warns_at_start(service_module, monkeypatch, caplog):
    monkeypatch.setattr(service_module, "SETTINGS", service_module.SETTINGS.model_copy(update={"api_token": None}))
    monkeypatch.setenv("VITALCHECK_SKIP_PREFLIGHT", "1")
    service_module.VitalCheck.inner.check_artifacts()
    assert service_module.NO_TOKEN_WARNING in caplog.text
    caplog.clear()
    monkeypatch.setattr(service_module, "SETTINGS", service_module.SETTINGS.model_copy(update={"api_token": "x" * 16}))
    service_module.VitalCheck.inner.check_artifacts()
    assert service_module.NO_TOKEN_WARNING not in caplog.text
