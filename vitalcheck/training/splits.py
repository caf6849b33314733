"""The deterministic test split and cross-validation folds of the tabular models.

The test part is split off before any fitting, and folds are grouped wherever rows are not
independent (identical sleep records, one country's years), so no group straddles a split.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import (
    GroupKFold,
    GroupShuffleSplit,
    KFold,
    StratifiedGroupKFold,
    StratifiedKFold,
    train_test_split,
)

from vitalcheck.training.pipelines import SEED
from vitalcheck.training.tasks import TASKS

CV_FOLDS = 5


def feature_groups(X: pd.DataFrame) -> np.ndarray:
    """Group id per row: rows with identical feature values share one id, shape (n_rows,)."""
    keys = X.astype(object).where(X.notna(), None).astype(str).agg("\x1f".join, axis=1)
    return pd.factorize(keys, sort=True)[0]


def _groups(name: str, X: pd.DataFrame, meta: pd.DataFrame | None) -> np.ndarray | None:
    if name == "sleep":
        return feature_groups(X)
    if name == "life_expectancy":
        if meta is None or "country" not in meta:
            raise ValueError("the life-expectancy split needs the country column (use loaders.load_with_meta)")
        return meta["country"].to_numpy()
    return None


def split(name: str, X: pd.DataFrame, y: pd.Series, meta: pd.DataFrame | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Return the deterministic train/test split of a data set.

    The same file always gives the same split (fixed seed; the split depends only on the
    rows, their order and, where grouped, the group columns).

    Args:
        name: tabular model name.
        X: features (n_rows, n_features) from the model's loader.
        y: target (n_rows,).
        meta: the loader's meta frame (:func:`loaders.load_with_meta`); needed for heart
            (site-stratified) and life expectancy (country groups).

    Returns:
        ``(train_positions, test_positions)``: sorted integer positions into ``X``.

    Raises:
        ValueError: a grouping column the split needs is absent.

    """
    cfg = TASKS[name]
    positions = np.arange(len(X))
    y_arr = np.asarray(y)
    if cfg.split in ("stratified", "stratified_by_site"):
        strata = y_arr.astype(str)
        if cfg.split == "stratified_by_site":
            if meta is None or "site" not in meta:
                raise ValueError("the heart split needs the site column (use loaders.load_with_meta)")
            strata = np.char.add(np.char.add(strata, "|"), meta["site"].to_numpy().astype(str))
        train, test = train_test_split(positions, test_size=cfg.test_size, stratify=strata, random_state=SEED)
    elif cfg.split == "grouped_stratified":
        splitter = StratifiedGroupKFold(n_splits=round(1 / cfg.test_size), shuffle=True, random_state=SEED)
        train, test = next(splitter.split(X, y_arr.astype(str), _groups(name, X, meta)))
    elif cfg.split == "grouped":
        splitter = GroupShuffleSplit(n_splits=1, test_size=cfg.test_size, random_state=SEED)
        train, test = next(splitter.split(X, y_arr, _groups(name, X, meta)))
    else:
        train, test = train_test_split(positions, test_size=cfg.test_size, random_state=SEED)
    return np.sort(train), np.sort(test)


def split_description(name: str, n_train: int, n_test: int) -> str:
    """Describe the split protocol of ``name`` in words (for the card)."""
    cfg = TASKS[name]
    pct = f"{cfg.test_size:.0%}"
    what = {
        "stratified": f"{pct} of rows held out, stratified by class",
        "stratified_by_site": f"{pct} of rows held out, stratified by class × site",
        "grouped_stratified": f"1 of {round(1 / cfg.test_size)} StratifiedGroupKFold folds held out; rows with identical features form one group, so duplicates never straddle the split",
        "grouped": f"{pct} of countries held out (GroupShuffleSplit by country): no country on both sides",
        "random": f"{pct} of rows held out at random; the training part is further split 75/25 into a fit part and a conformal calibration part for the interval",
    }[cfg.split]
    cv = {
        "grouped_stratified": "StratifiedGroupKFold",
        "grouped": "GroupKFold by country",
        "random": "KFold",
    }.get(cfg.split, "StratifiedKFold")
    return (
        f"Test split made before any fitting: {what} (seed {SEED}; {n_train} train / {n_test} test rows). "
        f"Model selection by {CV_FOLDS}-fold {cv} cross-validation on the training part only; the chosen model is "
        "refitted on the whole training part and scored once on the test part."
    )


def cv_folds(
    name: str, X: pd.DataFrame, y: pd.Series, meta: pd.DataFrame | None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Cross-validation folds of the training part, grouped and stratified as its test split is."""
    cfg = TASKS[name]
    y_arr = np.asarray(y)
    if cfg.split == "grouped_stratified":
        splitter: Any = StratifiedGroupKFold(n_splits=CV_FOLDS, shuffle=True, random_state=SEED)
        return list(splitter.split(X, y_arr.astype(str), _groups(name, X, meta)))
    if cfg.split == "grouped":
        splitter = GroupKFold(n_splits=CV_FOLDS, shuffle=True, random_state=SEED)
        return list(splitter.split(X, y_arr, _groups(name, X, meta)))
    if cfg.split == "random":
        return list(KFold(n_splits=CV_FOLDS, shuffle=True, random_state=SEED).split(X))
    return list(StratifiedKFold(n_splits=CV_FOLDS, shuffle=True, random_state=SEED).split(X, y_arr.astype(str)))
