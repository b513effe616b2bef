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
- ``stream: true`` answers with server-sent events, one per generated token, then one with
  the finish reason, one with ``usage`` when ``stream_options.include_usage`` is set, and
  ``data: [DONE]``. The engine generates the whole answer in one call (as ``/generate``
  does), so the events leave together when it is done: the stream's wire format is
  exact, its timing is not (a real streaming server is tested in
  tests/integration_llama_server);
- errors are OpenAI error objects (``{"error": {"message", "type", "code"}}``): 400 for a
  bad request (NeMo's validation messages), 401 without the API key the server was given,
  404 for an unknown model, 500 for a failed generation.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from steerlm.server.app import GenerationRefused
from steerlm.server.engines import Generation, ending_end_string
from steerlm.server.protocol import END_OF_TEXT, GenerateParams

if TYPE_CHECKING:
    from steerlm.server.app import _Handler

_WORD = re.compile(r"\s*\S+|\s+")
# OpenAI's default for the completions API.
_DEFAULT_MAX_TOKENS = 16


def models(handler: _Handler) -> None:
    """``GET /v1/models``: the served model names."""
    if not _authorized(handler):
        return
    created = int(time.time())
    handler._send(
        200,
        {
            "object": "list",
            "data": [
                {"id": name, "object": "model", "created": created, "owned_by": "steerlm"}
                for name in handler.server.served_models
            ],
        },
    )


def completions(handler: _Handler) -> None:
    """``POST /v1/completions``, streamed or not."""
    raw = handler._read_body()
    if raw is None:
        return
    server = handler.server
    server.received_headers.append({k.lower(): v for k, v in handler.headers.items()})
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        _error(handler, 400, "The request body is not valid JSON.")
        return
    if not isinstance(body, dict):
        _error(handler, 400, "The request body must be a JSON object.")
        return
    server.received.append(body)
    if not _authorized(handler):
        return
    if server.faults:
        fault = server.faults.popleft()
        time.sleep(fault.delay)
        handler._send_raw(fault.status, fault.body.encode(), fault.content_type)
        return
    model = body.get("model") or server.served_models[0]
    if model not in server.served_models:
        _error(handler, 404, f"The model `{model}` does not exist.", "NotFoundError")
        return
    prompts = body.get("prompt")
    if isinstance(prompts, str):
        prompts = [prompts]
    if not (isinstance(prompts, list) and prompts and all(isinstance(p, str) for p in prompts)):
        _error(handler, 400, "prompt must be a string or a non-empty list of strings.")
        return
    stream = body.get("stream") is True
    if stream and len(prompts) > 1:
        _error(handler, 400, "Streaming takes one prompt.")
        return
    stops = body.get("stop") or []
    stops = [stops] if isinstance(stops, str) else stops
    try:
        params, generations = server.run(_generate_body(body, prompts, stops), handler._client_gone)
    except GenerationRefused as exc:
        message = exc.value if isinstance(exc.value, str) else exc.value.get("message", "")
        status = 500 if exc.status >= 500 else 400
        _error(handler, status, str(message), "InternalServerError" if status == 500 else None)
        return
    if handler._client_gone():
        handler.close_connection = True
        return
    choices = [
        _choice(index, prompt, generation, params, stops)
        for index, (prompt, generation) in enumerate(zip(prompts, generations, strict=True))
    ]
    head = {
        "id": f"cmpl-{int(time.time() * 1000)}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
    }
    usage = {
        "prompt_tokens": sum(len(g.tokens) - g.generated_tokens for g in generations),
        "completion_tokens": sum(g.generated_tokens for g in generations),
    }
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    if not stream:
        answer = {**head, "choices": [choice for choice, _ in choices], "usage": usage}
        handler._send(200, answer)
        return
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    _stream(handler, head, choices[0], usage if include_usage else None)


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
    if generation.sentence.startswith(prompt):
        generated = generation.sentence[len(prompt) :]
    else:
        generated = "".join(tail)
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


def _stream(
    handler: _Handler,
    head: dict[str, Any],
    choice: tuple[dict[str, Any], list[str]],
    usage: dict[str, int] | None,
) -> None:
    final, pieces = choice
    events = [
        {**head, "choices": [{"index": 0, "text": piece, "logprobs": None, "finish_reason": None}]}
        for piece in pieces
    ]
    events.append(
        {
            **head,
            "choices": [
                {
                    "index": 0,
                    "text": "",
                    "logprobs": None,
                    "finish_reason": final["finish_reason"],
                    "stop_reason": final["stop_reason"],
                }
            ],
        }
    )
    if usage is not None:
        events.append({**head, "choices": [], "usage": usage})
    try:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Cache-Control", "no-cache")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        for data in [*(json.dumps(event) for event in events), "[DONE]"]:
            if handler._client_gone():
                handler.server.abandoned += 1
                handler.close_connection = True
                return
            payload = f"data: {data}\n\n".encode()
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(payload), payload))
            handler.wfile.flush()
            time.sleep(handler.server.stream_interval)
        handler.wfile.write(b"0\r\n\r\n")
    except (ConnectionError, TimeoutError):
        handler.server.abandoned += 1  # the client left mid-stream
        handler.close_connection = True


def _authorized(handler: _Handler) -> bool:
    key = handler.server.api_key
    if key is None or handler.headers.get("Authorization") == f"Bearer {key}":
        return True
    _error(handler, 401, "Invalid or missing API key.", "AuthenticationError")
    return False


def _error(handler: _Handler, status: int, message: str, kind: str | None = None) -> None:
    handler._send(
        status,
        {
            "error": {
                "message": message,
                "type": kind or "BadRequestError",
                "param": None,
                "code": status,
            }
        },
    )
