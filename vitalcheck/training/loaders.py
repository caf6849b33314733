"""One loader per shared data set: source CSV → (X with catalog feature names, y).

Every loader takes the path of a file in the data set's source format (the shared CSV or any
file with the same columns and codes, e.g. new rows) and returns ``(X, y)``:

* ``X``: a DataFrame with exactly the catalog features (:mod:`vitalcheck.catalog`), in
  ``spec.feature_names`` order. Numbers are float64 (integer features int64 when complete),
  booleans Python ``bool`` (object dtype with ``None`` where missing), categories strings
  (``None`` where missing). Source missing-value codes (zeros that mean "not measured",
  ``N/A``) are already NaN / ``None``.
* ``y``: the catalog class label (classifiers, a string of ``spec.classes``) or the
  regression target (float64, in ``spec.target_unit``), aligned with ``X``.

The row index is the 0-based row number in the file, so rows can be traced back.
:func:`load_with_meta` also returns the non-feature columns a split needs (heart: site,
life expectancy: country).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from vitalcheck import sources
from vitalcheck.catalog import TABULAR_MODELS
from vitalcheck.sources import ColumnFormatError, MissingColumnError, features, read_source, source_columns

__all__ = [
    "DATA_FILES",
    "ColumnFormatError",
    "MissingColumnError",
    "catalog_violations",
    "data_file",
    "features",
    "load",
    "load_with_meta",
    "read_source",
    "source_columns",
]

DATA_FILES: dict[str, str] = {name: spec.source_file for name, spec in TABULAR_MODELS.items()}
"""Each tabular model's training file, relative to the data directory."""


def data_file(name: str, data_dir: str | Path) -> Path:
    """Return the path of model ``name``'s training file under ``data_dir``.

    Raises:
        KeyError: ``name`` is not a tabular model.

    """
    return Path(data_dir) / DATA_FILES[name]


def _labels(values: pd.Series, mapping: Mapping[Any, str], column: str, path: str | Path) -> pd.Series:
    out = values.map(lambda v: mapping.get(v, mapping.get(str(v).strip())))
    bad = sorted({str(v) for v in values[out.isna()]})
    if bad:
        raise ValueError(f"{path}: unexpected values {bad} in target column {column!r}")
    return out.astype(object).rename("target")


Loaded = tuple[pd.DataFrame, pd.Series, pd.DataFrame]


def _diabetes(path: str | Path) -> Loaded:
    raw = sources.read_csv(path)
    X = sources.features("diabetes", raw, path)
    y = _labels(
        sources.column(raw, "Outcome", path),
        {0: "no_diabetes", 1: "diabetes", "0": "no_diabetes", "1": "diabetes"},
        "Outcome",
        path,
    )
    return X, y, pd.DataFrame(index=raw.index)


def _heart(path: str | Path) -> Loaded:
    raw = sources.read_csv(path)
    X = sources.features("heart", raw, path)
    num = pd.to_numeric(sources.column(raw, "num", path), errors="raise")
    if num.isna().any() or ((num < 0) | (num > 4)).any():
        raise ValueError(f"{path}: target column 'num' must be 0-4 without missing values")
    y = (num > 0).map({False: "no_heart_disease", True: "heart_disease"}).astype(object).rename("target")
    meta = pd.DataFrame({"site": sources.column(raw, "dataset", path).astype(str)}, index=raw.index)
    return X, y, meta


def _stroke(path: str | Path) -> Loaded:
    raw = sources.read_csv(path)
    X = sources.features("stroke", raw, path)
    y = _labels(
        sources.column(raw, "stroke", path),
        {0: "no_stroke", 1: "stroke", "0": "no_stroke", "1": "stroke"},
        "stroke",
        path,
    )
    return X, y, pd.DataFrame(index=raw.index)


def _breast_cancer(path: str | Path) -> Loaded:
    raw = sources.read_csv(path)
    X = sources.features("breast_cancer", raw, path)
    y = _labels(sources.column(raw, "diagnosis", path), {"M": "malignant", "B": "benign"}, "diagnosis", path)
    return X, y, pd.DataFrame(index=raw.index)


