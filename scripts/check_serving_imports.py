"""Fail if the serving code imports training code: the Bento leaves ``vitalcheck/training/`` out.

Imports ``service`` and every module the Bento packs (``vitalcheck/**`` except ``training/`` and
``batch/``, as in bentofile.yaml), then lists any ``vitalcheck.training`` module that got loaded.
Run by ``make lint``; the runtime check (a worker that has loaded and served) is
tests/integration/test_serve.py::test_a_serving_worker_loads_no_training_module.
"""

import importlib
import pkgutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXCLUDED = ("vitalcheck.training", "vitalcheck.batch")


def main() -> int:
    """Exit status 1, naming them, if any training or batch module was imported; else 0."""
    sys.path.insert(0, str(ROOT))
    import vitalcheck

    importlib.import_module("service")
    packages = [(vitalcheck.__path__, "vitalcheck.")]
    while packages:
        path, prefix = packages.pop()
        for module in pkgutil.iter_modules(path, prefix):
            if module.name.startswith(EXCLUDED):
                continue
            imported = importlib.import_module(module.name)
            if module.ispkg:
                packages.append((imported.__path__, module.name + "."))
    loaded = sorted(name for name in sys.modules if name.startswith(EXCLUDED))
    if loaded:
        print(f"serving code imports modules the Bento leaves out: {', '.join(loaded)}", file=sys.stderr)
        return 1
    print("serving imports no training or batch module")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
