"""The HTTP boundary of a real `bentoml serve`, over raw sockets, as an attacker would meet it (issue #11).

What only a real server shows: uvicorn's own path decoding, clients that hang up or send slowly,
idle connections, the access log, ``/metrics`` and the start-up refusal. The session's server runs
with a token and a 3 s header deadline (tests/conftest.py).
"""

import contextlib
import json
import os
import socket
import subprocess
import time

import httpx
import pytest

from tests.conftest import API_TOKEN
from tests.utils.payloads import EXAMPLES
from tests.utils.serving import BENTOML, ROOT

pytestmark = pytest.mark.integration

SECRET = "Jane-Doe-1967-03-14"
HEADER_TIMEOUT_S = 3.0


def _address(served):
    return "127.0.0.1", served.port


def exchange(served, request: bytes, timeout: float = 10) -> bytes:
    """Send raw bytes, return everything the server answers until it closes or goes quiet."""
    with socket.create_connection(_address(served), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
                if b"\r\n\r\n" in b"".join(chunks) and b"connection: close" not in b"".join(chunks).lower():
                    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
                    length = next((int(v) for k, v in _headers(head) if k == b"content-length"), None)
                    if length is not None and len(body) >= length:
                        break
        except TimeoutError:
            pass
    return b"".join(chunks)


def _headers(head: bytes):
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        yield key.strip().lower(), value.strip()


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def request(path: bytes, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    lines = [b"POST " + path + b" HTTP/1.1", b"Host: 127.0.0.1"]
    lines += [f"{k}: {v}".encode() for k, v in (headers or {}).items()]
    lines.append(f"Content-Length: {len(body)}".encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def closed_after(sock: socket.socket, trickle: bytes = b"", limit: float = 15) -> float | None:
    """Seconds until the server closes ``sock`` (sending one byte of ``trickle`` every 0.5 s), or None."""
    started = time.monotonic()
    sock.settimeout(0.5)
    position = 0
    while time.monotonic() - started < limit:
        try:
            if position < len(trickle):
                sock.send(trickle[position : position + 1])
                position += 1
            if sock.recv(1024) == b"":
                return time.monotonic() - started
        except TimeoutError:
            continue
        except OSError:
            return time.monotonic() - started
    return None


@pytest.mark.parametrize("path", [b"/%61pi/v1/models", b"/api%2Fv1/models", b"/api/v1/models/", b"//api/v1/models"])
def test_path_spellings_need_the_token_on_the_real_server(served, path):
    assert status_of(exchange(served, request(path, b"{}", {"Content-Type": "application/json"}))) == 401


def test_form_body_is_refused_and_neither_echoed_nor_logged(served):
    """curl -d's default media type, with the README's diabetes record and a secret key."""
    offset = len(served.log())
    body = json.dumps({**EXAMPLES["diabetes"], SECRET: 1, "age_years": 777111}).encode()
    headers = {"Authorization": f"Bearer {API_TOKEN}", "Content-Type": "application/x-www-form-urlencoded"}
    answer = exchange(served, request(b"/api/v1/risk/diabetes", body, headers))
    assert status_of(answer) == 415
    assert SECRET.encode() not in answer and b"777111" not in answer
    time.sleep(0.5)
    log = served.log()[offset:]
    assert "status=415" in log
    assert SECRET not in log and "777111" not in log


def test_client_that_hangs_up_mid_body_is_a_client_abort_not_a_server_error(served):
    """Regression: Content-Length 500, 20 bytes, close gave an ERROR traceback, status=500 and a counted 5xx."""
    offset = len(served.log())
    head = request(
        b"/api/v1/insurance", b"", {"Authorization": f"Bearer {API_TOKEN}", "Content-Type": "application/json"}
    )
    head = head.replace(b"Content-Length: 0", b"Content-Length: 500")
    with socket.create_connection(_address(served)) as sock:
        sock.sendall(head + b'{"age_years": 19, "se')
        time.sleep(0.3)
    time.sleep(1)
    log = served.log()[offset:]
    assert "status=499" in log, log[-2000:]
    assert "ERROR" not in log and "Traceback" not in log and "status=500" not in log
    metrics = httpx.get(f"{served.url}/metrics").text
    aborted = [line for line in metrics.splitlines() if 'endpoint="/api/v1/insurance"' in line and "_total" in line]
    assert any('http_response_code="499"' in line and not line.endswith(" 0.0") for line in aborted), aborted
    assert all(line.endswith(" 0.0") for line in aborted if 'http_response_code="5' in line), aborted


def test_a_slow_body_gets_408_not_504(served):
    """Regression: a body sent one byte at a time got BentoML's 504 after 30 s."""
    head = request(
        b"/api/v1/insurance", b"", {"Authorization": f"Bearer {API_TOKEN}", "Content-Type": "application/json"}
    )
    with socket.create_connection(_address(served), timeout=15) as sock:
        sock.sendall(head.replace(b"Content-Length: 0", b"Content-Length: 107"))
        sock.settimeout(0.5)
        answer = b""
        for _ in range(30):
            try:
                sock.send(b" ")
                answer += sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if answer:
                break
    assert status_of(answer) == 408, answer[:300]


def test_unlisted_paths_never_become_metrics_labels(served):
    """Regression: any path a client sent became an `endpoint` label on the open /metrics page."""
    for i in range(20):
        httpx.post(f"{served.url}/patient/{SECRET}-{i}", headers={"Authorization": f"Bearer {API_TOKEN}"})
        httpx.post(f"{served.url}/patient/{SECRET}-unauthenticated-{i}")
    metrics = httpx.get(f"{served.url}/metrics").text
    assert SECRET not in metrics
    assert 'endpoint="(unlisted path)"' in metrics


def test_websocket_upgrades_never_become_metrics_labels(served):
    """Regression (probe 4): an unauthenticated WebSocket upgrade wrote its decoded path into /metrics."""
    for i in range(5):
        exchange(
            served,
            f"GET /patient/{SECRET}-ws-{i} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode(),
            timeout=5,
        )
    metrics = httpx.get(f"{served.url}/metrics").text
    assert SECRET not in metrics
    assert "-1.0" not in metrics


def test_forwarded_for_text_is_not_logged(served):
    """Regression: uvicorn takes the client address from X-Forwarded-For (trusted from 127.0.0.1), verbatim."""
    offset = len(served.log())
    fake = f"{SECRET} (status=200) fake"
    httpx.post(f"{served.url}/api/v1/models", headers={"X-Forwarded-For": fake, "Authorization": f"Bearer {API_TOKEN}"})
    httpx.post(f"{served.url}/api/v1/models", headers={"X-Forwarded-For": fake})
    time.sleep(0.5)
    log = served.log()[offset:]
    assert "status=200" in log and "status=401" in log
    assert SECRET not in log and "fake" not in log


def test_a_client_trace_id_is_not_logged(served):
    """Regression: BentoML continued a client's traceparent, so the client chose the trace id in the logs."""
    trace_id = "5ec2e7a1" * 4
    offset = len(served.log())
    headers = {"Authorization": f"Bearer {API_TOKEN}", "traceparent": f"00-{trace_id}-{'1a' * 8}-01"}
    response = httpx.post(f"{served.url}/api/v1/insurance", json={"age_years": -1}, headers=headers)
    assert response.status_code == 400
    time.sleep(0.5)
    log = served.log()[offset:]
    assert "trace=" in log and "request rejected" in log
    assert trace_id not in log


def test_slow_headers_are_cut_off(served):
    """Regression: one header byte every half second kept the connection for as long as the client liked."""
    trickle = b"POST /api/v1/models HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200
    with socket.create_connection(_address(served)) as sock:
        after = closed_after(sock, trickle)
    assert after is not None and after < HEADER_TIMEOUT_S + 3, after


def test_idle_connections_are_closed(served):
    """Regression: 200 connections that never sent a byte were kept open."""
    sockets = [socket.create_connection(_address(served)) for _ in range(100)]
    try:
        closed = [closed_after(sock, limit=HEADER_TIMEOUT_S + 5) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
    assert all(c is not None for c in closed), sum(c is None for c in closed)


def test_idle_keep_alive_connection_is_closed_after_an_answer(served):
    with socket.create_connection(_address(served)) as sock:
        sock.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.3)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        after = closed_after(sock, limit=15)
    assert after is not None and after < 5 + 3, after


def test_large_headers_are_refused(served):
    headers = {"Authorization": f"Bearer {API_TOKEN}", "Content-Type": "application/json", "X-Pad": "a" * 100_000}
    answer = exchange(served, request(b"/api/v1/insurance", json.dumps(EXAMPLES["insurance"]).encode(), headers))
    assert status_of(answer) in (400, 431), answer[:200]
    assert b"charges_usd" not in answer


def test_metrics_and_health_stay_open(served):
    for path in ("/metrics", "/livez", "/readyz", "/"):
        assert httpx.get(f"{served.url}{path}").status_code == 200, path


@pytest.mark.parametrize("variable", ["VITALCHECK_API_TOKEN", "VITALCHECK_LOG_LEVEL"])
def test_an_invalid_setting_stops_the_server_in_one_line_without_its_value(variable):
    """Regression: a short token stopped the server with a 40-line traceback that printed the token."""
    value = "short-Zebra-91" if variable == "VITALCHECK_API_TOKEN" else "Zebra-91"
    env = {**os.environ, variable: value}
    done = subprocess.run(
        [BENTOML, "serve", "service:VitalCheck", "--port", "1", "--host", "127.0.0.1"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    output = (done.stdout + done.stderr).strip()
    assert done.returncode != 0
    assert "Zebra-91" not in output
    assert len(output.splitlines()) == 1, output
    assert variable in output


def test_a_websocket_upgrade_is_refused_and_its_path_not_logged(served):
    """Regression (probe 3): the decoded path of a WebSocket upgrade reached the log, newlines included."""
    offset = len(served.log())
    forged = b"/x%0a2026-12-01T22:15:00+0000%20[ERROR]%20FORGED-LINE%0d%0a" + SECRET.encode()
    answer = exchange(
        served,
        b"GET " + forged + b" HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        timeout=5,
    )
    assert status_of(answer) == 403
    time.sleep(0.5)
    log = served.log()[offset:]
    assert "FORGED" not in log and SECRET not in log


def test_multipart_parser_warnings_do_not_quote_the_body(served):
    """Regression (probe 3): python-multipart logged the first byte of the body ("got 74 at index 2")."""
    offset = len(served.log())
    headers = {"Authorization": f"Bearer {API_TOKEN}", "Content-Type": "multipart/form-data; boundary=xyz"}
    response = httpx.post(f"{served.url}/api/v1/insurance/file", headers=headers, content=SECRET.encode())
    assert response.status_code == 400
    time.sleep(0.5)
    log = served.log()[offset:]
    assert "got 74" not in log and SECRET not in log


def test_more_bytes_than_the_content_length_is_one_warning_not_tracebacks(served):
    """Regression (probe 3): a short Content-Length before 200 kB of data logged two 90-line ERROR tracebacks."""
    offset = len(served.log())
    body = b'{"age_years": 19, "region": "' + b"a" * 200_000 + b'"}'
    with contextlib.suppress(ConnectionResetError):  # uvicorn may reset the connection: fine
        exchange(
            served,
            b"POST /api/v1/insurance HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 10\r\nConnection: close\r\n\r\n" + body,
            timeout=5,
        )
    time.sleep(0.5)
    log = served.log()[offset:]
    assert "Traceback" not in log and "[ERROR]" not in log
