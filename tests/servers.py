"""A real `rag serve` process for tests: start it, wait until /health answers, stop it (shared helper)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_server(
    cmd: list[str],
    env: dict[str, str],
    log_path: Path,
    base: str,
    *,
    ready: int = 200,
    timeout: float = 60,
    starting: tuple[int, ...] = (),
) -> Iterator[str]:
    """Run ``cmd`` (a server listening at ``base``); yield ``base`` once ``GET /health`` answers ``ready``.

    ``starting``: statuses that mean "still starting" (Ray Serve's proxy listens, and answers 404, before
    the app is deployed); any other status fails the test.

    Fails the test with the server's log if it exits, answers another status, or is not up in ``timeout`` s.
    """
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited with {proc.returncode}:\n{log_path.read_text(errors='replace')}")
            try:
                status = httpx.get(f"{base}/health", timeout=5).status_code
                if status == ready:
                    break
                if status not in starting:
                    pytest.fail(f"/health answered {status}, not {ready}:\n{log_path.read_text(errors='replace')}")
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"server not up within {timeout:.0f} s:\n{log_path.read_text(errors='replace')}")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def serve_command() -> list[str]:
    """The installed ``rag`` console script next to this Python, else ``python -m rag.cli``."""
    script = Path(sys.executable).parent / "rag"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script), "serve"]
    return [sys.executable, "-m", "rag.cli", "serve"]
