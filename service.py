"""VitalCheck: one BentoML service serving eight health-risk models and two reference tables.

Every model is referenced at class level with ``bentoml.models.BentoModel`` (so
``bentoml build`` packs it); ``__init__`` loads everything once per worker through
:class:`vitalcheck.registry.Registry`, which checks each artifact's sha256, library
versions and golden outputs. Each API method delegates to :class:`vitalcheck.api.VitalCheckAPI`.

The serving process that ``bentoml serve`` starts first stays light: it imports only BentoML,
pydantic and the request schemas, and its :func:`preflight` checks every artifact's sha256 and
scikit-learn version and both reference tables before any worker starts. The scientific stack
(scikit-learn, pandas, ONNX Runtime) is imported, and the models unpickled and checked against
their golden outputs, once per worker, in ``__init__``.

Research and education only; not a medical device.
"""

from vitalcheck import threads  # noqa: F401  (first: sizes thread pools before NumPy/OpenMP load)

# isort: split
import functools
import logging
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import bentoml
from bentoml.models import BentoModel

from vitalcheck.cards import ArtifactCheckError, StoredArtifact
from vitalcheck.catalog import MODELS
from vitalcheck.compat import api_routes, install_connection_deadlines, install_metrics_path_labels
from vitalcheck.microbatch import MicroBatcher
from vitalcheck.middleware import RequestGuard
from vitalcheck.preflight import check_before_workers, refuse_to_start
from vitalcheck.redaction import Redactor, ignore_client_trace_context, install_log_redaction
from vitalcheck.schemas import INPUT_MODELS, insurance, life_expectancy
from vitalcheck.schemas.common import BatchEnvelope, ClassPrediction, Envelope, RiskPrediction
from vitalcheck.schemas.fitbit import FitbitInput, FitbitPrediction
from vitalcheck.schemas.hospital import HospitalAnalytics, HospitalQuery
from vitalcheck.schemas.models import ModelList
from vitalcheck.settings import get_settings
from vitalcheck.uploads import install_upload_guard

if TYPE_CHECKING:
    from vitalcheck.registry import Registry

logger = logging.getLogger("vitalcheck")
logger.setLevel(get_settings().log_level)
install_log_redaction()
ignore_client_trace_context(get_settings().accept_trace_context)
install_upload_guard()
install_connection_deadlines(get_settings().header_timeout_s, get_settings().keepalive_timeout_s)

MODEL_REFS = {name: BentoModel(f"{spec.store_name}:latest") for name, spec in MODELS.items()}
"""The eight model-store references, by catalog name."""


@functools.cache
def microbatch_size_histogram():
    """The ``vitalcheck_microbatch_size`` Prometheus histogram (label ``model``), shown on ``/metrics``.

    Created on first use in the worker, after BentoML has set up Prometheus' multiprocess mode.
    """
    import prometheus_client

    return prometheus_client.Histogram(
        "vitalcheck_microbatch_size",
        "Single-record requests scored together in one vectorised call, per model.",
        labelnames=["model"],
        buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
    )


_ERRORS = (
    ' Errors: HTTP 400 with `{"error": ..., "detail": [{"type", "loc", "msg"}]}` naming each bad field '
    "and its rule (never the submitted value)."
)


def stored_locations() -> dict[str, StoredArtifact | None]:
    """Catalog name → the model-store folder and tag of its latest version (None: not in the store)."""
    locations = {}
    for name, ref in MODEL_REFS.items():
        stored = ref.stored
        locations[name] = None if stored is None else StoredArtifact(Path(stored.path), str(stored.tag))
    return locations


def load_registry() -> "Registry":
    """Load the :class:`~vitalcheck.registry.Registry` from the model store and the reference directory.

    Imports the scientific stack (scikit-learn, pandas, ONNX Runtime) on first call.

    Raises:
        ArtifactCheckError: any artifact or table is missing or fails its checks.

    """
    from vitalcheck.registry import Registry

    settings = get_settings()
    return Registry.load(stored_locations(), settings.reference_dir, settings)


