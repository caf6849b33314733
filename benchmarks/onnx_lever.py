"""Lever of issue #5 measured in-process: serving the scikit-learn pipelines through ONNX Runtime.

For each of the seven pickled pipelines (the pickle stays the source of truth): convert it with
skl2onnx (one graph input per raw feature: float64 numbers, strings for categories), then on
200 real records of its data set compare the ONNX outputs with the pipeline's (the issue's bar:
within 1e-6), and time one single-record prediction with its contributions, the way the service
makes it (the ``n × (f + 1)`` block frame of :meth:`~vitalcheck.predictors.tabular.TabularPredictor.block_frame`):
``predict_proba``/``predict`` of the pipeline vs one ONNX Runtime session run. Also times
``import skl2onnx``-free serving imports: ``import onnxruntime`` vs ``import sklearn.pipeline``.

Not part of ``make bench`` (needs the ``onnx-lever`` extra: skl2onnx and onnx):
``.venv/bin/pip install -e '.[onnx-lever]' && .venv/bin/python -m benchmarks.onnx_lever``.
Writes ``benchmarks/results/onnx_lever.json`` and prints a markdown table.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from benchmarks.servers import ROOT, VENV_BIN
from benchmarks.workloads import sample_records
from vitalcheck.catalog import TABULAR_MODELS
from vitalcheck.predictors.tabular import TabularPredictor
from vitalcheck.settings import get_settings

TOLERANCE = 1e-6
"""Largest absolute difference allowed between the ONNX and the pickle's outputs (the issue's bar)."""


def _median_ms(call, repeats: int = 200) -> float:
    for _ in range(20):
        call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def _inputs(predictor: TabularPredictor, frame) -> dict[str, np.ndarray]:
    """One (n, 1) array per feature: float64 numbers (NaN for missing), strings for categories."""
    feeds = {}
    for feature in predictor.spec.features:
        column = frame[feature.name]
        if feature.type == "category":
            feeds[feature.name] = np.array([["" if v != v else str(v)] for v in column], dtype=object)
        else:
            feeds[feature.name] = column.to_numpy(np.float64).reshape(-1, 1)
    return feeds


def convert(predictor: TabularPredictor):
    """The ONNX model of the central pipeline (insurance: the central-estimate model), or raise."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import DoubleTensorType, StringTensorType

    estimator = predictor.estimator[0] if predictor.spec.kind == "interval_regressor" else predictor.estimator
    types = [
        (f.name, StringTensorType([None, 1]) if f.type == "category" else DoubleTensorType([None, 1]))
        for f in predictor.spec.features
    ]
    options = {id(estimator): {"zipmap": False}} if predictor.spec.kind == "classifier" else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return to_onnx(estimator, initial_types=types, options=options, target_opset=18)


def measure(name: str, data_dir: Path) -> dict:
    """Convert, compare and time one model; the reason if it does not convert or does not match."""
    import onnxruntime as ort

    spec = TABULAR_MODELS[name]
    settings = get_settings()
    predictor = TabularPredictor.load(spec, settings.artifacts_dir, f"{spec.store_name}:local")
    records = sample_records(name, 200, data_dir, seed=4)
    frame, _ = predictor.block_frame(records[:1])
    rows, _ = predictor.block_frame(records)
    rows = rows.iloc[:: len(spec.features) + 1].reset_index(drop=True)
    classifier = spec.kind == "classifier"
    central = predictor.estimator[0] if spec.kind == "interval_regressor" else predictor.estimator

    def sklearn_call(f):
        return central.predict_proba(f) if classifier else central.predict(f)

    result: dict = {"model": name, "estimator": predictor.card.estimator.split(";")[0]}
    result["sklearn_block_ms"] = _median_ms(lambda: sklearn_call(frame))
    try:
        onx = convert(predictor)
    except Exception as exc:  # report why a pipeline does not convert
        result["converted"] = False
        result["reason"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
        return result
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    try:
        session = ort.InferenceSession(onx.SerializeToString(), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        result["converted"] = False
        result["reason"] = f"ONNX Runtime refused the graph: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
        return result
    output = 1 if classifier else 0

    def onnx_call(f):
        return session.run(None, _inputs(predictor, f))[output]

    expected = np.asarray(sklearn_call(rows), dtype=float).reshape(len(rows), -1)
    got = np.asarray(onnx_call(rows), dtype=float).reshape(len(rows), -1)
    result["converted"] = True
    result["max_abs_difference"] = float(np.max(np.abs(got - expected)))
    result["within_tolerance"] = result["max_abs_difference"] <= TOLERANCE
    result["onnx_block_ms"] = _median_ms(lambda: onnx_call(frame))
    result["speed_up"] = result["sklearn_block_ms"] / result["onnx_block_ms"]
    return result


def import_seconds(module: str) -> float:
    """Wall seconds of ``python -c 'import <module>'`` minus a bare interpreter start (median of 3)."""

    def run(code: str) -> float:
        started = time.perf_counter()
        subprocess.run([str(VENV_BIN / "python"), "-c", code], check=True, cwd=ROOT)
        return time.perf_counter() - started

    bare = statistics.median(run("pass") for _ in range(3))
    return statistics.median(run(f"import {module}") for _ in range(3)) - bare


def main() -> int:
    """Measure every model; write ``benchmarks/results/onnx_lever.json``; print a markdown table."""
    data_dir = get_settings().data_dir
    results = [measure(name, data_dir) for name in TABULAR_MODELS]
    imports = {m: import_seconds(m) for m in ("onnxruntime", "sklearn.pipeline")}
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "onnx_lever.json").write_text(json.dumps({"models": results, "import_s": imports}, indent=2))
    print(
        "| model | estimator | converts | max abs difference (200 real rows) | ≤ 1e-6 | "
        "pipeline, one record + contributions, ms | ONNX Runtime, ms | speed-up |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        if r["converted"]:
            print(
                f"| {r['model']} | {r['estimator']} | yes | {r['max_abs_difference']:.1e} | "
                f"{'yes' if r['within_tolerance'] else '**no**'} | {r['sklearn_block_ms']:.2f} | "
                f"{r['onnx_block_ms']:.3f} | {r['speed_up']:.0f}× |"
            )
        else:
            print(
                f"| {r['model']} | {r['estimator']} | **no**: {r['reason']} | – | – | {r['sklearn_block_ms']:.2f} | – | – |"
            )
    print(f"\nimport time (s, over a bare interpreter): {json.dumps({k: round(v, 2) for k, v in imports.items()})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
