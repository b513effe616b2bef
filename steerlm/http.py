"""The HTTP layer every transport shares: one place for the rules of talking to a server.

A transport (NeMo's ``PUT /generate`` in :mod:`steerlm.transports.nemo`) builds a JSON payload and
a decoder for the answer; :class:`HttpSession` does everything else, the same way for the
sync (``requests``) and async (``httpx``) paths:

- **retries** with jittered backoff, honouring ``Retry-After`` on 429/503 within the cap,
  each logged at INFO on the ``steerlm.http`` logger;
- a **deadline**: ``timeout`` bounds one whole attempt (connect, send, headers, body),
  not each socket read, so a server that drips bytes cannot hold a call;
- a **size cap** on the decoded body, decoded here in bounded steps so a gzip bomb
  cannot inflate in memory;
- **redirects** are not followed, a 3xx is a :class:`~steerlm.errors.SteerLMRedirectError`,
  with one exception: a 307/308 to the same URL with or without a trailing slash (FastAPI
  apps route ``/v1/completions/``, vLLM routes ``/v1/completions``) is followed, and
  remembered for that endpoint so later calls go straight to it;
- **credentials** in the URL (``http://user:token@host``) go out as a Basic
  ``Authorization`` header and appear nowhere else: errors, logs and reprs show
  ``http://***@host``;
- every transport failure becomes a :class:`~steerlm.errors.SteerLMError`;
- **streams** (:meth:`HttpSession.open_stream`, server-sent events): retries and the
  deadline apply up to the response head; after it, ``timeout`` bounds each gap between
  arriving bytes instead of the whole answer (a long answer may stream for minutes, a
  stalled one fails after ``timeout``), and the cap counts every byte of the stream.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import contextvars
import heapq
import itertools
import json
import logging
import os
import random
import re
import socket
import ssl
import threading
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import SplitResult, unquote, urljoin, urlsplit

import httpx
import requests
import requests.adapters
import urllib3
import urllib3.connection
import urllib3.exceptions

from steerlm.errors import (
    SteerLMConnectionError,
    SteerLMError,
    SteerLMInputError,
    SteerLMRedirectError,
    SteerLMResponseError,
    SteerLMResponseTooLargeError,
    SteerLMServerError,
    SteerLMTimeoutError,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Default cap of one decoded response body: far above the largest NeMo answer (128
#: prompts with tokens, ids, offsets and log-probabilities take a few tens of MB).
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024

# Encodings decoded here, in bounded steps; anything else is refused, so the header is
# sent explicitly (the libraries would also offer br/zstd when those packages exist).
_ACCEPT_ENCODING = "gzip, deflate"
_READ_CHUNK = 64 * 1024
#: Idle keep-alive connections kept per server. urllib3's default of 10 made 32 threads on
#: one model open and discard connections on every call; with coalescing on, concurrent
#: calls share requests, so far fewer are needed, but ``coalesce=False`` apps need them.
POOL_SIZE = 128
_INFLATE_STEP = 256 * 1024
_LINE_END = re.compile(rb"\r\n|\r|\n")
# Up to the last "@": a password with an unencoded "/" or "#" is redacted too (over-redacting
# a path that holds "@" is the safe mistake).
_USERINFO = re.compile(r"(?<=://)[^@\s]*@")


# -- credentials ---------------------------------------------------------------------------


#: What dumps and reprs show for a secret that is set (an API key); never the secret.
SECRET_MASK = "**********"
#: Environment variable with the API key, when ``api_key`` is not given.
API_KEY_ENV = "STEERLM_API_KEY"


def bearer_authorization(key: str) -> str:
    """The ``Authorization`` header value of an API key: ``Bearer <key>``.

    Raises:
        SteerLMInputError: The key is not one token (a space or line break in it would
            split or inject headers).
    """
    if any(c in key for c in "\r\n\0 "):
        raise SteerLMInputError(
            f"api_key must be one token without spaces or line breaks; check api_key or "
            f"${API_KEY_ENV}."
        )
    return f"Bearer {key}"


def redact_url(url: str) -> str:
    """``url`` with any userinfo replaced by ``***``: ``http://***@host:5555``."""
    return _USERINFO.sub("***@", url)


@dataclass(frozen=True)
class Endpoint:
    """A server URL split into what goes on the wire and what may be shown.

    Attributes:
        url: The URL without userinfo, as requested.
        display: The URL for errors, logs and reprs (userinfo redacted).
        authorization: ``Authorization`` header value from the userinfo, if any.
    """

    url: str
    display: str
    authorization: str | None

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        """Split the userinfo of ``url`` off into a Basic ``Authorization`` header."""
        parts = urlsplit(url)
        if "@" not in parts.netloc:
            return cls(url, url, None)
        userinfo, host = parts.netloc.rsplit("@", 1)
        user, _, password = userinfo.partition(":")
        token = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode()
        clean = parts._replace(netloc=host).geturl()
        return cls(clean, redact_url(url), f"Basic {token}")

    def join(self, path: str) -> Endpoint:
        """This endpoint with ``path`` appended to its URL."""
        return Endpoint(self.url + path, self.display + path, self.authorization)


