"""What every server API's transport is: one base class the call pipeline talks to.

A transport turns prompts, options and stop strings into requests to one server and
their answers into :class:`~steerlm.types.Completion` objects. The pipeline
(:mod:`steerlm.pipeline`) never tests a transport's class: it reads what the transport
declares (does it stream tokens, how many prompts fit in one request) and calls the
methods below. HTTP itself (retries, deadline, size cap, redirects, credentials) is
:class:`steerlm.http.HttpSession`'s, built here once for every transport.
"""

from __future__ import annotations

import contextlib
import os
import re
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar
from urllib.parse import urlsplit

from steerlm.errors import (
    SteerLMError,
    SteerLMInputError,
    SteerLMResponseError,
    SteerLMServerError,
    did_you_mean,
)
from steerlm.http import (
    DEFAULT_MAX_RESPONSE_BYTES,
    Endpoint,
    HttpResponse,
    RetryPolicy,
    redact_url,
    transport_session,
)
from steerlm.options import GenerationOptions
from steerlm.types import Completion, StreamChunk

#: Environment variable with the server URL, when ``base_url`` is not given.
BASE_URL_ENV = "STEERLM_BASE_URL"


_NO_RETRY = RetryPolicy(max_retries=0)


def positive_int(value: Any) -> int | None:
    """``value`` when it is a positive integer (not a bool), else None."""
    return value if type(value) is int and value > 0 else None


def url_path(url: str) -> str:
    """The path of ``url`` without its trailing slash (``""`` for a server root)."""
    return urlsplit(url).path.rstrip("/")


def resolve_base_url(base_url: str | None, default: str) -> str:
    """``base_url``, else ``$STEERLM_BASE_URL``, else ``default``; no trailing slash.

    Credentials in the URL (``http://user:token@host``) are kept: they are sent as a
    Basic ``Authorization`` header and shown nowhere (see :func:`steerlm.http.redact_url`).

    Raises:
        SteerLMInputError: The URL is not http(s), has no host, or has a query or fragment.
    """
    url = (base_url or os.environ.get(BASE_URL_ENV) or default).rstrip("/")
    shown = redact_url(url)
    after_host = re.split(r"[/?#]", url.partition("://")[2], maxsplit=1)[1:]
    if after_host and "@" in after_host[0]:
        raise SteerLMInputError(
            "base_url has an '@' after its host: a password holding '/', '?', '#' or '@' "
            "must be percent-encoded (%2F, %3F, %23, %40), e.g. http://user:p%2Fss@host:5555."
        )
    if not url.startswith(("http://", "https://")):
        raise SteerLMInputError(
            f"base_url must start with http:// or https://, got {shown!r}, e.g. {default!r}."
        )
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as exc:
        raise SteerLMInputError(f"base_url {shown!r} is not a valid URL: {exc}.") from None
    if not parts.hostname:
        raise SteerLMInputError(f"base_url {shown!r} has no host, e.g. {default!r}.")
    if parts.query or parts.fragment or any(c.isspace() for c in url):
        raise SteerLMInputError(
            f"base_url {shown!r} must be the server's root, without a query, fragment or "
            f"spaces, e.g. {default!r}."
        )
    return url


