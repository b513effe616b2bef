"""A NeMo-compatible text-generation server on the standard library's HTTP server.

It speaks ``PUT /generate`` as NeMo's ``megatron_gpt_eval.py server=True`` does: same keys,
same validation messages (HTTP 200 with a JSON string), one generation at a time. Tests
can queue :class:`Fault` answers to mimic a broken or slow server, and read the request
bodies it received.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from steerlm.server.engines import Engine
from steerlm.server.protocol import NEMO_VERSIONS, RejectionError, parse_request

log = logging.getLogger("steerlm.server")


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
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], engine: Engine, nemo_version: str = "latest"
    ) -> None:
        if nemo_version not in NEMO_VERSIONS:
            raise ValueError(f"nemo_version must be one of {NEMO_VERSIONS}, got {nemo_version!r}")
        self.engine = engine
        self.nemo_version = nemo_version
        self.faults: deque[Fault] = deque()
        self.received: list[dict[str, Any]] = []
        # NeMo serves one generation at a time behind a global lock; so does this server.
        self.generate_lock = threading.Lock()
        super().__init__(address, _Handler)

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the listening socket."""
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def reset(self) -> None:
        """Forget recorded requests and queued faults."""
        self.faults.clear()
        self.received.clear()

    def generate(self, body: dict[str, Any]) -> tuple[int, Any]:
        """Answer one ``/generate`` body: (HTTP status, JSON value)."""
        try:
            sentences, params = parse_request(body, self.nemo_version)
        except KeyError:
            return 500, {"message": "Internal Server Error"}
        except RejectionError as exc:
            return exc.rejection.status, exc.rejection.message
        started = time.perf_counter()
        with self.generate_lock:
            try:
                generations = self.engine.generate(sentences, params)
            except Exception:
                log.exception("generation failed")
                return 500, {"message": "Internal Server Error"}
        generated = sum(g.generated_tokens for g in generations)
        log.info(
            "generate: %d prompt(s), %d token(s) generated, %.2f s",
            len(sentences),
            generated,
            time.perf_counter() - started,
        )
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


class _Handler(BaseHTTPRequestHandler):
    server: NeMoServer
    protocol_version = "HTTP/1.1"  # keep-alive, so clients can reuse connections
    # Headers and body go out in two writes; with Nagle on, a keep-alive client would
    # wait for a delayed ACK (about 40 ms) on every answer.
    disable_nagle_algorithm = True

    def do_PUT(self) -> None:
        if self.path != "/generate":
            self._send(404, {"message": f"No route {self.path}; use PUT /generate"})
            return
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw)
        except ValueError:
            self._send(
                400,
                {
                    "message": "The browser (or proxy) sent a request that this "
                    "server could not understand."
                },
            )
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
        self._send(*self.server.generate(body))

    def do_GET(self) -> None:
        if self.path == "/health":
            self._send(
                200,
                {
                    "status": "ok",
                    "engine": self.server.engine.name,
                    "nemo_version": self.server.nemo_version,
                },
            )
        else:
            self._send(404, {"message": f"No route {self.path}"})

    def do_POST(self) -> None:
        self._send(405, {"message": "The method is not allowed for the requested URL."})

    def _send(self, status: int, value: Any) -> None:
        self._send_raw(status, (json.dumps(value) + "\n").encode(), "application/json")

    def _send_raw(self, status: int, payload: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


def serve_in_thread(server: NeMoServer) -> threading.Thread:
    """Run ``server`` in a daemon thread; stop it with ``server.shutdown()``."""
    thread = threading.Thread(target=server.serve_forever, name="steerlm-server", daemon=True)
    thread.start()
    return thread
