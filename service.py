"""VitalCheck: one BentoML service serving eight health-risk models and two reference tables.

Every model is referenced at class level with ``bentoml.models.BentoModel`` (so
``bentoml build`` packs it); ``__init__`` loads everything once per worker through
:class:`vitalcheck.registry.Registry`, which checks each artifact's sha256, library
versions and golden outputs. Each API method delegates to :class:`vitalcheck.api.VitalCheckAPI`.

This module imports only BentoML, pydantic and the request schemas, so ``bentoml serve``'s
serving process stays small. Before it spawns any worker, the ``@bentoml.on_deployment`` hook
:meth:`VitalCheck.check_artifacts` checks every artifact and table, golden outputs included, in
a child process, and refuses to start (exit status 1, one line per failed artifact) if any fails;
that check also unpickles each tabular artifact and compares its compiled form with it. A worker
serves the compiled forms (:mod:`vitalcheck.compiled`) and imports pandas and ONNX Runtime, once, in
``__init__``, but not scikit-learn.

Settings are read once, here (:data:`SETTINGS`), and handed to everything else.

Research and education only; not a medical device.
"""

import functools
import gc
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import bentoml
from bentoml.models import BentoModel

from vitalcheck.cards import ArtifactCheckError, StoredArtifact
from vitalcheck.catalog import (
    BRAIN_TUMOR,
    BREAST_CANCER,
    DIABETES,
    HEART,
    INSURANCE,
    LIFE_EXPECTANCY,
    MODELS,
    SLEEP,
    STROKE,
)
from vitalcheck.compat import (
    api_routes,
    install_connection_deadlines,
    install_error_boundary,
    install_log_redaction,
    install_metrics_path_labels,
    install_upload_guard,
)
from vitalcheck.microbatch import MicroBatcher
from vitalcheck.middleware import RequestGuard
from vitalcheck.preflight import check_before_workers, refuse_to_start
from vitalcheck.redaction import Redactor, ignore_client_trace_context
from vitalcheck.schemas import INPUT_MODELS
from vitalcheck.schemas.breast_cancer import BreastCancerInput
from vitalcheck.schemas.common import (
    Batch,
    BatchEnvelope,
    ClassPrediction,
    Envelope,
    RiskPrediction,
    batch_input_model,
)
from vitalcheck.schemas.diabetes import DiabetesInput
from vitalcheck.schemas.fitbit import FitbitInput, FitbitPrediction
from vitalcheck.schemas.heart import HeartInput
from vitalcheck.schemas.hospital import HospitalAnalytics, HospitalQuery
from vitalcheck.schemas.insurance import InsuranceInput, InsurancePrediction
from vitalcheck.schemas.life_expectancy import LifeExpectancyInput, LifeExpectancyPrediction
from vitalcheck.schemas.models import ModelList
from vitalcheck.schemas.sleep import SleepInput
from vitalcheck.schemas.stroke import StrokeInput
from vitalcheck.settings import get_settings
from vitalcheck.threads import size_thread_pools

if TYPE_CHECKING:
    from vitalcheck.registry import Registry

SETTINGS = get_settings()
"""The one settings object, read from the environment at import and handed to everything below."""

logger = logging.getLogger("vitalcheck")
logger.setLevel(SETTINGS.log_level)
install_log_redaction()
ignore_client_trace_context(SETTINGS.accept_trace_context)
install_upload_guard()
install_error_boundary()
install_connection_deadlines(SETTINGS.header_timeout_s, SETTINGS.keepalive_timeout_s)

NO_TOKEN_WARNING = (
    "VITALCHECK_API_TOKEN is not set: every endpoint answers without authentication "
    "(set a token of at least 16 characters on anything but a private loopback)"
)

MODEL_REFS = {name: BentoModel(f"{spec.store_name}:latest") for name, spec in MODELS.items()}
"""The eight model-store references, by catalog name."""

if TYPE_CHECKING:  # the type checker sees plain batches; the service gets the generated models
    DiabetesBatch = Batch[DiabetesInput]
    HeartBatch = Batch[HeartInput]
    StrokeBatch = Batch[StrokeInput]
    BreastCancerBatch = Batch[BreastCancerInput]
    SleepBatch = Batch[SleepInput]
    LifeExpectancyBatch = Batch[LifeExpectancyInput]
    InsuranceBatch = Batch[InsuranceInput]
