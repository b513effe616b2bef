"""The dev server's OpenAI-compatible routes: ``POST /v1/completions`` and ``GET /v1/models``.

They answer as vLLM's OpenAI server does, on the engine and lock of ``PUT /generate``:

- the request maps onto a ``/generate`` body (``temperature: 0`` is greedy; ``stop`` becomes
  ``end_strings`` with ``<|endoftext|>``, since these servers always stop at end of
  sequence; ``repetition_penalty`` or llama.cpp's ``repeat_penalty``; ``min_tokens``;
  ``seed``; ``logprobs``), validated by the same rules, so the server's NeMo release
  (``--nemo-version``) still decides which stop strings the engine honours;
- ``choices[i].text`` is the generated text without the stop string the engine stopped
  at (vLLM's default), with ``finish_reason`` ``"stop"`` or ``"length"`` and vLLM's
  ``stop_reason``; ``usage`` counts the request's tokens;
- ``stream: true`` answers with server-sent events as the engine generates: one per
  generated token (each sent and flushed at once), then one with the finish reason, one
  with ``usage`` when ``stream_options.include_usage`` is set, and ``data: [DONE]``. As
  llama.cpp's server does (``find_partial_stop_string``, examples/server/utils.hpp), text
  that could still turn into a stop string is held back until it is settled, so a stop
  string is never sent and the events add up to the non-streamed ``text`` (vLLM holds
  back a fixed ``len(longest stop) - 1`` characters, cutting events mid-token). Engines
  that do not stream (that never call ``on_token``) send the same events once they are
  done. A generation that fails mid-stream ends with an error event
  and ``[DONE]``, as vLLM's does;
- errors are OpenAI error objects (``{"error": {"message", "type", "code"}}``): 400 for a
  bad request (NeMo's validation messages), 401 without the API key the server was given,
  404 for an unknown model, 500 for a failed generation.

That is the default profile, ``"steerlm"``. Under another (``--openai-profile``), the routes
imitate that engine instead: its request checks, stop key, streaming or not, answer fields,
usage unit and error shapes, as :mod:`steerlm.server.openai_profiles` describes each.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Sequence
from typing import Any

from steerlm.server import openai_profiles
from steerlm.server.engine import Generation, ending_end_string, generated_text
from steerlm.server.exchange import Exchange
from steerlm.server.openai_profiles import ErrorShape, Profile
from steerlm.server.protocol import END_OF_TEXT, GenerateParams
from steerlm.server.service import BadBody, GenerationRefused, Service, receive

log = logging.getLogger("steerlm.server")

_WORD = re.compile(r"\s*\S+|\s+")


def models(server: Service, exchange: Exchange) -> None:
    """``GET /v1/models``: the served model names, in the shape of the server's profile."""
    if not _authorized(server, exchange):
        return
    shape = openai_profiles.current(server).models
    if shape is None:  # route_path answers 404 first; kept for a direct call
        openai_profiles.FASTAPI_NOT_FOUND.send(exchange)
        return
    exchange.send_json(
        200, shape(server.served_models, server.engine.context_window, int(time.time()))
    )


def _error_object(status: int, message: str, kind: str | None = None) -> dict[str, Any]:
    error = {"message": message, "type": kind or "BadRequestError", "param": None, "code": status}
    return {"error": error}


_BAD_BODY = BadBody(
    not_json=(400, _error_object(400, "The request body is not valid JSON.")),
    not_an_object=(400, _error_object(400, "The request body must be a JSON object.")),
)


