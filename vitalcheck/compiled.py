"""The compiled serving form of a tabular model: plain NumPy arrays and one vectorised pass.

The pickled pipeline (``preprocess`` → ``domain`` → additive ``model``; insurance: three of them)
stays the artifact of record. What it computes per request is small: a sum of one-field terms
(piecewise-linear curves on training quantiles, step functions, category tables), at most two
two-field tables, a recalibration, and a Mahalanobis distance. :func:`compile_estimator` reads
those arrays out of the fitted objects; ``import_models.py`` saves them beside the pickle in the
same model-store entry (:meth:`CompiledModel.save`, an ``.npz`` read with ``allow_pickle=False``:
no code runs when it is loaded), and every worker checks them against the pickle before serving
(:meth:`vitalcheck.predictors.tabular.TabularPredictor.load`).

A request then costs no pandas and no scikit-learn: validated records become one float64 matrix
``V`` (n, fields) in catalog order (:meth:`CompiledModel.encode`: numbers and booleans as
floats, NaN when missing; a category as its index, the missing category last), and
:meth:`CompiledModel.explain` gives the outputs, the exact SHAP values and the
out-of-distribution percentiles of a whole micro-batch in about twenty NumPy calls.

NumPy only: this module is imported by the service and by :mod:`vitalcheck.domain`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = 1
"""Version of the array layout; a stored form of another version is rebuilt from the pickle."""

SEARCH_CELLS = 20_000
"""Rows × breakpoints up to which positions are found by one broadcast comparison (else a
``searchsorted`` per field): the comparison costs no Python loop, the loop scales with rows."""

CLIP = 1e6
"""Bound on the absolute value of a standardised value in the OOD score (so ±inf stays finite)."""

ADDITIVITY_TOLERANCE = 1e-9
"""Largest |base + Σ SHAP − raw output| accepted (when the tables are built and at every load)."""

REFERENCE_KEYS = ("values", "outputs", "base", "shap", "ood")
"""What :attr:`CompiledModel.reference` holds: the check records encoded, and the pickle's answers to them."""


class StaleForm(ValueError):
    """A stored compiled form of another :data:`FORMAT` version (rebuilt from the pickle, not an error)."""