else:
    _MAX = SETTINGS.max_batch_records
    DiabetesBatch = batch_input_model(DiabetesInput, "DiabetesBatchInput", _MAX)
    HeartBatch = batch_input_model(HeartInput, "HeartBatchInput", _MAX)
    StrokeBatch = batch_input_model(StrokeInput, "StrokeBatchInput", _MAX)
    BreastCancerBatch = batch_input_model(BreastCancerInput, "BreastCancerBatchInput", _MAX)
    SleepBatch = batch_input_model(SleepInput, "SleepBatchInput", _MAX)
    LifeExpectancyBatch = batch_input_model(LifeExpectancyInput, "LifeExpectancyBatchInput", _MAX)
    InsuranceBatch = batch_input_model(InsuranceInput, "InsuranceBatchInput", _MAX)


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

    return Registry.load(stored_locations(), SETTINGS.reference_dir, SETTINGS)


_ERRORS = (
    ' Errors, all as `{"error": ..., "detail": [{"type", "loc", "msg"}]}` naming the field and the rule '
    "(never the submitted value): 400 invalid input, 413 body or uploaded file over its limit, 500 server error."
)


def describe(how: str):
    """Append shared text (how to call, errors) to an endpoint's docstring, its OpenAPI description.

    Apply below ``@bentoml.api``, which reads the docstring.
    """

    def decorate(method):
        method.__doc__ = f"{method.__doc__} {how}{_ERRORS}"
        return method

    return decorate


SINGLE = (
    "Send one record (JSON object with the fields below). Concurrent requests are scored together in one "
    "vectorised call; each answer is the one the record gets alone."
)
BATCH = (
    'Send `{"records": [...]}`; one prediction per record, in order. Records are checked 50 at a time and '
    "checking stops at the first block with an error."
)
FILE = (
    "Upload (multipart field `file`) a CSV or Parquet file in the shared data set's own format (source column "
    "names; the target column may be absent)."
)


