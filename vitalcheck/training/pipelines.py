"""scikit-learn pipelines of the tabular models: preprocessing + estimator, one builder per family.

Every builder takes the catalog :class:`~vitalcheck.catalog.ModelSpec` and keyword
hyper-parameters and returns an unfitted :class:`~sklearn.pipeline.Pipeline` whose first step
is a :class:`~sklearn.compose.ColumnTransformer` selecting the catalog columns by name (so a
frame missing one raises a ``ValueError`` naming it). Classifiers end in
:class:`~vitalcheck.estimators.CatalogOrderClassifier` (``predict_proba`` columns in catalog
class order). Everything pickled refers only to scikit-learn, numpy and
:mod:`vitalcheck.estimators`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    OneHotEncoder,
    OrdinalEncoder,
    PolynomialFeatures,
    SplineTransformer,
    StandardScaler,
)

from vitalcheck.additive import AdditiveBoostingClassifier, AdditiveBoostingRegressor
from vitalcheck.catalog import ModelSpec
from vitalcheck.domain import TrainingDomain
from vitalcheck.estimators import MISSING_CATEGORY, CatalogOrderClassifier, to_category, to_float

SEED = 20_240_601
"""Seed of every split and estimator."""


def _columns(spec: ModelSpec) -> tuple[list[str], list[str], list[str]]:
    numbers = [f.name for f in spec.features if f.type in ("number", "integer")]
    booleans = [f.name for f in spec.features if f.type == "boolean"]
    categories = [f.name for f in spec.features if f.type == "category"]
    return numbers, booleans, categories


def _to_float_step() -> FunctionTransformer:
    return FunctionTransformer(to_float, feature_names_out="one-to-one")


def _to_category_step() -> FunctionTransformer:
    return FunctionTransformer(to_category, feature_names_out="one-to-one")


def linear_preprocessor(
    spec: ModelSpec, log_columns: Sequence[str] = (), indicators: bool = True, spline_knots: int = 0
) -> ColumnTransformer:
    """Preprocessing for linear models.

    Numbers: log1p for the skewed ``log_columns``, median imputation (plus missing-value
    indicators when ``indicators``), a cubic B-spline basis with ``spline_knots`` knots when
    it is > 0 (linear extrapolation), standardisation. Booleans: mode imputation (plus
    indicators). Categories: one-hot, a missing value being its own category, unknown
    categories ignored.
    """
    numbers, booleans, categories = _columns(spec)
    plain = [c for c in numbers if c not in log_columns]
    logged = [c for c in numbers if c in log_columns]

    def numeric(log: bool) -> Pipeline:
        steps: list[tuple[str, Any]] = [("float", _to_float_step())]
        if log:
            steps.append(("log1p", FunctionTransformer(np.log1p, feature_names_out="one-to-one")))
        steps.append(("impute", SimpleImputer(strategy="median", add_indicator=indicators)))
        if spline_knots:
            steps.append(("spline", SplineTransformer(n_knots=spline_knots, degree=3, extrapolation="linear")))
        steps.append(("scale", StandardScaler()))
        return Pipeline(steps)

    transformers: list[tuple[str, Any, list[str]]] = []
    if plain:
        transformers.append(("num", numeric(log=False), plain))
    if logged:
        transformers.append(("log", numeric(log=True), logged))
    if booleans:
        transformers.append(
            (
                "bool",
                Pipeline(
                    [
                        ("float", _to_float_step()),
                        ("impute", SimpleImputer(strategy="most_frequent", add_indicator=indicators)),
                    ]
                ),
                booleans,
            )
        )
    if categories:
        transformers.append(
            (
                "cat",
                Pipeline(
                    [
                        ("str", _to_category_step()),
                        ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
                    ]
                ),
                categories,
            )
        )
    return ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)


def tree_preprocessor(spec: ModelSpec) -> tuple[ColumnTransformer, list[bool]]:
    """Preprocessing for gradient boosting.

    Numbers and booleans as floats (NaN kept: the trees route missing values); categories
    ordinal-encoded (missing → its own category, unknown → NaN). Returns the transformer and
    the categorical-feature mask of its output.
    """
    numbers, booleans, categories = _columns(spec)
    transformers: list[tuple[str, Any, list[str]]] = [("num", _to_float_step(), numbers + booleans)]
    if categories:
        encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan, encoded_missing_value=np.nan)
        transformers.append(("cat", Pipeline([("str", _to_category_step()), ("ordinal", encoder)]), categories))
    mask = [False] * len(numbers + booleans) + [True] * len(categories)
    return ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False), mask


def _classifier(spec: ModelSpec, estimator: Any, calibrate: bool) -> CatalogOrderClassifier:
    if calibrate:
        folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=SEED)  # shuffled: source files are sorted
        estimator = CalibratedClassifierCV(estimator, method="sigmoid", cv=folds)
    return CatalogOrderClassifier(estimator, classes=spec.classes)


def logistic_pipeline(
    spec: ModelSpec,
    C: float = 1.0,
    class_weight: str | None = None,
    calibrate: bool = False,
    log_columns: Sequence[str] = (),
    indicators: bool = True,
    spline_knots: int = 0,
) -> Pipeline:
    """L2-regularised logistic regression (optionally sigmoid-calibrated by 3-fold CV)."""
    model = LogisticRegression(C=C, class_weight=class_weight, max_iter=5000)
    pre = linear_preprocessor(spec, log_columns, indicators, spline_knots)
    return Pipeline([("preprocess", pre), ("model", _classifier(spec, model, calibrate))])


_HGB_DEFAULTS: dict[str, Any] = {
    "learning_rate": 0.05,
    "max_iter": 200,
    "max_leaf_nodes": 15,
    "min_samples_leaf": 20,
    "l2_regularization": 1.0,
}


def hgb_classifier_pipeline(
    spec: ModelSpec, class_weight: str | None = None, calibrate: bool = False, **params: Any
) -> Pipeline:
    """Histogram gradient-boosting classifier (native missing values and categories)."""
    pre, mask = tree_preprocessor(spec)
    model = HistGradientBoostingClassifier(
        **{**_HGB_DEFAULTS, **params},
        categorical_features=mask,
        class_weight=class_weight,
        early_stopping=False,
        random_state=SEED,
    )
    return Pipeline([("preprocess", pre), ("model", _classifier(spec, model, calibrate))])


def ridge_pipeline(spec: ModelSpec, alpha: float = 1.0, log_columns: Sequence[str] = (), degree: int = 1) -> Pipeline:
    """Ridge regression, optionally on degree-2 polynomial features of the preprocessed inputs."""
    steps: list[tuple[str, Any]] = [("preprocess", linear_preprocessor(spec, log_columns))]
    if degree > 1:
        steps.append(("poly", PolynomialFeatures(degree=degree, include_bias=False)))
    steps.append(("model", Ridge(alpha=alpha)))
    return Pipeline(steps)


def hgb_regressor_pipeline(
    spec: ModelSpec, loss: str = "squared_error", quantile: float | None = None, **params: Any
) -> Pipeline:
    """Histogram gradient-boosting regressor (squared error, or a quantile loss for interval bounds)."""
    pre, mask = tree_preprocessor(spec)
    model = HistGradientBoostingRegressor(
        **{**_HGB_DEFAULTS, **params},
        loss=loss,
        quantile=quantile,
        categorical_features=mask,
        early_stopping=False,
        random_state=SEED,
    )
    return Pipeline([("preprocess", pre), ("model", model)])


def additive_columns(spec: ModelSpec) -> tuple[list[str], list[int]]:
    """Raw field of each column :func:`additive_preprocessor` produces, and each column's direction.

    Numbers and booleans come first (one column each, the catalog ``direction``), then one
    0/1 column per category of each categorical field (its ``category_directions`` entry, else 0),
    the last being the field's missing value.
    """
    numbers, booleans, categories = _columns(spec)
    by_name = {f.name: f for f in spec.features}
    fields = numbers + booleans
    directions = [int(by_name[c].direction) for c in fields]
    for name in categories:
        feature = by_name[name]
        signs = dict(feature.category_directions)
        for category in (*feature.categories, MISSING_CATEGORY):
            fields.append(name)
            directions.append(int(signs.get(category, 0)))
    return fields, directions


def additive_preprocessor(spec: ModelSpec) -> ColumnTransformer:
    """Numbers and booleans as floats (NaN kept: each term has a value for missing); categories one-hot.

    The one-hot columns follow the catalog's categories (plus a missing column), so the column
    layout is known before fitting (:func:`additive_columns`); an unknown category is all zeros.
    """
    numbers, booleans, categories = _columns(spec)
    by_name = {f.name: f for f in spec.features}
    transformers: list[tuple[str, Any, list[str]]] = [("num", _to_float_step(), numbers + booleans)]
    if categories:
        levels = [[*by_name[c].categories, MISSING_CATEGORY] for c in categories]
        onehot = OneHotEncoder(categories=levels, handle_unknown="ignore", sparse_output=False)
        transformers.append(("cat", Pipeline([("str", _to_category_step()), ("onehot", onehot)]), categories))
    return ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)


def _pair_columns(spec: ModelSpec, pairs: Sequence[tuple[str, str]]) -> list[tuple[int, int]]:
    fields, _ = additive_columns(spec)
    numeric = {f.name for f in spec.features if f.type != "category"}
    for a, b in pairs:
        if a not in numeric or b not in numeric:
            raise ValueError(f"pair ({a}, {b}): pairs are of number or boolean fields")
    return [(fields.index(a), fields.index(b)) for a, b in pairs]


def additive_pipeline(
    spec: ModelSpec,
    pairs: Sequence[tuple[str, str]] = (),
    constrained: bool = True,
    loss: str = "squared_error",
    quantile: float | None = None,
    **params: Any,
) -> Pipeline:
    """Boosted additive model (:mod:`vitalcheck.additive`) with the catalog's monotonic constraints.

    Steps: ``preprocess`` (:func:`additive_preprocessor`), ``domain``
    (:class:`~vitalcheck.domain.TrainingDomain`, a pass-through that scores how unusual a record
    is) and ``model``. ``pairs`` names disjoint (number/boolean) field pairs allowed a two-field
    term; ``constrained=False`` drops the directions (to measure what they cost). Multiclass
    models take no directions.
    """
    fields, directions = additive_columns(spec)
    common: dict[str, Any] = {
        "column_fields": tuple(fields),
        "pairs": tuple(_pair_columns(spec, pairs)),
        "monotonic_cst": tuple(directions) if constrained and any(directions) else None,
        "random_state": SEED,
        **params,
    }
    model: Any
    if spec.kind == "classifier":
        if len(spec.classes) > 2 and common["monotonic_cst"] is not None:
            raise ValueError(f"{spec.name}: directions are not supported for a multiclass model")
        model = AdditiveBoostingClassifier(classes=spec.classes, **common)
    else:
        model = AdditiveBoostingRegressor(loss=loss, quantile=quantile, **common)
    return Pipeline([("preprocess", additive_preprocessor(spec)), ("domain", TrainingDomain()), ("model", model)])