def _sleep(path: str | Path) -> Loaded:
    spec = TABULAR_MODELS["sleep"]
    raw = sources.read_csv(path)
    X = sources.features("sleep", raw, path)
    labels = {c: c for c in spec.classes}
    y = _labels(sources.column(raw, "Sleep Disorder", path), labels, "Sleep Disorder", path)
    return X, y, pd.DataFrame(index=raw.index)


def _life_expectancy(path: str | Path) -> Loaded:
    raw = sources.read_csv(path)
    target = pd.to_numeric(sources.column(raw, "Life expectancy", path), errors="raise").astype("float64")
    raw = raw.loc[target.notna()]
    X = sources.features("life_expectancy", raw, path)
    y = target.loc[raw.index].rename("target")
    meta = pd.DataFrame({"country": sources.column(raw, "Country", path).astype(str)}, index=raw.index)
    return X, y, meta


def _insurance(path: str | Path) -> Loaded:
    raw = sources.read_csv(path)
    X = sources.features("insurance", raw, path)
    y = pd.to_numeric(sources.column(raw, "charges", path), errors="raise").astype("float64").rename("target")
    if y.isna().any():
        raise ValueError(f"{path}: target column 'charges' has missing values")
    return X, y, pd.DataFrame(index=raw.index)


_READERS: dict[str, Callable[[str | Path], Loaded]] = {
    "diabetes": _diabetes,
    "heart": _heart,
    "stroke": _stroke,
    "breast_cancer": _breast_cancer,
    "sleep": _sleep,
    "life_expectancy": _life_expectancy,
    "insurance": _insurance,
}


def load_with_meta(name: str, path: str | Path) -> Loaded:
    """Load a data set file with the non-feature columns its split needs.

    Args:
        name: tabular model name (catalog key).
        path: file in the data set's source format.

    Returns:
        ``(X, y, meta)``: features (n_rows, n_features), target (n_rows,), and a frame with
        the same index holding ``site`` (heart) or ``country`` (life expectancy); empty
        otherwise.

    Raises:
        KeyError: ``name`` is not a tabular model.
        FileNotFoundError: ``path`` does not exist.
        ValueError: a required column is missing or a value cannot be parsed.

    """
    return _READERS[name](path)


def load(name: str, path: str | Path) -> tuple[pd.DataFrame, pd.Series]:
    """Load a data set file as ``(X, y)`` (see the module docstring); errors as :func:`load_with_meta`."""
    X, y, _ = load_with_meta(name, path)
    return X, y


def catalog_violations(name: str, X: pd.DataFrame) -> list[str]:
    """List values of ``X`` that the catalog (API) would reject.

    Args:
        name: tabular model name.
        X: features as returned by a loader.

    Returns:
        One message per feature with out-of-range numbers, unknown categories, or missing
        values in a non-nullable feature (empty when the rows pass the catalog).

    """
    problems: list[str] = []
    for feat in TABULAR_MODELS[name].features:
        col = X[feat.name]
        n_missing = int(col.isna().sum())
        if n_missing and not feat.nullable:
            problems.append(f"{feat.name}: {n_missing} missing values but the catalog says not nullable")
        present = col[col.notna()]
        if feat.type in ("number", "integer"):
            values = present.astype("float64")
            if feat.valid_min is not None and (values < feat.valid_min).any():
                problems.append(
                    f"{feat.name}: {(values < feat.valid_min).sum()} values below valid_min {feat.valid_min} (min {values.min()})"
                )
            if feat.valid_max is not None and (values > feat.valid_max).any():
                problems.append(
                    f"{feat.name}: {(values > feat.valid_max).sum()} values above valid_max {feat.valid_max} (max {values.max()})"
                )
            if feat.type == "integer" and (values != values.round()).any():
                problems.append(f"{feat.name}: non-integer values")
        elif feat.type == "category":
            unknown = sorted(set(present) - set(feat.categories))
            if unknown:
                problems.append(f"{feat.name}: categories {unknown} not in the catalog")
    return problems
