"""Serving of the seven scikit-learn artifacts: one predictor class per output kind.

:class:`TabularPredictor` holds what every kind shares: loading with checks, the golden-output
check (outputs and the explanations' additivity), the exact SHAP explanations and the warnings. Each
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

from vitalcheck.additive import ADDITIVITY_TOLERANCE, probabilities
from vitalcheck.cards import CURRENT_TABULAR_FORMAT, ArtifactCheckError, ModelCard, verify_artifact
from vitalcheck.catalog import ModelSpec
from vitalcheck.estimators import ConformalShift
from vitalcheck.schemas.common import ClassPrediction, Contributor, Explanation, ModelInfo, RiskPrediction
from vitalcheck.schemas.insurance import InsurancePrediction
from vitalcheck.schemas.life_expectancy import LifeExpectancyPrediction

GOLDEN_TOLERANCE = 1e-6
"""Largest absolute difference allowed between a golden output and the loaded artifact's answer."""

TOP_K = 5
"""Number of contributors returned per prediction."""

TABLE_CHECK_ROWS = 1000
"""Generated records on which every start-up compares the served tables with the fitted trees."""

OOD_WARNING_PERCENTILE = 99.0
"""Out-of-distribution percentile above which a record gets a warning."""


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
        self._card_features = {f.name: f for f in card.features}
        fields = self.pipeline().named_steps["model"].field_names()
        self._field_order = [fields.index(name) for name in spec.feature_names]  # model fields → catalog order

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
        if CURRENT_TABULAR_FORMAT not in card.extra:
            raise ArtifactCheckError(
                f"artifact {artifact} was built by an older VitalCheck (no exact explanations): run `make models`"
            )
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
        predictor.check_tables()
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
        """Score validated request records, each with its exact explanation and top-5 contributors.

        One preprocessing and one model call per micro-batch (:meth:`explained`); an interval
        regressor adds one call per quantile model.

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
        additivity = self.check_additivity(self.explained([g["input"] for g in self.card.golden]))
        if not additivity <= ADDITIVITY_TOLERANCE:
            raise ArtifactCheckError(
                f"artifact {self.spec.artifact}: explanations do not add up to the output on the golden records "
                f"(max error {additivity:.3g} > {ADDITIVITY_TOLERANCE:g})"
            )

    def check_tables(self, n: int = TABLE_CHECK_ROWS) -> None:
        """Compare the served term tables with the fitted trees on ``n`` generated records.

        The records span every feature's valid range (beyond the training range too), with
        missing values where allowed and every category (:func:`generated_records`).

        Raises:
            ArtifactCheckError: the tables and the trees differ by more than :data:`GOLDEN_TOLERANCE`.

        """
        frame = records_to_frame(self.spec, generated_records(self.spec, n))
        pipelines = self.estimator if isinstance(self.estimator, tuple) else (self.estimator,)
        for pipeline in pipelines:
            inner: Any = pipeline.regressor if isinstance(pipeline, ConformalShift) else pipeline
            steps = inner.named_steps
            worst = steps["model"].max_tree_difference(steps["preprocess"].transform(frame))
            if not worst <= GOLDEN_TOLERANCE:
                raise ArtifactCheckError(
                    f"artifact {self.spec.artifact}: the served term tables differ from the fitted trees "
                    f"(max abs difference {worst:.3g} > {GOLDEN_TOLERANCE:g})"
                )

    # ---- explanations and warnings -------------------------------------------------------
    def pipeline(self) -> Any:
        """The pipeline whose output is explained (an interval regressor: the central one)."""
        return self.estimator

    def explained(self, records: Sequence[dict[str, Any]]) -> Explained:
        """One pass over the records: outputs, exact SHAP values and out-of-distribution percentiles.

        Args:
            records: dicts keyed by the catalog feature names (missing values as ``None``).

        Returns:
            :class:`Explained` with the frame, the raw outputs on the additive scale, the SHAP
            base and values per catalog field, and the OOD percentile of every record.

        """
        frame = records_to_frame(self.spec, records)
        steps = self.pipeline().named_steps
        encoded = steps["preprocess"].transform(frame)
        model = steps["model"]
        base, shap = model.explain(encoded)
        raw = model.decision_function(encoded) if hasattr(model, "decision_function") else model.predict(encoded)
        return Explained(
            frame=frame,
            encoded=encoded,
            raw=np.asarray(raw, dtype=np.float64).reshape(len(records), -1),
            base=np.asarray(base, dtype=np.float64),
            shap=shap[:, self._field_order, :],
            ood=steps["domain"].percentile(encoded),
        )

    def check_additivity(self, explained: Explained) -> float:
        """Largest |base + Σ SHAP − output| over records and outputs (the explanations' exactness)."""
        return float(np.max(np.abs(explained.base + explained.shap.sum(axis=1) - explained.raw)))

    def explanation(self, explained: Explained, i: int, k: int = 0, scale: str = "") -> Explanation:
        """Record ``i``'s explanation of output ``k`` (a class for multiclass models)."""
        names = self.spec.feature_names
        return Explanation(
            scale=scale or self.scale(k),
            base_value=float(explained.base[k]),
            output_value=float(explained.raw[i, k]),
            contributions={name: float(v) for name, v in zip(names, explained.shap[i, :, k], strict=True)},
        )

    def scale(self, k: int = 0) -> str:
        """Name of the explanation scale of output ``k``."""
        return self.spec.target_unit

    def ranked(
        self, explained: Explained, records: Sequence[dict[str, Any]], k: np.ndarray | int = 0
    ) -> list[list[Contributor]]:
        """Top :data:`TOP_K` contributors per record by ``|SHAP value|`` of output ``k`` (ties keep field order)."""
        picks = np.broadcast_to(np.asarray(k), (len(records),))
        values = explained.shap[np.arange(len(records)), :, picks]
        order = np.argsort(-np.abs(values), axis=1, kind="stable")[:, :TOP_K]
        names = self.spec.feature_names
        return [
            [Contributor(feature=names[j], value=record[names[j]], contribution=float(row[j])) for j in top]
            for row, top, record in zip(values, order, records, strict=True)
        ]

    def warnings(self, records: Sequence[dict[str, Any]], ood: Sequence[float | None], prefix: str = "") -> list[str]:
        """Warnings per record: inputs beyond the training range (clamped), missing inputs, unusual records.

        Messages name the field and the training range, never the submitted value. ``ood`` holds
        the records' out-of-distribution percentiles (their predictions' ``ood_percentile``).
        """
        out: list[str] = []
        for i, record in enumerate(records):
            where = f"{prefix}[{i}]." if prefix else ""
            for name, value in record.items():
                feature = self._card_features[name]
                if value is None:
                    out.append(f"{where}{name}: missing; the model scores it with its value for a missing {name}")
                elif feature.type in ("number", "integer") and feature.train_min is not None:
                    # training writes train_min and train_max together (model_cards.card_features)
                    if not feature.train_min <= float(value) <= cast(float, feature.train_max):
                        unit = f" {feature.unit}" if feature.unit else ""
                        out.append(
                            f"{where}{name}: outside the training range {feature.train_min:.15g} to "
                            f"{feature.train_max:.15g}{unit}; predicted as at the nearest edge of that range"
                        )
            if (ood[i] or 0.0) > OOD_WARNING_PERCENTILE:
                record_name = f"{prefix}[{i}]" if prefix else "record"
                out.append(
                    f"{record_name}: unusual combination of values (beyond the 99th percentile of the training "
                    "rows' distances); the answer rests on little data like it"
                )
        return out

    def _dumped(self, records: Sequence[BaseModel]) -> tuple[list[dict[str, Any]], Explained]:
        dumped = [r.model_dump() for r in records]
        return dumped, self.explained(dumped)


@dataclass(frozen=True)
class Explained:
    """What one pass over a micro-batch gives (see :meth:`TabularPredictor.explained`).

    Attributes:
        frame: the records as the pipeline's input frame (n rows).
        encoded: the preprocessed array the model sees (n, columns).
        raw: model output on the additive scale, (n, n_out): log-odds, softmax scores or the unit.
        base: SHAP base value per output, (n_out,).
        shap: SHAP values, (n, n_fields, n_out), fields in catalog order.
        ood: out-of-distribution percentile per record, (n,).

    """

    frame: pd.DataFrame
    encoded: np.ndarray
    raw: np.ndarray
    base: np.ndarray
    shap: np.ndarray
    ood: np.ndarray


class BinaryRiskPredictor(TabularPredictor):
    """A binary classifier served as a risk: the positive class's probability and a risk level."""

    prediction_type = RiskPrediction

    def outputs(self, frame: pd.DataFrame) -> np.ndarray:
        """Class probabilities, shape (n, 2), catalog class order (positive class last)."""
        return self.estimator.predict_proba(frame)

    def predict(self, records: Sequence[BaseModel], *, moderate: float, high: float) -> list[Any]:
        """See :meth:`TabularPredictor.predict`; contributions on the log-odds scale."""
        dumped, explained = self._dumped(records)
        probability = probabilities(explained.raw[:, 0])[:, 1]
        contributors = self.ranked(explained, dumped)
        return [
            RiskPrediction(
                probability=float(p),
                risk_level=_risk_level(float(p), moderate, high),
                contributors=c,
                explanation=self.explanation(explained, i),
                ood_percentile=float(explained.ood[i]),
            )
            for i, (p, c) in enumerate(zip(probability, contributors, strict=True))
        ]

    def scale(self, k: int = 0) -> str:
        """``log-odds of '<positive class>'``."""
        return f"log-odds of '{self.spec.classes[1]}'"

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
        """See :meth:`TabularPredictor.predict`; top contributors explain each record's most probable class."""
        dumped, explained = self._dumped(records)
        classes = self.spec.classes
        per_class = probabilities(explained.raw)
        winners = per_class.argmax(axis=1)
        contributors = self.ranked(explained, dumped, winners)
        return [
            ClassPrediction(
                probabilities={cls: float(p) for cls, p in zip(classes, probs, strict=True)},
                predicted_class=classes[int(k)],
                contributors=c,
                explanations={cls: self.explanation(explained, i, j) for j, cls in enumerate(classes)},
                ood_percentile=float(explained.ood[i]),
            )
            for i, (probs, k, c) in enumerate(zip(per_class, winners, contributors, strict=True))
        ]

    def scale(self, k: int = 0) -> str:
        """``softmax score of '<class k>'``."""
        return f"softmax score of '{self.spec.classes[k]}'"

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
        dumped, explained = self._dumped(records)
        contributors = self.ranked(explained, dumped)
        return [
            LifeExpectancyPrediction(
                life_expectancy_years=float(explained.raw[i, 0]),
                contributors=c,
                explanation=self.explanation(explained, i),
                ood_percentile=float(explained.ood[i]),
            )
            for i, c in enumerate(contributors)
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

    def pipeline(self) -> Any:
        """The central model (its estimate is the one explained)."""
        return self.estimator[0]

    def predict(self, records: Sequence[BaseModel], *, moderate: float, high: float) -> list[Any]:
        """See :meth:`TabularPredictor.predict`; contributions explain the central estimate, in USD/year."""
        dumped, explained = self._dumped(records)
        contributors = self.ranked(explained, dumped)
        central = explained.raw[:, 0]
        lower = np.minimum(np.asarray(self.estimator[1].predict(explained.frame), dtype=float), central)
        upper = np.maximum(np.asarray(self.estimator[2].predict(explained.frame), dtype=float), central)
        return [
            InsurancePrediction(
                charges_usd=float(m),
                lower_usd=float(lo),
                upper_usd=float(hi),
                contributors=c,
                explanation=self.explanation(explained, i),
                ood_percentile=float(explained.ood[i]),
            )
            for i, (m, lo, hi, c) in enumerate(zip(central, lower, upper, contributors, strict=True))
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


def generated_records(spec: ModelSpec, n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` records spanning each feature's valid range, as the API accepts them.

    Numbers uniform in [valid_min, valid_max] (integers rounded), booleans at random, categories
    in turn; a nullable feature is missing in about one record in ten. For start-up checks.
    """
    rng = np.random.default_rng(seed)
    columns: dict[str, list[Any]] = {}
    for f in spec.features:
        if f.type == "category":
            values: list[Any] = [f.categories[i % len(f.categories)] for i in range(n)]
        elif f.type == "boolean":
            values = [bool(v) for v in rng.random(n) < 0.5]
        else:
            drawn = rng.uniform(cast(float, f.valid_min), cast(float, f.valid_max), n)
            values = [int(round(v)) for v in drawn] if f.type == "integer" else [float(v) for v in drawn]
        if f.nullable:
            values = [None if gap else v for v, gap in zip(values, rng.random(n) < 0.1, strict=True)]
        columns[f.name] = values
    return [{name: columns[name][i] for name in spec.feature_names} for i in range(n)]


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
