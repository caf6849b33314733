"""Shared helpers of the plausibility suite: real-row samples, sweep grids and scoring as the API answers.

Rows are drawn from the whole data file of each task with a fixed seed (so they include rows the
model never trained on) and validated by the task's request model
(``service_module.INPUT_MODELS[name].model_validate``). A sweep sets one feature of every sampled
row to each value of a grid; each grid value is accepted by the request model first, all variants
of a model are scored in one vectorised call of the serving predictor (``predictor.outputs``, the
path of its golden outputs), and one row of every sweep is also scored by the serving
``predictor.predict`` and must get the same numbers to 1e-12 (see :meth:`Task.sweeps`).

Tolerances (the issue's acceptance rules):

* :data:`PROBABILITY_TOLERANCE`: a classifier's probability may move against a medical direction by
  at most 0.01;
* :data:`REGRESSION_TOLERANCE_FRACTION`: a regressor's output by at most 1 % of the target's range in
  the data (life expectancy: years; insurance: USD);
* :data:`EDGE_TOLERANCE`: a value beyond the training range answers as the training edge, to 1e-9.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from vitalcheck.catalog import TABULAR_MODELS, FeatureSpec, ModelSpec
from vitalcheck.predictors.tabular import records_to_frame
from vitalcheck.training.loaders import data_file, load

SEED = 20240917
"""Seed of the row samples (fixed: the suite is reproducible)."""

N_ROWS = 60
"""Smallest sample per model (the issue's minimum); the checks below use more where it is cheap."""

N_ROWS_SWEEP = 200
"""Rows per model for the direction sweeps."""

N_ROWS_EDGE = 100
"""Rows per model for the beyond-the-training-range checks."""

N_ROWS_TAIL = 100
"""Rows per model for the sparse-tail sweeps."""

N_ROWS_CHEAP = 300
"""Rows per model for the additivity check (one record per row, through ``predict``)."""

GRID_POINTS = 25
"""Evenly spaced points over the training range in a direction sweep."""

TAIL_POINTS = 41
"""Points of the fine sweep over a sparse tail (5th percentile to the training minimum, 95th to the maximum)."""

PROBABILITY_TOLERANCE = 0.01
REGRESSION_TOLERANCE_FRACTION = 0.01
EDGE_TOLERANCE = 1e-9

REPORT: dict[str, list[str]] = {}
"""Measured figures, printed in pytest's terminal summary (see ``conftest.py``)."""


def report(section: str, line: str) -> None:
    REPORT.setdefault(section, []).append(line)


@dataclass
class Task:
    """One tabular model with its predictor, request model, data and fixed samples of real rows.

    Sweeps (:meth:`sweep`) score many variants of each sampled row. Each swept value is accepted
    by the request model first (validation is per field: the task models have no cross-field
    rules), the rows themselves are validated, and the variants are scored with the predictor's
    vectorised ``outputs``, the path of its golden outputs. One row of every sweep is also sent
    through the serving ``predict`` and must get the same numbers (to 1e-12), so the sweeps
    measure what the API answers.
    """

    name: str
    spec: ModelSpec
    predictor: Any
    input_model: Any
    X: pd.DataFrame
    y: pd.Series
    served_checks: int = 0
    _samples: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    _frames: dict[int, pd.DataFrame] = field(default_factory=dict)

    def rows(self, n: int = N_ROWS) -> list[dict[str, Any]]:
        """``n`` real rows (fixed seed), validated by the request model and dumped (missing values as ``None``)."""
        if n not in self._samples:
            picked = self.X.sample(min(n, len(self.X)), random_state=SEED)
            raw = picked.astype(object).where(picked.notna(), None).to_dict("records")
            self._samples[n] = [r.model_dump() for r in self.validate(raw)]
        return [dict(r) for r in self._samples[n]]

    def frame(self, n: int = N_ROWS) -> pd.DataFrame:
        if n not in self._frames:
            self._frames[n] = records_to_frame(self.spec, self.rows(n))
        return self._frames[n]

    @property
    def card_features(self) -> dict[str, Any]:
        return {f.name: f for f in self.predictor.card.features}

    def train_range(self, name: str) -> tuple[float, float]:
        cf = self.card_features[name]
        assert cf.train_min is not None and cf.train_max is not None, f"{self.name}.{name}: card has no training range"
        return float(cf.train_min), float(cf.train_max)

    @property
    def is_classifier(self) -> bool:
        return self.spec.kind == "classifier"

    @property
    def is_multiclass(self) -> bool:
        return self.is_classifier and len(self.spec.classes) > 2

    @property
    def tolerance(self) -> float:
        """How far the central output may move against a direction (probability, or 1 % of the target range)."""
        if self.is_classifier:
            return PROBABILITY_TOLERANCE
        return REGRESSION_TOLERANCE_FRACTION * self.target_range

    @property
    def target_range(self) -> float:
        """Range of the target in the data (regressors; 1 for a probability)."""
        if self.is_classifier:
            return 1.0
        return float(self.y.max() - self.y.min())

    def validate(self, records: Sequence[dict[str, Any]]) -> list[Any]:
        return [self.input_model.model_validate(r) for r in records]

    def predict(self, records: Sequence[dict[str, Any]]) -> list[Any]:
        """Validate and score through the serving predictor's ``predict``."""
        return self.predictor.predict(self.validate(records), moderate=0.2, high=0.5)

    def outputs(self, predictions: Sequence[Any]) -> np.ndarray:
        """Every served number of each prediction, shape (n, k).

        Binary: the probability; multiclass: the class probabilities in catalog order; life
        expectancy: the years; insurance: central, lower and upper charges.
        """
        kind = self.spec.kind
        if kind == "classifier" and len(self.spec.classes) == 2:
            rows = [[p.probability] for p in predictions]
        elif kind == "classifier":
            rows = [[p.probabilities[c] for c in self.spec.classes] for p in predictions]
        elif kind == "regressor":
            rows = [[p.life_expectancy_years] for p in predictions]
        else:
            rows = [[p.charges_usd, p.lower_usd, p.upper_usd] for p in predictions]
        return np.asarray(rows, dtype=np.float64).reshape(len(predictions), -1)

    def served(self, frame: pd.DataFrame) -> np.ndarray:
        """The numbers :meth:`outputs` reads from predictions, from the predictor's vectorised outputs (n, k)."""
        raw = np.asarray(self.predictor.outputs(frame), dtype=np.float64)
        if self.is_classifier and not self.is_multiclass:
            return raw[:, 1:2]
        return raw.reshape(len(frame), -1)

    def accept(self, feature: FeatureSpec, values: Sequence[Any]) -> list[Any]:
        """``values`` as the request model stores them; raises ValidationError for one it refuses."""
        row = self.rows()[0]
        return [self.input_model.model_validate({**row, feature.name: v}).model_dump()[feature.name] for v in values]

    def sweeps(self, plan: Sequence[tuple[FeatureSpec, Sequence[Any]]], n: int = N_ROWS) -> list[np.ndarray]:
        """Served outputs of ``n`` real rows with one feature set to each of some values, per (feature, values).

        All variants go into one frame and one vectorised call; one row per sweep goes through
        ``predict`` (one call for all). Returns one array (n, len(values), k) per plan entry.
        """
        rows, base = self.rows(n), self.frame(n)
        blocks, accepted = [], []
        for feature, values in plan:
            values = self.accept(feature, values)
            accepted.append(values)
            block = base.iloc[np.repeat(np.arange(len(rows)), len(values))].reset_index(drop=True)
            if feature.type == "category":
                cells = np.array([np.nan if v is None else v for v in values], dtype=object)
            else:
                cells = np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
            block[feature.name] = np.tile(cells, len(rows))
            blocks.append(block)
        served = self.served(pd.concat(blocks, ignore_index=True))
        out, at = [], 0
        for values in accepted:
            size = len(rows) * len(values)
            out.append(served[at : at + size].reshape(len(rows), len(values), -1))
            at += size
        # one row of every sweep through the serving path, all in one predict call
        picks = [(self.served_checks + k) % len(rows) for k in range(len(plan))]
        self.served_checks += len(plan)
        records = [
            {**rows[i], f.name: v} for i, (f, _), values in zip(picks, plan, accepted, strict=True) for v in values
        ]
        got = self.outputs(self.predict(records))
        expected = np.concatenate([o[i] for i, o in zip(picks, out, strict=True)])
        assert np.allclose(got, expected, rtol=1e-12, atol=1e-12), (
            f"{self.name}: predict and the vectorised outputs disagree (largest gap {np.max(np.abs(got - expected)):.3g})"
        )
        return out

    def sweep(self, feature: FeatureSpec, values: Sequence[Any], n: int = N_ROWS) -> np.ndarray:
        """:meth:`sweeps` of one feature: shape (n, len(values), k)."""
        return self.sweeps([(feature, values)], n)[0]


def load_task(svc: Any, service_module: Any, data_dir: Any, name: str) -> Task:
    X, y = load(name, data_file(name, data_dir))
    return Task(
        name=name,
        spec=TABULAR_MODELS[name],
        predictor=svc.api.registry.tabular[name],
        input_model=service_module.INPUT_MODELS[name],
        X=X,
        y=y,
    )


def typed(feature: FeatureSpec, value: Any) -> Any:
    """A value as the request model expects it (int for integer features, bool, float)."""
    if feature.type == "integer":
        return int(value)
    if feature.type == "boolean":
        return bool(value)
    if feature.type == "number":
        return float(value)
    return value


def _bounds(feature: FeatureSpec, lo: float, hi: float) -> tuple[float, float]:
    """The accepted range (valid_min, valid_max), or the training range widened by its span where unbounded."""
    span = max(hi - lo, 1.0)
    vmin = feature.valid_min if feature.valid_min is not None else lo - span
    vmax = feature.valid_max if feature.valid_max is not None else hi + span
    return float(vmin), float(vmax)


def beyond(feature: FeatureSpec, lo: float, hi: float, fractions: Sequence[float]) -> tuple[list[Any], list[Any]]:
    """Accepted values below ``lo`` and above ``hi``, at ``fractions`` of the gap to valid_min / valid_max.

    Integer features use the nearest integer strictly beyond the edge; a fraction of 1 is the
    accepted bound itself. Either list is empty when the training range reaches the bound.
    """
    vmin, vmax = _bounds(feature, lo, hi)
    below: list[float] = []
    above: list[float] = []
    for f in fractions:
        a, b = lo - f * (lo - vmin), hi + f * (vmax - hi)
        if feature.type == "integer":
            a, b = float(np.floor(a)), float(np.ceil(b))
            a = min(a, lo - 1.0)
            b = max(b, hi + 1.0)
        if vmin <= a < lo:
            below.append(a)
        if hi < b <= vmax:
            above.append(b)
    return (
        [typed(feature, v) for v in sorted(set(below))],
        [typed(feature, v) for v in sorted(set(above))],
    )


def sweep_grid(feature: FeatureSpec, lo: float, hi: float, points: int = GRID_POINTS) -> list[Any]:
    """Sorted sweep values: ``points`` over [lo, hi] (with both edges) and a few accepted values beyond."""
    if feature.type == "boolean":
        return [False, True]
    inside = np.linspace(lo, hi, points)
    if feature.type == "integer":
        inside = np.round(inside)
    below, above = beyond(feature, lo, hi, (0.5, 1.0))
    values = sorted({float(v) for v in [*below, *inside, lo, hi, *above]})
    return [typed(feature, v) for v in values]


def fine_grid(feature: FeatureSpec, start: float, stop: float, points: int = TAIL_POINTS) -> list[Any]:
    """Sorted values from ``start`` to ``stop`` (either order), ``points`` of them (integers: each integer if fewer)."""
    a, b = sorted((start, stop))
    if feature.type == "integer":
        a, b = float(np.ceil(a)), float(np.floor(b))
        if b < a:
            return []
        values = np.arange(a, b + 1.0) if b - a + 1 <= points else np.round(np.linspace(a, b, points))
    else:
        values = np.linspace(a, b, points)
    return [typed(feature, v) for v in sorted({float(v) for v in values})]


def numeric_features(spec: ModelSpec) -> list[FeatureSpec]:
    return [f for f in spec.features if f.type in ("number", "integer")]


def directional_features(spec: ModelSpec) -> list[FeatureSpec]:
    return [f for f in spec.features if f.direction != 0]
