"""Run the whole comparison once and write the report (issue #14's targets first, then issue #5's).

Order of events (one run, one machine, the same artifacts and request bodies for everyone):

1. a private model store (``BENTOML_HOME`` under the results folder) filled by ``import_models.py``;
2. the request bodies (:mod:`benchmarks.workloads`: all seven single-record routes) and the
   batch-scoring chunks;
3. the in-process floor (:mod:`benchmarks.inprocess`, its own process, before any server runs so
   that idle servers cannot disturb it): per-record compute of every tabular model,
   ``VitalCheckAPI.batch`` rows/s of every tabular model, and the pickle's answers
   (:mod:`benchmarks.reference`);
4. start-up: every contender is cold-started ``startup_repeats`` times, one at a time, timing
   process start → first 200 from ``/readyz``; the last start stays up for the load;
5. a correctness check: every contender's answer to every workload against the floor's (the
   fields the original design returns) and against the pickle's: largest numeric difference;
6. the load matrix: for each workload and concurrency, every contender in turn (the order
   rotates from cell to cell), closed loop with ``wrk`` for a fixed number of requests;
7. resident memory of every process of every contender (psutil, after the load);
8. batch scoring of the 100,000 records through each server's batch endpoint, chunk after chunk;
9. results.json, REPORT.md and the PNG plots (:mod:`benchmarks.report`).

Environment: ``BENCH_QUICK=1`` (smoke run, 3-4 minutes on 2 cores; the full run takes about 12),
``BENCH_OUT`` (results folder, default ``benchmarks/results``), ``BENCH_LEVERS=1`` (adds the
one-setting variants of :data:`LEVER_CONTENDERS`), ``BENCH_CONTENDERS`` (comma-separated keys to
run only those; the only way to run the :data:`OPT_IN` ones), ``BENCH_CONCURRENCIES`` (e.g.
``1,32``: other concurrency levels).
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from benchmarks import loadgen, report
from benchmarks.reference import as_json, difference, max_difference, outputs
from benchmarks.servers import ROOT, THREAD_ENV, VENV_BIN, Server, bentoml_server, uvicorn_server
from benchmarks.workloads import BATCH_MODEL, Workload, build, sample_records
from vitalcheck.catalog import TABULAR_MODELS

CONFIGS = Path(__file__).with_name("configs")


@dataclass(frozen=True)
class Plan:
    """How much to measure.

    Attributes:
        quick: smoke-test mode.
        concurrencies: closed-loop concurrency levels (both plans hold 32: issue #14's throughput targets).
        requests: responses per (workload, concurrency, contender) cell, by workload.
        reload_requests: the same for the reload-per-request contender (it is 10-100x slower).
        per_connection: responses per connection at least, in every cell but the batch's.
        batch_concurrencies: concurrency levels of the 1,000-record batch workload.
        reload_concurrencies: concurrency levels the reload-per-request contender is run at.
        startup_repeats: cold starts timed per contender.
        scoring_rows: records scored in the batch-scoring comparison.
        scoring_chunk: records per batch request when scoring through a server.
        floor_iterations: timed in-process calls per single-record workload.
        mri_iterations: timed in-process calls of the MRI workload.
        batch_rows: records per tabular model in the in-process rows/s timing of ``VitalCheckAPI.batch``.
        batch_repeats: timed batch calls per model (the median counts).
        rounds: each cell is split into this many interleaved rounds (fewer when a round
            would hold under 2 requests per connection).

    """

    quick: bool
    concurrencies: tuple[int, ...]
    requests: dict[str, int]
    reload_requests: dict[str, int]
    per_connection: int
    batch_concurrencies: tuple[int, ...]
    reload_concurrencies: tuple[int, ...]
    startup_repeats: int
    scoring_rows: int
    scoring_chunk: int
    floor_iterations: int
    mri_iterations: int
    batch_rows: int
    batch_repeats: int
    rounds: int


def _counts(livez: int, single: int, mri: int, batch: int) -> dict[str, int]:
    """Responses per cell by workload: ``single`` for each of the seven single-record routes."""
    return {"livez": livez, **dict.fromkeys(TABULAR_MODELS, single), "mri": mri, "batch1000": batch}


FULL = Plan(
    quick=False,
    concurrencies=(1, 8, 32, 64),
    requests=_counts(livez=2000, single=128, mri=192, batch=24),
    reload_requests=_counts(livez=2000, single=32, mri=48, batch=8),
    per_connection=24,
    batch_concurrencies=(1, 8),
    reload_concurrencies=(1, 8),
    startup_repeats=2,
    scoring_rows=100_000,
    scoring_chunk=10_000,
    floor_iterations=2000,
    mri_iterations=100,
    batch_rows=10_000,
    batch_repeats=5,
    rounds=4,
)
QUICK = Plan(
    quick=True,
    concurrencies=(1, 32),
    requests=_counts(livez=600, single=96, mri=48, batch=12),
    reload_requests=_counts(livez=300, single=8, mri=8, batch=1),
    per_connection=24,
    batch_concurrencies=(1,),
    reload_concurrencies=(1,),
    startup_repeats=1,
    scoring_rows=5_000,
    scoring_chunk=5_000,
    floor_iterations=500,
    mri_iterations=20,
    batch_rows=2_000,
    batch_repeats=5,
    rounds=3,
)


ORIGINAL_BASELINE = report.ORIGINAL_BASELINE
"""What the original design (issue #14's baseline) does, as the report labels it."""


@dataclass(frozen=True)
class Contender:
    """One server under test.

    Attributes:
        key: short name ('reload', 'original', 'vitalcheck', ...).
        label: name in the report.
        kind: 'uvicorn' (FastAPI module) or 'bentoml' (``bentoml serve`` target).
        target: module (uvicorn) or service (bentoml) to serve.
        env: extra environment (e.g. ``BENTOML_CONFIG``).
        note: what it is, for the report.
        load: False for a start-up-only lever (timed and measured, then stopped before the load).
        explains: whether its tabular answers carry VitalCheck's explanation fields (contributors,
            explanation(s), ``ood_percentile``); the FastAPI contenders answer with the pickle's
            outputs alone, and only those are checked against the pickle.

    """

    key: str
    label: str
    kind: str
    target: str
    env: tuple[tuple[str, str], ...] = ()
    note: str = ""
    load: bool = True
    explains: bool = True


CONTENDERS = [
    Contender(
        "reload",
        "reload-per-request (FastAPI)",
        "uvicorn",
        "benchmarks.apps.reload_per_request",
        note="the original design, but joblib.load (MRI: a new InferenceSession) inside every handler",
        explains=False,
    ),
    Contender(
        "original",
        "original design (FastAPI)",
        "uvicorn",
        "benchmarks.apps.original_design",
        note=ORIGINAL_BASELINE + " (lifespan: joblib.load of the seven pickles + the ONNX graph into app.state, "
        "Depends hands them to sync routes; 1 uvicorn worker)",
        explains=False,
    ),
    Contender(
        "vitalcheck",
        "VitalCheck (bentoml serve)",
        "bentoml",
        "service:VitalCheck",
        note="as shipped: service.py and its defaults (2 workers, micro-batched single-record endpoints, "
        "access log and Prometheus metrics on), no token",
    ),
    Contender(
        "vc_1worker",
        "VitalCheck, 1 worker",
        "bentoml",
        "service:VitalCheck",
        (("BENTOML_CONFIG", str(CONFIGS / "workers1.yaml")),),
        "as shipped but 1 worker (configs/workers1.yaml): the same resources as the original design's 1 uvicorn worker",
    ),
]
"""The contenders of issue #5, in report order."""


def _config(key: str, label: str, config: str, note: str) -> Contender:
    return Contender(key, label, "bentoml", "service:VitalCheck", (("BENTOML_CONFIG", str(CONFIGS / config)),), note)


LEVER_CONTENDERS = [
    _config("vc_threads4", "VitalCheck, 4 threads", "threads4.yaml", "threads: 4 (configs/threads4.yaml)"),
    _config(
        "vc_noaccesslog", "VitalCheck, no access log", "noaccesslog.yaml", "access log off (configs/noaccesslog.yaml)"
    ),
    _config(
        "vc_quiet", "VitalCheck, no access log/metrics", "quiet.yaml", "access log + metrics off (configs/quiet.yaml)"
    ),
    Contender(
        "vc_nobatch",
        "VitalCheck, no micro-batching",
        "bentoml",
        "service:VitalCheck",
        (("VITALCHECK_MICROBATCH_MAX_RECORDS", "1"),),
        "VITALCHECK_MICROBATCH_MAX_RECORDS=1: every single-record request scored alone",
    ),
    Contender(
        "vc_nopreflight",
        "VitalCheck, no pre-flight check",
        "bentoml",
        "service:VitalCheck",
        (("VITALCHECK_SKIP_PREFLIGHT", "1"),),
        "start-up only: VITALCHECK_SKIP_PREFLIGHT=1 (no sha256/table check in the serving process)",
        load=False,
    ),
]
"""Levers measured as extra contenders when BENCH_LEVERS=1 (each one setting changed from the shipped service)."""

OPT_IN = {"reload"}
"""Contenders run only when ``BENCH_CONTENDERS`` names them: reload-per-request (issue #5's
baseline) is no part of issue #14's targets and would take minutes on seven routes."""

COMMAND_VARIABLES = {"BENCH_QUICK", "BENCH_LEVERS", "BENCH_CONTENDERS", "BENCH_CONCURRENCIES"}
"""Environment variables that change what a run measures, named in the report's command."""


def machine() -> dict:
    """CPU model, cores, memory, load average and software versions of this run."""
    info: dict[str, Any] = {
        "cpu": platform.processor() or "unknown",
        "cores": os.cpu_count(),
        "python": platform.python_version(),
    }
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in lscpu.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "Model name":
                info["cpu"] = value.strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    with open("/proc/meminfo") as fh:
        info["ram_gib"] = round(int(fh.readline().split()[1]) / 2**20, 1)
    info["kernel"] = platform.release()
    wrk = subprocess.run([loadgen.wrk_path(), "-v"], capture_output=True, text=True)
    info["wrk"] = (wrk.stdout + wrk.stderr).splitlines()[0].split(" [")[0] if (wrk.stdout + wrk.stderr) else "wrk"
    from importlib.metadata import version

    info["versions"] = {p: version(p) for p in ("bentoml", "fastapi", "uvicorn", "scikit-learn", "onnxruntime")}
    return info


def load_average() -> list[float]:
    """The 1, 5 and 15-minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


def prepare_store(home: Path) -> None:
    """Fill a private model store with the eight artifacts (``import_models.py``)."""
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "True"}
    subprocess.run([str(VENV_BIN / "python"), "import_models.py"], cwd=ROOT, env=env, check=True, capture_output=True)


STARTUP_PROBE = """
import json, time
w, c = time.perf_counter(), time.process_time()
import service
from vitalcheck.settings import get_settings
w1, c1 = time.perf_counter(), time.process_time()
from vitalcheck.preflight import full_check
full_check(service.stored_locations(), get_settings().reference_dir)
w2, c2 = time.perf_counter(), time.process_time()
service.load_registry()
w3, c3 = time.perf_counter(), time.process_time()
print(json.dumps({"import_wall_s": w1 - w, "import_cpu_s": c1 - c, "preflight_wall_s": w2 - w1,
                  "preflight_cpu_s": c2 - c1, "load_wall_s": w3 - w2, "load_cpu_s": c3 - c2}))
"""
"""Times, in a fresh process, the three steps before VitalCheck is ready: ``import service`` and the
pre-flight check (the serving process), then ``load_registry()`` (each worker: the scientific stack's
imports, unpickling, golden checks, the ONNX session)."""


def startup_breakdown(home: Path) -> dict:
    """Wall and CPU seconds of ``import service``, the pre-flight check and ``load_registry()`` in a fresh process."""
    env = {**os.environ, **THREAD_ENV, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "True"}
    done = subprocess.run(
        [str(VENV_BIN / "python"), "-c", STARTUP_PROBE], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def make_server(contender: Contender, log_dir: Path, home: Path) -> Server:
    """The :class:`Server` of a contender (a new free port each time)."""
    env = {"BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "True", **dict(contender.env)}
    if contender.kind == "uvicorn":
        return uvicorn_server(contender.key, contender.label, contender.target, log_dir, env)
    return bentoml_server(contender.key, contender.label, log_dir, env, contender.target)


def post(port: int, workload: Workload, timeout: float = 120.0) -> tuple[int, bytes]:
    """Send one request of ``workload`` to 127.0.0.1:port; return status and body."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Content-Type": workload.content_type} if workload.content_type else {}
        connection.request(workload.method, workload.path, body=workload.body() or None, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _comparable(answer: dict) -> dict:
    """An answer without the ``model`` block (store tags differ between contenders)."""
    return {k: v for k, v in answer.items() if k != "model"}


def check_answers(
    servers: dict[str, Server], workloads: dict[str, Workload], floors: dict, outputs_only: frozenset[str] = frozenset()
) -> dict:
    """How far every contender's answer to every workload is from the floor's and from the pickle's.

    Against the floor (and so against each other) only the fields the original design returns
    are compared when it runs (VitalCheck's answers carry more), the ``model`` block aside;
    against the pickle, the prediction fields of :func:`benchmarks.reference.pickle_predictions`
    (for the contenders in ``outputs_only``, which return no explanation, only the outputs:
    :func:`benchmarks.reference.outputs`).

    Returns:
        ``{contender: {workload: {"status", "vs_floor", "vs_pickle"}}}``: the largest absolute
        differences of the numeric fields (``"mismatch"``: a field missing or a string differs;
        ``vs_pickle`` is None for the MRI upload, which has no pickle).

    """
    answers: dict[str, dict[str, tuple[int, dict | None]]] = {}
    for key, server in servers.items():
        answers[key] = {}
        for name, workload in workloads.items():
            if workload.kind != "trivial":
                status, body = post(server.port, workload)
                answers[key][name] = (status, json.loads(body) if status == 200 else None)
    result: dict = {}
    for key, by_workload in answers.items():
        result[key] = {}
        for name, (status, answer) in by_workload.items():
            if answer is None:
                result[key][name] = {"status": status, "vs_floor": "mismatch", "vs_pickle": "mismatch"}
                continue
            original = answers.get("original", {}).get(name, (0, None))[1]
            fields = _comparable(original) if original is not None else None
            vs_floor = max_difference(_comparable(answer), _comparable(floors[name]["response"]), fields)
            reference = floors[name].get("pickle")
            if reference is not None and key in outputs_only:
                reference = [outputs(r) for r in reference] if isinstance(reference, list) else outputs(reference)
            if reference is None:
                vs_pickle = None
            elif workloads[name].kind == "batch":
                served = answer.get("predictions", [])
                vs_pickle = max(map(difference, served, reference)) if len(served) == len(reference) else math.inf
            else:
                vs_pickle = difference(answer.get("prediction"), reference)
            result[key][name] = {
                "status": status,
                "vs_floor": as_json(vs_floor),
                "vs_pickle": None if vs_pickle is None else as_json(vs_pickle),
            }
    return result


def score_through(server: Server, chunks: list[Path], route: str, warmup: bytes) -> dict:
    """Post every chunk to the batch route in turn on one keep-alive connection; rows per second."""
    bodies = [c.read_bytes() for c in chunks]
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=600)
    rows, errors = 0, 0
    try:
        connection.request("POST", route, body=warmup, headers=_JSON)
        connection.getresponse().read()
        started = time.perf_counter()
        for body in bodies:
            connection.request("POST", route, body=body, headers=_JSON)
            response = connection.getresponse()
            answer = response.read()
            if response.status == 200:
                rows += answer.count(b'"probability"')  # one per prediction (every contender); cheaper than parsing
            else:
                errors += 1
        seconds = time.perf_counter() - started
    finally:
        connection.close()
    return {"rows": rows, "seconds": seconds, "rows_per_s": rows / seconds, "errors": errors}


_JSON = {"Content-Type": "application/json"}


def _requests(plan: Plan, key: str, workload: Workload, concurrency: int) -> int:
    """Responses to collect in one cell: the plan's count, at least ``per_connection`` per connection
    (reload-per-request: 2; batches: 1)."""
    budget = plan.reload_requests if key == "reload" else plan.requests
    least = 1 if workload.kind == "batch" else 2 if key == "reload" else plan.per_connection
    return max(budget[workload.name], concurrency * least)


def _combine(runs: list[tuple[loadgen.LoadResult, float]]) -> dict:
    """One cell's figures from its rounds: medians of the rounds' percentiles, totals of the rest.

    The rounds of a cell are interleaved with the other contenders' rounds, so a burst of
    outside load lands on every contender; the median round is the cell's figure, and the
    spread of the rounds' p50 shows how noisy the machine was.
    """
    figures = [f for f, _ in runs]
    requests = sum(f.requests for f in figures)
    seconds = sum(f.seconds for f in figures)
    return {
        "rounds": len(figures),
        "requests": requests,
        "seconds": seconds,
        "rps": requests / seconds,
        "p50_ms": statistics.median(f.p50_ms for f in figures),
        "p90_ms": statistics.median(f.p90_ms for f in figures),
        "p99_ms": statistics.median(f.p99_ms for f in figures),
        "max_ms": max(f.max_ms for f in figures),
        "p50_spread_ms": [min(f.p50_ms for f in figures), max(f.p50_ms for f in figures)],
        "errors": sum(f.errors for f in figures),
        "client_cpu_s": sum(f.client_cpu_s for f in figures),
        "server_cpu_ms_per_req": sum(cpu for _, cpu in runs) * 1000 / max(1, requests),
    }


def cells(plan: Plan, workloads: dict[str, Workload], keys: list[str]):
    """Yield ``(workload, concurrency, contender keys in this cell's order)``, the order rotating per cell."""
    turn = 0
    for workload in workloads.values():
        levels = plan.batch_concurrencies if workload.kind == "batch" else plan.concurrencies
        for concurrency in levels:
            present = [k for k in keys if k != "reload" or concurrency in plan.reload_concurrencies]
            shift = turn % len(present)
            yield workload, concurrency, present[shift:] + present[:shift]
            turn += 1


def _stop_on_sigterm() -> None:
    """Turn SIGTERM (and SIGINT, which a background job ignores) into SystemExit so the servers get stopped."""

    def handler(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def main() -> int:
    """Run everything; write results.json, REPORT.md and the plots. Return the exit status."""
    _stop_on_sigterm()
    plan = QUICK if os.environ.get("BENCH_QUICK") == "1" else FULL
    if levels := os.environ.get("BENCH_CONCURRENCIES"):
        plan = replace(plan, concurrencies=tuple(int(c) for c in levels.split(",")))
    out = Path(os.environ.get("BENCH_OUT", ROOT / "benchmarks" / "results"))
    out.mkdir(parents=True, exist_ok=True)
    for variable, value in THREAD_ENV.items():
        os.environ.setdefault(variable, value)
    # Caches of every process the bench starts (ONNX Runtime's device id, matplotlib's fonts) stay
    # in the results folder, not the home folder.
    os.environ.setdefault("XDG_CACHE_HOME", str(out / "cache"))
    os.environ.setdefault("MPLCONFIGDIR", str(out / "matplotlib"))
    levers = LEVER_CONTENDERS if os.environ.get("BENCH_LEVERS") == "1" else []
    contenders = [c for c in [*CONTENDERS, *levers] if c.key not in OPT_IN]
    if only := os.environ.get("BENCH_CONTENDERS"):
        contenders = [c for c in [*CONTENDERS, *LEVER_CONTENDERS] if c.key in only.split(",")]
    started = time.perf_counter()
    log = _logger(out / "bench.log")
    results: dict = {
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "plan": asdict(plan),
        "machine": machine(),
        "load_before": load_average(),
        "contenders": [asdict(c) for c in contenders],
        "command": " ".join(
            ["make bench", *(f"{k}={v}" for k, v in sorted(os.environ.items()) if k in COMMAND_VARIABLES)]
        ),
    }
    log(
        f"plan: {'quick' if plan.quick else 'full'}; load average {results['load_before']}; {results['machine']['cpu']}"
    )

    home = out / "bentoml_home"
    prepare_store(home)
    data_dir = Path(os.environ.get("VITALCHECK_DATA_DIR", ROOT.parent / "shared" / "datasets"))
    workloads = build(out / "bodies", data_dir)
    records = sample_records(BATCH_MODEL, plan.scoring_rows, data_dir, seed=1)
    chunks = []
    for i in range(0, len(records), plan.scoring_chunk):
        chunk = out / "bodies" / f"scoring-{i // plan.scoring_chunk:03d}.body"
        chunk.write_text(json.dumps({"records": records[i : i + plan.scoring_chunk]}))
        chunks.append(chunk)
    results["workloads"] = {k: {"title": w.title, "path": w.path, "kind": w.kind} for k, w in workloads.items()}
    log(f"store, bodies and {len(chunks)} scoring chunks ready ({time.perf_counter() - started:.0f} s)")

    floor_file = out / "inprocess.json"
    subprocess.run(
        [str(VENV_BIN / "python"), "-m", "benchmarks.inprocess", "--bodies", str(out / "bodies")]
        + ["--data-dir", str(data_dir), "--out", str(floor_file), "--iterations", str(plan.floor_iterations)]
        + ["--mri-iterations", str(plan.mri_iterations), "--batch-rows", str(plan.batch_rows)]
        + ["--batch-repeats", str(plan.batch_repeats), "--chunks", *map(str, chunks)],
        cwd=ROOT,
        env={**os.environ, **THREAD_ENV},
        check=True,
    )
    inprocess = json.loads(floor_file.read_text())
    results["floors"] = {
        k: {f: v[f] for f in ("compute", "full", "pickle_difference") if f in v} for k, v in inprocess["floors"].items()
    }
    results["batch_throughput"] = inprocess["batch_throughput"]
    results["scoring"] = {"inprocess": inprocess["batch_scoring"]}
    log(f"in-process floor done, before any server starts ({time.perf_counter() - started:.0f} s)")
    for name in TABULAR_MODELS:
        batch = results["batch_throughput"][name]
        log(
            f"in-process {name:15} single p50 {results['floors'][name]['compute']['p50_ms']:.3f} ms; batch "
            f"{batch['compute_rows_per_s']:,.0f} rows/s compute, {batch['full_rows_per_s']:,.0f} with JSON"
        )

    servers: dict[str, Server] = {}
    results["startup_s"] = {}
    try:
        for contender in contenders:
            times = []
            for attempt in range(plan.startup_repeats):
                server = make_server(contender, out / "logs", home)
                times.append(server.start())
                if attempt < plan.startup_repeats - 1:
                    server.stop()
            results["startup_s"][contender.key] = times
            if contender.load:
                servers[contender.key] = server
            else:
                results.setdefault("memory", {})[contender.key] = server.memory()
                server.stop()
            log(f"{contender.key}: ready in {', '.join(f'{t:.2f}' for t in times)} s")

        results["startup_breakdown"] = startup_breakdown(home)
        log(f"start-up breakdown of one VitalCheck process: {results['startup_breakdown']}")

        plain = frozenset(c.key for c in contenders if not c.explains)
        results["answers"] = check_answers(servers, workloads, inprocess["floors"], plain)
        for key, answers in results["answers"].items():
            log(f"answers of {key}: " + ", ".join(f"{w} {a['vs_floor']}/{a['vs_pickle']}" for w, a in answers.items()))

        results["load"] = []
        warmed: set[tuple[str, str]] = set()
        for workload, concurrency, order in cells(plan, workloads, list(servers)):
            counts = {key: _requests(plan, key, workload, concurrency) for key in order}
            rounds = max(1, min(plan.rounds, min(n // (2 * concurrency) for n in counts.values())))
            runs: dict[str, list] = {key: [] for key in order}
            for key in order:
                if (key, workload.name) not in warmed:
                    n = counts[key]
                    loadgen.run(servers[key].url, workload, min(4, concurrency * 4), max(8, n // 10), 300)
                    warmed.add((key, workload.name))
            for r in range(rounds):
                for key in order[r % len(order) :] + order[: r % len(order)]:
                    cpu = servers[key].cpu_seconds()
                    figures = loadgen.run(servers[key].url, workload, concurrency, counts[key] // rounds, 600)
                    runs[key].append((figures, servers[key].cpu_seconds() - cpu))
            for key in order:
                row = {"workload": workload.name, "concurrency": concurrency, "contender": key, **_combine(runs[key])}
                results["load"].append(row)
                log(
                    f"{workload.name:9} c={concurrency:<3} {key:14} p50 {row['p50_ms']:8.2f} ms  "
                    f"p99 {row['p99_ms']:8.2f} ms  {row['rps']:8.1f} req/s  errors {row['errors']}  "
                    f"({rounds} rounds, p50 {row['p50_spread_ms'][0]:.1f}-{row['p50_spread_ms'][1]:.1f})"
                )
        results.setdefault("memory", {}).update({key: server.memory() for key, server in servers.items()})

        route = f"/api/v1/risk/{BATCH_MODEL}/batch"
        for key in servers:
            if key == "reload":
                continue
            results["scoring"][key] = score_through(servers[key], chunks, route, workloads["batch1000"].body())
            log(f"batch scoring via {key}: {results['scoring'][key]['rows_per_s']:.0f} rows/s")
    finally:
        for server in servers.values():
            server.stop()

    results["load_after"] = load_average()
    results["elapsed_s"] = time.perf_counter() - started
    (out / "results.json").write_text(json.dumps(results, indent=1))
    report.write(results, out)
    log(f"done in {results['elapsed_s']:.0f} s: {out / 'REPORT.md'}")
    return 0


def _logger(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(path, "w")  # noqa: SIM115  (kept open for the whole run)

    def log(message: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {message}"
        print(line, flush=True)
        fh.write(line + "\n")
        fh.flush()

    return log


if __name__ == "__main__":
    sys.exit(main())
