"""Command line: ``python -m vitalcheck.training train|evaluate|image-stats``.

``train`` builds the seven tabular models (and the reference tables) from the shared data::

    python -m vitalcheck.training train [--data-dir DIR] [--out DIR] [--reference-dir DIR] [--only NAME ...]

``--only`` takes tabular model names, ``reference`` (the Parquet reference tables) and
``brain_tumor`` (the CNN: trained only when named). Without ``--only``: the seven tabular
models and the reference tables. ``evaluate`` scores a saved model on a file in the data
set's source format and prints the metrics as JSON::

    python -m vitalcheck.training evaluate --model NAME --data FILE [--artifacts-dir DIR]

``image-stats`` recomputes, from the brain-MRI slices, the statistics behind the served
image validity screen (:data:`vitalcheck.imaging.SLICE_VALIDITY`) and prints, as JSON, their
train-split quantiles, the derived central range, and the screen's refusals, warnings and cost
on the train and test slices (:mod:`vitalcheck.training.image_stats`; no model is trained)::

    python -m vitalcheck.training image-stats [--data-dir DIR] [--out FILE]

Defaults come from :func:`vitalcheck.settings.get_settings`. The brain-MRI and reference
modules are imported only when used, so the tabular models build without them (or torch).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any

from vitalcheck.cards import ArtifactCheckError
from vitalcheck.catalog import BRAIN_TUMOR, TABULAR_MODELS
from vitalcheck.settings import get_settings

BRAIN = BRAIN_TUMOR.name
REFERENCE = "reference"
_BRAIN_MODULE = "vitalcheck.training.brain_mri.trainer"
_REFERENCE_MODULE = "vitalcheck.training.reference_tables"


class CLIError(RuntimeError):
    """A user-facing error (printed without a traceback, exit status 1)."""


def _import(module: str, what: str, required: bool) -> ModuleType | None:
    """Import an optional training module; None (if not required) when the module itself is absent."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if not required and exc.name == module:
            return None
        raise CLIError(f"{what} needs {module}, which cannot be imported: {exc}") from exc


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m vitalcheck.training", description="Train and evaluate VitalCheck models."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    names = [*TABULAR_MODELS, REFERENCE, BRAIN]
    train = sub.add_parser("train", help="train models into the artifacts directory")
    train.add_argument("--data-dir", type=Path, help="shared data directory (default: settings.data_dir)")
    train.add_argument("--out", type=Path, help="artifacts output directory (default: settings.artifacts_dir)")
    train.add_argument("--reference-dir", type=Path, help="reference-table directory (default: settings.reference_dir)")
    train.add_argument(
        "--only",
        nargs="+",
        choices=names,
        metavar="NAME",
        help=f"build only these ({', '.join(names)}); default: the tabular models and the reference tables",
    )
    ev = sub.add_parser("evaluate", help="score a saved model on a data file and print metrics JSON")
    ev.add_argument("--model", required=True, choices=[*TABULAR_MODELS, BRAIN])
    ev.add_argument(
        "--data", required=True, type=Path, help="file in the data set's source format (brain_tumor: manifest.csv)"
    )
    ev.add_argument("--artifacts-dir", type=Path, help="artifacts directory (default: settings.artifacts_dir)")
    stats = sub.add_parser("image-stats", help="recompute the MRI validity screen's statistics and print JSON")
    stats.add_argument("--data-dir", type=Path, help="shared data directory (default: settings.data_dir)")
    stats.add_argument("--out", type=Path, help="also write the JSON report to this file")
    return parser


class _Progress:
    """Per-model progress: a rich progress bar when rich is installed, plain lines otherwise."""

    def __init__(self, total: int):
        self.start = time.perf_counter()
        try:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
        except ImportError:
            self.progress = None
            return
        self.console = Console(stderr=True)
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self.task = self.progress.add_task("training", total=total)

    def __enter__(self) -> _Progress:
        if self.progress is not None:
            self.progress.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.progress is not None:
            self.progress.__exit__(exc_type, exc, tb)

    def status(self, name: str, message: str) -> None:
        if self.progress is not None:
            self.progress.update(self.task, description=f"{name}: {message}")

    def done(self, line: str) -> None:
        elapsed = time.perf_counter() - self.start
        text = f"[{elapsed:6.1f}s] {line}"
        if self.progress is not None:
            self.progress.console.print(text, markup=False, highlight=False, soft_wrap=True)
            self.progress.advance(self.task)
        else:
            print(text, file=sys.stderr, flush=True)


