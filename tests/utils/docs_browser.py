"""The documentation page in headless Chromium: screenshot, DOM, console and every request it tried.

``python -m tests.utils.docs_browser --out build/docs-page.png`` (``make docs-check``) registers
the artifacts in a fresh temporary model store, starts ``bentoml serve service:VitalCheck`` on a
free loopback port (:class:`tests.utils.serving.Served`), opens ``/`` in headless Chromium twice
(a screenshot, then the rendered DOM) and prints a JSON report; exit status 1 when a check
fails. Every temporary file (model store, server log, Chromium profile, net log) is removed.

Checks (:func:`problems`):

* the screenshot is not blank (many colours, VitalCheck's header band at the top);
* the rendered DOM has Swagger UI's operations, VitalCheck's title, version and disclaimer, and
  the *Authorize* button (the document declares the bearer scheme);
* the page caused no request to a host other than 127.0.0.1 (Chromium's net log: every request
  the page started, see :func:`netlog_requests`); Chromium's own background requests
  (accounts.google.com account listing, update.googleapis.com: not switchable off in this
  Chromium) are listed apart. Name resolution is mapped to nothing (``--host-resolver-rules``),
  so no attempt of either kind can leave the machine, and the page still has to render;
* the console shows no Content-Security-Policy refusal and no script error (an external script
  or image refused by the CSP never reaches the net log, so this check covers it).

tests/integration/test_docs_browser.py runs :func:`check_page` against the session's server.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})
WINDOW = (1280, 1600)
VIRTUAL_TIME_MS = 8000
HEADER_RGB = (15, 61, 62)
"""The colour of the page's header band (``.vc-header`` in :data:`vitalcheck.docs_page.STYLE`)."""

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-domain-reliability",
    "--disable-breakpad",
    "--disable-default-apps",
    "--disable-client-side-phishing-detection",
    "--disable-features=Translate,MediaRouter,OptimizationHints,NetworkTimeServiceQuerying,AutofillServerCommunication",
    "--metrics-recording-only",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--enable-logging=stderr",
    "--v=0",
    f"--window-size={WINDOW[0]},{WINDOW[1]}",
    f"--virtual-time-budget={VIRTUAL_TIME_MS}",
)

_URL = re.compile(r"\b(?:https?|wss?|ftp)://[^\s\"'<>\\]+", re.IGNORECASE)


def chromium_available() -> bool:
    """Whether :data:`CHROMIUM` exists (``apt-get install chromium``)."""
    return Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)


def run_chromium(url: str, workdir: Path, name: str, *mode: str, timeout: float = 120) -> dict:
    """Open ``url`` once in a fresh profile under ``workdir``; return stdout, stderr and the net log's requests.

    Args:
        url: the page.
        workdir: a scratch folder (profile, net log and HOME go there; TMPDIR is a short-lived folder
            of its own, removed afterwards).
        name: a label for this run's files.
        mode: ``--screenshot=…`` or ``--dump-dom``.
        timeout: seconds before Chromium is killed.

    """
    profile = workdir / f"profile-{name}"
    home = workdir / f"home-{name}"
    home.mkdir(parents=True)
    netlog = workdir / f"netlog-{name}.json"
    env = {
        **os.environ,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
    }
    command = [
        CHROMIUM,
        *CHROMIUM_FLAGS,
        f"--user-data-dir={profile}",
        f"--log-net-log={netlog}",
        "--net-log-capture-mode=Everything",
        *mode,
        url,
    ]
    # Chromium's singleton socket lives under TMPDIR and must have a short path (a Unix socket).
    scratch = tempfile.mkdtemp(prefix="vc-chromium-", dir="/tmp" if Path("/tmp").is_dir() else None)
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, env={**env, "TMPDIR": scratch}, check=False
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {
        "returncode": done.returncode,
        "stdout": done.stdout,
        "stderr": done.stderr,
        "requests": netlog_requests(netlog),
    }


def netlog_requests(netlog: Path) -> dict[str, list[str]]:
    """The URL requests of a Chromium net log, split into the page's own and the browser's background ones.

    A request is the page's when the page started it (its ``initiator`` is an origin: every
    subresource, fetch, and any navigation the page itself starts) or when it is a top-level
    navigation (no initiator) to a loopback address, i.e. opening the page. What is left is
    Chromium's own background traffic (sign-in account listing, component updates: no
    initiator, not loopback); it is recorded too, and name resolution maps it to nothing.
    An unreadable log counts every URL in it as the page's.
    """
    if not netlog.is_file():
        return {"page": [], "background": [], "missing": ["net log not written"]}
    text = netlog.read_text(errors="replace")
    try:
        log = json.loads(text)
        names = {number: name for name, number in log["constants"]["logEventTypes"].items()}
        starts = [
            event["params"]
            for event in log["events"]
            if names.get(event.get("type")) == "URL_REQUEST_START_JOB" and "url" in (event.get("params") or {})
        ]
    except (ValueError, KeyError, TypeError):
        return {"page": sorted(set(_URL.findall(text))), "background": [], "missing": ["net log unreadable"]}
    page, background = set(), set()
    for params in starts:
        initiator = params.get("initiator")
        from_page = isinstance(initiator, str) and "://" in initiator
        (page if from_page or _is_loopback(params["url"]) else background).add(params["url"])
    return {"page": sorted(page), "background": sorted(background), "missing": []}


def _is_loopback(url: str) -> bool:
    return (urlsplit(url).hostname or "").lower() in LOOPBACK_HOSTS


def external(urls: list[str]) -> list[str]:
    """The URLs that are not to a loopback host."""
    return [url for url in urls if not _is_loopback(url)]