def probabilities(raw: np.ndarray) -> np.ndarray:
    """Class probabilities from raw scores: (n,) log-odds → (n, 2) by the logistic; (n, K) → softmax."""
    if raw.ndim == 1:
        positive = 1.0 / (1.0 + np.exp(-raw))
        return np.column_stack([1.0 - positive, positive])
    shifted = np.exp(raw - raw.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


# ---- the training-domain (OOD) arithmetic, shared with vitalcheck.domain.TrainingDomain -----------
def embed_rows(data: np.ndarray, mean: np.ndarray, scale: np.ndarray, missing_columns: np.ndarray) -> np.ndarray:
    """Preprocessed rows (n, d) → (n, d + m): standardised, clipped, NaN → 0, then missing indicators.

    Values are clipped to ±:data:`CLIP`; one 0/1 indicator follows per column of ``missing_columns`` (m).
    """
    d = data.shape[1]
    missing = np.isnan(data)
    z = np.empty((data.shape[0], d + missing_columns.size), dtype=np.float64)
    standard = z[:, :d]
    with np.errstate(over="ignore"):  # a huge finite value overflows to ±inf, then is clipped
        np.subtract(data, mean, out=standard)
        np.divide(standard, scale, out=standard)
    np.minimum(standard, CLIP, out=standard)  # NaN stays NaN here ...
    np.maximum(standard, -CLIP, out=standard)
    np.copyto(standard, 0.0, where=missing)  # ... and becomes the mean here
    z[:, d:] = missing[:, missing_columns]
    return z


def mahalanobis(z: np.ndarray, location: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """Embedded rows (n, k) → squared Mahalanobis distances (n,), clipped at 0; ``z`` is overwritten."""
    diff = np.subtract(z, location, out=z)
    # einsum without BLAS: a row's score does not depend on how many rows are scored with it
    # (a matrix product's rounding does, and a tie with a training score would move the percentile)
    scores = np.einsum("ij,jk,ik->i", diff, precision, diff, optimize=False)
    return np.maximum(scores, 0.0, out=scores)


# ---- one additive model -------------------------------------------------------------------------
def _positions(breaks: np.ndarray, lengths: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Per cell of x (n, g), the number of group g's breakpoints strictly below it (``searchsorted`` left).

    ``breaks`` (g, M) is padded with +inf beyond ``lengths``; x holds no NaN.
    """
    if x.shape[0] * breaks.size <= SEARCH_CELLS:
        return np.count_nonzero(breaks[None, :, :] < x[:, :, None], axis=2)
    out = np.empty(x.shape, dtype=np.intp)
    for g in range(breaks.shape[0]):
        out[:, g] = np.searchsorted(breaks[g, : lengths[g]], x[:, g], side="left")
    return out


def _padded(rows: Sequence[np.ndarray], fill: float, width: int | None = None) -> np.ndarray:
    """Stack 1-D arrays (or (n_out, k) arrays along their last axis) padded with ``fill`` to one width."""
    width = max([r.shape[-1] for r in rows] + [1]) if width is None else width
    out = []
    for r in rows:
        pad = [(0, 0)] * (r.ndim - 1) + [(0, width - r.shape[-1])]
        out.append(np.pad(r, pad, constant_values=fill))
    return np.stack(out, axis=-2) if rows else np.zeros((0, width))


@dataclass(frozen=True)
class Terms:
    """The served terms of one additive model, in arrays (see :func:`compile_estimator`).

    Fields are in catalog order; ``n_out`` outputs (1, or one per class). Three groups:
    curve fields (piecewise-linear on knots), step fields (step functions on thresholds;
    categories are step functions of their index), and two-field pairs.

    Attributes:
        constant: (n_out,) the model's constant.
        base: (n_out,) the SHAP base value (mean output over the training rows), before ``slope``.
        slope, intercept: output = ``slope × (constant + Σ terms) + intercept``.
        field_mean: (n_out, F) each field's one-field term's mean over the training rows.
        curve_field: (Fc,) the field of each curve; ``curve_knots`` (Fc, M) padded with +inf,
            ``curve_length`` (Fc,), ``curve_values`` (n_out, Fc, M), ``curve_missing`` (n_out, Fc).
        step_field: (Fs,); ``step_lower``/``step_upper`` (Fs,) the clamp; ``step_thresholds``
            (Fs, M) padded with +inf, ``step_length`` (Fs,), ``step_values`` (n_out, Fs, M + 1),
            ``step_missing`` (n_out, Fs).
        pairs: per pair: ``fields`` (2,), ``lower``/``upper`` (2,), ``thresholds_a``,
            ``thresholds_b``, ``grid`` (n_out, la + 2, lb + 2), ``given_a`` (n_out, la + 2),
            ``given_b`` (n_out, lb + 2), ``mean`` (n_out,); the last slot of an axis is "missing".

    """

    constant: np.ndarray
    base: np.ndarray
    slope: float
    intercept: float
    field_mean: np.ndarray
    curve_field: np.ndarray
    curve_knots: np.ndarray
    curve_length: np.ndarray
    curve_values: np.ndarray
    curve_missing: np.ndarray
    step_field: np.ndarray
    step_lower: np.ndarray
    step_upper: np.ndarray
    step_thresholds: np.ndarray
    step_length: np.ndarray
    step_values: np.ndarray
    step_missing: np.ndarray
    pairs: tuple[dict[str, np.ndarray], ...]

    def __post_init__(self) -> None:
        # per-call constants, derived once (numpy's Python-level wrappers cost more than the arithmetic here)
        g = np.arange(self.curve_field.size)
        derived = {
            "_curve_g": g,
            "_curve_lo": self.curve_knots[:, 0] if g.size else np.zeros(0),
            "_curve_hi": self.curve_knots[g, self.curve_length - 1] if g.size else np.zeros(0),
            "_curve_last": self.curve_length - 1,
            "_step_g": np.arange(self.step_field.size),
        }
        for name, value in derived.items():
            object.__setattr__(self, name, value)

    def terms(self, V: np.ndarray) -> np.ndarray:
        """The one-field terms of rows V (n, F), shape (n_out, n, F), before ``slope``."""
        n_out, n = self.constant.shape[0], V.shape[0]
        out = np.zeros((n_out, n, self.field_mean.shape[1]))
        d = self.__dict__
        if self.curve_field.size:
            g = d["_curve_g"]
            x = V[:, self.curve_field]
            nan = np.isnan(x)
            x = np.minimum(np.fmax(x, d["_curve_lo"]), d["_curve_hi"])  # fmax: NaN → the lower edge
            i = np.minimum(np.maximum(_positions(self.curve_knots, self.curve_length, x), 1), d["_curve_last"])
            x0, x1 = self.curve_knots[g, i - 1], self.curve_knots[g, i]
            y0, y1 = self.curve_values[:, g, i - 1], self.curve_values[:, g, i]
            value = (y1 - y0) / (x1 - x0) * (x - x0) + y0  # np.interp's formula
            if nan.any():
                value = np.where(nan, self.curve_missing[:, None, :], value)
            out[:, :, self.curve_field] = value
        if self.step_field.size:
            x = V[:, self.step_field]
            nan = np.isnan(x)
            x = np.minimum(np.fmax(x, self.step_lower), self.step_upper)
            value = self.step_values[:, d["_step_g"], _positions(self.step_thresholds, self.step_length, x)]
            if nan.any():
                value = np.where(nan, self.step_missing[:, None, :], value)
            out[:, :, self.step_field] = value
        return out

    def explain(self, V: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Outputs, SHAP base and SHAP values of rows V (n, F).

        Returns:
            ``(raw (n, n_out), base (n_out,), shap (n, F, n_out))`` on the model's additive scale,
            with ``base + shap.sum(axis=1) == raw`` up to float rounding.

        """
        terms = self.terms(V)
        raw = self.constant[:, None] + terms.sum(axis=2)
        shap = terms - self.field_mean[:, None, :]
        for p in self.pairs:
            ia, ib = self._pair_index(p, V)
            both = p["grid"][:, ia, ib]
            given_a, given_b, mean = p["given_a"][:, ia], p["given_b"][:, ib], p["mean"][:, None]
            raw += both
            a, b = int(p["fields"][0]), int(p["fields"][1])
            shap[:, :, a] += 0.5 * (given_a - mean) + 0.5 * (both - given_b)
            shap[:, :, b] += 0.5 * (given_b - mean) + 0.5 * (both - given_a)
        raw = raw * self.slope + self.intercept
        return raw.T, self.base * self.slope + self.intercept, shap.transpose(1, 2, 0) * self.slope

    def raw(self, V: np.ndarray) -> np.ndarray:
        """Outputs of rows V (n, F) without explanations, shape (n, n_out)."""
        raw = self.constant[:, None] + self.terms(V).sum(axis=2)
        for p in self.pairs:
            ia, ib = self._pair_index(p, V)
            raw += p["grid"][:, ia, ib]
        return (raw * self.slope + self.intercept).T

    @staticmethod
    def _pair_index(p: Mapping[str, np.ndarray], V: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        index = []
        for side, column in (("a", 0), ("b", 1)):
            x = V[:, int(p["fields"][column])]
            t = p["thresholds_" + side]
            position = np.searchsorted(t, np.minimum(np.fmax(x, p["lower"][column]), p["upper"][column]))
            index.append(np.where(np.isnan(x), len(t) + 1, position))
        return index[0], index[1]

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        """The arrays to save, keys prefixed."""
        out = {prefix + k: np.asarray(getattr(self, k)) for k in self.__dataclass_fields__ if k != "pairs"}
        for i, p in enumerate(self.pairs):
            out.update({f"{prefix}pair{i}_{k}": v for k, v in p.items()})
        return out

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], prefix: str) -> Terms:
        """Inverse of :meth:`arrays`."""
        names = [k for k in cls.__dataclass_fields__ if k != "pairs"]
        values: dict[str, Any] = {k: arrays[prefix + k] for k in names}
        values["slope"], values["intercept"] = float(values["slope"]), float(values["intercept"])
        pairs = []
        i = 0
        while f"{prefix}pair{i}_grid" in arrays:
            head = f"{prefix}pair{i}_"
            pairs.append({k[len(head) :]: arrays[k] for k in arrays if k.startswith(head)})
            i += 1
        return cls(**values, pairs=tuple(pairs))


@dataclass(frozen=True)
class CompiledModel:
    """The compiled serving form of one tabular artifact: encoding, terms and OOD score.

    Attributes:
        fields: the catalog feature names (the columns of ``V``).
        categories: per field, its categories in index order (empty for numbers and booleans).
        models: the additive models, sharing ``V``: one, or (central, lower, upper) for an
            interval regressor.
        onehot_field, onehot_code: per model column that is a one-hot column, its field and code;
            ``onehot_column`` its column; ``numeric_field``/``numeric_column`` likewise.
        domain: the training-domain arrays (``mean``, ``scale``, ``missing_columns``,
            ``location``, ``precision``, ``training_scores``).
        reference: the pickle's answers on the check records, recorded by ``import_models.py``
            so that a worker can compare its compiled answers with them without unpickling
            (:data:`REFERENCE_KEYS`: the records encoded (n, F); the outputs (n, k); the SHAP base
            (n_out,) and values (n, F, n_out); the OOD percentiles (n,)); empty when not recorded.

    """

    fields: tuple[str, ...]
    categories: tuple[tuple[str, ...], ...]
    models: tuple[Terms, ...]
    n_columns: int
    numeric_field: np.ndarray
    numeric_column: np.ndarray
    onehot_field: np.ndarray
    onehot_code: np.ndarray
    onehot_column: np.ndarray
    domain: dict[str, np.ndarray]
    reference: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        codes: list[dict[Any, float] | None] = []
        for cats in self.categories:
            codes.append({**{c: float(i) for i, c in enumerate(cats)}, None: float(len(cats))} if cats else None)
        object.__setattr__(self, "_codes", codes)

    # ---- requests ----------------------------------------------------------------------------
    def encode(self, records: Sequence[Any]) -> np.ndarray:
        """Validated records (pydantic request models or dicts keyed by field) → V (n, F) float64.

        Numbers and booleans as floats (``None`` → NaN); a category as its index in
        :attr:`categories` (``None`` → the index after the last). Raises KeyError for an
        unknown category or a missing key (the request models exclude both).
        """
        nan = float("nan")
        codes: list[dict[Any, float] | None] = self._codes  # type: ignore[attr-defined]
        plan = list(zip(self.fields, codes, strict=True))
        out = np.empty((len(records), len(self.fields)), dtype=np.float64)
        for i, record in enumerate(records):
            values = record if isinstance(record, dict) else record.__dict__
            out[i] = [
                (nan if (v := values[name]) is None else v) if code is None else code[values[name]]
                for name, code in plan
            ]
        return out

    def columns(self, V: np.ndarray) -> np.ndarray:
        """The model columns the pickle's ``preprocess`` step gives (n, d): numbers, then one-hot 0/1."""
        X = np.zeros((V.shape[0], self.n_columns))
        X[:, self.numeric_column] = V[:, self.numeric_field]
        X[:, self.onehot_column] = V[:, self.onehot_field] == self.onehot_code
        return X

    def ood_percentile(self, V: np.ndarray) -> np.ndarray:
        """Out-of-distribution percentile of each row (n,) in [0, 100] (see :class:`~vitalcheck.domain.TrainingDomain`)."""
        d = self.domain
        z = embed_rows(self.columns(V), d["mean"], d["scale"], d["missing_columns"])
        scores = mahalanobis(z, d["location"], d["precision"])
        below = np.searchsorted(d["training_scores"], scores, side="left")
        return np.divide(100.0 * below, d["training_scores"].shape[0])

    # ---- storage ------------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        """Write the form as one uncompressed ``.npz`` (plain arrays: no pickle)."""
        arrays: dict[str, np.ndarray] = {
            "format": np.asarray(FORMAT),
            "fields": np.asarray(self.fields, dtype=str),
            "n_models": np.asarray(len(self.models)),
            "n_columns": np.asarray(self.n_columns),
        }
        for j, cats in enumerate(self.categories):
            arrays[f"categories{j}"] = np.asarray(cats, dtype=str)
        for name in ("numeric_field", "numeric_column", "onehot_field", "onehot_code", "onehot_column"):
            arrays[name] = getattr(self, name)
        arrays.update({"domain_" + k: v for k, v in self.domain.items()})
        arrays.update({"reference_" + k: v for k, v in self.reference.items()})
        for i, terms in enumerate(self.models):
            arrays.update(terms.arrays(f"m{i}_"))
        with open(path, "wb") as fh:
            np.savez(fh, **arrays)  # type: ignore[arg-type]  # numpy's stub types the first keyword as allow_pickle

    @classmethod
    def load(cls, path: Path) -> CompiledModel:
        """Read a form written by :meth:`save`.

        Raises:
            StaleForm: the file is a form of another :data:`FORMAT` version, or none.
            OSError, ValueError, KeyError, zipfile.BadZipFile: it cannot be read as one.

        """
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        if "format" not in arrays or int(arrays["format"]) != FORMAT:
            raise StaleForm(f"{path.name} is not a compiled form of version {FORMAT}")
        fields = tuple(str(f) for f in arrays["fields"])
        return cls(
            fields=fields,
            categories=tuple(tuple(str(c) for c in arrays[f"categories{j}"]) for j in range(len(fields))),
            models=tuple(Terms.from_arrays(arrays, f"m{i}_") for i in range(int(arrays["n_models"]))),
            n_columns=int(arrays["n_columns"]),
            numeric_field=arrays["numeric_field"],
            numeric_column=arrays["numeric_column"],
            onehot_field=arrays["onehot_field"],
            onehot_code=arrays["onehot_code"],
            onehot_column=arrays["onehot_column"],
            domain={k[len("domain_") :]: v for k, v in arrays.items() if k.startswith("domain_")},
            reference={k[len("reference_") :]: v for k, v in arrays.items() if k.startswith("reference_")},
        )

    def with_reference(self, reference: Mapping[str, np.ndarray]) -> CompiledModel:
        """The same form with the pickle's answers on the check records (see :attr:`reference`)."""
        missing = set(REFERENCE_KEYS) - set(reference)
        if missing:
            raise ValueError(f"reference lacks {sorted(missing)}")
        return replace(self, reference={k: np.asarray(reference[k], dtype=np.float64) for k in REFERENCE_KEYS})


# ---- compiling a fitted pipeline ----------------------------------------------------------------
def compile_estimator(estimator: Any, fields: Sequence[str], categories: Sequence[Sequence[str]]) -> CompiledModel:
    """Read the served arrays out of a fitted tabular artifact.

    Args:
        estimator: the unpickled artifact: a pipeline ``preprocess → domain → model`` with an
            additive model (:mod:`vitalcheck.additive`), or a tuple ``(central, lower, upper)`` of
            such pipelines, the bounds wrapped in :class:`~vitalcheck.estimators.ConformalShift`.
        fields: the catalog feature names, in catalog order.
        categories: per field, its categories (empty for numbers and booleans).

    Returns:
        The compiled form; its answers equal the artifact's up to float rounding (the service
        checks this on golden and generated records before serving it).

    Raises:
        ValueError: the artifact is not of that family, or its column layout is not numbers and
            booleans followed by one one-hot column per category plus one for missing.

    """
    pipelines = estimator if isinstance(estimator, tuple) else (estimator,)
    shifts = [float(getattr(p, "shift", 0.0)) for p in pipelines]
    inner: list[Any] = [getattr(p, "regressor", p) for p in pipelines]
    for p in inner:
        if not hasattr(p, "named_steps") or not hasattr(p.named_steps.get("model"), "tables_"):
            raise ValueError("not a pipeline of the additive family (preprocess → domain → model)")
    model0 = inner[0].named_steps["model"]
    column_fields = list(model0.column_fields)
    field_index = {name: j for j, name in enumerate(fields)}
    numeric_column, numeric_field, onehot_column, onehot_field, onehot_code = [], [], [], [], []
    seen: dict[str, int] = {}
    for c, name in enumerate(column_fields):
        j = field_index[name]
        if categories[j]:
            onehot_column.append(c)
            onehot_field.append(j)
            onehot_code.append(seen.get(name, 0))
            seen[name] = seen.get(name, 0) + 1
        else:
            numeric_column.append(c)
            numeric_field.append(j)
    for name, count in seen.items():
        if count != len(categories[field_index[name]]) + 1:
            raise ValueError(
                f"field {name}: {count} one-hot columns for {len(categories[field_index[name]])} categories"
            )
    layout: dict[str, Any] = {
        "numeric_field": np.asarray(numeric_field, dtype=np.intp),
        "numeric_column": np.asarray(numeric_column, dtype=np.intp),
        "onehot_field": np.asarray(onehot_field, dtype=np.intp),
        "onehot_code": np.asarray(onehot_code, dtype=np.float64),
        "onehot_column": np.asarray(onehot_column, dtype=np.intp),
    }
    domain = inner[0].named_steps["domain"]
    models = tuple(
        _compile_terms(p.named_steps["model"], len(fields), categories, layout, shift)
        for p, shift in zip(inner, shifts, strict=True)
    )
    return CompiledModel(
        fields=tuple(fields),
        categories=tuple(tuple(c) for c in categories),
        models=models,
        n_columns=len(column_fields),
        **layout,
        domain={
            "mean": domain.mean_,
            "scale": domain.scale_,
            "missing_columns": domain.missing_columns_,
            "location": domain.location_,
            "precision": domain.precision_,
            "training_scores": domain.training_scores_,
        },
    )


def _compile_terms(
    model: Any, n_fields: int, categories: Sequence[Sequence[str]], layout: Mapping[str, np.ndarray], shift: float
) -> Terms:
    tables = model.tables_
    n_out = tables.constant.shape[0]
    lower, upper = np.asarray(model.lower_, dtype=np.float64), np.asarray(model.upper_, dtype=np.float64)
    field_mean = np.zeros((n_out, n_fields))
    for c, j in zip(layout["numeric_column"], layout["numeric_field"], strict=True):
        field_mean[:, j] += tables.single_mean[c]
    for c, j in zip(layout["onehot_column"], layout["onehot_field"], strict=True):
        field_mean[:, j] += tables.single_mean[c]

    curves: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []
    steps: list[tuple[int, float, float, np.ndarray, np.ndarray, np.ndarray]] = []
    for c, j in zip(layout["numeric_column"], layout["numeric_field"], strict=True):
        if tables.curves[c] is not None:
            curves.append((int(j), tables.knots[c], tables.curves[c], tables.missing[c]))
        else:
            t = tables.thresholds[c]
            steps.append((int(j), lower[c], upper[c], t, tables.steps[c][:, : len(t) + 1], tables.missing[c]))
    for j, cats in enumerate(categories):  # a category field: a step function of its index
        if not cats:
            continue
        columns = layout["onehot_column"][layout["onehot_field"] == j]
        X = np.zeros((len(cats) + 1, len(tables.steps)))
        X[np.arange(len(cats) + 1), columns] = 1.0
        X = np.clip(X, lower, upper)
        index = tables.intervals(X)
        values = sum(tables.term(int(c), X[:, c], index[:, c]) for c in columns)
        thresholds = np.arange(len(cats), dtype=np.float64) + 0.5
        steps.append((j, -np.inf, np.inf, thresholds, np.asarray(values), np.zeros(n_out)))

    field_of_column = np.empty(len(tables.steps), dtype=np.intp)
    field_of_column[layout["numeric_column"]] = layout["numeric_field"]
    field_of_column[layout["onehot_column"]] = layout["onehot_field"]
    pairs = []
    for (a, b), grid in tables.pair.items():
        pairs.append(
            {
                "fields": np.asarray([field_of_column[a], field_of_column[b]], dtype=np.intp),
                "lower": np.asarray([lower[a], lower[b]]),
                "upper": np.asarray([upper[a], upper[b]]),
                "thresholds_a": tables.thresholds[a],
                "thresholds_b": tables.thresholds[b],
                "grid": grid,
                "given_a": tables.pair_given_a[(a, b)],
                "given_b": tables.pair_given_b[(a, b)],
                "mean": tables.pair_mean[(a, b)],
            }
        )
    recalibrated = hasattr(model, "logit_slope")
    return Terms(
        constant=np.asarray(tables.constant, dtype=np.float64),
        base=np.asarray(tables.base(), dtype=np.float64),
        slope=float(model.logit_slope) if recalibrated else 1.0,
        intercept=(float(model.logit_intercept) if recalibrated else 0.0) + shift,
        field_mean=field_mean,
        curve_field=np.asarray([c[0] for c in curves], dtype=np.intp),
        curve_knots=_padded([c[1] for c in curves], np.inf),
        curve_length=np.asarray([len(c[1]) for c in curves], dtype=np.intp),
        curve_values=_padded([c[2] for c in curves], 0.0) if curves else np.zeros((n_out, 0, 1)),
        curve_missing=np.stack([c[3] for c in curves], axis=1) if curves else np.zeros((n_out, 0)),
        step_field=np.asarray([s[0] for s in steps], dtype=np.intp),
        step_lower=np.asarray([s[1] for s in steps], dtype=np.float64),
        step_upper=np.asarray([s[2] for s in steps], dtype=np.float64),
        step_thresholds=_padded([s[3] for s in steps], np.inf),
        step_length=np.asarray([len(s[3]) for s in steps], dtype=np.intp),
        step_values=_padded([s[4] for s in steps], 0.0) if steps else np.zeros((n_out, 0, 1)),
        step_missing=np.stack([s[5] for s in steps], axis=1) if steps else np.zeros((n_out, 0)),
        pairs=tuple(pairs),
    )
