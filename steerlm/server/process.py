"""Start and stop the dev server as a child process (for the demo, tests and benchmarks)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import requests


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DevServerError(RuntimeError):
    """The dev server exited or did not become healthy in time."""


def start_dev_server(
    *args: str, port: int | None = None, ready_timeout: float = 60.0
) -> tuple[subprocess.Popen[str], str]:
    """Start ``python -m steerlm.server`` on loopback and wait until ``/health`` answers.

    Args:
        *args: More command-line flags, e.g. ``"--nemo-version", "1.17"``.
        port: Port to listen on; a free one when None.
        ready_timeout: Seconds to wait for ``/health``.

    Returns:
        The process and the server's base URL.

    Raises:
        DevServerError: The server exited (its output is in the message) or timed out.
    """
    port = port or free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "steerlm.server", "--port", str(port), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            raise DevServerError(f"steerlm-server exited with {process.returncode}: {output}")
        try:
            if requests.get(f"{url}/health", timeout=1).ok:
                return process, url
        except requests.ConnectionError:
            time.sleep(0.05)
    stop_dev_server(process)
    raise DevServerError(f"steerlm-server did not answer {url}/health within {ready_timeout} s")


def stop_dev_server(process: subprocess.Popen[str]) -> None:
    """Stop the server (SIGTERM, then kill after 10 s)."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def dev_server(*args: str, port: int | None = None) -> Iterator[str]:
    """Run the dev server for the duration of a ``with`` block; yields its base URL."""
    process, url = start_dev_server(*args, port=port)
    try:
        yield url
    finally:
        stop_dev_server(process)
