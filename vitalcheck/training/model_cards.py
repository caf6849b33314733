"""Building, writing and summarising the JSON model cards (:class:`vitalcheck.cards.ModelCard`)."""

from __future__ import annotations

import json
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vitalcheck.cards import CardFeature, ModelCard, load_card, sha256_file
from vitalcheck.catalog import MODELS, ModelSpec
from vitalcheck.settings import PROJECT_ROOT

SUMMARY_FILE = "MODEL_CARDS.md"


def framework_versions() -> dict[str, str]:
    """Versions of the libraries an artifact is built with (scikit-learn, numpy, pandas, scipy, joblib, python)."""
    import joblib
    import scipy
    import sklearn

    return {
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "scipy": scipy.__version__,
        "joblib": joblib.__version__,
        "python": platform.python_version(),
    }


def code_revision() -> str:
    """``git rev-parse HEAD`` of the project, or ``"unknown"`` outside git / before the first commit."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    revision = result.stdout.strip()
    return revision if result.returncode == 0 and revision else "unknown"


def utc_now() -> str:
    """Return the current UTC time, ISO-8601 with seconds."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def dataset_provenance(data_dir: str | Path, folder: str) -> tuple[str, str]:
    """Read a data set's original source and licence from the data directory's README table.

    Args:
        data_dir: the shared data directory (holding ``README.md``).
        folder: the data set's folder name (first column of the table).

    Returns:
        ``(provenance, licence)``; ``("unknown (not in the data README)", "unknown")`` when the
        README or the row is absent.

    """
    readme = Path(data_dir) / "README.md"
    if readme.is_file():
        header: list[str] | None = None
        for line in readme.read_text(encoding="utf-8").splitlines():
            if not line.startswith("|"):
                continue
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if header is None:
                header = [c.lower() for c in cells]
                continue
            if cells and cells[0] == folder and len(cells) == len(header):
                row = dict(zip(header, cells, strict=True))
                return row.get("original source", "unknown"), row.get("licence", "unknown")
    return "unknown (not in the data README)", "unknown"


def json_value(value: Any, feature_type: str) -> Any:
    """Convert one feature value to its JSON-native form (``None`` for missing).

    ``integer`` → int, ``number`` → float, ``boolean`` → bool, ``category`` → str.
    """
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if feature_type == "integer":
        return int(value)
    if feature_type == "number":
        return float(value)
    if feature_type == "boolean":
        return bool(value)
    return str(value)


def card_features(spec: ModelSpec, X_train: pd.DataFrame) -> list[CardFeature]:
    """Catalog features plus what training saw: range, categories and a typical value (the baseline).

    The baseline is the training median for numbers (for integers the lower median, an
    observed value), and the mode for booleans and categories (ties: catalog order first).
    """
    out: list[CardFeature] = []
    for feat in spec.features:
        col = X_train[feat.name]
        present = col[col.notna()]
        info: dict[str, Any] = {}
        if feat.type in ("number", "integer"):
            values = present.astype("float64").to_numpy()
            info["train_min"] = float(values.min())
            info["train_max"] = float(values.max())
            if feat.type == "integer":
                info["baseline"] = int(np.quantile(values, 0.5, method="lower"))
            else:
                info["baseline"] = float(np.median(values))
        else:
            seen = [json_value(v, feat.type) for v in present]
            order = list(feat.categories) if feat.type == "category" else [False, True]
            counts = {v: seen.count(v) for v in dict.fromkeys(order + sorted(set(seen), key=str))}
            info["baseline"] = max(counts, key=lambda v: counts[v])  # first of the most frequent
            if feat.type == "category":
                info["train_categories"] = [c for c in counts if counts[c] > 0]
        out.append(
            CardFeature(
                name=feat.name,
                type=feat.type,
                unit=feat.unit,
                description=feat.description,
                source_column=feat.source_column,
                valid_min=feat.valid_min,
                valid_max=feat.valid_max,
                categories=list(feat.categories),
                nullable=feat.nullable,
                **info,
            )
        )
    return out


def new_card(spec: ModelSpec, artifact: Path, *, framework: str, versions: dict[str, str], **fields: Any) -> ModelCard:
    """Card of an artifact just written: the catalog's name, task and file, the artifact's sha256, code revision and time.

    Args:
        spec: the model's catalog entry.
        artifact: the written artifact file.
        framework: ``"scikit-learn"`` or ``"onnx"``.
        versions: versions of the libraries the artifact was built with.
        **fields: every other :class:`ModelCard` field.

    """
    return ModelCard(
        name=spec.name,
        task=spec.task,
        artifact=spec.artifact,
        sha256=sha256_file(artifact),
        framework=framework,
        framework_versions=versions,
        training_code_revision=code_revision(),
        trained_at=utc_now(),
        **fields,
    )


def write_card(card: ModelCard, path: Path) -> None:
    """Validate ``card`` (round trip through :class:`ModelCard`) and write it as indented JSON."""
    checked = ModelCard.model_validate(json.loads(card.model_dump_json()))
    path.write_text(checked.model_dump_json(indent=2) + "\n", encoding="utf-8")


def _fmt(value: float | None) -> str:
    if value is None:
        return ""
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3f}"


