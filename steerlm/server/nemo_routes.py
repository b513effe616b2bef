"""NeMo's route, ``PUT /generate``, and the dev server's ``GET /health``.

``/generate`` answers as NeMo's ``megatron_gpt_eval.py server=True`` does: same keys,
same validation messages (HTTP 200 with a JSON string), Flask's answers to a body it
cannot read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from steerlm.server.engine import Generation
from steerlm.server.exchange import Exchange
from steerlm.server.protocol import GenerateParams
from steerlm.server.service import BadBody, GenerationRefused, Service, receive

# Flask's answers: undecodable JSON is its 400; a body that is not an object fails inside
# NeMo's handler (a 500).
_BAD_BODY = BadBody(
    not_json=(
        400,
        {"message": "The browser (or proxy) sent a request that this server could not understand."},
    ),
    not_an_object=(500, {"message": "Internal Server Error"}),
)


def generate(server: Service, exchange: Exchange) -> None:
    """``PUT /generate``: NeMo's text generation."""
    body = receive(server, exchange, _BAD_BODY)
    if body is None:
        return
    try:
        params, generations = server.run(body, cancelled=exchange.client_gone)
    except GenerationRefused as exc:
        status, value = exc.status, exc.value
    else:
        status, value = 200, nemo_answer(params, generations)
    if exchange.client_gone():
        exchange.close_after()  # nobody to answer
    else:
        exchange.send_json(status, value)


def nemo_answer(params: GenerateParams, generations: Sequence[Generation]) -> dict[str, Any]:
    """NeMo's JSON answer to a request that generated ``generations``."""
    answer: dict[str, Any] = {
        "sentences": [g.sentence for g in generations],
        "tokens": [g.tokens for g in generations],
        "logprob": [g.logprob for g in generations] if params.wants_logprobs else None,
        "token_ids": [g.token_ids for g in generations],
        "offsets": [g.offsets for g in generations],
    }
    if params.all_probs:
        answer["full_logprob"] = answer["logprob"]
    return answer


def health(server: Service, exchange: Exchange) -> None:
    """``GET /health``: the engine, the NeMo release imitated, the context window."""
    exchange.send_json(
        200,
        {
            "status": "ok",
            "engine": server.engine.name,
            "nemo_version": server.nemo_version,
            # Tokens of prompt and answer one sequence holds (vLLM's max_model_len).
            "context_window": server.engine.context_window,
            # Whether a generation holds the lock right now (one runs at a time).
            "generating": server.generating,
        },
    )
