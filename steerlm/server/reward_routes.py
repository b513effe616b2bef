"""The attribute model's routes: KServe v2 as NeMo-Aligner's PyTriton server answers, and
the chat route of a hosted reward model (Nemotron-4-340B-Reward on NIM).

**KServe v2** (``/v2/...``), imitating Triton 2.51.0 as bundled by PyTriton 0.7.0, with the
model bound as NeMo-Aligner's ``RewardModelServer`` binds it
(NVIDIA/NeMo-Aligner@v0.7.0:nemo_aligner/algorithms/reward_server.py#L55-L60, #L94-L120).
Every status, body and Content-Type below was measured on that server
(``tests/integration_triton``; docs/dev/engine-facts.md, section 3b):

- ``GET /v2/health/ready`` and ``/v2/health/live``: 200, empty, ``text/plain``;
- ``GET /v2/models/{model}/ready``: 200, empty; an unknown model is a 400
  ``{"error":"Model version not ready"}`` (``text/plain``);
- ``GET /v2/models/{model}``: the metadata, shapes with the batch dimension Triton
  prepends for ``max_batch_size > 0`` (``rewards`` declared ``[-1,1]`` whatever the real
  width); an unknown model is a 404;
- ``POST /v2/models/{model}/infer``: ``sentences`` BYTES ``[N, k]`` (column 0 of each row
  is scored) answered with ``rewards`` FP32 ``[N, W]``, row-major, one row per sentence in
  request order; a request ``id`` is echoed. Errors are ``{"error": "..."}`` with Triton's
  words and statuses (a wrong shape 400, an unknown model 404, undecodable JSON 500).

Where the dev server cannot do what Triton does it says so in a 400 of its own: binary
tensor data (tritonclient's default; send JSON ``data``), ``tokens``/``sequence_lengths``
without ``sentences`` (the dev server has no tokenizer contract for them), versioned paths.

**NIM** (``POST /v1/chat/completions`` with the reward model's name): the user and the
assistant message in, the scores as ``choices[0].logprobs.content`` entries (``token`` =
attribute, ``logprob`` = score) and as ``"name:score,..."`` in ``message.content``, for the
five HelpSteer2 attributes, as NVIDIA documents and its clients read them (see
:func:`chat_completions`). Errors are OpenAI error objects, like the dev server's ``/v1``.

Scores come from the server's scorer (``Service.score``): the scripted rule
(:mod:`steerlm.server.scripted_scorer`) or the stand-in on the real small model. Every
request body is recorded raw in ``Service.reward_requests`` for tests.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from math import prod
from typing import Any

from steerlm.server.engine import RatedAnswer
from steerlm.server.exchange import Exchange
from steerlm.server.scripted_scorer import HELPSTEER2_ATTRIBUTES, fp32, split_sentence
from steerlm.server.service import Service, answered_by_fault

#: The model name NeMo-Aligner serves by default
#: (NVIDIA/NeMo-Aligner@v0.7.0:examples/nlp/gpt/conf/inference_rm.yaml#L9-L16).
DEFAULT_REWARD_MODEL = "reward_model"

_MODELS = "/v2/models/"
# Triton prefixes errors raised while the core normalises a request with this id
# (measured: requests without an "id" say <id_unknown>).
_REQUEST_ID = "[request id: <id_unknown>] "
# The NOTE Triton appends to a shape error for a model with max_batch_size > 0 (measured).
_BATCH_NOTE = (
    "NOTE: Setting a non-zero max_batch_size in the model config requires a batch dimension "
    "to be prepended to each input shape. If you want to specify the full shape including "
    "the batch dim in your input dims config, try setting max_batch_size to zero. See the "
    "model configuration docs for more info on max_batch_size."
)
# NeMo-Aligner's inputs (reward_server.py#L55-L60): name -> KServe datatype.
_INPUTS = {"sentences": "BYTES", "tokens": "INT64", "sequence_lengths": "INT64"}
_JSON = "application/json"
_TEXT = "text/plain"


class _TritonError(Exception):
    """A request Triton refuses: status, message, and the Content-Type it answers with."""

    def __init__(self, status: int, message: str, content_type: str = _JSON) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.content_type = content_type


def _send_compact(exchange: Exchange, status: int, value: Any, content_type: str) -> None:
    # Triton writes compact JSON (rapidjson) with no trailing newline.
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    exchange.send_raw(status, text.encode(), content_type)


def _triton_error(exchange: Exchange, error: _TritonError) -> None:
    _send_compact(exchange, error.status, {"error": error.message}, error.content_type)


def model_path(path: str) -> tuple[str, str]:
    """``(model, rest)`` of a ``/v2/models/{model}{rest}`` path (query string dropped)."""
    tail = path.partition("?")[0][len(_MODELS) :]
    model, slash, rest = tail.partition("/")
    return model, slash + rest


def _served(server: Service, exchange: Exchange) -> str | None:
    model = model_path(exchange.path)[0]
    return model if model == server.reward_model else None


# -- health and metadata --------------------------------------------------------------------


def health_ready(server: Service, exchange: Exchange) -> None:
    """``GET /v2/health/ready`` (and ``/live``): 200 with an empty ``text/plain`` body."""
    exchange.send_raw(200, b"", _TEXT)


def model_ready(server: Service, exchange: Exchange) -> None:
    """``GET /v2/models/{model}/ready``: 200 empty, or Triton's 400 for an unknown model."""
    if _served(server, exchange) is None:
        _triton_error(exchange, _TritonError(400, "Model version not ready", _TEXT))
        return
    exchange.send_raw(200, b"", _TEXT)


