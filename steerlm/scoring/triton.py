"""NeMo-Aligner's reward server on the wire: KServe v2 ``infer`` over HTTP (PyTriton).

Request: ``POST {base_url}/v2/models/{model}/infer`` with one ``sentences`` input of
shape ``[N, 1]``, BYTES, the N texts as JSON strings (``attribute_annotate.py#L39-L41``
sends ``[N, 1]``; ``[N]`` is a 400). Answer: the output named ``rewards``, FP32, its
``shape`` ``[N, W]`` and ``data`` row-major. The width W comes from that ``shape``, never
from the model's metadata, which declares ``rewards`` as ``[-1, 1]`` whatever the model
returns (``NVIDIA/NeMo-Aligner@v0.7.0:nemo_aligner/algorithms/reward_server.py#L55-L60``).
Errors are ``{"error": "..."}``, sometimes sent as ``text/plain``; an unknown model is a 404.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from steerlm.errors import SteerLMResponseError, SteerLMScoresError, SteerLMServerError
from steerlm.http import HttpResponse
from steerlm.response import load_json

#: NeMo-Aligner's reward server address (``inference_rm.yaml``: port 5555).
DEFAULT_TRITON_URL = "http://localhost:5555"
#: The model name NeMo-Aligner binds by default.
DEFAULT_REWARD_MODEL = "reward_model"


def infer_path(model: str) -> str:
    """The path of the model's infer route."""
    return f"/v2/models/{model}/infer"


def infer_body(texts: Sequence[str]) -> dict[str, Any]:
    """The KServe v2 request body scoring ``texts`` in one request."""
    return {
        "inputs": [
            {
                "name": "sentences",
                "shape": [len(texts), 1],
                "datatype": "BYTES",
                "data": list(texts),
            }
        ]
    }


def decode_error(url: str, response: HttpResponse, model: str) -> SteerLMServerError:
    """The error of a non-200 answer: the ``{"error": ...}`` text whatever the content type."""
    text = response.text
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    message = str(body["error"]) if isinstance(body, dict) and "error" in body else text
    hint = None
    if response.status == 404:
        hint = (
            f"The server serves no model {model!r} (or no KServe v2 route there): pass "
            "model= with the name the reward server binds (NeMo-Aligner's default is "
            "'reward_model'; GET /v2/models/<name>/ready checks one), and base_url= with "
            "the server's root, e.g. http://localhost:5555, without /v1 or /v2."
        )
    return SteerLMServerError(url, response.status, message, hint)


def decode_rewards(
    url: str, response: HttpResponse, model: str, rows: int, attributes: Sequence[str]
) -> list[list[float]]:
    """The ``rewards`` rows of an infer answer, one per text, each ``len(attributes)`` wide.

    Raises:
        SteerLMServerError: A status other than 200 (the server's error text, a hint on 404).
        SteerLMResponseError: A 200 that is not a JSON object.
        SteerLMScoresError: No ``rewards`` output, fewer or more rows than texts sent, data
            that does not fill the shape, or a row width other than ``len(attributes)``.
    """
    if response.status != 200:
        raise decode_error(url, response, model)
    text = response.text
    body = load_json(url, response.status, text)
    if not isinstance(body, dict):
        raise SteerLMResponseError(url, "the body is not a JSON object", text)
    outputs = body.get("outputs")
    found = [o for o in outputs if isinstance(o, dict)] if isinstance(outputs, list) else []
    rewards = next((o for o in found if o.get("name") == "rewards"), None)
    if rewards is None:
        names = [o.get("name") for o in found]
        raise SteerLMScoresError(
            url,
            f"its answer has no output named 'rewards' (outputs: {names})",
            text,
            "Is model= a SteerLM attribute model served by NeMo-Aligner's serve_reward_model.py?",
        )
    shape, data = rewards.get("shape"), rewards.get("data")
    if not (
        isinstance(shape, list)
        and 1 <= len(shape) <= 2
        and all(type(n) is int and n >= 0 for n in shape)
        and isinstance(data, list)
    ):
        raise SteerLMScoresError(
            url, "its 'rewards' output has no [rows, width] shape and data list", text, ""
        )
    flat = _flatten(data)
    width = shape[1] if len(shape) == 2 else 1
    if shape[0] != rows or len(flat) != rows * width:
        raise SteerLMScoresError(
            url,
            f"it returned 'rewards' of shape {shape} with {len(flat)} values for {rows} "
            "text(s) sent",
            text,
            "One row per conversation was expected.",
        )
    if width != len(attributes):
        raise SteerLMScoresError(
            url,
            f"the model returns {width} score(s) per conversation and attributes names "
            f"{len(attributes)} ({', '.join(attributes)})",
            text,
            f"Pass attributes= with the model's {width} output name(s), in its order "
            "(a model trained with a single merged reward returns 1).",
        )
    values = [_number(url, value, text) for value in flat]
    return [values[i * width : (i + 1) * width] for i in range(rows)]


def _flatten(data: list[Any]) -> list[Any]:
    # Triton's JSON answer is flat; KServe v2 also allows nested row lists.
    if any(isinstance(item, list) for item in data):
        return [value for item in data for value in (item if isinstance(item, list) else [item])]
    return data


def _number(url: str, value: Any, text: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    raise SteerLMScoresError(url, f"a score is {value!r}, not a finite number", text, "")
