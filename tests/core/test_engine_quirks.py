"""What real OpenAI-compatible engines do that the client must survive (issue 17), on raw bytes.

Each case is what a named server really sends (docs/dev/engine-facts.md): Starlette's
trailing-slash 307 (vLLM routes ``/v1/completions``, Export-Deploy's FastAPI apps route
``/v1/completions/``), a JSON completion in answer to ``stream: true`` (NeMo 2.x servers
ignore it), streams cut off mid-answer, a proxy's page, and SSE lines ended by a bare CR.
"""

from __future__ import annotations

import json

import pytest

from steerlm import (
    SteerLMRedirectError,
    SteerLMResponseError,
    SteerLMServerError,
    SteerLMStreamEndedError,
)
from steerlm.http import SSEDecoder
from steerlm.options import GenerationOptions
from steerlm.transports.openai import OpenAIClient
from tests.raw_server import RawServer, response

_COMPLETION = {
    "id": "cmpl-1",
    "object": "text_completion",
    "model": "m",
    "choices": [{"index": 0, "text": "Hello there", "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
}
_SSE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"


def _client(raw: RawServer, path: str = "/v1", **settings: object) -> OpenAIClient:
    return OpenAIClient(raw.base_url + path, model="m", engine="generic", max_retries=0, **settings)


def _redirect(raw: RawServer, path: str, status: int = 307) -> bytes:
    # Starlette's redirect_slashes answer: an absolute Location on the same host.
    return response(status, b"", {"Location": f"{raw.base_url}{path}"})


@pytest.mark.parametrize(
    ("served", "asked"),
    [("/v1/completions/", "/v1/completions"), ("/v1/completions", "/v1/completions/")],
    ids=["to-slash (Export-Deploy)", "from-slash (vLLM)"],
)
def test_a_trailing_slash_redirect_is_followed_and_remembered(
    raw: RawServer, served: str, asked: str
) -> None:
    ok = response(200, json.dumps(_COMPLETION))
    raw.queue([_redirect(raw, served)], [ok], [ok])
    client = _client(raw)
    client._completions = client.endpoint.join(asked.removeprefix("/v1"))  # the route asked
    assert client.generate(["p"], GenerationOptions(), [])[0].text == "Hello there"
    assert client.generate(["p"], GenerationOptions(), [])[0].text == "Hello there"
    lines = [request.line for request in raw.requests]
    assert lines == [f"POST {asked} HTTP/1.1", f"POST {served} HTTP/1.1", f"POST {served} HTTP/1.1"]


@pytest.mark.parametrize(
    "location",
    ["http://evil.example/v1/completions/", "/v1/other", "https://127.0.0.1:1/v1/completions/"],
)
def test_any_other_redirect_is_refused(raw: RawServer, location: str) -> None:
    raw.queue([response(307, b"", {"Location": location})])
    with pytest.raises(SteerLMRedirectError, match="Redirects are not followed"):
        _client(raw).generate(["p"], GenerationOptions(), [])
    assert len(raw.requests) == 1


def test_a_redirect_loop_between_the_twins_is_refused(raw: RawServer) -> None:
    raw.queue([_redirect(raw, "/v1/completions/")], [_redirect(raw, "/v1/completions")])
    with pytest.raises(SteerLMRedirectError):
        _client(raw).generate(["p"], GenerationOptions(), [])
    assert len(raw.requests) == 2


async def test_a_stream_is_redirected_too(raw: RawServer) -> None:
    events = _SSE_HEAD + b'data: {"choices": [{"text": "Hi", "finish_reason": "stop"}]}\n\n'
    raw.queue([_redirect(raw, "/v1/completions/")], [events])
    chunks = [c async for c in _client(raw).astream("p", GenerationOptions(), [])]
    assert "".join(c.text for c in chunks) == "Hi"
    assert raw.requests[-1].line == "POST /v1/completions/ HTTP/1.1"


async def test_a_json_answer_to_a_stream_request_is_the_whole_answer(raw: RawServer) -> None:
    # NeMo's Flask app and Export-Deploy ignore stream: true and answer one completion.
    body = json.dumps(_COMPLETION)
    raw.queue([response(200, body)], [response(200, body)])
    client = _client(raw)
    sync = list(client.stream("p", GenerationOptions(), []))
    assert [c.text for c in sync] == ["Hello there"]
    assert sync[-1].completion is not None and sync[-1].completion.usage is not None
    chunks = [c async for c in client.astream("p", GenerationOptions(), [])]
    assert "".join(c.text for c in chunks) == "Hello there"


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (_SSE_HEAD, "it sent no event at all"),
        (
            response(200, "<html><body>Gateway</body></html>", {"Content-Type": "text/html"}),
            "it answered with text/html",
        ),
    ],
    ids=["head-then-nothing", "proxy-page"],
)
async def test_a_stream_the_server_never_finished_is_an_error(
    raw: RawServer, answer: bytes, problem: str
) -> None:
    raw.queue([answer], [answer])
    client = _client(raw)
    with pytest.raises(SteerLMStreamEndedError, match=problem) as caught:
        list(client.stream("p", GenerationOptions(), []))
    assert isinstance(caught.value, SteerLMResponseError)
    assert "ended before the server finished it" in str(caught.value)
    with pytest.raises(SteerLMStreamEndedError, match=problem):
        _ = [c async for c in client.astream("p", GenerationOptions(), [])]