def model_metadata(server: Service, exchange: Exchange) -> None:
    """``GET /v2/models/{model}``: Triton's metadata of NeMo-Aligner's binding."""
    model = model_path(exchange.path)[0]
    if _served(server, exchange) is None:
        message = f"Request for unknown model: '{model}' is not found"
        _triton_error(exchange, _TritonError(404, message))
        return
    # Triton prepends the batch dimension (-1) to the bound shapes: inputs (-1,) become
    # [-1,-1] and the output (1,) becomes [-1,1], whatever width the model really returns.
    metadata = {
        "name": model,
        "versions": ["1"],
        "platform": "python",
        "inputs": [
            {"name": name, "datatype": datatype, "shape": [-1, -1]}
            for name, datatype in _INPUTS.items()
        ],
        "outputs": [{"name": "rewards", "datatype": "FP32", "shape": [-1, 1]}],
    }
    _send_compact(exchange, 200, metadata, _JSON)


# -- inference -------------------------------------------------------------------------------


def infer(server: Service, exchange: Exchange) -> None:
    """``POST /v2/models/{model}/infer``: one row of ``rewards`` per sentence."""
    model = model_path(exchange.path)[0]
    if _served(server, exchange) is None:
        # Triton looks the model up before it reads the body (measured: text/plain here).
        message = f"Request for unknown model: '{model}' is not found"
        _triton_error(exchange, _TritonError(404, message, _TEXT))
        return
    raw = exchange.read_body()
    if raw is None:
        return
    server.reward_requests.append({"path": exchange.path, "body": raw})
    if answered_by_fault(server, exchange):
        return
    if exchange.headers.get("Inference-Header-Content-Length") is not None:
        message = (
            "The dev server takes tensor data as JSON only, not binary tensor data "
            "(tritonclient: set_data_from_numpy(..., binary_data=False))"
        )
        _triton_error(exchange, _TritonError(400, message))
        return
    try:
        request_id, sentences = _read_infer(raw, model)
    except _TritonError as error:
        _triton_error(exchange, error)
        return
    attributes = server.reward_attributes
    rows = server.score([split_sentence(text) for text in sentences], attributes)
    answer: dict[str, Any] = {} if request_id is None else {"id": request_id}
    answer |= {
        "model_name": model,
        "model_version": "1",
        "outputs": [
            {
                "name": "rewards",
                "datatype": "FP32",
                "shape": [len(rows), len(attributes)],
                # The infer function returns a float32 array: each score is an FP32 value.
                "data": [fp32(score) for row in rows for score in row],
            }
        ],
    }
    _send_compact(exchange, 200, answer, _JSON)


