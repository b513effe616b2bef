"""NeMo's ``PUT /generate`` transport: request bodies, batching and answer parsing.

Everything about HTTP itself (retries, the deadline, the size cap, redirects,
credentials, logging) lives in :mod:`steerlm.http`, which a second transport reuses.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Hashable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from steerlm.coalesce import Coalescer
from steerlm.errors import (
    SteerLMInputError,
    SteerLMRedirectError,
    SteerLMResponseError,
    SteerLMServerError,
)
from steerlm.http import (
    DEFAULT_MAX_RESPONSE_BYTES,
    Endpoint,
    HttpResponse,
    RetryPolicy,
    redact_url,
    transport_session,
)
from steerlm.options import (
    MAX_SENTENCES_PER_REQUEST,
    GenerationOptions,
    build_request_body,
    check_prompts,
)
from steerlm.response import decode_body, parse_generation
from steerlm.types import Completion

#: NeMo's default port for ``megatron_gpt_eval.py server=True``.
DEFAULT_BASE_URL = "http://localhost:5555"
BASE_URL_ENV = "STEERLM_BASE_URL"

#: One for the whole process, so that every model instance pointing at the same server
#: with the same options shares its lanes.
COALESCER = Coalescer(MAX_SENTENCES_PER_REQUEST)

__all__ = [
    "BASE_URL_ENV",
    "COALESCER",
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "RetryPolicy",
    "SteerLMClient",
    "resolve_base_url",
]


def resolve_base_url(base_url: str | None) -> str:
    """``base_url``, else ``$STEERLM_BASE_URL``, else NeMo's default; no trailing slash.

    Credentials in the URL (``http://user:token@host``) are kept: they are sent as a
    Basic ``Authorization`` header and shown nowhere (see :func:`steerlm.http.redact_url`).

    Raises:
        SteerLMInputError: The URL is not http(s), has no host, or has a query or fragment.
    """
    url = (base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL).rstrip("/")
    shown = redact_url(url)
    after_host = re.split(r"[/?#]", url.partition("://")[2], maxsplit=1)[1:]
    if after_host and "@" in after_host[0]:
        raise SteerLMInputError(
            "base_url has an '@' after its host: a password holding '/', '?', '#' or '@' "
            "must be percent-encoded (%2F, %3F, %23, %40), e.g. http://user:p%2Fss@host:5555."
        )
    if not url.startswith(("http://", "https://")):
        raise SteerLMInputError(
            f"base_url must start with http:// or https://, got {shown!r}, "
            f"e.g. {DEFAULT_BASE_URL!r}."
        )
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as exc:
        raise SteerLMInputError(f"base_url {shown!r} is not a valid URL: {exc}.") from None
    if not parts.hostname:
        raise SteerLMInputError(f"base_url {shown!r} has no host, e.g. {DEFAULT_BASE_URL!r}.")
    if parts.query or parts.fragment or any(c.isspace() for c in url):
        raise SteerLMInputError(
            f"base_url {shown!r} must be the server's root, without a query, fragment or "
            f"spaces, e.g. {DEFAULT_BASE_URL!r}."
        )
    return url


class SteerLMClient:
    """Client of one NeMo text-generation server.

    Many prompts go out as one request (NeMo runs them as one batch), split into requests
    of at most 128. Sync calls reuse one connection pool; async calls one per event loop.

    With ``coalesce`` on, concurrent calls with the same options share requests: a call
    that finds no request of its kind in flight goes out at once; calls that arrive
    meanwhile wait, since NeMo's lock would queue them anyway, and leave together as one
    request when it returns (see :mod:`steerlm.coalesce`).

    Args:
        base_url: Server root, e.g. ``http://localhost:5555``; see :func:`resolve_base_url`.
        timeout: Seconds one attempt may take in all (connect, send, wait, read the
            answer). Each retry gets the same again, after its backoff wait.
        max_retries: Retries on failures another attempt can cure (see
            :class:`~steerlm.http.RetryPolicy`).
        max_response_bytes: Cap of one decoded answer body.
        retry: A full :class:`~steerlm.http.RetryPolicy`; overrides ``max_retries``.
        coalesce: Merge concurrent calls into shared requests.
        headers: Extra headers for every request (``Authorization: Bearer ...`` for a
            gateway in front of NeMo, and the like); shown nowhere.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        timeout: float = 120.0,
        max_retries: int = 2,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        retry: RetryPolicy | None = None,
        coalesce: bool = True,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.http = transport_session(timeout, max_retries, max_response_bytes, retry, headers)
        self.timeout, self.retry = self.http.timeout, self.http.retry
        self._endpoint = Endpoint.parse(resolve_base_url(base_url))
        self._generate = self._endpoint.join("/generate")
        self.coalesce = coalesce

    @property
    def base_url(self) -> str:
        """The server root as it may be shown: credentials redacted."""
        return self._endpoint.display

    @property
    def url(self) -> str:
        """The ``/generate`` URL as it may be shown: credentials redacted."""
        return self._generate.display

    def generate(
        self, prompts: Sequence[str], options: GenerationOptions, stops: Sequence[str]
    ) -> list[Completion]:
        """Generate one completion per prompt.

        Args:
            prompts: Complete SteerLM prompts.
            options: Decoding settings.
            stops: End strings, sent to the server and applied again on the answer.

        Raises:
            SteerLMConnectionError: The server could not be reached (after retries).
            SteerLMTimeoutError: An attempt took longer than ``timeout``.
            SteerLMServerError: The server refused the request (or redirected it).
            SteerLMResponseError: The answer is not a generation result, or too large.
        """

        def send(chunk: Sequence[str]) -> list[Completion]:
            body = self.post_json(build_request_body(chunk, options, stops))
            return parse_generation(self.url, body, chunk, stops, options)

        completions = []
        for chunk in _chunks(prompts):
            if self.coalesce:
                key = self._lane(options, stops)
                completions += COALESCER.run(key, chunk, send, _caused_by_one_prompt)
            else:
                completions += send(chunk)
        return completions

    async def agenerate(
        self, prompts: Sequence[str], options: GenerationOptions, stops: Sequence[str]
    ) -> list[Completion]:
        """Async :meth:`generate`; it never blocks the event loop."""

        async def send(chunk: Sequence[str]) -> list[Completion]:
            body = await self.apost_json(build_request_body(chunk, options, stops))
            return parse_generation(self.url, body, chunk, stops, options)

        completions = []
        for chunk in _chunks(prompts):
            if self.coalesce:
                key = self._lane(options, stops)
                completions += await COALESCER.arun(key, chunk, send, _caused_by_one_prompt)
            else:
                completions += await send(chunk)
        return completions

    def _lane(self, options: GenerationOptions, stops: Sequence[str]) -> Hashable:
        """Calls with equal lanes may share a request: same server, same options.

        ``options`` and ``stops`` decide everything in the request but ``sentences``, and
        how each answer is read back. A call with a ``random_seed`` has a lane of its own:
        merged with others, its sample would depend on who shared its request.
        """
        return (
            object() if options.random_seed is not None else None,
            self._generate.url,
            self._generate.authorization,
            tuple(sorted(self.http.headers.items())),  # another key is another caller
            options,
            tuple(stops),
            self.timeout,
            self.retry,
            self.http.max_response_bytes,
        )

    def post_json(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Send one ``PUT /generate`` with retries and return its decoded JSON object."""
        return self.http.request("PUT", self._generate, payload, self._decode)

    async def apost_json(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Async :meth:`post_json`."""
        return await self.http.arequest("PUT", self._generate, payload, self._decode)

    def _decode(self, response: HttpResponse) -> dict[str, Any]:
        return decode_body(self.url, response.status, response.text)

    def close(self) -> None:
        """Release the sync connection pool; the client reopens one when used again."""
        self.http.close()

    async def aclose(self) -> None:
        """Close the async connection pool of the running event loop.

        Pools of loops that have ended were already closed when their loop shut down.
        """
        await self.http.aclose()

    def __del__(self) -> None:
        # Release pooled sockets when the last model using this client goes away; at
        # interpreter shutdown there may be nothing left to release.
        with contextlib.suppress(Exception):
            self.close()


def _caused_by_one_prompt(error: BaseException) -> bool:
    """Whether a merged request's error could come from one caller's prompts alone.

    NeMo's validation string (HTTP 200), a 400 or 413, and an answer that cannot be parsed
    can; connection errors, timeouts and 5xx cannot, and reach every caller.
    """
    if isinstance(error, SteerLMRedirectError):
        return False
    if isinstance(error, SteerLMServerError):
        # A 5xx that names the context is a prompt too long, not a server fault.
        return error.status in (200, 400, 413, 422) or (error.status >= 500 and not error.retryable)
    return isinstance(error, SteerLMResponseError)


def _chunks(prompts: Sequence[str]) -> list[Sequence[str]]:
    check_prompts(prompts)
    step = MAX_SENTENCES_PER_REQUEST
    return [prompts[i : i + step] for i in range(0, len(prompts), step)]
