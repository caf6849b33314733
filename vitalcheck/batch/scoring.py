"""Score a frame in a data set's source format with one tabular model, as the service does.

Pure pandas (no Spark): the Spark job calls :func:`score_frame` on every Arrow batch of
every partition, and the benchmark and the tests call it in-process. The pipeline is the
one behind the service's ``<route>/file`` endpoint:

1. :func:`vitalcheck.sources.features_of` parses the source columns (missing-value
   codes, the blood-pressure split, stray spaces in column names) into catalog features;
2. each row is validated by the task's request model (the same pydantic rules as the API:
   valid ranges, categories, nullability, integers);
3. :meth:`TabularPredictor.predict` scores the valid rows with one vectorised call and
   explains them (top-5 contributors), with the risk thresholds given by the caller.

Unlike the endpoint, which refuses a whole file for one bad row, a batch job keeps going:
a row that fails parsing or validation gets null scores and an ``error`` naming each field
and the rule it broke (never the value), like the API's 400 ``detail``.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import to_json

from vitalcheck import sources
from vitalcheck.catalog import ModelSpec
from vitalcheck.predictors.tabular import OutputColumn, TabularPredictor, predictor_class
from vitalcheck.schemas import INPUT_MODELS

NA_STRINGS: frozenset[str] = frozenset(sources.NA_STRINGS)
"""Strings the loaders read as missing in a CSV file ("None" is not one: it is a sleep class)."""

DEFAULT_BATCH_ROWS = 10_000
"""Rows scored per vectorised predict call (Spark: rows per Arrow batch)."""

_ROW_ADAPTERS: dict[type[BaseModel], TypeAdapter] = {}


def _row_adapter(record_model: type[BaseModel]) -> TypeAdapter:
    if record_model not in _ROW_ADAPTERS:
        _ROW_ADAPTERS[record_model] = TypeAdapter(list[record_model])  # type: ignore[valid-type]
    return _ROW_ADAPTERS[record_model]


def output_columns(spec: ModelSpec) -> list[OutputColumn]:
    """The columns :func:`score_frame` returns for model ``spec``, in order.

    Binary risk models: ``probability``, ``risk_level``; the sleep classifier: one
    ``probability_<class>`` per class and ``predicted_class``; life expectancy:
    ``life_expectancy_years``; insurance: ``charges_usd``, ``lower_usd``, ``upper_usd``, ``interval_level``.
    Then for every model: ``ood_percentile``, ``contributors`` (JSON), ``warnings`` (JSON), ``error`` (JSON,
    null when the row was scored) and ``model_tag``.
    """
    scores = predictor_class(spec).score_columns(spec)
    return [
        *scores,
        OutputColumn("ood_percentile", "double", "Out-of-distribution percentile (0-100), as in the API."),
        OutputColumn(
            "contributors",
            "string",
            'JSON list of the top-5 {"feature", "value", "contribution"}, as in the API response.',
        ),
        OutputColumn(
            "warnings", "string", "JSON list of warnings (out-of-range, missing or unusual inputs), as in the API."
        ),
        OutputColumn("error", "string", 'JSON list of {"type", "loc", "msg"} when the row was refused; else null.'),
        OutputColumn("model_tag", "string", "Model-store tag of the model that scored the row."),
    ]


def strip_na_strings(raw: pd.DataFrame) -> pd.DataFrame:
    """Turn the loaders' missing-value strings into missing values in text columns.

    For rows read as text (e.g. a CSV read by Spark with every column a string), so that
    "N/A" or "NaN" means missing exactly as when :func:`sources.read_source` reads the file.
    """
    out = raw.copy()
    for column in out.columns:
        series = out[column]
        if series.dtype == object or pd.api.types.is_string_dtype(series.dtype):
            out[column] = series.astype(object).where(~series.isin(NA_STRINGS) & series.notna(), None)
    return out


def _error_json(errors: list[dict[str, Any]]) -> str:
    return json.dumps([{"type": e["type"], "loc": list(e["loc"]), "msg": e["msg"]} for e in errors], ensure_ascii=False)


def _parse(spec: ModelSpec, raw: pd.DataFrame) -> tuple[pd.DataFrame, dict[int, str]]:
    """Catalog features of every parsable row (positional index) and an error per unparsable row.

    The whole frame is parsed at once; only when that fails is it parsed row by row, to
    find the rows at fault.

    Raises:
        sources.MissingColumnError: a required source column is absent (a job-level error).

    """
    raw = raw.reset_index(drop=True)
    try:
        return sources.features_of(spec, raw), {}
    except sources.MissingColumnError:
        raise
    except (ValueError, TypeError):
        pass
    parsed, errors = [], {}
    for i in range(len(raw)):
        try:
            parsed.append(sources.features_of(spec, raw.iloc[[i]]))
        except sources.ColumnFormatError as exc:
            msg = f"holds a value that is not a valid {exc.kind}"
            errors[i] = _error_json([{"type": "malformed_column", "loc": [exc.column], "msg": msg}])
        except (ValueError, TypeError):
            msg = "a column could not be parsed in its documented format"
            errors[i] = _error_json([{"type": "malformed_row", "loc": [], "msg": msg}])
    features = pd.concat(parsed) if parsed else pd.DataFrame(columns=spec.feature_names)
    return features, errors


def _validate(
    record_model: type[BaseModel], features: pd.DataFrame
) -> tuple[list[int], list[BaseModel], dict[int, str]]:
    """Validate parsed rows with the task's request model; returns (positions, records, errors)."""
    positions = [int(i) for i in features.index]
    rows = features.astype(object).where(features.notna(), None).to_dict("records")
    adapter = _row_adapter(record_model)
    try:
        return positions, adapter.validate_python(rows), {}
    except ValidationError as exc:
        details = exc.errors(include_input=False, include_context=False, include_url=False)
    by_row: dict[int, list[dict[str, Any]]] = {}
    for d in details:
        by_row.setdefault(int(d["loc"][0]), []).append({**d, "loc": d["loc"][1:]})
    errors = {positions[k]: _error_json(v) for k, v in by_row.items()}
    keep = [k for k in range(len(rows)) if k not in by_row]
    records = adapter.validate_python([rows[k] for k in keep])
    return [positions[k] for k in keep], records, errors