# -- retries -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, for failures that a new attempt can cure.

    Retried: connection failures (refused, reset, closed mid-body, broken chunked
    framing) and server errors whose :attr:`~steerlm.errors.SteerLMServerError.retryable`
    is true (408, 429, 500, 502, 503, 504 unless the body states a failure that would
    repeat, such as a prompt longer than the context). Not retried: timeouts (the server
    still works on the first attempt, a second would queue behind it), redirects, other
    4xx, validation errors, bad or oversized answers.

    Args:
        max_retries: Retries after the first attempt.
        backoff: Base delay in seconds; retry n waits a random time up to backoff * 2**n.
        max_delay: Cap of one wait, also of a server's ``Retry-After``.
    """

    max_retries: int = 2
    backoff: float = 0.5
    max_delay: float = 8.0

    def should_retry(self, attempt: int, error: SteerLMError) -> bool:
        """Whether ``error`` after ``attempt`` (0-based) is worth another try."""
        if attempt >= self.max_retries or isinstance(error, SteerLMTimeoutError):
            return False
        if isinstance(error, SteerLMServerError):
            return error.retryable
        return isinstance(error, SteerLMConnectionError)

    def delay(self, attempt: int, error: SteerLMError | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based).

        A ``Retry-After`` that came with ``error`` wins, capped at ``max_delay``.
        """
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            return float(min(self.max_delay, max(0.0, retry_after)))
        return random.uniform(0, min(self.max_delay, self.backoff * 2**attempt))


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    with contextlib.suppress(ValueError):
        seconds = float(value)
        return seconds if seconds >= 0 else None
    with contextlib.suppress(TypeError, ValueError, IndexError, OverflowError):
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    return None


# -- responses -----------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpResponse:
    """A complete, decoded answer (any status but 3xx).

    Attributes:
        status: HTTP status.
        headers: Response headers (lower-case names).
        content: Decoded body bytes.
    """

    status: int
    headers: Mapping[str, str]
    content: bytes

    @property
    def text(self) -> str:
        """The body as text (its charset, else UTF-8; undecodable bytes replaced)."""
        match = re.search(r"charset=([\w.-]+)", self.headers.get("content-type", ""))
        try:
            return self.content.decode(match.group(1) if match else "utf-8", "replace")
        except LookupError:
            return self.content.decode("utf-8", "replace")


class _BodyReader:
    """Decodes a body as its chunks arrive, counting decoded bytes against the cap.

    Inflating in steps of at most ``_INFLATE_STEP`` bytes keeps memory near the cap
    whatever the compression ratio (a 200 KB gzip bomb would otherwise inflate to GBs).
    """

    def __init__(self, display_url: str, encoding: str | None, limit: int) -> None:
        self.url = display_url
        self.limit = limit
        self.parts: list[bytes] = []
        self.size = 0
        codings = [c.strip().lower() for c in (encoding or "").split(",") if c.strip()]
        codings = [c for c in codings if c != "identity"]
        if len(codings) > 1 or (codings and codings[0] not in ("gzip", "x-gzip", "deflate")):
            raise SteerLMResponseError(
                display_url,
                f"unsupported Content-Encoding {encoding!r} (asked for {_ACCEPT_ENCODING})",
                "",
            )
        self.coding = codings[0] if codings else None
        # wbits 47: a gzip or a zlib header, detected (deflate means zlib-wrapped).
        self.inflater: Any = zlib.decompressobj(47) if self.coding else None

    def feed(self, data: bytes) -> None:
        if self.inflater is None:
            self._add(data)
            return
        try:
            while data:
                if self.inflater.eof:
                    data = self.inflater.unused_data + data
                    if not data.startswith(b"\x1f\x8b"):
                        return  # trailing bytes after the stream: ignored, as browsers do
                    self.inflater = zlib.decompressobj(47)  # another gzip member
                self._add(self.inflater.decompress(data, _INFLATE_STEP))
                data = self.inflater.unconsumed_tail
        except zlib.error as exc:
            raise self._broken(str(exc)) from None

    def finish(self) -> bytes:
        if self.inflater is not None and not self.inflater.eof:
            raise self._broken("the compressed body ends early")
        return b"".join(self.parts)

    def _add(self, data: bytes) -> None:
        if not data:
            return
        self.size += len(data)
        if self.size > self.limit:
            raise SteerLMResponseTooLargeError(self.url, self.limit)
        self.parts.append(data)

    def _broken(self, reason: str) -> SteerLMResponseError:
        return SteerLMResponseError(
            self.url, f"the body's {self.coding} encoding is broken ({reason})", ""
        )


def _declared_too_large(headers: Mapping[str, str], limit: int) -> bool:
    # An uncompressed body that announces its size can be refused before reading it.
    if headers.get("content-encoding", "identity").strip().lower() != "identity":
        return False
    try:
        return int(headers.get("content-length", "0")) > limit
    except ValueError:
        return False


def encode_json(display_url: str, payload: Mapping[str, Any]) -> bytes:
    """Serialize a request body as strict JSON (no NaN or Infinity).

    Raises:
        SteerLMInputError: A value JSON cannot express; nothing was sent.
    """
    try:
        return json.dumps(payload, allow_nan=False, ensure_ascii=False).encode()
    except (TypeError, ValueError) as exc:
        raise SteerLMInputError(
            f"The request for {display_url} cannot be sent as JSON: {exc}. Pass plain "
            "strings, finite numbers, booleans, lists and dicts."
        ) from None


