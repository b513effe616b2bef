"""A real third-party OpenAI-compatible server: llama-cpp-python's ``python -m llama_cpp.server``.

It serves the embedded SmolLM2-135M GGUF on a free loopback port for the whole session
(started on first use, so the unit tier never pays for it), through the same child-process
helper as the dev server: if it dies, the tests say why (exit code or signal, its last
output, the fix for an illegal instruction).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from steerlm.server.llama_engine import embedded_model_path
from steerlm.server.process import DevServer, dev_server
from tests.llamaindex.conftest import embed_model  # noqa: F401  (a fixture, for query engines)

#: The name the server reports in /v1/models, and so in metadata.
MODEL_ALIAS = "smollm2-135m-instruct"


@pytest.fixture(scope="session")
def llama_server() -> Iterator[DevServer]:
    """``python -m llama_cpp.server`` on the embedded model (session-wide)."""
    args = (
        "--model", str(embedded_model_path()),
        "--model_alias", MODEL_ALIAS,
        "--host", "127.0.0.1",
        "--n_ctx", "2048",
        "--verbose", "False",
    )  # fmt: skip
    with dev_server(*args, module="llama_cpp.server", health_path="/v1/models") as server:
        yield server


@pytest.fixture
def llama_url(llama_server: DevServer) -> Iterator[str]:
    """The server's API root (``.../v1``); a test fails with the reason if it has died."""
    llama_server.raise_if_dead()
    yield llama_server.url + "/v1"
    llama_server.raise_if_dead()