def _read_infer(raw: bytes, model: str) -> tuple[Any, list[str]]:
    """The request id and the sentences of an infer body; Triton's error otherwise.

    The checks and their words are Triton's (measured), in the order its HTTP front end
    and then its core apply them.
    """
    if not raw:
        # Triton reads a body-less request as raw binary input (measured).
        raise _TritonError(
            400,
            f"{_REQUEST_ID}Raw request must only have 1 input (found 1) to be deduced but "
            f"got {len(_INPUTS)} inputs in '{model}' model configuration",
        )
    try:
        body = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise _TritonError(
            500, f"failed to parse the request JSON buffer: {_rapidjson_words(exc)} at {exc.pos}"
        ) from None
    except (ValueError, RecursionError):
        raise _TritonError(500, "failed to parse the request JSON buffer: Invalid value.") from None
    inputs = body.get("inputs") if isinstance(body, dict) else None
    if inputs is None:
        raise _TritonError(500, _missing("inputs"))
    if not isinstance(inputs, list):
        raise _TritonError(500, _not_array("inputs"))
    if not inputs:
        raise _TritonError(400, f"{_REQUEST_ID}out of bounds index 0: request has 0 inputs", _TEXT)
    for output in body.get("outputs") or []:
        name = output.get("name") if isinstance(output, dict) else None
        if name != "rewards":
            raise _TritonError(400, f"unexpected inference output '{name}' for model '{model}'")
    tensors: dict[str, tuple[list[int], list[Any]]] = {}
    for tensor in inputs:
        name, shape, data = _read_tensor(tensor, model, tensors)
        tensors[name] = (shape, data)
    if "sentences" not in tensors:
        raise _TritonError(
            400,
            "The dev server scores `sentences` only: it has no tokenizer for `tokens` and "
            "`sequence_lengths`. Send the text as a BYTES input named `sentences`.",
        )
    shape, data = tensors["sentences"]
    width = shape[1] if shape[0] else 1
    # Column 0 of each row: what the PyTriton stand-in of the integration tier scores.
    sentences = [str(data[row * width]) for row in range(shape[0])]
    request_id = body.get("id")
    return request_id, sentences


def _read_tensor(tensor: Any, model: str, seen: dict[str, Any]) -> tuple[str, list[int], list[Any]]:
    if not isinstance(tensor, dict):
        raise _TritonError(500, _missing("name"))
    for key in ("name", "shape", "datatype"):
        if key not in tensor:
            raise _TritonError(500, _missing(key))
    name, shape, datatype = tensor["name"], tensor["shape"], tensor["datatype"]
    if name not in _INPUTS:
        raise _TritonError(400, f"unexpected inference input '{name}' for model '{model}'")
    if name in seen:
        raise _TritonError(400, f"{_REQUEST_ID}input '{name}' already exists in request")
    if "data" not in tensor:
        raise _TritonError(
            400,
            "Input must set only one of the following fields: 'data', 'binary_data_size' in "
            "'parameters', 'shared_memory_region' in 'parameters'. But no field is set",
        )
    if not (isinstance(shape, list) and all(type(d) is int and d >= 0 for d in shape)):
        raise _TritonError(500, _not_array("shape"))
    expected = _INPUTS[name]
    if datatype != expected:
        raise _TritonError(
            400,
            f"{_REQUEST_ID}inference input '{name}' data-type is '{datatype}', but model "
            f"'{model}' expects '{expected}'",
        )
    data = list(_flatten(tensor["data"]))
    if expected == "BYTES" and not all(isinstance(item, str) for item in data):
        raise _TritonError(
            500, "Unable to parse JSON bytes array: attempt to access JSON non-string as string"
        )
    count = prod(shape) or 1  # measured: shape [0,1] with no data "expected 1"
    if len(data) != count:
        raise _TritonError(
            400,
            f"{_REQUEST_ID}expected {count} string elements for inference input '{name}' "
            f"for model '{model}', got {len(data)}",
        )
    if len(shape) != 2:
        shown = ",".join(str(d) for d in shape)
        raise _TritonError(
            400,
            f"{_REQUEST_ID}unexpected shape for input '{name}' for model '{model}'. "
            f"Expected [-1,-1], got [{shown}]. {_BATCH_NOTE}",
        )
    return name, shape, data


def _flatten(data: Any) -> Any:
    # Triton accepts nested or flat JSON arrays for a tensor's data (measured: [["x"]]).
    if isinstance(data, list):
        for item in data:
            yield from _flatten(item)
    else:
        yield data


def _missing(member: str) -> str:
    return f"Unable to parse '{member}': attempt to access non-existing object member '{member}'"


def _not_array(member: str) -> str:
    return f"Unable to parse '{member}': attempt to access JSON non-array as array"