def transport_session(
    timeout: object,
    max_retries: object,
    max_response_bytes: object,
    retry: RetryPolicy | None,
    headers: Mapping[str, str] | None,
) -> HttpSession:
    """The session of one transport, its settings validated first (see :func:`check_limits`).

    ``retry`` overrides ``max_retries``.
    """
    check_limits(timeout, max_retries, max_response_bytes)
    assert isinstance(timeout, int | float) and isinstance(max_response_bytes, int)
    assert isinstance(max_retries, int)
    return HttpSession(
        timeout=float(timeout),
        retry=retry or RetryPolicy(max_retries=max_retries),
        max_response_bytes=max_response_bytes,
        headers=headers,
    )


def check_limits(timeout: object, max_retries: object, max_response_bytes: object) -> None:
    """Validate a transport's timeout, retries and size cap before anything is sent.

    Raises:
        SteerLMInputError: A value that is not usable, naming the fix.
    """
    if not (
        isinstance(timeout, int | float)
        and not isinstance(timeout, bool)
        and 0 < timeout < float("inf")
    ):
        raise SteerLMInputError(f"timeout must be a positive number of seconds, got {timeout!r}.")
    if not (type(max_retries) is int and max_retries >= 0):
        raise SteerLMInputError(f"max_retries must be an integer >= 0, got {max_retries!r}.")
    if not (type(max_response_bytes) is int and max_response_bytes > 0):
        raise SteerLMInputError(
            "max_response_bytes must be a positive integer (bytes), got "
            f"{max_response_bytes!r}; the default is {DEFAULT_MAX_RESPONSE_BYTES}."
        )


# -- the sync deadline ---------------------------------------------------------------------
# requests/urllib3 only time out single socket operations. A watchdog thread shuts down
# the sockets of an attempt at its deadline, which ends any blocked read at once.


class _Attempt:
    __slots__ = ("deadline", "done", "expired", "lock", "sockets")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.lock = threading.Lock()
        self.sockets: list[Any] = []
        self.done = False
        self.expired = False

    def watch(self, sock: Any) -> None:
        with self.lock:
            if self.expired:
                _shutdown(sock)
            elif not self.done:
                self.sockets.append(sock)

    def expire(self) -> None:
        with self.lock:
            if self.done:
                return
            self.expired = True
            for sock in self.sockets:
                _shutdown(sock)

    def finish(self) -> bool:
        """Mark the attempt over; True if its deadline struck first."""
        with self.lock:
            self.done = True
            return self.expired


def _shutdown(sock: Any) -> None:
    with contextlib.suppress(OSError, AttributeError):
        sock.shutdown(socket.SHUT_RDWR)


class _Watchdog:
    """One daemon thread expiring attempts at their deadlines."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        # Also after fork(): the child has no watchdog thread and may inherit a held lock.
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Attempt]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, attempt: _Attempt) -> None:
        with self._cond:
            if len(self._heap) > 256:  # finished attempts wait for their deadline: prune
                self._heap = [entry for entry in self._heap if not entry[2].done]
                heapq.heapify(self._heap)
            first = not self._heap or attempt.deadline < self._heap[0][0]
            heapq.heappush(self._heap, (attempt.deadline, next(self._order), attempt))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="steerlm-deadline", daemon=True
                )
                self._thread.start()
            if first:  # otherwise the thread already wakes no later than this deadline
                self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while True:
                while self._heap and self._heap[0][2].done:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait()
                    continue
                wait = self._heap[0][0] - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)[2].expire()


_WATCHDOG = _Watchdog()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_WATCHDOG._reset)
_CURRENT_ATTEMPT: contextvars.ContextVar[_Attempt | None] = contextvars.ContextVar(
    "steerlm_attempt", default=None
)


class _WatchedConnectionMixin:
    """Registers the connection's socket with the running attempt's deadline."""

    sock: Any

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        _watch(self.sock)

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        _watch(self.sock)  # a reused keep-alive connection does not connect again
        return super().getresponse(*args, **kwargs)  # type: ignore[misc]


def _watch(sock: Any) -> None:
    attempt = _CURRENT_ATTEMPT.get()
    if attempt is not None and sock is not None:
        attempt.watch(sock)


class _WatchedHTTPConnection(_WatchedConnectionMixin, urllib3.connection.HTTPConnection):
    pass


class _WatchedHTTPSConnection(_WatchedConnectionMixin, urllib3.connection.HTTPSConnection):
    pass


class _HTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _HTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_POOL_CLASSES = {"http": _HTTPPool, "https": _HTTPSPool}


class _DeadlineAdapter(requests.adapters.HTTPAdapter):
    """A requests adapter whose connections obey the attempt deadline."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_POOL_CLASSES)

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **kwargs)
        if type(manager) is urllib3.ProxyManager:  # SOCKS managers keep their own pools
            manager.pool_classes_by_scheme = dict(_POOL_CLASSES)
        return manager


# -- the session ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PoolState:
    """The connection pools of an :class:`HttpSession` (for diagnostics and tests).

    Attributes:
        sync_open: The sync pool is open (it opens at the first sync request).
        sockets_opened: Sockets the sync pool has opened so far (1 when keep-alive reuses
            one connection for every request).
        async_loops: The event loops that have an open async pool.
    """

    sync_open: bool
    sockets_opened: int
    async_loops: tuple[asyncio.AbstractEventLoop, ...]


