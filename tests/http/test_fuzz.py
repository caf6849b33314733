"""Property-based fuzzing of every endpoint, in-process (quick run; the full run is `make reliability`).

* schemathesis, from the service's own /docs.json: positive and negative cases for every
  operation; no 5xx, every response matches its documented schema, every schema-violating
  request is refused.
* Hypothesis, from real inputs: damaged CSV/Parquet files and damaged images; each answer is
  200 or a 400 naming the field, never a 5xx, never echoing a submitted value.

``VITALCHECK_FUZZ_EXAMPLES`` (default 5) sets the schemathesis cases per operation and mode,
``VITALCHECK_FUZZ_UPLOADS`` (default 8) the upload cases per endpoint.
"""

import os

import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.utils import fuzzing
from tests.utils.payloads import ROUTES
from vitalcheck.training.loaders import data_file

EXAMPLES = int(os.environ.get("VITALCHECK_FUZZ_EXAMPLES", "5"))
UPLOADS = int(os.environ.get("VITALCHECK_FUZZ_UPLOADS", "8"))

# In-process there is no Prometheus multiprocess directory, so GET /metrics cannot answer;
# the full run against `bentoml serve` covers it.
IN_PROCESS_ONLY = "GET /metrics"

QUICK = settings(
    max_examples=UPLOADS,
    database=None,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=list(HealthCheck),
)


def test_every_operation_against_its_openapi_document(http):
    schema = fuzzing.load_schema(http.get("/docs.json").json())

    def send(case):
        return http.request(**fuzzing.to_httpx(case))

    results = fuzzing.fuzz(schema, send, max_examples=EXAMPLES, only=lambda label: label != IN_PROCESS_ONLY)
    total = fuzzing.summary(results)
    failures = "\n".join(f"{r.operation} [{r.mode}]: {f}" for r in results for f in r.failures)
    assert total["operations"] >= 28, total  # 24 /api/v1 POST operations + health endpoints
    assert total["cases"] >= 24 * 2 * min(EXAMPLES, 5), total
    assert total["server_errors"] == 0, failures
    assert total["schema_violations"] == 0, failures
    assert total["accepted_invalid"] == 0, failures


@pytest.mark.parametrize("name", list(ROUTES))
def test_damaged_files(http, data_dir, name):
    source = pd.read_csv(data_file(name, data_dir), dtype=str, keep_default_na=False).head(6)

    @QUICK
    @given(upload=fuzzing.csv_uploads(source, st))
    def run(upload):
        response = http.post(ROUTES[name] + "/file", files={"file": upload})
        problem = fuzzing.check_upload_answer(response, "file")
        assert problem is None, problem

    run()


def test_damaged_images(http):
    @settings(QUICK, max_examples=2 * UPLOADS)
    @given(upload=fuzzing.image_uploads(st))
    def run(upload):
        response = http.post("/api/v1/imaging/brain-tumor", files={"image": upload})
        problem = fuzzing.check_upload_answer(response, "image")
        assert problem is None, problem
        if response.status_code == 200:
            assert sum(response.json()["prediction"]["probabilities"].values()) == pytest.approx(1, abs=1e-5)

    run()
