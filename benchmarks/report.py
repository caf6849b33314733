"""Turn one run's ``results.json`` into ``REPORT.md`` and two PNG plots.

``python -m benchmarks.report [results folder]`` re-renders the report from a saved run.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

SINGLE_RISK = ("diabetes", "stroke")
"""Single-record risk workloads issue #5's floor-overhead target is about."""

SINGLE = ("diabetes", "heart", "stroke", "breast_cancer", "sleep", "life_expectancy", "insurance")
"""Single-record workloads (JSON): one per tabular model, in catalog order."""

MODEL_WORKLOADS = (*SINGLE, "mri", "batch1000")
"""Workloads that run a model."""

ORIGINAL_BASELINE = "original design: FastAPI singleton, pickle's predict_proba on a one-row DataFrame, no explanation"
"""Issue #14's baseline, "the original design's" in its targets (``benchmarks/apps/original_design.py``)."""

Row = tuple[str, str, bool | None]
"""One line of issue #14's table: target, measured, met (None: not measured)."""


def _cell(results: dict, workload: str, concurrency: int, contender: str) -> dict | None:
    for row in results["load"]:
        if (row["workload"], row["concurrency"], row["contender"]) == (workload, concurrency, contender):
            return row
    return None


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _fmt(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "–"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def _workers(memory: list[dict]) -> list[dict]:
    return [p for p in memory if p["role"] == "worker"]


def targets(results: dict, key: str) -> list[tuple[str, str, str, bool | None]]:
    """The issue's targets for VitalCheck variant ``key``: (target, measured, ratio or value, met)."""
    rows: list[tuple[str, str, str, bool | None]] = []
    contenders = {c["key"] for c in results["contenders"]}
    low = min(results["plan"]["concurrencies"])

    if "reload" in contenders and any(r["contender"] == key for r in results["load"]):
        ratios = {}
        for w in MODEL_WORKLOADS:
            a, b = _cell(results, w, low, "reload"), _cell(results, w, low, key)
            if a and b:
                ratios[w] = a["p50_ms"] / b["p50_ms"]
        worst = min(ratios.values()) if ratios else None
        text = ", ".join(f"{w} {r:.1f}×" for w, r in ratios.items())
        rows.append(
            ("reload-per-request ≥ 20× slower at p50 (c=1)", text, _fmt(worst, 1) + "× (worst)", _ok(worst, 20, ">="))
        )
    if "original" in contenders and any(r["contender"] == key for r in results["load"]):
        ratios = {}
        for w in MODEL_WORKLOADS:
            a, b = _cell(results, w, low, key), _cell(results, w, low, "original")
            if a and b:
                ratios[w] = a["p50_ms"] / b["p50_ms"]
        worst = max(ratios.values()) if ratios else None
        text = ", ".join(f"{w} {r:.2f}" for w, r in ratios.items())
        rows.append(
            ("serial p50 ÷ original design's ≤ 1.0 (c=1)", text, _fmt(worst) + " (worst)", _ok(worst, 1.0, "<="))
        )
        ratios = {}
        for w in (*SINGLE, "mri"):
            a, b = _cell(results, w, 32, key), _cell(results, w, 32, "original")
            if a and b:
                ratios[w] = a["rps"] / b["rps"]
        worst = min(ratios.values()) if ratios else None
        text = ", ".join(f"{w} {r:.2f}×" for w, r in ratios.items())
        rows.append(
            ("throughput at c=32 ≥ 2× original design's", text, _fmt(worst) + "× (worst)", _ok(worst, 2.0, ">="))
        )
    overheads, cpu = {}, {}
    for w in SINGLE_RISK:
        cell = _cell(results, w, low, key)
        if cell:
            overheads[w] = cell["p50_ms"] - results["floors"][w]["compute"]["p50_ms"]
            if "cpu_ms" in results["floors"][w]["compute"]:
                cpu[w] = cell["server_cpu_ms_per_req"] - results["floors"][w]["compute"]["cpu_ms"]
    worst = max(overheads.values()) if overheads else None
    text = ", ".join(f"{w} {o:+.2f} ms" for w, o in overheads.items())
    if cpu:
        text += "; CPU per request over the floor's CPU per call: " + ", ".join(
            f"{w} {o:+.2f} ms" for w, o in cpu.items()
        )
    if overheads:
        rows.append(
            (
                "p50 overhead over the in-process compute floor < 1.5 ms",
                text,
                _fmt(worst) + " ms (worst)",
                _ok(worst, 1.5, "<"),
            )
        )
    startup = results["startup_s"].get(key)
    if startup:
        value = _median(startup)
        text = ", ".join(f"{t:.2f}" for t in startup) + " s"
        rows.append(("start-up to /readyz 200 < 5 s (all eight models)", text, f"{value:.2f} s (median)", value < 5))
    workers = _workers(results["memory"].get(key, []))
    if workers:
        value = max(p["rss_mb"] for p in workers)
        total = sum(p["rss_mb"] for p in results["memory"][key])
        text = f"{len(workers)} worker(s), largest {value:.0f} MB; whole tree {total:.0f} MB"
        rows.append(("resident memory per worker < 350 MB", text, f"{value:.0f} MB", value < 350))
    scoring = results.get("scoring", {})
    if key in scoring and "inprocess" in scoring:
        ratio = scoring[key]["rows_per_s"] / scoring["inprocess"]["rows_per_s"]
        text = f"{scoring[key]['rows_per_s']:,.0f} vs {scoring['inprocess']['rows_per_s']:,.0f} rows/s in-process"
        rows.append(("batch scoring through the service ≥ ½ in-process rows/s", text, f"{ratio:.2f}", ratio >= 0.5))
    return rows


def _diff(value: float | str | None) -> str:
    """A largest difference as text: 0 when identical, ``mismatch`` when not comparable."""
    if value is None:
        return "–"
    if isinstance(value, str) or value == float("inf"):
        return "mismatch"
    return "0" if value == 0 else f"{value:.1e}"


def _numeric(values: dict[str, float | str | None]) -> dict[str, float]:
    """Differences as numbers (``"mismatch"``: infinitely different; None, i.e. not compared, left out)."""
    return {k: float("inf") if isinstance(v, str) else float(v) for k, v in values.items() if v is not None}


def _worst(values: dict[str, float], high: bool = True) -> tuple[str, float] | None:
    """The worst (name, value) of ``values``: the largest when ``high``, else the smallest."""
    if not values:
        return None
    return (max if high else min)(values.items(), key=lambda item: item[1])


def _ratio_row(target: str, ratios: dict[str, float], bound: float, op: str, unit: str = "×") -> Row:
    """A row judged on its worst ratio: ``<=`` bounds the largest, ``>=`` the smallest."""
    worst = _worst(ratios, high=op == "<=")
    if worst is None:
        return target, "not measured", None
    text = f"**{worst[1]:.2f}{unit}** worst ({worst[0]}); " + ", ".join(f"{w} {r:.2f}" for w, r in ratios.items())
    return target, text, _ok(worst[1], bound, op)


def issue14_targets(results: dict, key: str) -> list[Row]:
    """Issue #14's targets for VitalCheck variant ``key`` (ratios from this run's interleaved cells)."""
    rows: list[Row] = []
    singles = [w for w in SINGLE if w in results["workloads"]]
    floors = results["floors"]

    p50 = {w: floors[w]["compute"]["p50_ms"] for w in singles if w in floors}
    worst = _worst(p50)
    rows.append(
        (
            "in-process compute per record with its explanation ≤ 0.3 ms (p50 of `VitalCheckAPI.single` "
            "on the schema example, every tabular model)",
            f"**{worst[1]:.3f} ms** worst ({worst[0]}); " + ", ".join(f"{w} {v:.3f}" for w, v in p50.items())
            if worst
            else "not measured",
            _ok(worst[1] if worst else None, 0.3, "<="),
        )
    )
    batch = results.get("batch_throughput", {})
    if batch:
        n = max(b["rows"] for b in batch.values())
        compute = {w: b["compute_rows_per_s"] for w, b in batch.items()}
        full = {w: b["full_rows_per_s"] for w, b in batch.items()}
        low, low_full = _worst(compute, high=False), _worst(full, high=False)
        assert low and low_full
        rows.append(
            (
                f"batch scoring ≥ 100,000 rows/s in-process (`VitalCheckAPI.batch` on {n:,} validated records, "
                "compute only, every tabular model)",
                f"**{low[1]:,.0f} rows/s** worst ({low[0]}); " + ", ".join(f"{w} {v:,.0f}" for w, v in compute.items()),
                low[1] >= 100_000,
            )
        )
        rows.append(
            (
                "the same with JSON validation + serialisation (reported, no target)",
                f"**{low_full[1]:,.0f} rows/s** worst ({low_full[0]}); "
                + ", ".join(f"{w} {v:,.0f}" for w, v in full.items()),
                None,
            )
        )
    else:
        rows.append(("batch scoring ≥ 100,000 rows/s in-process", "not measured", None))

    ratios = {}
    for w in singles:
        mine, theirs = _cell(results, w, 1, key), _cell(results, w, 1, "original")
        if mine and theirs:
            ratios[w] = mine["p50_ms"] / theirs["p50_ms"]
    rows.append(
        _ratio_row("serial p50 (c=1) ≤ 0.5× the original design's, every single-record route", ratios, 0.5, "<=")
    )
    ratios = {}
    livez = _cell(results, "livez", 1, key)
    for w in singles:
        mine = _cell(results, w, 1, key)
        if mine and livez:
            ratios[w] = mine["p50_ms"] / livez["p50_ms"]
    rows.append(
        _ratio_row(
            "serial p50 (c=1) ≤ 1.5× the same server's `/livez` p50"
            + (f" ({livez['p50_ms']:.2f} ms)" if livez else "")
            + ", every single-record route",
            ratios,
            1.5,
            "<=",
        )
    )
    ratios = {}
    for w in singles:
        mine, theirs = _cell(results, w, 32, key), _cell(results, w, 32, "original")
        if mine and theirs:
            ratios[w] = mine["rps"] / theirs["rps"]
    rows.append(
        _ratio_row("throughput at c=32 ≥ 5× the original design's, every single-record route", ratios, 5.0, ">=")
    )
    ratios = {}
    for c in (1, 32):
        mine, theirs = _cell(results, "mri", c, key), _cell(results, "mri", c, "original")
        if mine and theirs:
            ratios[f"c={c}"] = mine["rps"] / theirs["rps"]
    rows.append(_ratio_row("MRI upload throughput ≥ 1.0× the original design's at c=1 and at c=32", ratios, 1.0, ">="))
    ratios = {}
    mine, theirs = _cell(results, "batch1000", 1, key), _cell(results, "batch1000", 1, "original")
    if mine and theirs:
        ratios["c=1"] = mine["rps"] / theirs["rps"]
    rows.append(_ratio_row("1,000-record batch throughput ≥ 1.0× the original design's (c=1)", ratios, 1.0, ">="))

    startup = results["startup_s"].get(key)
    if startup:
        value = _median(startup)
        text = f"**{value:.2f} s** (median of " + ", ".join(f"{t:.2f}" for t in startup) + " s)"
        rows.append(("start-up to `/readyz` 200 ≤ 4 s (all eight models)", text, value <= 4.0))
    else:
        rows.append(("start-up to `/readyz` 200 ≤ 4 s (all eight models)", "not measured", None))
    workers = _workers(results.get("memory", {}).get(key, []))
    if workers:
        value = max(p["rss_mb"] for p in workers)
        total = sum(p["rss_mb"] for p in results["memory"][key])
        text = f"**{value:.0f} MB** largest of {len(workers)} worker(s); whole tree {total:.0f} MB"
        rows.append(("resident memory ≤ 300 MB per worker (after the load)", text, value <= 300))
    else:
        rows.append(("resident memory ≤ 300 MB per worker (after the load)", "not measured", None))

    answers = results.get("answers", {})
    singles_in = _numeric({w: floors[w].get("pickle_difference") for w in singles if w in floors})
    batch1000 = _numeric({"batch1000": floors.get("batch1000", {}).get("pickle_difference")})
    batches = _numeric({w: b["pickle_difference"] for w, b in batch.items()})
    served = _numeric({w: a["vs_pickle"] for w, a in answers.get(key, {}).items()})
    every = [*singles_in.values(), *batch1000.values(), *batches.values(), *served.values()]
    worst_value = max(every) if every else None
    parts = [
        f"in-process: schema examples {_diff(max(singles_in.values(), default=None))}",
        f"1,000-record batch {_diff(batch1000.get('batch1000'))}",
    ]
    if batches:
        rows_n = max(b["rows"] for b in batch.values())
        parts.append(f"{rows_n:,}-record batches of every model {_diff(max(batches.values()))}")
    if served:
        parts.append(f"this server over HTTP ({len(served)} workloads) {_diff(max(served.values()))}")
    rows.append(
        (
            "every answer equal to the pickle's within 1e-6 (largest absolute difference of the numeric fields)",
            f"**{_diff(worst_value)}**: " + "; ".join(parts) if every else "not measured",
            _ok(worst_value, 1e-6, "<="),
        )
    )
    between = {
        c: max(_numeric({w: a["vs_floor"] for w, a in by.items()}).values(), default=0.0) for c, by in answers.items()
    }
    worst_between = max(between.values()) if between else None
    rows.append(
        (
            "all contenders' answers equal to each other (the fields the original design returns, `model` aside; "
            "largest numeric difference from the in-process answer ≤ 1e-6, strings identical)",
            f"**{_diff(worst_between)}**: " + ", ".join(f"{c} {_diff(v)}" for c, v in between.items())
            if between
            else "not measured",
            _ok(worst_between, 1e-6, "<="),
        )
    )
    return rows


def _ok(value: float | None, bound: float, op: str) -> bool | None:
    if value is None:
        return None
    return {"<": value < bound, "<=": value <= bound, ">=": value >= bound}[op]


def _mark(ok: bool | None) -> str:
    return {True: "met", False: "**missed**", None: "–"}[ok]


def floor_table(results: dict) -> list[str]:
    """Issue #14's in-process figures per tabular model: single-record latency, batch rows/s, pickle differences."""
    batch = results.get("batch_throughput", {})
    floors = results["floors"]
    lines = [
        "## In-process floor per tabular model",
        "",
        "`VitalCheckAPI` called directly in a fresh process with the contenders' thread settings. Single: the "
        "schema example, p50/p99 of interleaved calls (compute: on the validated record; full: + JSON validation "
        "and serialisation). Batch: sampled real records, the median of the timed calls. "
        "Δ pickle: largest absolute difference of any numeric field from the pickle's answer.",
        "",
        "| model | single compute p50 / p99 ms | single full p50 ms | Δ pickle (single) "
        "| batch rows | batch compute rows/s | batch + JSON rows/s | Δ pickle (batch) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for w in SINGLE:
        if w not in floors:
            continue
        f, b = floors[w], batch.get(w)
        tail = (
            f"{b['rows']:,} | {b['compute_rows_per_s']:,.0f} | {b['full_rows_per_s']:,.0f} | {_diff(b['pickle_difference'])}"
            if b
            else "– | – | – | –"
        )
        lines.append(
            f"| {w} | {f['compute']['p50_ms']:.3f} / {f['compute']['p99_ms']:.3f} | {f['full']['p50_ms']:.3f} "
            f"| {_diff(f.get('pickle_difference'))} | {tail} |"
        )
    return [*lines, ""]


def plots(results: dict, out: Path) -> list[str]:
    """Latency percentiles and throughput against concurrency, one panel per workload."""
    os.environ.setdefault("MPLCONFIGDIR", str(out / "matplotlib"))  # its font cache: not in the home folder
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = {c["key"]: c["label"] for c in results["contenders"]}
    workloads = list(results["workloads"])
    files = []
    for what in ("latency", "throughput"):
        cols = 3
        rows = (len(workloads) + cols - 1) // cols
        fig, axes = plt.subplots(rows, cols, figsize=(15, 4.2 * rows), squeeze=False)
        for ax, workload in zip(axes.flat, workloads, strict=False):
            for i, key in enumerate(labels):
                cells = sorted(
                    (r for r in results["load"] if r["workload"] == workload and r["contender"] == key),
                    key=lambda r: r["concurrency"],
                )
                if not cells:
                    continue
                x = [r["concurrency"] for r in cells]
                colour = f"C{i}"
                if what == "latency":
                    ax.plot(x, [r["p50_ms"] for r in cells], "o-", color=colour, label=f"{labels[key]} p50")
                    ax.plot(x, [r["p99_ms"] for r in cells], "s--", color=colour, alpha=0.6, label=f"{labels[key]} p99")
                else:
                    ax.plot(x, [r["rps"] for r in cells], "o-", color=colour, label=labels[key])
            floor = results["floors"].get(workload)
            if floor:
                if what == "latency":
                    ax.axhline(floor["compute"]["p50_ms"], color="grey", ls=":", label="in-process compute p50")
                else:
                    ax.axhline(floor["compute"]["rps"], color="grey", ls=":", label="in-process compute, 1 core")
            ax.set_title(results["workloads"][workload]["title"], fontsize=9)
            ax.set_xscale("log", base=2)
            levels = sorted({r["concurrency"] for r in results["load"] if r["workload"] == workload})
            ax.set_xticks(levels, [str(c) for c in levels])
            ax.minorticks_off()
            ax.set_yscale("log")
            ax.set_xlabel("concurrency (closed loop)")
            ax.set_ylabel("latency, ms" if what == "latency" else "responses / s")
            ax.grid(True, which="both", alpha=0.3)
        for ax in list(axes.flat)[len(workloads) :]:
            ax.axis("off")
        handles, names = axes.flat[1].get_legend_handles_labels()
        fig.legend(handles, names, loc="lower center", ncol=4, fontsize=8)
        fig.suptitle(
            f"VitalCheck benchmarks: {'latency p50 (solid) and p99 (dashed)' if what == 'latency' else 'throughput'}"
            f" vs concurrency — {results['machine']['cpu']}, {results['machine']['cores']} cores"
        )
        fig.tight_layout(rect=(0, 0.08, 1, 0.97))
        name = f"bench_{what}.png"
        fig.savefig(out / name, dpi=80)
        plt.close(fig)
        files.append(name)
    return files


def levers(results: dict) -> list[str]:
    """One row per VitalCheck variant: the figures each setting moves, with the ratio to VitalCheck as shipped."""
    variants = [c for c in results["contenders"] if c["kind"] == "bentoml"]
    if len(variants) < 2:
        return []
    high = 32 if 32 in results["plan"]["concurrencies"] else max(results["plan"]["concurrencies"])
    columns = [("diabetes", 1, "p50_ms"), ("stroke", 1, "p50_ms")]
    columns += [(w, high, "rps") for w in ("diabetes", "stroke", "insurance", "mri", "livez")]
    header = " | ".join(f"{w} c={c} {'p50 ms' if f == 'p50_ms' else 'req/s'}" for w, c, f in columns)
    lines = [
        "## Levers: each VitalCheck variant against VitalCheck as shipped",
        "",
        "Ratios to VitalCheck as shipped in parentheses (latency: lower is better; req/s: higher is better).",
        "",
        f"| variant | start-up s (median) | largest worker RSS MB / tree MB | {header} |",
        "|---|---|---|" + "---|" * len(columns),
    ]
    for c in variants:
        key = c["key"]
        startup = results["startup_s"].get(key)
        memory = results.get("memory", {}).get(key, [])
        workers = _workers(memory)
        mem = f"{max(p['rss_mb'] for p in workers):.0f} / {sum(p['rss_mb'] for p in memory):.0f}" if workers else "–"
        cells = []
        for w, conc, field in columns:
            mine, base = _cell(results, w, conc, key), _cell(results, w, conc, "vitalcheck")
            if not mine:
                cells.append("–")
                continue
            ratio = f" ({mine[field] / base[field]:.2f})" if base and key != "vitalcheck" else ""
            cells.append(_fmt(mine[field], 1) + ratio)
        lines.append(
            f"| {c['label']} | {_fmt(_median(startup)) if startup else '–'} | {mem} | " + " | ".join(cells) + " |"
        )
    return [*lines, ""]


def answers_table(results: dict, labels: dict[str, str]) -> list[str]:
    """Every contender's answer to every workload against the in-process answer and the pickle's."""
    answers = results.get("answers", {})
    workloads = [w for w in results["workloads"] if any(w in a for a in answers.values())]
    lines = [
        "",
        "Every contender's answer to every workload: largest absolute difference of the numeric fields from "
        "the in-process answer (the fields the original design returns, the `model` block aside) / from the "
        "pickle's answer (`benchmarks/reference.py`; none for the MRI upload). 0: identical; "
        "mismatch: a field missing, a string different or an HTTP error.",
        "",
        "| contender | " + " | ".join(workloads) + " |",
        "|---|" + "---|" * len(workloads),
    ]
    for key, by_workload in answers.items():
        cells = []
        for w in workloads:
            a = by_workload.get(w)
            if a is None:
                cells.append("–")
                continue
            status = "" if a.get("status") == 200 else f"HTTP {a.get('status')}: "
            cells.append(f"{status}{_diff(a['vs_floor'])} / {_diff(a['vs_pickle'])}")
        lines.append(f"| {labels.get(key, key)} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def markdown(results: dict, images: list[str]) -> str:
    """The report's markdown text."""
    m = results["machine"]
    plan = results["plan"]
    labels = {c["key"]: c["label"] for c in results["contenders"]}
    keys = list(labels)
    vitalchecks = [c["key"] for c in results["contenders"] if c["kind"] == "bentoml"]
    date = results["started"].replace("T", " ").replace("+00:00", " UTC")
    per_connection = plan.get("per_connection", 2)
    lines = [
        "# VitalCheck benchmarks: issue #14 (compiled inference) against the original design",
        "",
        f"- **Command**: `{results['command']}`, started {date}, took {results['elapsed_s'] / 60:.1f} min.",
        f"- **Machine**: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, Linux {m['kernel']}, "
        f"Python {m['python']}; " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()),
        f"- **Load average** (1/5/15 min) before: {results['load_before']}, after: {results['load_after']} "
        f"(the machine may be shared; anything above ~0.3 before the run means other work was competing for the "
        f"{m['cores']} cores).",
        "",
        "One interleaved run: every contender on the same machine, the same artifacts and the same request bodies; "
        f"each (workload, concurrency) cell is split into up to {plan.get('rounds', 1)} rounds, and in every round each "
        "contender runs in turn (the order rotating), so bursts of outside load hit all contenders alike. "
        "A cell's p50 and p99 are the medians of its rounds; req/s is all its responses over all its time. "
        "Every ratio below comes from this one run.",
        "",
        "## Issue #14 targets",
        "",
    ]
    if "original" in labels:
        lines += [
            f'Baseline ("the original design\'s" below, contender *{labels["original"]}*): **{ORIGINAL_BASELINE}** '
            "(`benchmarks/apps/original_design.py`: the seven pickles loaded once with `joblib.load` in the "
            "lifespan, handed to sync routes with `Depends`, 1 uvicorn worker; the 1,000-record batch: one "
            "`predict_proba` on a 1,000-row DataFrame; the MRI upload: the same ONNX graph and image path as VitalCheck).",
            "",
        ]
    for key in vitalchecks:
        lines += [f"**{labels[key]}**", "", "| target | measured | met/missed |", "|---|---|---|"]
        lines += [f"| {t} | {m_} | {_mark(ok)} |" for t, m_, ok in issue14_targets(results, key)]
        lines.append("")
    lines += [
        "## Set-up",
        "",
        f"- **Load generator**: {m['wrk']}, one thread, closed loop (each connection sends its next request "
        "when the previous answer arrives), a fixed number of responses per cell "
        f"({', '.join(f'{k} {v}' for k, v in plan['requests'].items())}; at least {per_connection} per connection; "
        "reload-per-request, when run: "
        f"{', '.join(f'{k} {v}' for k, v in plan['reload_requests'].items())}, at least 2 per connection).",
        "- **Threads**: OMP/OpenBLAS/MKL = 1 thread per process in every contender and the floor; "
        "ONNX Runtime 1 intra- and 1 inter-op thread.",
        "- **How to run**: `make bench` (the whole comparison, about 12 min on 2 cores; needs `apt-get install wrk`), "
        "`make bench BENCH_QUICK=1` (smoke run, 3-4 min), `make bench BENCH_LEVERS=1` (adds each lever alone), "
        "`BENCH_CONTENDERS=reload,original,vitalcheck` (only those; reload-per-request runs only when named); "
        "the report, `results.json`, the plots and the servers' logs go to `benchmarks/results/`; "
        "`python -m benchmarks.report DIR` re-renders a report from a saved `results.json`.",
        "",
        "| contender | what it is |",
        "|---|---|",
        *[f"| {c['label']} | {c['note']} |" for c in results["contenders"]],
        "| in-process floor | `VitalCheckAPI` called directly on the same inputs, no HTTP "
        "(compute: on a validated request; full: + JSON validation and serialisation) |",
        "",
    ]
    lines += floor_table(results)
    lines += ["## Issue #5 targets (its thresholds, for comparison)", ""]
    for key in vitalchecks:
        lines += [f"**{labels[key]}**", "", "| target | measured | value | |", "|---|---|---|---|"]
        lines += [f"| {t} | {m_} | {v} | {_mark(ok)} |" for t, m_, v, ok in targets(results, key)]
        lines.append("")

    lines += levers(results)
    lines += ["## Latency and throughput", ""]
    lines += [f"![{name}]({name})" for name in images]
    lines.append("")
    for workload, meta in results["workloads"].items():
        lines += [
            f"### {meta['title']} — `{meta['path']}`",
            "",
            "| c | contender | p50 ms | p50 of the rounds (min–max) | p99 ms | req/s | errors | server CPU ms/req |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in results["load"]:
            if row["workload"] != workload:
                continue
            spread = row.get("p50_spread_ms", [row["p50_ms"], row["p50_ms"]])
            lines.append(
                f"| {row['concurrency']} | {labels[row['contender']]} | {_fmt(row['p50_ms'])} "
                f"| {_fmt(spread[0])}–{_fmt(spread[1])} ({row.get('rounds', 1)}) | {_fmt(row['p99_ms'])} "
                f"| {_fmt(row['rps'], 1)} | {row['errors']} | {_fmt(row['server_cpu_ms_per_req'])} |"
            )
        floor = results["floors"].get(workload)
        if floor:
            lines.append(
                f"| 1 | in-process compute | {_fmt(floor['compute']['p50_ms'])} | – | {_fmt(floor['compute']['p99_ms'])} "
                f"| {_fmt(floor['compute']['rps'], 1)} | – | – |"
            )
            lines.append(
                f"| 1 | in-process full | {_fmt(floor['full']['p50_ms'])} | – | {_fmt(floor['full']['p99_ms'])} "
                f"| {_fmt(floor['full']['rps'], 1)} | – | – |"
            )
        lines.append("")

    ceiling = [r for r in results["load"] if r["workload"] == "livez"]
    if ceiling:
        best = max(ceiling, key=lambda r: r["rps"])
        lines += [
            "### Is the load generator the bottleneck?",
            "",
            f"The highest rate measured on a trivial endpoint was {best['rps']:,.0f} req/s "
            f"({labels[best['contender']]}, c={best['concurrency']}), with wrk using "
            f"{best['client_cpu_s'] / best['seconds'] * 100:.0f} % of one core; every model workload ran at a "
            "fraction of that rate, so the servers, not wrk, set the figures. wrk's CPU per run is in results.json.",
            "",
        ]

    lines += [
        "## Start-up, memory, answers",
        "",
        "| contender | start-up to /readyz 200, s (each cold start) | processes: role RSS (USS) MB | total RSS MB |",
        "|---|---|---|---|",
    ]
    for key in keys:
        memory = results["memory"].get(key, [])
        procs = "; ".join(f"{p['role']} {p['rss_mb']:.0f} ({p['uss_mb']:.0f})" for p in memory)
        total = sum(p["rss_mb"] for p in memory)
        startup = ", ".join(f"{t:.2f}" for t in results["startup_s"].get(key, []))
        lines.append(f"| {labels[key]} | {startup} | {procs} | {total:.0f} |")
    breakdown = results.get("startup_breakdown")
    if breakdown:
        lines += [
            "",
            "Where VitalCheck's start-up goes (steps timed one after the other in one fresh process): "
            f"`import service` {breakdown['import_wall_s']:.2f} s wall / {breakdown['import_cpu_s']:.2f} s CPU and "
            f"the pre-flight check (sha256 of every artifact, scikit-learn version, both tables) "
            f"{breakdown.get('preflight_wall_s', 0):.2f} s / {breakdown.get('preflight_cpu_s', 0):.2f} s CPU, in the "
            "serving process before any worker is spawned; then in each worker `load_registry()` (scikit-learn, "
            f"pandas and ONNX Runtime imports, unpickling, golden checks, ONNX session) {breakdown['load_wall_s']:.2f} s "
            f"wall / {breakdown['load_cpu_s']:.2f} s CPU.",
        ]
    lines += answers_table(results, labels)

    scoring = results.get("scoring", {})
    if scoring:
        inproc = scoring["inprocess"]
        lines += [
            f"## Batch scoring of {inproc['rows']:,} records",
            "",
            f"Diabetes records (real rows, sampled with replacement) in chunks of {plan['scoring_chunk']:,}, one after "
            "the other, through each server's `/api/v1/risk/diabetes/batch` on one keep-alive connection, "
            "vs the same chunks scored in-process (validate the JSON, score with contributions, serialise).",
            "",
            "| path | rows | seconds | rows/s | ÷ in-process |",
            "|---|---|---|---|---|",
            f"| in-process | {inproc['rows']:,} | {inproc['seconds']:.1f} | {inproc['rows_per_s']:,.0f} | 1.00 |",
        ]
        for key, s in scoring.items():
            if key == "inprocess":
                continue
            ratio = s["rows_per_s"] / inproc["rows_per_s"]
            lines.append(
                f"| {labels[key]} | {s['rows']:,} | {s['seconds']:.1f} | {s['rows_per_s']:,.0f} | {ratio:.2f} |"
            )
        lines.append(f"\n(In-process compute alone, without JSON: {inproc['compute_rows_per_s']:,.0f} rows/s.)\n")
    return "\n".join(lines) + "\n"


def write(results: dict, out: Path) -> Path:
    """Write REPORT.md and the plots into ``out``; return the report's path."""
    images = plots(results, out)
    path = out / "REPORT.md"
    path.write_text(markdown(results, images))
    return path


if __name__ == "__main__":
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("results")
    print(write(json.loads((folder / "results.json").read_text()), folder))
