"""Prototype of "avoid per-request pandas work": one frame and one pipeline call per prediction.

The shipped :meth:`vitalcheck.predictors.tabular.TabularPredictor.predict` builds a DataFrame
from the records (``records_to_frame``: one ``astype``/``where``/``to_numeric`` per column), calls
the pipeline on it, then :func:`vitalcheck.explain.contributions` turns it back into an object
array, builds a second DataFrame of the ``n × (f + 1)`` "replace by baseline" rows, runs
``infer_objects`` and calls the pipeline again. Each pandas step and each pipeline call has a
fixed cost of a fraction of a millisecond to several milliseconds whatever the row count, and a
single-record request pays them all.

:class:`FastTabularPredictor` builds the ``n × (f + 1)`` frame once, straight from typed NumPy
columns, and makes ONE pipeline call on it: the first row of each block *is* the record as
submitted, so its output is the prediction and the rest give the contributions, exactly as
``contributions`` computes them (same rows, same order, same dtypes reaching the model).
The top-5 ranking is vectorised (stable, as the shipped ``sorted``). For the insurance interval
the lower and upper quantile models still run on the ``n`` submitted rows.

Outputs equal the shipped predictor's within 1e-12 (byte-identical contributions; the predicted
probability can differ in the last bit, as it already does between the single and the batch
endpoint, because a linear model's dot products are summed by a different BLAS kernel).
Multiclass models (sleep) fall back to the shipped code.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel

from vitalcheck.predictors.tabular import TOP_K, TabularPredictor, _risk_level
from vitalcheck.schemas.common import Contributor, RiskPrediction
from vitalcheck.schemas.insurance import InsurancePrediction
from vitalcheck.schemas.life_expectancy import LifeExpectancyPrediction


class FastTabularPredictor(TabularPredictor):
    """A :class:`TabularPredictor` whose ``predict`` makes one frame and one pipeline call."""

    @classmethod
    def wrap(cls, shipped: TabularPredictor) -> TabularPredictor:
        """The fast twin of a loaded (and already checked) predictor; multiclass models are returned as they are."""
        if shipped.spec.kind == "classifier" and len(shipped.spec.classes) != 2:
            return shipped
        return cls(shipped.spec, shipped.card, shipped.estimator, shipped.info)

    def block_frame(self, dumped: Sequence[dict[str, Any]]) -> tuple[pd.DataFrame, np.ndarray]:
        """The ``n × (f + 1)`` frame: each record, then the record with feature j set to its baseline.

        Returns:
            The frame, and an (n, f) boolean array: True where the record's value equals the
            baseline (both missing counts as equal), whose contribution is exactly 0.

        """
        n, features = len(dumped), self.spec.features
        block = len(features) + 1
        first = np.arange(n) * block
        data, same = {}, np.zeros((n, len(features)), dtype=bool)
        for j, feature in enumerate(features):
            raw = [record[feature.name] for record in dumped]
            baseline = self.baseline[feature.name]
            if feature.type == "category":
                column = np.array([np.nan if v is None else v for v in raw], dtype=object)
                missing = np.array([v is None for v in raw])
                b_missing = baseline is None
                same[:, j] = (missing & b_missing) | np.array([v is not None and v == baseline for v in raw])
                fill: Any = np.nan if b_missing else baseline
            else:
                column = np.array([np.nan if v is None else float(v) for v in raw], dtype=np.float64)
                fill = np.nan if baseline is None else float(baseline)
                same[:, j] = (np.isnan(column) & np.isnan(fill)) | (column == fill)
            repeated = np.repeat(column, block)
            repeated[first + 1 + j] = fill
            data[feature.name] = repeated
        return pd.DataFrame(data, columns=self.spec.feature_names), same

    def _ranked(
        self, deltas: np.ndarray, same: np.ndarray, dumped: Sequence[dict[str, Any]]
    ) -> list[list[Contributor]]:
        deltas = np.where(same, 0.0, deltas)
        order = np.argsort(-np.abs(deltas), axis=1, kind="stable")[:, :TOP_K]
        names = self.spec.feature_names
        return [
            [Contributor(feature=names[j], value=record[names[j]], contribution=float(row[j])) for j in top]
            for row, top, record in zip(deltas, order, dumped, strict=True)
        ]

    def predict(
        self, records: Sequence[BaseModel], *, moderate: float, high: float
    ) -> list[RiskPrediction | LifeExpectancyPrediction | InsurancePrediction]:
        """Same contract as :meth:`TabularPredictor.predict`, one pipeline call (two more for the interval)."""
        dumped = [r.model_dump() for r in records]
        n, block = len(dumped), len(self.spec.features) + 1
        frame, same = self.block_frame(dumped)
        kind = self.spec.kind
        if kind == "classifier":
            out = self.estimator.predict_proba(frame)[:, 1].reshape(n, block)
        elif kind == "regressor":
            out = np.asarray(self.estimator.predict(frame), dtype=float).reshape(n, block)
        else:
            out = np.asarray(self.estimator[0].predict(frame), dtype=float).reshape(n, block)
        contributors = self._ranked(out[:, :1] - out[:, 1:], same, dumped)
        central = out[:, 0]
        if kind == "classifier":
            return [
                RiskPrediction(probability=float(p), risk_level=_risk_level(float(p), moderate, high), contributors=c)
                for p, c in zip(central, contributors, strict=True)
            ]
        if kind == "regressor":
            return [
                LifeExpectancyPrediction(life_expectancy_years=float(v), contributors=c)
                for v, c in zip(central, contributors, strict=True)
            ]
        submitted = frame.iloc[::block]
        lower = np.minimum(np.asarray(self.estimator[1].predict(submitted), dtype=float), central)
        upper = np.maximum(np.asarray(self.estimator[2].predict(submitted), dtype=float), central)
        return [
            InsurancePrediction(charges_usd=float(m), lower_usd=float(lo), upper_usd=float(hi), contributors=c)
            for m, lo, hi, c in zip(central, lower, upper, contributors, strict=True)
        ]
