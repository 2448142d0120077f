"""Starting a local Ray, or joining a running cluster, without ever hanging.

``address`` is what ``--ray`` was given: ``local`` (the default: a Ray started for this process, with
``num_cpus`` CPUs, and stopped with it), ``auto`` (the cluster already running on this machine, started by
``ray start --head``), or ``HOST:PORT`` / ``ray://HOST:PORT`` (a remote cluster's head). A Ray that is not
installed, or an address nobody answers at within ``timeout_s``, raises :class:`RayUnavailable`.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

from rag.errors import RagError

log = logging.getLogger(__name__)

LOCAL = "local"
INSTALL_HINT = 'install the extra with `pip install -e ".[ray]"` (or `pip install "ray[serve,data]"`)'


class RayUnavailable(RagError):
    """Ray is not installed, or the cluster at the given address cannot be reached."""


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RayUnavailable(f"--ray needs Ray, which is not installed: {INSTALL_HINT}.") from None
    return ray


def host_port(address: str) -> tuple[str, int] | None:
    """(host, port) of a ``HOST:PORT`` or ``ray://HOST:PORT`` address; None for ``local`` and ``auto``."""
    if address in (LOCAL, "auto"):
        return None
    rest = address.split("://", 1)[-1]
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise RayUnavailable(
            f"--ray {address!r} is not a Ray address: give HOST:PORT of the cluster's head (e.g. 10.0.0.5:6379), "
            "`auto` for the cluster started on this machine by `ray start --head`, or nothing for a local Ray "
            "(a corpus path goes before --ray: `rag index docs/ --ray`)."
        )
    return host.strip("[]"), int(port)


def check_reachable(address: str, timeout_s: float) -> None:
    """Fail within ``timeout_s`` when nothing listens at a remote address (ray.init itself retries for minutes)."""
    hp = host_port(address)
    if hp is None:
        return
    try:
        with socket.create_connection(hp, timeout=timeout_s):
            pass
    except OSError as exc:
        raise RayUnavailable(
            f"no Ray cluster answers at {address} ({exc.strerror or exc.__class__.__name__} within {timeout_s:g} s). "
            "Start one there with `ray start --head`, check the address and firewall, or drop the address to use "
            "a local Ray."
        ) from None


def start_ray(address: str = LOCAL, *, num_cpus: int | None = None, timeout_s: float = 15.0) -> Any:
    """Connect this process to Ray (idempotent) and return the ``ray`` module."""
    ray = import_ray()
    if ray.is_initialized():
        return ray
    check_reachable(address, timeout_s)
    quiet_ray()
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if address == LOCAL:
        kwargs["num_cpus"] = num_cpus or os.cpu_count() or 1
    else:
        kwargs["address"] = address
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, TimeoutError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else exc.__class__.__name__
        hint = "start one with `ray start --head`" if address == "auto" else "check the address"
        raise RayUnavailable(f"cannot join the Ray cluster at {address}: {first} ({hint}).") from None
    log.info("Ray: %s", "a local instance" if address == LOCAL else f"joined {address}")
    return ray


def quiet_ray() -> None:
    """Keep Ray's own chatter (start-up notes, Ray Data's execution plans, C++ warnings) off the terminal;
    its logs stay in /tmp/ray/session_latest/logs."""
    for name, level in (("ray", logging.ERROR), ("ray.data", logging.ERROR), ("ray.serve", logging.WARNING)):
        logging.getLogger(name).setLevel(level)


def cluster_cpus(ray: Any) -> int:
    return max(1, int(ray.cluster_resources().get("CPU", 1)))