class HttpSession:
    """Connection pools, deadline, size cap, retries and logging for one server.

    Sync calls reuse one ``requests.Session``; async calls use one
    ``httpx.AsyncClient`` per event loop, closed when that loop shuts down (or by
    :meth:`aclose`).

    Args:
        timeout: Seconds one attempt may take in all, from connecting to the last byte.
        retry: When and how long to wait before another attempt.
        max_response_bytes: Cap of a decoded response body.
        headers: Extra headers for every request (``Authorization: Bearer ...``, a
            gateway's headers). Never logged; errors never quote them.
    """

    def __init__(
        self,
        *,
        timeout: float,
        retry: RetryPolicy,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.timeout = timeout
        self.retry = retry
        self.max_response_bytes = max_response_bytes
        self.headers = dict(headers or {})
        self._session: requests.Session | None = None
        self._environments: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._async_clients: dict[asyncio.AbstractEventLoop, tuple[httpx.AsyncClient, Any]] = {}
        # Endpoints that answered with a trailing-slash redirect -> where they moved.
        self._moved: dict[str, Endpoint] = {}

    # -- public API ------------------------------------------------------------------------

    def request(
        self,
        method: str,
        endpoint: Endpoint,
        payload: Mapping[str, Any] | None,
        decode: Callable[[HttpResponse], T],
        retry: RetryPolicy | None = None,
    ) -> T:
        """Send ``payload`` as JSON (None: no body) with retries; ``decode`` reads the answer.

        ``decode`` raises a :class:`~steerlm.errors.SteerLMError` for an answer that is an
        error; the retry policy (the session's, unless ``retry`` is given) then decides
        whether to try again.

        Raises:
            SteerLMError: Every failure, after the retries it deserves.
        """
        body = None if payload is None else encode_json(endpoint.display, payload)
        endpoint = self.moved(endpoint)
        attempt = 0
        while True:
            try:
                return self._decoded(self._attempt(method, endpoint, body), decode)
            except SteerLMError as error:
                if (moved := self._follow(endpoint, error)) is not None:
                    endpoint = moved
                    continue
                wait = self._next_wait(attempt, error, endpoint, retry)
            time.sleep(wait)
            attempt += 1

    async def arequest(
        self,
        method: str,
        endpoint: Endpoint,
        payload: Mapping[str, Any] | None,
        decode: Callable[[HttpResponse], T],
        retry: RetryPolicy | None = None,
    ) -> T:
        """Async :meth:`request`; it never blocks the event loop."""
        body = None if payload is None else encode_json(endpoint.display, payload)
        endpoint = self.moved(endpoint)
        attempt = 0
        while True:
            try:
                response = await self._aattempt(method, endpoint, body)
                return self._decoded(response, decode)
            except SteerLMError as error:
                if (moved := self._follow(endpoint, error)) is not None:
                    endpoint = moved
                    continue
                wait = self._next_wait(attempt, error, endpoint, retry)
            await asyncio.sleep(wait)
            attempt += 1

    def close(self) -> None:
        """Close the sync pool, and forget async clients of loops that are closed."""
        with self._lock:
            session, self._session = self._session, None
            for loop in [lp for lp in list(self._async_clients) if lp.is_closed()]:
                self._async_clients.pop(loop, None)
        if session is not None:
            session.close()

    async def aclose(self) -> None:
        """Close the async client of the running event loop."""
        entry = self._async_clients.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            await entry[0].aclose()

    def pools(self) -> PoolState:
        """Which connection pools are open now, and how many sockets the sync one opened."""
        with self._lock:
            session, loops = self._session, tuple(self._async_clients)
        sockets = 0
        adapters = {id(a): a for a in session.adapters.values()} if session else {}
        for adapter in adapters.values():
            manager: Any = getattr(adapter, "poolmanager", None)
            for key in list(manager.pools.keys()) if manager is not None else ():
                pool = manager.pools.get(key)
                sockets += pool.num_connections if pool is not None else 0
        return PoolState(sync_open=session is not None, sockets_opened=sockets, async_loops=loops)

    def moved(self, endpoint: Endpoint) -> Endpoint:
        """Where ``endpoint`` is really served: itself, or its trailing-slash twin once the
        server redirected there."""
        return self._moved.get(endpoint.url, endpoint)

    def _follow(self, endpoint: Endpoint, error: SteerLMError) -> Endpoint | None:
        """The endpoint to go to for a trailing-slash redirect (remembered); None for
        any other error or redirect, and for a second redirect of the same request."""
        if not isinstance(error, SteerLMRedirectError) or error.status not in (307, 308):
            return None
        if any(endpoint.url == target.url for target in self._moved.values()):
            return None  # redirected back: a loop, not a slash twin
        twin = slash_twin(endpoint, error.location)
        if twin is None:
            return None
        self._moved[endpoint.url] = twin
        logger.info("Following %s's redirect to %s (remembered)", endpoint.display, twin.display)
        return twin

    def _headers(
        self, endpoint: Endpoint, body: bytes | None, stream: bool = False
    ) -> dict[str, str]:
        return _headers(endpoint, body, self.headers, stream)

    # -- streams ---------------------------------------------------------------------------

    def open_stream(
        self,
        method: str,
        endpoint: Endpoint,
        payload: Mapping[str, Any],
        on_error: Callable[[HttpResponse], object],
    ) -> HttpStream:
        """Send ``payload`` and return the open answer, to read as it arrives.

        Retries cover everything up to the response head. An answer other than 200 is
        read whole and given to ``on_error``, which raises the transport's error (if it
        does not, a :class:`~steerlm.errors.SteerLMServerError` is raised).

        Raises:
            SteerLMError: Every failure before the stream starts, after its retries.
        """
        body = encode_json(endpoint.display, payload)
        endpoint = self.moved(endpoint)
        attempt = 0
        while True:
            try:
                return self._open_stream(method, endpoint, body, on_error)
            except SteerLMError as error:
                if (moved := self._follow(endpoint, error)) is not None:
                    endpoint = moved
                    continue
                wait = self._next_wait(attempt, error, endpoint)
            time.sleep(wait)
            attempt += 1

    async def aopen_stream(
        self,
        method: str,
        endpoint: Endpoint,
        payload: Mapping[str, Any],
        on_error: Callable[[HttpResponse], object],
    ) -> AsyncHttpStream:
        """Async :meth:`open_stream`."""
        body = encode_json(endpoint.display, payload)
        endpoint = self.moved(endpoint)
        attempt = 0
        while True:
            try:
                return await self._aopen_stream(method, endpoint, body, on_error)
            except SteerLMError as error:
                if (moved := self._follow(endpoint, error)) is not None:
                    endpoint = moved
                    continue
                wait = self._next_wait(attempt, error, endpoint)
            await asyncio.sleep(wait)
            attempt += 1

    def _open_stream(
        self,
        method: str,
        endpoint: Endpoint,
        body: bytes,
        on_error: Callable[[HttpResponse], object],
    ) -> HttpStream:
        deadline = time.monotonic() + self.timeout
        attempt = _Attempt(deadline)
        token = _CURRENT_ATTEMPT.set(attempt)
        _WATCHDOG.add(attempt)
        response: requests.Response | None = None
        failed: HttpResponse | None = None
        try:
            # The read timeout (each socket read) is what bounds the gaps of the stream
            # once the watchdog's deadline for the head is over.
            response = self._sync_session().request(
                method,
                endpoint.url,
                data=body,
                headers=self._headers(endpoint, body, stream=True),
                timeout=(self.timeout, self.timeout),
                allow_redirects=False,
                stream=True,
                **self._environment(endpoint),
            )
            if response.status_code != 200:
                failed = self._read_sync(endpoint, response, deadline)
            else:
                headers = {k.lower(): v for k, v in response.headers.items()}
                _check_stream_head(endpoint, headers)
        except Exception as exc:  # every library failure becomes one of ours
            raise self._attempt_error(attempt, response, deadline, endpoint, exc) from None
        finally:
            _CURRENT_ATTEMPT.reset(token)
        if attempt.finish():  # the deadline struck just after the head: the socket is shut
            response.close()
            raise SteerLMTimeoutError(endpoint.display, self.timeout)
        if failed is not None:
            response.close()
            self._decoded(failed, on_error)
            raise SteerLMServerError(endpoint.display, failed.status, failed.text)
        return HttpStream(self, endpoint, response)

    async def _aopen_stream(
        self,
        method: str,
        endpoint: Endpoint,
        body: bytes,
        on_error: Callable[[HttpResponse], object],
    ) -> AsyncHttpStream:
        client = await self._async_client(endpoint)
        request = client.build_request(
            method,
            endpoint.url,
            content=body,
            headers=self._headers(endpoint, body, stream=True),
            timeout=self.timeout,
        )
        response: httpx.Response | None = None
        try:
            response = await asyncio.wait_for(
                client.send(request, stream=True, auth=self._environment(endpoint).get("auth")),
                self.timeout,
            )
            headers = {k.lower(): v for k, v in response.headers.items()}
            if response.status_code == 200:
                _check_stream_head(endpoint, headers)
                return AsyncHttpStream(self, endpoint, response)
            reader = _BodyReader(
                endpoint.display, headers.get("content-encoding"), self.max_response_bytes
            )
            _check_head(endpoint, response.status_code, headers, self.max_response_bytes)

            async def read() -> None:
                assert response is not None
                async for chunk in response.aiter_raw(_READ_CHUNK):
                    reader.feed(chunk)

            await asyncio.wait_for(read(), self.timeout)
            failed = HttpResponse(response.status_code, headers, reader.finish())
        except SteerLMError:
            if response is not None:
                await response.aclose()
            raise
        except asyncio.TimeoutError:
            if response is not None:
                await response.aclose()
            raise SteerLMTimeoutError(endpoint.display, self.timeout) from None
        except Exception as exc:
            if response is not None:
                await response.aclose()
            raise self._transport_error(endpoint, exc) from None
        await response.aclose()
        self._decoded(failed, on_error)
        raise SteerLMServerError(endpoint.display, failed.status, failed.text)

    # -- retries ---------------------------------------------------------------------------

    @staticmethod
    def _decoded(response: HttpResponse, decode: Callable[[HttpResponse], T]) -> T:
        try:
            return decode(response)
        except SteerLMServerError as error:
            if error.status in (429, 503):
                error.retry_after = parse_retry_after(response.headers.get("retry-after"))
            raise

    def _next_wait(
        self,
        attempt: int,
        error: SteerLMError,
        endpoint: Endpoint,
        retry: RetryPolicy | None = None,
    ) -> float:
        policy = retry or self.retry
        if not policy.should_retry(attempt, error):
            raise error
        wait = policy.delay(attempt, error)
        logger.info("Retrying request to %s in %.2f seconds", endpoint.display, wait)
        return wait

    # -- one sync attempt ------------------------------------------------------------------

    def _attempt(self, method: str, endpoint: Endpoint, body: bytes | None) -> HttpResponse:
        deadline = time.monotonic() + self.timeout
        attempt = _Attempt(deadline)
        token = _CURRENT_ATTEMPT.set(attempt)
        _WATCHDOG.add(attempt)
        response: requests.Response | None = None
        try:
            response = self._sync_session().request(
                method,
                endpoint.url,
                data=body,
                headers=self._headers(endpoint, body),
                timeout=(self.timeout, self.timeout),
                allow_redirects=False,
                stream=True,
                **self._environment(endpoint),
            )
            result = self._read_sync(endpoint, response, deadline)
        except Exception as exc:  # every library failure becomes one of ours
            raise self._attempt_error(attempt, response, deadline, endpoint, exc) from None
        finally:
            _CURRENT_ATTEMPT.reset(token)
        if attempt.finish():  # struck after the last byte: its socket is shut, drop it
            response.close()
        else:
            response.raw.release_conn()  # back to the pool for the next call
        return result

    def _read_sync(
        self, endpoint: Endpoint, response: requests.Response, deadline: float
    ) -> HttpResponse:
        headers = {k.lower(): v for k, v in response.headers.items()}
        _check_head(endpoint, response.status_code, headers, self.max_response_bytes)
        reader = _BodyReader(
            endpoint.display, headers.get("content-encoding"), self.max_response_bytes
        )
        while chunk := response.raw.read(_READ_CHUNK, decode_content=False):
            reader.feed(chunk)
            if time.monotonic() >= deadline:
                raise SteerLMTimeoutError(endpoint.display, self.timeout)
        return HttpResponse(response.status_code, headers, reader.finish())

    def _attempt_error(
        self,
        attempt: _Attempt,
        response: requests.Response | None,
        deadline: float,
        endpoint: Endpoint,
        exc: Exception,
    ) -> SteerLMError:
        """The error a failed sync attempt raises (a deadline that struck is a timeout)."""
        expired = attempt.finish()
        if response is not None:
            response.close()  # a half-read connection cannot go back to the pool
        if expired or time.monotonic() >= deadline:
            return SteerLMTimeoutError(endpoint.display, self.timeout)
        if isinstance(exc, SteerLMError):
            return exc
        return self._transport_error(endpoint, exc)

    def _sync_session(self) -> requests.Session:
        with self._lock:
            if self._session is None:
                session = requests.Session()
                # What requests reads from the environment (proxies, CA bundle, .netrc)
                # is read once per server instead: per request it walks os.environ and
                # stats files, about a millisecond a call (see _environment).
                session.trust_env = False
                adapter = _DeadlineAdapter(pool_maxsize=POOL_SIZE)
                session.mount("http://", adapter)
                session.mount("https://", adapter)
                self._session = session
            return self._session

    def _environment(self, endpoint: Endpoint) -> dict[str, Any]:
        """Proxies, TLS verification and .netrc auth for ``endpoint``, read once per origin.

        The same settings requests would read from the environment on every request
        (``HTTP(S)_PROXY``/``NO_PROXY``, ``REQUESTS_CA_BUNDLE``, ``~/.netrc``).
        """
        origin = _origin(endpoint.url)
        settings = self._environments.get(origin)
        if settings is None:
            found = requests.Session().merge_environment_settings(
                endpoint.url, {}, None, None, None
            )
            settings = {"proxies": found["proxies"], "verify": found["verify"]}
            if found["cert"] is not None:
                settings["cert"] = found["cert"]
            netrc = requests.utils.get_netrc_auth(endpoint.url)
            if (
                netrc
                and endpoint.authorization is None
                and "authorization" not in {key.lower() for key in self.headers}
            ):
                settings["auth"] = netrc
            self._environments[origin] = settings
        return settings

    def _transport_error(self, endpoint: Endpoint, exc: BaseException) -> SteerLMError:
        if isinstance(
            exc,
            requests.Timeout
            | urllib3.exceptions.TimeoutError
            | httpx.TimeoutException
            | TimeoutError,
        ):
            return SteerLMTimeoutError(endpoint.display, self.timeout)
        return SteerLMConnectionError(
            endpoint.display, _reason(exc), answered_before=_origin(endpoint.url) in _ANSWERED
        )

    # -- one async attempt -----------------------------------------------------------------

    async def _aattempt(self, method: str, endpoint: Endpoint, body: bytes | None) -> HttpResponse:
        try:
            # wait_for cancels the whole attempt at the deadline, whatever it waits on.
            return await asyncio.wait_for(
                self._aattempt_inner(method, endpoint, body), self.timeout
            )
        except SteerLMError:
            raise
        except asyncio.TimeoutError:
            raise SteerLMTimeoutError(endpoint.display, self.timeout) from None
        except Exception as exc:
            raise self._transport_error(endpoint, exc) from None

    async def _aattempt_inner(
        self, method: str, endpoint: Endpoint, body: bytes | None
    ) -> HttpResponse:
        client = await self._async_client(endpoint)
        async with client.stream(
            method,
            endpoint.url,
            content=body,
            headers=self._headers(endpoint, body),
            timeout=self.timeout,
            auth=self._environment(endpoint).get("auth"),
        ) as response:
            headers = {k.lower(): v for k, v in response.headers.items()}
            _check_head(endpoint, response.status_code, headers, self.max_response_bytes)
            reader = _BodyReader(
                endpoint.display, headers.get("content-encoding"), self.max_response_bytes
            )
            async for chunk in response.aiter_raw(_READ_CHUNK):
                reader.feed(chunk)
            return HttpResponse(response.status_code, headers, reader.finish())

    async def _async_client(self, endpoint: Endpoint) -> httpx.AsyncClient:
        # An httpx client is bound to the loop it first ran on: one per loop. A paused
        # async generator closes it in the loop's shutdown_asyncgens() (asyncio.run and
        # every Runner call it), before the loop closes and its sockets would leak.
        loop = asyncio.get_running_loop()
        entry = self._async_clients.get(loop)
        if entry is None:
            for stale in [lp for lp in list(self._async_clients) if lp.is_closed()]:
                self._async_clients.pop(stale, None)
            client = httpx.AsyncClient(
                follow_redirects=False,
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=POOL_SIZE),
                # The CA bundle requests reads (REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE), so that
                # sync and async calls trust the same servers.
                verify=_ssl_verify(self._environment(endpoint)["verify"]),
            )
            closer = _close_at_loop_shutdown(client, self._async_clients, loop)
            await closer.__anext__()
            entry = self._async_clients[loop] = (client, closer)
        return entry[0]


