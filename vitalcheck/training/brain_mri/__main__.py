"""Training and evaluation of the brain-tumour MRI classifier (training only: uses torch).

The command line of :mod:`vitalcheck.training.brain_mri` without the project CLI::

    python -m vitalcheck.training.brain_mri train [--data DIR] [--out DIR] [--epochs N]
    python -m vitalcheck.training.brain_mri evaluate [--model FILE] [--data MANIFEST] [--split SPLIT]
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path

from vitalcheck.catalog import BRAIN_TUMOR
from vitalcheck.training.brain_mri.data import DATASET_FOLDER, MANIFEST
from vitalcheck.training.brain_mri.fit import EPOCHS
from vitalcheck.training.brain_mri.trainer import evaluate, train


def main(argv: Sequence[str] | None = None) -> None:
    """Command line without the project CLI: ``train`` or ``evaluate``."""
    from vitalcheck.settings import get_settings

    settings = get_settings()
    parser = argparse.ArgumentParser(
        prog="python -m vitalcheck.training.brain_mri", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_train = sub.add_parser("train")
    p_train.add_argument("--data", type=Path, default=settings.data_dir)
    p_train.add_argument("--out", type=Path, default=settings.artifacts_dir)
    p_train.add_argument("--epochs", type=int, default=EPOCHS)
    p_eval = sub.add_parser("evaluate")
    p_eval.add_argument("--model", type=Path, default=settings.artifacts_dir / BRAIN_TUMOR.artifact)
    p_eval.add_argument("--data", type=Path, default=settings.data_dir / DATASET_FOLDER / MANIFEST)
    p_eval.add_argument("--split", default="test", help="split to score; 'all' for every row")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.command == "train":
        train(args.data, args.out, epochs=args.epochs)
    else:
        print(json.dumps(evaluate(args.model, args.data, split=None if args.split == "all" else args.split), indent=2))


if __name__ == "__main__":
    main()
