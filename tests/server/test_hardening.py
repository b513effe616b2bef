"""The dev server survives abuse: bad framing, slow or vanished clients, hostile text."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator, Sequence

import pytest
import requests

from steerlm.server.app import MAX_BODY_BYTES, NeMoServer, escape_for_log, serve_in_thread
from steerlm.server.engine import Cancelled, Generation, TokenSink
from steerlm.server.protocol import GenerateParams
from steerlm.server.scripted_engine import ScriptedEngine


class SlowEngine:
    """An engine that 'generates' one token per 10 ms, up to ``steps``, until cancelled."""

    name = "slow"
    context_window = 4096

    def __init__(self, steps: int = 3000) -> None:
        self.steps = steps
        self.ran: list[int] = []
        self.started = threading.Event()
        self.finished = threading.Event()

    def generate(
        self,
        prompts: Sequence[str],
        params: GenerateParams,
        *,
        cancelled: Cancelled | None = None,
        on_token: TokenSink | None = None,
    ) -> list[Generation]:
        self.started.set()
        step = 0
        while step < self.steps and not (cancelled and cancelled()):
            threading.Event().wait(0.01)
            step += 1
        self.ran.append(step)
        self.finished.set()
        return [Generation(p, [p], [1], [0], None, step) for p in prompts]


@pytest.fixture
def server() -> Iterator[NeMoServer]:
    """A private server (short read timeout, small request record) on the scripted engine."""
    server = NeMoServer(("127.0.0.1", 0), ScriptedEngine(), keep_requests=3, read_timeout=0.5)
    serve_in_thread(server)
    yield server
    server.shutdown()
    server.server_close()


def raw_exchange(server: NeMoServer, request: bytes) -> tuple[int, str]:
    """Send raw bytes, return the status and body of the answer."""
    host, port = server.server_address[:2]
    with socket.create_connection((str(host), port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(
            next(
                line.split(b":")[1]
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            )
        )
        while len(body) < length:
            body += sock.recv(65536)
    return int(head.split()[1]), body.decode()


def put(length: str, body: bytes = b"") -> bytes:
    return (
        f"PUT /generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode() + body


def test_received_keeps_only_the_most_recent_bodies(server: NeMoServer) -> None:
    assert server.received == []
    for index in range(5):
        requests.put(f"{server.base_url}/generate", json={"sentences": [str(index)]}, timeout=10)
    assert [body["sentences"] for body in server.received] == [["2"], ["3"], ["4"]]


@pytest.mark.parametrize("length", ["abc", "-1", "1e20", "12 34"])
def test_a_content_length_that_is_not_a_byte_count_is_a_400(
    server: NeMoServer, length: str
) -> None:
    status, body = raw_exchange(server, put(length))
    assert status == 400
    assert "Content-Length must be a number of bytes" in body


def test_a_chunked_body_without_content_length_is_a_411(server: NeMoServer) -> None:
    request = (
        b"PUT /generate HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\n{}\r\n0\r\n\r\n"
    )
    status, body = raw_exchange(server, request)
    assert status == 411
    assert "Content-Length" in body


def test_a_body_over_the_limit_is_a_413(server: NeMoServer) -> None:
    status, body = raw_exchange(server, put(str(MAX_BODY_BYTES + 1)))
    assert status == 413
    assert str(MAX_BODY_BYTES) in body


def test_a_body_that_stops_arriving_times_out_with_408(server: NeMoServer) -> None:
    status, body = raw_exchange(server, put("100", b'{"sentences": ['))
    assert status == 408
    assert "did not arrive" in body
    # The server still serves.
    ok = requests.put(f"{server.base_url}/generate", json={"sentences": ["x"]}, timeout=10)
    assert ok.status_code == 200


def test_an_idle_keep_alive_connection_is_closed(server: NeMoServer) -> None:
    host, port = server.server_address[:2]
    with socket.create_connection((str(host), port), timeout=10) as sock:
        assert sock.recv(1) == b""  # closed by the server after read_timeout


@pytest.mark.parametrize(
    "body",
    [b"[" * 100_000, b'{"sentences": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"],
    ids=["deep-array", "deep-sentences"],
)
def test_json_nested_too_deep_is_a_bad_body(server: NeMoServer, body: bytes) -> None:
    status, text = raw_exchange(server, put(str(len(body)), body))
    assert status == 400
    assert "could not understand" in text


def test_unknown_keys_are_escaped_and_cut_in_the_log(
    server: NeMoServer, caplog: pytest.LogCaptureFixture
) -> None:
    forged = "x\nERROR forged line\r"
    huge = "k" * 1_000_000
    with caplog.at_level(logging.ERROR, logger="steerlm.server"):
        requests.put(
            f"{server.base_url}/generate",
            data=json.dumps({"sentences": ["x"], forged: 1, huge: 2}),
            timeout=10,
        )
    lines = [
        record.getMessage() for record in caplog.records if "not allowed" in record.getMessage()
    ]
    assert len(lines) == 2
    assert all("\n" not in line and "\r" not in line and len(line) < 400 for line in lines)
    assert "x\\nERROR forged line\\r" in lines[0]
    assert "more characters" in lines[1]


def test_escape_for_log() -> None:
    assert escape_for_log('a\u2028b"\x1b') == 'a\\u2028b\\"\\u001b'
    assert escape_for_log("abcdef", limit=3) == "abc...(3 more characters)"


def test_a_client_that_hangs_up_stops_its_generation_and_frees_the_lock(
    capsys: pytest.CaptureFixture[str],
) -> None:
    engine = SlowEngine()
    server = NeMoServer(("127.0.0.1", 0), engine)
    serve_in_thread(server)
    try:
        host, port = server.server_address[:2]
        body = json.dumps({"sentences": ["x"]}).encode()
        with socket.create_connection((str(host), port), timeout=10) as sock:
            sock.sendall(put(str(len(body)), body))
            assert engine.started.wait(10)
        assert engine.finished.wait(20)
        assert engine.ran[0] < engine.steps
        # The lock is free: the next request is served (and runs to its end).
        engine.steps = 3
        answer = requests.put(f"{server.base_url}/generate", json={"sentences": ["y"]}, timeout=20)
        assert answer.status_code == 200
        assert engine.ran[1] == 3
        assert server.abandoned == 1
    finally:
        server.shutdown()
        server.server_close()
    assert "Traceback" not in capsys.readouterr().err
