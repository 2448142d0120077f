"""Slow-client probe (issue 25): hold N stalled connections open on loopback against a `rag serve`, time
`GET /health` meanwhile, and count how many stalled connections the server has closed after a while.

    python bench/slow_clients.py [--stalled 3000] [--wait 15] [--index-dir DIR]

Three kinds of stalled connection, in equal parts: connected and silent; half a request line and headers;
headers declaring Content-Length: 60000 and 20 bytes of body. Without --index-dir the server is started on a
missing index (it answers /health with 503 at once, no model to load): the probe measures the HTTP layer.
Loopback only; everything is bounded by --stalled and --wait.
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
KINDS = {
    "silent": b"",
    "half headers": b"POST /ask HTTP/1.1\r\nHost: x\r\nContent-Type: app",
    "short body": b"POST /ask HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 60000\r\n\r\n"
    b'{"question": "Who i',
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def health_ms(base: str, n: int = 5) -> tuple[float | None, list[int]]:
    times, statuses = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        try:
            statuses.append(httpx.get(f"{base}/health", timeout=5).status_code)
            times.append((time.perf_counter() - t0) * 1000)
        except httpx.HTTPError:
            statuses.append(0)  # no answer within 5 s (or refused)
    return (statistics.median(times) if times else None), statuses


def closed(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        while True:
            block = sock.recv(65536)
            if not block:
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stalled", type=int, default=3000)
    ap.add_argument("--wait", type=float, default=15.0, help="seconds to wait before counting closed ones")
    ap.add_argument("--index-dir", type=Path)
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, args.stalled + 256)), hard))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    tmp = tempfile.mkdtemp()
    index_dir = args.index_dir or Path(tmp, "none")
    cmd = [sys.executable, "-m", "rag.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    env = {**os.environ, "RAG_INDEX_POLL_S": "0", "PYTHONPATH": os.environ.get("PYTHONPATH", str(ROOT))}
    log = open(Path(tmp, "serve.log"), "wb")  # noqa: SIM115 - closed at the end
    proc = subprocess.Popen([*cmd, "--index-dir", str(index_dir)], env=env, stdout=log, stderr=subprocess.STDOUT)
    socks: list[tuple[str, socket.socket]] = []
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                httpx.get(f"{base}/health", timeout=2)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    sys.exit(f"server not up: {Path(tmp, 'serve.log').read_text(errors='replace')[-2000:]}")
                time.sleep(0.2)
        before, _ = health_ms(base)
        t0 = time.monotonic()
        kinds = list(KINDS.items())
        for i in range(args.stalled):
            kind, data = kinds[i % len(kinds)]
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                if data:
                    s.sendall(data)
            except OSError as exc:
                print(f"connection {i} failed: {exc}")
                break
            socks.append((kind, s))
        opened = time.monotonic() - t0
        during, statuses = health_ms(base)
        time.sleep(max(args.wait - (time.monotonic() - t0), 0))
        still = {k: 0 for k in KINDS}
        for kind, s in socks:
            if not closed(s):
                still[kind] += 1
        after, after_statuses = health_ms(base)
        print(f"stalled connections opened: {len(socks)} in {opened:.1f} s")
        print(f"/health median ms: before {before:.1f}, with them open {during}, statuses {statuses}")
        print(f"still open after {args.wait:g} s: {sum(still.values())} ({still})")
        print(f"/health after: median ms {after}, statuses {after_statuses}")
    finally:
        for _, s in socks:
            s.close()
        proc.terminate()
        proc.wait(timeout=15)
        log.close()


if __name__ == "__main__":
    main()
