"""Does the Bento serve on a read-only root with only the Deployment's emptyDir mounts writable?

``python deploy/readonly_check.py`` (= ``make deploy-readonly-check``; root, Linux) lays out a
Bento as the image does (``/home/bentoml/bento`` with its ``models/``, BENTOML_HOME
``/home/bentoml``), then runs ``bentoml serve`` in a private mount namespace (``unshare -m``) in
which ``/`` and ``/home/bentoml`` are read-only and only the paths that
deploy/k8s/deployment.yaml mounts from emptyDir volumes are writable (fresh tmpfs each), as uid
1034 (``setpriv``), as Kubernetes would with ``readOnlyRootFilesystem: true``. Cases:

- ``manifest``: the manifest's mounts. Must become ready, answer a record, an upload and an
  image, stop on SIGTERM, and start again on the same volumes (a container restart in its pod);
- ``without-<path>``: the same minus one mount. Expected to fail on a write to the read-only
  root (so the mount is needed, and the check can fail), except for the mounts in
  :data:`OPTIONAL`, where BentoML falls back to another writable folder and serves.

The image itself is not used (``make image-test`` runs it); the serving stack is this
checkout's virtualenv. Everything it makes is removed on exit. Exit 0 when every case went as
expected.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from deploy.cluster_test import (  # noqa: E402 (after the sys.path entry)
    BENTOML,
    LOOPBACK,
    TOKEN,
    SetupError,
    free_port,
    http_status,
    stop_tree,
)

HOME = "/home/bentoml"
UID = 1034
MANIFEST = ROOT / "deploy" / "k8s" / "deployment.yaml"
OPTIONAL = {
    f"{HOME}/prometheus_multiproc_dir": "bentoml serve falls back to a new folder under TMPDIR when it cannot "
    "write there (bentoml.serving.ensure_prometheus_dir)",
}
"""Mounts without which the server still serves, and why (their ``without-`` case must serve)."""
READ_ONLY_ERRORS = ("Read-only file system", "No usable temporary directory")


def emptydir_mounts(manifest: Path = MANIFEST) -> list[str]:
    """The container's mount paths that come from emptyDir volumes, from the Deployment."""
    import yaml

    deployment = next(d for d in yaml.safe_load_all(manifest.read_text()) if d and d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    empty = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    container = pod["containers"][0]
    return [m["mountPath"] for m in container["volumeMounts"] if m["name"] in empty]


def build_bento(work: Path, source: Path) -> Path:
    """``import_models.py`` + ``bentoml build`` in a store of its own; the Bento laid out as in the image."""
    env = {
        **os.environ,
        "BENTOML_HOME": str(work / "build-home"),
        "BENTOML_DO_NOT_TRACK": "True",
        # bentoml build locks the packages with uv: its cache (and any other) stays in work.
        "UV_CACHE_DIR": str(work / "cache" / "uv"),
        "XDG_CACHE_HOME": str(work / "cache"),
    }
    for command in (
        [sys.executable, "import_models.py", "--artifacts-dir", str(ROOT / "artifacts")],
        [BENTOML, "build", "--output", "tag"],
    ):
        result = subprocess.run(command, cwd=source, env=env, capture_output=True, text=True, timeout=300)  # noqa: S603
        if result.returncode:
            raise SetupError(f"{command[1]} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    bentos = sorted((work / "build-home" / "bentos" / "vitalcheck").glob("*/bento.yaml"))
    home = work / "bentoml-home"
    bento = home / "bento"
    shutil.copytree(bentos[-1].parent, bento)
    shutil.copytree(work / "build-home" / "models", bento / "models")  # what containerize packs
    subprocess.run(["chown", "-R", f"{UID}:{UID}", str(home)], check=True)  # noqa: S607
    return home


def interpreter_mounts() -> list[str]:
    """Shell lines that make this Python installation reachable for uid 1034 inside the namespace.

    A pyenv Python under /root (mode 0700) cannot be run by another user: the namespace gets a
    private, traversable /root (tmpfs) with only the installation bound into it.
    """
    prefix = Path(sys.base_prefix).resolve()
    blocked = [a for a in reversed(prefix.parents) if a != Path("/") and not a.stat().st_mode & 0o001]
    if not blocked:
        return []
    top = blocked[0]
    stage = "/srv"  # an existing folder, covered only inside the namespace
    return [
        f"mount --bind {shlex.quote(str(prefix))} {stage}",
        f"mount -t tmpfs -o size=1m,mode=755 vc-prefix {shlex.quote(str(top))}",
        f"mkdir -p {shlex.quote(str(prefix))}",
        f"mount --move {stage} {shlex.quote(str(prefix))}",
        f"mount -o remount,ro {shlex.quote(str(top))}",
    ]


def namespace_script(home: Path, writable: list[str], port: int, tmpfs_root: Path) -> str:
    """The shell script run in the private mount namespace; it ends by exec-ing ``bentoml serve``."""
    lines = [
        "set -eu",
        *interpreter_mounts(),
        # A private /home with /home/bentoml = the laid-out Bento (read-only below).
        "mount -t tmpfs -o size=1m,mode=755 vc-home /home",
        f"mkdir -p {HOME}",
        f"mount --bind {shlex.quote(str(home))} {HOME}",
        # Each emptyDir: a tmpfs that lives in tmpfs_root (kept across restarts of the server).
    ]
    # /tmp last: the volumes' backing folders and the Bento live under it on the host.
    for path in sorted(writable, key=lambda p: p == "/tmp"):
        backing = tmpfs_root / path.strip("/").replace("/", "_")
        if path.startswith(HOME + "/"):
            lines.append(f"mkdir -p {shlex.quote(path)}")  # the runtime creates mount points
        lines.append(f"mount --bind {shlex.quote(str(backing))} {shlex.quote(path)}")
    # Read-only: per-mount flags (bind remount), never the shared filesystem's own.
    lines.append(f"mount -o remount,bind,ro {HOME}")
    lines.append("mount -o remount,bind,ro /")
    lines.append("mount -o remount,ro /home")
    environment = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": HOME,
        "BENTOML_HOME": HOME,
        "BENTO_PATH": f"{HOME}/bento",
        "BENTOML_DO_NOT_TRACK": "True",
        "TMPDIR": "/tmp",
        "XDG_CACHE_HOME": "/tmp/.cache",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "VITALCHECK_API_TOKEN": TOKEN,
        "VITALCHECK_WORKERS": "2",
    }
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in environment.items())
    lines.append(f"cd {HOME}/bento")
    lines.append(
        f"exec setpriv --reuid {UID} --regid {UID} --clear-groups env -i {env} "
        f"{BENTOML} serve {HOME}/bento --host {LOOPBACK} --port {port}"
    )
    return "\n".join(lines)


