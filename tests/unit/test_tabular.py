"""vitalcheck.predictors.tabular: served answers against the pickled pipelines, on real rows.

``TabularPredictor.predict`` makes one pass of the compiled form per micro-batch
(:meth:`~vitalcheck.predictors.tabular.TabularPredictor.explained`) and reads both the answer and
its exact SHAP explanation from it. These tests recompute the answer the plain way (the pickled
pipeline's own ``predict_proba`` / ``predict`` on :func:`records_to_frame`), check that every
explanation adds up to the output on its scale, and that the contributors are the top five of
the contributions.
"""

import numpy as np
import pytest

from tests.utils.payloads import assert_close
from vitalcheck.catalog import TABULAR_MODELS
from vitalcheck.predictors.tabular import TOP_K, records_to_frame
from vitalcheck.training.loaders import data_file, load
from vitalcheck.training.pipelines import additive_columns

MODELS = list(TABULAR_MODELS)
EXACT = 1e-9
"""Additivity of an explanation (``base + Σ contributions = output``) on its scale."""


def real_records(service_module, name, data_dir, n=60):
    X, _ = load(name, data_file(name, data_dir))
    rows = X.sample(n, random_state=2)
    dumped = rows.astype(object).where(rows.notna(), None).to_dict("records")
    return [service_module.INPUT_MODELS[name].model_validate(r) for r in dumped]


def multiclass(spec):
    return spec.kind == "classifier" and len(spec.classes) > 2


def explanations(spec, prediction):
    """``(class or None, explanation)`` of every output a prediction explains."""
    if multiclass(spec):
        return list(prediction.explanations.items())
    return [(None, prediction.explanation)]


@pytest.fixture(scope="module", params=MODELS)
def scored(request, svc, service_module, data_dir):
    """(predictor, validated records, their dumps, the predictions) for 60 real rows of one model."""
    predictor = svc.api.registry.tabular[request.param]
    records = real_records(service_module, request.param, data_dir)
    dumped = [r.model_dump() for r in records]
    return predictor, records, dumped, predictor.predict(records, moderate=0.2, high=0.5)


def test_prediction_is_the_pipeline_s_own_answer(scored):
    predictor, _, dumped, predictions = scored
    spec = predictor.spec
    frame = records_to_frame(spec, dumped)
    if spec.kind == "classifier":
        expected = predictor.estimator.predict_proba(frame)
        for prediction, row in zip(predictions, expected, strict=True):
            if multiclass(spec):
                got = [prediction.probabilities[c] for c in spec.classes]
                assert got == pytest.approx(list(row), rel=1e-12, abs=1e-12)
                assert prediction.predicted_class == spec.classes[int(np.argmax(row))]
            else:
                assert prediction.probability == pytest.approx(row[1], rel=1e-12, abs=1e-12)
    elif spec.kind == "regressor":
        expected = predictor.estimator.predict(frame)
        got = [p.life_expectancy_years for p in predictions]
        assert got == pytest.approx(list(expected), rel=1e-12, abs=1e-12)
    else:
        central, lower, upper = (np.asarray(m.predict(frame), dtype=float) for m in predictor.estimator)
        assert [p.charges_usd for p in predictions] == pytest.approx(list(central), rel=1e-12, abs=1e-12)
        assert [p.lower_usd for p in predictions] == pytest.approx(list(np.minimum(lower, central)), rel=1e-12)
        assert [p.upper_usd for p in predictions] == pytest.approx(list(np.maximum(upper, central)), rel=1e-12)
        assert all(p.lower_usd <= p.charges_usd <= p.upper_usd for p in predictions)


def test_explanation_adds_up_to_the_output_on_its_scale(scored):
    predictor, _, dumped, predictions = scored
    spec = predictor.spec
    pipeline = predictor.pipeline()
    frame = records_to_frame(spec, dumped)
    if spec.kind == "classifier":
        raw = np.asarray(pipeline.decision_function(frame), dtype=float).reshape(len(frame), -1)
    else:
        raw = np.asarray(pipeline.predict(frame), dtype=float).reshape(len(frame), 1)
    base = pipeline.named_steps["model"].explain(pipeline[:-1].transform(frame))[0]
    for i, prediction in enumerate(predictions):
        outputs = []
        for k, (label, explanation) in enumerate(explanations(spec, prediction)):
            assert list(explanation.contributions) == spec.feature_names
            total = explanation.base_value + sum(explanation.contributions.values())
            assert total == pytest.approx(explanation.output_value, rel=0, abs=EXACT), (i, label)
            assert explanation.output_value == pytest.approx(raw[i, k], rel=1e-12, abs=1e-12)
            assert explanation.base_value == pytest.approx(base[k], rel=1e-12, abs=1e-12)
            assert explanation.scale == predictor.scale(k)
            outputs.append(explanation.output_value)
        # the output on the explanation's scale is the answer
        if multiclass(spec):
            shifted = np.exp(np.array(outputs) - max(outputs))
            probabilities = [prediction.probabilities[c] for c in spec.classes]
            assert probabilities == pytest.approx(list(shifted / shifted.sum()), rel=1e-12, abs=1e-12)
        elif spec.kind == "classifier":
            assert prediction.probability == pytest.approx(1 / (1 + np.exp(-outputs[0])), rel=1e-12, abs=1e-12)
        else:
            value = prediction.life_expectancy_years if spec.kind == "regressor" else prediction.charges_usd
            assert value == outputs[0]


