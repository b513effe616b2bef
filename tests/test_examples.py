"""Every example runs to the end against the dev server on the real small model."""

from __future__ import annotations

import http.server
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from steerlm.server.process import DevServer

pytestmark = pytest.mark.integration

EXAMPLES_DIR = Path(__file__).parents[1] / "examples"
RUN_DEMO = EXAMPLES_DIR / "run_demo.py"
EXAMPLES = sorted(
    path
    for path in EXAMPLES_DIR.glob("*.py")
    if path != RUN_DEMO  # it takes a port, not STEERLM_BASE_URL: tested below
)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.stem)
def test_example_runs(example: Path, real_server_url: str) -> None:
    result = subprocess.run(
        [sys.executable, str(example)],
        env={**os.environ, "STEERLM_BASE_URL": real_server_url},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()


def run_demo(port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(RUN_DEMO), "--port", str(port)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_run_demo_uses_the_running_server_and_shows_steering(real_server: DevServer) -> None:
    result = run_demo(real_server.port)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"Using the dev server already running at {real_server.url}" in out
    assert "Question: What is a black hole?" in out
    # LangChain's two answers: verbosity 0 is clearly shorter than verbosity 4.
    counts = {
        int(value): int(tokens)
        for value, tokens in re.findall(r"'verbosity': (\d)\}\)  ->  (\d+) tokens", out)
    }
    assert counts.keys() == {0, 4}, out
    assert counts[0] * 2 <= counts[4], counts
    assert "<extra_id_2>quality:4,toxicity:0,humor:0,creativity:0," in out
    assert "llm.with_attributes(verbosity=4).chat(messages)" in out
    assert "Streamed token by token, verbosity=4" in out
    # The attribute model (the server's stand-in scorer) scores both answers, then picks
    # the best of four by verbosity.
    assert "5. The attribute model" in out
    scored = re.findall(r"answer asked for verbosity:(\d)  ->  (\d+\.\d+)", out)
    assert [value for value, _ in scored] == ["0", "4"], out
    assert all(0.0 <= float(score) <= 4.0 for _, score in scored)
    assert len(re.findall(r"candidate \d: verbosity", out)) == 4
    assert out.count("<- chosen") == 1
    assert "Server stopped." not in out  # it did not start (or stop) a server of its own


@pytest.fixture
def other_server() -> Iterator[int]:
    """A port where an HTTP server that is not the dev server listens (501 for any GET)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_run_demo_on_a_port_busy_with_another_server_names_the_fix(other_server: int) -> None:
    result = run_demo(other_server)
    assert result.returncode == 1
    assert f"Port {other_server} is busy, but not with the SteerLM dev server" in result.stderr
    assert f"make demo DEMO_PORT={other_server + 1}" in result.stderr
