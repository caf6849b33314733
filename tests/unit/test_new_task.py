"""Adding a model (CONTRIBUTING.md): a toy task served by the same code as the eight real ones.

The toy task is one catalog record (:class:`vitalcheck.catalog.ModelSpec`) and a tiny boosted
additive pipeline (:func:`vitalcheck.training.pipelines.additive_pipeline`, age constrained to
raise the risk) fitted here, with its card built by the training helpers. Nothing else is registered anywhere:
the predictor class, the request model, source-format parsing, batch scoring and the API all
work from the record. The registry is a substitute holding only the toy predictor (the original
design's injected registry), so these tests need no model store.
"""

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from vitalcheck.api import VitalCheckAPI
from vitalcheck.batch.scoring import output_columns, score_frame
from vitalcheck.catalog import FeatureSpec, ModelSpec
from vitalcheck.predictors.tabular import BinaryRiskPredictor, TabularPredictor
from vitalcheck.registry import Registry
from vitalcheck.schemas.common import batch_input_model, tabular_input_model
from vitalcheck.training.pipelines import additive_pipeline

TOY = ModelSpec(
    name="toy",
    store_name="vitalcheck-toy",
    artifact="toy_pipeline.pkl",
    kind="classifier",
    task="Probability of the toy outcome.",
    dataset="toy",
    route="/api/v1/risk/toy",
    classes=("no_outcome", "outcome"),
    features=(
        FeatureSpec("age_years", "integer", "Age.", "Age", "years", 18, 100, direction=1, direction_source="ada"),
        FeatureSpec("glucose_mg_dl", "number", "Glucose.", "Glucose", "mg/dL", 40, 300, nullable=True, zero_means_missing=True),
        FeatureSpec("smoker", "boolean", "Smokes.", "Smoker"),
        FeatureSpec("region", "category", "Region.", "Region", categories=("north", "south")),
    ),
)  # fmt: skip
EXAMPLE = {"age_years": 50, "glucose_mg_dl": 120.0, "smoker": True, "region": "north"}


@pytest.fixture(scope="module")
def toy_store(tmp_path_factory):
    """The fitted toy pipeline and its card in a folder, as ``import_models.py`` would store them."""
    import joblib

    from vitalcheck.training.model_cards import card_features, framework_versions, new_card, write_card
    from vitalcheck.training.tabular import golden_examples
    from vitalcheck.training.trust import explanation_method

    rng = np.random.default_rng(0)
    n = 300
    X = pd.DataFrame(
        {
            "age_years": rng.integers(18, 90, n).astype("int64"),
            "glucose_mg_dl": rng.uniform(60, 250, n),
            "smoker": rng.random(n) < 0.3,
            "region": rng.choice(["north", "south"], n).astype(object),
        }
    )
    logit = 0.04 * (X.age_years - 50) + 0.02 * (X.glucose_mg_dl - 120) + 0.8 * X.smoker
    y = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "outcome", "no_outcome").astype(object)
    pipeline = additive_pipeline(TOY, max_iter=50).fit(X, y)
    folder = tmp_path_factory.mktemp("toy-store")
    joblib.dump(pipeline, folder / TOY.artifact)
    card = new_card(
        TOY,
        folder / TOY.artifact,
        framework="scikit-learn",
        versions=framework_versions(),
        estimator="boosted additive model (toy)",
        candidates={},
        features=card_features(TOY, X),
        output={"meaning": "probability of 'outcome'", "classes": list(TOY.classes)},
        dataset={"file": "toy.csv", "rows_total": n, "rows_train": n, "rows_test": 0, "provenance": "synthetic", "licence": "CC0"},
        split="none (a test fixture)",
        metrics={},
        baseline_metrics={},
        golden=golden_examples(TOY, pipeline, X, [0, 1, 2]),
        extra={"explanation": explanation_method(TOY)},
    )  # fmt: skip
    write_card(card, folder / TOY.card_file)
    return folder


@pytest.fixture(scope="module")
def toy_api(toy_store, settings):
    """The API over a substitute registry that holds only the toy predictor."""
    predictor = TabularPredictor.load(TOY, toy_store, "vitalcheck-toy:1")
    registry = Registry(tabular={"toy": predictor}, brain_tumor=None, fitbit=None, hospital=None, tables={})  # type: ignore[arg-type]
    record_model = tabular_input_model(TOY, EXAMPLE, "ToyInput")
    return VitalCheckAPI(registry, settings, {"toy": record_model}), record_model


def test_the_record_picks_the_predictor_class(toy_api):
    api, _ = toy_api
    assert type(api.registry.tabular["toy"]) is BinaryRiskPredictor