class Transport(ABC):
    """The client of one server API; subclass it and register it to add an API.

    Subclasses set the class attributes, implement :meth:`generate` and
    :meth:`agenerate`, and, when the server streams tokens, :meth:`stream` and
    :meth:`astream` (the defaults here send the whole answer as one chunk).

    Args:
        base_url: The server URL; falls back to ``$STEERLM_BASE_URL``, then
            :attr:`default_base_url`. Credentials in it go out as Basic auth.
        model: The served model's name, for APIs that send one; None lets the transport
            find it (or report the preset's).
        timeout: Seconds one attempt may take in all (connect, send, wait, read).
        max_retries: Retries on failures another attempt can cure.
        max_response_bytes: Cap of one decoded answer body.
        retry: A full :class:`~steerlm.http.RetryPolicy`; overrides ``max_retries``.
        headers: Extra headers for every request; shown nowhere.
        coalesce: Merge concurrent calls into shared requests, where the API gains by it.
        engine: The server program behind the API, for APIs that serve several
            (:attr:`engines`); ``"auto"`` lets the transport find out.

    Raises:
        SteerLMInputError: A URL, timeout, retry count or size cap that cannot work, or
            an engine this API does not know.
    """

    #: The name ``api=`` selects this transport by (see :mod:`steerlm.transports.registry`).
    api: ClassVar[str]
    #: The URL used when neither ``base_url`` nor ``$STEERLM_BASE_URL`` is set.
    default_base_url: ClassVar[str]
    #: Whether :meth:`stream` yields tokens as they are generated (else one chunk).
    streams_tokens: ClassVar[bool] = False
    #: Most prompts one request carries (a batch is split above it); None: no limit.
    max_prompts_per_request: ClassVar[int | None] = None
    #: Whether the server names the model that answered in each answer (``raw["model"]``).
    reports_model: ClassVar[bool] = False
    #: The ``engine`` names this API knows besides ``"auto"`` (servers that differ).
    engines: ClassVar[tuple[str, ...]] = ()
    #: Whether :meth:`generate` and :meth:`stream` take ``constraint=`` (a JSON schema
    #: the answer must match, enforced by the server where its engine can).
    constrains: ClassVar[bool] = False

    def __init__(
        self,
        base_url: str | None = None,
        *,
        model: str | None = None,
        timeout: float = 120.0,
        max_retries: int = 2,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        retry: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
        coalesce: bool = True,
        engine: str = "auto",
    ) -> None:
        if engine != "auto" and engine not in self.engines:
            known = ", ".join(map(repr, ("auto", *self.engines)))
            hint = did_you_mean(str(engine), self.engines)
            where = (
                f"api={self.api!r} knows: {known}"
                if self.engines
                else (f"api={self.api!r} serves one kind of server: leave engine='auto'")
            )
            raise SteerLMInputError(f"Unknown engine {engine!r}.{hint} {where}.")
        self.engine = engine
        self.http = transport_session(timeout, max_retries, max_response_bytes, retry, headers)
        self.timeout, self.retry = self.http.timeout, self.http.retry
        self.endpoint = Endpoint.parse(resolve_base_url(base_url, self.default_base_url))
        self.coalesce = coalesce
        self._model = model
        self._context_window: int | None = None
        self._context_window_known = False

    @property
    def base_url(self) -> str:
        """The server URL as it may be shown: credentials redacted."""
        return self.endpoint.display

    @property
    @abstractmethod
    def url(self) -> str:
        """The URL answers come from, as it may be shown (for errors and logs)."""

    @property
    def model(self) -> str | None:
        """The served model's name: given, or learnt from the server (None if unknown)."""
        return self._model

    # -- generation ------------------------------------------------------------------------

    @abstractmethod
    def generate(
        self, prompts: Sequence[str], options: GenerationOptions, stops: Sequence[str]
    ) -> list[Completion]:
        """Generate one completion per prompt, in order.

        Args:
            prompts: Complete SteerLM prompts.
            options: Decoding settings.
            stops: End strings, sent to the server as far as it takes them and applied
                again on each answer.

        Raises:
            SteerLMConnectionError: The server could not be reached (after retries).
            SteerLMTimeoutError: An attempt took longer than ``timeout``.
            SteerLMServerError: The server refused the request (or redirected it).
            SteerLMResponseError: The answer is not a generation result, or too large.
        """

    @abstractmethod
    async def agenerate(
        self, prompts: Sequence[str], options: GenerationOptions, stops: Sequence[str]
    ) -> list[Completion]:
        """Async :meth:`generate`; it never blocks the event loop."""

    def stream(
        self, prompt: str, options: GenerationOptions, stops: Sequence[str]
    ) -> Iterator[StreamChunk]:
        """Stream the answer to one prompt.

        Yields text that is safe to show, then a last chunk carrying the whole
        :class:`~steerlm.types.Completion`. This default (a server that does not stream)
        yields the whole answer as that one last chunk.
        """
        completion = self.generate([prompt], options, stops)[0]
        yield StreamChunk(completion.text, completion)

    async def astream(
        self, prompt: str, options: GenerationOptions, stops: Sequence[str]
    ) -> AsyncGenerator[StreamChunk, None]:
        """Async :meth:`stream`."""
        completion = (await self.agenerate([prompt], options, stops))[0]
        yield StreamChunk(completion.text, completion)

    # -- what the server says about itself ---------------------------------------------------

    def server_context_window(self) -> int | None:
        """The context length (prompt plus answer tokens) the server reports, if it does.

        Asked lazily, once per transport (copies of a model share it), without retries:
        a server that cannot be reached now is asked again next time; one that answered
        without saying is not.
        """
        if not self._context_window_known:
            try:
                self._context_window = self.probe_context_window()
            except SteerLMError:
                return None
            self._context_window_known = True
        return self._context_window

    def probe_context_window(self) -> int | None:
        """Ask the server for its context length (one request, no retries); None when
        its answer does not say. This default knows no way to ask.

        Raises:
            SteerLMError: The server could not be asked (down, slow, a 5xx).
        """
        return None

    def probe_json(self, endpoint: Endpoint) -> dict[str, Any] | None:
        """GET ``endpoint`` once, without retries, decoded as this API's answers are: its
        JSON object, or None for a refusal (a 4xx, or an error in a 200) or an answer that
        is not a JSON object.

        Raises:
            SteerLMError: The server could not be reached, or failed (5xx).
        """

        def decode(response: HttpResponse) -> dict[str, Any]:
            return self.decode_answer(endpoint.display, response)

        try:
            return self.http.request("GET", endpoint, None, decode, _NO_RETRY)
        except SteerLMServerError as error:
            if error.status < 500:
                return None
            raise
        except SteerLMResponseError:
            return None

    # -- raw requests ----------------------------------------------------------------------

    def request_json(
        self, method: str, path: str, payload: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Send one request to ``base_url + path`` with retries; decode it as answers are.

        For requests the typed methods do not make (a probe, a body built by hand).
        """
        return self.http.request(method, self.endpoint.join(path), payload, self.decoder(path))

    def decoder(self, path: str) -> Callable[[HttpResponse], dict[str, Any]]:
        """The decoder of answers from ``base_url + path``: :meth:`decode_answer`, with
        :meth:`route_hint` added to a 404 or 405 (the server has no such route)."""
        url = self.endpoint.join(path).display

        def decode(response: HttpResponse) -> dict[str, Any]:
            try:
                return self.decode_answer(url, response)
            except SteerLMServerError as error:
                hint = self.route_hint() if error.status in (404, 405) else None
                if hint is None or type(error) is not SteerLMServerError:
                    raise
                raise SteerLMServerError(error.url, error.status, error.body, hint) from None

        return decode

    @abstractmethod
    def decode_answer(self, url: str, response: HttpResponse) -> dict[str, Any]:
        """This API's answer from ``url`` as a JSON object.

        Raises:
            SteerLMServerError: The answer is an error (a status, or the API's error shape).
            SteerLMResponseError: A 200 that is not a JSON object.
        """

    def route_hint(self) -> str | None:
        """What to change in ``base_url`` when the server has no route for this API's
        paths (a 404 or 405): None when nothing in the URL looks wrong."""
        return None

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Release the sync connection pool; the transport reopens one when used again."""
        self.http.close()

    async def aclose(self) -> None:
        """Close the async connection pool of the running event loop.

        Pools of loops that have ended were already closed when their loop shut down.
        """
        await self.http.aclose()

    def __del__(self) -> None:
        # Release pooled sockets when the last model using this transport goes away; at
        # interpreter shutdown there may be nothing left to release.
        with contextlib.suppress(Exception):
            self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r})"
