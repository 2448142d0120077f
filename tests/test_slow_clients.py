"""Slow and stalled HTTP clients (issue 25): a request's headers and body have a deadline, /health keeps
answering while stalled connections are open, and the stalled ones are answered 408 or closed."""

from __future__ import annotations

import json
import os
import socket
import time

import httpx
import pytest

from tests.servers import ROOT, free_port, running_server, serve_command

STALLED = 20  # of each kind: bounded, on loopback


def _recv_all(sock: socket.socket, until: float) -> tuple[bytes, bool]:
    """What the server sent before closing the connection, and whether it closed it before ``until``."""
    got = b""
    while True:
        sock.settimeout(max(until - time.monotonic(), 0.01))
        try:
            block = sock.recv(65536)
        except TimeoutError:
            return got, False
        except ConnectionResetError:
            return got, True
        if not block:
            return got, True
        got += block


@pytest.fixture()
def server(tmp_path):
    port = free_port()
    pythonpath = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    env = {
        **os.environ,
        "PYTHONPATH": pythonpath,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "RAG_HTTP_HEADER_TIMEOUT_S": "2",
        "RAG_HTTP_BODY_TIMEOUT_S": "2",
        "RAG_INDEX_POLL_S": "0",
    }
    # an index that is not there: the service starts at once and answers 503 (no model to load)
    cmd = [*serve_command(), "--host", "127.0.0.1", "--port", str(port), "--index-dir", str(tmp_path / "none")]
    with running_server(cmd, env, tmp_path / "serve.log", f"http://127.0.0.1:{port}", ready=503) as base:
        yield port, base


def test_stalled_requests_are_answered_408_or_closed_and_health_keeps_answering(server):
    port, base = server
    socks: dict[str, list[socket.socket]] = {"silent": [], "half headers": [], "short body": []}
    try:
        for _ in range(STALLED):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            socks["silent"].append(s)
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"POST /ask HTTP/1.1\r\nHost: x\r\nContent-Type: app")
            socks["half headers"].append(s)
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(
                b"POST /ask HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 60000\r\n\r\n"
                b'{"question": "Who i'
            )
            socks["short body"].append(s)
        t0 = time.monotonic()
        assert httpx.get(f"{base}/health", timeout=5).status_code == 503  # answers (no index: 503 JSON)
        assert time.monotonic() - t0 < 2.0
        until = time.monotonic() + 8.0  # the deadlines are 2 s
        for kind, group in socks.items():
            for s in group:
                got, closed = _recv_all(s, until)
                assert closed, f"a {kind} connection is still open after 8 s"
                if kind != "silent":
                    assert got.startswith(b"HTTP/1.1 408 "), (kind, got[:200])
                    detail = json.loads(got.split(b"\r\n\r\n", 1)[1])["detail"]
                    assert "not received within 2 s" in detail, detail
    finally:
        for group in socks.values():
            for s in group:
                s.close()
    assert httpx.get(f"{base}/health", timeout=5).status_code == 503


def test_a_slow_but_steady_client_is_still_cut_at_the_deadline(server):
    port, _ = server
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        t0 = time.monotonic()
        closed = False
        for ch in b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 40:  # a byte every 0.2 s
            try:
                s.sendall(bytes([ch]))
            except OSError:
                closed = True
                break
            time.sleep(0.2)
            if time.monotonic() - t0 > 6:
                break
        got, closed_now = _recv_all(s, time.monotonic() + 3)
        assert closed or closed_now
        assert time.monotonic() - t0 < 8.0


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /health\x00 HTTP/1.1\r\nHost: x\r\n\r\n",  # a NUL in the path
        b"POST /ask HTTP/1.1\r\nHost: x\r\nContent-Length: ten\r\n\r\n",  # a bad Content-Length
        b"NOT HTTP AT ALL\r\n\r\n",
    ],
)
def test_malformed_requests_get_a_json_400(server, request_bytes):
    port, _ = server
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(request_bytes)
        got, closed = _recv_all(s, time.monotonic() + 5)
    assert closed and got.startswith(b"HTTP/1.1 400 "), got[:200]
    head, body = got.split(b"\r\n\r\n", 1)
    assert b"content-type: application/json" in head.lower()
    assert json.loads(body)["detail"].startswith("Invalid request: malformed HTTP request (")
