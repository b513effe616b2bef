"""Transport faults over real loopback sockets, sync and async: each is a typed SteerLMError.

A raw server (tests/raw_server.py) writes the bytes by hand: bodies cut off, broken chunked
framing and gzip, a gzip bomb, one byte at a time, redirects, Retry-After. Every test runs
the sync path (requests) and the async path (httpx) through the public API, with
credentials in base_url, and checks that they appear in no error and no log line.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import json
import logging
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from steerlm import (
    SteerLMClient,
    SteerLMConnectionError,
    SteerLMError,
    SteerLMInputError,
    SteerLMResponseError,
    SteerLMServerError,
    SteerLMSettings,
    SteerLMTimeoutError,
    Turn,
)
from steerlm.errors import SteerLMRedirectError, SteerLMResponseTooLargeError
from steerlm.http import (
    DEFAULT_MAX_RESPONSE_BYTES,
    Endpoint,
    HttpResponse,
    HttpSession,
    RetryPolicy,
)
from steerlm.server.app import Fault, NeMoServer
from steerlm.server.scripted_engine import ScriptedEngine
from tests.raw_server import (
    ANSWER,
    BASIC_AUTH,
    SECRET,
    Drip,
    Pause,
    RawServer,
    answer_body,
    gzipped_ok,
    ok,
    response,
    with_credentials,
)

QUESTION = [Turn("user", "Hi")]
MODES = ["sync", "async"]


def model(server: RawServer, **fields: Any) -> SteerLMSettings:
    return SteerLMSettings(base_url=with_credentials(server.base_url), **fields)


def call(llm: SteerLMSettings, mode: str) -> str:
    plan = llm.pipeline.plan([QUESTION], {})
    if mode == "sync":
        return llm.pipeline.send(plan)[0].text
    return asyncio.run(llm.pipeline.asend(plan))[0].text  # a new loop each time: closed loops too


def fails(llm: SteerLMSettings, mode: str, expected: type[SteerLMError]) -> SteerLMError:
    """The call's error, checked to be ``expected`` and to name no secret."""
    with pytest.raises(SteerLMError) as info:
        call(llm, mode)
    error = info.value
    assert isinstance(error, expected), repr(error)
    assert SECRET not in str(error) and SECRET not in repr(error.__dict__)
    assert "http://***@127.0.0.1" in str(error)  # the URL is named, redacted
    return error


def chunked(*pieces: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces)


# -- faults: (script, error type, retried?) --------------------------------------------------

CHUNKED = {"Transfer-Encoding": "chunked"}
GZIP = {"Content-Encoding": "gzip"}


def _truncated_gzip(request: dict[str, Any]) -> bytes:
    data = gzip.compress(answer_body(request))[:-12]
    return response(200, data, GZIP)


def _broken_gzip(request: dict[str, Any]) -> bytes:
    return response(200, b"\x1f\x8b\x08\x00garbage-not-deflate" * 3, GZIP)


def _broken_gzip_chunked(request: dict[str, Any]) -> bytes:
    data = gzip.compress(answer_body(request))
    corrupt = data[:20] + bytes(b ^ 0xFF for b in data[20:40]) + data[40:]
    return response(200, chunked(corrupt) + b"0\r\n\r\n", {**GZIP, **CHUNKED})