def test_a_stream_with_a_finish_reason_but_no_done_is_complete(raw: RawServer) -> None:
    events = _SSE_HEAD + b'data: {"choices": [{"text": "Hi", "finish_reason": "length"}]}\n\n'
    raw.queue([events])
    chunks = list(_client(raw).stream("p", GenerationOptions(), []))
    assert chunks[-1].completion is not None
    assert chunks[-1].completion.finish_reason == "length"


@pytest.mark.parametrize("end", [b"\r", b"\n", b"\r\n"], ids=["CR", "LF", "CRLF"])
def test_sse_lines_may_end_in_cr_lf_or_crlf(end: bytes) -> None:
    stream = (
        b"data: one" + end + end + b": comment" + end + b"data: two" + end + b"data: 2" + end + end
    )
    for size in (1, 2, 3, len(stream)):  # every split, a CRLF torn between chunks included
        decoder = SSEDecoder()
        events = [
            e for i in range(0, len(stream), size) for e in decoder.feed(stream[i : i + size])
        ]
        assert events + decoder.finish() == ["one", "two\n2"]


def test_a_stream_in_bare_crs_is_read(raw: RawServer) -> None:
    events = (
        b'data: {"choices": [{"text": "Hel", "finish_reason": null}]}\r\r'
        b'data: {"choices": [{"text": "lo", "finish_reason": "stop"}]}\r\rdata: [DONE]\r\r'
    )
    raw.queue([_SSE_HEAD + events])
    chunks = list(_client(raw).stream("p", GenerationOptions(), []))
    assert "".join(c.text for c in chunks) == "Hello"


def test_a_passing_failure_of_models_is_asked_again_next_call(raw: RawServer) -> None:
    listing = {"object": "list", "data": [{"id": "m", "owned_by": "vllm"}]}
    ok = response(200, json.dumps(_COMPLETION))
    raw.queue([response(503, '{"error": {"message": "loading", "code": 503}}')], [ok])
    raw.queue([response(200, json.dumps(listing))], [ok])
    client = OpenAIClient(raw.base_url + "/v1", model="m", max_retries=0)
    assert client.generate(["p"], GenerationOptions(), [])[0].text == "Hello there"
    assert client.profile.name == "generic"  # for this call only
    client.generate(["p"], GenerationOptions(), [])
    assert client.profile.name == "vllm"
    assert [r.line.split()[1] for r in raw.requests] == ["/v1/models", "/v1/completions"] * 2


def test_a_fastapi_404_without_v1_in_base_url_is_the_route_hint_not_a_guess(
    raw: RawServer,
) -> None:
    raw.queue([response(404, '{"detail":"Not Found"}')])
    client = OpenAIClient(raw.base_url, max_retries=0)
    with pytest.raises(SteerLMServerError, match="add /v1 to base_url"):
        client.generate(["p"], GenerationOptions(), [])
    assert client.profile.name == "generic"
