"""Serving-safe training-domain (out-of-distribution) score for tabular pipelines.

:class:`TrainingDomain` is a pass-through step placed between a pipeline's preprocessing
(a ``ColumnTransformer`` giving a float64 array: numeric columns with NaN for missing values,
0/1 one-hot columns) and its model. ``fit`` learns a Ledoit–Wolf-shrunk Gaussian model of the
preprocessed training rows; ``score`` / ``percentile`` / ``unusual`` then say how far a request
lies from them (squared Mahalanobis distance, and where that distance falls among the training
rows' own distances). The fitted step holds plain numpy arrays only (no training rows, no
scikit-learn sub-estimator), and this module imports numpy and scikit-learn only, so it can be
pickled inside model artifacts and loaded by the service.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.covariance import LedoitWolf
from sklearn.exceptions import NotFittedError

from vitalcheck.compiled import embed_rows, mahalanobis

UNUSUAL_PERCENTILE = 99
"""A row is unusual when its percentile is strictly above this value."""


# auto_wrap_output_keys=None: scikit-learn never wraps ``transform``, which stays a true pass-through.
class TrainingDomain(TransformerMixin, BaseEstimator, auto_wrap_output_keys=None):  # type: ignore[call-arg]
    """Pass-through pipeline step that scores how unusual a row is relative to the training rows.

    Each row ``x`` of ``d`` columns is mapped to ``z``: the standardised columns
    ``(x - mean_) / scale_``, clipped to ``±CLIP``, NaN replaced by 0 (the training mean),
    followed by one 0/1 missing indicator for each column in ``missing_columns_`` (the columns
    that had a NaN in training). A NaN in any other column is just treated as the mean. The
    score is the squared Mahalanobis distance ``(z - location_) @ precision_ @ (z - location_)``
    under the Ledoit–Wolf covariance of the training ``z``; the percentile is where that score
    falls among the training rows' scores.

    ``transform`` returns its input unchanged, so inserting the step does not change the
    pipeline's predictions; the service calls ``score`` / ``percentile`` / ``unusual`` on the
    preprocessed rows itself.

    Attributes:
        n_features_in_: ``d``, the number of input columns.
        mean_: float64 (d,), training column means (NaN ignored; an all-NaN column → 0).
        scale_: float64 (d,), training column standard deviations (0 or NaN → 1).
        missing_columns_: int64 (m,), indices of the columns with a NaN in training.
        location_: float64 (d + m,), mean of the training ``z``.
        precision_: float64 (d + m, d + m), inverse of the shrunk covariance of the training ``z``.
        shrinkage_: Ledoit–Wolf shrinkage coefficient in [0, 1].
        training_scores_: float64 (n_train,), the training rows' scores, sorted ascending.
        threshold_99_: the 99th percentile of ``training_scores_``, taken as the order statistic
            ``training_scores_[99 * n_train // 100]`` so that ``score > threshold_99_`` holds
            exactly when ``percentile > 99``.

    """

    def fit(self, X: npt.ArrayLike, y: Any = None) -> TrainingDomain:
        """Learn the training domain.

        Args:
            X: float array of shape (n_train, d), preprocessed training rows; NaN = missing.
            y: ignored.

        Returns:
            self.

        Raises:
            ValueError: ``X`` is not 2-D, has no rows, or holds ±inf.

        """
        data = np.asarray(X, dtype=np.float64)
        if data.ndim != 2 or data.shape[0] == 0:
            raise ValueError(f"expected a non-empty 2-D array, got shape {data.shape}")
        if np.isinf(data).any():
            raise ValueError("training rows must not hold ±inf (use NaN for missing values)")
        missing = np.isnan(data)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
            mean = np.nanmean(data, axis=0)
            scale = np.nanstd(data, axis=0)
        self.n_features_in_ = data.shape[1]
        self.mean_ = np.where(np.isnan(mean), 0.0, mean)
        self.scale_ = np.where(np.isnan(scale) | (scale == 0.0), 1.0, scale)
        self.missing_columns_ = np.flatnonzero(missing.any(axis=0)).astype(np.int64)

        z = self._embed(data)
        lw = LedoitWolf(assume_centered=False).fit(z)
        self.location_ = np.array(lw.location_, dtype=np.float64)
        self.precision_ = np.array(lw.precision_, dtype=np.float64)
        self.shrinkage_ = float(lw.shrinkage_)
        del lw  # keep arrays only in the pickle

        self.training_scores_ = np.sort(self._mahalanobis(z))
        n = self.training_scores_.shape[0]
        self.threshold_99_ = float(self.training_scores_[UNUSUAL_PERCENTILE * n // 100])
        return self

    def transform(self, X: Any) -> Any:
        """Return ``X`` unchanged (the same object): the step does not alter the pipeline's data."""
        return X

    def score(self, X: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Squared Mahalanobis distance of each row to the training rows.

        Args:
            X: float array of shape (n, d), preprocessed rows; NaN = missing, ±inf allowed.

        Returns:
            float64 array of shape (n,), each ≥ 0 and finite; larger = more unusual.

        Raises:
            NotFittedError: ``fit`` has not been called.
            ValueError: ``X`` is not 2-D with ``n_features_in_`` columns.

        """
        self._check_fitted()
        data = np.asarray(X, dtype=np.float64)
        if data.ndim != 2 or data.shape[1] != self.n_features_in_:
            raise ValueError(f"expected shape (n, {self.n_features_in_}), got {data.shape}")
        return self._mahalanobis(self._embed(data))

    def percentile(self, X: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Percentile of each row's score among the training rows' scores.

        Args:
            X: float array of shape (n, d), as for :meth:`score`.

        Returns:
            float64 array of shape (n,) in [0, 100]: 100 × the fraction of training scores
            strictly below the row's score (0 = at least as typical as every training row).

        """
        below = np.searchsorted(self.training_scores_, self.score(X), side="left")
        return np.divide(100.0 * below, self.training_scores_.shape[0])  # exact at 99 %: matches ``unusual``

    def unusual(self, X: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        """Whether each row lies outside the training domain.

        Args:
            X: float array of shape (n, d), as for :meth:`score`.

        Returns:
            bool array of shape (n,): percentile strictly above 99, i.e. score above
            ``threshold_99_`` (about 1 % of rows drawn like the training rows).

        """
        return np.asarray(self.score(X) > self.threshold_99_, dtype=np.bool_)

    def get_feature_names_out(self, input_features: npt.ArrayLike | None = None) -> npt.NDArray[np.object_]:
        """Output column names: the input names unchanged (``x0`` … when none are given)."""
        self._check_fitted()
        if input_features is None:
            return np.asarray([f"x{i}" for i in range(self.n_features_in_)], dtype=object)
        names = np.asarray(input_features, dtype=object)
        if names.shape != (self.n_features_in_,):
            raise ValueError(f"expected {self.n_features_in_} input feature names, got {names.shape}")
        return names

    def set_output(self, *, transform: str | None = None) -> TrainingDomain:
        """Accept a pipeline's ``set_output``: the input container is returned as is, so this is a no-op."""
        return self

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    def _check_fitted(self) -> None:
        if not hasattr(self, "training_scores_"):
            raise NotFittedError("TrainingDomain is not fitted yet; call fit first")

    def _embed(self, data: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Rows (n, d) → preprocessed space (n, d + m): standardised, clipped, NaN → 0, indicators."""
        return embed_rows(data, self.mean_, self.scale_, self.missing_columns_)

    def _mahalanobis(self, z: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Preprocessed rows (n, d + m) → squared Mahalanobis distances (n,), clipped at 0; ``z`` is overwritten."""
        return mahalanobis(z, self.location_, self.precision_)
