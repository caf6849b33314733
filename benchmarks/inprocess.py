"""The floor: the same pipeline called in-process on the same inputs, with no HTTP at all.

Run as its own process (``python -m benchmarks.inprocess``) with the contenders' thread settings,
so its memory and threads are those of a fresh worker. Two floors per workload:

* ``compute``: :class:`~vitalcheck.api.VitalCheckAPI` on an already validated request (models only:
  issue #14's per-record target is its p50 on each tabular model's schema example);
* ``full``: validate the exact request body, compute, serialise the response to JSON, i.e.
  everything a server must do apart from HTTP.

It also times ``VitalCheckAPI.batch`` on sampled records of every tabular model (issue #14's
rows/s target), scores the 100,000-record batch chunk by chunk (the baseline of batch scoring
through a server), and recomputes every tabular answer from the pickle
(:mod:`benchmarks.reference`) for the correctness target.
"""

from benchmarks.apps.common import BATCH_MODELS, INPUT_MODELS  # first: sizes thread pools (vitalcheck.threads)

# isort: split
import argparse
import gc
import json
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from benchmarks.reference import as_json, difference, pickle_predictions
from benchmarks.workloads import BATCH_MODEL, MRI_TEST_IMAGE, sample_records
from vitalcheck.api import VitalCheckAPI
from vitalcheck.catalog import MODELS, TABULAR_MODELS
from vitalcheck.registry import Registry, StoredArtifact
from vitalcheck.settings import get_settings


def load_api() -> VitalCheckAPI:
    """VitalCheck's API on all eight models and both tables, loaded and checked from the artifacts folder.

    The registry is VitalCheck's own (:class:`~vitalcheck.registry.Registry`: compiled tabular
    forms, sha256, library versions, golden outputs), read from the artifacts folder rather than
    a model store.
    """
    settings = get_settings()
    locations = {
        name: StoredArtifact(settings.artifacts_dir, f"{spec.store_name}:local") for name, spec in MODELS.items()
    }
    registry = Registry.load(locations, settings.reference_dir, settings)
    return VitalCheckAPI(registry, settings, INPUT_MODELS)


def _records(model: type[BaseModel], body: bytes) -> list[Any]:
    """The validated records of a batch request body (``{"records": [...]}``)."""
    return model.model_validate_json(body).records  # type: ignore[attr-defined]  # batch models are built at run time


def _single_json(api: VitalCheckAPI, name: str, model: type[BaseModel], body: bytes) -> str:
    """Validate one record's JSON body, score it, serialise the answer: a server's work apart from HTTP."""
    return api.single(name, model.model_validate_json(body)).model_dump_json()


def _batch_json(api: VitalCheckAPI, name: str, model: type[BaseModel], body: bytes) -> str:
    """The same for a batch body."""
    return api.batch(name, _records(model, body)).model_dump_json()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def _stats(samples: list[float], cpu_s: float) -> dict:
    return {
        "cpu_ms": cpu_s * 1000 / len(samples),
        "iterations": len(samples),
        "p50_ms": _percentile(samples, 50),
        "p99_ms": _percentile(samples, 99),
        "mean_ms": statistics.fmean(samples),
        "rps": 1000 / statistics.fmean(samples),
    }


def _time(calls: dict, iterations: int, warmup: int) -> dict:
    """Serial timings in milliseconds of each function of ``calls``, interleaved call by call.

    Alternating the functions (rather than timing one, then the other) lets a burst of outside
    load on a shared machine hit both alike.

    Returns:
        ``{name: {"p50_ms", "p99_ms", "mean_ms", "cpu_ms", "rps", "iterations"}}``.

    """
    for _ in range(warmup):
        for fn in calls.values():
            fn()
    samples: dict = {name: [] for name in calls}
    cpu: dict = dict.fromkeys(calls, 0.0)
    for _ in range(iterations):
        for name, fn in calls.items():
            started, started_cpu = time.perf_counter(), time.process_time()
            fn()
            samples[name].append((time.perf_counter() - started) * 1000)
            cpu[name] += time.process_time() - started_cpu
    return {name: _stats(samples[name], cpu[name]) for name in calls}