async def _close_at_loop_shutdown(
    client: httpx.AsyncClient,
    registry: dict[asyncio.AbstractEventLoop, tuple[httpx.AsyncClient, Any]],
    loop: asyncio.AbstractEventLoop,
) -> AsyncIterator[None]:
    try:
        yield
    finally:
        entry = registry.get(loop)
        if entry is not None and entry[0] is client:
            registry.pop(loop, None)
        await client.aclose()


class _Stream:
    """What both stream classes share: the session's rules and the byte count."""

    def __init__(self, session: HttpSession, endpoint: Endpoint, headers: Mapping[str, str]):
        self._session = session
        self._endpoint = endpoint
        self._size = 0
        #: The response headers, names in lower case.
        self.headers = {name.lower(): value for name, value in headers.items()}

    @property
    def content_type(self) -> str:
        """The media type of the answer (``text/event-stream``), without parameters."""
        return self.headers.get("content-type", "").partition(";")[0].strip().lower()

    @property
    def url(self) -> str:
        """The URL the stream comes from, as it may be shown."""
        return self._endpoint.display

    def _counted(self, chunk: bytes) -> bytes:
        self._size += len(chunk)
        if self._size > self._session.max_response_bytes:
            raise SteerLMResponseTooLargeError(
                self._endpoint.display, self._session.max_response_bytes
            )
        return chunk