def completions(server: Service, exchange: Exchange) -> None:
    """``POST /v1/completions``, streamed or not, as the server's profile answers."""
    profile = openai_profiles.current(server)
    server.received_headers.append({k.lower(): v for k, v in exchange.headers.items()})
    authorized = lambda: _authorized(server, exchange)  # noqa: E731
    body = receive(server, exchange, profile.bad_body or _BAD_BODY, authorized)
    if body is None:
        return
    if profile.check is not None and (refusal := profile.check(body)) is not None:
        refusal.send(exchange)
        return
    model = body.get("model") or server.served_models[0]
    if not profile.checks_model:
        model = server.served_models[0]
    elif model not in server.served_models:
        profile.error(404, f"The model `{model}` does not exist.", "NotFoundError").send(exchange)
        return
    prompts = body.get("prompt")
    if isinstance(prompts, str):
        prompts = [prompts]
    if not (isinstance(prompts, list) and prompts and all(isinstance(p, str) for p in prompts)):
        profile.error(400, "prompt must be a string or a non-empty list of strings.", None).send(
            exchange
        )
        return
    stream = body.get("stream") is True and profile.streams  # others answer plain JSON
    if stream and len(prompts) > 1:
        profile.error(400, "Streaming takes one prompt.", None).send(exchange)
        return
    stops = (body.get(profile.stop_key) if profile.stop_key else None) or []
    stops = [stops] if isinstance(stops, str) else stops
    if not (isinstance(stops, list) and all(isinstance(s, str) for s in stops)):
        message = f"{profile.stop_key} must be a string or a list of strings."
        profile.error(400, message, None).send(exchange)
        return
    request = _generate_body(body, prompts, stops, profile)
    head = openai_profiles.answer_head(profile, body, model)
    if stream:
        options = body.get("stream_options")
        # TensorRT-LLM's StreamOptions.include_usage defaults to True (index copy 0076e939).
        default = profile.name == "trtllm"
        include_usage = isinstance(options, dict) and options.get("include_usage", default) is True
        _stream(server, exchange, request, prompts[0], stops, head, include_usage, profile)
        return
    try:
        params, generations = server.run(request, cancelled=exchange.client_gone)
    except GenerationRefused as exc:
        _refused(exchange, exc, profile.error)
        return
    if exchange.client_gone():
        exchange.close_after()
        return
    pairs = list(zip(prompts, generations, strict=True))
    choices = [
        _shaped_choice(profile, index, prompt, generation, params, stops, body)
        for index, (prompt, generation) in enumerate(pairs)
    ]
    answer: dict[str, Any] = {**head, "choices": choices}
    counts = _token_counts(generations)
    texts = [choice["text"] for choice in choices]
    usage = openai_profiles.usage_of(profile, counts, list(prompts), texts)
    if usage is not None:
        answer["usage"] = usage
    exchange.send_json(200, answer)


def _shaped_choice(
    profile: Profile,
    index: int,
    prompt: str,
    generation: Generation,
    params: GenerateParams,
    stops: Sequence[str],
    body: dict[str, Any],
) -> dict[str, Any]:
    """One prompt's choice with the fields (and finish reason) the profile's engine sends."""
    choice = _choice(index, prompt, generation, params, stops)[0]
    text = generated_text(prompt, generation) if profile.keeps_stop else choice["text"]
    logprobs = choice["logprobs"]
    if profile.finish_reason == "absent":  # Export-Deploy's PyTriton proxy: text, logprobs
        if logprobs is not None:  # query_llm.py#L173-L181
            tokens, values = logprobs["tokens"], logprobs["token_logprobs"]
            top = [{t: v} for t, v in zip(tokens, values, strict=False)]
            logprobs = {"token_logprobs": values, "top_logprobs": top}
        return {"text": text, "logprobs": logprobs}
    if profile.finish_reason == "empty":  # NeMo's Flask /v1/completions (#L143-L152)
        return {
            "finish_reason": "",
            "index": 0,
            "logprobs": generation.logprob if params.wants_logprobs else None,
            "text": text,
            "tokens": generation.tokens,
        }
    if profile.finish_reason == "chars":  # Export-Deploy's Ray route (#L417-L432)
        text = text.removesuffix(END_OF_TEXT)  # megatronllm_deployable.py#L266-L286, #L452
        max_tokens = body.get("max_tokens", profile.defaults["max_tokens"])
        values = logprobs["token_logprobs"] if logprobs is not None else None
        return {
            "text": text,
            "index": 0,
            "logprobs": {"token_logprobs": values, "top_logprobs": None},
            "finish_reason": "length" if text and len(text) >= max_tokens else "stop",
        }
    return {**choice, "text": text, **profile.choice_extras}


def _refused(exchange: Exchange, exc: GenerationRefused, shape: ErrorShape) -> None:
    """Answer a refused generation with an error object (before any event was sent)."""
    status, message = _refusal(exc)
    shape(status, message, "InternalServerError" if status == 500 else None).send(exchange)


