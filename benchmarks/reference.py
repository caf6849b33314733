"""The pickle's own answer to a record, and how far an answer is from another.

Since issue #14 the tabular models answer from a compiled form (:mod:`vitalcheck.compiled`); the
pickled pipeline is still the artifact of record. :func:`pickle_predictions` recomputes every
numeric field of a prediction from the pickle alone (``joblib.load`` of the artifact, then
``predict_proba`` / ``predict``, ``model.explain`` and ``domain.percentile``), independently of
:mod:`vitalcheck.predictors`, so that the bench can check served answers against it (target:
within 1e-6). The comparisons need only the standard library (``run.py`` uses them).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

CONTRIBUTORS = 5
"""Contributors per prediction (the API's top 5 by |SHAP value|)."""

MISMATCH = math.inf
"""The difference of two answers whose shapes, keys or non-numeric values differ."""

EXPLANATION_FIELDS = frozenset({"explanation", "explanations", "contributors", "ood_percentile"})
"""Fields of :func:`pickle_predictions` that only VitalCheck returns; the original design answers
with the outputs alone (see :func:`outputs`)."""


def pickle_predictions(name: str, records: list[dict[str, Any]], artifacts_dir: Path) -> list[dict[str, Any]]:
    """The pickle's prediction fields for each record of tabular model ``name``.

    Args:
        name: catalog name of a tabular model.
        records: request records as JSON (validated here with the model's request schema).
        artifacts_dir: folder of the pickles.

    Returns:
        Per record, the fields of the served prediction that the pickle determines: the
        output(s), ``explanation(s)`` (base, output and every field's contribution),
        ``ood_percentile`` and, under ``contributors``, every field's SHAP value of the
        explained output (the served top 5 are checked against it, see :func:`difference`).

    """
    import joblib
    import numpy as np

    from vitalcheck.catalog import MODELS
    from vitalcheck.predictors.tabular import records_to_frame
    from vitalcheck.schemas import INPUT_MODELS

    spec = MODELS[name]
    rows = [INPUT_MODELS[name].model_validate(r).model_dump() for r in records]
    frame = records_to_frame(spec, rows)
    estimator = joblib.load(artifacts_dir / spec.artifact)
    central = estimator[0] if isinstance(estimator, tuple) else estimator
    steps = central.named_steps
    encoded = steps["preprocess"].transform(frame)
    model = steps["model"]
    base, shap = model.explain(encoded)
    fields = model.field_names()
    shap = np.asarray(shap)[:, [fields.index(f) for f in spec.feature_names], :]
    raw = model.decision_function(encoded) if hasattr(model, "decision_function") else model.predict(encoded)
    raw = np.asarray(raw, dtype=np.float64).reshape(len(frame), -1)
    ood = steps["domain"].percentile(encoded).tolist()
    names = spec.feature_names

    def explanation(i: int, k: int) -> dict[str, Any]:
        return {
            "base_value": float(base[k]),
            "output_value": float(raw[i, k]),
            "contributions": dict(zip(names, shap[i, :, k].tolist(), strict=True)),
        }

    def shap_of(i: int, k: int) -> dict[str, float]:
        return dict(zip(names, shap[i, :, k].tolist(), strict=True))

    out: list[dict[str, Any]] = []
    if spec.kind == "classifier" and len(spec.classes) == 2:
        probability = np.asarray(estimator.predict_proba(frame))[:, 1].tolist()
        for i, p in enumerate(probability):
            out.append(
                {
                    "probability": p,
                    "explanation": explanation(i, 0),
                    "ood_percentile": ood[i],
                    "contributors": shap_of(i, 0),
                }
            )
    elif spec.kind == "classifier":
        per_class = np.asarray(estimator.predict_proba(frame))
        for i, probs in enumerate(per_class.tolist()):
            k = int(np.argmax(per_class[i]))
            out.append(
                {
                    "probabilities": dict(zip(spec.classes, probs, strict=True)),
                    "predicted_class": spec.classes[k],
                    "explanations": {c: explanation(i, j) for j, c in enumerate(spec.classes)},
                    "ood_percentile": ood[i],
                    "contributors": shap_of(i, k),
                }
            )
    elif spec.kind == "regressor":
        value = np.asarray(estimator.predict(frame), dtype=np.float64).tolist()
        for i, v in enumerate(value):
            out.append(
                {
                    "life_expectancy_years": v,
                    "explanation": explanation(i, 0),
                    "ood_percentile": ood[i],
                    "contributors": shap_of(i, 0),
                }
            )
    else:  # interval regressor: (central, lower, upper), the bounds never inside out
        mean, lower, upper = (np.asarray(m.predict(frame), dtype=np.float64) for m in estimator)
        for i, (c, lo, hi) in enumerate(zip(mean.tolist(), lower.tolist(), upper.tolist(), strict=True)):
            out.append(
                {
                    "charges_usd": c,
                    "lower_usd": min(lo, c),
                    "upper_usd": max(hi, c),
                    "explanation": explanation(i, 0),
                    "ood_percentile": ood[i],
                    "contributors": shap_of(i, 0),
                }
            )
    return out


def outputs(reference: dict[str, Any]) -> dict[str, Any]:
    """A reference prediction without its explanation fields: what the original design returns.

    Binary classifiers ``probability``; sleep ``probabilities`` and ``predicted_class``; life
    expectancy ``life_expectancy_years``; insurance ``charges_usd``, ``lower_usd`` and ``upper_usd``.
    """
    return {k: v for k, v in reference.items() if k not in EXPLANATION_FIELDS}


def difference(answer: Any, reference: Any) -> float:
    """Largest absolute difference of ``answer``'s numbers from the pickle's (:func:`pickle_predictions`).

    Only the reference's fields are compared (an answer may carry more). ``contributors``: each
    served contributor's contribution against the pickle's SHAP value of its field, and the
    served fields must be a top :data:`CONTRIBUTORS` by the pickle's |SHAP value| (to 1e-9).

    Returns:
        The difference, or :data:`MISMATCH` when a field is missing or a string differs.

    """
    if isinstance(reference, dict):
        if not isinstance(answer, dict):
            return MISMATCH
        worst = 0.0
        for key, want in reference.items():
            if key not in answer:
                return MISMATCH
            got = answer[key]
            worst = max(worst, _contributors(got, want) if key == "contributors" else difference(got, want))
        return worst
    return _leaf(answer, reference)


def _contributors(served: Any, shap: dict[str, float]) -> float:
    if not isinstance(served, list) or len(served) != min(CONTRIBUTORS, len(shap)):
        return MISMATCH
    try:
        chosen = {c["feature"]: c["contribution"] for c in served}
    except (KeyError, TypeError):
        return MISMATCH
    if len(chosen) != len(served) or not chosen.keys() <= shap.keys():
        return MISMATCH
    others = [abs(v) for f, v in shap.items() if f not in chosen]
    if others and min(abs(shap[f]) for f in chosen) < max(others) - 1e-9:
        return MISMATCH
    return max(abs(float(v) - shap[f]) for f, v in chosen.items())


def max_difference(a: Any, b: Any, fields: Any = None) -> float:
    """Largest absolute difference between two JSON answers' numbers.

    Args:
        a, b: the answers.
        fields: an answer whose keys say which fields to compare (the original design's answer:
            VitalCheck's may carry more); None compares all, and then the keys must match.

    Returns:
        The difference, or :data:`MISMATCH` when shapes, keys or non-numeric values differ.

    """
    if isinstance(a, dict) and isinstance(b, dict):
        keys = fields.keys() if isinstance(fields, dict) else a.keys()
        if fields is None and a.keys() != b.keys():
            return MISMATCH
        if not (keys <= a.keys() and keys <= b.keys()):
            return MISMATCH
        sub = fields if isinstance(fields, dict) else {}
        return max((max_difference(a[k], b[k], sub.get(k)) for k in keys), default=0.0)
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return MISMATCH
        sub_list = fields if isinstance(fields, list) and len(fields) == len(a) else [None] * len(a)
        return max((max_difference(x, y, f) for x, y, f in zip(a, b, sub_list, strict=True)), default=0.0)
    return _leaf(a, b)


def as_json(value: float) -> float | str:
    """A difference for results.json: the number, or ``"mismatch"`` (JSON has no infinity)."""
    return value if math.isfinite(value) else "mismatch"


def _leaf(a: Any, b: Any) -> float:
    if isinstance(a, bool | str | None | dict | list) or isinstance(b, bool | str | None | dict | list):
        return 0.0 if a == b else MISMATCH
    return abs(float(a) - float(b))