@bentoml.service(
    name="vitalcheck", workers=SETTINGS.worker_count(), traffic={"timeout": 30}, labels={"project": "vitalcheck"}
)
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

    @bentoml.on_deployment
    def check_artifacts() -> None:
        """Before any worker starts: refuse to start (exit 1, naming each failure) unless everything loads.

        ``VITALCHECK_SKIP_PREFLIGHT=1`` skips it (each worker still loads and checks everything).
        Without ``VITALCHECK_API_TOKEN`` it logs a warning: every endpoint is then open.
        """
        if SETTINGS.api_token is None:
            logger.warning(NO_TOKEN_WARNING)
        if os.environ.get("VITALCHECK_SKIP_PREFLIGHT") != "1":
            size_thread_pools(SETTINGS.compute_threads)
            check_before_workers(stored_locations(), SETTINGS.reference_dir)

    def __init__(self) -> None:
        size_thread_pools(SETTINGS.compute_threads)  # before NumPy and OpenMP load
        started = time.perf_counter()
        try:
            registry = load_registry()
        except ArtifactCheckError as exc:
            refuse_to_start(exc)
        from vitalcheck.api import VitalCheckAPI

        self.api = VitalCheckAPI(registry, SETTINGS, INPUT_MODELS)
        self.batchers: dict[str, MicroBatcher] = {
            name: MicroBatcher(
                functools.partial(self.api.single_many, name),
                max_batch=SETTINGS.microbatch_max_records,
                observe=microbatch_size_histogram().labels(model=name).observe,
            )
            for name in registry.tabular
        }
        # The loaded state lives as long as the worker: moved out of the collector's generations, a
        # full collection no longer rescans it (one took ~150 ms in the middle of a batch request).
        gc.collect()
        gc.freeze()
        tags = ", ".join([*(p.info.tag for p in registry.tabular.values()), registry.brain_tumor.info.tag])
        logger.info("loaded 8 models (%s) and 2 tables in %.2f s", tags, time.perf_counter() - started)

    # ---- diabetes ----
    @bentoml.api(route=DIABETES.route)
    @describe(SINGLE)
    async def diabetes(self, record: DiabetesInput, /) -> Envelope[RiskPrediction]:
        """Diabetes risk within five years (Pima Indians data)."""
        return await self.batchers["diabetes"].submit(record)

    @bentoml.api(route=DIABETES.route + "/batch")
    @describe(BATCH)
    def diabetes_batch(self, batch: DiabetesBatch, /) -> BatchEnvelope[RiskPrediction]:
        """Diabetes risk within five years (Pima Indians data)."""
        return self.api.batch("diabetes", batch.records)

    @bentoml.api(route=DIABETES.route + "/file")
    @describe(FILE)
    def diabetes_file(self, file: Path) -> BatchEnvelope[RiskPrediction]:
        """Diabetes risk within five years (Pima Indians data)."""
        return self.api.file("diabetes", file)

    # ---- heart ----
    @bentoml.api(route=HEART.route)
    @describe(SINGLE)
    async def heart(self, record: HeartInput, /) -> Envelope[RiskPrediction]:
        """Risk of angiographic heart disease (UCI Heart Disease)."""
        return await self.batchers["heart"].submit(record)

    @bentoml.api(route=HEART.route + "/batch")
    @describe(BATCH)
    def heart_batch(self, batch: HeartBatch, /) -> BatchEnvelope[RiskPrediction]:
        """Risk of angiographic heart disease (UCI Heart Disease)."""
        return self.api.batch("heart", batch.records)

    @bentoml.api(route=HEART.route + "/file")
    @describe(FILE)
    def heart_file(self, file: Path) -> BatchEnvelope[RiskPrediction]:
        """Risk of angiographic heart disease (UCI Heart Disease)."""
        return self.api.file("heart", file)

    # ---- stroke ----
    @bentoml.api(route=STROKE.route)
    @describe(SINGLE)
    async def stroke(self, record: StrokeInput, /) -> Envelope[RiskPrediction]:
        """Stroke risk (Kaggle Stroke Prediction data)."""
        return await self.batchers["stroke"].submit(record)

    @bentoml.api(route=STROKE.route + "/batch")
    @describe(BATCH)
    def stroke_batch(self, batch: StrokeBatch, /) -> BatchEnvelope[RiskPrediction]:
        """Stroke risk (Kaggle Stroke Prediction data)."""
        return self.api.batch("stroke", batch.records)

    @bentoml.api(route=STROKE.route + "/file")
    @describe(FILE)
    def stroke_file(self, file: Path) -> BatchEnvelope[RiskPrediction]:
        """Stroke risk (Kaggle Stroke Prediction data)."""
        return self.api.file("stroke", file)

    # ---- breast_cancer ----
    @bentoml.api(route=BREAST_CANCER.route)
    @describe(SINGLE)
    async def breast_cancer(self, record: BreastCancerInput, /) -> Envelope[RiskPrediction]:
        """Probability that a fine-needle aspirate is malignant (Wisconsin Diagnostic Breast Cancer)."""
        return await self.batchers["breast_cancer"].submit(record)

    @bentoml.api(route=BREAST_CANCER.route + "/batch")
    @describe(BATCH)
    def breast_cancer_batch(self, batch: BreastCancerBatch, /) -> BatchEnvelope[RiskPrediction]:
        """Probability that a fine-needle aspirate is malignant (Wisconsin Diagnostic Breast Cancer)."""
        return self.api.batch("breast_cancer", batch.records)

    @bentoml.api(route=BREAST_CANCER.route + "/file")
    @describe(FILE)
    def breast_cancer_file(self, file: Path) -> BatchEnvelope[RiskPrediction]:
        """Probability that a fine-needle aspirate is malignant (Wisconsin Diagnostic Breast Cancer)."""
        return self.api.file("breast_cancer", file)

    # ---- sleep ----
    @bentoml.api(route=SLEEP.route)
    @describe(SINGLE)
    async def sleep(self, record: SleepInput, /) -> Envelope[ClassPrediction]:
        """Sleep disorder class: None, Insomnia or Sleep Apnea."""
        return await self.batchers["sleep"].submit(record)

    @bentoml.api(route=SLEEP.route + "/batch")
    @describe(BATCH)
    def sleep_batch(self, batch: SleepBatch, /) -> BatchEnvelope[ClassPrediction]:
        """Sleep disorder class: None, Insomnia or Sleep Apnea."""
        return self.api.batch("sleep", batch.records)

    @bentoml.api(route=SLEEP.route + "/file")
    @describe(FILE)
    def sleep_file(self, file: Path) -> BatchEnvelope[ClassPrediction]:
        """Sleep disorder class: None, Insomnia or Sleep Apnea."""
        return self.api.file("sleep", file)

    # ---- life_expectancy ----
    @bentoml.api(route=LIFE_EXPECTANCY.route)
    @describe(SINGLE)
    async def life_expectancy(self, record: LifeExpectancyInput, /) -> Envelope[LifeExpectancyPrediction]:
        """Life expectancy at birth of a country-year, in years (WHO GHO data)."""
        return await self.batchers["life_expectancy"].submit(record)

    @bentoml.api(route=LIFE_EXPECTANCY.route + "/batch")
    @describe(BATCH)
    def life_expectancy_batch(self, batch: LifeExpectancyBatch, /) -> BatchEnvelope[LifeExpectancyPrediction]:
        """Life expectancy at birth of a country-year, in years (WHO GHO data)."""
        return self.api.batch("life_expectancy", batch.records)

    @bentoml.api(route=LIFE_EXPECTANCY.route + "/file")
    @describe(FILE)
    def life_expectancy_file(self, file: Path) -> BatchEnvelope[LifeExpectancyPrediction]:
        """Life expectancy at birth of a country-year, in years (WHO GHO data)."""
        return self.api.file("life_expectancy", file)

    # ---- insurance ----
    @bentoml.api(route=INSURANCE.route)
    @describe(SINGLE)
    async def insurance(self, record: InsuranceInput, /) -> Envelope[InsurancePrediction]:
        """Annual medical charges in USD with a calibrated 90 % interval."""
        return await self.batchers["insurance"].submit(record)

    @bentoml.api(route=INSURANCE.route + "/batch")
    @describe(BATCH)
    def insurance_batch(self, batch: InsuranceBatch, /) -> BatchEnvelope[InsurancePrediction]:
        """Annual medical charges in USD with a calibrated 90 % interval."""
        return self.api.batch("insurance", batch.records)

    @bentoml.api(route=INSURANCE.route + "/file")
    @describe(FILE)
    def insurance_file(self, file: Path) -> BatchEnvelope[InsurancePrediction]:
        """Annual medical charges in USD with a calibrated 90 % interval."""
        return self.api.file("insurance", file)

    # ---- imaging, reference tables, models ----
    @bentoml.api(route=BRAIN_TUMOR.route)
    async def brain_tumor(self, image: Path) -> Envelope[ClassPrediction]:
        """Classify one axial brain MRI slice as glioma, meningioma, pituitary tumour or no tumour.

        Upload a JPEG or PNG (any size and mode: grayscale, RGB, RGBA, 16-bit) as multipart
        field `image`, at most VITALCHECK_MAX_UPLOAD_BYTES bytes and VITALCHECK_MAX_IMAGE_PIXELS
        pixels. Returns the probability of each class and the most probable class.
        Errors: HTTP 400 naming `image` and the rule (not an image, too many pixels, not an MRI slice);
        413 for a file over VITALCHECK_MAX_UPLOAD_BYTES.
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


ROUTES, FIELD_NAMES = api_routes(VitalCheck, SETTINGS)
"""Each API route's request media type and body limit, and every documented request field name (what errors may name)."""
# @bentoml.service returns a bentoml.Service; its type hints still describe the class.
VitalCheck.add_asgi_middleware(RequestGuard, routes=ROUTES, field_names=FIELD_NAMES, settings=SETTINGS)  # type: ignore[attr-defined]
install_log_redaction(Redactor(FIELD_NAMES, [*ROUTES, *RequestGuard.open_path_set()]))
install_metrics_path_labels([*ROUTES, *RequestGuard.open_path_set()])
