"""A NeMo-compatible text-generation server on the standard library's HTTP server.

It speaks ``PUT /generate`` as NeMo's ``megatron_gpt_eval.py server=True`` does: same keys,
same validation messages (HTTP 200 with a JSON string), one generation at a time. Tests
can queue :class:`Fault` answers to mimic a broken or slow server, and read the request
bodies it received (the most recent ones: the record is bounded).

It also speaks the OpenAI-compatible completions API as vLLM does (``POST /v1/completions``,
with server-sent events for ``stream: true``, and ``GET /v1/models``), on the same engine
behind the same lock: see :mod:`steerlm.server.openai_routes`. Every route is in the
table of :mod:`steerlm.server.routes`; this module holds the server's state and its one
generation entry point, :meth:`NeMoServer.run`.

It survives abuse: a bad or oversized ``Content-Length`` is answered 400/413, a body that
never arrives times out, JSON nested too deep is a bad body, a client that hangs up stops
its generation (engines that check ``cancelled``), and request text is escaped in the log.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from steerlm.server import routes
from steerlm.server.engine import Cancelled, Engine, Generation, RatedAnswer, Scorer, TokenSink
from steerlm.server.exchange import MAX_BODY_BYTES, Exchange
from steerlm.server.openai_profiles import DEFAULT_PROFILE, PROFILE_NAMES
from steerlm.server.protocol import (
    NEMO_VERSIONS,
    GenerateParams,
    RejectionError,
    newest_release_applying,
    parse_request,
    unapplied_keys,
)
from steerlm.server.reward_routes import DEFAULT_REWARD_MODEL
from steerlm.server.scripted_scorer import STEERLM_ATTRIBUTES, ScriptedScorer
from steerlm.server.service import Fault, GenerationRefused, RecentRequests

__all__ = [
    "KEEP_REQUESTS",
    "MAX_BODY_BYTES",
    "READ_TIMEOUT",
    "Fault",
    "NeMoServer",
    "escape_for_log",
    "serve_in_thread",
]

log = logging.getLogger("steerlm.server")

#: Seconds a connection may stay silent (idle keep-alive, or a body that stops arriving).
READ_TIMEOUT = 60.0
#: Request bodies kept for tests in ``NeMoServer.received`` (oldest dropped first).
KEEP_REQUESTS = 256
#: Longest request text (e.g. an unknown key) quoted in the log.
MAX_LOGGED_CHARS = 120


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
        scorer: Scores answers on the attribute-model routes (``/v2/...``, NIM's chat
            route); the scripted rule when None.
        openai_profile: The engine the ``/v1`` routes imitate (``"vllm"``,
            ``"nemo-deploy"``...; see :mod:`steerlm.server.openai_profiles`); ``reset()``
            returns to ``"steerlm"``, the dev server's own.
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
        scorer: Scorer | None = None,
        openai_profile: str = DEFAULT_PROFILE,
    ) -> None:
        if nemo_version not in NEMO_VERSIONS:
            raise ValueError(f"nemo_version must be one of {NEMO_VERSIONS}, got {nemo_version!r}")
        if openai_profile not in PROFILE_NAMES:
            raise ValueError(
                f"openai_profile must be one of {PROFILE_NAMES}, got {openai_profile!r}"
            )
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
        #: The engine the /v1 routes imitate (steerlm.server.openai_profiles.PROFILES).
        self.openai_profile = openai_profile
        #: The attribute model: its scorer, name, output names, and recent raw bodies.
        self.scorer: Scorer = scorer or ScriptedScorer()
        self.reward_model = DEFAULT_REWARD_MODEL
        self.reward_attributes: tuple[str, ...] = STEERLM_ATTRIBUTES
        self.reward_requests = RecentRequests(keep_requests)
        # NeMo serves one generation at a time behind a global lock; so does this server.
        self.generate_lock = threading.Lock()
        # Keys whose dropped value was already logged (once per server, until reset()).
        self._warned_unapplied: set[str] = set()
        super().__init__(address, _Handler)

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the listening socket."""
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def reset(self) -> None:
        """Forget recorded requests, queued faults and warnings given; no API key, the
        engine's model, the default reward model name and attributes."""
        self.faults.clear()
        self.received.clear()
        self.received_headers.clear()
        self.openai_models = None
        self.api_key = None
        self.stream_interval = 0.0
        self.openai_profile = DEFAULT_PROFILE
        self._warned_unapplied.clear()
        self.reward_model = DEFAULT_REWARD_MODEL
        self.reward_attributes = STEERLM_ATTRIBUTES
        self.reward_requests.clear()

    @property
    def served_models(self) -> list[str]:
        """The names ``GET /v1/models`` lists (the first is the default)."""
        return list(self.openai_models or [self.engine.name])

    @property
    def generating(self) -> bool:
        """Whether a generation holds the lock right now (one runs at a time)."""
        return self.generate_lock.locked()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up or went silent is routine; anything else is logged."""
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            log.debug("connection from %s ended early", client_address)
            return
        log.exception("error while answering %s", client_address)

    def score(self, answers: Sequence[RatedAnswer], attributes: Sequence[str]) -> list[list[float]]:
        """Scores of ``answers`` by :attr:`scorer`, under the generation lock.

        The lock is the one generation holds: a server on one small model runs one
        request at a time, scoring or generating.
        """
        started = time.perf_counter()
        with self.generate_lock:
            rows = self.scorer.score(answers, attributes)
        log.info(
            "score: %d answer(s) x %d attribute(s), %.2f s",
            len(answers),
            len(attributes),
            time.perf_counter() - started,
        )
        return rows

    def run(
        self,
        body: dict[str, Any],
        *,
        cancelled: Cancelled | None = None,
        on_token: TokenSink | None = None,
    ) -> tuple[GenerateParams, list[Generation]]:
        """Validate a ``/generate`` body and generate it under the lock (both APIs use it).

        Args:
            body: The ``/generate`` body.
            cancelled: Turns true when the client has gone; an engine that checks it stops.
            on_token: Receives each prompt's text as it is generated, from an engine that
                streams (see ``Engine.generate``).

        Raises:
            GenerationRefused: NeMo's answer to a bad request or a failed generation.
        """
        try:
            sentences, params = parse_request(body, self.nemo_version)
        except KeyError:
            raise GenerationRefused(500, {"message": "Internal Server Error"}) from None
        except RejectionError as exc:
            raise GenerationRefused(exc.rejection.status, exc.rejection.message) from None
        self._warn_unapplied(body, params)
        started = time.perf_counter()
        with self.generate_lock:
            try:
                generations = self.engine.generate(
                    sentences, params, cancelled=cancelled, on_token=on_token
                )
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

    def _warn_unapplied(self, body: dict[str, Any], params: GenerateParams) -> None:
        """Say, once per key, that the imitated release dropped a value the client sent."""
        for key in unapplied_keys(self.nemo_version, body):
            if key in self._warned_unapplied:
                continue
            self._warned_unapplied.add(key)
            log.warning(
                "The request sets %s=%s, but the NeMo release this server imitates "
                "(--nemo-version %s) never applies it: sampling uses %s. Start the server "
                "with --nemo-version %s for %s to apply (said once).",
                key,
                body[key],
                self.nemo_version,
                getattr(params, key),
                newest_release_applying(key),
                key,
            )


class _Handler(BaseHTTPRequestHandler):
    """Hands each request to the route table, wrapped in an :class:`Exchange`."""

    server: NeMoServer
    protocol_version = "HTTP/1.1"  # keep-alive, so clients can reuse connections
    # Headers and body go out in two writes; with Nagle on, a keep-alive client would
    # wait for a delayed ACK (about 40 ms) on every answer.
    disable_nagle_algorithm = True

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.read_timeout)  # no read waits forever

    def dispatch(self) -> None:
        """Answer the request from the route table (``do_GET``, ``do_PUT``... call this)."""
        routes.dispatch(self.server, Exchange(self, self.server.read_timeout))

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


# BaseHTTPRequestHandler answers a method through do_<METHOD>: one for each method of the
# route table (others are its 501).
for _method in routes.METHODS:
    setattr(_Handler, f"do_{_method}", _Handler.dispatch)
del _method


def serve_in_thread(server: NeMoServer) -> threading.Thread:
    """Run ``server`` in a daemon thread; stop it with ``server.shutdown()``."""
    thread = threading.Thread(target=server.serve_forever, name="steerlm-server", daemon=True)
    thread.start()
    return thread
