"""Shared response shapes and the catalog-driven request models of the tabular tasks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from vitalcheck.catalog import ModelSpec

API_VERSION = "1.0.0"
"""Version of the VitalCheck HTTP API (the original design's routes and envelope)."""

P = TypeVar("P")

StrictInput = ConfigDict(extra="forbid", allow_inf_nan=False, str_max_length=200)
"""Request models refuse unknown fields, NaN/Infinity and over-long strings."""


def json_types(kinds: dict[str, str]):
    """A before-validator refusing, in JSON requests, what pydantic's lax mode would coerce.

    Lax mode reads ``true`` as 1, ``"8"`` as 8 and ``"yes"`` or ``1`` as true; a JSON client
    sending those has the wrong type, and the API documents JSON numbers and booleans.
    Python-side validation (uploaded CSV/Parquet rows, batch scoring) keeps lax conversion,
    since a file's columns arrive as NumPy values and 0/1 flags.

    Args:
        kinds: field name → ``"number"``, ``"integer"`` or ``"boolean"``.

    Returns:
        A ``field_validator`` to place in a model's body or pass in ``create_model(__validators__=...)``.

    """

    def check(cls, value: Any, info: ValidationInfo) -> Any:
        if info.mode != "json" or value is None or info.field_name is None:
            return value
        kind = kinds[info.field_name]
        if kind == "boolean" and not isinstance(value, bool):
            raise PydanticCustomError("bool_type", "Input should be true or false")
        if kind != "boolean" and isinstance(value, (bool, str)):
            raise PydanticCustomError(
                f"{'int' if kind == 'integer' else 'float'}_type", "Input should be a JSON number"
            )
        return value

    return field_validator(*kinds, mode="before")(check)


RECORD_CHUNK = 50
"""Records validated at a time in a batch (JSON or uploaded): validation stops at the first chunk with an error."""


def validate_in_chunks(records: list[Any], validate: Callable[[list[Any]], list[Any]]) -> list[Any]:
    """Validate ``records`` :data:`RECORD_CHUNK` at a time, stopping at the first chunk with an error.

    pydantic reports every error of every record: 10,000 empty records of a 30-field model made
    300,000 errors and 7-11 s of one worker's CPU to build, serialise and redact them, for an
    answer that lists at most 100. Stopping at the first failing chunk bounds that to one chunk's
    errors; a valid batch costs one extra call per chunk.

    Args:
        records: the submitted records (a list).
        validate: validates a list of records and returns the validated list; raises
            ``ValidationError`` with locations starting at the index within that list.

    Returns:
        The validated records, in order.

    Raises:
        ValidationError: the first failing chunk's errors, located by the record's index in
            ``records``; no input value is kept.

    """
    validated: list[Any] = []
    for start in range(0, len(records), RECORD_CHUNK):
        try:
            validated += validate(records[start : start + RECORD_CHUNK])
        except ValidationError as exc:
            if not start:
                raise
            details = [
                InitErrorDetails(
                    type=PydanticCustomError(e["type"], e["msg"]),
                    loc=(start + int(e["loc"][0]), *e["loc"][1:]),
                    input=None,
                )
                for e in exc.errors(include_input=False, include_context=False, include_url=False)
            ]
            raise ValidationError.from_exception_data("records", details) from None
    return validated


def documented_keys_only():
    """A before-validator refusing a record with undocumented keys in one error that does not name them.

    pydantic reports each unknown key as an error of its own at ``loc: [<key>]``; a key is
    submitted data (a client may send a patient's name as one), and a body of a million keys
    became a million errors. This refuses the record at its own location, type
    ``extra_forbidden``, before any field is validated.

    Returns:
        A ``model_validator`` to place in a model's body or pass in ``create_model(__validators__=...)``.

    """

    def check(cls, data: Any) -> Any:
        if isinstance(data, dict) and not cls.model_fields.keys() >= data.keys():
            raise PydanticCustomError("extra_forbidden", "unknown field(s): send only the documented fields")
        return data

    return model_validator(mode="before")(check)


class ModelInfo(BaseModel):
    """Which model answered."""

    model_config = ConfigDict(protected_namespaces=())

    name: str = Field(description="Short model name, e.g. 'diabetes'.")
    tag: str = Field(description="BentoML model-store tag (name:version) of the served artifact.")
    version: str = Field(description="Model-store version of the served artifact.")
    sha256: str = Field(description="sha256 of the served artifact, as recorded in its model card.")


class Envelope(BaseModel, Generic[P]):
    """Every single-record response: the API version, the served model, the prediction and warnings."""

    model_config = ConfigDict(protected_namespaces=())

    api_version: str = Field(API_VERSION, description="VitalCheck API version.")
    model: ModelInfo = Field(description="The model that produced the prediction.")
    prediction: P = Field(description="The task's prediction.")
    warnings: list[str] = Field(
        default_factory=list,
        description="Things the caller should know, e.g. each input outside the range seen in training "
        "(the model is extrapolating). Warnings name the field and the training range, never the value.",
    )


class BatchEnvelope(BaseModel, Generic[P]):
    """Every batch response: one prediction per submitted record, in order."""

    model_config = ConfigDict(protected_namespaces=())

    api_version: str = Field(API_VERSION, description="VitalCheck API version.")
    model: ModelInfo = Field(description="The model that produced the predictions.")
    predictions: list[P] = Field(description="One prediction per record, in the order submitted.")
    warnings: list[str] = Field(
        default_factory=list,
        description="Per-record warnings, prefixed with the record's index (e.g. 'records[3].age_years: …').",
    )


class Contributor(BaseModel):
    """One input's signed contribution to the prediction: its exact SHAP value."""

    feature: str = Field(description="Raw input field name.")
    value: float | int | bool | str | None = Field(
        description="The value as submitted (null: missing; the model has a value for missing: learned where "
        "training had enough missing values, else the field's average effect)."
    )
    contribution: float = Field(
        description="Exact SHAP value of this field on the explanation's scale (log-odds for classifiers, "
        "the output's unit for regressors), against the training rows' mean output. Positive pushes the output up."
    )


class Explanation(BaseModel):
    """An exact additive explanation: ``base_value + sum(contributions.values()) == output_value`` (to 1e-9)."""

    scale: str = Field(
        description="The additive scale: 'log-odds of <class>' (binary risk), 'softmax score of <class>' "
        "(multiclass: log-odds up to a per-record constant), or the output's unit ('years', 'USD/year')."
    )
    base_value: float = Field(description="Mean model output over the training rows, on `scale`.")
    output_value: float = Field(
        description="This record's model output on `scale` (a probability is 1 / (1 + exp(-output_value)))."
    )
    contributions: dict[str, float] = Field(
        description="Exact SHAP value of every input field on `scale`, keyed by field name in the input's field "
        "order: interventional SHAP of the model's additive terms against the training rows."
    )


OOD_PERCENTILE_DESCRIPTION = (
    "How unusual the record's combination of values is: the percentile (0-100) of its squared Mahalanobis "
    "distance from the training rows among the training rows' own distances; above 99 a warning is added."
)


class RiskPrediction(BaseModel):
    """A binary risk: probability, risk level and top contributors."""

    probability: float = Field(ge=0, le=1, description="Probability of the positive class, in [0, 1].")
    risk_level: Literal["low", "moderate", "high"] = Field(
        description="'low' below VITALCHECK_RISK_MODERATE_THRESHOLD (default 0.2), 'high' at or above "
        "VITALCHECK_RISK_HIGH_THRESHOLD (default 0.5), 'moderate' in between."
    )
    contributors: list[Contributor] = Field(description="Top-5 contributors, largest |contribution| first.")
    explanation: Explanation = Field(description="Every field's exact contribution to the log-odds.")
    ood_percentile: float = Field(ge=0, le=100, description=OOD_PERCENTILE_DESCRIPTION)


def _describe(feature) -> str:
    parts = [feature.description]
    if feature.unit:
        parts.append(f"Unit: {feature.unit}.")
    if feature.valid_min is not None or feature.valid_max is not None:
        parts.append(f"Valid range: {feature.valid_min:g} to {feature.valid_max:g}.")
    if feature.categories:
        parts.append("One of: " + ", ".join(repr(c) for c in feature.categories) + ".")
    if feature.nullable:
        parts.append("Required, but may be null when unknown (the model imputes it).")
    parts.append(f"Source column: '{feature.source_column.strip()}'.")
    return " ".join(parts)


_PY_TYPES: dict[str, Any] = {"number": float, "integer": int, "boolean": bool}


def tabular_input_model(spec: ModelSpec, example: dict[str, Any], class_name: str) -> type[BaseModel]:
    """Build the request model of a tabular task from its catalog record.

    Every feature becomes a required field named as in the catalog, typed (float, int, bool
    or a Literal of the categories), bounded by its valid range, nullable where the
    catalog says so, with a description giving unit, range and source column, and the
    example value. Unknown fields, NaN and Infinity are refused.

    Args:
        spec: the model's catalog record.
        example: one real record (used as the OpenAPI example and by tests).
        class_name: name of the generated class (shown in OpenAPI), e.g. ``DiabetesInput``.

    Returns:
        A pydantic model class.

    """
    fields: dict[str, Any] = {}
    for f in spec.features:
        typ: Any = _PY_TYPES.get(f.type) or Literal[f.categories]
        if f.nullable:
            typ = typ | None
        bounds: dict[str, Any] = {} if f.type in ("category", "boolean") else {"ge": f.valid_min, "le": f.valid_max}
        fields[f.name] = (typ, Field(..., description=_describe(f), examples=[example[f.name]], **bounds))
    config = ConfigDict(**StrictInput, json_schema_extra={"example": example})
    doc = f"Raw inputs of the {spec.name} model. {spec.task}"
    checked = json_types({f.name: f.type for f in spec.features if f.type in _PY_TYPES})
    return create_model(
        class_name,
        __config__=config,
        __doc__=doc,
        __module__=f"vitalcheck.schemas.{spec.name}",
        __validators__={"json_types": checked, "documented_keys": documented_keys_only()},
        **fields,
    )


def batch_input_model(record_model: type[BaseModel], class_name: str, max_records: int) -> type[BaseModel]:
    """Build a batch request model ``{"records": [record, ...]}`` of 1 to ``max_records`` records.

    ``max_records`` is VITALCHECK_MAX_BATCH_RECORDS, handed down by the service. A longer list is
    refused before any record is validated; records are validated :data:`RECORD_CHUNK` at a time.
    """
    field = Field(
        ...,
        min_length=1,
        max_length=max_records,
        description=f"Between 1 and {max_records} records; scored with one vectorised predict call.",
    )

    def chunked(cls, records: Any, handler: Callable[[Any], Any]) -> Any:
        # The length is checked before any record is validated: a body of millions of items is
        # refused at once. The handler validates each chunk in the request's own (JSON) mode.
        if not isinstance(records, list) or not records:
            return handler(records)
        if len(records) > max_records:
            raise PydanticCustomError("too_long", "List should have at most {max} items", {"max": max_records})
        return validate_in_chunks(records, handler)

    return create_model(
        class_name,
        __module__=record_model.__module__,
        __config__=ConfigDict(extra="forbid"),
        __doc__=f"A batch of {record_model.__name__} records.",
        __validators__={
            "documented_keys": documented_keys_only(),
            "chunked": field_validator("records", mode="wrap")(chunked),
        },
        records=(list[record_model], field),  # type: ignore[valid-type]
    )


R = TypeVar("R", bound=BaseModel)


class Batch(BaseModel, Generic[R]):
    """What the type checker sees of a :func:`batch_input_model` (which is built at run time)."""

    records: list[R]


class ClassPrediction(BaseModel):
    """A multiclass prediction: probability of every class and the most probable one."""

    probabilities: dict[str, float] = Field(description="Probability of each class (sum 1), keyed by class name.")
    predicted_class: str = Field(description="The most probable class.")
    contributors: list[Contributor] = Field(
        default_factory=list,
        description="Top-5 contributors to the predicted class's softmax score (tabular models only; empty for images).",
    )
    explanations: dict[str, Explanation] | None = Field(
        None, description="Per class, every field's exact contribution to its softmax score (tabular models only)."
    )
    ood_percentile: float | None = Field(None, ge=0, le=100, description=OOD_PERCENTILE_DESCRIPTION + " Tabular only.")
