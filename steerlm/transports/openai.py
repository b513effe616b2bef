"""The OpenAI-compatible completions transport: vLLM, TensorRT-LLM, NIM, llama.cpp.

``POST {base_url}/completions`` with the raw SteerLM prompt (these servers' chat templates
know nothing of label lines), ``GET {base_url}/models`` to learn the served model, and
server-sent events for ``stream: true``. HTTP itself (retries, deadline, size cap,
redirects, credentials, logging) is :mod:`steerlm.http`'s; the stop cut is
:func:`steerlm.response.cut_answer`, the same as NeMo's, applied incrementally to streams by
:class:`steerlm.response.StreamCut`.

Engines differ in what they take (stop strings, prompt lists, streaming, constrained
decoding keys, routes): each difference is a field of the engine's
:class:`~steerlm.transports.engines.EngineProfile`, named by the ``engine`` setting or
learnt once from ``GET /models`` (``engine="auto"``).

Batches: many prompts go out as one request with a prompt list where the engine takes
one (vLLM, TensorRT-LLM's ``trtllm-serve``, NIM and the dev server). An engine that takes
none goes prompt by prompt; an unknown one is tried with a list on the first batch, and
a refusal (llama-cpp-python's server takes one prompt per request) sends that batch and
later ones as concurrent requests, which continuous batching serves together.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
from collections.abc import AsyncGenerator, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from steerlm.errors import (
    SteerLMError,
    SteerLMInputError,
    SteerLMResponseError,
    SteerLMServerError,
    SteerLMStreamEndedError,
)
from steerlm.http import (
    AsyncHttpStream,
    HttpResponse,
    HttpStream,
    RetryPolicy,
    SSEDecoder,
    logger,
)
from steerlm.options import GenerationOptions, check_prompts
from steerlm.response import StreamCut, cut_answer, load_json
from steerlm.transports.base import Transport, positive_int, url_path
from steerlm.transports.engines import (
    AUTO,
    ENGINES,
    Constraint,
    EngineProfile,
    detect_engine,
)
from steerlm.types import REQUEST_USAGE, Completion, FinishReason, StreamChunk, Usage

#: vLLM's default address (``vllm serve`` listens on port 8000; the API root is /v1).
DEFAULT_OPENAI_BASE_URL = "http://localhost:8000/v1"
#: Most concurrent requests of one batch sent to a server that takes one prompt each.
MAX_CONCURRENT_REQUESTS = 16

# Statuses with which a server refuses a prompt list (validation, or an assertion failing
# inside it, as llama-cpp-python's server does); the batch is then sent prompt by prompt.
_LIST_REFUSED = frozenset({400, 422, 500})


@dataclass(frozen=True)
class _ProbeRetry(RetryPolicy):
    """The client's retry policy, except for the answers of a server that takes no lists.

    Retrying those would only repeat the refusal; a 503 or a reset is retried as usual.
    """

    def should_retry(self, attempt: int, error: SteerLMError) -> bool:
        if isinstance(error, SteerLMServerError) and error.status in _LIST_REFUSED:
            return False
        return super().should_retry(attempt, error)


__all__ = [
    "DEFAULT_OPENAI_BASE_URL",
    "MAX_CONCURRENT_REQUESTS",
    "OpenAIClient",
    "decode_openai_body",
    "parse_completions",
]


def decode_openai_body(url: str, response: HttpResponse) -> dict[str, Any]:
    """Decode an answer of an OpenAI-compatible server into its JSON object.

    Raises:
        SteerLMServerError: A status other than 200, or an error object
            (``{"error": {"message", "type", "code"}}``) with any status.
        SteerLMResponseError: A 200 whose body is not a JSON object.
    """
    text = response.text
    body = load_json(url, response.status, text)
    if isinstance(body, dict) and body.get("error"):
        raise error_from_object(url, response.status, body["error"])
    if isinstance(body, dict) and body.get("object") == "error":  # vLLM before 0.9
        raise error_from_object(url, response.status, body)
    if response.status != 200:
        raise SteerLMServerError(url, response.status, text)
    if not isinstance(body, dict):
        raise SteerLMResponseError(url, "the body is not a JSON object", text)
    return body


def error_from_object(url: str, status: int, error: Any) -> SteerLMServerError:
    """The :class:`~steerlm.errors.SteerLMServerError` for an OpenAI-style error object.

    An error object in an HTTP 200 (or in a stream) takes its status from its numeric
    ``code``, else 500. Authentication failures say how to pass a key.
    """
    if isinstance(error, dict):
        message = str(error.get("message") or json.dumps(error))
        code = error.get("code")
        kind = error.get("type")
    else:
        message, code, kind = str(error), None, None
    if status == 200:
        status = code if isinstance(code, int) and 400 <= code < 600 else 500
    details = ", ".join(f"{k} {v}" for k, v in (("type", kind), ("code", code)) if v is not None)
    text = f"{message} ({details})" if details else message
    if status in (401, 403):
        text += "; pass api_key=... or set $STEERLM_API_KEY (sent as a Bearer token)"
    return SteerLMServerError(url, status, text)


def parse_completions(
    url: str,
    body: dict[str, Any],
    prompts: Sequence[str],
    stops: Sequence[str],
    options: GenerationOptions,
    profile: EngineProfile = ENGINES["generic"],
) -> list[Completion]:
    """One :class:`~steerlm.types.Completion` per prompt from a ``/completions`` answer.

    The answer is ``choices[i].text`` cut at the earliest stop string (servers exclude the
    stop they stopped at, and a server that ignores ``stop`` would keep it). Usage is the
    server's ``usage`` for one prompt, when ``profile`` says it counts tokens; for a
    prompt list the server reports one total for the whole request, so each answer's
    usage is None. A finish reason the server did not give (or that ``profile`` says
    cannot be trusted) is None, unless the answer was cut at a stop string.

    Raises:
        SteerLMResponseError: No ``choices`` list with one text per prompt.
    """
    choices = body.get("choices")
    if not (
        isinstance(choices, list)
        and len(choices) == len(prompts)
        and all(isinstance(c, dict) and isinstance(c.get("text"), str) for c in choices)
    ):
        raise SteerLMResponseError(
            url,
            f"no 'choices' list with one text for each of {len(prompts)} prompt(s)",
            json.dumps(body),
        )
    ordered = sorted(choices, key=lambda c: c.get("index") or 0)
    total = _usage(body.get("usage"), profile)
    usage = total if len(prompts) == 1 else None
    model = body.get("model") if profile.reports_model else None
    completions = [
        _completion(choice["text"], choice, prompt, stops, options, usage, model, profile)
        for prompt, choice in zip(prompts, ordered, strict=True)
    ]
    if total is not None and len(prompts) > 1:  # the whole request's, for best of n
        for completion in completions:
            completion.raw[REQUEST_USAGE] = (len(prompts), total)
    return completions


def _completion(
    generated: str,
    choice: Mapping[str, Any],
    prompt: str,
    stops: Sequence[str],
    options: GenerationOptions,
    usage: Usage | None,
    model: Any,
    profile: EngineProfile,
    text: str | None = None,
    stop_string: str | None = None,
) -> Completion:
    if text is None:
        text, stop_string = cut_answer(generated, stops)
    if stop_string is None and choice.get("stop_reason") in stops:
        stop_string = choice["stop_reason"]  # vLLM names the stop string it stopped at
    given = choice.get("finish_reason") if profile.finish_reasons else None
    reason: FinishReason | None = given if given in ("stop", "length") else None
    if stop_string is not None:
        reason = "stop"
    return Completion(
        text=text,
        finish_reason=reason,
        stop_string=stop_string,
        usage=usage,
        logprobs=_logprobs(choice.get("logprobs")) if options.logprobs else None,
        prompt=prompt,
        raw={**choice, "text": generated, "model": model},
    )


def _usage(value: Any, profile: EngineProfile) -> Usage | None:
    # A count of words (NeMo's Flask app, Export-Deploy's Ray route) is not a token count.
    if profile.usage != "tokens" or not isinstance(value, dict):
        return None
    prompt, completion = value.get("prompt_tokens"), value.get("completion_tokens")
    if type(prompt) is not int or type(completion) is not int:
        return None
    return Usage(prompt_tokens=prompt, completion_tokens=completion)


def _logprobs(value: Any) -> list[float] | None:
    # OpenAI's {"token_logprobs": [...]}, or a bare list (NeMo's Flask app); Export-Deploy's
    # Ray route sends an object of nulls when none were computed.
    values = value.get("token_logprobs") if isinstance(value, dict) else value
    if not isinstance(values, list):
        return None
    return [float(v) for v in values if isinstance(v, int | float)]


class OpenAIClient(Transport):
    """Client of one OpenAI-compatible completions server (``api="openai"``).

    Args:
        base_url: The API root, e.g. ``http://localhost:8000/v1``; falls back to
            ``$STEERLM_BASE_URL``, then :data:`DEFAULT_OPENAI_BASE_URL`.
        model: The served model's name, sent in each request; when None the server's
            ``/models`` is asked once, and its only model is used.
        engine: The engine behind the server (a name of
            :data:`~steerlm.transports.engines.ENGINES`), or ``"auto"``: learnt once from
            ``GET /models``, else ``"generic"``.
        **settings: ``timeout`` (for a stream: the time to the response head, then each
            gap between arriving bytes), ``max_retries``, ``max_response_bytes`` (of a
            whole stream too), ``retry``, ``headers``, as
            :class:`~steerlm.transports.base.Transport`. ``coalesce`` is not used: these
            servers batch concurrent requests themselves.
    """

    api = "openai"
    default_base_url = DEFAULT_OPENAI_BASE_URL
    streams_tokens = True
    reports_model = True
    engines = tuple(ENGINES)
    constrains = True

    def __init__(self, base_url: str | None = None, **settings: Any) -> None:
        super().__init__(base_url, **settings)
        self._models = self.endpoint.join("/models")
        self._decode_models = self.decoder("/models")
        self._lock = threading.Lock()
        #: Whether the server takes a prompt list: None until the engine or a batch tells.
        self.prompt_lists: bool | None = None
        # The /models answer once fetched (for the model name), kept for the context window.
        self._listing: dict[str, Any] | None = None
        self._profile: EngineProfile | None = None
        self._use(ENGINES["generic" if self.engine == AUTO else self.engine])
        self._known = self.engine != AUTO and (self._model is not None)

    @property
    def url(self) -> str:
        """The ``/completions`` URL as it may be shown."""
        return self._completions.display

    @property
    def profile(self) -> EngineProfile:
        """The engine's profile: named, learnt from the server, or ``generic`` until then."""
        assert self._profile is not None
        return self._profile

    def _use(self, profile: EngineProfile) -> None:
        self._profile = profile
        self._completions = self.endpoint.join(profile.route)
        self._decode = self.decoder(profile.route.rstrip("/"))
        if profile.prompt_lists is not None:
            self.prompt_lists = profile.prompt_lists

    # -- engine and model discovery ----------------------------------------------------------

    def served_model(self) -> str:
        """The model name to send: ``model``, else the only model ``/models`` lists.

        With ``engine="auto"`` the same ``GET /models`` (asked once) tells the engine.

        Raises:
            SteerLMInputError: The server serves several models (they are listed), or
                lists none because it has no ``/models`` route; pass ``model=``.
            SteerLMResponseError: The server lists no model.
        """
        if not self._known:
            with self._lock:
                if not self._known:
                    self._learn(*self._fetch_listing())
        assert self._model is not None
        return self._model

    async def aserved_model(self) -> str:
        """Async :meth:`served_model`."""
        if not self._known:
            listing, missing = await self._afetch_listing()
            with self._lock:
                if not self._known:
                    self._learn(listing, missing)
        assert self._model is not None
        return self._model

    def _fetch_listing(self) -> tuple[dict[str, Any] | None, SteerLMServerError | None]:
        self._check_model_findable()
        try:
            return self.http.request("GET", self._models, None, self._decode_models), None
        except SteerLMServerError as error:
            return None, self._listing_refused(error)

    async def _afetch_listing(self) -> tuple[dict[str, Any] | None, SteerLMServerError | None]:
        self._check_model_findable()
        try:
            return await self.http.arequest("GET", self._models, None, self._decode_models), None
        except SteerLMServerError as error:
            return None, self._listing_refused(error)

    def _check_model_findable(self) -> None:
        if self._model is None and not self.profile.lists_models and self.engine != AUTO:
            raise self._no_models_error(self.profile)

    def _listing_refused(self, error: SteerLMServerError) -> SteerLMServerError:
        # A 404 shows the engine by its shape. Other refusals: with a model name given the
        # call can go on (the completions request meets 401 and 403 too: raised here).
        if error.status != 404 and (self._model is None or error.status in (401, 403)):
            raise error
        return error

    def _learn(self, listing: dict[str, Any] | None, refused: SteerLMServerError | None) -> None:
        no_route = refused is not None and refused.status == 404
        if self.engine == AUTO:
            # A 404's shape tells an engine only where base_url is a proper API root: a
            # base_url without /v1 gets the 404 and its hint, not a guess.
            shape = refused.body if refused is not None and no_route else None
            missing = shape if self.route_hint() is None else None
            profile = detect_engine(listing, model=self._model, missing=missing)
            logger.info("%s: engine %r (%s)", self.base_url, profile.name, profile.summary)
            self._use(profile)
        if self._model is None:
            if listing is None:
                if self.profile.lists_models and refused is not None:
                    raise refused  # no engine known for it: the 404 and its route hint
                raise self._no_models_error(self.profile)
            self._model = self._only_model(listing)
        self._listing = listing
        # Learnt for good from a listing or a 404; after a passing failure (a 503 while
        # the server loads) this call goes on as generic and the next one asks again.
        self._known = self.engine != AUTO or listing is not None or no_route

    def _no_models_error(self, profile: EngineProfile) -> SteerLMInputError:
        text = (
            f"The server at {self.base_url} has no {self._models.display} route, so the "
            "model to ask for is unknown: pass model=<the served model's name>"
        )
        if profile.name == "nemo-deploy":
            text += " (NeMo 2.x Export-Deploy's service: the name it was deployed under)."
        elif profile.name == "nemo-flask":
            text += (
                ". It looks like NeMo's own text-generation server (Flask): its full API "
                "is PUT /generate, which api='nemo' uses (base_url without /v1); its "
                "/v1/completions ignores OpenAI's stop strings and streaming."
            )
        else:
            text += "."
        return SteerLMInputError(text)

    def _only_model(self, body: dict[str, Any]) -> str:
        data = body.get("data")
        names = (
            [str(m["id"]) for m in data if isinstance(m, dict) and m.get("id")]
            if isinstance(data, list)
            else []
        )
        if not names:
            raise SteerLMResponseError(
                self._models.display, "it lists no model ('data' is empty)", json.dumps(body)
            )
        if len(names) > 1:
            raise SteerLMInputError(
                f"The server at {self.base_url} serves {len(names)} models: "
                f"{', '.join(map(repr, names))}. Pass model=... to pick one."
            )
        return names[0]

    # -- whole answers ---------------------------------------------------------------------

    def generate(
        self,
        prompts: Sequence[str],
        options: GenerationOptions,
        stops: Sequence[str],
        *,
        constraint: Constraint | None = None,
    ) -> list[Completion]:
        """Generate one completion per prompt (see the module's note on batches).

        Args:
            prompts: Complete SteerLM prompts.
            options: Decoding settings.
            stops: End strings, most important first (an engine with a limit gets the
                first ones); every one is applied to each answer.
            constraint: A JSON schema the answer must match, sent in the engine's own key
                where it has constrained decoding (else ignored: the prompt asks for it).

        Raises:
            SteerLMError: As :meth:`steerlm.transports.base.Transport.generate`; an error object
                maps onto :class:`~steerlm.errors.SteerLMServerError`.
        """
        check_prompts(prompts)
        model = self.served_model()
        call = _Call(model, options, stops, constraint)
        refused = False
        if len(prompts) > 1 and self.prompt_lists is not False:
            try:
                return self._complete(call, prompts, probe=True)
            except _ListRefused:
                refused = True
        if len(prompts) == 1:
            return self._complete(call, prompts)
        workers = min(len(prompts), MAX_CONCURRENT_REQUESTS)
        with ThreadPoolExecutor(workers, thread_name_prefix="steerlm-batch") as pool:
            parts = pool.map(lambda p: self._complete(call, [p]), prompts)
            completions = [completion for part in parts for completion in part]
        if refused:  # the list failed where single prompts work: the server takes no lists
            self.prompt_lists = False
        return completions

    async def agenerate(
        self,
        prompts: Sequence[str],
        options: GenerationOptions,
        stops: Sequence[str],
        *,
        constraint: Constraint | None = None,
    ) -> list[Completion]:
        """Async :meth:`generate`; it never blocks the event loop."""
        check_prompts(prompts)
        model = await self.aserved_model()
        call = _Call(model, options, stops, constraint)
        refused = False
        if len(prompts) > 1 and self.prompt_lists is not False:
            try:
                return await self._acomplete(call, prompts, probe=True)
            except _ListRefused:
                refused = True
        if len(prompts) == 1:
            return await self._acomplete(call, prompts)
        limit = asyncio.Semaphore(MAX_CONCURRENT_REQUESTS)

        async def one(prompt: str) -> list[Completion]:
            async with limit:
                return await self._acomplete(call, [prompt])

        parts = await asyncio.gather(*(one(prompt) for prompt in prompts))
        if refused:
            self.prompt_lists = False
        return [completion for part in parts for completion in part]

    def _complete(
        self, call: _Call, prompts: Sequence[str], probe: bool = False
    ) -> list[Completion]:
        body = call.body(self.profile, prompts)
        try:
            answer = self.http.request(
                "POST", self._completions, body, self._decode, self._retry(probe)
            )
        except SteerLMError as error:
            raise self._refusal(probe, error) from None
        return self._parsed(answer, prompts, call, probe)

    async def _acomplete(
        self, call: _Call, prompts: Sequence[str], probe: bool = False
    ) -> list[Completion]:
        body = call.body(self.profile, prompts)
        try:
            answer = await self.http.arequest(
                "POST", self._completions, body, self._decode, self._retry(probe)
            )
        except SteerLMError as error:
            raise self._refusal(probe, error) from None
        return self._parsed(answer, prompts, call, probe)

    def _retry(self, probe: bool) -> RetryPolicy | None:
        # The first prompt list: a server that cannot take lists fails the same way each
        # time, so that refusal is not retried (the batch then goes out prompt by prompt).
        if probe and self.prompt_lists is None:
            return _ProbeRetry(**dataclasses.asdict(self.retry))
        return None

    def _parsed(
        self, answer: dict[str, Any], prompts: Sequence[str], call: _Call, probe: bool
    ) -> list[Completion]:
        try:
            completions = parse_completions(
                self.url, answer, prompts, call.stops, call.options, self.profile
            )
        except SteerLMError as error:
            raise self._refusal(probe, error) from None
        if probe:
            self.prompt_lists = True
        return completions

    def _refusal(self, probe: bool, error: SteerLMError) -> SteerLMError:
        refused = isinstance(error, SteerLMResponseError) or (
            isinstance(error, SteerLMServerError) and error.status in _LIST_REFUSED
        )
        if probe and self.prompt_lists is None and refused:
            return _ListRefused(str(error))
        return error

    def decode_answer(self, url: str, response: HttpResponse) -> dict[str, Any]:
        """OpenAI-style answers: a JSON object, errors as error objects."""
        return decode_openai_body(url, response)

    def probe_context_window(self) -> int | None:
        """vLLM (and the dev server) list ``max_model_len`` with each model of
        ``/models``; llama.cpp's server says ``n_ctx`` in ``/props`` beside its ``/v1``."""
        listing = self._listing or self.probe_json(self._models)  # fetched once at most
        models = listing.get("data") if listing else None
        if isinstance(models, list):
            entries = [m for m in models if isinstance(m, dict)]
            ours = [m for m in entries if m.get("id") == self._model] or entries[:1]
            found = positive_int(ours[0].get("max_model_len")) if ours else None
            if found:
                return found
        root = dataclasses.replace(
            self.endpoint,
            url=self.endpoint.url.removesuffix("/v1"),
            display=self.endpoint.display.removesuffix("/v1"),
        )
        props = self.probe_json(root.join("/props"))
        if not props:
            return None
        settings = props.get("default_generation_settings")
        nested = settings.get("n_ctx") if isinstance(settings, dict) else None
        return positive_int(nested) or positive_int(props.get("n_ctx"))

    def route_hint(self) -> str | None:
        """A ``base_url`` that is not the API root (``/v1``) is the usual slip."""
        path = url_path(self.endpoint.url)
        for route in ("/completions", "/chat/completions"):
            if path.endswith(route):
                root = self.endpoint.display[: -len(route)]
                return f"base_url ends with {route}: drop it (base_url={root!r})."
        if not path.endswith("/v1"):
            return (
                "api='openai' sends {base_url}/completions and {base_url}/models, and "
                "OpenAI-compatible servers serve them under /v1: add /v1 to base_url "
                f"(base_url={self.endpoint.display + '/v1'!r})."
            )
        return None

    # -- streams ---------------------------------------------------------------------------

    def stream(
        self,
        prompt: str,
        options: GenerationOptions,
        stops: Sequence[str],
        *,
        constraint: Constraint | None = None,
    ) -> Iterator[StreamChunk]:
        """Stream the answer to one prompt as it is generated.

        Yields chunks of text that are safe to show (a stop string is cut even when it
        spans chunks; text that could still become one is held back), then a last chunk
        with the whole :class:`~steerlm.types.Completion`. Closing the iterator early
        closes the connection, so the server stops generating. An engine that does not
        stream (or answers ``stream: true`` with one JSON completion) gives the whole
        answer as one chunk.

        Raises:
            SteerLMStreamEndedError: The stream ended before the server finished it.
            SteerLMError: As :meth:`generate`, before or during the stream.
        """
        call = _Call(self.served_model(), options, stops, constraint)
        if not self.profile.streams:
            completion = self._complete(call, [prompt])[0]
            yield StreamChunk(completion.text, completion)
            return
        body = call.body(self.profile, [prompt], stream=True)
        reader = _StreamReader(self.url, prompt, call, self.profile)
        with self.http.open_stream("POST", self._completions, body, self._decode) as stream:
            if reader.whole_answer(stream):
                answer = self._decode(HttpResponse(200, stream.headers, b"".join(stream)))
                completion = self._parsed(answer, [prompt], call, probe=False)[0]
                yield StreamChunk(completion.text, completion)
                return
            for data in _events(SSEDecoder(), iter(stream)):
                text = reader.event(data)
                if text:
                    yield StreamChunk(text)
                if reader.done:
                    break  # [DONE], or a stop string found: no need for more (closes)
        yield reader.last_chunk()

    async def astream(
        self,
        prompt: str,
        options: GenerationOptions,
        stops: Sequence[str],
        *,
        constraint: Constraint | None = None,
    ) -> AsyncGenerator[StreamChunk, None]:
        """Async :meth:`stream`."""
        call = _Call(await self.aserved_model(), options, stops, constraint)
        if not self.profile.streams:
            completion = (await self._acomplete(call, [prompt]))[0]
            yield StreamChunk(completion.text, completion)
            return
        body = call.body(self.profile, [prompt], stream=True)
        reader = _StreamReader(self.url, prompt, call, self.profile)
        stream = await self.http.aopen_stream("POST", self._completions, body, self._decode)
        async with stream:
            if reader.whole_answer(stream):
                raw = b"".join([chunk async for chunk in stream])
                answer = self._decode(HttpResponse(200, stream.headers, raw))
                completion = self._parsed(answer, [prompt], call, probe=False)[0]
                yield StreamChunk(completion.text, completion)
                return
            events = _aevents(SSEDecoder(), stream)
            try:
                async for data in events:
                    text = reader.event(data)
                    if text:
                        yield StreamChunk(text)
                    if reader.done:
                        break
            finally:
                await events.aclose()
        yield reader.last_chunk()


