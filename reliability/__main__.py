"""`python -m reliability [steps...]`: run the reliability steps one after the other, write results.

Steps: ``startup`` (every damaged artifact/table refused by `bentoml serve`), ``fuzz`` (full
schemathesis + upload fuzzing), ``kill`` (SIGKILL a worker under load), ``term`` (SIGTERM under
load), ``timeout`` (request over traffic.timeout), ``soak``. Default: all, in that order. Only one
server runs at a time. Each step writes ``reliability/results/<step>.json``; the exit status is 1
when any step failed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

from reliability.common import RESULTS, machine
from reliability.load import write

STEPS = ("startup", "fuzz", "kill", "term", "timeout", "soak")


def startup() -> dict:
    """Run tests/reliability (slow, one refused `bentoml serve` per damage) and collect its timings."""
    report = RESULTS / "startup.xml"
    RESULTS.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pytest", "tests/reliability", "-m", "slow", "-q", f"--junitxml={report}"]
    status = subprocess.call(command)
    cases = []
    for case in ET.parse(report).iter("testcase"):
        seconds = {p.get("name"): p.get("value") for p in case.iter("property")}.get("refusal_seconds")
        failed = case.find("failure") is not None or case.find("error") is not None
        cases.append({"case": case.get("name"), "passed": not failed, "refusal_seconds": seconds})
    return {"scenario": "bentoml serve with one damaged artifact or table", "cases": cases, "passed": status == 0}


def main(argv: list[str] | None = None) -> int:
    """Run the chosen steps; return 0 when all passed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("steps", nargs="*", default=list(STEPS), help=f"any of {STEPS}")
    parser.add_argument("--soak-minutes", type=float, default=10)
    parser.add_argument("--soak-concurrency", type=int, default=32)
    parser.add_argument("--fuzz-examples", type=int, default=500, help="schemathesis cases per operation and mode")
    parser.add_argument("--upload-examples", type=int, default=200, help="damaged files per upload endpoint")
    args = parser.parse_args(argv)
    unknown = set(args.steps) - set(STEPS)
    if unknown:
        parser.error(f"unknown steps {sorted(unknown)}; choose from {STEPS}")

    from reliability import faults, fuzz, soak

    runners = {
        "startup": startup,
        "fuzz": lambda: fuzz.full_fuzz(args.fuzz_examples, args.upload_examples),
        "kill": faults.kill_worker,
        "term": faults.terminate,
        "timeout": faults.request_timeout,
        "soak": lambda: soak.soak(args.soak_minutes, concurrency=args.soak_concurrency),
    }
    failed = []
    for step in args.steps:
        print(f"== {step} (machine: {machine()})", flush=True)
        started = time.monotonic()
        result = runners[step]()
        result["step_seconds"] = round(time.monotonic() - started, 1)
        write(RESULTS / f"{step}.json", result)
        print(f"== {step}: {'passed' if result['passed'] else 'FAILED'} in {result['step_seconds']} s", flush=True)
        if not result["passed"]:
            failed.append(step)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