def floors(api: VitalCheckAPI, bodies: dict[str, Path], image: Path, iterations: dict[str, int]) -> dict:
    """Time both floors of every workload.

    Args:
        bodies: workload name → file with its exact JSON request body (single records and the batch).
        image: the MRI test image the image workload uploads.
        iterations: workload name → timed calls.

    Returns:
        ``{workload: {"compute": timings, "full": timings, "response": JSON of one answer}}``; the
        tabular workloads also hold ``pickle`` (the pickle's prediction fields, a list for the
        batch) and ``pickle_difference`` (the largest difference of the answer from them).

    """
    artifacts = get_settings().artifacts_dir
    results = {}
    for name, path in bodies.items():
        body = path.read_bytes()
        n = iterations[name]
        compute: Callable[[], object]
        full: Callable[[], str]
        if name == "batch1000":
            model = BATCH_MODELS[BATCH_MODEL]
            compute = partial(api.batch, BATCH_MODEL, _records(model, body))
            full = partial(_batch_json, api, BATCH_MODEL, model, body)
        else:
            model = INPUT_MODELS[name]
            compute = partial(api.single, name, model.model_validate_json(body))
            full = partial(_single_json, api, name, model, body)
        results[name] = _time({"compute": compute, "full": full}, n, max(3, n // 10))
        answer = results[name]["response"] = json.loads(full())
        if name == "batch1000":
            reference = pickle_predictions(BATCH_MODEL, json.loads(body)["records"], artifacts)
            worst = max(map(difference, answer["predictions"], reference), default=0.0)
        else:
            reference = pickle_predictions(name, [json.loads(body)], artifacts)
            worst = difference(answer["prediction"], reference[0])
        results[name] |= {
            "pickle": reference if name == "batch1000" else reference[0],
            "pickle_difference": as_json(worst),
        }
    n = iterations["mri"]
    results["mri"] = _time(
        {"compute": lambda: api.brain_tumor(image), "full": lambda: api.brain_tumor(image).model_dump_json()},
        n,
        max(3, n // 10),
    )
    results["mri"]["response"] = json.loads(api.brain_tumor(image).model_dump_json())
    return results


def batch_throughput(api: VitalCheckAPI, data_dir: Path, rows: int, repeats: int) -> dict:
    """Rows per second of ``VitalCheckAPI.batch`` on ``rows`` sampled records of every tabular model.

    ``compute`` times the call on already validated records; ``full`` adds validating the JSON
    body and serialising the answer (what a batch endpoint does apart from HTTP). The two are
    interleaved ``repeats`` times, each after ``gc.collect()`` (collections the call itself
    triggers still count), and the median run counts. The last answer is compared with the
    pickle's on every record.

    Returns:
        ``{model: {"rows", "compute_rows_per_s", "full_rows_per_s", "compute_s", "full_s", "pickle_difference"}}``.

    """
    artifacts = get_settings().artifacts_dir
    results = {}
    for name in TABULAR_MODELS:
        records = sample_records(name, rows, data_dir, seed=2)
        body = json.dumps({"records": records}).encode()
        model = BATCH_MODELS[name]
        validated = _records(model, body)
        api.batch(name, validated[:100])  # warm-up
        compute_s, full_s, answer = [], [], ""
        for _ in range(repeats):
            gc.collect()  # each call starts from a clean heap: else a pending full collection lands on one run
            started = time.perf_counter()
            api.batch(name, validated)
            compute_s.append(time.perf_counter() - started)
            gc.collect()
            started = time.perf_counter()
            answer = _batch_json(api, name, model, body)
            full_s.append(time.perf_counter() - started)
        predictions = json.loads(answer)["predictions"]
        reference = pickle_predictions(name, records, artifacts)
        results[name] = {
            "rows": rows,
            "compute_s": compute_s,
            "full_s": full_s,
            "compute_rows_per_s": rows / statistics.median(compute_s),
            "full_rows_per_s": rows / statistics.median(full_s),
            "pickle_difference": as_json(max(map(difference, predictions, reference), default=0.0)),
        }
    return results


def batch_scoring(api: VitalCheckAPI, chunks: list[Path]) -> dict:
    """Score every chunk file (``{"records": [...]}``) in turn: validate, compute, serialise.

    Returns:
        Rows, seconds and rows per second, with and without validation + serialisation.

    """
    model = BATCH_MODELS[BATCH_MODEL]
    bodies = [c.read_bytes() for c in chunks]
    api.batch(BATCH_MODEL, _records(model, bodies[0])[:100])  # warm-up
    rows, started, compute_s = 0, time.perf_counter(), 0.0
    for body in bodies:
        records = _records(model, body)
        t = time.perf_counter()
        answer = api.batch(BATCH_MODEL, records)
        compute_s += time.perf_counter() - t
        answer.model_dump_json()
        rows += len(records)
    seconds = time.perf_counter() - started
    return {"rows": rows, "seconds": seconds, "rows_per_s": rows / seconds, "compute_rows_per_s": rows / compute_s}


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python -m benchmarks.inprocess --bodies DIR --data-dir DIR --out FILE [options]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bodies", type=Path, required=True, help="folder of the workloads' .body files")
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--iterations", type=int, default=2000, help="timed calls per single-record workload")
    parser.add_argument("--mri-iterations", type=int, default=100, help="timed calls of the MRI workload")
    parser.add_argument("--batch-rows", type=int, default=10_000, help="records per model in the rows/s timing")
    parser.add_argument("--batch-repeats", type=int, default=3, help="timed batch calls per model")
    parser.add_argument("--chunks", type=Path, nargs="*", default=[], help="batch-scoring chunk files")
    args = parser.parse_args(argv)
    label, index = MRI_TEST_IMAGE
    image = sorted((args.data_dir / "brain_mri" / "test" / label).glob("*.jpg"))[index]
    names = [*TABULAR_MODELS, "batch1000"]
    iterations = dict.fromkeys(TABULAR_MODELS, args.iterations) | {
        "mri": args.mri_iterations,
        "batch1000": max(5, args.mri_iterations // 20),
    }
    api = load_api()
    result: dict = {"floors": floors(api, {n: args.bodies / f"{n}.body" for n in names}, image, iterations)}
    result["batch_throughput"] = batch_throughput(api, args.data_dir, args.batch_rows, args.batch_repeats)
    if args.chunks:
        result["batch_scoring"] = batch_scoring(api, args.chunks)
    args.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
