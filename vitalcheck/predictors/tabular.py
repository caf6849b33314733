"""Serving of the seven scikit-learn artifacts: one predictor class per output kind.

:class:`TabularPredictor` holds what every kind shares: loading with checks, the golden-output
check, the "replace by baseline" block frame behind the contributions, and the warnings. Each
kind owns its raw outputs, its prediction type and its batch-output columns:
:class:`BinaryRiskPredictor`, :class:`MulticlassPredictor`, :class:`RegressionPredictor` and
:class:`IntervalRegressionPredictor` (the ONNX image classifier is
:class:`vitalcheck.predictors.mri.ImagePredictor`). :func:`predictor_class` picks the kind of a
catalog record; :meth:`TabularPredictor.load` called on the base class does so itself.
"""

from __future__ import annotations

import re
import warnings as pywarnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, cast

import joblib
import numpy as np
import pandas as pd
import sklearn
from pydantic import BaseModel

from vitalcheck.cards import ArtifactCheckError, ModelCard, verify_artifact
from vitalcheck.catalog import ModelSpec
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


@dataclass(frozen=True)
class OutputColumn:
    """One column that batch scoring (:mod:`vitalcheck.batch.scoring`) adds to the input rows.

    Attributes:
        name: column name.
        type: ``double`` or ``string`` (Spark SQL type name; pandas: float64 or object).
        description: what the column holds.

    """

    name: str
    type: str
    description: str


def class_column(label: str) -> str:
    """Name of the probability column of a class (``"Sleep Apnea"`` → ``probability_sleep_apnea``)."""
    return "probability_" + re.sub(r"[^0-9a-z]+", "_", label.lower()).strip("_")


