"""Shared fixtures: the NeMo-compatible server with the scripted engine, and helpers."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import requests

from steerlm.server.app import NeMoServer, serve_in_thread
from steerlm.server.engines import ScriptedEngine


@pytest.fixture(scope="session")
def _scripted_server() -> Iterator[NeMoServer]:
    server = NeMoServer(("127.0.0.1", 0), ScriptedEngine())
    serve_in_thread(server)
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def nemo(_scripted_server: NeMoServer) -> Iterator[NeMoServer]:
    """A NeMo-compatible server on loopback with a fresh scripted engine for each test.

    Queue completions with ``nemo.engine.script(...)``, canned answers with
    ``nemo.faults.append(Fault(...))``; ``nemo.received`` holds the request bodies.
    """
    server = _scripted_server
    server.reset()
    assert isinstance(server.engine, ScriptedEngine)
    server.engine.reset()
    server.nemo_version = "latest"
    yield server
    server.reset()


@pytest.fixture
def engine(nemo: NeMoServer) -> ScriptedEngine:
    """The scripted engine behind ``nemo``."""
    assert isinstance(nemo.engine, ScriptedEngine)
    return nemo.engine


@pytest.fixture
def dead_url() -> str:
    """A loopback URL where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server_process(
    *args: str, ready_timeout: float = 60.0
) -> tuple[subprocess.Popen[str], str]:
    """Start ``python -m steerlm.server`` on a free port and wait for ``/health``."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "steerlm.server",
            "--port",
            str(port),
            "--log-level",
            "WARNING",
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            pytest.fail(f"steerlm-server exited with {process.returncode}: {output}")
        try:
            if requests.get(f"{url}/health", timeout=1).ok:
                return process, url
        except requests.ConnectionError:
            time.sleep(0.05)
    process.kill()
    pytest.fail(f"steerlm-server did not become healthy within {ready_timeout} s")


def stop_server_process(process: subprocess.Popen[str]) -> None:
    """Stop a server started by :func:`start_server_process` (SIGTERM, then kill)."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def real_server_url() -> Iterator[str]:
    """URL of the dev server on the embedded real model, in its own process (session-wide)."""
    process, url = start_server_process()
    yield url
    stop_server_process(process)
