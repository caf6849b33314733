"""Calibration of clinical prediction models (Van Calster et al. 2019; TRIPOD+AI), training time only.

* :func:`binary_calibration`: calibration slope and intercept (calibration-in-the-large) with
  percentile-bootstrap 95 % intervals, expected calibration error and Brier score.
* :func:`multiclass_calibration`: the same one-vs-rest per class, plus the top-label ECE.
* :func:`reliability_diagram_png`: a reliability diagram with a histogram of the predictions.
* :func:`fit_logit_recalibration` / :func:`recalibration_helps`: logistic (Platt-type) recalibration
  of logits, and a cross-validated check of whether it lowers the log loss.

The logistic fits are a batched two-parameter Newton solver in numpy, so that the bootstrap fits all
resamples at once (1000 resamples of 1000 rows: a fraction of a second). matplotlib is imported only
by :func:`reliability_diagram_png` (the ``train`` extra).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import expit, logit

P_CLIP = 1e-12
"""Probabilities are clipped to ``[P_CLIP, 1 - P_CLIP]`` before the logit (|logit| <= 27.6)."""

_MAX_ITER = 50
_TOL = 1e-9
_BOOT_CELLS = 2_000_000  # resample rows fitted per batch (bounds memory to ~100 MB)


def _binary_inputs(y01: ArrayLike, p: ArrayLike, name: str = "p") -> tuple[np.ndarray, np.ndarray]:
    """Validate ``y01`` (n,) of 0/1 and ``p`` (n,) of finite values; return float64 copies."""
    y = np.asarray(y01, dtype=np.float64)
    q = np.asarray(p, dtype=np.float64)
    if y.ndim != 1 or q.shape != y.shape or y.size == 0:
        raise ValueError(f"y and {name} must be non-empty 1-d arrays of one length, got {y.shape} and {q.shape}")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("y must hold only 0 and 1")
    if not np.isfinite(q).all():
        raise ValueError(f"{name} must be finite")
    return y, q


def _probabilities(y01: ArrayLike, p: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    y, q = _binary_inputs(y01, p)
    if ((q < 0) | (q > 1)).any():
        raise ValueError("p must lie in [0, 1]")
    return y, q


def _logit(p: np.ndarray) -> np.ndarray:
    return np.asarray(logit(np.clip(p, P_CLIP, 1 - P_CLIP)))


def _fit_logistic(
    x: np.ndarray, y: np.ndarray, *, slope: bool, start: tuple[float, float] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Unpenalised logistic regressions of ``y`` on ``x``, one per row, by Newton's method.

    Args:
        x: (B, n) covariate (a logit).
        y: (B, n) 0/1 outcome.
        slope: fit ``logit P(y=1) = b + a x``; if False, ``b + x`` (``x`` an offset, ``a = 1``).
        start: initial ``(a, b)`` (e.g. the full-sample fit, for bootstrap resamples); default
            ``(0, logit(mean y))``, or ``(1, 0)`` without slope.

    Returns:
        ``(a, b)``, each (B,); NaN where the fit did not converge (e.g. separation) or a row holds one class.

    """
    batch = x.shape[0]
    ybar = y.mean(axis=1)
    if start is not None:
        a, b = np.full(batch, start[0]), np.full(batch, start[1])
    else:
        a = np.zeros(batch) if slope else np.ones(batch)
        b = np.asarray(logit(np.clip(ybar, 1e-6, 1 - 1e-6))) if slope else np.zeros(batch)
    step = np.full(batch, np.inf)
    with np.errstate(all="ignore"):
        for _ in range(_MAX_ITER):
            mu = np.multiply(x, a[:, None])
            mu += b[:, None]
            expit(mu, out=mu)
            r = y - mu
            w = mu - mu * mu
            g0, h00 = r.sum(axis=1), w.sum(axis=1)
            if slope:
                wx = np.multiply(w, x, out=w)
                g1, h01, h11 = np.einsum("ij,ij->i", r, x), wx.sum(axis=1), np.einsum("ij,ij->i", wx, x)
                det = h00 * h11 - h01 * h01
                db, da = (h11 * g0 - h01 * g1) / det, (h00 * g1 - h01 * g0) / det
                step = np.maximum(np.abs(db), np.abs(da))
                a = a + da
            else:
                db = g0 / h00
                step = np.abs(db)
            b = b + db
            if not (step > _TOL).any():  # also stops when the remaining rows are NaN
                break
    bad = ~(step <= _TOL) | (ybar == 0) | (ybar == 1)
    a[bad], b[bad] = np.nan, np.nan
    return a, b