def _refusal(exc: GenerationRefused) -> tuple[int, str]:
    message = exc.value if isinstance(exc.value, str) else exc.value.get("message", "")
    return (500 if exc.status >= 500 else 400), str(message)


def _token_counts(generations: Sequence[Generation]) -> tuple[int, int]:
    """(prompt tokens, generated tokens) of a request."""
    prompt = sum(len(g.tokens) - g.generated_tokens for g in generations)
    return prompt, sum(g.generated_tokens for g in generations)


def _usage(generations: Sequence[Generation]) -> dict[str, int]:
    prompt, completion = _token_counts(generations)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _generate_body(
    body: dict[str, Any], prompts: list[str], stops: Sequence[Any], profile: Profile
) -> dict[str, Any]:
    defaults = profile.defaults
    if profile.name != openai_profiles.DEFAULT_PROFILE:
        # The engines' request models read null as "the default" (pydantic Optional fields).
        body = {key: value for key, value in body.items() if value is not None}
    temperature = body.get("temperature", defaults["temperature"])
    generate: dict[str, Any] = {
        "sentences": prompts,
        "tokens_to_generate": body.get("max_tokens") or defaults["max_tokens"],
        "greedy": temperature == 0 or body.get("top_k") == 1,
        "top_p": body.get("top_p", defaults["top_p"]),
        "top_k": body.get("top_k", 0),
        "repetition_penalty": body.get("repetition_penalty", body.get("repeat_penalty", 1.0)),
        "min_tokens_to_generate": body.get("min_tokens", 0),
        "end_strings": [*stops, END_OF_TEXT],
    }
    if temperature != 0:
        generate["temperature"] = temperature
    if body.get("seed") is not None:
        generate["random_seed"] = body["seed"]
    if body.get("logprobs"):
        generate["compute_logprob"] = True
    return generate


def _choice(
    index: int,
    prompt: str,
    generation: Generation,
    params: GenerateParams,
    stops: Sequence[str],
) -> tuple[dict[str, Any], list[str]]:
    """The choice of one prompt, and its text in stream pieces (one per token)."""
    tail = generation.tokens[len(generation.tokens) - generation.generated_tokens :]
    generated = generated_text(prompt, generation)
    pieces = tail if "".join(tail) == generated else _WORD.findall(generated)
    stop = ending_end_string(generated, [s for s in stops if s in params.end_strings])
    text = generated.removesuffix(stop) if stop else generated
    if stop:
        reason = "stop"
    elif generation.generated_tokens >= params.tokens_to_generate:
        reason = "length"
    else:
        reason = "stop"  # end of sequence
    choice: dict[str, Any] = {
        "index": index,
        "text": text,
        "logprobs": None,
        "finish_reason": reason,
        "stop_reason": stop,
    }
    if params.wants_logprobs and generation.logprob is not None:
        count = generation.generated_tokens
        choice["logprobs"] = {
            "tokens": tail,
            "token_logprobs": generation.logprob[-count:] if count else [],
        }
    return choice, _first_chars(pieces, len(text))


def _first_chars(pieces: list[str], length: int) -> list[str]:
    kept, size = [], 0
    for piece in pieces:
        if size >= length:
            break
        kept.append(piece[: length - size])
        size += len(kept[-1])
    return [piece for piece in kept if piece]


