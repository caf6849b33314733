"""Serving of the seven scikit-learn artifacts: one predictor class per output kind.

:class:`TabularPredictor` holds what every kind shares: loading with checks, the golden-output
check (outputs and the explanations' additivity), the exact SHAP explanations and the warnings.
Requests are answered by the artifact's compiled form (:mod:`vitalcheck.compiled`: NumPy arrays,
no pandas, no scikit-learn per call). A worker does not import scikit-learn: it checks the compiled
form against the pickle's answers recorded beside it; the check before workers
(:mod:`vitalcheck.preflight`) and ``import_models.py`` unpickle the artifact and check everything
against it live (``check_pickle``). Each
kind owns its raw outputs, its prediction type and its batch-output columns:
:class:`BinaryRiskPredictor`, :class:`MulticlassPredictor`, :class:`RegressionPredictor` and
:class:`IntervalRegressionPredictor` (the ONNX image classifier is
:class:`vitalcheck.predictors.mri.ImagePredictor`). :func:`predictor_class` picks the kind of a
catalog record; :meth:`TabularPredictor.load` called on the base class does so itself.
"""

from __future__ import annotations

import logging
import re
import warnings as pywarnings
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any, ClassVar, cast

import numpy as np
import pandas as pd
from pydantic import BaseModel

from vitalcheck.cards import CURRENT_TABULAR_FORMAT, ArtifactCheckError, ModelCard, verify_artifact
from vitalcheck.catalog import ModelSpec
from vitalcheck.compiled import (
    ADDITIVITY_TOLERANCE,
    REFERENCE_KEYS,
    CompiledModel,
    StaleForm,
    compile_estimator,
    probabilities,
)
from vitalcheck.schemas.common import ClassPrediction, ModelInfo, RiskPrediction
from vitalcheck.schemas.insurance import InsurancePrediction
from vitalcheck.schemas.life_expectancy import LifeExpectancyPrediction

GOLDEN_TOLERANCE = 1e-6
"""Largest absolute difference allowed between a golden output and the loaded artifact's answer."""

TOP_K = 5
"""Number of contributors returned per prediction."""

TABLE_CHECK_ROWS = 1000
"""Generated records (with the golden ones) on which every start-up compares the compiled form with
the pickle's answers, and the pickle's term tables with its fitted trees."""

OOD_WARNING_PERCENTILE = 99.0
"""Out-of-distribution percentile above which a record gets a warning."""

logger = logging.getLogger("vitalcheck")


def compile_artifact(spec: ModelSpec, estimator: Any) -> CompiledModel:
    """The compiled serving form of an unpickled artifact of ``spec`` (see :func:`~vitalcheck.compiled.compile_estimator`)."""
    categories = [f.categories if f.type == "category" else () for f in spec.features]
    return compile_estimator(estimator, spec.feature_names, categories)


def stored_compiled(spec: ModelSpec, directory: Path) -> CompiledModel | None:
    """The compiled form stored beside the artifact (``import_models.py`` writes it), or None.

    None when there is none (the training output, a test's folder) or it is of an older layout:
    the caller then compiles the pickle.

    Raises:
        ArtifactCheckError: a stored form exists but cannot be read.

    """
    path = directory / spec.compiled_file
    if not path.is_file():
        return None
    try:
        return CompiledModel.load(path)
    except StaleForm as exc:
        logger.info("%s: %s; compiling the pickle instead", spec.artifact, exc)
        return None
    except Exception as exc:  # a damaged or foreign file refuses the start
        raise ArtifactCheckError(f"compiled form {path} could not be read: {type(exc).__name__}") from exc


