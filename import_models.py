"""Register VitalCheck's eight artifacts in the BentoML model store.

For each model of the catalog: verify the artifact's sha256 against its model card (a
missing, corrupt or mismatched artifact is refused with a non-zero exit and a message
naming the file), then save artifact + card with ``bentoml.models.create`` under a stable
name (``vitalcheck-diabetes``, …) with labels (task, framework) and the card as metadata.
A tabular artifact is stored with its compiled serving form (``<stem>.compiled.npz``,
:mod:`vitalcheck.compiled`), built here from the pickle after every start-up check of
:meth:`~vitalcheck.predictors.tabular.TabularPredictor.load` has passed on it.
Idempotent: an artifact whose sha256 equals that of the latest stored version, stored with a
current compiled form, is not registered again (``--force`` re-registers). Prints the tags.

Usage::

    python import_models.py [--artifacts-dir artifacts] [--dry-run] [--force]
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import bentoml

from vitalcheck.cards import ArtifactCheckError, ModelCard, verify_artifact
from vitalcheck.catalog import MODELS, TABULAR_MODELS, ModelSpec
from vitalcheck.compiled import CompiledModel
from vitalcheck.settings import get_settings


def latest_sha256(spec: ModelSpec) -> str | None:
    """sha256 recorded on the latest stored version of a model, or None when there is none.

    Also None when a tabular model's stored version lacks a readable compiled form of the
    current layout (stored by an older VitalCheck): it is then registered again.
    """
    try:
        model = bentoml.models.get(f"{spec.store_name}:latest")
    except bentoml.exceptions.NotFound:
        return None
    if spec.name in TABULAR_MODELS:
        try:
            CompiledModel.load(Path(model.path) / spec.compiled_file)
        except (OSError, ValueError, KeyError):
            return None
    return model.info.metadata.get("sha256")


def compiled_form(spec: ModelSpec, artifacts_dir: Path) -> CompiledModel:
    """The compiled form of a tabular artifact, compiled from its pickle, with the pickle's answers recorded.

    Every check of the check before workers passes on it first (``check_pickle``).

    Raises:
        ArtifactCheckError: the artifact fails a start-up check or does not compile.

    """
    from vitalcheck.predictors.tabular import TabularPredictor  # the scientific stack, tabular models only

    return TabularPredictor.load(spec, artifacts_dir, f"{spec.store_name}:import", check_pickle=True).compiled


def register(spec: ModelSpec, artifacts_dir: Path, card: ModelCard, compiled: CompiledModel | None = None) -> str:
    """Save one checked artifact, its card and its checked compiled form (tabular) in the model store; return the tag."""
    labels = {"task": spec.kind, "framework": card.framework, "project": "vitalcheck"}
    metadata = _without_nulls(card.model_dump(mode="json", exclude={"golden", "features", "candidates", "extra"}))
    with bentoml.models.create(spec.store_name, labels=labels, metadata=metadata) as model:
        shutil.copy2(artifacts_dir / spec.artifact, Path(model.path) / spec.artifact)
        shutil.copy2(artifacts_dir / spec.card_file, Path(model.path) / spec.card_file)
        if compiled is not None:
            compiled.save(Path(model.path) / spec.compiled_file)
    return str(model.tag)


def _without_nulls(value):
    """Drop None entries recursively (BentoML metadata holds basic types only)."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value if v is not None]
    return value


def main(argv: list[str] | None = None) -> int:
    """Check and register every artifact; return the process exit status (0 ok, 1 refused)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--artifacts-dir", type=Path, default=get_settings().artifacts_dir)
    parser.add_argument("--dry-run", action="store_true", help="check only; register nothing")
    parser.add_argument("--force", action="store_true", help="register even when the latest version is identical")
    args = parser.parse_args(argv)

    checked: dict[str, ModelCard] = {}
    compiled: dict[str, CompiledModel | None] = {}
    refused = []
    for spec in MODELS.values():
        try:
            checked[spec.name] = verify_artifact(
                args.artifacts_dir / spec.artifact, args.artifacts_dir / spec.card_file
            )
            new = args.force or latest_sha256(spec) != checked[spec.name].sha256
            tabular = spec.name in TABULAR_MODELS
            compiled[spec.name] = compiled_form(spec, args.artifacts_dir) if new and tabular else None
        except ArtifactCheckError as exc:
            refused.append(str(exc))
    if refused:
        for reason in refused:
            print(f"refused: {reason}", file=sys.stderr)
        print("nothing was registered; rebuild the artifacts with `make models`", file=sys.stderr)
        return 1

    for spec in MODELS.values():
        card = checked[spec.name]
        if not args.force and latest_sha256(spec) == card.sha256:
            print(f"unchanged  {bentoml.models.get(f'{spec.store_name}:latest').tag}")
        elif args.dry_run:
            print(f"would add  {spec.store_name} (sha256 {card.sha256[:12]})")
        else:
            print(f"registered {register(spec, args.artifacts_dir, card, compiled[spec.name])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
