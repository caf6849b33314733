"""One generic trainer for the seven tabular models, driven by a per-model :class:`~vitalcheck.training.tasks.TaskConfig`.

Protocol (the same for every model, see :func:`train_model`):

1. Load the data set (:mod:`vitalcheck.training.loaders`) and split off a test part before
   any fitting (:func:`vitalcheck.training.splits.split`: fixed seed; stratified for
   classifiers, grouped where rows are not independent).
2. On the training part only, cross-validate every candidate (a regularised linear model
   and a histogram gradient-boosting model, each with a small grid; :mod:`vitalcheck.training.selection`)
   and keep the candidate with the best mean validation score; binary classifiers also choose
   their decision threshold on the out-of-fold predictions.
3. Refit the chosen candidate on the whole training part, score it once on the test part
   (:mod:`vitalcheck.training.evaluation`), pickle it with joblib and write its model card.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from vitalcheck.cards import ModelCard
from vitalcheck.catalog import TABULAR_MODELS, ModelSpec
from vitalcheck.estimators import ConformalShift
from vitalcheck.training import loaders, trust
from vitalcheck.training.evaluation import (
    baseline_metrics,
    bootstrap_difference,
    metrics_from_outputs,
    predict_outputs,
)
from vitalcheck.training.metrics import best_threshold, classification_metrics
from vitalcheck.training.model_cards import (
    card_features,
    dataset_provenance,
    framework_versions,
    json_value,
    new_card,
    write_card,
)
from vitalcheck.training.pipelines import SEED, additive_pipeline
from vitalcheck.training.selection import CVResult, cross_validate, fit_candidate, fit_predict, selection_key
from vitalcheck.training.splits import cv_folds, split, split_description
from vitalcheck.training.tasks import INTERVAL_LEVEL, TASKS, Candidate

_QUANTILE_PARAMS: dict[str, Any] = {"max_leaf_nodes": 6, "max_iter": 300, "learning_rate": 0.05, "min_samples_leaf": 20}
"""Parameters of the insurance q05 / q95 additive models (same terms and directions as the central one)."""


def fit_interval(
    spec: ModelSpec, central: Pipeline, X: pd.DataFrame, y: pd.Series, pairs: Any = ()
) -> tuple[tuple[Any, Any, Any], dict[str, Any]]:
    """Conformalized quantile regression (split conformal) around a central model.

    The training part is split 75/25 (seed :data:`SEED`) into a fit part and a calibration
    part. Additive q05 and q95 models (``pairs`` and the catalog's directions) are fitted on the fit part; on the
    calibration part the non-conformity score is ``max(q05 - y, y - q95)`` and ``q`` its
    ``ceil((n + 1) · 0.9) / n`` empirical quantile; the bounds become ``q05 - q`` and
    ``q95 + q`` (:class:`ConformalShift`).

    Args:
        spec: the insurance spec.
        central: the fitted central model.
        X: training-part features (n_rows, n_features).
        y: training-part target (n_rows,), USD.
        pairs: the central model's two-field terms (field-name pairs), reused by the bounds.

    Returns:
        ``((central, lower, upper), facts)`` where ``facts`` records ``q`` and the row counts.

    """
    alpha = 1 - INTERVAL_LEVEL
    positions = np.arange(len(X))
    fit_idx, cal_idx = train_test_split(positions, test_size=0.25, random_state=SEED)
    fit_idx, cal_idx = np.sort(fit_idx), np.sort(cal_idx)
    y_arr = np.asarray(y, dtype=np.float64)
    bounds = []
    for q in (alpha / 2, 1 - alpha / 2):
        model = additive_pipeline(spec, pairs, loss="quantile", quantile=q, **_QUANTILE_PARAMS)
        bounds.append(model.fit(X.iloc[fit_idx], y_arr[fit_idx]))
    lo = bounds[0].predict(X.iloc[cal_idx])
    hi = bounds[1].predict(X.iloc[cal_idx])
    scores = np.maximum(lo - y_arr[cal_idx], y_arr[cal_idx] - hi)
    n_cal = len(cal_idx)
    level = min(1.0, math.ceil((n_cal + 1) * INTERVAL_LEVEL) / n_cal)
    shift = float(np.quantile(scores, level, method="higher"))
    facts = {
        "conformal_shift_usd": shift,
        "conformal_level": INTERVAL_LEVEL,
        "rows_quantile_fit": int(len(fit_idx)),
        "rows_calibration": int(n_cal),
        "quantile_models": f"boosted additive models with the central model's terms and directions, quantile loss q={alpha / 2:.2f} and q={1 - alpha / 2:.2f}, {_QUANTILE_PARAMS}",
        "interval_method": "conformalized quantile regression (Romano et al. 2019), split conformal on a calibration part of the training split",
    }
    return (central, ConformalShift(bounds[0], -shift), ConformalShift(bounds[1], shift)), facts


def leave_one_site_out(
    name: str, candidate: Candidate, params: dict[str, Any], X: pd.DataFrame, y: pd.Series, sites: pd.Series
) -> dict[str, float]:
    """Train on all sites but one and score the held-out site, for each site (ROC AUC).

    Uses every row of the file (this is a separate robustness protocol; the site is never a
    model input). Returns AUC per site plus ``mean``.
    """
    spec = TABULAR_MODELS[name]
    out: dict[str, float] = {}
    for site in sorted(sites.unique()):
        held = (sites == site).to_numpy()
        proba = fit_predict(spec, candidate, params, X.loc[~held], y.loc[~held], X.loc[held])
        out[site] = float(classification_metrics(y.loc[held], proba, spec.classes)["roc_auc"])
    out["mean"] = float(np.mean(list(out.values())))
    return out


def golden_positions(spec: ModelSpec, X_test: pd.DataFrame, y_test: pd.Series, n: int = 5) -> list[int]:
    """Pick ``n`` test rows for the start-up self-check, deterministically.

    Classifiers: classes taken in turn (positive first). Every model: at least one row with
    a missing value when the test split has one.
    """
    order = list(range(len(X_test)))
    if spec.kind == "classifier":
        labels = np.asarray(y_test, dtype=object)
        queues = [[i for i in order if labels[i] == c] for c in reversed(spec.classes)]
        picked: list[int] = []
        while len(picked) < min(n, len(order)):
            for q in queues:
                if q and len(picked) < n:
                    picked.append(q.pop(0))
    else:
        picked = order[:n]
    missing = np.flatnonzero(X_test.isna().any(axis=1).to_numpy())
    if len(missing) and not any(i in set(missing) for i in picked):
        picked[-1] = int(missing[0])
    return picked


def _json_row(spec: ModelSpec, row: pd.Series) -> dict[str, Any]:
    return {f.name: json_value(row[f.name], f.type) for f in spec.features}


def golden_examples(spec: ModelSpec, model: Any, X_test: pd.DataFrame, positions: list[int]) -> list[dict[str, Any]]:
    """Golden input/output pairs: JSON-native inputs and the outputs ``model`` gives for them.

    The inputs are rebuilt into a frame from their JSON form (as the service will do), so the
    recorded outputs are what a request with these values returns.
    """
    inputs = [_json_row(spec, X_test.iloc[i]) for i in positions]
    frame = pd.DataFrame.from_records(inputs, columns=spec.feature_names)
    outputs = predict_outputs(spec, model, frame)
    examples = []
    for inp, out in zip(inputs, outputs, strict=True):
        if spec.kind == "regressor":
            value: Any = float(out)
        else:
            value = [float(v) for v in np.atleast_1d(out)]
        examples.append({"input": inp, "output": value})
    return examples


def _hash_positions(positions: np.ndarray) -> str:
    return hashlib.sha256(json.dumps([int(p) for p in positions]).encode()).hexdigest()


def _target_notes(name: str, metrics: dict[str, float]) -> dict[str, str]:
    cfg = TASKS[name]
    notes: dict[str, str] = {}
    for key, (op, value) in cfg.targets.items():
        metric = key.removesuffix("_max")
        actual = metrics[metric]
        met = actual >= value if op == ">=" else actual <= value
        notes[key] = f"{metric} {actual:.4g} {'meets' if met else 'MISSES'} target {op} {value:g}"
    if cfg.tried and any("MISSES" in n for n in notes.values()):
        notes["tried"] = (
            cfg.tried + " The test split and seed were fixed before any result was seen and were not changed."
        )
    return notes


def _output_description(spec: ModelSpec) -> dict[str, Any]:
    if spec.kind == "classifier":
        return {
            "meaning": "class probabilities (predict_proba), columns in class order",
            "unit": "probability",
            "classes": list(spec.classes),
            "positive_class": spec.classes[-1] if len(spec.classes) == 2 else None,
        }
    if spec.kind == "interval_regressor":
        return {
            "meaning": "tuple (central, lower, upper) of fitted estimators; each .predict(DataFrame) gives annual charges; "
            "[lower, upper] is a conformally calibrated 90 % prediction interval",
            "unit": spec.target_unit,
            "order": ["central", "lower", "upper"],
        }
    return {"meaning": spec.task, "unit": spec.target_unit}


def train_model(
    name: str, data_dir: str | Path, out_dir: str | Path, log: Callable[[str], None] = lambda _msg: None
) -> ModelCard:
    """Train, test and save one tabular model with its card.

    Args:
        name: tabular model name (catalog key).
        data_dir: shared data directory (holding ``DATA_FILES[name]`` and ``README.md``).
        out_dir: where ``spec.artifact`` and ``spec.card_file`` are written (created if needed).
        log: called with short progress messages.

    Returns:
        The validated card that was written.

    Raises:
        FileNotFoundError: the data file is absent.
        ValueError: the data file cannot be parsed (see the loaders).

    """
    spec = TABULAR_MODELS[name]
    cfg = TASKS[name]
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = loaders.data_file(name, data_dir)
    with threadpool_limits(limits=1):
        X, y, meta = loaders.load_with_meta(name, path)
        train_pos, test_pos = split(name, X, y, meta)
        X_tr, y_tr, X_te, y_te = X.iloc[train_pos], y.iloc[train_pos], X.iloc[test_pos], y.iloc[test_pos]
        meta_tr = meta.iloc[train_pos]
        folds = cv_folds(name, X_tr, y_tr, meta_tr)

        results: list[CVResult] = []
        for cand in cfg.candidates:
            log(f"cross-validating {cand.name}")
            results.append(cross_validate(name, cand, X_tr, y_tr, folds))
        ranked = sorted(results, key=lambda r: selection_key(name, r), reverse=True)
        # served: the best candidate that honours the directions; runner-up: the best other one,
        # kept to measure what the constraints and the additive form cost
        chosen = next(r for r in ranked if r.candidate.served)
        runner_up = next(r for r in ranked if not r.candidate.served)

        extra: dict[str, Any] = {
            "seed": SEED,
            "selection_metric": f"cv_{cfg.selection}",
            "chosen_params": _jsonable(chosen.params),
            "candidate_params": {r.candidate.name: _jsonable(r.params) for r in results},
            "cv_grid": {
                r.candidate.name: [{"params": _jsonable(p), f"cv_{cfg.selection}": s} for p, s in r.grid_scores]
                for r in results
            },
            "test_positions_sha256": _hash_positions(test_pos),
            "catalog_violations": loaders.catalog_violations(name, X),
        }
        threshold: float | None = None
        if spec.kind == "classifier" and len(spec.classes) == 2:
            threshold = best_threshold(y_tr, chosen.oof[:, 1], spec.classes, cfg.min_recall)
            extra["threshold"] = threshold
            extra["threshold_rule"] = "maximises out-of-fold balanced accuracy on the training part" + (
                f" subject to out-of-fold {spec.classes[1]} recall >= {cfg.min_recall}" if cfg.min_recall else ""
            )
        elif spec.kind == "classifier":
            extra["threshold"] = None
            extra["threshold_rule"] = "arg-max of the class probabilities"

        log(f"fitting {chosen.candidate.name}")
        model: Any = fit_candidate(spec, chosen.candidate, chosen.params, X_tr, y_tr)
        if threshold is not None:
            extra.update(trust.maybe_recalibrate(model, y_tr, chosen.oof, spec.classes[1]))
            if extra["recalibrated"]:  # the threshold was chosen on the uncalibrated probabilities
                a, b = extra["recalibration"]["logit_slope"], extra["recalibration"]["logit_intercept"]
                z = np.log(np.clip(chosen.oof[:, 1], 1e-12, 1)) - np.log(np.clip(chosen.oof[:, 0], 1e-12, 1))
                recal = 1 / (1 + np.exp(-(a * z + b)))
                threshold = best_threshold(y_tr, recal, spec.classes, cfg.min_recall)
                extra["threshold"] = threshold
        runner_model: Any = fit_candidate(spec, runner_up.candidate, runner_up.params, X_tr, y_tr)
        runner_threshold = threshold
        if threshold is not None:
            runner_threshold = best_threshold(y_tr, runner_up.oof[:, 1], spec.classes, cfg.min_recall)
        references = {runner_up.candidate.name: runner_model}
        for other in results:  # every unserved candidate: what the directions and the additive form cost
            if not other.candidate.served and other is not runner_up:
                references[other.candidate.name] = fit_candidate(spec, other.candidate, other.params, X_tr, y_tr)
        if spec.kind == "interval_regressor":
            model, facts = fit_interval(spec, model, X_tr, y_tr, chosen.params.get("pairs", ()))
            extra.update(facts)
        if name == "heart":
            log("leave-one-site-out")
            extra["leave_one_site_out_roc_auc"] = leave_one_site_out(
                name, chosen.candidate, chosen.params, X, y, meta["site"]
            )
            extra["leave_one_site_out_note"] = (
                "train on three sites, score the fourth, every row of the file, chosen estimator and parameters; "
                "Switzerland has few negatives so its AUC is noisy"
            )

        artifact = out_dir / spec.artifact
        joblib.dump(model, artifact)
        saved = joblib.load(artifact)
        served_outputs = predict_outputs(spec, saved, X_te)
        metrics = metrics_from_outputs(name, y_te, served_outputs, threshold)
        extra["runner_up"] = runner_up.candidate.name
        extra["runner_up_test_metrics"] = metrics_from_outputs(
            name, y_te, _point_outputs(spec, runner_model, X_te), runner_threshold
        )
        if spec.kind == "interval_regressor":  # a reference has no interval
            extra["runner_up_test_metrics"] = {
                k: v for k, v in extra["runner_up_test_metrics"].items() if not k.startswith("interval")
            }
        extra["runner_up_note"] = "for information only: the runner-up's test metrics were not used for any choice"
        extra["constraints"] = trust.constraints(spec)
        extra["constraint_cost"] = {
            ref: bootstrap_difference(name, y_te, served_outputs, _point_outputs(spec, m, X_te), seed=SEED)
            for ref, m in references.items()
        }
        extra["explanation"] = trust.explanation_method(spec)
        central = saved[0] if isinstance(saved, tuple) else saved
        extra["out_of_distribution"] = trust.out_of_distribution(central, X_tr, X_te)
        if spec.kind == "classifier":
            extra["calibration"] = trust.calibration(
                spec, y_te, served_outputs, out_dir / f"{spec.artifact.rsplit('_', 1)[0]}_reliability.png"
            )
        extra["target_notes"] = _target_notes(name, metrics)
        if cfg.notes:
            extra["notes"] = cfg.notes
        provenance, licence = dataset_provenance(data_dir, spec.dataset)
        card = new_card(
            spec,
            artifact,
            framework="scikit-learn",
            versions=framework_versions(),
            estimator=f"{chosen.candidate.description}; "
            + ", ".join(f"{k}={_jsonable(v)}" for k, v in chosen.params.items()),
            candidates={
                r.candidate.name: {
                    **{f"cv_{k}": float(v) for k, v in r.mean.items()},
                    **{f"cv_{k}_std": float(v) for k, v in r.std.items()},
                }
                for r in results
            },
            features=card_features(spec, X_tr),
            output=_output_description(spec),
            dataset={
                "file": loaders.DATA_FILES[name],
                "rows_total": len(X),
                "rows_train": len(train_pos),
                "rows_test": len(test_pos),
                "provenance": provenance,
                "licence": licence,
            },
            split=split_description(name, len(train_pos), len(test_pos)),
            metrics=metrics,
            baseline_metrics=baseline_metrics(name, y_tr, y_te),
            extra=extra,
            golden=golden_examples(spec, saved, X_te, golden_positions(spec, X_te, y_te)),
        )
        write_card(card, out_dir / spec.card_file)
    return card


def _point_outputs(spec: ModelSpec, model: Any, X: pd.DataFrame) -> np.ndarray:
    """Outputs of a reference model; an interval regressor's reference repeats its central value as bounds."""
    out = predict_outputs(spec, model, X)
    return np.column_stack([out, out, out]) if spec.kind == "interval_regressor" and out.ndim == 1 else out


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