def _rapidjson_words(exc: json.JSONDecodeError) -> str:
    """rapidjson's words for the parse errors Python's decoder reports (approximate)."""
    if exc.msg.startswith("Unterminated string"):
        return "Missing a closing quotation mark in string."
    if exc.msg.startswith("Expecting ',' delimiter") or exc.msg.startswith("Expecting property"):
        return "Missing a comma or '}' after an object member."
    if exc.msg.startswith("Extra data"):
        return "The document root must not be followed by other values."
    return "Invalid value."


# -- NIM ------------------------------------------------------------------------------------


def _openai_error(exchange: Exchange, status: int, message: str, kind: str) -> None:
    error = {"message": message, "type": kind, "param": None, "code": status}
    exchange.send_json(status, {"error": error})


def chat_completions(server: Service, exchange: Exchange) -> None:
    """``POST /v1/chat/completions`` addressed to the reward model, as NIM answers it.

    The request is NVIDIA's (https://docs.nvidia.com/nim/large-language-models/1.2.0/
    reward-model.html): ``model`` and ``messages``, a user message then the assistant
    answer to score. The answer imitates Nemotron-4-340B-Reward's as recorded in
    camel-ai/camel@1651d6be:examples/models/nemotron_model_example.py#L33-L47: one choice,
    ``finish_reason`` ``"length"``, ``logprobs.content`` one entry per attribute
    (``token``, ``bytes: null``, ``logprob`` = score, ``top_logprobs: []``),
    ``message.content`` ``"helpfulness:1.6171875,correctness:..."`` (NVIDIA's docs split it
    on ``,`` and ``:``), no ``created``/``model``/``object``, and ``usage`` with one
    completion token. NVIDIA's own client reads ``choices[0].logprobs.content``
    (NVIDIA/NeMo-Curator@72b8b356:nemo_curator/services/openai_client.py,
    ``query_reward_model``). ``prompt_tokens`` counts the messages' words here.
    """
    key = server.api_key
    if key is not None and exchange.headers.get("Authorization") != f"Bearer {key}":
        _openai_error(exchange, 401, "Invalid or missing API key.", "AuthenticationError")
        return
    raw = exchange.read_body()
    if raw is None:
        return
    server.reward_requests.append({"path": exchange.path, "body": raw})
    if answered_by_fault(server, exchange):
        return
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        _openai_error(exchange, 400, "The request body is not valid JSON.", "BadRequestError")
        return
    if not isinstance(body, dict):
        _openai_error(exchange, 400, "The request body must be a JSON object.", "BadRequestError")
        return
    model = body.get("model")
    if model != server.reward_model:
        message = (
            f"The model `{model}` does not exist. This dev server's chat route serves the "
            f"reward model `{server.reward_model}` only."
        )
        _openai_error(exchange, 404, message, "NotFoundError")
        return
    messages = body.get("messages")
    rated = _rated_answer(messages)
    if rated is None:
        message = (
            "messages must be a list of {role, content} objects with string content, ending "
            "with the assistant message to score (a user message, then the assistant's)."
        )
        _openai_error(exchange, 400, message, "BadRequestError")
        return
    assert isinstance(messages, list)
    attributes = HELPSTEER2_ATTRIBUTES
    scores = server.score([rated], attributes)[0]
    prompt_tokens = sum(len(str(m["content"]).split()) for m in messages)
    entries: list[dict[str, Any]] = [
        {"token": name, "bytes": None, "logprob": score, "top_logprobs": []}
        for name, score in zip(attributes, scores, strict=True)
    ]
    content = ",".join(f"{name}:{score!r}" for name, score in zip(attributes, scores, strict=True))
    exchange.send_json(
        200,
        {
            "id": str(uuid.uuid4()),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "logprobs": {"content": entries},
                    "finish_reason": "length",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": 1,
                "total_tokens": prompt_tokens + 1,
            },
        },
    )


def _rated_answer(messages: Any) -> RatedAnswer | None:
    """The last assistant message and the last user message before it; None if invalid."""
    if not (isinstance(messages, list) and messages):
        return None
    if not all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
        for m in messages
    ):
        return None
    if messages[-1]["role"] != "assistant":
        return None
    users: Sequence[dict[str, Any]] = [m for m in messages[:-1] if m["role"] == "user"]
    question = users[-1]["content"] if users else ""
    return RatedAnswer(question=question, answer=messages[-1]["content"])