def serve_once(script: str, log: Path, timeout: float) -> tuple[bool, str, subprocess.Popen]:
    """Start the namespace; wait for /readyz. Returns (ready, reason, process)."""
    port = int(script.rsplit("--port ", 1)[1])
    with open(log, "a") as out:
        process = subprocess.Popen(  # noqa: S603
            ["unshare", "--mount", "--propagation", "private", "bash", "-c", script],  # noqa: S607
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if process.poll() is not None:
            return False, f"exited with status {process.returncode}", process
        if http_status(f"http://{LOOPBACK}:{port}/readyz") == 200:
            return True, f"ready in {time.monotonic() - started:.1f} s", process
        time.sleep(0.25)
    return False, f"not ready within {timeout:g} s", process


def exercise(port: int) -> list[str]:
    """A record, an upload (spooled to TMPDIR) and an image; the problems found."""
    import httpx

    from tests.utils.payloads import EXAMPLES, ROUTES, mri_test_image
    from vitalcheck.settings import get_settings
    from vitalcheck.training.loaders import data_file

    data_dir = get_settings().data_dir
    problems = []
    with httpx.Client(
        base_url=f"http://{LOOPBACK}:{port}", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60
    ) as client:
        answers = {
            "record": client.post(ROUTES["insurance"], json=EXAMPLES["insurance"]),
            "upload": client.post(
                ROUTES["insurance"] + "/file", files={"file": data_file("insurance", data_dir).read_bytes()}
            ),
            "image": client.post("/api/v1/imaging/brain-tumor", files={"image": mri_test_image(data_dir).read_bytes()}),
            "metrics": client.get("/metrics"),
        }
    for what, response in answers.items():
        if response.status_code != 200:
            problems.append(f"{what}: {response.status_code} {response.text[:200]}")
    return problems


def run_case(name: str, home: Path, writable: list[str], work: Path, timeout: float, restarts: int) -> dict:
    """One set of writable mounts: start (and restart) the server, exercise it; the outcome."""
    tmpfs_root = work / f"volumes-{name}"
    for path in writable:
        backing = tmpfs_root / path.strip("/").replace("/", "_")
        backing.mkdir(parents=True)
        backing.chmod(0o1777 if path == "/tmp" else 0o777)  # emptyDir: world-writable
    log = work / f"{name}.log"
    outcome = {"case": name, "writable": writable, "starts": []}
    for attempt in range(1 + restarts):
        port = free_port()
        script = namespace_script(home, writable, port, tmpfs_root)
        ready, reason, process = serve_once(script, log, timeout)
        start = {"attempt": attempt + 1, "ready": ready, "reason": reason}
        try:
            if ready:
                start["problems"] = exercise(port)
        finally:
            stop_tree(process, timeout=20)
            start["exit_status"] = process.returncode
        outcome["starts"].append(start)
        for path in writable:  # the mount points made for this case: not part of the next one's image
            if path.startswith(HOME + "/"):
                with contextlib.suppress(OSError):
                    (home / path.removeprefix(HOME + "/")).rmdir()
        if not ready:
            text = log.read_text(errors="replace")
            errors = [line.strip() for line in text.splitlines() if "Read-only file system" in line or "Errno" in line]
            outcome["error"] = errors[-1][-300:] if errors else text[-500:]
            break
    outcome["served"] = (
        all(s["ready"] and not s.get("problems") for s in outcome["starts"]) and len(outcome["starts"]) == 1 + restarts
    )
    return outcome


def main(argv: list[str] | None = None) -> int:
    """Run the cases; 0 when the manifest's mounts serve and every reduced set fails."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=ROOT, help="folder the Bento is built from")
    parser.add_argument("--ready-timeout-s", type=float, default=120)
    parser.add_argument("--restarts", type=int, default=1, help="restarts on the same volumes (manifest case)")
    parser.add_argument("--only-manifest", action="store_true", help="skip the without-<path> cases")
    args = parser.parse_args(argv)
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("setpriv"):
        print("needs root, unshare and setpriv (util-linux)", file=sys.stderr)
        return 2
    writable = emptydir_mounts()
    work = Path(tempfile.mkdtemp(prefix="vitalcheck-readonly-"))
    work.chmod(0o755)
    results = []
    try:
        home = build_bento(work, args.source.resolve())
        results.append(run_case("manifest", home, writable, work, args.ready_timeout_s, args.restarts))
        if not args.only_manifest:
            for path in writable:
                rest = [p for p in writable if p != path]
                name = "without-" + path.strip("/").replace("/", "_")
                results.append(run_case(name, home, rest, work, min(args.ready_timeout_s, 60), 0))
                results[-1]["without"] = path
    except SetupError as exc:
        print(f"stopped: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        with contextlib.suppress(Exception):
            from deploy.cluster_test import sweep

            sweep(work)
        shutil.rmtree(work, ignore_errors=True)
    status = 0
    for result in results:
        missing = result.get("without")
        if result["case"] == "manifest" or missing in OPTIONAL:
            ok = result["served"]
        else:  # refused, and for the reason under test: a write to the read-only root
            ok = not result["served"] and any(e in result.get("error", "") for e in READ_ONLY_ERRORS)
        if missing in OPTIONAL:
            result["note"] = OPTIONAL[missing]
        status |= 0 if ok else 1
        starts = "; ".join(
            f"start {s['attempt']}: {s['reason']}" + (f", problems {s['problems']}" if s.get("problems") else "")
            for s in result["starts"]
        )
        error = f" ({result['error']})" if result.get("error") else ""
        error += f" [optional: {result['note']}]" if result.get("note") else ""
        print(
            f"{'ok  ' if ok else 'FAIL'} {result['case']}: {'served' if result['served'] else 'did not serve'}; {starts}{error}"
        )
    return status


if __name__ == "__main__":
    sys.exit(main())