def write_summary(artifacts_dir: Path) -> Path | None:
    """Write ``MODEL_CARDS.md``: all cards' test metrics (and baselines) side by side.

    Reads every catalog model's card present in ``artifacts_dir`` (brain_tumor included
    when its card exists). Returns the file written, or None when there is no card.
    """
    cards = []
    for spec in MODELS.values():
        path = artifacts_dir / spec.card_file
        if path.is_file():
            cards.append(load_card(path))
    if not cards:
        return None
    metric_names = list(dict.fromkeys(m for c in cards for m in c.metrics))
    lines = [
        "# VitalCheck model cards (generated)",
        "",
        "Test-split metrics of every model; generated by `python -m vitalcheck.training train` from the",
        "`*.card.json` files in this directory. Baseline: majority class / training-mean predictor.",
        "",
        "| model | estimator | test rows | " + " | ".join(metric_names) + " |",
        "|---|---|---|" + "---|" * len(metric_names),
    ]
    for c in cards:
        cells = [_fmt(c.metrics.get(m)) for m in metric_names]
        short = c.estimator.split(" (")[0].split(";")[0]
        lines.append(f"| {c.name} | {short} | {c.dataset.rows_test} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Baselines",
        "",
        "| model | " + " | ".join(metric_names) + " |",
        "|---|" + "---|" * len(metric_names),
    ]
    for c in cards:
        lines.append(f"| {c.name} | " + " | ".join(_fmt(c.baseline_metrics.get(m)) for m in metric_names) + " |")
    lines += ["", "## Notes", ""]
    for c in cards:
        notes = c.extra.get("target_notes")
        lines.append(f"- **{c.name}** ({c.dataset.file}, {c.dataset.rows_total} rows): {c.split}")
        if notes:
            lines.append(f"  - targets: {notes if isinstance(notes, str) else json.dumps(notes)}")
    for c in cards:
        lines += _trust_section(c)
    path = artifacts_dir / SUMMARY_FILE
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _interval(values: list[float]) -> str:
    return f"[{values[0]:.3g}, {values[1]:.3g}]"


def _calibration_row(label: str, cal: dict[str, Any]) -> str:
    if cal.get("calibration_slope") is None:
        return (
            f"| {label} | not estimable ({cal.get('not_estimable', '')}) | | "
            f"{cal['expected_calibration_error']:.3f} | {cal['brier_score']:.3f} |"
        )
    return (
        f"| {label} | {cal['calibration_slope']:.2f} {_interval(cal['calibration_slope_ci95'])} | "
        f"{cal['calibration_intercept']:.2f} {_interval(cal['calibration_intercept_ci95'])} | "
        f"{cal['expected_calibration_error']:.3f} | {cal['brier_score']:.3f} |"
    )


def _trust_section(card: ModelCard) -> list[str]:
    """One model's constraints, constraint cost, calibration, OOD rate and explanation method (Markdown)."""
    extra = card.extra
    if "explanation" not in extra:
        return []
    lines = ["", f"## {card.name}", ""]
    constraints = extra.get("constraints", [])
    if constraints:
        lines.append("Directions the model is constrained to (monotonic constraints):")
        lines.append("")
        for c in constraints:
            where = f"{c['feature']} = '{c['category']}'" if "category" in c else c["feature"]
            lines.append(f"- {where}: {c['direction']} — {c['source']}")
    else:
        lines.append("No direction constraints (no established direction for these inputs).")
    cost = extra.get("constraint_cost", {})
    if cost:
        lines += ["", "Served model minus each reference on the test split (paired bootstrap 95 % interval):", ""]
        for ref, d in cost.items():
            lines.append(
                f"- vs {ref}: {d['metric']} {d['served']:.4g} vs {d['reference']:.4g}, "
                f"difference {d['difference']:+.4g} {_interval(d['ci95'])}"
            )
    calibration = extra.get("calibration")
    if calibration:
        test = calibration["test_split"]
        lines += [
            "",
            f"Calibration on the test split (n={test['n']}; bootstrap 95 % intervals); "
            f"diagram: [{calibration['reliability_diagram']}]({calibration['reliability_diagram']})"
            + (
                "; log-odds recalibrated (out-of-fold slope interval excluded 1 and it helped on held-out folds)"
                if extra.get("recalibrated")
                else ""
            ),
            "",
            "| class | calibration slope | calibration intercept | ECE | Brier score |",
            "|---|---|---|---|---|",
        ]
        if "per_class" in test:
            lines += [_calibration_row(k, v) for k, v in test["per_class"].items()]
        else:
            lines.append(_calibration_row(card.output.get("positive_class") or "positive", test))
    ood = extra.get("out_of_distribution")
    if ood:
        lines += [
            "",
            f"Out-of-distribution warnings (ood_percentile > {ood['warning_above_percentile']}): training rows "
            f"{ood['training_rate']:.1%}, test rows {ood['test_rate']:.1%}, shifted rows {ood['shifted_rate']:.1%} "
            f"({ood['shifted_rows']}).",
        ]
    explanation = extra["explanation"]
    lines += [
        "",
        f"Explanations: {explanation['method']}; scale: {explanation['scale']}; baseline: {explanation['baseline']}.",
    ]
    return lines
