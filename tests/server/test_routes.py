"""The route table through HTTP: every route answers, the server says which routes it has,
reports its context window, and says when the imitated NeMo release drops a sent key."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator

import pytest
import requests

from steerlm.server import routes
from steerlm.server.app import NeMoServer
from steerlm.server.process import free_port
from steerlm.server.scripted_engine import ScriptedEngine

ALL_ROUTES = (
    "PUT /generate",
    "GET /health",
    "GET /v1/models",
    "POST /v1/completions",
    "POST /v1/chat/completions",
    "GET /v2/health/ready",
    "GET /v2/health/live",
    "GET /v2/models/{model}/ready",
    "GET /v2/models/{model}",
    "POST /v2/models/{model}/infer",
)
# A body each route answers with a 200 (by path; PUT and POST otherwise).
_BODIES = {
    "/v1/chat/completions": {
        "model": "reward_model",
        "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
    },
    "/v2/models/{model}/infer": {
        "inputs": [{"name": "sentences", "shape": [1, 1], "datatype": "BYTES", "data": ["x"]}]
    },
}


def test_the_table_lists_every_route() -> None:
    assert tuple(str(route) for route in routes.ROUTES) == ALL_ROUTES
    assert routes.route_list() == ", ".join(ALL_ROUTES)


def test_every_route_answers(nemo: NeMoServer) -> None:
    bodies = {"PUT": {"sentences": ["x"]}, "POST": {"prompt": "x"}}
    for route in routes.ROUTES:
        body = _BODIES.get(route.path, bodies.get(route.method))
        path = route.path.replace("{model}", nemo.reward_model)
        response = requests.request(route.method, nemo.base_url + path, json=body, timeout=10)
        assert response.status_code == 200, (route, response.text)


def test_unknown_paths_and_methods(nemo: NeMoServer) -> None:
    # As Flask answers: a known path under another method is a 405, an unknown path a 404.
    assert requests.post(f"{nemo.base_url}/generate", json={}, timeout=5).status_code == 405
    assert requests.get(f"{nemo.base_url}/v1/completions", timeout=5).status_code == 405
    missing = requests.post(f"{nemo.base_url}/completions", json={}, timeout=5)
    assert missing.status_code == 404
    posts = ", ".join(str(route) for route in routes.ROUTES if route.method == "POST")
    assert posts.startswith("POST /v1/completions, POST /v1/chat/completions")
    assert missing.json() == {"message": f"No route /completions; use {posts}"}
    assert requests.put(f"{nemo.base_url}/nope", json={}, timeout=5).json() == {
        "message": "No route /nope; use PUT /generate"
    }


def test_help_lists_every_route() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "steerlm.server", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())  # argparse wraps lines
    for route in routes.ROUTES:
        assert str(route) in text
        assert route.summary in text


@pytest.fixture
def started() -> Iterator[tuple[subprocess.Popen[str], int]]:
    """``steerlm-server --engine scripted --ctx 512`` in a child process, and its port."""
    port = free_port()
    args = ["--engine", "scripted", "--port", str(port), "--ctx", "512"]
    process = subprocess.Popen(
        [sys.executable, "-m", "steerlm.server", *args], stderr=subprocess.PIPE, text=True
    )
    yield process, port
    process.terminate()
    process.wait(timeout=10)
    assert process.stderr is not None
    process.stderr.close()


def test_the_start_line_lists_every_route(started: tuple[subprocess.Popen[str], int]) -> None:
    process, port = started
    assert process.stderr is not None
    line = process.stderr.readline()  # logged once the server listens
    assert f"serving scripted answers at http://127.0.0.1:{port} " in line
    assert line.rstrip().endswith(f"({routes.route_list()})")
    health = requests.get(f"http://127.0.0.1:{port}/health", timeout=5).json()
    assert health["context_window"] == 512  # --ctx sets the scripted engine's window too


# -- the context window -------------------------------------------------------------------


def test_health_and_models_report_the_context_window(
    nemo: NeMoServer, engine: ScriptedEngine
) -> None:
    health = requests.get(f"{nemo.base_url}/health", timeout=5).json()
    assert health["context_window"] == 2048  # the scripted engine's default
    engine.context_window = 512
    nemo.openai_models = ["first", "second"]
    models = requests.get(f"{nemo.base_url}/v1/models", timeout=5).json()["data"]
    assert [(m["id"], m["max_model_len"]) for m in models] == [("first", 512), ("second", 512)]
    assert requests.get(f"{nemo.base_url}/health", timeout=5).json()["context_window"] == 512


def test_the_scripted_engine_refuses_a_prompt_beyond_its_window(
    nemo: NeMoServer, engine: ScriptedEngine
) -> None:
    engine.context_window = 8
    engine.script("kept for the next request")
    long_prompt = "one two three four five"  # nine plain tokens: words and spaces
    refused = requests.put(
        f"{nemo.base_url}/generate", json={"sentences": ["ok", long_prompt]}, timeout=5
    )
    assert refused.status_code == 200
    assert refused.json() == (
        "prompt 1 is 9 tokens long, which leaves no room to generate in the context of 8 "
        "tokens: shorten it to at most 7 tokens, or start the server with a larger --ctx"
    )
    openai = requests.post(f"{nemo.base_url}/v1/completions", json={"prompt": long_prompt})
    assert openai.status_code == 400
    assert "context of 8 tokens" in openai.json()["error"]["message"]
    answer = requests.put(f"{nemo.base_url}/generate", json={"sentences": ["ok"]}, timeout=5)
    assert answer.json()["sentences"] == ["okkept for the next request"]  # nothing consumed


# -- a sent key the imitated release drops ------------------------------------------------


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_a_dropped_repetition_penalty_is_said_once_with_the_fix(
    nemo: NeMoServer, caplog: pytest.LogCaptureFixture
) -> None:
    body = {"sentences": ["x"], "repetition_penalty": 1.3}
    with caplog.at_level(logging.WARNING, logger="steerlm.server"):
        for _ in range(3):
            requests.put(f"{nemo.base_url}/generate", json=body, timeout=5).raise_for_status()
        requests.post(
            f"{nemo.base_url}/v1/completions",
            json={"prompt": "x", "repetition_penalty": 1.3},
            timeout=5,
        ).raise_for_status()
    assert _warnings(caplog) == [
        "The request sets repetition_penalty=1.3, but the NeMo release this server imitates "
        "(--nemo-version latest) never applies it: sampling uses 1.0. Start the server with "
        "--nemo-version 1.18 for repetition_penalty to apply (said once)."
    ]


@pytest.mark.parametrize(
    ("release", "body"),
    [
        ("1.18", {"repetition_penalty": 1.3}),  # applied
        ("1.17", {"repetition_penalty": 1.3}),  # applied
        ("latest", {"repetition_penalty": 1.0}),  # dropped for the value it had
        ("latest", {}),
    ],
)
def test_no_warning_when_nothing_is_dropped(
    nemo: NeMoServer, caplog: pytest.LogCaptureFixture, release: str, body: dict[str, float]
) -> None:
    nemo.nemo_version = release
    with caplog.at_level(logging.WARNING, logger="steerlm.server"):
        put = requests.put(f"{nemo.base_url}/generate", json={"sentences": ["x"], **body})
        put.raise_for_status()
        # The OpenAI route always passes repetition_penalty on (1.0 unless sent).
        requests.post(f"{nemo.base_url}/v1/completions", json={"prompt": "x"}, timeout=5)
    assert _warnings(caplog) == []


def test_nemo_1_20_also_drops_min_tokens(
    nemo: NeMoServer, caplog: pytest.LogCaptureFixture
) -> None:
    nemo.nemo_version = "1.20"
    body = {"sentences": ["x"], "repetition_penalty": 1.3, "min_tokens_to_generate": 4}
    with caplog.at_level(logging.WARNING, logger="steerlm.server"):
        requests.put(f"{nemo.base_url}/generate", json=body, timeout=5).raise_for_status()
    warnings = _warnings(caplog)
    assert len(warnings) == 2
    assert "--nemo-version 1.18 for repetition_penalty" in warnings[0]
    assert "min_tokens_to_generate=4" in warnings[1]
    assert "--nemo-version latest for min_tokens_to_generate" in warnings[1]
