"""NeMo's ``PUT /generate`` transport: request bodies, batching and answer parsing.

Everything about HTTP itself (retries, the deadline, the size cap, redirects,
credentials, logging) lives in :mod:`steerlm.http`, which a second transport reuses.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from steerlm.coalesce import Coalescer
from steerlm.errors import (
    SteerLMRedirectError,
    SteerLMResponseError,
    SteerLMServerError,
)
from steerlm.http import HttpResponse
from steerlm.options import (
    MAX_SENTENCES_PER_REQUEST,
    GenerationOptions,
    build_request_body,
    check_prompts,
)
from steerlm.response import decode_body, parse_generation
from steerlm.transports.base import Transport, positive_int, url_path
from steerlm.types import Completion

#: NeMo's default port for ``megatron_gpt_eval.py server=True``.
DEFAULT_BASE_URL = "http://localhost:5555"

#: One for the whole process, so that every model instance pointing at the same server
#: with the same options shares its lanes.
COALESCER = Coalescer(MAX_SENTENCES_PER_REQUEST)

__all__ = ["COALESCER", "DEFAULT_BASE_URL", "SteerLMClient"]


class SteerLMClient(Transport):
    """Client of one NeMo text-generation server (``api="nemo"``).

    Many prompts go out as one request (NeMo runs them as one batch), split into requests
    of at most 128. Sync calls reuse one connection pool; async calls one per event loop.
    ``/generate`` does not stream: :meth:`stream` yields the whole answer as one chunk.

    With ``coalesce`` on, concurrent calls with the same options share requests: a call
    that finds no request of its kind in flight goes out at once; calls that arrive
    meanwhile wait, since NeMo's lock would queue them anyway, and leave together as one
    request when it returns (see :mod:`steerlm.coalesce`).

    Args:
        base_url: Server root, e.g. ``http://localhost:5555``; falls back to
            ``$STEERLM_BASE_URL``, then :data:`DEFAULT_BASE_URL`.
        **settings: ``timeout``, ``max_retries``, ``max_response_bytes``, ``retry``,
            ``headers``, ``coalesce`` and ``model`` (only reported: NeMo serves one
            model and takes no name), as :class:`~steerlm.transports.base.Transport`.
    """

    api = "nemo"
    default_base_url = DEFAULT_BASE_URL
    max_prompts_per_request = MAX_SENTENCES_PER_REQUEST

    def __init__(self, base_url: str | None = None, **settings: Any) -> None:
        super().__init__(base_url, **settings)
        self._generate = self.endpoint.join("/generate")
        self._decode = self.decoder("/generate")

    @property
    def url(self) -> str:
        """The ``/generate`` URL as it may be shown: credentials redacted."""
        return self._generate.display

    def generate(
        self, prompts: Sequence[str], options: GenerationOptions, stops: Sequence[str]
    ) -> list[Completion]:
        """Generate one completion per prompt: one request per 128 prompts, shared with
        concurrent calls of the same options when ``coalesce`` is on (see the class).

        Raises:
            SteerLMError: As :meth:`steerlm.transports.base.Transport.generate`.
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

    def post_json(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Send one ``PUT /generate`` with retries and return its decoded JSON object."""
        return self.http.request("PUT", self._generate, payload, self._decode)

    async def apost_json(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Async :meth:`post_json`."""
        return await self.http.arequest("PUT", self._generate, payload, self._decode)

    def decode_answer(self, url: str, response: HttpResponse) -> dict[str, Any]:
        """NeMo's answers: a JSON object, or a validation message as a string (HTTP 200)."""
        return decode_body(url, response.status, response.text)

    def probe_context_window(self) -> int | None:
        """The dev server's ``GET /health`` says ``context_window``; NeMo itself has no
        such route (a 404: None)."""
        health = self.probe_json(self.endpoint.join("/health"))
        return positive_int(health.get("context_window")) if health else None

    def route_hint(self) -> str | None:
        """``/generate`` or ``/v1`` in ``base_url``: the usual slips with NeMo."""
        path = url_path(self.endpoint.url)
        if path.endswith("/generate"):
            root = self.endpoint.display[: -len("/generate")]
            return f"base_url ends with /generate: drop it (base_url={root!r}); the client adds it."
        if path.endswith("/v1"):
            return (
                "base_url ends with /v1, the API root of an OpenAI-compatible server: pass "
                "api='openai' to use that API, or drop /v1 for NeMo's PUT /generate."
            )
        return None


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
