"""Schema of the model listing (`GET /api/v1/models`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from vitalcheck.schemas.common import API_VERSION, ModelInfo


class ServedModel(BaseModel):
    """One served model with facts from its model card."""

    model_config = ConfigDict(protected_namespaces=())

    model: ModelInfo = Field(description="Name, model-store tag and artifact checksum.")
    task: str = Field(description="What the model predicts.")
    estimator: str = Field(description="The estimator or network, in words.")
    dataset: dict[str, Any] = Field(description="Data set file, row counts, provenance and licence.")
    split: str = Field(description="How the test split was made.")
    metrics: dict[str, float] = Field(description="Test-split metrics.")
    baseline_metrics: dict[str, float] = Field(description="The same metrics for the trivial baseline.")
    framework_versions: dict[str, str] = Field(description="Library versions the artifact was built with.")
    intended_use: str = Field(description="Intended use.")
    constraints: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Expected directions the model is constrained to: feature, (category), 'increasing' or "
        "'decreasing', and the source.",
    )
    constraint_cost: dict[str, Any] | None = Field(
        None,
        description="Test-split headline metric of the served model minus each reference model's (paired bootstrap "
        "95 % interval): what the directions and the additive form cost.",
    )
    calibration: dict[str, Any] | None = Field(
        None,
        description="Classifiers: test-split calibration slope and intercept with bootstrap 95 % intervals, expected "
        "calibration error, Brier score, and the reliability diagram (PNG, base64).",
    )
    recalibration: dict[str, Any] | None = Field(
        None, description="The log-odds recalibration applied (slope, intercept), when one was; else null."
    )
    out_of_distribution: dict[str, Any] | None = Field(
        None, description="How ood_percentile is computed and its warning rate on training, test and shifted rows."
    )
    explanation: dict[str, Any] | None = Field(
        None, description="The explanation method, its scale and baseline (tabular models)."
    )


class ModelList(BaseModel):
    """Every served model and reference table."""

    api_version: str = Field(API_VERSION, description="VitalCheck API version.")
    models: list[ServedModel] = Field(description="The eight served models.")
    reference_tables: dict[str, dict[str, Any]] = Field(description="The two reference tables: file, rows, source.")