class HttpStream(_Stream):
    """An open streamed answer (HTTP 200): iterate for body bytes as they arrive.

    Each wait for more bytes may take up to the session's ``timeout``; the bytes of the
    whole stream count against ``max_response_bytes``. Closing it (also by leaving a
    ``with`` block, or by breaking out of a generator that holds it) closes the
    connection, so the server sees the client leave and stops generating.
    """

    def __init__(self, session: HttpSession, endpoint: Endpoint, response: requests.Response):
        super().__init__(session, endpoint, response.headers)
        self._response = response

    def __iter__(self) -> Iterator[bytes]:
        raw = self._response.raw
        try:
            while True:
                # read1: whatever has arrived (at least one byte), never waiting for more.
                chunk = raw.read1(_READ_CHUNK)
                if not chunk:
                    return
                yield self._counted(chunk)
        except SteerLMError:
            self.close()
            raise
        except Exception as exc:
            self.close()
            raise self._session._transport_error(self._endpoint, exc) from None

    def close(self) -> None:
        """Close the connection (it cannot go back to the pool mid-stream)."""
        self._response.close()

    def __enter__(self) -> HttpStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncHttpStream(_Stream):
    """Async :class:`HttpStream`; each wait for more bytes is bounded by ``timeout``."""

    def __init__(self, session: HttpSession, endpoint: Endpoint, response: httpx.Response):
        super().__init__(session, endpoint, response.headers)
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        chunks = self._response.aiter_raw().__aiter__()
        try:
            while True:
                try:
                    chunk = await asyncio.wait_for(chunks.__anext__(), self._session.timeout)
                except StopAsyncIteration:
                    return
                yield self._counted(chunk)
        except SteerLMError:
            await self.aclose()
            raise
        except asyncio.TimeoutError:
            await self.aclose()
            raise SteerLMTimeoutError(self._endpoint.display, self._session.timeout) from None
        except Exception as exc:
            await self.aclose()
            raise self._session._transport_error(self._endpoint, exc) from None

    async def aclose(self) -> None:
        """Close the connection."""
        await self._response.aclose()

    async def __aenter__(self) -> AsyncHttpStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class SSEDecoder:
    """Splits server-sent events out of bytes as they arrive; yields each event's data.

    Lines end with CRLF, LF or CR (the SSE spec allows all three); ``data:`` lines of one
    event are joined with LF; comments (``:``) and other fields (``event:``, ``id:``,
    ``retry:``) are skipped.
    """

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[str]:
        """The data of every event that ``chunk`` completes."""
        text = self._buffer + chunk
        # A CR at the very end may be the first half of a CRLF: keep it for the next chunk.
        held = b"\r" if text.endswith(b"\r") and chunk else b""
        *lines, self._buffer = _LINE_END.split(text[: len(text) - len(held)])
        self._buffer += held
        events = []
        for line in lines:
            if not line:
                if self._data:
                    events.append("\n".join(self._data))
                    self._data = []
                continue
            name, _, value = line.decode("utf-8", "replace").partition(":")
            if name == "data":
                self._data.append(value.removeprefix(" "))
        return events

    def finish(self) -> list[str]:
        """The data of an event the stream ended without closing."""
        rest, self._buffer = self._buffer.removesuffix(b"\r"), b""
        return self.feed(rest + b"\n\n")