def unpickle(artifact: Path) -> Any:
    """Unpickle a (sha256-checked) scikit-learn artifact; imports scikit-learn.

    Raises:
        ArtifactCheckError: unpickling fails or warns of another scikit-learn version.

    """
    import joblib
    import sklearn

    try:
        with pywarnings.catch_warnings():
            pywarnings.simplefilter("error", category=sklearn.exceptions.InconsistentVersionWarning)
            return joblib.load(artifact)
    except Exception as exc:  # any unpickling failure refuses the start
        raise ArtifactCheckError(f"artifact {artifact} could not be loaded: {type(exc).__name__}: {exc}") from exc


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
    """One tabular artifact: its compiled form, which answers, its card and, on demand, its pickle.

    The base of the four kinds.

    Args:
        spec: catalog record.
        card: validated model card.
        info: model-store identity returned in responses.
        compiled: the artifact's compiled form (checked by :meth:`load`).
        directory: the folder holding the artifact (its pickle is read from there on demand).
        estimator: the unpickled pipeline, when already loaded (interval regressor: a tuple
            ``(central, lower, upper)``).

    """

    prediction_type: ClassVar[type[BaseModel]]
    """The pydantic type of one prediction of this kind (the API's ``prediction`` field)."""

    def __init__(
        self,
        spec: ModelSpec,
        card: ModelCard,
        info: ModelInfo,
        compiled: CompiledModel,
        directory: Path | None = None,
        estimator: Any = None,
    ) -> None:
        if list(compiled.fields) != spec.feature_names:
            raise ArtifactCheckError(f"the compiled form of {spec.artifact} has other fields than the catalog")
        self.spec = spec
        self.card = card
        self.info = info
        self.compiled = compiled
        self.terms = compiled.models[0]
        self._directory = directory
        self._estimator = estimator
        self._card_features = {f.name: f for f in card.features}
        self._names = spec.feature_names
        self._missing_code = np.asarray(
            [len(f.categories) if f.type == "category" else np.nan for f in spec.features], dtype=np.float64
        )
        ranged = [
            (j, self._card_features[f.name]) for j, f in enumerate(spec.features) if f.type in ("number", "integer")
        ]
        ranged = [(j, c) for j, c in ranged if c.train_min is not None]
        self._ranged = np.asarray([j for j, _ in ranged], dtype=np.intp)
        self._train_min = np.asarray([c.train_min for _, c in ranged], dtype=np.float64)
        self._train_max = np.asarray([c.train_max for _, c in ranged], dtype=np.float64)
        self._outside_text = {
            j: f"{c.name}: outside the training range {c.train_min:.15g} to {c.train_max:.15g}"
            f"{' ' + c.unit if c.unit else ''}; predicted as at the nearest edge of that range"
            for j, c in ranged
        }
        self._missing_text = [
            f"{n}: missing; the model scores it with its value for a missing {n}" for n in self._names
        ]
        # a category the request model accepts but no training record had (stroke: sex 'Other')
        widest = max([len(f.categories) for f in spec.features] + [0]) + 1
        self._unseen_code = np.zeros((len(self._names), widest), dtype=bool)
        for j, f in enumerate(spec.features):
            seen = self._card_features[f.name].train_categories
            if f.type == "category" and seen:
                self._unseen_code[j, : len(f.categories)] = [c not in seen for c in f.categories]
        self._unseen_text = [
            f"{n}: a category no training record had; the model scores it as none of the categories it was trained on"
            for n in self._names
        ]

    @property
    def estimator(self) -> Any:
        """The unpickled artifact, read on first use (serving never needs it; the checks and tests do)."""
        if self._estimator is None:
            if self._directory is None:
                raise ArtifactCheckError(f"no folder to read {self.spec.artifact} from")
            self._estimator = unpickle(self._directory / self.spec.artifact)
        return self._estimator

    @classmethod
    def load(cls, spec: ModelSpec, directory: Path, tag: str, *, check_pickle: bool = False) -> TabularPredictor:
        """Check and load an artifact from a directory holding it, its card and its compiled form.

        Called on :class:`TabularPredictor` itself, returns the predictor of ``spec``'s output
        kind (:func:`predictor_class`). Always: the artifact's sha256 must match the card, the
        card's scikit-learn version must be the installed one, and the compiled form must give
        the card's golden outputs and the pickle's recorded answers on the golden records and
        :data:`TABLE_CHECK_ROWS` generated ones, within :data:`GOLDEN_TOLERANCE`
        (:meth:`check_served`). With ``check_pickle``, or when the folder holds no compiled form
        with recorded answers (it is then compiled here), the pickle is unpickled and checked
        live as well (:meth:`check_pickle`).

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
        trained_with, installed = card.framework_versions.get("scikit-learn"), version("scikit-learn")
        if trained_with != installed:
            raise ArtifactCheckError(
                f"artifact {artifact} was built with scikit-learn {trained_with}, "
                f"but {installed} is installed: retrain it or install the matching version"
            )
        info = ModelInfo(name=spec.name, tag=tag, version=tag.split(":")[-1], sha256=card.sha256)
        compiled = stored_compiled(spec, directory)
        if compiled is None or not compiled.reference:
            estimator = unpickle(artifact)
            try:
                compiled = compile_artifact(spec, estimator)
            except (ValueError, AttributeError, KeyError) as exc:
                raise ArtifactCheckError(f"artifact {artifact} could not be compiled: {exc}") from exc
            predictor = kind(spec, card, info, compiled, directory, estimator)
            reference = predictor.pickle_reference()
            predictor.compiled = compiled.with_reference(reference)
            live: dict[str, np.ndarray] | None = reference
            check_pickle = True
        else:
            predictor, live = kind(spec, card, info, compiled, directory), None
        predictor.check_served()
        if check_pickle:
            predictor.check_pickle(live)
        return predictor

    # ---- what each kind defines ------------------------------------------------------------
    def outputs(self, frame: pd.DataFrame) -> np.ndarray:
        """The pickle's raw outputs of a frame (the golden outputs' form): the reference of the compiled form.

        Returns:
            Class probabilities (n, n_classes) in catalog order, regression values (n,), or
            (n, 3) as (central, lower, upper): see each kind.

        """
        raise NotImplementedError

    def served_outputs(self, explained: Explained) -> np.ndarray:
        """What :meth:`outputs` gives, from the compiled form's pass over the same records."""
        raise NotImplementedError

    def predictions(self, explained: Explained, *, moderate: float, high: float) -> list[Any]:
        """One :attr:`prediction_type` per record of a compiled pass (see :meth:`predict`)."""
        raise NotImplementedError

    @classmethod
    def score_columns(cls, spec: ModelSpec) -> list[OutputColumn]:
        """The columns batch scoring writes for one prediction of this kind of model ``spec``, in order."""
        raise NotImplementedError

    def score_values(self, prediction: Any) -> dict[str, Any]:
        """One prediction as values of :meth:`score_columns` (column name → value)."""
        raise NotImplementedError

    # ---- shared -----------------------------------------------------------------------------
    def predict(self, records: Sequence[Any], *, moderate: float, high: float) -> list[Any]:
        """Score validated request records, each with its exact explanation and top-5 contributors.

        One compiled pass per micro-batch (:meth:`explained`).

        Args:
            records: request models of this task (or dicts keyed by the catalog feature names).
            moderate: probability at or above which a binary risk is 'moderate'.
            high: probability at or above which a binary risk is 'high'.

        Returns:
            One :attr:`prediction_type` per record, in order.

        """
        return self.predictions(self.explained(records), moderate=moderate, high=high)

    def answer(
        self, records: Sequence[Any], *, moderate: float, high: float, prefix: str = ""
    ) -> tuple[list[Any], list[list[str]]]:
        """:meth:`predict` and each record's :meth:`warnings`, from one compiled pass."""
        explained = self.explained(records)
        return self.predictions(explained, moderate=moderate, high=high), self.warnings(explained, prefix)

    def check_records(self) -> list[dict[str, Any]]:
        """The records every load checks: the card's golden inputs, then :data:`TABLE_CHECK_ROWS` generated ones."""
        return [g["input"] for g in self.card.golden] + generated_records(self.spec, TABLE_CHECK_ROWS)

    def pickle_reference(self) -> dict[str, np.ndarray]:
        """The pickle's answers on :meth:`check_records`, as recorded in the compiled form (:data:`REFERENCE_KEYS`)."""
        records = self.check_records()
        frame = records_to_frame(self.spec, records)
        reference = self.reference_explained(frame)
        outputs = np.asarray(self.outputs(frame), dtype=np.float64).reshape(len(records), -1)
        values = self.compiled.encode(records)
        return {
            "values": values,
            "outputs": outputs,
            "base": reference.base,
            "shap": reference.shap,
            "ood": reference.ood,
        }

    def compiled_answers(self, records: Sequence[Any]) -> tuple[Explained, dict[str, np.ndarray]]:
        """The compiled form's pass over ``records`` and its answers in :meth:`pickle_reference`'s form."""
        served = self.explained(records)
        outputs = np.asarray(self.served_outputs(served), dtype=np.float64).reshape(len(records), -1)
        answers = {"values": served.values, "outputs": outputs, "base": served.base, "shap": served.shap}
        return served, {**answers, "ood": served.ood}

    def check_served(self) -> float:
        """Check the compiled form without the pickle: what every worker does at start-up.

        The card's golden outputs, and the pickle's answers recorded beside the compiled form on
        :meth:`check_records` (outputs, SHAP base and values, OOD percentiles) must be reproduced
        within :data:`GOLDEN_TOLERANCE`, the records must encode as recorded, and the
        explanations must add up within :data:`ADDITIVITY_TOLERANCE`.

        Returns:
            The largest absolute difference from the recorded answers.

        Raises:
            ArtifactCheckError: a check fails, or the card has no golden records.

        """
        name = self.spec.artifact
        if not self.card.golden:
            raise ArtifactCheckError(f"model card of {name} has no golden records")
        served, got = self.compiled_answers(self.check_records())
        golden = np.asarray([g["output"] for g in self.card.golden], dtype=np.float64).reshape(
            len(self.card.golden), -1
        )
        worst_golden = _worst(got["outputs"][: len(golden)], golden)
        if not worst_golden <= GOLDEN_TOLERANCE:
            raise ArtifactCheckError(
                f"artifact {name}: its compiled form differs from the card's golden outputs "
                f"(max abs difference {worst_golden:.3g} > {GOLDEN_TOLERANCE:g}): rerun `python import_models.py --force`"
            )
        reference = self.compiled.reference
        if reference["values"].shape != served.values.shape or not np.array_equal(
            reference["values"], served.values, equal_nan=True
        ):
            raise ArtifactCheckError(f"artifact {name}: the check records no longer encode as when it was compiled")
        worst = max(_worst(got[k], reference[k]) for k in REFERENCE_KEYS if k != "values")
        if not worst <= GOLDEN_TOLERANCE:
            raise ArtifactCheckError(
                f"artifact {name}: its compiled form differs from the pickle's recorded answers "
                f"(max abs difference {worst:.3g} > {GOLDEN_TOLERANCE:g}): rerun `python import_models.py --force`"
            )
        additivity = self.check_additivity(served)
        if not additivity <= ADDITIVITY_TOLERANCE:
            raise ArtifactCheckError(
                f"artifact {name}: explanations do not add up to the output "
                f"(max error {additivity:.3g} > {ADDITIVITY_TOLERANCE:g})"
            )
        return worst

    def check_pickle(self, live: dict[str, np.ndarray] | None = None) -> float:
        """Check the pickle itself, and the compiled form and its recorded answers against it, live.

        The pickle must reproduce the card's golden outputs and its explanations add up; its term
        tables must equal its fitted trees on :meth:`check_records`; and its answers there (``live``:
        :meth:`pickle_reference`, when the caller has just computed it) must equal both the compiled
        form's and the recorded ones within :data:`GOLDEN_TOLERANCE`. Imports scikit-learn (the
        check before workers and ``import_models.py`` run it).

        Returns:
            The largest absolute difference between the pickle and the compiled form.

        Raises:
            ArtifactCheckError: a check fails.

        """
        name = self.spec.artifact
        golden_frame = records_to_frame(self.spec, [g["input"] for g in self.card.golden])
        got = np.asarray(self.outputs(golden_frame), dtype=np.float64).reshape(len(golden_frame), -1)
        expected = np.asarray([g["output"] for g in self.card.golden], dtype=np.float64).reshape(got.shape)
        worst_golden = _worst(got, expected)
        if not worst_golden <= GOLDEN_TOLERANCE:
            raise ArtifactCheckError(
                f"artifact {name} no longer reproduces its golden outputs "
                f"(max abs difference {worst_golden:.3g} > {GOLDEN_TOLERANCE:g}): library drift?"
            )
        additivity = self.check_additivity(self.reference_explained(golden_frame))
        if not additivity <= ADDITIVITY_TOLERANCE:
            raise ArtifactCheckError(
                f"artifact {name}: explanations do not add up to the output on the golden records "
                f"(max error {additivity:.3g} > {ADDITIVITY_TOLERANCE:g})"
            )
        records = self.check_records()
        self.check_tables(records_to_frame(self.spec, records))
        live = live if live is not None else self.pickle_reference()
        _, compiled = self.compiled_answers(records)
        keys = [k for k in REFERENCE_KEYS if k != "values"]
        worst = max(_worst(compiled[k], live[k]) for k in keys)
        recorded = max(_worst(self.compiled.reference[k], live[k]) for k in keys)
        if not max(worst, recorded) <= GOLDEN_TOLERANCE:
            raise ArtifactCheckError(
                f"artifact {name}: its compiled form differs from the pickle (max abs difference "
                f"{max(worst, recorded):.3g} > {GOLDEN_TOLERANCE:g}): rerun `python import_models.py --force`"
            )
        return worst

    def check_tables(self, frame: pd.DataFrame) -> None:
        """Compare the pickle's term tables with its fitted trees on the records of ``frame``.

        Raises:
            ArtifactCheckError: the tables and the trees differ by more than :data:`GOLDEN_TOLERANCE`.

        """
        pipelines = self.estimator if isinstance(self.estimator, tuple) else (self.estimator,)
        for pipeline in pipelines:
            inner: Any = getattr(pipeline, "regressor", pipeline)  # a ConformalShift bound wraps its pipeline
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

    def explained(self, records: Sequence[Any]) -> Explained:
        """One compiled pass over the records: outputs, exact SHAP values and out-of-distribution percentiles.

        Args:
            records: request models of this task, or dicts keyed by the catalog feature names
                (missing values as ``None``).

        Returns:
            :class:`Explained` with the encoded values, the raw outputs on the additive scale,
            the SHAP base and values per catalog field, and the OOD percentile of every record.

        """
        values = self.compiled.encode(records)
        raw, base, shap = self.terms.explain(values)
        return Explained(records, values, raw, base, shap, self.compiled.ood_percentile(values))

    def reference_explained(self, frame: pd.DataFrame) -> Explained:
        """The pickle's own pass over a frame (:func:`records_to_frame`): what the compiled form must equal."""
        steps = self.pipeline().named_steps
        encoded = steps["preprocess"].transform(frame)
        model = steps["model"]
        base, shap = model.explain(encoded)
        raw = model.decision_function(encoded) if hasattr(model, "decision_function") else model.predict(encoded)
        return Explained(
            records=(),
            values=np.empty((len(frame), 0)),
            raw=np.asarray(raw, dtype=np.float64).reshape(len(frame), -1),
            base=np.asarray(base, dtype=np.float64),
            shap=shap[:, [model.field_names().index(n) for n in self._names], :],  # catalog order
            ood=steps["domain"].percentile(encoded),
        )

    def check_additivity(self, explained: Explained) -> float:
        """Largest |base + Σ SHAP − output| over records and outputs (the explanations' exactness)."""
        return float(np.max(np.abs(explained.base + explained.shap.sum(axis=1) - explained.raw)))

    def explanations(self, explained: Explained, k: int = 0) -> list[dict[str, Any]]:
        """Every record's explanation of output ``k`` (a class for multiclass models), as :class:`Explanation` fields."""
        scale, base, names = self.scale(k), float(explained.base[k]), self._names
        return [
            {
                "scale": scale,
                "base_value": base,
                "output_value": raw,
                "contributions": dict(zip(names, row, strict=True)),
            }
            for raw, row in zip(explained.raw[:, k].tolist(), explained.shap[:, :, k].tolist(), strict=True)
        ]

    def scale(self, k: int = 0) -> str:
        """Name of the explanation scale of output ``k``."""
        return self.spec.target_unit

    def ranked(self, explained: Explained, k: np.ndarray | int = 0) -> list[list[dict[str, Any]]]:
        """Top :data:`TOP_K` contributors per record by ``|SHAP value|`` of output ``k`` (ties keep field order).

        Each as :class:`Contributor` fields.
        """
        n = len(explained.records)
        picks = np.broadcast_to(np.asarray(k), (n,))
        values = explained.shap[np.arange(n), :, picks]
        order = np.argsort(-np.abs(values), axis=1, kind="stable")[:, :TOP_K]
        names = self._names
        out = []
        for row, top, record in zip(values.tolist(), order.tolist(), explained.records, strict=True):
            submitted = record if isinstance(record, dict) else record.__dict__
            out.append([{"feature": names[j], "value": submitted[names[j]], "contribution": row[j]} for j in top])
        return out

    def warnings(self, explained: Explained, prefix: str = "") -> list[list[str]]:
        """Warnings per record: inputs beyond the training range, missing inputs, unseen categories, unusual records.

        Messages name the field and the training range, never the submitted value; with a
        ``prefix`` (``"records"``) each is prefixed by the record's index (``records[3].age: …``).
        """
        values = explained.values
        missing = np.isnan(values) | (values == self._missing_code)
        ranged = values[:, self._ranged]
        outside = np.zeros(values.shape, dtype=bool)
        outside[:, self._ranged] = (ranged < self._train_min) | (ranged > self._train_max)
        unusual = explained.ood > OOD_WARNING_PERCENTILE
        codes = np.minimum(np.nan_to_num(values, nan=0.0), self._unseen_code.shape[1] - 1).astype(np.intp)
        unseen = self._unseen_code[np.arange(values.shape[1]), np.maximum(codes, 0)]  # False for numbers
        out: list[list[str]] = []
        for i in range(len(values)):
            where = f"{prefix}[{i}]." if prefix else ""
            messages = [  # in field order; a field is at most one of missing, outside its range, unseen
                where
                + (
                    self._missing_text[j]
                    if missing[i, j]
                    else self._outside_text[j]
                    if outside[i, j]
                    else self._unseen_text[j]
                )
                for j in np.flatnonzero(missing[i] | outside[i] | unseen[i]).tolist()
            ]
            if unusual[i]:
                out_name = f"{prefix}[{i}]" if prefix else "record"
                messages.append(
                    f"{out_name}: unusual combination of values (beyond the 99th percentile of the training "
                    "rows' distances); the answer rests on little data like it"
                )
            out.append(messages)
        return out


