"""Serving-safe helpers that live inside the pickled scikit-learn artifacts.

Everything a pickled pipeline refers to must be importable by the service without the
training extras, so this module depends on numpy, pandas and scikit-learn only. It holds:

* :func:`to_float` and :func:`to_category`: column converters used by the pipelines'
  ``FunctionTransformer`` steps, so that a frame built from JSON records (Python ``bool``,
  ``int``, ``None``; object or ``str`` dtypes) gives the same numbers as the training frame.
* :class:`CatalogOrderClassifier`: a classifier wrapper whose ``classes_`` and
  ``predict_proba`` columns follow the catalog's class order (not scikit-learn's sorted order).
* :class:`ConformalShift`: a regressor that adds a constant, calibrated offset to a fitted
  regressor's predictions (the lower / upper bound of a conformalized quantile regression).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, RegressorMixin, clone
from sklearn.utils.validation import check_is_fitted

MISSING_CATEGORY = "__missing__"
"""The category a missing categorical value is mapped to before encoding."""


def to_float(X: pd.DataFrame | np.ndarray) -> np.ndarray:
    """Convert numeric and boolean columns to a float64 array; missing values become NaN.

    Args:
        X: frame or array of shape (n_rows, n_columns) holding numbers, booleans
            (``True``/``False`` or 0/1), ``None``, ``NaN`` or ``pd.NA``.

    Returns:
        float64 array of shape (n_rows, n_columns); ``True`` → 1.0, ``False`` → 0.0.

    Raises:
        ValueError: a value cannot be read as a number (e.g. a free-text string).

    """
    if isinstance(X, pd.DataFrame):
        return X.to_numpy(dtype="float64", na_value=np.nan)
    return pd.DataFrame(np.asarray(X, dtype=object)).to_numpy(dtype="float64", na_value=np.nan)


def to_category(X: pd.DataFrame | np.ndarray) -> np.ndarray:
    """Convert categorical columns to an object array of strings; missing → ``"__missing__"``.

    Args:
        X: frame or array of shape (n_rows, n_columns) holding category strings or missing
            values (``None``, ``NaN``, ``pd.NA``), in any dtype (object, ``str``, category).

    Returns:
        object array of shape (n_rows, n_columns) of ``str``.

    """
    frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(np.asarray(X, dtype=object))
    frame = frame.astype(object)
    return frame.where(frame.notna(), MISSING_CATEGORY).map(str).to_numpy(dtype=object)


def encode_labels(y: Sequence[Any], classes: Sequence[str]) -> np.ndarray:
    """Each label's index in ``classes``, shape (n,) int64.

    Raises:
        ValueError: a label is not one of ``classes`` (the message lists the unknown labels).

    """
    index = {label: i for i, label in enumerate(classes)}
    labels = np.asarray(y, dtype=object)
    unknown = sorted({str(v) for v in labels if v not in index})
    if unknown:
        raise ValueError(f"labels {unknown} are not among the classes {list(classes)}")
    return np.fromiter((index[v] for v in labels), dtype=np.int64, count=len(labels))


class CatalogOrderClassifier(MetaEstimatorMixin, ClassifierMixin, BaseEstimator):
    """Fit a classifier on catalog class labels and keep the catalog's class order.

    scikit-learn sorts class labels, so ``predict_proba`` columns would come out in
    alphabetical order. This wrapper encodes each label as its index in ``classes``, fits a
    clone of ``estimator`` on those integers, and exposes ``classes_`` equal to ``classes``
    with ``predict_proba`` columns in that order.

    Args:
        estimator: an unfitted scikit-learn classifier with ``predict_proba``.
        classes: the class labels in the wanted output order (catalog ``classes``; for a
            binary task the positive class last).

    Attributes:
        estimator_: the fitted clone (trained on integer labels 0 … k-1).
        classes_: object array equal to ``classes``.

    """

    def __init__(self, estimator: Any, classes: Sequence[str] = ()):
        self.estimator = estimator
        self.classes = classes

    def fit(self, X: Any, y: Sequence[Any], **fit_params: Any) -> CatalogOrderClassifier:
        """Fit the wrapped classifier.

        Args:
            X: training inputs of shape (n_rows, n_features).
            y: labels, each one of ``classes``.
            **fit_params: passed to the wrapped estimator's ``fit`` (e.g. ``sample_weight``).

        Returns:
            self.

        Raises:
            ValueError: a label is not one of ``classes``.

        """
        codes = encode_labels(y, self.classes)
        self.estimator_ = clone(self.estimator).fit(X, codes, **fit_params)
        self.classes_ = np.asarray(self.classes, dtype=object)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, shape (n_rows, n_classes), columns in ``classes_`` order."""
        check_is_fitted(self, "estimator_")
        proba = self.estimator_.predict_proba(X)
        out = np.zeros((proba.shape[0], len(self.classes_)), dtype=np.float64)
        out[:, np.asarray(self.estimator_.classes_, dtype=np.int64)] = proba
        return out

    def predict(self, X: Any) -> np.ndarray:
        """Most probable class label per row, shape (n_rows,)."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class ConformalShift(RegressorMixin, BaseEstimator):
    """A fitted regressor whose predictions are shifted by a constant calibrated offset.

    Used for conformalized quantile regression (Romano et al. 2019): the lower bound is the
    fitted q05 regressor with ``shift = -q`` and the upper bound the q95 regressor with
    ``shift = +q``, where ``q`` is the conformal quantile of the calibration rows'
    non-conformity scores ``max(lower - y, y - upper)``. ``fit`` is not part of the method
    (the wrapped regressor is already fitted); calling it refits the wrapped regressor and
    keeps ``shift``.

    Args:
        regressor: a fitted regressor with ``predict(DataFrame)``.
        shift: constant added to every prediction, in the target's unit.

    """

    def __init__(self, regressor: Any = None, shift: float = 0.0):
        self.regressor = regressor
        self.shift = shift

    def fit(self, X: Any, y: Any, **fit_params: Any) -> ConformalShift:
        """Refit the wrapped regressor in place (``shift`` is kept); returns self."""
        self.regressor.fit(X, y, **fit_params)
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Shifted predictions, shape (n_rows,), in the target's unit."""
        return np.asarray(self.regressor.predict(X), dtype=np.float64) + float(self.shift)

    def __sklearn_is_fitted__(self) -> bool:
        return self.regressor is not None