def slash_twin(endpoint: Endpoint, location: str | None) -> Endpoint | None:
    """``endpoint`` as moved to by a redirect to ``location``, when ``location`` is the same
    URL with or without a trailing slash (same scheme, host, port and query); else None."""
    if not location:
        return None
    here, there = urlsplit(endpoint.url), urlsplit(urljoin(endpoint.url, location))
    if (
        here.scheme != there.scheme
        or (here.hostname or "").lower() != (there.hostname or "").lower()
        or _port(here) != _port(there)
        or here.query != there.query
        or there.username is not None
        or here.path == there.path
        or here.path.rstrip("/") != there.path.rstrip("/")
        or abs(len(here.path) - len(there.path)) != 1
    ):
        return None
    url = here._replace(path=there.path).geturl()
    slash = there.path.endswith("/")
    display = endpoint.display + "/" if slash else endpoint.display.removesuffix("/")
    return Endpoint(url, display, endpoint.authorization)


def _port(parts: SplitResult) -> int | None:
    return parts.port or {"http": 80, "https": 443}.get(parts.scheme)


def _ssl_verify(verify: bool | str) -> bool | ssl.SSLContext:
    """httpx's ``verify`` for requests' (a CA bundle path becomes an SSL context)."""
    if isinstance(verify, str):
        return ssl.create_default_context(cafile=verify)
    return verify


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


