"""The floor: the same pipeline called in-process on the same inputs, with no HTTP at all.

Run as its own process (``python -m benchmarks.inprocess``) with the contenders' thread settings,
so its memory and threads are those of a fresh worker. Two floors per workload:

* ``compute``: :class:`~vitalcheck.api.VitalCheckAPI` on an already validated request (models only);
* ``full``: validate the exact request body, compute, serialise the response to JSON, i.e.
  everything a server must do apart from HTTP.

It also scores the 100,000-record batch in-process, chunk by chunk, for rows per second.
"""

from benchmarks.apps.common import BATCH_MODELS, INPUT_MODELS  # first: sizes thread pools (vitalcheck.threads)

# isort: split
import argparse
import json
import statistics
import time
from pathlib import Path

from benchmarks.apps.original_design import load_api
from benchmarks.workloads import BATCH_MODEL, MRI_TEST_IMAGE


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


def floors(bodies: dict[str, Path], image: Path, iterations: dict[str, int]) -> dict:
    """Time both floors of every workload.

    Args:
        bodies: workload name → file with its exact JSON request body (single records and the batch).
        image: the MRI test image the image workload uploads.
        iterations: workload name → timed calls.

    Returns:
        ``{workload: {"compute": timings, "full": timings, "response": JSON of one answer}}``.

    """
    api = load_api()
    results = {}
    for name, path in bodies.items():
        body = path.read_bytes()
        n = iterations[name]
        if name == "batch1000":
            model = BATCH_MODELS[BATCH_MODEL]
            parsed = model.model_validate_json(body)
            compute = lambda p=parsed: api.batch(BATCH_MODEL, p.records)  # noqa: E731
            full = lambda b=body, m=model: api.batch(BATCH_MODEL, m.model_validate_json(b).records).model_dump_json()  # noqa: E731
        else:
            model = INPUT_MODELS[name]
            record = model.model_validate_json(body)
            compute = lambda r=record, k=name: api.single(k, r)  # noqa: E731
            full = lambda b=body, m=model, k=name: api.single(k, m.model_validate_json(b)).model_dump_json()  # noqa: E731
        results[name] = _time({"compute": compute, "full": full}, n, max(3, n // 10))
        results[name]["response"] = json.loads(full())
    n = iterations["mri"]
    results["mri"] = _time(
        {"compute": lambda: api.brain_tumor(image), "full": lambda: api.brain_tumor(image).model_dump_json()},
        n,
        max(3, n // 10),
    )
    results["mri"]["response"] = json.loads(api.brain_tumor(image).model_dump_json())
    return results


def batch_scoring(chunks: list[Path]) -> dict:
    """Score every chunk file (``{"records": [...]}``) in turn: validate, compute, serialise.

    Returns:
        Rows, seconds and rows per second, with and without validation + serialisation.

    """
    api = load_api()
    model = BATCH_MODELS[BATCH_MODEL]
    bodies = [c.read_bytes() for c in chunks]
    api.batch(BATCH_MODEL, model.model_validate_json(bodies[0]).records[:100])  # warm-up
    rows, started, compute_s = 0, time.perf_counter(), 0.0
    for body in bodies:
        records = model.model_validate_json(body).records
        t = time.perf_counter()
        answer = api.batch(BATCH_MODEL, records)
        compute_s += time.perf_counter() - t
        answer.model_dump_json()
        rows += len(records)
    seconds = time.perf_counter() - started
    return {"rows": rows, "seconds": seconds, "rows_per_s": rows / seconds, "compute_rows_per_s": rows / compute_s}


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python -m benchmarks.inprocess --bodies DIR --out FILE [--iterations N] [--chunks FILE ...]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bodies", type=Path, required=True, help="folder of the workloads' .body files")
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--iterations", type=int, default=200, help="timed calls per single-record workload")
    parser.add_argument("--chunks", type=Path, nargs="*", default=[], help="batch-scoring chunk files")
    args = parser.parse_args(argv)
    label, index = MRI_TEST_IMAGE
    image = sorted((args.data_dir / "brain_mri" / "test" / label).glob("*.jpg"))[index]
    names = ["diabetes", "stroke", "insurance", "batch1000"]
    iterations = {n: args.iterations for n in names} | {
        "mri": args.iterations,
        "batch1000": max(5, args.iterations // 20),
    }
    result: dict = {"floors": floors({n: args.bodies / f"{n}.body" for n in names}, image, iterations)}
    if args.chunks:
        result["batch_scoring"] = batch_scoring(args.chunks)
    args.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