@dataclass(frozen=True)
class Explained:
    """What one pass over a micro-batch gives (see :meth:`TabularPredictor.explained`).

    Attributes:
        records: the records scored (request models or dicts; empty for the pickle's pass).
        values: the records encoded for the compiled form, (n, n_fields) (:meth:`CompiledModel.encode`).
        raw: model output on the additive scale, (n, n_out): log-odds, softmax scores or the unit.
        base: SHAP base value per output, (n_out,).
        shap: SHAP values, (n, n_fields, n_out), fields in catalog order.
        ood: out-of-distribution percentile per record, (n,).

    """

    records: Sequence[Any]
    values: np.ndarray
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

    def served_outputs(self, explained: Explained) -> np.ndarray:
        """Class probabilities, shape (n, 2)."""
        return probabilities(explained.raw[:, 0])

    def predictions(self, explained: Explained, *, moderate: float, high: float) -> list[Any]:
        """See :meth:`TabularPredictor.predict`; contributions on the log-odds scale."""
        probability = self.served_outputs(explained)[:, 1].tolist()
        contributors, explanations = self.ranked(explained), self.explanations(explained)
        ood = explained.ood.tolist()
        return [
            RiskPrediction.model_validate(
                dict(
                    probability=p,
                    risk_level=_risk_level(p, moderate, high),
                    contributors=c,
                    explanation=explanations[i],
                    ood_percentile=ood[i],
                )
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

    def served_outputs(self, explained: Explained) -> np.ndarray:
        """Class probabilities, shape (n, n_classes)."""
        return probabilities(explained.raw)

    def predictions(self, explained: Explained, *, moderate: float, high: float) -> list[Any]:
        """See :meth:`TabularPredictor.predict`; top contributors explain each record's most probable class."""
        classes = self.spec.classes
        per_class = self.served_outputs(explained)
        winners = per_class.argmax(axis=1)
        contributors = self.ranked(explained, winners)
        explanations = [self.explanations(explained, j) for j in range(len(classes))]
        ood = explained.ood.tolist()
        return [
            ClassPrediction.model_validate(
                dict(
                    probabilities=dict(zip(classes, probs, strict=True)),
                    predicted_class=classes[k],
                    contributors=c,
                    explanations={cls: explanations[j][i] for j, cls in enumerate(classes)},
                    ood_percentile=ood[i],
                )
            )
            for i, (probs, k, c) in enumerate(zip(per_class.tolist(), winners.tolist(), contributors, strict=True))
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

    def served_outputs(self, explained: Explained) -> np.ndarray:
        """Predicted values, shape (n,)."""
        return explained.raw[:, 0]

    def predictions(self, explained: Explained, *, moderate: float, high: float) -> list[Any]:
        """See :meth:`TabularPredictor.predict`; contributions in the target's unit."""
        contributors, explanations = self.ranked(explained), self.explanations(explained)
        value, ood = explained.raw[:, 0].tolist(), explained.ood.tolist()
        return [
            LifeExpectancyPrediction.model_validate(
                dict(
                    life_expectancy_years=value[i],
                    contributors=c,
                    explanation=explanations[i],
                    ood_percentile=ood[i],
                )
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

    def served_outputs(self, explained: Explained) -> np.ndarray:
        """Shape (n, 3) as (central, lower, upper), the bounds from the compiled quantile models."""
        central = explained.raw[:, 0]
        lower, upper = (m.raw(explained.values)[:, 0] for m in self.compiled.models[1:])
        return np.column_stack([central, np.minimum(lower, central), np.maximum(upper, central)])

    def pipeline(self) -> Any:
        """The central model (its estimate is the one explained)."""
        return self.estimator[0]

    def predictions(self, explained: Explained, *, moderate: float, high: float) -> list[Any]:
        """See :meth:`TabularPredictor.predict`; contributions explain the central estimate, in USD/year."""
        contributors, explanations = self.ranked(explained), self.explanations(explained)
        ood = explained.ood.tolist()
        return [
            InsurancePrediction.model_validate(
                dict(
                    charges_usd=m,
                    lower_usd=lo,
                    upper_usd=hi,
                    contributors=c,
                    explanation=explanations[i],
                    ood_percentile=ood[i],
                )
            )
            for i, ((m, lo, hi), c) in enumerate(
                zip(self.served_outputs(explained).tolist(), contributors, strict=True)
            )
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


def _worst(a: Any, b: Any) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf")
    return float(np.max(np.abs(a - b), initial=0.0))


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