@dataclass(frozen=True)
class _Call:
    """What every request of one call shares."""

    model: str
    options: GenerationOptions
    stops: Sequence[str]
    constraint: Constraint | None

    def body(
        self, profile: EngineProfile, prompts: Sequence[str], stream: bool = False
    ) -> dict[str, Any]:
        return profile.body(
            self.model,
            prompts,
            self.options,
            self.stops,
            stream=stream,
            constraint=self.constraint,
        )


class _ListRefused(SteerLMError):
    """The server refused a prompt list (internal: the batch goes prompt by prompt)."""


def _events(decoder: SSEDecoder, chunks: Iterator[bytes]) -> Iterator[str]:
    for chunk in chunks:
        yield from decoder.feed(chunk)
    yield from decoder.finish()


async def _aevents(decoder: SSEDecoder, chunks: AsyncHttpStream) -> AsyncGenerator[str, None]:
    async for chunk in chunks:
        for data in decoder.feed(chunk):
            yield data
    for data in decoder.finish():
        yield data


class _StreamReader:
    """Turns the events of one streamed completion into safe text and a final answer."""

    def __init__(self, url: str, prompt: str, call: _Call, profile: EngineProfile) -> None:
        self.url = url
        self.prompt = prompt
        self.call = call
        self.profile = profile
        self.cut = StreamCut(call.stops)
        self.finished = False  # [DONE] arrived
        self.choice: dict[str, Any] = {}
        self.usage: Usage | None = None
        self.model: Any = None
        self.logprobs: list[float] = []
        self.last_event = ""

    @property
    def done(self) -> bool:
        return self.finished or self.cut.stopped

    def whole_answer(self, stream: HttpStream | AsyncHttpStream) -> bool:
        """Whether the server answered ``stream: true`` with one JSON completion (it does
        not stream); raises for an answer that is neither that nor server-sent events."""
        kind = stream.content_type
        if kind == "application/json":
            return True
        if kind in ("text/event-stream", ""):
            return False
        raise SteerLMStreamEndedError(
            self.url, f"it answered with {kind}, not server-sent events or JSON", ""
        )

    def event(self, data: str) -> str:
        """Read one event's data; returns the new safe text."""
        self.last_event = data
        if data.strip() == "[DONE]":
            self.finished = True
            return ""
        try:
            event = json.loads(data)
        except ValueError:
            raise SteerLMResponseError(self.url, "a stream event is not JSON", data) from None
        if not isinstance(event, dict):
            raise SteerLMResponseError(self.url, "a stream event is not a JSON object", data)
        if event.get("error"):
            raise error_from_object(self.url, 200, event["error"])
        self.model = event.get("model", self.model)
        self.usage = _usage(event.get("usage"), self.profile) or self.usage
        choices = event.get("choices")
        if not isinstance(choices, list) or not choices:
            return ""  # the usage-only last event of stream_options.include_usage
        choice = choices[0]
        if not isinstance(choice, dict) or not isinstance(choice.get("text", ""), str):
            raise SteerLMResponseError(self.url, "a stream event has no text", data)
        if choice.get("finish_reason") is not None:
            self.choice = dict(choice)
        if self.call.options.logprobs:
            self.logprobs += _logprobs(choice.get("logprobs")) or []
        return self.cut.feed(choice.get("text") or "")

    def last_chunk(self) -> StreamChunk:
        """The rest of the answer with the whole completion.

        Raises:
            SteerLMStreamEndedError: The stream ended with no finish reason, no
                ``[DONE]`` and no stop string found: the server never finished it.
        """
        if not (self.done or self.choice):
            raise SteerLMStreamEndedError(
                self.url,
                "the connection closed with no finish_reason and no [DONE]"
                if self.last_event
                else "it sent no event at all",
                self.last_event,
                partial=self.cut.shown,
            )
        rest = self.cut.finish()
        completion = _completion(
            self.cut.generated,
            self.choice,
            self.prompt,
            self.cut.stops,
            self.call.options,
            self.usage,
            self.model if self.profile.reports_model else None,
            self.profile,
            text=self.cut.shown,
            stop_string=self.cut.stop_string,
        )
        if self.call.options.logprobs:
            completion = dataclasses.replace(completion, logprobs=self.logprobs)
        return StreamChunk(rest, completion)