FAULTS: dict[str, tuple[list[Any], type[SteerLMError], bool]] = {
    "closed before any answer": ([], SteerLMConnectionError, True),
    "closed mid-status-line": ([b"HTTP/1.1 20"], SteerLMConnectionError, True),
    "closed mid-headers": (
        [b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nX-A"],
        SteerLMConnectionError,
        True,
    ),
    "closed mid-body (Content-Length)": (
        [response(200, b'{"sentences": [', length=500)],
        SteerLMConnectionError,
        True,
    ),
    "garbage status line": ([b"HELLO WORLD\r\n\r\n"], SteerLMConnectionError, True),
    "invalid chunk size": (
        [response(200, b"zz\r\nhello\r\n0\r\n\r\n", CHUNKED)],
        SteerLMConnectionError,
        True,
    ),
    "chunked closed before the last chunk": (
        [response(200, chunked(b'{"sentences": ['), CHUNKED)],
        SteerLMConnectionError,
        True,
    ),
    "broken gzip": ([_broken_gzip], SteerLMResponseError, False),
    "truncated gzip": ([_truncated_gzip], SteerLMResponseError, False),
    "corrupt gzip, chunked": ([_broken_gzip_chunked], SteerLMResponseError, False),
    "unsupported Content-Encoding": (
        [response(200, b"\x00\x01", {"Content-Encoding": "br"})],
        SteerLMResponseError,
        False,
    ),
    "not JSON": ([response(200, b"<html>hi</html>")], SteerLMResponseError, False),
    "redirect 307": (
        [response(307, b"", {"Location": "http://evil.example/generate"})],
        SteerLMRedirectError,
        False,
    ),
    "HTTP 404": ([response(404, b'{"message": "No route"}')], SteerLMServerError, False),
    "HTTP 413": ([response(413, b"too large")], SteerLMServerError, False),
    "HTTP 502 (proxy)": ([response(502, b"Bad Gateway")], SteerLMServerError, True),
    "HTTP 408": ([response(408, b"Request Timeout")], SteerLMServerError, True),
    "HTTP 500 naming the context": (
        [response(500, b'"prompt of 6100 tokens fills the context (2048)"')],
        SteerLMServerError,
        False,
    ),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", list(FAULTS))
def test_every_transport_fault_is_a_typed_error_retried_when_it_can_heal(
    raw: RawServer, name: str, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    script, expected, retried = FAULTS[name]
    raw.queue(*[script] * 3)
    llm = model(raw, max_retries=1)
    with caplog.at_level(logging.INFO, logger="steerlm"):
        fails(llm, mode, expected)
    assert len(raw.requests) == (2 if retried else 1)
    assert SECRET not in caplog.text


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "name", [n for n, (_, _, retried) in FAULTS.items() if retried and n != "HTTP 408"][:4]
)
def test_a_fault_that_heals_is_retried_into_an_answer(raw: RawServer, name: str, mode: str) -> None:
    raw.queue(FAULTS[name][0])
    assert call(model(raw, max_retries=1), mode) == ANSWER
    assert len(raw.requests) == 2


@pytest.mark.parametrize("mode", MODES)
def test_gzip_and_chunked_answers_are_decoded(raw: RawServer, mode: str) -> None:
    def gzip_chunked(request: dict[str, Any]) -> bytes:
        data = gzip.compress(answer_body(request))
        pieces = [data[i : i + 7] for i in range(0, len(data), 7)]
        return response(200, chunked(*pieces) + b"0\r\n\r\n", {**GZIP, **CHUNKED})

    raw.queue([gzipped_ok], [gzip_chunked])
    llm = model(raw)
    assert call(llm, mode) == ANSWER
    assert call(llm, mode) == ANSWER
    assert raw.requests[0].headers["accept-encoding"] == "gzip, deflate"


# -- credentials -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_credentials_go_out_as_basic_auth_only(raw: RawServer, mode: str) -> None:
    llm = model(raw)
    assert call(llm, mode) == ANSWER
    [request] = raw.requests
    assert request.line == "PUT /generate HTTP/1.1"
    assert request.headers["authorization"] == BASIC_AUTH
    assert SECRET not in request.line and "alice" not in request.headers.get("host", "")


def test_percent_encoded_credentials_are_decoded_for_the_header(raw: RawServer) -> None:
    llm = SteerLMSettings(base_url=raw.base_url.replace("http://", "http://bob:p%40ss@"))
    call(llm, "sync")
    assert raw.requests[0].headers["authorization"] == "Basic Ym9iOnBAc3M="  # bob:p@ss


def test_client_shows_only_redacted_urls(raw: RawServer) -> None:
    client = SteerLMClient(with_credentials(raw.base_url))
    assert client.base_url == raw.base_url.replace("http://", "http://***@")
    assert client.url == client.base_url + "/generate"
    assert SECRET not in repr(client.__dict__)


@pytest.mark.parametrize(
    "base_url",
    [
        f"localhost:5555?token={SECRET}",
        f"ftp://u:{SECRET}@host",
        f"http://u:{SECRET}@host:notaport",
        f"http://u:{SECRET}@host/?key=1",
        f"http://u:{SECRET}@",
    ],
)
def test_bad_base_url_errors_do_not_show_credentials(base_url: str) -> None:
    with pytest.raises(SteerLMInputError) as info:
        SteerLMClient(base_url)
    if "@" in base_url:
        assert SECRET not in str(info.value)


# -- redirects -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirects_are_never_followed(
    raw: RawServer, nemo: NeMoServer, status: int, mode: str
) -> None:
    target = nemo.base_url.replace("http://", "http://mallory:pw@") + "/generate"
    raw.queue([response(status, b"", {"Location": target})])
    error = fails(model(raw, max_retries=2), mode, SteerLMRedirectError)
    assert isinstance(error, SteerLMServerError) and error.status == status
    assert error.location == nemo.base_url.replace("http://", "http://***@") + "/generate"
    assert f"HTTP {status}, a redirect to {error.location}" in str(error)
    assert len(raw.requests) == 1
    assert nemo.received == []  # the prompt never reached the other server


# -- the deadline ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_a_dripping_server_cannot_outlast_the_timeout(raw: RawServer, mode: str) -> None:
    # 0.05 s per byte: each read succeeds, the headers alone take ~11 s; timeout is 0.5 s.
    raw.queue([Drip(b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"a" * 200 + b"\r\n", 0.05)])
    error = fails(model(raw, timeout=0.5, max_retries=2), mode, SteerLMTimeoutError)
    assert "within 0.5 s" in str(error)
    assert len(raw.requests) == 1  # timeouts are not retried


@pytest.mark.parametrize("mode", MODES)
def test_a_body_dripped_after_prompt_headers_times_out(raw: RawServer, mode: str) -> None:
    def head(request: dict[str, Any]) -> bytes:
        return response(200, b"", length=2000)

    raw.queue([head, Drip(b" " * 2000, 0.05)])
    fails(model(raw, timeout=0.5), mode, SteerLMTimeoutError)


@pytest.mark.parametrize("mode", MODES)
def test_silence_before_the_answer_times_out(raw: RawServer, mode: str) -> None:
    raw.queue([Pause(1.5), ok])
    fails(model(raw, timeout=0.3), mode, SteerLMTimeoutError)


# -- the size cap ----------------------------------------------------------------------------


@functools.cache
def gzip_bomb() -> bytes:
    return gzip.compress(b" " * (DEFAULT_MAX_RESPONSE_BYTES + 1024 * 1024), 9)


@pytest.mark.parametrize("mode", MODES)
def test_a_gzip_bomb_stops_at_the_default_cap(raw: RawServer, mode: str) -> None:
    bomb = gzip_bomb()
    assert len(bomb) < 200_000
    raw.queue([response(200, bomb, GZIP)])
    error = fails(model(raw, max_retries=2), mode, SteerLMResponseTooLargeError)
    assert f"larger than max_response_bytes ({DEFAULT_MAX_RESPONSE_BYTES} bytes" in str(error)
    assert len(raw.requests) == 1


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("framing", ["length", "chunked", "close"])
def test_a_large_body_stops_at_the_configured_cap(raw: RawServer, mode: str, framing: str) -> None:
    def big(request: dict[str, Any]) -> bytes:
        body = answer_body(request, "x" * 5000)
        if framing == "chunked":
            return response(200, chunked(body) + b"0\r\n\r\n", CHUNKED)
        if framing == "close":  # no length at all: the body ends when the socket closes
            head = response(200, b"", {"Transfer-Encoding": "identity"})
            return head.replace(b"Transfer-Encoding: identity\r\n", b"") + body
        return response(200, body)

    raw.queue([big], [ok])
    llm = model(raw, max_response_bytes=4096)
    error = fails(llm, mode, SteerLMResponseTooLargeError)
    assert "max_response_bytes (4096 bytes" in str(error)
    assert call(llm, mode) == ANSWER  # small answers still pass


# -- retries ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("status", "retry_after", "logged"),
    [(429, "0.05", "0.05"), (503, "0", "0.00"), (429, "120", "0.20")],  # capped at max_delay
)
def test_retry_after_is_honoured_within_the_cap_and_logged(
    raw: RawServer,
    mode: str,
    status: int,
    retry_after: str,
    logged: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    raw.queue([response(status, b'"busy"', {"Retry-After": retry_after})])
    client = SteerLMClient(
        with_credentials(raw.base_url), retry=RetryPolicy(max_retries=1, max_delay=0.2)
    )
    payload = {"sentences": ["p"]}
    with caplog.at_level(logging.INFO, logger="steerlm.http"):
        if mode == "sync":
            body = client.post_json(payload)
        else:
            body = asyncio.run(client.apost_json(payload))
    assert body == {"sentences": ["p" + ANSWER]}
    redacted = raw.base_url.replace("http://", "http://***@")
    assert caplog.messages == [f"Retrying request to {redacted}/generate in {logged} seconds"]
    assert caplog.records[0].levelno == logging.INFO


def test_each_retry_is_logged_once(nemo: NeMoServer, caplog: pytest.LogCaptureFixture) -> None:
    nemo.faults.extend([Fault(503, "busy"), Fault(500, "oops")])
    llm = SteerLMSettings(base_url=nemo.base_url, max_retries=2)
    with caplog.at_level(logging.INFO, logger="steerlm.http"):
        llm.pipeline.send(llm.pipeline.plan([QUESTION], {}))
    assert [m.split(" in ")[0] for m in caplog.messages] == [
        f"Retrying request to {nemo.base_url}/generate"
    ] * 2


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (500, '"prompt of 6100 tokens fills the context (2048)"'),
        (500, "<p>ValueError: context length 6100 + tokens to generate 64 exceeds 2048</p>"),
        (400, '"prompt of 6100 tokens fills the context (2048)"'),
        # The dev server's answer (llama engine), NeMo style: HTTP 200 with a JSON string.
        (
            200,
            '"prompt 0 is 6100 tokens long, which leaves no room to generate in the context '
            "of 2048 tokens: shorten it to at most 2047 tokens, or start the server with a "
            'larger --ctx"',
        ),
        (422, '{"message": "bad"}'),
    ],
)
def test_failures_that_would_repeat_are_not_retried_and_show_the_reason(
    nemo: NeMoServer, status: int, body: str
) -> None:
    nemo.faults.extend([Fault(status, body)] * 3)
    llm = SteerLMSettings(base_url=nemo.base_url, max_retries=2)
    with pytest.raises(SteerLMServerError) as info:
        llm.pipeline.send(llm.pipeline.plan([QUESTION], {}))
    assert len(nemo.received) == 1
    assert info.value.retryable is False
    if status != 200:
        assert f"HTTP {status}" in str(info.value)
    if "context" in body:
        assert "6100" in str(info.value) and "do not fit the model's context" in str(info.value)


