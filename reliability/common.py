"""Shared pieces of the reliability scripts: the server's environment, its process tree, results."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import psutil

RESULTS = Path(__file__).resolve().parent / "results"
"""Where every script writes its JSON results."""


def server_env(**extra: str) -> tuple[dict, str]:
    """Environment of a reliability server: a fresh random API token on, tracking off; returns (env, token)."""
    token = secrets.token_urlsafe(24)
    env = {**os.environ, "VITALCHECK_API_TOKEN": token, "BENTOML_DO_NOT_TRACK": "True", **extra}
    return env, token


def workers(pid: int) -> list[psutil.Process]:
    """The API worker processes under a `bentoml serve` process (BentoML's service workers)."""
    found = []
    for child in psutil.Process(pid).children(recursive=True):
        try:
            if any("_bentoml_impl.worker" in part for part in child.cmdline()):
                found.append(child)
        except psutil.Error:
            continue
    return found


def tree_rss(pid: int) -> int:
    """Resident memory (bytes) of a process and all its descendants."""
    total = 0
    try:
        root = psutil.Process(pid)
        for process in [root, *root.children(recursive=True)]:
            try:
                total += process.memory_info().rss
            except psutil.Error:
                continue
    except psutil.Error:
        return 0
    return total


def machine() -> dict:
    """CPU count and load at the time of the run (the machine is shared)."""
    one, five, fifteen = os.getloadavg()
    return {"cpus": os.cpu_count(), "load_avg_1_5_15": [round(one, 2), round(five, 2), round(fifteen, 2)]}
