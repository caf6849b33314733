"""The full fuzzing run against `bentoml serve`: schemathesis on every operation, then damaged uploads.

Counts per operation and mode: cases run, 5xx, schema violations, schema-violating requests
accepted, and (for information) schema-valid requests refused by a rule JSON Schema cannot state.
"""

from __future__ import annotations

import time

import httpx
import pandas as pd
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from reliability.common import machine, server_env
from tests.utils import fuzzing
from tests.utils.payloads import ROUTES
from tests.utils.serving import Served
from vitalcheck.settings import get_settings
from vitalcheck.training.loaders import data_file


def _uploads(client: httpx.Client, route: str, field: str, strategy, examples: int) -> dict:
    outcome = {"cases": 0, "problems": 0, "statuses": {}, "examples": []}

    @settings(
        max_examples=examples,
        database=None,
        deadline=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(upload=strategy)
    def run(upload):
        response = client.post(route, files={field: upload})
        outcome["cases"] += 1
        key = str(response.status_code)
        outcome["statuses"][key] = outcome["statuses"].get(key, 0) + 1
        problem = fuzzing.check_upload_answer(response, field)
        if problem:
            outcome["problems"] += 1
            if len(outcome["examples"]) < 5:
                outcome["examples"].append(f"{upload[0]} {upload[1][:120]!r}: {problem}")

    run()
    return outcome


def full_fuzz(examples: int = 500, upload_examples: int = 200, progress=print) -> dict:
    """Fuzz every operation (``examples`` per mode) and every upload endpoint; return the counts."""
    env, token = server_env()
    data_dir = get_settings().data_dir
    started = time.monotonic()
    with (
        Served(env) as server,
        httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=120) as client,
    ):
        schema = fuzzing.load_schema(client.get("/docs.json").json())

        def send(case):
            request = fuzzing.to_httpx(case, base_url=server.url)
            request["headers"]["Authorization"] = f"Bearer {token}"
            return client.request(**request)

        def report(result):
            progress(
                f"{result.operation:45s} {result.mode:8s} cases={result.cases:5d} 5xx={result.server_errors} "
                f"schema={result.schema_violations} accepted_invalid={result.accepted_invalid}"
            )

        results = fuzzing.fuzz(schema, send, max_examples=examples, progress=report)
        uploads = {}
        for name, route in ROUTES.items():
            source = pd.read_csv(data_file(name, data_dir), dtype=str, keep_default_na=False).head(6)
            uploads[f"POST {route}/file"] = _uploads(
                client, route + "/file", "file", fuzzing.csv_uploads(source, st), upload_examples
            )
            progress(f"POST {route}/file uploads {uploads[f'POST {route}/file']}")
        uploads["POST /api/v1/imaging/brain-tumor"] = _uploads(
            client, "/api/v1/imaging/brain-tumor", "image", fuzzing.image_uploads(st), 2 * upload_examples
        )
        server_log = server.log()
    totals = fuzzing.summary(results)
    per_operation: dict[str, int] = {}
    for r in results:
        per_operation[r.operation] = per_operation.get(r.operation, 0) + r.cases
    upload_totals = {
        "cases": sum(u["cases"] for u in uploads.values()),
        "problems": sum(u["problems"] for u in uploads.values()),
    }
    return {
        "scenario": f"schemathesis {examples} positive + {examples} negative cases per operation; damaged uploads",
        "machine_at_end": machine(),
        "minutes": round((time.monotonic() - started) / 60, 1),
        "totals": totals,
        "min_cases_per_api_operation": min(v for k, v in per_operation.items() if " /api/" in k),
        "uploads": upload_totals,
        "server_log_tracebacks": server_log.count("Traceback"),
        "operations": [r.as_dict() for r in results],
        "upload_endpoints": uploads,
        "passed": totals["server_errors"] == 0
        and totals["schema_violations"] == 0
        and totals["accepted_invalid"] == 0
        and upload_totals["problems"] == 0,
    }