def _bins(y: np.ndarray, p: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Equal-width bins of ``p`` on [0, 1] (p = 1 in the last): counts, mean p and mean y, each (n_bins,)."""
    if n_bins < 1:
        raise ValueError("n_bins must be >= 1")
    idx = np.minimum((p * n_bins).astype(np.int64), n_bins - 1)
    counts = np.bincount(idx, minlength=n_bins).astype(np.float64)
    with np.errstate(invalid="ignore"):
        mean_p = np.bincount(idx, weights=p, minlength=n_bins) / counts
        mean_y = np.bincount(idx, weights=y, minlength=n_bins) / counts
    return counts, mean_p, mean_y


def expected_calibration_error(y01: ArrayLike, p: ArrayLike, n_bins: int = 10) -> float:
    """Expected calibration error: ``sum_b (n_b / n) |mean(y)_b - mean(p)_b|`` over equal-width bins of ``p``.

    Args:
        y01: (n,) outcomes, 0 or 1.
        p: (n,) predicted probabilities in [0, 1]; bin ``b`` is ``[b/n_bins, (b+1)/n_bins)``, the last closed.
        n_bins: number of bins (>= 1).

    Returns:
        The ECE, in [0, 1] (probability units).

    Raises:
        ValueError: shapes differ, ``y01`` is not 0/1, ``p`` is outside [0, 1], or ``n_bins < 1``.

    """
    y, q = _probabilities(y01, p)
    counts, mean_p, mean_y = _bins(y, q, n_bins)
    full = counts > 0
    return float(np.sum(counts[full] * np.abs(mean_y[full] - mean_p[full])) / y.size)


def binary_calibration(y: ArrayLike, p: ArrayLike, *, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Calibration of binary risk predictions, with percentile-bootstrap 95 % intervals.

    Args:
        y: (n,) outcomes, 0 or 1 (both must occur).
        p: (n,) predicted probabilities of ``y = 1`` in [0, 1]; clipped to ``[1e-12, 1 - 1e-12]`` for the logit.
        n_boot: bootstrap resamples of the rows (>= 1); resamples with one class, or whose fit does not
            converge, are skipped (``n_boot_used`` counts the rest).
        seed: seed of the resampling (:func:`numpy.random.default_rng`).

    Returns:
        JSON-ready ``calibration_slope`` (coefficient of logit(p) in a logistic regression of y on
        logit(p); ideal 1, < 1 means over-confident), ``calibration_intercept`` (calibration-in-the-large:
        intercept with logit(p) as offset; ideal 0, > 0 means risks under-estimated), their ``*_ci95``
        ``[lo, hi]``, ``slope_ci_contains_1``, ``expected_calibration_error`` (10 bins),
        ``brier_score`` (mean squared error of p), ``n``, ``n_boot`` and ``n_boot_used``.

    Raises:
        ValueError: bad shapes or values, one class only, ``n_boot < 1``, a point fit that does not
            converge (perfect separation), or no usable resample.

    """
    y_arr, q = _probabilities(y, p)
    if n_boot < 1:
        raise ValueError("n_boot must be >= 1")
    x = _logit(q)
    slope, slope_b = _fit_logistic(x[None], y_arr[None], slope=True)
    _, intercept = _fit_logistic(x[None], y_arr[None], slope=False)
    if np.isnan(slope[0]) or np.isnan(intercept[0]):
        raise ValueError("the calibration fit did not converge (one class only, or perfect separation)")
    n = y_arr.size
    rng = np.random.default_rng(seed)
    chunk = max(1, _BOOT_CELLS // n)
    slopes, intercepts = [], []
    for start in range(0, n_boot, chunk):
        rows = rng.integers(0, n, size=(min(chunk, n_boot - start), n))
        xb, yb = x[rows], y_arr[rows]
        slopes.append(_fit_logistic(xb, yb, slope=True, start=(slope[0], slope_b[0]))[0])
        intercepts.append(_fit_logistic(xb, yb, slope=False, start=(1.0, intercept[0]))[1])
    boot_slope, boot_intercept = np.concatenate(slopes), np.concatenate(intercepts)
    ok = np.isfinite(boot_slope) & np.isfinite(boot_intercept)
    if not ok.any():
        raise ValueError("no bootstrap resample could be fitted")
    slope_ci = [float(v) for v in np.percentile(boot_slope[ok], [2.5, 97.5])]
    intercept_ci = [float(v) for v in np.percentile(boot_intercept[ok], [2.5, 97.5])]
    return {
        "calibration_slope": float(slope[0]),
        "calibration_slope_ci95": slope_ci,
        "calibration_intercept": float(intercept[0]),
        "calibration_intercept_ci95": intercept_ci,
        "slope_ci_contains_1": bool(slope_ci[0] <= 1.0 <= slope_ci[1]),
        "expected_calibration_error": expected_calibration_error(y_arr, q),
        "brier_score": float(np.mean((q - y_arr) ** 2)),
        "n": int(n),
        "n_boot": int(n_boot),
        "n_boot_used": int(ok.sum()),
    }


def multiclass_calibration(
    y_labels: ArrayLike, proba: ArrayLike, classes: Sequence[str], *, n_boot: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """One-vs-rest :func:`binary_calibration` of each class, and the top-label ECE.

    Args:
        y_labels: (n,) true labels, each one of ``classes``.
        proba: (n, K) predicted probabilities, columns in ``classes`` order (rows summing to 1).
        classes: the K class names.
        n_boot: bootstrap resamples per class.
        seed: their seed (the same rows are drawn for every class).

    Returns:
        ``per_class`` (class name -> :func:`binary_calibration` dict), ``top_label_ece`` (10-bin ECE of
        confidence = max probability against correct = arg-max class is the label), ``n`` and ``classes``.

    Raises:
        ValueError: shapes disagree, or a label is not in ``classes``. A class whose slope cannot be
            fitted (absent, or perfectly separated) gets ``None`` figures and ``not_estimable``.

    """
    labels = np.asarray(y_labels, dtype=object)
    prob = np.asarray(proba, dtype=np.float64)
    names = list(classes)
    if labels.ndim != 1 or prob.shape != (labels.size, len(names)):
        raise ValueError(f"proba has shape {prob.shape}, expected {(labels.size, len(names))}")
    if not np.isin(labels, np.asarray(names, dtype=object)).all():
        raise ValueError("every label must be one of classes")
    per_class = {c: _class_calibration(labels == c, prob[:, k], n_boot, seed) for k, c in enumerate(names)}
    correct = np.asarray(names, dtype=object)[np.argmax(prob, axis=1)] == labels
    return {
        "per_class": per_class,
        "top_label_ece": expected_calibration_error(correct, prob.max(axis=1)),
        "n": int(labels.size),
        "classes": names,
    }


def _class_calibration(y01: np.ndarray, p: np.ndarray, n_boot: int, seed: int) -> dict[str, Any]:
    """:func:`binary_calibration`, or, for a class the probabilities separate perfectly, what can be said."""
    try:
        return binary_calibration(y01, p, n_boot=n_boot, seed=seed)
    except ValueError as exc:
        y = y01.astype(np.float64)
        return {
            "calibration_slope": None,
            "calibration_slope_ci95": None,
            "calibration_intercept": None,
            "calibration_intercept_ci95": None,
            "slope_ci_contains_1": None,
            "not_estimable": str(exc),
            "expected_calibration_error": expected_calibration_error(y, p),
            "brier_score": float(np.mean((p - y) ** 2)),
            "n": int(y.size),
        }


def reliability_diagram_png(
    path: Path, curves: Mapping[str, tuple[ArrayLike, ArrayLike]], title: str, n_bins: int = 10
) -> None:
    """Write a reliability diagram (5 x 4 in, 100 dpi PNG; the same inputs give the same bytes).

    Top: the diagonal and, per curve, observed frequency against mean predicted probability in
    ``n_bins`` equal-width bins (empty bins skipped). Bottom: step histograms of the predictions.

    Args:
        path: output file (its folder is created).
        curves: legend label -> ``(y01 (n,) of 0/1, p (n,) in [0, 1])``.
        title: figure title.
        n_bins: number of bins (>= 1).

    Raises:
        ValueError: no curve, or bad inputs (see :func:`expected_calibration_error`).

    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not curves:
        raise ValueError("curves must not be empty")
    fig = Figure(figsize=(5, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax, hist = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="Perfect calibration")
    edges = np.linspace(0, 1, n_bins + 1)
    for label, (y01, p) in curves.items():
        y, q = _probabilities(y01, p)
        counts, mean_p, mean_y = _bins(y, q, n_bins)
        full = counts > 0
        (line,) = ax.plot(mean_p[full], mean_y[full], marker="o", markersize=4, label=label)
        hist.hist(q, bins=edges, histtype="step", color=line.get_color())
    ax.set(xlim=(0, 1), ylim=(0, 1), ylabel="Observed frequency", title=title)
    ax.legend(loc="upper left", fontsize="small")
    hist.set(xlim=(0, 1), xlabel="Mean predicted probability", ylabel="Count")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", metadata={"Software": None})


def fit_logit_recalibration(logits: ArrayLike, y01: ArrayLike) -> tuple[float, float]:
    """Logistic recalibration: unpenalised fit of ``logit P(y=1) = a * logit + b``.

    Args:
        logits: (n,) finite log-odds of ``y = 1`` (e.g. out-of-fold model outputs).
        y01: (n,) outcomes, 0 or 1 (both must occur).

    Returns:
        ``(a, b)``: slope and intercept; the recalibrated log-odds are ``a * logits + b``.

    Raises:
        ValueError: bad shapes or values, one class only, or no convergence (perfect separation).

    """
    y, x = _binary_inputs(y01, logits, "logits")
    a, b = _fit_logistic(x[None], y[None], slope=True)
    if np.isnan(a[0]):
        raise ValueError("the recalibration fit did not converge (one class only, or perfect separation)")
    return float(a[0]), float(b[0])


def _log_loss(z: np.ndarray, y: np.ndarray) -> float:
    """Mean negative log-likelihood (nats) of 0/1 ``y`` under log-odds ``z``, computed stably."""
    return float(np.mean(np.logaddexp(0.0, z) - y * z))


def recalibration_helps(logits: ArrayLike, y01: ArrayLike, *, n_splits: int = 5, seed: int = 0) -> dict[str, Any]:
    """Cross-validated check of :func:`fit_logit_recalibration` on out-of-fold logits.

    For each of ``n_splits`` stratified folds (shuffled with ``seed``), fit the recalibration on the
    other folds and score the held-out fold's log loss before and after it.

    Args:
        logits: (n,) finite log-odds of ``y = 1``.
        y01: (n,) outcomes, 0 or 1.
        n_splits: folds (>= 2; each class needs at least ``n_splits`` rows).
        seed: shuffling seed of the folds.

    Returns:
        ``log_loss_before`` / ``log_loss_after`` (means over folds, nats), ``helps``
        (``after < before``) and ``folds`` (``n_splits``).

    Raises:
        ValueError: bad inputs, too few rows of a class for ``n_splits``, or a fold's fit fails.

    """
    from sklearn.model_selection import StratifiedKFold

    y, x = _binary_inputs(y01, logits, "logits")
    before, after = [], []
    for train, test in StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed).split(x, y):
        a, b = fit_logit_recalibration(x[train], y[train])
        before.append(_log_loss(x[test], y[test]))
        after.append(_log_loss(a * x[test] + b, y[test]))
    mean_before, mean_after = float(np.mean(before)), float(np.mean(after))
    return {
        "log_loss_before": mean_before,
        "log_loss_after": mean_after,
        "helps": bool(mean_after < mean_before),
        "folds": int(n_splits),
    }
