"""A NeMo-compatible text-generation server on the standard library's HTTP server.

It speaks ``PUT /generate`` as NeMo's ``megatron_gpt_eval.py server=True`` does: same keys,
same validation messages (HTTP 200 with a JSON string), one generation at a time. Tests
can queue :class:`Fault` answers to mimic a broken or slow server, and read the request
bodies it received (the most recent ones: the record is bounded).

It also speaks the OpenAI-compatible completions API as vLLM does (``POST /v1/completions``,
with server-sent events for ``stream: true``, and ``GET /v1/models``), on the same engine
behind the same lock: see :mod:`steerlm.server.openai_routes`.

It survives abuse: a bad or oversized ``Content-Length`` is answered 400/413, a body that
never arrives times out, JSON nested too deep is a bad body, a client that hangs up stops
its generation (engines that can be cancelled), and request text is escaped in the log.
"""

from __future__ import annotations

import json
import logging
import select
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol, TypeGuard

from steerlm.server.engines import Engine, Generation, StreamingEngine, TokenSink
from steerlm.server.protocol import (
    NEMO_VERSIONS,
    GenerateParams,
    RejectionError,
    parse_request,
)

log = logging.getLogger("steerlm.server")

#: Largest request body accepted (HTTP 413 above): 128 long prompts fit many times over.
MAX_BODY_BYTES = 16 * 1024 * 1024
#: Seconds a connection may stay silent (idle keep-alive, or a body that stops arriving).
READ_TIMEOUT = 60.0
#: Request bodies kept for tests in ``NeMoServer.received`` (oldest dropped first).
KEEP_REQUESTS = 256
#: Longest request text (e.g. an unknown key) quoted in the log.
MAX_LOGGED_CHARS = 120

_BAD_BODY = {
    "message": "The browser (or proxy) sent a request that this server could not understand."
}


