"""The test oracle of the served contributions: "replace by baseline", one feature at a time, plainly.

The service computes the same contributions from one typed block frame
(:meth:`vitalcheck.predictors.tabular.TabularPredictor.block_frame`); the tests check that both
agree, and the properties below, on real rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA:
        return True
    return isinstance(value, float | np.floating) and math.isnan(value)


def _native(value: Any) -> Any:
    """Return a JSON-native copy of a cell value (``None`` for missing, numpy scalars unwrapped)."""
    if _is_missing(value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def _same(value: Any, baseline: Any) -> bool:
    """Whether a row's value equals the baseline (two missing values are equal)."""
    if _is_missing(value) or _is_missing(baseline):
        return _is_missing(value) and _is_missing(baseline)
    try:
        return bool(value == baseline)
    except (TypeError, ValueError):
        return False


def contributions(
    predict: Callable[[pd.DataFrame], np.ndarray],
    rows: pd.DataFrame,
    baseline: Mapping[str, Any],
    top_k: int | None = 5,
) -> list[list[tuple[str, Any, float]]]:
    """Signed contribution of each feature to each row's prediction ("replace by baseline").

    For row ``x`` and feature ``j``::

        contribution_j(x) = predict(x) - predict(x with feature j set to baseline[j])

    All ``n × (f + 1)`` predictions (each row as given, then each row with one feature
    replaced) are made with ONE batched ``predict`` call.

    Properties that hold:

    * **Zero at the baseline**: a feature whose value equals its baseline (both missing
      counts as equal) has a contribution of exactly ``0.0``.
    * **Deterministic**: the same ``predict``, rows and baseline give the same result;
      ties in ``|contribution|`` keep the column order of ``rows``.
    * **Units**: contributions are in the output unit of ``predict`` (probability points of
      the class ``predict`` returns, or the regression unit, e.g. years or USD).
    * **Local, one-at-a-time**: contributions are not additive; with interacting features
      they need not sum to ``predict(x) - predict(baseline)``.

    Args:
        predict: maps a frame with the columns of ``rows`` to a 1-D array with one scalar
            per row (e.g. the positive-class probability, or a regression value).
        rows: (n, f) inputs; the feature values are reported as given.
        baseline: reference value per column of ``rows`` (e.g. the card's training
            median / mode).
        top_k: keep this many features per row (largest ``|contribution|``); ``None``
            keeps all ``f``.

    Returns:
        One list per row of ``(feature name, the row's value (JSON-native, None if
        missing), contribution)``, sorted by ``|contribution|`` descending.

    Raises:
        KeyError: ``baseline`` lacks a column of ``rows``.
        ValueError: ``predict`` does not return one finite-shaped scalar per input row, or
            ``top_k`` is negative.

    """
    if top_k is not None and top_k < 0:
        raise ValueError("top_k must be >= 0 or None")
    columns = list(rows.columns)
    missing = [c for c in columns if c not in baseline]
    if missing:
        raise KeyError(f"baseline has no value for {missing}")
    n, f = rows.shape
    if n == 0:
        return []
    values = rows.to_numpy(dtype=object)
    batch = np.repeat(values, f + 1, axis=0)  # block of f + 1 rows per input row
    for j, col in enumerate(columns):
        batch[np.arange(n) * (f + 1) + 1 + j, j] = baseline[col]
    frame = pd.DataFrame(batch, columns=columns).infer_objects()
    out = np.asarray(predict(frame), dtype=np.float64)
    if out.shape != (n * (f + 1),):
        raise ValueError(f"predict returned shape {out.shape}; expected one scalar per row ({n * (f + 1)},)")
    out = out.reshape(n, f + 1)
    deltas = out[:, :1] - out[:, 1:]
    result: list[list[tuple[str, Any, float]]] = []
    for i in range(n):
        items = []
        for j, col in enumerate(columns):
            value = values[i, j]
            delta = 0.0 if _same(value, baseline[col]) else float(deltas[i, j])
            items.append((col, _native(value), delta))
        order = sorted(range(f), key=lambda j, items=items: -abs(items[j][2]))  # stable: ties keep column order
        ranked = [items[j] for j in order]
        result.append(ranked if top_k is None else ranked[:top_k])
    return result
