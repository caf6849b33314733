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
    def _scalar(self, class_index: int | None):
        kind = self.spec.kind
        if kind == "classifier":
            return lambda f: self.estimator.predict_proba(f)[:, class_index]
        if kind == "regressor":
            return lambda f: np.asarray(self.estimator.predict(f), dtype=float)
        return lambda f: np.asarray(self.estimator[0].predict(f), dtype=float)

    def contributors(
        self, frame: pd.DataFrame, records: Sequence[dict[str, Any]], class_index: int | None = None
    ) -> list[list[Contributor]]:
        """Top-5 signed contributions per row (see :func:`vitalcheck.explain.contributions`).

        Args:
            frame: rows as built by :func:`records_to_frame` from ``records``.
            records: the same rows as submitted (their values are reported as given).
            class_index: for classifiers, the class whose probability is explained.

        """
        raw = contributions(self._scalar(class_index), frame, self.baseline, top_k=TOP_K)
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
        """Score validated request records: one vectorised predict, one batched contribution call.

        Args:
            records: request models of this task.
            moderate: probability at or above which a binary risk is 'moderate'.
            high: probability at or above which a binary risk is 'high'.

        Returns:
            One prediction per record, of the task's prediction type.

        """
        dumped = [r.model_dump() for r in records]
        frame = records_to_frame(self.spec, dumped)
        out = self.outputs(frame)
        kind, classes = self.spec.kind, self.spec.classes
        if kind == "classifier" and len(classes) == 2:
            contribs = self.contributors(frame, dumped, class_index=1)
            return [
                RiskPrediction(probability=float(p), risk_level=_risk_level(float(p), moderate, high), contributors=c)
                for p, c in zip(out[:, 1], contribs, strict=True)
            ]
        if kind == "classifier":
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
        contribs = self.contributors(frame, dumped)
        if kind == "regressor":
            return [
                LifeExpectancyPrediction(life_expectancy_years=float(v), contributors=c)
                for v, c in zip(out, contribs, strict=True)
            ]
        return [
            InsurancePrediction(charges_usd=float(m), lower_usd=float(lo), upper_usd=float(hi), contributors=c)
            for (m, lo, hi), c in zip(out, contribs, strict=True)
        ]


def _risk_level(probability: float, moderate: float, high: float) -> str:
    if probability >= high:
        return "high"
    return "moderate" if probability >= moderate else "low"