def _single(name: str, route: str, record_model, prediction_model, what: str):
    async def method(self, record: record_model, /) -> Envelope[prediction_model]:
        return await self.batchers[name].submit(record)

    method.__name__ = name
    method.__doc__ = (
        f"{what} Send one record (JSON object with the fields below). Concurrent requests are scored "
        f"together in one vectorised call; each answer is the one the record gets alone.{_ERRORS}"
    )
    return bentoml.api(route=route)(method)


def _batch(name: str, route: str, batch_model, prediction_model, what: str):
    def method(self, batch: batch_model, /) -> BatchEnvelope[prediction_model]:
        return self.api.batch(name, batch.records)

    method.__name__ = f"{name}_batch"
    method.__doc__ = f'{what} Send `{{"records": [...]}}`; one prediction per record, in order.{_ERRORS}'
    return bentoml.api(route=f"{route}/batch")(method)


def _file(name: str, route: str, prediction_model, what: str):
    def method(self, file: Path) -> BatchEnvelope[prediction_model]:
        return self.api.file(name, file)

    method.__name__ = f"{name}_file"
    method.__doc__ = (
        f"{what} Upload (multipart field `file`) a CSV or Parquet file in the shared data set's own format "
        f"(source column names; the target column may be absent).{_ERRORS}"
    )
    return bentoml.api(route=f"{route}/file")(method)


def _tabular(name: str, route: str, prediction_model, what: str):
    record_model = INPUT_MODELS[name]
    batch_model = getattr(sys.modules[record_model.__module__], record_model.__name__.replace("Input", "BatchInput"))
    return (
        _single(name, route, record_model, prediction_model, what),
        _batch(name, route, batch_model, prediction_model, what),
        _file(name, route, prediction_model, what),
    )