class TabularPredictor:
    """One loaded scikit-learn artifact and the card that describes it (the base of the four kinds).

    Args:
        spec: catalog record.
        card: validated model card.
        estimator: the unpickled pipeline (interval regressor: a tuple ``(central, lower, upper)``).
        info: model-store identity returned in responses.

    """

    prediction_type: ClassVar[type[BaseModel]]
    """The pydantic type of one prediction of this kind (the API's ``prediction`` field)."""

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

        Called on :class:`TabularPredictor` itself, returns the predictor of ``spec``'s output
        kind (:func:`predictor_class`). The artifact's sha256 is checked against the card
        *before* it is unpickled; the card's scikit-learn version must equal the installed one;
        the golden records in the card must reproduce within :data:`GOLDEN_TOLERANCE`.

        Raises:
            ArtifactCheckError: any check fails; the message names the artifact.

        """
        kind = predictor_class(spec) if cls is TabularPredictor else cls
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
        predictor = kind(spec, card, estimator, info)
        predictor.check_golden()
        return predictor

    # ---- what each kind defines ------------------------------------------------------------
    def outputs(self, frame: pd.DataFrame) -> np.ndarray:
        """Raw outputs of a frame, one vectorised call per estimator (the golden outputs' form).

        Returns:
            Class probabilities (n, n_classes) in catalog order, regression values (n,), or
            (n, 3) as (central, lower, upper): see each kind.

        """
        raise NotImplementedError

    def predict(self, records: Sequence[BaseModel], *, moderate: float, high: float) -> list[Any]:
        """Score validated request records, each with its top-5 contributors.

        One pipeline call on the :meth:`block_frame` of the records: the first row of each
        block is the record as submitted (its output is the prediction), the others give the
        contributions (an interval regressor adds one call per quantile model).

        Args:
            records: request models of this task.
            moderate: probability at or above which a binary risk is 'moderate'.
            high: probability at or above which a binary risk is 'high'.

        Returns:
            One :attr:`prediction_type` per record, in order.

        """
        raise NotImplementedError

    @classmethod
    def score_columns(cls, spec: ModelSpec) -> list[OutputColumn]:
        """The columns batch scoring writes for one prediction of this kind of model ``spec``, in order."""
        raise NotImplementedError

    def score_values(self, prediction: Any) -> dict[str, Any]:
        """One prediction as values of :meth:`score_columns` (column name → value)."""
        raise NotImplementedError

    # ---- shared -----------------------------------------------------------------------------
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
        """The ``n × (f + 1)`` "replace by baseline" frame behind every kind's contributions.

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
                    # training writes train_min and train_max together (model_cards.card_features)
                    if not feature.train_min <= float(value) <= cast(float, feature.train_max):
                        unit = f" {feature.unit}" if feature.unit else ""
                        out.append(
                            f"{where}{name}: outside the training range {feature.train_min:g} to "
                            f"{feature.train_max:g}{unit}; the model is extrapolating"
                        )
        return out

    def _blocks(self, records: Sequence[BaseModel]) -> tuple[list[dict[str, Any]], pd.DataFrame, np.ndarray]:
        dumped = [r.model_dump() for r in records]
        frame, same = self.block_frame(dumped)
        return dumped, frame, same


class BinaryRiskPredictor(TabularPredictor):
    """A binary classifier served as a risk: the positive class's probability and a risk level."""

    prediction_type = RiskPrediction

    def outputs(self, frame: pd.DataFrame) -> np.ndarray:
        """Class probabilities, shape (n, 2), catalog class order (positive class last)."""
        return self.estimator.predict_proba(frame)

    def predict(self, records: Sequence[BaseModel], *, moderate: float, high: float) -> list[Any]:
        """See :meth:`TabularPredictor.predict`; contributions in probability points."""
        dumped, frame, same = self._blocks(records)
        out = self.estimator.predict_proba(frame)[:, 1].reshape(len(dumped), -1)
        contributors = self._ranked(out[:, :1] - out[:, 1:], same, dumped)
        return [
            RiskPrediction(probability=float(p), risk_level=_risk_level(float(p), moderate, high), contributors=c)
            for p, c in zip(out[:, 0], contributors, strict=True)
        ]

    @classmethod
    def score_columns(cls, spec: ModelSpec) -> list[OutputColumn]:
        """``probability`` and ``risk_level``."""
        return [
            OutputColumn("probability", "double", f"Probability of '{spec.classes[1]}', in [0, 1]."),
            OutputColumn("risk_level", "string", "'low', 'moderate' or 'high' (VITALCHECK_RISK_* thresholds)."),
        ]

    def score_values(self, prediction: Any) -> dict[str, Any]:
        """``probability`` and ``risk_level`` of one prediction."""
        return {"probability": prediction.probability, "risk_level": prediction.risk_level}


class MulticlassPredictor(TabularPredictor):
    """A classifier of three or more classes: every class's probability and the most probable one."""

    prediction_type = ClassPrediction

    def outputs(self, frame: pd.DataFrame) -> np.ndarray:
        """Class probabilities, shape (n, n_classes), catalog class order."""
        return self.estimator.predict_proba(frame)

    def predict(self, records: Sequence[BaseModel], *, moderate: float, high: float) -> list[Any]:
        """See :meth:`TabularPredictor.predict`; contributions explain each record's most probable class."""
        dumped, frame, same = self._blocks(records)
        n, classes = len(dumped), self.spec.classes
        out = self.estimator.predict_proba(frame).reshape(n, -1, len(classes))
        submitted = out[:, 0, :]
        winners = submitted.argmax(axis=1)
        explained = out[np.arange(n), :, winners]  # (n, f + 1): the winning class's probability per row
        contributors = self._ranked(explained[:, :1] - explained[:, 1:], same, dumped)
        return [
            ClassPrediction(
                probabilities={cls: float(p) for cls, p in zip(classes, probs, strict=True)},
                predicted_class=classes[int(k)],
                contributors=c,
            )
            for probs, k, c in zip(submitted, winners, contributors, strict=True)
        ]

    @classmethod
    def score_columns(cls, spec: ModelSpec) -> list[OutputColumn]:
        """One ``probability_<class>`` per class, then ``predicted_class``."""
        columns = [OutputColumn(class_column(c), "double", f"Probability of '{c}'.") for c in spec.classes]
        return [*columns, OutputColumn("predicted_class", "string", "The most probable class.")]

    def score_values(self, prediction: Any) -> dict[str, Any]:
        """Every class's probability and the predicted class of one prediction."""
        values = {class_column(label): p for label, p in prediction.probabilities.items()}
        return {**values, "predicted_class": prediction.predicted_class}


class RegressionPredictor(TabularPredictor):
    """A regressor: one value in the target's unit (life expectancy in years)."""

    prediction_type = LifeExpectancyPrediction

    def outputs(self, frame: pd.DataFrame) -> np.ndarray:
        """Predicted values, shape (n,)."""
        return np.asarray(self.estimator.predict(frame), dtype=float)

    def predict(self, records: Sequence[BaseModel], *, moderate: float, high: float) -> list[Any]:
        """See :meth:`TabularPredictor.predict`; contributions in the target's unit."""
        dumped, frame, same = self._blocks(records)
        out = self.outputs(frame).reshape(len(dumped), -1)
        contributors = self._ranked(out[:, :1] - out[:, 1:], same, dumped)
        return [
            LifeExpectancyPrediction(life_expectancy_years=float(v), contributors=c)
            for v, c in zip(out[:, 0], contributors, strict=True)
        ]

    @classmethod
    def score_columns(cls, spec: ModelSpec) -> list[OutputColumn]:
        """``life_expectancy_years``."""
        return [OutputColumn("life_expectancy_years", "double", "Life expectancy at birth, in years.")]

    def score_values(self, prediction: Any) -> dict[str, Any]:
        """The predicted value."""
        return {"life_expectancy_years": prediction.life_expectancy_years}


class IntervalRegressionPredictor(TabularPredictor):
    """A central estimate with a calibrated interval (insurance charges in USD)."""

    prediction_type = InsurancePrediction

    def outputs(self, frame: pd.DataFrame) -> np.ndarray:
        """Shape (n, 3) as (central, lower, upper), with lower ≤ central ≤ upper enforced."""
        central, lower, upper = (np.asarray(m.predict(frame), dtype=float) for m in self.estimator)
        return np.column_stack([central, np.minimum(lower, central), np.maximum(upper, central)])

    def predict(self, records: Sequence[BaseModel], *, moderate: float, high: float) -> list[Any]:
        """See :meth:`TabularPredictor.predict`; contributions explain the central estimate, in USD."""
        dumped, frame, same = self._blocks(records)
        out = np.asarray(self.estimator[0].predict(frame), dtype=float).reshape(len(dumped), -1)
        contributors = self._ranked(out[:, :1] - out[:, 1:], same, dumped)
        central = out[:, 0]
        submitted = frame.iloc[:: out.shape[1]]
        lower = np.minimum(np.asarray(self.estimator[1].predict(submitted), dtype=float), central)
        upper = np.maximum(np.asarray(self.estimator[2].predict(submitted), dtype=float), central)
        return [
            InsurancePrediction(charges_usd=float(m), lower_usd=float(lo), upper_usd=float(hi), contributors=c)
            for m, lo, hi, c in zip(central, lower, upper, contributors, strict=True)
        ]

    @classmethod
    def score_columns(cls, spec: ModelSpec) -> list[OutputColumn]:
        """``charges_usd``, ``lower_usd``, ``upper_usd`` and ``interval_level``."""
        return [
            OutputColumn("charges_usd", "double", "Central estimate of annual charges, USD."),
            OutputColumn("lower_usd", "double", "Lower end of the calibrated 90 % interval, USD."),
            OutputColumn("upper_usd", "double", "Upper end of the calibrated 90 % interval, USD."),
            OutputColumn("interval_level", "double", "Nominal coverage of [lower_usd, upper_usd] (0.9)."),
        ]

    def score_values(self, prediction: Any) -> dict[str, Any]:
        """The estimate, the interval and its nominal level."""
        names = ("charges_usd", "lower_usd", "upper_usd", "interval_level")
        return {name: getattr(prediction, name) for name in names}


def predictor_class(spec: ModelSpec) -> type[TabularPredictor]:
    """The predictor class of a tabular catalog record's output kind.

    Raises:
        ValueError: ``spec`` is not a tabular model.

    """
    if spec.kind == "classifier":
        return BinaryRiskPredictor if len(spec.classes) == 2 else MulticlassPredictor
    if spec.kind == "regressor":
        return RegressionPredictor
    if spec.kind == "interval_regressor":
        return IntervalRegressionPredictor
    raise ValueError(f"model {spec.name!r} is not a tabular model")


def _risk_level(probability: float, moderate: float, high: float) -> str:
    if probability >= high:
        return "high"
    return "moderate" if probability >= moderate else "low"
