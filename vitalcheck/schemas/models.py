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


class ModelList(BaseModel):
    """Every served model and reference table."""

    api_version: str = Field(API_VERSION, description="VitalCheck API version.")
    models: list[ServedModel] = Field(description="The eight served models.")
    reference_tables: dict[str, dict[str, Any]] = Field(description="The two reference tables: file, rows, source.")