@bentoml.service(name="vitalcheck", workers=2, traffic={"timeout": 30}, labels={"project": "vitalcheck"})
class VitalCheck:
    """VitalCheck health-risk models (research and education; not a medical device)."""

    diabetes_model = MODEL_REFS["diabetes"]
    heart_model = MODEL_REFS["heart"]
    stroke_model = MODEL_REFS["stroke"]
    breast_cancer_model = MODEL_REFS["breast_cancer"]
    sleep_model = MODEL_REFS["sleep"]
    life_expectancy_model = MODEL_REFS["life_expectancy"]
    insurance_model = MODEL_REFS["insurance"]
    brain_tumor_model = MODEL_REFS["brain_tumor"]

    def __init__(self) -> None:
        settings = get_settings()
        started = time.perf_counter()
        try:
            registry = load_registry()
        except ArtifactCheckError as exc:
            refuse_to_start(exc)
        from vitalcheck.api import VitalCheckAPI

        self.api = VitalCheckAPI(registry, settings, INPUT_MODELS)
        self.batchers = {
            name: MicroBatcher(
                lambda records, name=name: self.api.single_many(name, records),
                max_batch=settings.microbatch_max_records,
                observe=microbatch_size_histogram().labels(model=name).observe,
            )
            for name in registry.tabular
        }
        tags = ", ".join(p.info.tag for p in [*registry.tabular.values(), registry.brain_tumor])
        logger.info("loaded 8 models (%s) and 2 tables in %.2f s", tags, time.perf_counter() - started)

    diabetes, diabetes_batch, diabetes_file = _tabular(
        "diabetes", "/api/v1/risk/diabetes", RiskPrediction, "Diabetes risk within five years (Pima Indians data)."
    )
    heart, heart_batch, heart_file = _tabular(
        "heart", "/api/v1/risk/heart", RiskPrediction, "Risk of angiographic heart disease (UCI Heart Disease)."
    )
    stroke, stroke_batch, stroke_file = _tabular(
        "stroke", "/api/v1/risk/stroke", RiskPrediction, "Stroke risk (Kaggle Stroke Prediction data)."
    )
    breast_cancer, breast_cancer_batch, breast_cancer_file = _tabular(
        "breast_cancer",
        "/api/v1/risk/breast-cancer",
        RiskPrediction,
        "Probability that a fine-needle aspirate is malignant (Wisconsin Diagnostic Breast Cancer).",
    )
    sleep, sleep_batch, sleep_file = _tabular(
        "sleep", "/api/v1/sleep", ClassPrediction, "Sleep disorder class: None, Insomnia or Sleep Apnea."
    )
    life_expectancy, life_expectancy_batch, life_expectancy_file = _tabular(
        "life_expectancy",
        "/api/v1/life-expectancy",
        life_expectancy.LifeExpectancyPrediction,
        "Life expectancy at birth of a country-year, in years (WHO GHO data).",
    )
    insurance, insurance_batch, insurance_file = _tabular(
        "insurance",
        "/api/v1/insurance",
        insurance.InsurancePrediction,
        "Annual medical charges in USD with a calibrated 90 % interval.",
    )

    @bentoml.api(route="/api/v1/imaging/brain-tumor")
    def brain_tumor(self, image: Path) -> Envelope[ClassPrediction]:
        """Classify one axial brain MRI slice as glioma, meningioma, pituitary tumour or no tumour.

        Upload a JPEG or PNG (any size and mode: grayscale, RGB, RGBA, 16-bit) as multipart
        field `image`, at most VITALCHECK_MAX_UPLOAD_BYTES bytes and VITALCHECK_MAX_IMAGE_PIXELS
        pixels. Returns the probability of each class and the most probable class.
        Errors: HTTP 400 naming `image` and the rule (not an image, too large, too many pixels).
        """
        return self.api.brain_tumor(image)

    @bentoml.api(route="/api/v1/fitbit/percentiles")
    def fitbit_percentiles(self, day: FitbitInput, /) -> Envelope[FitbitPrediction]:
        """Place a person's daily activity and sleep metrics within the Fitbit cohort.

        Send any of the metrics below (at least one); each comes back as a percentile rank
        0-100 across the cohort's user-days, with unit and cohort size.
        """
        return self.api.fitbit(day)

    @bentoml.api(route="/api/v1/hospital/analytics")
    def hospital_analytics(self, query: HospitalQuery, /) -> Envelope[HospitalAnalytics]:
        """Weekly hospital rows for a service and week range, with a summary.

        Rows give beds, requests, admissions, refusals, occupancy, satisfaction, staff morale,
        events, staff present by role and mean length of stay (Hospital Beds Management, synthetic).
        """
        return self.api.hospital(query)

    @bentoml.api(route="/api/v1/models")
    def models(self) -> ModelList:
        """Every served model's store tag, data set, test metrics (from its model card) and the API version."""
        return self.api.models()


ROUTES, FIELD_NAMES = api_routes(VitalCheck, get_settings())
"""Each API route's request media type and body limit, and every documented request field name (what errors may name)."""
VitalCheck.add_asgi_middleware(RequestGuard, routes=ROUTES, field_names=FIELD_NAMES)
install_log_redaction(Redactor(FIELD_NAMES, [*ROUTES, *RequestGuard.open_path_set()]))
install_metrics_path_labels([*ROUTES, *RequestGuard.open_path_set()])


def preflight() -> None:
    """Check every artifact and table in the serving (non-worker) process before workers start.

    ``bentoml serve`` imports this module in its main process before it spawns any worker;
    there :func:`~vitalcheck.preflight.check_before_workers` refuses (exit status 1, naming each
    failing artifact) to start a server that would be half-loaded. Golden outputs need the
    models unpickled: each worker checks them in ``__init__`` and
    :func:`~vitalcheck.preflight.refuse_to_start` stops the whole server (exit status 3).
    ``VITALCHECK_SKIP_PREFLIGHT=1`` skips the serving process's check (the workers' stays).
    """
    from bentoml._internal.context import server_context

    if server_context.worker_index is not None or os.environ.get("VITALCHECK_SKIP_PREFLIGHT") == "1":
        return
    check_before_workers(stored_locations(), get_settings().reference_dir)


if "serve" in sys.argv[1:3] and Path(sys.argv[0]).name in ("bentoml", "__main__.py"):
    preflight()