#: Servers that have answered this process (origins): a connection error to one of them
#: means a server that was running has gone, not one that was never there.
_ANSWERED: set[str] = set()


def _check_stream_head(endpoint: Endpoint, headers: Mapping[str, str]) -> None:
    _ANSWERED.add(_origin(endpoint.url))
    coding = headers.get("content-encoding", "identity").strip().lower()
    if coding not in ("", "identity"):
        raise SteerLMResponseError(
            endpoint.display,
            f"a stream must not be compressed (Content-Encoding {coding!r}; asked for identity)",
            "",
        )


def _headers(
    endpoint: Endpoint, body: bytes | None, extra: Mapping[str, str], stream: bool = False
) -> dict[str, str]:
    headers = {
        "Accept": "text/event-stream" if stream else "application/json",
        # A stream is read as it arrives: uncompressed, so each event is usable at once.
        "Accept-Encoding": "identity" if stream else _ACCEPT_ENCODING,
    }
    if body is not None:
        headers["Content-Type"] = "application/json"
    if endpoint.authorization:
        headers["Authorization"] = endpoint.authorization
    headers.update(extra)  # an explicit Authorization (api_key) wins over URL userinfo
    return headers


def _check_head(endpoint: Endpoint, status: int, headers: Mapping[str, str], limit: int) -> None:
    _ANSWERED.add(_origin(endpoint.url))
    if 300 <= status < 400:
        location = headers.get("location")
        raise SteerLMRedirectError(
            endpoint.display, status, redact_url(location) if location else None
        )
    if _declared_too_large(headers, limit):
        raise SteerLMResponseTooLargeError(endpoint.display, limit)


def _reason(exc: BaseException) -> str:
    # Library errors nest the useful part ("Connection refused") several levels deep.
    text = str(exc) or type(exc).__name__
    for marker in ("Connection refused", "Name or service not known", "Connection reset"):
        if marker in text:
            return marker.lower()
    for known, reason in _REASONS:
        if isinstance(exc, known):
            return f"{reason} ({type(exc).__name__}: {text[:200]})"
    return f"{type(exc).__name__}: {text[:300]}"


_REASONS: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], str], ...] = (
    (
        (requests.exceptions.ChunkedEncodingError, httpx.RemoteProtocolError),
        "the connection broke off or its framing was invalid mid-answer",
    ),
    (urllib3.exceptions.ProtocolError, "the connection broke off mid-answer"),
    (requests.exceptions.ContentDecodingError, "the body's encoding is broken"),
)

__all__ = [
    "API_KEY_ENV",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "SECRET_MASK",
    "AsyncHttpStream",
    "Endpoint",
    "HttpResponse",
    "HttpSession",
    "HttpStream",
    "RetryPolicy",
    "SSEDecoder",
    "check_limits",
    "encode_json",
    "logger",
    "parse_retry_after",
    "redact_url",
    "slash_twin",
    "transport_session",
]
