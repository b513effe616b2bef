"""HTTP client for NeMo's ``PUT /generate``: sessions, timeouts, retries, sync and async."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import requests

from steerlm.errors import (
    SteerLMConnectionError,
    SteerLMError,
    SteerLMInputError,
    SteerLMServerError,
    SteerLMTimeoutError,
)
from steerlm.options import MAX_SENTENCES_PER_REQUEST, GenerationOptions, build_request_body
from steerlm.response import decode_body, parse_generation
from steerlm.types import Completion

#: NeMo's default port for ``megatron_gpt_eval.py server=True``.
DEFAULT_BASE_URL = "http://localhost:5555"
BASE_URL_ENV = "STEERLM_BASE_URL"

_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


def resolve_base_url(base_url: str | None) -> str:
    """``base_url``, else ``$STEERLM_BASE_URL``, else NeMo's default; no trailing slash.

    Raises:
        SteerLMInputError: The URL is not http(s).
    """
    url = (base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL).rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise SteerLMInputError(
            f"base_url must start with http:// or https://, got {url!r}, e.g. {DEFAULT_BASE_URL!r}."
        )
    return url


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter for connection errors, 429 and 5xx.

    Args:
        max_retries: Retries after the first attempt.
        backoff: Base delay in seconds; attempt n waits a random time up to backoff * 2**n.
        max_delay: Cap of one wait.
    """

    max_retries: int = 2
    backoff: float = 0.5
    max_delay: float = 8.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based)."""
        return random.uniform(0, min(self.max_delay, self.backoff * 2**attempt))

    def should_retry(self, attempt: int, error: SteerLMError) -> bool:
        """Whether ``error`` after ``attempt`` (0-based) is worth another try."""
        if attempt >= self.max_retries or isinstance(error, SteerLMTimeoutError):
            return False  # a timed-out generation would queue again behind itself
        if isinstance(error, SteerLMServerError):
            return error.status in _RETRY_STATUSES
        return isinstance(error, SteerLMConnectionError)


class SteerLMClient:
    """Client of one NeMo text-generation server.

    Sync calls reuse one ``requests.Session``; async calls use one ``httpx.AsyncClient``
    per event loop and never block it. Many prompts go out as one request (NeMo runs them
    as one batch), split into requests of at most 128.

    Args:
        base_url: Server root, e.g. ``http://localhost:5555``; see :func:`resolve_base_url`.
        timeout: Seconds to wait for each HTTP request.
        max_retries: Retries on connection errors, 429 and 5xx.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        timeout: float = 120.0,
        max_retries: int = 2,
    ) -> None:
        if not (isinstance(timeout, int | float) and timeout > 0):
            raise SteerLMInputError(
                f"timeout must be a positive number of seconds, got {timeout!r}."
            )
        if not (type(max_retries) is int and max_retries >= 0):
            raise SteerLMInputError(f"max_retries must be an integer >= 0, got {max_retries!r}.")
        self.base_url = resolve_base_url(base_url)
        self.url = f"{self.base_url}/generate"
        self.timeout = float(timeout)
        self.retry = RetryPolicy(max_retries=max_retries)
        self._session: requests.Session | None = None
        self._async_clients: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}

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
            SteerLMServerError: The server refused the request.
            SteerLMResponseError: The answer is not a generation result.
        """
        completions = []
        for chunk in _chunks(prompts):
            body = self.post_json(build_request_body(chunk, options, stops))
            completions += parse_generation(self.url, body, chunk, stops, options)
        return completions

    async def agenerate(
        self, prompts: Sequence[str], options: GenerationOptions, stops: Sequence[str]
    ) -> list[Completion]:
        """Async :meth:`generate`; it never blocks the event loop."""
        completions = []
        for chunk in _chunks(prompts):
            body = await self.apost_json(build_request_body(chunk, options, stops))
            completions += parse_generation(self.url, body, chunk, stops, options)
        return completions

    def post_json(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Send one ``PUT /generate`` with retries and return its decoded JSON object."""
        attempt = 0
        while True:
            try:
                response = self._sync_session().put(self.url, json=payload, timeout=self.timeout)
                return decode_body(self.url, response.status_code, response.text)
            except requests.Timeout:
                error: SteerLMError = SteerLMTimeoutError(self.url, self.timeout)
            except requests.ConnectionError as exc:
                error = SteerLMConnectionError(self.url, _reason(exc))
            except SteerLMServerError as exc:
                error = exc
            if not self.retry.should_retry(attempt, error):
                raise error
            time.sleep(self.retry.delay(attempt))
            attempt += 1

    async def apost_json(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Async :meth:`post_json`."""
        attempt = 0
        while True:
            try:
                client = self._async_client()
                response = await client.put(self.url, json=payload, timeout=self.timeout)
                return decode_body(self.url, response.status_code, response.text)
            except httpx.TimeoutException:
                error: SteerLMError = SteerLMTimeoutError(self.url, self.timeout)
            except httpx.TransportError as exc:
                error = SteerLMConnectionError(self.url, _reason(exc))
            except SteerLMServerError as exc:
                error = exc
            if not self.retry.should_retry(attempt, error):
                raise error
            await asyncio.sleep(self.retry.delay(attempt))
            attempt += 1

    def _sync_session(self) -> requests.Session:
        if self._session is None:
            self._session = requests.Session()
        return self._session

    def _async_client(self) -> httpx.AsyncClient:
        # An httpx client is bound to the loop it first ran on; keep one per loop.
        loop = asyncio.get_running_loop()
        client = self._async_clients.get(loop)
        if client is None:
            for stale in [lp for lp in self._async_clients if lp.is_closed()]:
                del self._async_clients[stale]
            client = self._async_clients[loop] = httpx.AsyncClient()
        return client

    def close(self) -> None:
        """Close the sync session (async clients close with :meth:`aclose`)."""
        if self._session is not None:
            self._session.close()
            self._session = None

    def __del__(self) -> None:
        # Release pooled sockets when the last model using this client goes away; at
        # interpreter shutdown there may be nothing left to release.
        with contextlib.suppress(Exception):
            self.close()

    async def aclose(self) -> None:
        """Close the async client of the running loop."""
        client = self._async_clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()


def _chunks(prompts: Sequence[str]) -> list[Sequence[str]]:
    if not prompts:
        raise SteerLMInputError("No prompts to generate: pass at least one.")
    step = MAX_SENTENCES_PER_REQUEST
    return [prompts[i : i + step] for i in range(0, len(prompts), step)]


def _reason(exc: Exception) -> str:
    # Connection errors nest the useful part ("Connection refused") several levels deep.
    text = str(exc) or type(exc).__name__
    for marker in ("Connection refused", "Name or service not known", "Connection reset"):
        if marker in text:
            return marker.lower()
    return text