class _Events:
    """The server-sent events of one streamed completion, written as they come.

    The response head goes out with the first event, so a request refused before any
    text (a bad body, an over-long prompt) is still answered with an HTTP error status.
    Text from the engine is sent at once, except an end that could still turn into one of
    ``stops``. Events are written by the generating thread, under the generation lock: a
    client that stops reading holds the engine up to the socket timeout, then counts as gone.
    """

    def __init__(
        self,
        exchange: Exchange,
        head: dict[str, Any],
        stops: Sequence[Any],
        interval: float = 0.0,
    ) -> None:
        self.exchange = exchange
        self.interval = interval  # seconds to wait after each event
        self.head = head
        self.stops = [stop for stop in stops if isinstance(stop, str) and stop]
        self.generated = ""  # the text the engine has produced
        self.sent = ""  # the part of it sent
        self.started = False  # the response head has gone out
        self.gone = False  # the client left mid-stream

    def on_token(self, index: int, text: str) -> None:
        """Receive text from the engine (one prompt: ``index`` is 0); send what is settled."""
        self.generated += text
        settled = max(len(self.generated) - self._partial_stop(), len(self.sent))
        self.text(self.generated[len(self.sent) : settled])

    def _partial_stop(self) -> int:
        """Length of the longest end of the text that is the start of a stop string."""
        text = self.generated
        return max(
            (k for stop in self.stops for k in range(len(stop), 0, -1) if text.endswith(stop[:k])),
            default=0,
        )

    def cancelled(self) -> bool:
        """Whether the client has gone (the engine stops generating)."""
        return self.gone or self.exchange.client_gone()

    def text(self, piece: str) -> None:
        """Send a piece of the answer."""
        if piece:
            self.sent += piece
            choice = {"index": 0, "text": piece, "logprobs": None, "finish_reason": None}
            self.send(json.dumps({**self.head, "choices": [choice]}))

    def send(self, data: str) -> None:
        """Send one event and flush it; a client that left is noted, not raised."""
        if self.gone:
            return
        exchange = self.exchange
        try:
            if not self.started:
                self.started = True
                exchange.start_chunks("text/event-stream")
            if exchange.client_gone():
                self.gone = True
                return
            exchange.send_chunk(f"data: {data}\n\n".encode())
            time.sleep(self.interval)
        except (ConnectionError, TimeoutError):
            self.gone = True

    def end(self) -> None:
        """Send ``[DONE]`` and end the chunked body."""
        self.send("[DONE]")
        if not self.gone:
            try:
                self.exchange.end_chunks()
            except (ConnectionError, TimeoutError):
                self.gone = True


def _stream(
    server: Service,
    exchange: Exchange,
    request: dict[str, Any],
    prompt: str,
    stops: Sequence[Any],
    head: dict[str, Any],
    include_usage: bool,
    profile: Profile,
) -> None:
    """Generate one prompt, sending its text as server-sent events while it is generated."""
    events = _Events(exchange, head, stops, server.stream_interval)
    try:
        params, generations = server.run(
            request, cancelled=events.cancelled, on_token=events.on_token
        )
    except GenerationRefused as exc:
        if not events.started:
            _refused(exchange, exc, profile.error)
            return
        status, message = _refusal(exc)  # mid-stream: an error event, as vLLM sends
        kind = "InternalServerError" if status == 500 else "BadRequestError"
        error = {"message": message, "type": kind, "param": None, "code": status}
        events.send(json.dumps({"error": error}))
        events.end()
        if events.gone:
            exchange.close_after()
        return
    if events.cancelled():  # counted as abandoned by server.run
        exchange.close_after()
        return
    final, pieces = _choice(0, prompt, generations[0], params, stops)
    text = final["text"]
    if not events.sent:
        rest = pieces  # nothing streamed (an engine that does not stream): one per token
    elif text.startswith(events.sent):
        rest = [text[len(events.sent) :]]
    else:  # an engine whose pieces do not add up to its answer: nothing to take back
        log.warning("the streamed text is not a prefix of the answer; the stream ends here")
        rest = []
    for piece in rest:
        events.text(piece)
    closing = {"index": 0, "text": "", "logprobs": None}
    closing |= {"finish_reason": final["finish_reason"], "stop_reason": final["stop_reason"]}
    closing |= profile.choice_extras
    events.send(json.dumps({**head, "choices": [closing]}))
    if include_usage:
        usage = {**_usage(generations), **profile.usage_extras}
        events.send(json.dumps({**head, "choices": [], "usage": usage}))
    events.end()
    if events.gone:
        server.abandoned += 1  # the client left mid-stream
        exchange.close_after()


def _authorized(server: Service, exchange: Exchange) -> bool:
    key = server.api_key
    if key is None or exchange.headers.get("Authorization") == f"Bearer {key}":
        return True
    _error(exchange, 401, "Invalid or missing API key.", "AuthenticationError")
    return False


def _error(exchange: Exchange, status: int, message: str, kind: str | None = None) -> None:
    exchange.send_json(status, _error_object(status, message, kind))
