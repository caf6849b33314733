"""VitalCheck's one settings object, read from ``VITALCHECK_*`` environment variables or ``.env``."""

from __future__ import annotations

import math
import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Service and training settings. Every field can be set as ``VITALCHECK_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="VITALCHECK_", env_file=".env", extra="ignore")

    data_dir: Path = Field(
        PROJECT_ROOT.parent / "shared" / "datasets",
        description="Directory of the shared public data sets (training and evaluation only).",
    )
    artifacts_dir: Path = Field(
        PROJECT_ROOT / "artifacts",
        description="Where training writes pickles, the ONNX file and model cards; import_models.py reads it.",
    )
    reference_dir: Path = Field(
        PROJECT_ROOT / "reference",
        description="Directory holding fitbit_percentiles.parquet and hospital_analytics.parquet.",
    )
    onnx_intra_op_threads: int = Field(1, ge=1, le=64, description="ONNX Runtime intra-op thread count.")
    onnx_inter_op_threads: int = Field(1, ge=1, le=64, description="ONNX Runtime inter-op thread count.")
    risk_moderate_threshold: float = Field(
        0.2, gt=0, lt=1, description="Probability at or above which risk is 'moderate' (below it: 'low')."
    )
    risk_high_threshold: float = Field(0.5, gt=0, lt=1, description="Probability at or above which risk is 'high'.")
    max_batch_records: int = Field(10_000, ge=1, le=1_000_000, description="Most records one batch request may hold.")
    microbatch_max_records: int = Field(
        64,
        ge=1,
        le=1024,
        description="Most concurrent single-record requests of one model scored together in one vectorised call "
        "(1 turns micro-batching off). A lone request is never delayed.",
    )
    max_upload_bytes: int = Field(
        20 * 1024 * 1024, ge=1024, description="Largest accepted upload (image, CSV or Parquet file), in bytes."
    )
    max_upload_columns: int = Field(
        1000,
        ge=10,
        description="Most columns an uploaded CSV or Parquet file may have (checked before it is parsed).",
    )
    max_request_bytes: int = Field(
        25 * 1024 * 1024,
        ge=1024,
        description="Largest accepted request body, in bytes (answered 413 before it is parsed).",
    )
    max_batch_request_bytes: int = Field(
        16 * 1024 * 1024,
        ge=1024,
        description="Largest body of a JSON batch request (`.../batch`), in bytes (413 above it); "
        "10,000 records of the widest model take about 8 MiB.",
    )
    max_record_request_bytes: int = Field(
        64 * 1024,
        ge=1024,
        description="Largest body of any other JSON request (one record, a query), in bytes (413 above it); "
        "a record takes under 2 KiB.",
    )
    max_image_pixels: int = Field(
        4096 * 4096,
        ge=64 * 64,
        description="Largest accepted image, in pixels (width × height), checked before decoding. The memory "
        "decoding needs is bounded separately (vitalcheck.imaging.MAX_DECODED_BYTES, 40 MiB: a 4096×4096 "
        "grayscale image or any baseline JPEG passes, a 4096×4096 RGB(A) PNG does not).",
    )
    api_token: SecretStr | None = Field(
        None,
        min_length=16,
        description="When set, every endpoint except health (/livez, /readyz), /metrics and the docs page "
        "requires 'Authorization: Bearer <token>' (401 otherwise). At least 16 characters.",
    )
    max_header_bytes: int = Field(
        16 * 1024,
        ge=1024,
        le=1024 * 1024,
        description="Largest total size of a request's headers, in bytes (answered 431 above it).",
    )
    header_timeout_s: float = Field(
        10.0,
        gt=0,
        le=300,
        description="Seconds a connection may take to send a complete request line and headers, from its "
        "opening or its first byte after an answer; then it is closed (slow-header clients).",
    )
    keepalive_timeout_s: float = Field(
        5.0, gt=0, le=300, description="Seconds an idle keep-alive connection is kept open after an answer."
    )
    body_timeout_s: float = Field(
        15.0,
        gt=0,
        le=25,
        description="Seconds a request body may take to arrive in full (answered 408 above it); below the "
        "service's 30 s request timeout, so that a slow client gets 408 rather than 504.",
    )
    accept_trace_context: bool = Field(
        False,
        description="Whether a request's W3C trace context (traceparent, tracestate, baggage headers) is "
        "continued. Off: every request starts its own trace, so that no client-chosen id reaches the logs; "
        "turn on only behind a proxy that sets these headers itself.",
    )
    workers: int | None = Field(
        None,
        ge=1,
        le=64,
        description="Worker processes of `bentoml serve` (each loads every model, about 335 MB). Unset: "
        "the container's CPU limit (cgroup cpu.max, rounded up), else the machine's CPU count.",
    )
    compute_threads: int = Field(
        1, ge=1, le=64, description="Threads per worker for scikit-learn/OpenMP/BLAS (1 avoids oversubscription)."
    )
    log_level: str = Field("INFO", pattern="^(DEBUG|INFO|WARNING|ERROR|CRITICAL)$", description="Log level.")

    def worker_count(self) -> int:
        """Workers to start: ``workers`` if set, else the CPU limit of this container (or machine)."""
        return self.workers or cpu_limit()

    @model_validator(mode="after")
    def _thresholds_ordered(self) -> Settings:
        if self.risk_moderate_threshold >= self.risk_high_threshold:
            raise ValueError("risk_moderate_threshold must be below risk_high_threshold")
        return self


def cpu_limit(cgroup: Path = Path("/sys/fs/cgroup")) -> int:
    """CPUs this process may use: the cgroup v2 quota (``cpu.max``) rounded up, else the CPU count.

    A container limited to 2 CPUs on a 64-core node must not start 64 workers of 335 MB each.
    """
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = (cgroup / "cpu.max").read_text().split()[:2]
        if quota != "max":
            return max(1, min(available, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, available)


class SettingsError(SystemExit):
    """Invalid settings: a one-line message naming each variable and its rule, never the value.

    A ``SystemExit``, so that the CLI that imports the service (``bentoml serve``) stops with
    exit status 1 and that one line instead of a traceback, which would print the value
    (pydantic's ``input_value=``), a secret token included.
    """


def _rule(error) -> str:
    # pydantic's length message also gives the actual length, which tells something of a secret.
    if error["type"] in ("too_short", "string_too_short"):
        return f"must be at least {error['ctx']['min_length']} characters"
    return error["msg"]


@lru_cache
def get_settings() -> Settings:
    """Return the process-wide settings, read once and cached.

    Raises:
        SettingsError: a variable (or ``.env`` entry) breaks its rule.

    """
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"VITALCHECK_{'_'.join(str(p) for p in e['loc']).upper() or 'SETTINGS'}: {_rule(e)}"
            for e in exc.errors(include_input=False, include_url=False)
        )
        raise SettingsError(f"VitalCheck refuses to start, invalid settings: {problems}") from None
