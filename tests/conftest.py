"""Shared fixtures: the NeMo-compatible server with the scripted engine, and helpers."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from steerlm.server.app import NeMoServer, serve_in_thread
from steerlm.server.process import DevServer, dev_server, free_port
from steerlm.server.scripted_engine import ScriptedEngine
from tests.raw_server import RawServer


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
def raw() -> Iterator[RawServer]:
    """A server that answers with hand-written bytes (transport faults); see raw_server.py."""
    server = RawServer()
    yield server
    server.close()


@pytest.fixture
def dead_url() -> str:
    """A loopback URL where nothing listens."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture(scope="session")
def real_server() -> Iterator[DevServer]:
    """The dev server on the embedded real model, in its own process (session-wide).

    Chat-template mode, as ``make demo`` and ``steerlm-server`` run it: the small model
    answers the SteerLM conversation in its own chat template (see ``raw_server_url``).
    """
    with dev_server("--prompt-mode", "chat", "--log-level", "WARNING") as server:
        yield server


@pytest.fixture(scope="session")
def raw_server_url() -> Iterator[str]:
    """URL of the dev server in raw prompt mode (session-wide), for real stop handling.

    The model reads the SteerLM prompt byte for byte, as on NeMo, so it may write marker
    text (``<extra_id_2>``...) that end strings must catch.
    """
    with dev_server("--prompt-mode", "raw", "--log-level", "WARNING") as server:
        server.raise_if_dead()
        yield server.url


@pytest.fixture
def real_server_url(real_server: DevServer) -> Iterator[str]:
    """URL of :func:`real_server`; a test fails with the reason if the server has died."""
    real_server.raise_if_dead()
    yield real_server.url
    # A dead server shows in the test as "connection refused"; say why it died instead.
    real_server.raise_if_dead()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Close the two /dev/null files llama-cpp-python opens at import and never closes.

    Tests that run the llama engine in-process import llama_cpp; without this, the
    interpreter reports them as unclosed files (ResourceWarning) at exit.
    """
    utils = sys.modules.get("llama_cpp._utils")
    for name in ("outnull_file", "errnull_file"):
        handle = getattr(utils, name, None)
        if handle is not None:
            handle.close()