def test_contributors_are_the_top_five_contributions(scored):
    predictor, _, dumped, predictions = scored
    spec = predictor.spec
    for prediction, record in zip(predictions, dumped, strict=True):
        if multiclass(spec):
            explanation = prediction.explanations[prediction.predicted_class]  # the winner is explained
        else:
            explanation = prediction.explanation
        order = sorted(spec.feature_names, key=lambda f: -abs(explanation.contributions[f]))  # stable: catalog order
        top = order[:TOP_K]
        assert [c.feature for c in prediction.contributors] == top
        assert [c.contribution for c in prediction.contributors] == [explanation.contributions[f] for f in top]
        assert all(c.value == record[c.feature] for c in prediction.contributors)
    assert any(c.contribution != 0.0 for p in predictions for c in p.contributors)


def test_ood_percentile_is_the_domain_step_s(scored):
    predictor, _, dumped, predictions = scored
    steps = predictor.pipeline().named_steps
    encoded = steps["preprocess"].transform(records_to_frame(predictor.spec, dumped))
    expected = steps["domain"].percentile(encoded)
    assert [p.ood_percentile for p in predictions] == list(map(float, expected))
    assert all(0.0 <= p.ood_percentile <= 100.0 for p in predictions)


@pytest.mark.parametrize("name", MODELS)
def test_explained_shapes_and_catalog_field_order(svc, service_module, data_dir, name):
    """The compiled pass's arrays have the documented shapes and equal the pickle's, field by field."""
    predictor = svc.api.registry.tabular[name]
    spec = predictor.spec
    dumped = [r.model_dump() for r in real_records(service_module, name, data_dir, n=7)]
    explained = predictor.explained(dumped)
    n, f = len(dumped), len(spec.feature_names)
    n_out = len(spec.classes) if multiclass(spec) else 1
    columns, _ = additive_columns(spec)
    assert explained.values.shape == (n, f)
    assert explained.raw.shape == (n, n_out)
    assert explained.base.shape == (n_out,)
    assert explained.shap.shape == (n, f, n_out)
    assert explained.ood.shape == (n,)
    assert predictor.check_additivity(explained) <= EXACT
    steps = predictor.pipeline().named_steps
    encoded = steps["preprocess"].transform(records_to_frame(spec, dumped))
    # the compiled form's model columns are the pickle's preprocessing, bit for bit (NaN for missing)
    np.testing.assert_array_equal(predictor.compiled.columns(explained.values), encoded)
    model = steps["model"]
    assert list(model.column_fields) == columns
    assert sorted(model.field_names()) == sorted(spec.feature_names)
    _, shap = model.explain(encoded)
    for j, field in enumerate(spec.feature_names):  # field j of explained.shap is catalog field j
        np.testing.assert_allclose(
            explained.shap[:, j, :], shap[:, model.field_names().index(field), :], rtol=0, atol=EXACT
        )


def batch_and_single(svc, service_module, data_dir, name):
    predictor = svc.api.registry.tabular[name]
    records = real_records(service_module, name, data_dir, n=10)
    together = [p.model_dump() for p in predictor.predict(records, moderate=0.2, high=0.5)]
    alone = [predictor.predict([r], moderate=0.2, high=0.5)[0].model_dump() for r in records]
    return together, alone


@pytest.mark.parametrize("name", MODELS)
def test_batch_and_single_agree(svc, service_module, data_dir, name):
    """Scoring records together or one at a time gives the same answers, up to the last bit.

    The OOD percentile included: a record equal to a training row ties that row's score exactly
    only if its distance does not depend on the batch (``TrainingDomain`` avoids BLAS for it).
    """
    together, alone = batch_and_single(svc, service_module, data_dir, name)
    assert [p["ood_percentile"] for p in together] == [p["ood_percentile"] for p in alone]
    assert_close(together, alone)


def test_a_category_no_training_record_had_is_warned_about(svc):
    """Regression (outside probe of issue #14): stroke accepts sex 'Other', which no training record had."""
    predictor = svc.api.registry.tabular["stroke"]
    record = dict(TABULAR_MODELS["stroke"].example)
    (other, male) = predictor.warnings(predictor.explained([{**record, "sex": "Other"}, {**record, "sex": "Male"}]))
    unseen = [w for w in other if w.startswith("sex: a category no training record had")]
    assert len(unseen) == 1 and "Other" not in unseen[0]
    assert not any(w.startswith("sex:") for w in male)
