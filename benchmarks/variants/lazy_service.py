"""Prototype for start-up time: a VitalCheck whose serving (arbiter) process stays light.

``bentoml serve`` imports the service module in its serving process, then starts each worker
as a fresh Python process that imports it again. The shipped ``service.py`` imports the whole
scientific stack at module level (scikit-learn pulls in SciPy; pandas, pyarrow, ONNX Runtime)
and its pre-flight check loads and checks the whole registry in the serving process, so the
server pays imports + registry twice, one after the other, before the worker can answer.

Here the serving process imports only BentoML, the catalog, the cards and the request schemas,
and its pre-flight check is the cheap half of the shipped one: every artifact's sha256 against
its card, the scikit-learn version the card names against the installed one (read from package
metadata, without importing scikit-learn), and the two tables' presence. Missing, corrupt and
mismatched artifacts are still refused before any worker is spawned. The expensive half
(unpickling, golden outputs, ONNX session) runs once, in the worker, exactly as shipped
(``service.load_registry``); a failure there still stops the whole server
(``service.refuse_to_start``).

It serves only the diabetes endpoint (enough to time start-up and answer a request); it loads
all eight models and both tables like the shipped service.
"""

from vitalcheck import threads  # noqa: F401  (first: sizes thread pools before NumPy/OpenMP load)

# isort: split
import sys
from importlib.metadata import version
from pathlib import Path

import bentoml
from bentoml.models import BentoModel

from vitalcheck.cards import ArtifactCheckError, verify_artifact
from vitalcheck.catalog import MODELS, REFERENCE_TABLES
from vitalcheck.schemas import diabetes
from vitalcheck.schemas.common import Envelope, RiskPrediction
from vitalcheck.settings import get_settings

MODEL_REFS = {name: BentoModel(f"{spec.store_name}:latest") for name, spec in MODELS.items()}


def light_preflight() -> list[str]:
    """The cheap checks, in the serving process: sha256 vs card, scikit-learn version, tables present.

    Returns:
        One message per failed artifact (empty when all pass).

    """
    failures, installed = [], version("scikit-learn")
    for name, spec in MODELS.items():
        stored = MODEL_REFS[name].stored
        if stored is None:
            failures.append(f"model {name} is not in the BentoML model store")
            continue
        try:
            card = verify_artifact(Path(stored.path) / spec.artifact, Path(stored.path) / spec.card_file)
        except ArtifactCheckError as exc:
            failures.append(str(exc))
            continue
        trained_with = card.framework_versions.get("scikit-learn")
        if card.framework == "scikit-learn" and trained_with != installed:
            failures.append(f"artifact {spec.artifact} was built with scikit-learn {trained_with}, not {installed}")
    for table in REFERENCE_TABLES.values():
        if not (get_settings().reference_dir / table).is_file():
            failures.append(f"reference table {table} is missing")
    return failures


@bentoml.service(name="vitalcheck", traffic={"timeout": 30}, labels={"project": "vitalcheck"})
class LazyImports:
    """VitalCheck start-up prototype: light serving process, full loading in each worker."""

    diabetes_model = MODEL_REFS["diabetes"]
    heart_model = MODEL_REFS["heart"]
    stroke_model = MODEL_REFS["stroke"]
    breast_cancer_model = MODEL_REFS["breast_cancer"]
    sleep_model = MODEL_REFS["sleep"]
    life_expectancy_model = MODEL_REFS["life_expectancy"]
    insurance_model = MODEL_REFS["insurance"]
    brain_tumor_model = MODEL_REFS["brain_tumor"]

    def __init__(self) -> None:
        import service  # the whole stack, in the worker only

        try:
            registry = service.load_registry()
        except ArtifactCheckError as exc:
            service.refuse_to_start(exc)
        from vitalcheck.api import VitalCheckAPI

        self.api = VitalCheckAPI(registry, get_settings(), service.INPUT_MODELS)

    @bentoml.api(route="/api/v1/risk/diabetes")
    def diabetes(self, record: diabetes.DiabetesInput, /) -> Envelope[RiskPrediction]:
        """Diabetes risk (the one endpoint this start-up prototype serves)."""
        return self.api.single("diabetes", record)


if "serve" in sys.argv[1:3] and Path(sys.argv[0]).name in ("bentoml", "__main__.py"):
    from bentoml._internal.context import server_context

    if server_context.worker_index is None and (problems := light_preflight()):
        print("VitalCheck refuses to start: " + "; ".join(problems), file=sys.stderr)
        raise SystemExit(1)
