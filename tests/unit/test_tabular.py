"""vitalcheck.predictors.tabular: the one-frame prediction path against the documented definitions.

``TabularPredictor.predict`` builds one "replace by baseline" frame per call; these tests
recompute every answer the slow, obvious way (``records_to_frame`` + ``outputs`` for the
prediction, :func:`tests.utils.explain_oracle.contributions` for the contributors) on real rows.
"""

import numpy as np
import pandas as pd
import pytest

from tests.utils.explain_oracle import contributions
from tests.utils.payloads import assert_close
from vitalcheck.catalog import TABULAR_MODELS
from vitalcheck.predictors.tabular import TOP_K, records_to_frame
from vitalcheck.training.loaders import data_file, load

ONE_FRAME = [n for n, s in TABULAR_MODELS.items() if not (s.kind == "classifier" and len(s.classes) > 2)]


def real_records(service_module, name, data_dir, n=60):
    X, _ = load(name, data_file(name, data_dir))
    rows = X.sample(n, random_state=2)
    dumped = rows.astype(object).where(rows.notna(), None).to_dict("records")
    return [service_module.INPUT_MODELS[name].model_validate(r) for r in dumped]


def reference(predictor, dumped):
    """(central output per record, top-K (feature, contribution) per record) the slow way."""
    frame = records_to_frame(predictor.spec, dumped)
    out = predictor.outputs(frame)
    kind = predictor.spec.kind
    if kind == "classifier":
        central, scalar = out[:, 1], lambda f: predictor.estimator.predict_proba(f)[:, 1]
    elif kind == "regressor":
        central, scalar = out, lambda f: np.asarray(predictor.estimator.predict(f), dtype=float)
    else:
        central, scalar = out[:, 0], lambda f: np.asarray(predictor.estimator[0].predict(f), dtype=float)
    ranked = contributions(scalar, frame, predictor.baseline, top_k=TOP_K)
    return out, central, [[(name, c) for name, _, c in row] for row in ranked]


@pytest.mark.parametrize("name", ONE_FRAME)
def test_one_frame_path_equals_the_definitions(svc, service_module, data_dir, name):
    predictor = svc.api.registry.tabular[name]
    records = real_records(service_module, name, data_dir)
    at_baseline = {f: predictor.baseline[f] for f in predictor.spec.feature_names}
    records.append(service_module.INPUT_MODELS[name].model_validate(at_baseline))
    dumped = [r.model_dump() for r in records]
    predictions = predictor.predict(records, moderate=0.2, high=0.5)
    out, central, ranked = reference(predictor, dumped)
    for i, (prediction, record) in enumerate(zip(predictions, dumped, strict=True)):
        got = prediction.model_dump()
        value = got.get("probability", got.get("life_expectancy_years", got.get("charges_usd")))
        assert value == pytest.approx(central[i], rel=1e-12, abs=1e-12)
        if "lower_usd" in got:
            assert [got["lower_usd"], got["upper_usd"]] == pytest.approx(list(out[i, 1:]), rel=1e-12)
        assert [c["feature"] for c in got["contributors"]] == [f for f, _ in ranked[i]], i
        assert [c["contribution"] for c in got["contributors"]] == pytest.approx(
            [c for _, c in ranked[i]], rel=1e-9, abs=1e-12
        )
        assert all(c["value"] == record[c["feature"]] for c in got["contributors"])
    # the record at the baseline: every contribution exactly zero
    assert all(c.contribution == 0.0 for c in predictions[-1].contributors)


@pytest.mark.parametrize("name", ONE_FRAME)
def test_batch_and_single_agree(svc, service_module, data_dir, name):
    """Scoring records together or one at a time gives the same answers (up to the last bit)."""
    predictor = svc.api.registry.tabular[name]
    records = real_records(service_module, name, data_dir, n=10)
    together = [p.model_dump() for p in predictor.predict(records, moderate=0.2, high=0.5)]
    alone = [predictor.predict([r], moderate=0.2, high=0.5)[0].model_dump() for r in records]
    assert_close(together, alone)


def test_block_frame_layout(svc, service_module, data_dir):
    """Block i is record i, then record i with feature j at its baseline (j = 0 .. f-1)."""
    predictor = svc.api.registry.tabular["heart"]
    dumped = [r.model_dump() for r in real_records(service_module, "heart", data_dir, n=3)]
    frame, same = predictor.block_frame(dumped)
    names = predictor.spec.feature_names
    f = len(names)
    assert frame.shape == (3 * (f + 1), f)
    submitted = records_to_frame(predictor.spec, dumped)
    for i in range(3):
        block = frame.iloc[i * (f + 1) : (i + 1) * (f + 1)].reset_index(drop=True)
        first = [None if v != v else v for v in block.iloc[0]]
        assert first == [None if v != v else v for v in submitted.iloc[i]]
        for j, column in enumerate(names):
            baseline = predictor.baseline[column]
            cell = block.iloc[1 + j][column]
            assert (cell != cell) if baseline is None else cell == baseline
            expected_same = (dumped[i][column] is None) if baseline is None else dumped[i][column] == baseline
            assert bool(same[i, j]) == bool(expected_same)
    for feature in predictor.spec.features:  # numbers as float64, categories as strings (missing: NaN)
        dtype = frame[feature.name].dtype
        if feature.type == "category":
            assert not pd.api.types.is_numeric_dtype(dtype), feature.name
        else:
            assert dtype == np.float64, feature.name