def test_a_plain_internal_server_error_is_still_retried(nemo: NeMoServer) -> None:
    nemo.faults.extend([Fault(500, '{"message": "Internal Server Error"}')] * 3)
    llm = SteerLMSettings(base_url=nemo.base_url, max_retries=2)
    with pytest.raises(SteerLMServerError, match="Check the server's log"):
        llm.pipeline.send(llm.pipeline.plan([QUESTION], {}))
    assert len(nemo.received) == 3


# -- requests that cannot be sent -----------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        ({"sentences": ["x"], "temperature": float("nan")}, "not JSON compliant"),
        ({"sentences": ["x"], "top_p": float("inf")}, "not JSON compliant"),
        ({"sentences": [object()]}, "not JSON serializable"),
        ({"sentences": [b"bytes"]}, "not JSON serializable"),
    ],
)
def test_a_request_that_is_not_json_fails_before_sending(
    raw: RawServer, mode: str, payload: dict[str, Any], problem: str
) -> None:
    client = SteerLMClient(raw.base_url)
    with pytest.raises(SteerLMInputError, match=problem):
        if mode == "sync":
            client.post_json(payload)
        else:
            asyncio.run(client.apost_json(payload))
    assert raw.requests == []


# -- settings --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"max_response_bytes": 0}, "max_response_bytes must be a positive integer"),
        ({"max_response_bytes": -5}, "max_response_bytes must be a positive integer"),
        ({"context_window": 0}, "context_window must be a positive number of tokens"),
        ({"timeout": float("inf")}, "timeout must be a positive number"),
        ({"timeout": float("nan")}, "timeout must be a positive number"),
        ({"base_url": "http://host:99999999"}, "not a valid URL"),
        ({"base_url": "http://:5555"}, "has no host"),
        ({"base_url": "http://host/#frag"}, "without a query, fragment"),
    ],
)
def test_bad_transport_settings_fail_at_construction(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SteerLMSettings(**fields)


def test_json_of_the_answer_is_parsed_after_decoding(raw: RawServer) -> None:
    raw.queue([lambda request: response(200, json.dumps({"sentences": ["zzz"]}).encode())])
    with pytest.raises(SteerLMResponseError, match="does not start with its prompt"):
        call(model(raw), "sync")


# -- HTTPS: the same deadline on TLS sockets ------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 (made with the openssl command)."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = str(folder / "cert.pem"), str(folder / "key.pem")
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", key, "-out", cert, "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
def tls_raw(certificate: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[RawServer]:
    cert, key = certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    # Both libraries trust the CA files named here (requests and httpx read them per client).
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", cert)
    monkeypatch.setenv("SSL_CERT_FILE", cert)
    server = RawServer(tls=context)
    yield server
    server.close()


@pytest.mark.parametrize("mode", MODES)
def test_https_answers_and_a_dripping_https_server_times_out(tls_raw: RawServer, mode: str) -> None:
    llm = SteerLMSettings(base_url=with_credentials(tls_raw.base_url), timeout=0.5)
    assert call(llm, mode) == ANSWER
    assert tls_raw.requests[0].headers["authorization"] == BASIC_AUTH
    tls_raw.queue([Drip(b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"a" * 200 + b"\r\n", 0.05)])
    with pytest.raises(SteerLMTimeoutError, match="https://\\*\\*\\*@127.0.0.1"):
        call(llm, mode)


# -- the pool after a fault ------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_the_next_call_after_a_timeout_gets_a_fresh_connection(nemo: NeMoServer, mode: str) -> None:
    nemo.faults.append(Fault(200, "{}", delay=1.0))
    llm = SteerLMSettings(base_url=nemo.base_url, timeout=0.3)

    async def both() -> str:
        with pytest.raises(SteerLMTimeoutError):
            await llm.pipeline.asend(llm.pipeline.plan([QUESTION], {}))
        return (await llm.pipeline.asend(llm.pipeline.plan([QUESTION], {})))[0].text

    if mode == "sync":
        with pytest.raises(SteerLMTimeoutError):
            call(llm, mode)
        assert call(llm, mode) == ScriptedEngine.default_answer
    else:
        assert asyncio.run(both()) == ScriptedEngine.default_answer


def test_concurrent_sync_calls_share_one_model_safely(nemo: NeMoServer) -> None:
    llm = SteerLMSettings(base_url=nemo.base_url, timeout=30)
    plan = llm.pipeline.plan([QUESTION], {})
    with ThreadPoolExecutor(8) as pool:
        texts = list(pool.map(lambda _: llm.pipeline.send(plan)[0].text, range(40)))
    assert texts == [ScriptedEngine.default_answer] * 40
    llm.close()


# -- the shared layer, as a second transport would use it ------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_the_http_layer_serves_other_routes_and_methods(nemo: NeMoServer, mode: str) -> None:
    session = HttpSession(timeout=5, retry=RetryPolicy(max_retries=0))
    health = Endpoint.parse(nemo.base_url).join("/health")

    def decode(response: HttpResponse) -> Any:
        return response.status, json.loads(response.text)

    if mode == "sync":
        status, body = session.request("GET", health, None, decode)
        session.close()
    else:

        async def get() -> Any:
            try:
                return await session.arequest("GET", health, None, decode)
            finally:
                await session.aclose()

        status, body = asyncio.run(get())
    assert status == 200 and body["status"] == "ok"


# -- the environment, read once per server ----------------------------------------------


def test_proxy_settings_from_the_environment_are_honoured(
    raw: RawServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # requests would read these on every request; the client reads them once per server.
    monkeypatch.setenv("HTTP_PROXY", raw.base_url)
    monkeypatch.setenv("NO_PROXY", "")
    llm = SteerLMSettings(base_url="http://nemo.invalid:5555", max_retries=0)
    assert call(llm, "sync") == ANSWER
    assert raw.requests[0].line.startswith("PUT http://nemo.invalid:5555/generate ")


def test_no_proxy_keeps_loopback_direct(raw: RawServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    llm = SteerLMSettings(base_url=raw.base_url, max_retries=0)
    assert call(llm, "sync") == ANSWER


# -- a server that was there and is gone ---------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_a_server_that_answered_and_vanished_is_named_as_such(mode: str) -> None:
    server = RawServer()
    llm = SteerLMSettings(base_url=server.base_url, max_retries=0)
    assert call(llm, mode) == ANSWER
    server.close()
    with pytest.raises(SteerLMConnectionError) as caught:
        call(llm, mode)
    assert caught.value.answered_before
    assert "answered earlier but cannot be reached now" in str(caught.value)


def test_a_server_that_never_answered_is_named_as_such(dead_url: str) -> None:
    llm = SteerLMSettings(base_url=dead_url, max_retries=0)
    with pytest.raises(SteerLMConnectionError) as caught:
        call(llm, "sync")
    assert not caught.value.answered_before
    assert "Is it running?" in str(caught.value)


# -- what must be retried, and what must not be shown --------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "upstream request timeout: context deadline exceeded",
        "Request exceeded the maximum queue length",
    ],
)
def test_gateway_errors_that_mention_a_context_are_still_retried(
    nemo: NeMoServer, body: str
) -> None:
    nemo.faults.append(Fault(status=503, body=body, content_type="text/plain"))
    llm = SteerLMSettings(base_url=nemo.base_url, max_retries=1)
    assert call(llm, "sync")
    assert len(nemo.received) == 2


@pytest.mark.parametrize(
    "url",
    ["http://alice:pa/ss@host:5555", "http://alice:12345/abc@host:5555", "http://u:p?q@host:1"],
)
def test_a_password_with_unencoded_delimiters_is_refused_without_showing_it(url: str) -> None:
    with pytest.raises(SteerLMInputError) as caught:
        SteerLMSettings(base_url=url)
    message = str(caught.value)
    assert "percent-encoded" in message
    for secret in ("pa/ss", "12345/abc", "p?q"):
        assert secret not in message


def test_settings_errors_never_echo_a_key_or_headers() -> None:
    for fields in ({"api_key": 1234567890}, {"default_headers": {"Authorization": ["sk-9"]}}):
        with pytest.raises(SteerLMInputError) as caught:
            SteerLMSettings(base_url="http://127.0.0.1:1", **fields)
        assert "1234567890" not in str(caught.value)
        assert "sk-9" not in str(caught.value)


@pytest.mark.parametrize("mode", MODES)
def test_requests_ca_bundle_is_trusted_by_sync_and_async_calls(
    certificate: tuple[str, str], monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    cert, key = certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", cert)  # requests' variable only
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    server = RawServer(tls=context)
    try:
        assert call(SteerLMSettings(base_url=server.base_url, max_retries=0), mode) == ANSWER
    finally:
        server.close()


@pytest.mark.parametrize("mode", MODES)
def test_netrc_credentials_are_sent_by_sync_and_async_calls(
    raw: RawServer, tmp_path: Any, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine 127.0.0.1 login alice password s3cr3t-t0ken\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    assert call(SteerLMSettings(base_url=raw.base_url, max_retries=0), mode) == ANSWER
    assert raw.requests[0].headers["authorization"] == BASIC_AUTH
