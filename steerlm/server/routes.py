"""The route table: every (method, path) the dev server answers, and the function that does.

The server dispatches from :data:`ROUTES` alone, and its start line and ``--help`` list
them from it (:func:`route_list`), so a new route is one entry here. A path the table
does not have is a 404 naming the routes of that method; a path it has under another
method is a 405, as Flask (NeMo's server) answers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from steerlm.server import nemo_routes, openai_routes
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
)

#: The HTTP methods of the table (the server answers these; others are a 501).
METHODS = tuple(dict.fromkeys(route.method for route in ROUTES))

_BY_KEY = {(route.method, route.path): route for route in ROUTES}


def route_list() -> str:
    """The routes as one line: ``PUT /generate, GET /health, ...``."""
    return ", ".join(str(route) for route in ROUTES)


def dispatch(server: Service, exchange: Exchange) -> None:
    """Answer ``exchange`` with its route, or with a 404 or 405."""
    route = _BY_KEY.get((exchange.method, exchange.path))
    if route is not None:
        route.answer(server, exchange)
        return
    if any(path == exchange.path for _, path in _BY_KEY):
        exchange.send_json(405, {"message": "The method is not allowed for the requested URL."})
        return
    same_method = ", ".join(str(r) for r in ROUTES if r.method == exchange.method)
    exchange.send_json(404, {"message": f"No route {exchange.path}; use {same_method}"})
