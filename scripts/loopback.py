"""Helpers the benchmark scripts share: free loopback ports and waiting for a server."""

from __future__ import annotations

import socket
import time

import httpx

__all__ = ["free_port", "wait"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait(url: str, seconds: float = 30) -> None:
    """Until `url` answers 200 (`seconds` at most)."""
    for _ in range(int(seconds * 10)):
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")