def _summary(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in metrics.items())


def train(data_dir: Path, out_dir: Path, reference_dir: Path, only: Sequence[str] | None) -> int:
    """Build the requested models; returns the process exit status (0 = all built)."""
    from vitalcheck.training import tabular
    from vitalcheck.training.model_cards import write_summary

    if not data_dir.is_dir():
        raise CLIError(f"data directory {data_dir} does not exist (set --data-dir or VITALCHECK_DATA_DIR)")
    wanted = list(dict.fromkeys(only)) if only else [*TABULAR_MODELS, REFERENCE]
    jobs: list[tuple[str, Callable[[Callable[[str], None]], str]]] = []
    for name in wanted:
        if name in TABULAR_MODELS:

            def job(log: Callable[[str], None], name: str = name) -> str:
                card = tabular.train_model(name, data_dir, out_dir, log=log)
                return f"{name}: {card.estimator.split(' (')[0].split(';')[0]} — test {_summary(card.metrics)}"

            jobs.append((name, job))
        elif name == REFERENCE:
            module = _import(_REFERENCE_MODULE, "building the reference tables", required=bool(only))
            if module is None:
                print(f"warning: skipping the reference tables: {_REFERENCE_MODULE} is not available", file=sys.stderr)
                continue

            def ref_job(log: Callable[[str], None], module: ModuleType = module) -> str:
                log("building")
                reference_dir.mkdir(parents=True, exist_ok=True)
                module.build(data_dir, reference_dir)
                return f"reference tables → {reference_dir}"

            jobs.append((REFERENCE, ref_job))
        elif name == BRAIN:
            module = _import(_BRAIN_MODULE, "training brain_tumor", required=True)
            assert module is not None  # required: _import raises rather than return None

            def brain_job(log: Callable[[str], None], module: ModuleType = module) -> str:
                log("training (slow)")
                out_dir.mkdir(parents=True, exist_ok=True)
                module.train(data_dir, out_dir)
                return f"brain_tumor → {out_dir / BRAIN_TUMOR.artifact}"

            jobs.append((BRAIN, brain_job))
    with _Progress(len(jobs)) as progress:
        for name, run in jobs:
            started = time.perf_counter()
            line = run(partial(progress.status, name))
            progress.done(f"{line} ({time.perf_counter() - started:.1f}s)")
    if out_dir.is_dir():
        summary = write_summary(out_dir)
        if summary is not None:
            print(f"wrote {summary}", file=sys.stderr)
    print(f"done in {time.perf_counter() - progress.start:.1f}s", file=sys.stderr)
    return 0


def evaluate(model: str, data: Path, artifacts_dir: Path) -> dict[str, Any]:
    """Metrics of a saved model on ``data`` (see :func:`vitalcheck.training.evaluation.evaluate`)."""
    if not data.is_file():
        raise CLIError(f"data file {data} does not exist")
    if model == BRAIN:
        module = _import(_BRAIN_MODULE, "evaluating brain_tumor", required=True)
        assert module is not None
        return module.evaluate(artifacts_dir / BRAIN_TUMOR.artifact, data)
    from vitalcheck.training import evaluation

    return evaluation.evaluate(model, data, artifacts_dir)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    args = _parser().parse_args(argv)
    settings = get_settings()
    try:
        if args.command == "train":
            return train(
                args.data_dir or settings.data_dir,
                args.out or settings.artifacts_dir,
                args.reference_dir or settings.reference_dir,
                args.only,
            )
        if args.command == "image-stats":
            from vitalcheck.training import image_stats

            text = json.dumps(image_stats.report(args.data_dir or settings.data_dir), indent=2)
            if args.out:
                args.out.write_text(text + "\n")
            print(text)
            return 0
        metrics = evaluate(args.model, args.data, args.artifacts_dir or settings.artifacts_dir)
        print(json.dumps(metrics, indent=2, sort_keys=True))
        return 0
    except (CLIError, ArtifactCheckError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