def test_a_toy_record_is_answered_like_the_pipeline(toy_api):
    api, record_model = toy_api
    envelope = api.single("toy", record_model.model_validate(EXAMPLE))
    frame = pd.DataFrame([EXAMPLE]).astype({"smoker": "float64"})
    expected = api.registry.tabular["toy"].estimator.predict_proba(frame)[0, 1]
    assert envelope.prediction.probability == pytest.approx(expected, abs=1e-12)
    assert envelope.model.tag == "vitalcheck-toy:1"
    assert {c.feature for c in envelope.prediction.contributors} <= set(TOY.feature_names)


def test_a_toy_answer_carries_its_exact_explanation(toy_api):
    api, record_model = toy_api
    prediction = api.single("toy", record_model.model_validate(EXAMPLE)).prediction
    explanation = prediction.explanation
    assert explanation.scale == "log-odds of 'outcome'"
    assert list(explanation.contributions) == TOY.feature_names
    total = explanation.base_value + sum(explanation.contributions.values())
    assert total == pytest.approx(explanation.output_value, abs=1e-9)
    assert prediction.probability == pytest.approx(1 / (1 + np.exp(-explanation.output_value)), abs=1e-12)
    ranked = sorted(explanation.contributions.items(), key=lambda kv: -abs(kv[1]))
    assert [(c.feature, c.contribution) for c in prediction.contributors] == ranked  # 4 fields: all of them
    assert [c.value for c in prediction.contributors] == [EXAMPLE[c.feature] for c in prediction.contributors]


def test_the_toy_s_direction_and_training_range_are_honoured(toy_api):
    """Age is constrained to raise the risk; an age beyond the training range is answered as at its edge."""
    api, record_model = toy_api
    card_age = api.registry.tabular["toy"]._card_features["age_years"]
    oldest = int(card_age.train_max)
    assert oldest < 100  # the sweep goes past the training range
    envelopes = [api.single("toy", record_model.model_validate({**EXAMPLE, "age_years": a})) for a in range(18, 101)]
    probabilities = [e.prediction.probability for e in envelopes]
    assert all(b >= a - 1e-12 for a, b in zip(probabilities, probabilities[1:], strict=False))  # interpolation rounding
    assert probabilities[-1] > probabilities[0]
    assert probabilities[100 - 18] == probabilities[oldest - 18]
    beyond = [w for w in envelopes[-1].warnings if w.startswith("age_years: outside the training range")]
    assert len(beyond) == 1 and "nearest edge" in beyond[0]
    assert not any(w.startswith("age_years") for w in envelopes[oldest - 18].warnings)
    missing = api.single("toy", record_model.model_validate({**EXAMPLE, "glucose_mg_dl": None}))
    assert any(w.startswith("glucose_mg_dl: missing") for w in missing.warnings)


def test_the_request_model_comes_from_the_record(toy_api):
    _, record_model = toy_api
    with pytest.raises(ValidationError) as refused:
        record_model.model_validate_json('{"age_years": 500, "glucose_mg_dl": null, "smoker": 1, "region": "east"}')
    assert {(e["loc"][0], e["type"]) for e in refused.value.errors()} == {
        ("age_years", "less_than_equal"),
        ("smoker", "bool_type"),
        ("region", "literal_error"),
    }
    batch = batch_input_model(record_model, "ToyBatchInput", 3)
    with pytest.raises(ValidationError):
        batch.model_validate({"records": [EXAMPLE] * 4})


def test_a_toy_file_in_its_source_format_is_parsed_from_the_record(toy_api, tmp_path):
    api, record_model = toy_api
    upload = tmp_path / "rows.csv"
    upload.write_text("Age,Glucose,Smoker,Region,Outcome\n50,120,yes,north,1\n61,0,no,south,0\n")
    envelope = api.file("toy", upload)
    alone = api.batch(
        "toy",
        [
            record_model.model_validate(EXAMPLE),
            record_model.model_validate({"age_years": 61, "glucose_mg_dl": None, "smoker": False, "region": "south"}),
        ],
    )
    assert envelope.model_dump() == alone.model_dump()  # 0 glucose read as missing, as the record says


def test_batch_scoring_of_a_toy_frame_uses_the_kind_s_columns(toy_api):
    api, _ = toy_api
    raw = pd.DataFrame({"Age": [50], "Glucose": [120.0], "Smoker": ["yes"], "Region": ["north"]})
    scored = score_frame(api.registry.tabular["toy"], raw, moderate=0.2, high=0.5, record_model=toy_api[1])
    assert list(scored.columns) == [c.name for c in output_columns(TOY)]
    assert scored.probability[0] == pytest.approx(
        api.single("toy", api_record(EXAMPLE, toy_api)).prediction.probability
    )


def api_record(values, toy_api):
    return toy_api[1].model_validate(values)
