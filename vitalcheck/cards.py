"""Model cards: the JSON document written beside every artifact, and its checksum gate.

Training writes one card per artifact (``<artifact stem>.card.json``); ``import_models.py``
and the service read it back, check the artifact's sha256 against it *before* the
artifact is unpickled, and serve its metrics, feature ranges and baselines.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from vitalcheck.errors import ArtifactCheckError  # defined with every error class; imported from here too

INTENDED_USE = "Research and education; not a medical device."


class CardFeature(BaseModel):
    """One raw input feature as recorded at training time."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="snake_case column name the pipeline expects.")
    type: str = Field(description="number, integer, boolean or category.")
    unit: str = Field("", description="Unit of measurement; empty when unitless.")
    description: str = Field(description="What the feature measures.")
    source_column: str = Field(description="Column of the shared data set it comes from.")
    valid_min: float | None = Field(None, description="Smallest value the API accepts.")
    valid_max: float | None = Field(None, description="Largest value the API accepts.")
    categories: list[str] = Field(default_factory=list, description="Allowed values of a category feature.")
    nullable: bool = Field(False, description="Whether a missing value is accepted (imputed by the pipeline).")
    train_min: float | None = Field(None, description="Smallest non-missing value seen in training rows.")
    train_max: float | None = Field(None, description="Largest non-missing value seen in training rows.")
    train_categories: list[str] = Field(default_factory=list, description="Categories seen in training rows.")
    baseline: Any = Field(None, description="A typical training value (median, or mode for categories), for reference.")


class CardDataset(BaseModel):
    """The data set a model was trained and tested on."""

    model_config = ConfigDict(extra="forbid")

    file: str = Field(description="Path of the file relative to the data directory.")
    rows_total: int = Field(description="Rows in the file after parsing.")
    rows_train: int = Field(description="Rows used for fitting (including any calibration rows).")
    rows_test: int = Field(description="Rows held out for the reported test metrics.")
    provenance: str = Field(description="Original source of the data.")
    licence: str = Field(description="Licence of the data.")


class ModelCard(BaseModel):
    """The JSON model card written beside every artifact."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    name: str = Field(description="Short model name (catalog key), e.g. 'diabetes'.")
    task: str = Field(description="What is predicted.")
    artifact: str = Field(description="Artifact file name.")
    sha256: str = Field(description="sha256 of the artifact file (hex).")
    framework: str = Field(description="'scikit-learn' or 'onnx'.")
    framework_versions: dict[str, str] = Field(
        description="Library versions the artifact was built with (scikit-learn, numpy, torch, onnx, …)."
    )
    training_code_revision: str = Field(description="git revision of the training code ('unknown' outside git).")
    trained_at: str = Field(description="UTC ISO-8601 time of training.")
    estimator: str = Field(description="The chosen estimator, in words.")
    candidates: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="Validation metrics of every estimator compared, by name."
    )
    features: list[CardFeature] = Field(default_factory=list, description="Raw inputs, in pipeline order.")
    output: dict[str, Any] = Field(description="Meaning, unit and class order of the output.")
    dataset: CardDataset
    split: str = Field(description="The split protocol, in words.")
    metrics: dict[str, float] = Field(description="Test-split metrics of the chosen model.")
    baseline_metrics: dict[str, float] = Field(
        description="The same metrics for the trivial baseline (majority class / mean predictor)."
    )
    extra: dict[str, Any] = Field(
        default_factory=dict, description="Task-specific facts (e.g. leave-one-site-out AUC)."
    )
    golden: list[dict[str, Any]] = Field(
        default_factory=list,
        description="A few real inputs with the outputs the artifact gave at training time (start-up self-check).",
    )
    intended_use: str = Field(INTENDED_USE, description="Intended use.")


@dataclass(frozen=True)
class StoredArtifact:
    """Where one model's artifact and card lie (a BentoML model-store entry, or a plain folder).

    Attributes:
        directory: folder holding the artifact and its ``.card.json``.
        tag: model-store tag reported in responses (``vitalcheck-diabetes:<version>``).

    """

    directory: Path
    tag: str


def sha256_file(path: str | Path) -> str:
    """Return the hex sha256 of a file, read in 1 MiB chunks.

    Raises:
        FileNotFoundError: the file does not exist.

    """
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_card(card_path: str | Path) -> ModelCard:
    """Read and validate a model card.

    Raises:
        ArtifactCheckError: the card is missing or does not validate (message names the file).

    """
    card_path = Path(card_path)
    if not card_path.is_file():
        raise ArtifactCheckError(f"model card {card_path} is missing")
    try:
        return ModelCard.model_validate_json(card_path.read_bytes())
    except ValueError as exc:
        raise ArtifactCheckError(f"model card {card_path} does not validate: {exc}") from exc


def verify_artifact(artifact_path: str | Path, card_path: str | Path) -> ModelCard:
    """Check an artifact against its card before anything loads it.

    Returns:
        The validated card.

    Raises:
        ArtifactCheckError: the artifact or card is missing, the card is invalid, or the
            artifact's sha256 differs from the card's (message names the file).

    """
    artifact_path = Path(artifact_path)
    card = load_card(card_path)
    if not artifact_path.is_file():
        raise ArtifactCheckError(f"artifact {artifact_path} is missing")
    actual = sha256_file(artifact_path)
    if actual != card.sha256:
        raise ArtifactCheckError(
            f"artifact {artifact_path} does not match its model card: sha256 {actual[:12]}… != {card.sha256[:12]}…"
        )
    return card


CURRENT_TABULAR_FORMAT = "explanation"
"""Card ``extra`` key that tabular cards of this VitalCheck version have (the additive models with exact SHAP)."""


def stale_artifacts(directory: str | Path) -> list[str]:
    """Catalog artifacts in ``directory`` that are missing, or tabular ones built by an older VitalCheck.

    Returns:
        Their artifact file names (empty when every artifact is present and current).

    """
    import json

    from vitalcheck.catalog import MODELS

    directory = Path(directory)
    stale = []
    for spec in MODELS.values():
        artifact, card = directory / spec.artifact, directory / spec.card_file
        if not artifact.is_file() or not card.is_file():
            stale.append(spec.artifact)
        elif spec.kind != "onnx_image" and CURRENT_TABULAR_FORMAT not in json.loads(card.read_text()).get("extra", {}):
            stale.append(spec.artifact)
    return stale
