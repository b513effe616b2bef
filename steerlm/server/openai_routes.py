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
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Sequence
from typing import Any

from steerlm.server.engine import Generation, ending_end_string, generated_text
from steerlm.server.exchange import Exchange
from steerlm.server.protocol import END_OF_TEXT, GenerateParams
from steerlm.server.service import BadBody, GenerationRefused, Service, receive

log = logging.getLogger("steerlm.server")

_WORD = re.compile(r"\s*\S+|\s+")
# OpenAI's default for the completions API.
_DEFAULT_MAX_TOKENS = 16


def models(server: Service, exchange: Exchange) -> None:
    """``GET /v1/models``: the served model names, with vLLM's ``max_model_len``."""
    if not _authorized(server, exchange):
        return
    created = int(time.time())
    exchange.send_json(
        200,
        {
            "object": "list",
            "data": [
                {
                    "id": name,
                    "object": "model",
                    "created": created,
                    "owned_by": "steerlm",
                    "max_model_len": server.engine.context_window,
                }
                for name in server.served_models
            ],
        },
    )


def _error_object(status: int, message: str, kind: str | None = None) -> dict[str, Any]:
    error = {"message": message, "type": kind or "BadRequestError", "param": None, "code": status}
    return {"error": error}


_BAD_BODY = BadBody(
    not_json=(400, _error_object(400, "The request body is not valid JSON.")),
    not_an_object=(400, _error_object(400, "The request body must be a JSON object.")),
)


def completions(server: Service, exchange: Exchange) -> None:
    """``POST /v1/completions``, streamed or not."""
    server.received_headers.append({k.lower(): v for k, v in exchange.headers.items()})
    body = receive(server, exchange, _BAD_BODY, lambda: _authorized(server, exchange))
    if body is None:
        return
    model = body.get("model") or server.served_models[0]
    if model not in server.served_models:
        _error(exchange, 404, f"The model `{model}` does not exist.", "NotFoundError")
        return
    prompts = body.get("prompt")
    if isinstance(prompts, str):
        prompts = [prompts]
    if not (isinstance(prompts, list) and prompts and all(isinstance(p, str) for p in prompts)):
        _error(exchange, 400, "prompt must be a string or a non-empty list of strings.")
        return
    stream = body.get("stream") is True
    if stream and len(prompts) > 1:
        _error(exchange, 400, "Streaming takes one prompt.")
        return
    stops = body.get("stop") or []
    stops = [stops] if isinstance(stops, str) else stops
    if not (isinstance(stops, list) and all(isinstance(s, str) for s in stops)):
        _error(exchange, 400, "stop must be a string or a list of strings.")
        return
    request = _generate_body(body, prompts, stops)
    head = {
        "id": f"cmpl-{int(time.time() * 1000)}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
    }
    if stream:
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        _stream(server, exchange, request, prompts[0], stops, head, include_usage)
        return
    try:
        params, generations = server.run(request, cancelled=exchange.client_gone)
    except GenerationRefused as exc:
        _refused(exchange, exc)
        return
    if exchange.client_gone():
        exchange.close_after()
        return
    choices = [
        _choice(index, prompt, generation, params, stops)[0]
        for index, (prompt, generation) in enumerate(zip(prompts, generations, strict=True))
    ]
    exchange.send_json(200, {**head, "choices": choices, "usage": _usage(generations)})


def _refused(exchange: Exchange, exc: GenerationRefused) -> None:
    """Answer a refused generation with an error object (before any event was sent)."""
    status, message = _refusal(exc)
    _error(exchange, status, message, "InternalServerError" if status == 500 else None)


def _refusal(exc: GenerationRefused) -> tuple[int, str]:
    message = exc.value if isinstance(exc.value, str) else exc.value.get("message", "")
    return (500 if exc.status >= 500 else 400), str(message)


def _usage(generations: Sequence[Generation]) -> dict[str, int]:
    prompt = sum(len(g.tokens) - g.generated_tokens for g in generations)
    completion = sum(g.generated_tokens for g in generations)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _generate_body(
    body: dict[str, Any], prompts: list[str], stops: Sequence[Any]
) -> dict[str, Any]:
    temperature = body.get("temperature", 1.0)
    generate: dict[str, Any] = {
        "sentences": prompts,
        "tokens_to_generate": body.get("max_tokens") or _DEFAULT_MAX_TOKENS,
        "greedy": temperature == 0,
        "top_p": body.get("top_p", 1.0),
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
) -> None:
    """Generate one prompt, sending its text as server-sent events while it is generated."""
    events = _Events(exchange, head, stops, server.stream_interval)
    try:
        params, generations = server.run(
            request, cancelled=events.cancelled, on_token=events.on_token
        )
    except GenerationRefused as exc:
        if not events.started:
            _refused(exchange, exc)
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
    events.send(json.dumps({**head, "choices": [closing]}))
    if include_usage:
        events.send(json.dumps({**head, "choices": [], "usage": _usage(generations)}))
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