class _EscapeArguments(logging.Filter):
    """Escape and truncate string arguments of log records: request text is untrusted.

    A key holding CR/LF would otherwise forge log lines, and a 1 MB key make a 1 MB line.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                escape_for_log(arg) if isinstance(arg, str) else arg for arg in record.args
            )
        return True


def escape_for_log(text: str, limit: int = MAX_LOGGED_CHARS) -> str:
    """``text`` with control and non-ASCII characters escaped, cut to ``limit`` characters."""
    cut = f"...({len(text) - limit} more characters)" if len(text) > limit else ""
    return json.dumps(text[:limit])[1:-1] + cut


log.addFilter(_EscapeArguments())


class CancellableEngine(Engine, Protocol):
    """An engine that stops generating when ``cancelled()`` turns true (the client left)."""

    cancellable: bool

    def generate(
        self,
        prompts: Sequence[str],
        params: GenerateParams,
        cancelled: Callable[[], bool] | None = None,
    ) -> list[Generation]:
        """Generate, checking ``cancelled`` between tokens."""
        ...


def _is_cancellable(engine: Engine) -> TypeGuard[CancellableEngine]:
    return getattr(engine, "cancellable", False) is True


def _is_streaming(engine: Engine) -> TypeGuard[StreamingEngine]:
    return getattr(engine, "streaming", False) is True


class RecentRequests(list[dict[str, Any]]):
    """A list of the last ``maxlen`` request bodies: appending drops the oldest.

    A list rather than a deque so that tests can compare it with ``[]`` and index it.
    """

    def __init__(self, maxlen: int) -> None:
        super().__init__()
        self.maxlen = maxlen

    def append(self, body: dict[str, Any]) -> None:
        """Record ``body``, forgetting the oldest beyond ``maxlen``."""
        if self.maxlen <= 0:
            return
        super().append(body)
        if len(self) > self.maxlen:
            del self[: len(self) - self.maxlen]


@dataclass(frozen=True)
class Fault:
    """A canned answer served instead of the next generation.

    Args:
        status: HTTP status.
        body: Raw body text.
        delay: Seconds to wait before answering.
        content_type: Content-Type header.
    """

    status: int = 200
    body: str = ""
    delay: float = 0.0
    content_type: str = "application/json"


class NeMoServer(ThreadingHTTPServer):
    """The HTTP server; ``engine`` generates, ``nemo_version`` picks release behaviour.

    Args:
        address: ``(host, port)``; port 0 picks a free one.
        engine: The model behind ``/generate``.
        nemo_version: ``"1.17"`` ignores ``end_strings``, ``compute_logprob`` and
            ``random_seed`` as NeMo 1.17 does; later versions honour them.
        keep_requests: How many recent request bodies ``received`` keeps (0: none).
        read_timeout: Seconds a connection may stay silent before it is dropped (idle
            keep-alive) or answered 408 (a body that stops arriving).
    """

    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog of 5 drops connections when many clients connect at
    # once; werkzeug, which serves NeMo's Flask app, listens with 128.
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        engine: Engine,
        nemo_version: str = "latest",
        keep_requests: int = KEEP_REQUESTS,
        read_timeout: float = READ_TIMEOUT,
    ) -> None:
        if nemo_version not in NEMO_VERSIONS:
            raise ValueError(f"nemo_version must be one of {NEMO_VERSIONS}, got {nemo_version!r}")
        self.engine = engine
        self.nemo_version = nemo_version
        self.read_timeout = read_timeout
        self.faults: deque[Fault] = deque()
        self.received = RecentRequests(keep_requests)
        #: Generations stopped because their client hung up.
        self.abandoned = 0
        #: Headers (lower-case names) of recent /v1 requests, for tests of credentials.
        self.received_headers = RecentRequests(keep_requests)
        #: Model names ``GET /v1/models`` lists; None: the engine's name alone.
        self.openai_models: list[str] | None = None
        #: Bearer token /v1 requests must carry (401 otherwise); None: no check.
        self.api_key: str | None = None
        #: Seconds between the events of a /v1 stream (tests of a client leaving mid-stream).
        self.stream_interval = 0.0
        # NeMo serves one generation at a time behind a global lock; so does this server.
        self.generate_lock = threading.Lock()
        super().__init__(address, _Handler)

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the listening socket."""
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def reset(self) -> None:
        """Forget recorded requests and queued faults; no API key, the engine's model."""
        self.faults.clear()
        self.received.clear()
        self.received_headers.clear()
        self.openai_models = None
        self.api_key = None
        self.stream_interval = 0.0

    @property
    def served_models(self) -> list[str]:
        """The names ``GET /v1/models`` lists (the first is the default)."""
        return list(self.openai_models or [self.engine.name])

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up or went silent is routine; anything else is logged."""
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            log.debug("connection from %s ended early", client_address)
            return
        log.exception("error while answering %s", client_address)

    def generate(
        self, body: dict[str, Any], cancelled: Callable[[], bool] | None = None
    ) -> tuple[int, Any]:
        """Answer one ``/generate`` body: (HTTP status, JSON value).

        Args:
            body: The decoded request.
            cancelled: Turns true when the client has gone; a cancellable engine then stops.
        """
        try:
            params, generations = self.run(body, cancelled)
        except GenerationRefused as exc:
            return exc.status, exc.value
        answer: dict[str, Any] = {
            "sentences": [g.sentence for g in generations],
            "tokens": [g.tokens for g in generations],
            "logprob": [g.logprob for g in generations] if params.wants_logprobs else None,
            "token_ids": [g.token_ids for g in generations],
            "offsets": [g.offsets for g in generations],
        }
        if params.all_probs:
            answer["full_logprob"] = answer["logprob"]
        return 200, answer

    def run(
        self,
        body: dict[str, Any],
        cancelled: Callable[[], bool] | None = None,
        on_token: TokenSink | None = None,
    ) -> tuple[GenerateParams, list[Generation]]:
        """Validate a ``/generate`` body and generate it under the lock (both APIs use it).

        Args:
            body: The ``/generate`` body.
            cancelled: Turns true when the client has gone; a cancellable engine then stops.
            on_token: Receives each prompt's text as it is generated, from an engine that
                streams (see :class:`~steerlm.server.engines.StreamingEngine`); other
                engines never call it.

        Raises:
            GenerationRefused: NeMo's answer to a bad request or a failed generation.
        """
        try:
            sentences, params = parse_request(body, self.nemo_version)
        except KeyError:
            raise GenerationRefused(500, {"message": "Internal Server Error"}) from None
        except RejectionError as exc:
            raise GenerationRefused(exc.rejection.status, exc.rejection.message) from None
        started = time.perf_counter()
        with self.generate_lock:
            try:
                if on_token is not None and _is_streaming(self.engine):
                    generations = self.engine.generate(sentences, params, cancelled, on_token)
                elif cancelled is not None and _is_cancellable(self.engine):
                    generations = self.engine.generate(sentences, params, cancelled)
                else:
                    generations = self.engine.generate(sentences, params)
            except RejectionError as exc:  # e.g. a prompt longer than the context
                raise GenerationRefused(exc.rejection.status, exc.rejection.message) from None
            except Exception:
                log.exception("generation failed")
                raise GenerationRefused(500, {"message": "Internal Server Error"}) from None
        if cancelled is not None and cancelled():
            self.abandoned += 1
            log.info("generate: the client went away; generation stopped")
        generated = sum(g.generated_tokens for g in generations)
        log.info(
            "generate: %d prompt(s), %d token(s) generated, %.2f s",
            len(sentences),
            generated,
            time.perf_counter() - started,
        )
        return params, generations


class GenerationRefused(Exception):
    """A request NeMo answers with an error: its HTTP status and JSON value."""

    def __init__(self, status: int, value: Any) -> None:
        super().__init__(status, value)
        self.status = status
        self.value = value


class _Handler(BaseHTTPRequestHandler):
    server: NeMoServer
    protocol_version = "HTTP/1.1"  # keep-alive, so clients can reuse connections
    # Headers and body go out in two writes; with Nagle on, a keep-alive client would
    # wait for a delayed ACK (about 40 ms) on every answer.
    disable_nagle_algorithm = True

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.read_timeout)  # no read waits forever

    def do_PUT(self) -> None:
        if self.path != "/generate":
            self._send(404, {"message": f"No route {self.path}; use PUT /generate"})
            return
        raw = self._read_body()
        if raw is None:
            return
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):  # RecursionError: JSON nested too deep
            self._send(400, _BAD_BODY)
            return
        if not isinstance(body, dict):
            self._send(500, {"message": "Internal Server Error"})
            return
        self.server.received.append(body)
        if self.server.faults:
            fault = self.server.faults.popleft()
            time.sleep(fault.delay)
            self._send_raw(fault.status, fault.body.encode(), fault.content_type)
            return
        status, value = self.server.generate(body, self._client_gone)
        if not self._client_gone():
            self._send(status, value)
        else:
            self.close_connection = True

    def _read_body(self) -> bytes | None:
        """The request body, or None after answering a bad ``Content-Length`` or a timeout."""
        declared = self.headers.get("Content-Length")
        if declared is None and self.headers.get("Transfer-Encoding"):
            # Unframed here: the chunks would be read as the next request.
            self.close_connection = True
            self._send(411, {"message": "Send the body with a Content-Length header"})
            return None
        if declared is None:
            return b""  # as Flask: no body, so the JSON cannot be decoded (400)
        declared = declared.strip()
        if not declared.isdigit() or not declared.isascii():
            self.close_connection = True  # the rest of the stream cannot be framed
            self._send(
                400, {"message": f"Content-Length must be a number of bytes, got {declared!r}"}
            )
            return None
        length = int(declared)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            self._send(
                413,
                {"message": f"The request body of {length} bytes exceeds {MAX_BODY_BYTES} bytes"},
            )
            return None
        try:
            raw = self.rfile.read(length)
        except TimeoutError:
            self.close_connection = True
            self._send(
                408,
                {
                    "message": f"The request body of {length} bytes did not arrive: no data "
                    f"for {self.server.read_timeout:g} s"
                },
            )
            return None
        if len(raw) < length:  # the client closed its side early: nobody may be listening
            self.close_connection = True
            self._send(
                400, {"message": f"The request body ended after {len(raw)} of {length} bytes"}
            )
            return None
        return raw

    def _client_gone(self) -> bool:
        """Whether the client closed its connection (checked between generated tokens)."""
        try:
            poller = select.poll()  # unlike select(), not limited to descriptors below 1024
            poller.register(self.connection, select.POLLIN | select.POLLHUP | select.POLLERR)
            events = poller.poll(0)
            if not events:
                return False
            if events[0][1] & (select.POLLHUP | select.POLLERR):
                return True
            # Readable with nothing to read means end of stream; a pipelined next request
            # would be data, and the client is still there.
            return bool(self.connection.recv(1, socket.MSG_PEEK) == b"")
        except OSError:
            return True

    def do_GET(self) -> None:
        if self.path == "/v1/models":
            from steerlm.server import openai_routes  # it imports this module

            openai_routes.models(self)
        elif self.path == "/health":
            self._send(
                200,
                {
                    "status": "ok",
                    "engine": self.server.engine.name,
                    "nemo_version": self.server.nemo_version,
                    # Whether a generation holds the lock right now (one runs at a time).
                    "generating": self.server.generate_lock.locked(),
                },
            )
        else:
            self._send(404, {"message": f"No route {self.path}"})

    def do_POST(self) -> None:
        if self.path == "/v1/completions":
            from steerlm.server import openai_routes

            openai_routes.completions(self)
            return
        self._send(405, {"message": "The method is not allowed for the requested URL."})

    def _send(self, status: int, value: Any) -> None:
        self._send_raw(status, (json.dumps(value) + "\n").encode(), "application/json")

    def _send_raw(self, status: int, payload: bytes, content_type: str) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (ConnectionError, TimeoutError):  # the client went away: nobody to tell
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


def serve_in_thread(server: NeMoServer) -> threading.Thread:
    """Run ``server`` in a daemon thread; stop it with ``server.shutdown()``."""
    thread = threading.Thread(target=server.serve_forever, name="steerlm-server", daemon=True)
    thread.start()
    return thread
