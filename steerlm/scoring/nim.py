"""A hosted reward model on NIM (Nemotron-4-340B-Reward style) on the wire.

``POST {base_url}/chat/completions`` with the conversation as chat messages, one
conversation per request; the scores come back as ``choices[0].logprobs.content``, a list
of ``{"token": <attribute name>, "logprob": <score>}`` in the model's attribute order.
That is how NVIDIA's own client reads them, and what it says when they are missing
(``NVIDIA/NeMo-Curator@72b8b356:nemo_curator/services/openai_client.py``,
``OpenAIClient.query_reward_model``); see docs/dev/engine-facts.md, section 6b.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from steerlm.errors import SteerLMScoresError, SteerLMServerError
from steerlm.http import HttpResponse
from steerlm.transports.openai import DEFAULT_OPENAI_BASE_URL, decode_openai_body

#: A NIM's address (its API root).
DEFAULT_NIM_URL = DEFAULT_OPENAI_BASE_URL
#: The route, under the API root.
CHAT_PATH = "/chat/completions"


def chat_body(model: str, messages: Sequence[dict[str, str]]) -> dict[str, Any]:
    """The request body scoring one conversation."""
    return {"model": model, "messages": list(messages), "stream": False}


def decode_scores(
    url: str, response: HttpResponse, model: str, attributes: Sequence[str] | None
) -> list[tuple[str, float]]:
    """The ``(attribute, score)`` pairs of one answer, in the model's order.

    Raises:
        SteerLMServerError: A status other than 200, or an OpenAI-style error object
            (404: a hint on ``base_url`` and ``model``).
        SteerLMScoresError: No ``logprobs`` (likely not a reward model), an entry without
            a name and a finite score, or names other than ``attributes``.
    """
    try:
        body = decode_openai_body(url, response)
    except SteerLMServerError as error:
        if error.status != 404 or type(error) is not SteerLMServerError:
            raise
        raise SteerLMServerError(
            url,
            404,
            error.body,
            f"No route or no model {model!r} there: base_url= is the API root (e.g. "
            "http://localhost:8000/v1) and model= the reward model's name (e.g. "
            "'nvidia/nemotron-4-340b-reward').",
        ) from None
    text = json.dumps(body)
    choices = body.get("choices")
    first = choices[0] if isinstance(choices, list) and choices else None
    logprobs = first.get("logprobs") if isinstance(first, dict) else None
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    if not isinstance(content, list) or not content:
        raise SteerLMScoresError(
            url,
            "its answer has no choices[0].logprobs.content, where a reward model puts its scores",
            text,
            f"{model!r} is likely not a reward model: pass model= with one (e.g. "
            "'nvidia/nemotron-4-340b-reward').",
        )
    pairs = []
    for entry in content:
        token = entry.get("token") if isinstance(entry, dict) else None
        score = entry.get("logprob") if isinstance(entry, dict) else None
        if not (
            isinstance(token, str)
            and isinstance(score, int | float)
            and not isinstance(score, bool)
            and math.isfinite(score)
        ):
            raise SteerLMScoresError(
                url, f"a logprobs entry is {entry!r}, not a name and a finite score", text, ""
            )
        pairs.append((token, float(score)))
    if attributes is not None:
        names = [name for name, _ in pairs]
        if sorted(names) != sorted(attributes):
            raise SteerLMScoresError(
                url,
                f"it scores {len(names)} attribute(s) ({', '.join(names)}) and attributes "
                f"names {len(attributes)} ({', '.join(attributes)})",
                text,
                "Pass attributes= with the model's names, or None to take them from the answer.",
            )
        found = dict(pairs)
        pairs = [(name, found[name]) for name in attributes]
    return pairs
