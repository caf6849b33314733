"""Serving of the seven scikit-learn artifacts: loading with checks, scoring, contributions, warnings."""

from __future__ import annotations

import warnings as pywarnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import sklearn
from pydantic import BaseModel

from vitalcheck.cards import ArtifactCheckError, ModelCard, verify_artifact
from vitalcheck.catalog import ModelSpec
from vitalcheck.explain import contributions
from vitalcheck.schemas.common import ClassPrediction, Contributor, ModelInfo, RiskPrediction
from vitalcheck.schemas.insurance import InsurancePrediction
from vitalcheck.schemas.life_expectancy import LifeExpectancyPrediction

GOLDEN_TOLERANCE = 1e-6
"""Largest absolute difference allowed between a golden output and the loaded artifact's answer."""

TOP_K = 5
"""Number of contributors returned per prediction."""


def records_to_frame(spec: ModelSpec, records: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Turn validated records into the DataFrame a pipeline expects.

    Args:
        spec: the model's catalog record.
        records: dicts keyed by the catalog feature names (missing values as ``None``).

    Returns:
        DataFrame of shape (len(records), n_features), columns in ``spec.feature_names``
        order; numbers, integers and booleans as float64 (booleans 0/1), categories as
        object; missing values as NaN.

    """
    frame = pd.DataFrame.from_records(list(records), columns=spec.feature_names)
    for f in spec.features:
        column = frame[f.name]
        if f.type == "category":
            frame[f.name] = column.astype(object).where(column.notna(), np.nan)
        else:
            frame[f.name] = pd.to_numeric(column.astype(object).where(column.notna(), np.nan)).astype("float64")
    return frame


class TabularPredictor:
    """One loaded scikit-learn artifact and the card that describes it.

    Args:
        spec: catalog record.
        card: validated model card.
        estimator: the unpickled pipeline (insurance: a tuple ``(central, lower, upper)``).
        info: model-store identity returned in responses.

    """

    def __init__(self, spec: ModelSpec, card: ModelCard, estimator: Any, info: ModelInfo) -> None:
        self.spec = spec
        self.card = card
        self.estimator = estimator
        self.info = info
        self.baseline = {f.name: f.baseline for f in card.features}
        self._card_features = {f.name: f for f in card.features}

    @classmethod
    def load(cls, spec: ModelSpec, directory: Path, tag: str) -> TabularPredictor:
        """Check and load an artifact from a directory holding it and its card.

        The artifact's sha256 is checked against the card *before* it is unpickled; the
        card's scikit-learn version must equal the installed one; the golden records in
        the card must reproduce within :data:`GOLDEN_TOLERANCE`.

        Raises:
            ArtifactCheckError: any check fails; the message names the artifact.

        """
        artifact = directory / spec.artifact
        card = verify_artifact(artifact, directory / spec.card_file)
        trained_with = card.framework_versions.get("scikit-learn")
        if trained_with != sklearn.__version__:
            raise ArtifactCheckError(
                f"artifact {artifact} was built with scikit-learn {trained_with}, "
                f"but {sklearn.__version__} is installed: retrain it or install the matching version"
            )
        try:
            with pywarnings.catch_warnings():
                pywarnings.simplefilter("error", category=sklearn.exceptions.InconsistentVersionWarning)
                estimator = joblib.load(artifact)
        except Exception as exc:  # any unpickling failure refuses the start
            raise ArtifactCheckError(f"artifact {artifact} could not be loaded: {type(exc).__name__}: {exc}") from exc
        info = ModelInfo(name=spec.name, tag=tag, version=tag.split(":")[-1], sha256=card.sha256)
        predictor = cls(spec, card, estimator, info)
        predictor.check_golden()
        return predictor

    # ---- raw outputs -------------------------------------------------------------------
    def outputs(self, frame: pd.DataFrame) -> np.ndarray:
        """Score a frame with one vectorised call per estimator.

        Returns:
            classifiers: probabilities, shape (n, n_classes), catalog class order;
            regressors: values, shape (n,); interval regressor: shape (n, 3) as
            (central, lower, upper) with lower ≤ central ≤ upper enforced.

        """
        kind = self.spec.kind
        if kind == "classifier":
            return self.estimator.predict_proba(frame)
        if kind == "regressor":
            return np.asarray(self.estimator.predict(frame), dtype=float)
        central, lower, upper = (np.asarray(m.predict(frame), dtype=float) for m in self.estimator)
        lower = np.minimum(lower, central)
        upper = np.maximum(upper, central)
        return np.column_stack([central, lower, upper])

    def check_golden(self) -> None:
        """Compare the card's golden outputs with this artifact's answers.

        Raises:
            ArtifactCheckError: a golden output differs by more than :data:`GOLDEN_TOLERANCE`,
                or the card has no golden records.

        """
        if not self.card.golden:
            raise ArtifactCheckError(f"model card of {self.spec.artifact} has no golden records")
        frame = records_to_frame(self.spec, [g["input"] for g in self.card.golden])
        got = np.asarray(self.outputs(frame), dtype=float).reshape(len(frame), -1)
        expected = np.asarray([g["output"] for g in self.card.golden], dtype=float).reshape(len(frame), -1)
        worst = float(np.max(np.abs(got - expected)))
        if not worst <= GOLDEN_TOLERANCE:
            raise ArtifactCheckError(
                f"artifact {self.spec.artifact} no longer reproduces its golden outputs "
                f"(max abs difference {worst:.3g} > {GOLDEN_TOLERANCE:g}): library drift?"
            )

    # ---- explanations and warnings -------------------------------------------------------
    def block_frame(self, records: Sequence[dict[str, Any]]) -> tuple[pd.DataFrame, np.ndarray]:
        """The ``n × (f + 1)`` "replace by baseline" frame of :func:`vitalcheck.explain.contributions`.

        Block ``i`` (rows ``i·(f+1)`` to ``i·(f+1)+f``) is record ``i`` as submitted, then record
        ``i`` with feature ``j`` set to its card baseline, for ``j = 0 … f-1``. Columns are typed
        as :func:`records_to_frame` types them (numbers float64, categories object, missing NaN),
        built straight from NumPy columns: one DataFrame for the prediction and its contributions.

        Args:
            records: dicts keyed by the catalog feature names (missing values as ``None``).

        Returns:
            The frame, and an (n, f) boolean array that is True where the record's value equals
            the baseline (two missing values count as equal): those contributions are exactly 0.

        """
        n, features = len(records), self.spec.features
        block = len(features) + 1
        replaced = np.arange(n) * block + 1
        columns: dict[str, np.ndarray] = {}
        same = np.zeros((n, len(features)), dtype=bool)
        for j, feature in enumerate(features):
            raw = [record[feature.name] for record in records]
            baseline = self.baseline[feature.name]
            if feature.type == "category":
                column = np.array([np.nan if v is None else v for v in raw], dtype=object)
                if baseline is None:
                    same[:, j] = [v is None for v in raw]
                else:
                    same[:, j] = [v is not None and v == baseline for v in raw]
                fill: Any = np.nan if baseline is None else baseline
            else:
                column = np.array([np.nan if v is None else float(v) for v in raw], dtype=np.float64)
                fill = np.nan if baseline is None else float(baseline)
                same[:, j] = (np.isnan(column) & np.isnan(fill)) | (column == fill)
            repeated = np.repeat(column, block)
            repeated[replaced + j] = fill
            columns[feature.name] = repeated
        return pd.DataFrame(columns, columns=self.spec.feature_names), same

    def _ranked(
        self, deltas: np.ndarray, same: np.ndarray, records: Sequence[dict[str, Any]]
    ) -> list[list[Contributor]]:
        """Top :data:`TOP_K` contributors per record by ``|contribution|`` (ties keep feature order)."""
        deltas = np.where(same, 0.0, deltas)
        order = np.argsort(-np.abs(deltas), axis=1, kind="stable")[:, :TOP_K]
        names = self.spec.feature_names
        return [
            [Contributor(feature=names[j], value=record[names[j]], contribution=float(row[j])) for j in top]
            for row, top, record in zip(deltas, order, records, strict=True)
        ]

    def contributors(
        self, frame: pd.DataFrame, records: Sequence[dict[str, Any]], class_index: int
    ) -> list[list[Contributor]]:
        """Top-5 signed contributions to the probability of class ``class_index`` (multiclass models).

        Args:
            frame: rows as built by :func:`records_to_frame` from ``records``.
            records: the same rows as submitted (their values are reported as given).
            class_index: the class whose probability is explained.

        """
        raw = contributions(
            lambda f: self.estimator.predict_proba(f)[:, class_index], frame, self.baseline, top_k=TOP_K
        )
        return [
            [Contributor(feature=name, value=record[name], contribution=float(c)) for name, _, c in row]
            for row, record in zip(raw, records, strict=True)
        ]

    def warnings(self, records: Sequence[dict[str, Any]], prefix: str = "") -> list[str]:
        """Warnings per record: inputs outside the training range and missing (imputed) inputs.

        Messages name the field and the training range, never the submitted value.
        """
        out: list[str] = []
        for i, record in enumerate(records):
            where = f"{prefix}[{i}]." if prefix else ""
            for name, value in record.items():
                feature = self._card_features[name]
                if value is None:
                    out.append(f"{where}{name}: missing; imputed by the model")
                elif feature.type in ("number", "integer") and feature.train_min is not None:
                    if not feature.train_min <= float(value) <= feature.train_max:
                        unit = f" {feature.unit}" if feature.unit else ""
                        out.append(
                            f"{where}{name}: outside the training range {feature.train_min:g} to "
                            f"{feature.train_max:g}{unit}; the model is extrapolating"
                        )
        return out

    # ---- typed predictions ------------------------------------------------------------------
    def predict(
        self, records: Sequence[BaseModel], *, moderate: float, high: float
    ) -> list[RiskPrediction | ClassPrediction | LifeExpectancyPrediction | InsurancePrediction]:
        """Score validated request records, each with its top-5 contributors.

        Binary classifiers and regressors make ONE pipeline call on the :meth:`block_frame`
        of the records: the first row of each block is the record as submitted (its output is
        the prediction), the others give the contributions. The insurance interval adds one
        call per quantile model on the submitted rows. The multiclass sleep model explains
        the winning class of each record (:meth:`contributors`).

        Args:
            records: request models of this task.
            moderate: probability at or above which a binary risk is 'moderate'.
            high: probability at or above which a binary risk is 'high'.

        Returns:
            One prediction per record, of the task's prediction type, in order.

        """
        dumped = [r.model_dump() for r in records]
        kind = self.spec.kind
        if kind == "classifier" and len(self.spec.classes) != 2:
            return self._predict_multiclass(dumped)
        n, block = len(dumped), len(self.spec.features) + 1
        frame, same = self.block_frame(dumped)
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

    def _predict_multiclass(self, dumped: list[dict[str, Any]]) -> list[ClassPrediction]:
        classes = self.spec.classes
        frame = records_to_frame(self.spec, dumped)
        out = self.outputs(frame)
        winners = out.argmax(axis=1)
        contribs: list[list[Contributor]] = [[] for _ in range(len(frame))]
        for k in np.unique(winners):
            rows = np.flatnonzero(winners == k)
            explained = self.contributors(frame.iloc[rows], [dumped[i] for i in rows], class_index=int(k))
            for i, c in zip(rows, explained, strict=True):
                contribs[i] = c
        return [
            ClassPrediction(
                probabilities={cls: float(p) for cls, p in zip(classes, probs, strict=True)},
                predicted_class=classes[int(k)],
                contributors=c,
            )
            for probs, k, c in zip(out, winners, contribs, strict=True)
        ]


def _risk_level(probability: float, moderate: float, high: float) -> str:
    if probability >= high:
        return "high"
    return "moderate" if probability >= moderate else "low"