def score_frame(
    predictor: TabularPredictor,
    raw: pd.DataFrame,
    *,
    moderate: float,
    high: float,
    record_model: type[BaseModel] | None = None,
) -> pd.DataFrame:
    """Score rows in the data set's source format; one output row per input row, in order.

    Args:
        predictor: the loaded model.
        raw: rows with the source column names (as :func:`sources.read_source` returns
            them, or as Spark reads a Parquet or CSV file); other columns are ignored.
        moderate: probability at or above which a binary risk is 'moderate'.
        high: probability at or above which a binary risk is 'high'.
        record_model: the task's request model (default: the served task's, by catalog name).

    Returns:
        The :func:`output_columns` of the model (float64 or string columns), on a 0-based
        ``RangeIndex``. Scores equal the service's answers for the same rows.

    Raises:
        sources.MissingColumnError: a required source column is absent.

    """
    spec = predictor.spec
    n = len(raw)
    columns = output_columns(spec)
    out: dict[str, Any] = {c.name: np.full(n, np.nan) if c.type == "double" else [None] * n for c in columns}
    out["model_tag"] = [predictor.info.tag] * n
    features, errors = _parse(spec, raw)
    record_model = record_model or INPUT_MODELS[spec.name]
    positions, records, refused = _validate(record_model, features) if len(features) else ([], [], {})
    errors.update(refused)
    for i, message in errors.items():
        out["error"][i] = message
    if records:
        predictions, warnings = predictor.answer(records, moderate=moderate, high=high)
        for i, prediction, warned in zip(positions, predictions, warnings, strict=True):
            for column, value in predictor.score_values(prediction).items():
                out[column][i] = value
            out["ood_percentile"][i] = prediction.ood_percentile
            out["contributors"][i] = to_json(prediction.contributors).decode()
            out["warnings"][i] = json.dumps(warned, ensure_ascii=False)
    return pd.DataFrame({c.name: out[c.name] for c in columns})


def score_pandas(
    predictor: TabularPredictor,
    raw: pd.DataFrame,
    *,
    moderate: float,
    high: float,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> pd.DataFrame:
    """Score a whole frame in this process, ``batch_rows`` at a time: what a Spark task does, without Spark.

    Returns:
        ``raw``'s columns followed by the model's output columns, on a 0-based index.

    """
    parts = []
    for start in range(0, len(raw), batch_rows):
        chunk = raw.iloc[start : start + batch_rows].reset_index(drop=True)
        parts.append(pd.concat([chunk, score_frame(predictor, chunk, moderate=moderate, high=high)], axis=1))
    return (
        pd.concat(parts, ignore_index=True)
        if parts
        else pd.concat([raw, score_frame(predictor, raw, moderate=moderate, high=high)], axis=1)
    )
