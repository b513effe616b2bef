"""The route table: every (method, path) the dev server answers, and the function that does.

The server dispatches from :data:`ROUTES` alone, and its start line and ``--help`` list
them from it (:func:`route_list`), so a new route is one entry here. A ``{model}``
segment in a path matches any one path segment (the reward model's name, which the route
checks). A path the table does not have is a 404 naming the routes of that method; a path
it has under another method is a 405, as Flask (NeMo's server) answers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from steerlm.server import nemo_routes, openai_profiles, openai_routes, reward_routes
from steerlm.server.exchange import Exchange
from steerlm.server.service import Service

#: Answers one request: reads what it needs from the exchange and answers through it.
Answer = Callable[[Service, Exchange], None]


@dataclass(frozen=True)
class Route:
    """One route: method, path, the function that answers, and what it is for."""

    method: str
    path: str
    answer: Answer
    summary: str

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


ROUTES: tuple[Route, ...] = (
    Route("PUT", "/generate", nemo_routes.generate, "NeMo's text generation"),
    Route("GET", "/health", nemo_routes.health, "ready, engine, NeMo release, context window"),
    Route("GET", "/v1/models", openai_routes.models, "served models, as vLLM lists them"),
    Route(
        "POST",
        "/v1/completions",
        openai_routes.completions,
        "OpenAI-style completions, streamed or not",
    ),
    Route(
        "POST",
        "/v1/chat/completions",
        reward_routes.chat_completions,
        "the reward model's scores, as NIM's Nemotron-4-340B-Reward answers",
    ),
    Route("GET", "/v2/health/ready", reward_routes.health_ready, "Triton's readiness (KServe v2)"),
    Route("GET", "/v2/health/live", reward_routes.health_ready, "Triton's liveness (KServe v2)"),
    Route(
        "GET",
        "/v2/models/{model}/ready",
        reward_routes.model_ready,
        "the reward model's readiness, as PyTriton answers",
    ),
    Route(
        "GET",
        "/v2/models/{model}",
        reward_routes.model_metadata,
        "the reward model's metadata, as NeMo-Aligner's PyTriton server reports it",
    ),
    Route(
        "POST",
        "/v2/models/{model}/infer",
        reward_routes.infer,
        "attribute scores of sentences, as NeMo-Aligner's reward server answers",
    ),
)

#: The HTTP methods of the table (the server answers these; others are a 501).
METHODS = tuple(dict.fromkeys(route.method for route in ROUTES))

_BY_KEY = {(route.method, route.path): route for route in ROUTES}
# Paths with a ``{model}`` segment (the served reward model's name) match any one segment.
_PATTERNS = [
    (route, re.compile(re.escape(route.path).replace(r"\{model\}", "[^/?]+")))
    for route in ROUTES
    if "{model}" in route.path
]


def _find(method: str, path: str) -> Route | None:
    """The route of ``method`` and ``path``: an exact path first, then a ``{model}`` one."""
    route = _BY_KEY.get((method, path))
    if route is None:
        route = next((r for r, p in _PATTERNS if r.method == method and p.fullmatch(path)), None)
    return route


def _known_path(path: str) -> bool:
    """Whether some route, of any method, has ``path``."""
    return any(known == path for _, known in _BY_KEY) or any(
        p.fullmatch(path) for _, p in _PATTERNS
    )


def route_list() -> str:
    """The routes as one line: ``PUT /generate, GET /health, ...``."""
    return ", ".join(str(route) for route in ROUTES)


def dispatch(server: Service, exchange: Exchange) -> None:
    """Answer ``exchange`` with its route, or with a 404 or 405.

    The server's OpenAI profile first maps the ``/v1`` paths of the engine it imitates onto
    the table (e.g. ``/v1/completions/``), or answers itself: a trailing-slash redirect, or
    its 404 (see :func:`steerlm.server.openai_profiles.route_path`).
    """
    path = openai_profiles.route_path(server, exchange)
    if path is None:
        return
    route = _find(exchange.method, path)
    if route is not None:
        route.answer(server, exchange)
        return
    if _known_path(path):
        exchange.send_json(405, {"message": "The method is not allowed for the requested URL."})
        return
    same_method = ", ".join(str(r) for r in ROUTES if r.method == exchange.method)
    exchange.send_json(404, {"message": f"No route {exchange.path}; use {same_method}"})