def console_problems(stderr: str) -> list[str]:
    """Console lines that report a CSP refusal or an uncaught script error."""
    lines = []
    for line in stderr.splitlines():
        if "CONSOLE" not in line and "Content Security Policy" not in line:
            continue
        if re.search(r"Content.Security.Policy|Refused to|Uncaught|ERR_", line):
            lines.append(line.strip()[:400])
    return lines


def screenshot_summary(png: Path) -> dict:
    """Size, number of distinct colours and whether the top band has the header colour."""
    from PIL import Image

    with Image.open(png) as image:
        rgb = image.convert("RGB")
        colours = rgb.getcolors(maxcolors=1 << 20)
        header = rgb.getpixel((rgb.width // 2, 4))  # (the right edge is the scroll bar)
        return {
            "size": list(rgb.size),
            "colours": len(colours) if colours is not None else 1 << 20,
            "header_pixel": list(header),
            "header_ok": all(abs(a - b) <= 8 for a, b in zip(header, HEADER_RGB, strict=True)),
        }


def dom_summary(dom: str, version: str) -> dict:
    """What the rendered page holds: Swagger UI operations, the Authorize button, VitalCheck's texts."""
    return {
        "bytes": len(dom),
        "operations": len(re.findall(r'class="opblock opblock-', dom)),
        "authorize_button": bool(re.search(r'class="btn authorize', dom)),
        "title": "<title>VitalCheck API</title>" in dom,
        "version": f"version {version}" in dom,
        "disclaimer": "Research and education only; not a medical device." in dom,
        "info_title": bool(re.search(r'<h2 class="title">VitalCheck', dom)),
        "swagger_error": "Failed to load API definition" in dom or "Fetch error" in dom,
    }


def check_page(url: str, png: Path, workdir: Path) -> dict:
    """Screenshot ``url`` to ``png`` and dump its DOM in headless Chromium; return the report."""
    from vitalcheck.openapi import package_version

    png.parent.mkdir(parents=True, exist_ok=True)
    shot = run_chromium(url, workdir, "screenshot", f"--screenshot={png.resolve()}")
    dom = run_chromium(url, workdir, "dom", "--dump-dom")
    page = sorted(set(shot["requests"]["page"] + dom["requests"]["page"]))
    return {
        "url": url,
        "screenshot": str(png),
        "image": screenshot_summary(png) if png.is_file() else None,
        "dom": dom_summary(dom["stdout"], package_version()),
        "page_requests": page,
        "page_external_requests": external(page),
        "browser_background_requests": sorted(set(shot["requests"]["background"] + dom["requests"]["background"])),
        "netlog_missing": shot["requests"]["missing"] + dom["requests"]["missing"],
        "console_problems": console_problems(shot["stderr"]) + console_problems(dom["stderr"]),
        "chromium_status": [shot["returncode"], dom["returncode"]],
        "chromium_stderr_tail": [run["stderr"][-1500:] for run in (shot, dom) if run["returncode"] != 0],
    }


def problems(report: dict) -> list[str]:
    """Every failed check of a :func:`check_page` report (empty: the page is fine)."""
    found = []
    image, dom = report["image"], report["dom"]
    if image is None:
        found.append("no screenshot written")
    else:
        if image["colours"] < 50:
            found.append(f"screenshot nearly blank: {image['colours']} colours")
        if not image["header_ok"]:
            found.append(f"header band missing: top-right pixel {image['header_pixel']}")
    for key in ("title", "version", "disclaimer", "info_title", "authorize_button"):
        if not dom[key]:
            found.append(f"rendered page lacks {key}")
    if dom["operations"] < 24:
        found.append(f"only {dom['operations']} operations rendered")
    if dom["swagger_error"]:
        found.append("Swagger UI could not load /docs.json")
    if report["page_external_requests"]:
        found.append(f"the page requested beyond loopback: {report['page_external_requests']}")
    if not any(url.endswith("/docs.json") for url in report["page_requests"]):
        found.append("the page never requested /docs.json")
    if report["netlog_missing"]:
        found.append(f"net log: {report['netlog_missing']}")
    if report["console_problems"]:
        found.append(f"console: {report['console_problems']}")
    if any(status != 0 for status in report["chromium_status"]):
        found.append(f"chromium exit status {report['chromium_status']}")
    return found


def main(argv: list[str] | None = None) -> int:
    """Serve VitalCheck from a temporary model store, check its page, print the report; 0 when fine."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "docs-page.png", help="screenshot path")
    parser.add_argument("--artifacts-dir", type=Path, default=ROOT / "artifacts")
    args = parser.parse_args(argv)
    if not chromium_available():
        print(f"{CHROMIUM} not found: apt-get install chromium", file=sys.stderr)
        return 2
    from tests.utils.serving import Served

    workdir = Path(tempfile.mkdtemp(prefix="vitalcheck-docs-check-"))
    try:
        env = {**os.environ, "BENTOML_HOME": str(workdir / "bentoml"), "BENTOML_DO_NOT_TRACK": "True"}
        imported = subprocess.run(
            [sys.executable, "import_models.py", "--artifacts-dir", str(args.artifacts_dir)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if imported.returncode != 0:
            print(imported.stdout + imported.stderr, file=sys.stderr)
            return 1
        with Served(env, log_path=workdir / "serve.log") as server:
            browser = workdir / "browser"
            browser.mkdir()
            report = check_page(f"{server.url}/", args.out, browser)
        found = problems(report)
        print(json.dumps({**report, "problems": found}, indent=2))
        return 1 if found else 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
