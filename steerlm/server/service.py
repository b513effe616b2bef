"""What every route shares: the server as routes see it, and the intake of a generation.

Routes are functions of a :class:`Service` (the server's state and its one generation
entry point, :meth:`Service.run`) and an :class:`~steerlm.server.exchange.Exchange`.
:func:`receive` is the one intake of both generation APIs: it reads and records the body,
refuses one that is not a JSON object in the API's own words, and serves a queued
:class:`Fault` in place of the generation.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from steerlm.server.engine import Cancelled, Engine, Generation, RatedAnswer, TokenSink
from steerlm.server.exchange import Exchange
from steerlm.server.protocol import GenerateParams


@dataclass(frozen=True)
class Fault:
    """A canned answer served instead of the next generation.

    Args:
        status: HTTP status.
        body: Raw body text.
        delay: Seconds to wait before answering.
        content_type: Content-Type header.
    """

    status: int = 200
    body: str = ""
    delay: float = 0.0
    content_type: str = "application/json"


class RecentRequests(list[dict[str, Any]]):
    """A list of the last ``maxlen`` request bodies: appending drops the oldest.

    A list rather than a deque so that tests can compare it with ``[]`` and index it.
    """

    def __init__(self, maxlen: int) -> None:
        super().__init__()
        self.maxlen = maxlen

    def append(self, body: dict[str, Any]) -> None:
        """Record ``body``, forgetting the oldest beyond ``maxlen``."""
        if self.maxlen <= 0:
            return
        super().append(body)
        if len(self) > self.maxlen:
            del self[: len(self) - self.maxlen]


class GenerationRefused(Exception):
    """A request NeMo answers with an error: its HTTP status and JSON value."""

    def __init__(self, status: int, value: Any) -> None:
        super().__init__(status, value)
        self.status = status
        self.value = value


class Service(Protocol):
    """The server as routes see it (:class:`~steerlm.server.app.NeMoServer` is one).

    Attributes:
        engine: The model.
        nemo_version: The NeMo release imitated.
        faults: Canned answers served instead of the next generations.
        received: Recent request bodies.
        received_headers: Headers (lower-case names) of recent ``/v1`` requests.
        api_key: Bearer token ``/v1`` requests must carry; None: no check.
        stream_interval: Seconds between the events of a ``/v1`` stream.
        abandoned: Generations stopped because their client hung up.
        openai_profile: The engine the ``/v1`` routes imitate (see
            :mod:`steerlm.server.openai_profiles`).
        reward_model: The attribute model's name on the ``/v2`` and NIM routes.
        reward_attributes: The names of its outputs, in order (the width of a row).
        reward_requests: Recent request bodies of those routes, raw:
            ``{"path": str, "body": bytes}``.
    """

    engine: Engine
    nemo_version: str
    faults: deque[Fault]
    received: RecentRequests
    received_headers: RecentRequests
    api_key: str | None
    stream_interval: float
    abandoned: int
    openai_profile: str
    reward_model: str
    reward_attributes: tuple[str, ...]
    reward_requests: RecentRequests

    @property
    def served_models(self) -> list[str]:
        """The names ``GET /v1/models`` lists (the first is the default)."""
        ...

    @property
    def generating(self) -> bool:
        """Whether a generation runs right now (one runs at a time)."""
        ...

    def score(self, answers: Sequence[RatedAnswer], attributes: Sequence[str]) -> list[list[float]]:
        """Scores of ``answers`` by the server's scorer, under the generation lock."""
        ...

    def run(
        self,
        body: dict[str, Any],
        *,
        cancelled: Cancelled | None = None,
        on_token: TokenSink | None = None,
    ) -> tuple[GenerateParams, list[Generation]]:
        """Validate a ``/generate`` body and generate it (see ``Engine.generate``).

        Raises:
            GenerationRefused: NeMo's answer to a bad request or a failed generation.
        """
        ...


@dataclass(frozen=True)
class BadBody:
    """How an API answers a body it cannot use: (HTTP status, JSON value) per case."""

    not_json: tuple[int, Any]
    not_an_object: tuple[int, Any]


def receive(
    server: Service,
    exchange: Exchange,
    bad_body: BadBody,
    authorized: Callable[[], bool] | None = None,
) -> dict[str, Any] | None:
    """The JSON object of a generation request, recorded; None when it was answered here.

    Answered here, the same way for every API: a body that does not arrive whole (see
    :meth:`Exchange.read_body`), one that is not a JSON object (``bad_body``), a request
    ``authorized`` refuses (it answers itself), and a queued :class:`Fault`, served in
    place of the generation after the body was recorded.
    """
    raw = exchange.read_body()
    if raw is None:
        return None
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: JSON nested too deep
        exchange.send_json(*bad_body.not_json)
        return None
    if not isinstance(body, dict):
        exchange.send_json(*bad_body.not_an_object)
        return None
    server.received.append(body)
    if authorized is not None and not authorized():
        return None
    if answered_by_fault(server, exchange):
        return None
    return body


def answered_by_fault(server: Service, exchange: Exchange) -> bool:
    """Answer ``exchange`` with the next queued :class:`Fault`, if there is one."""
    if not server.faults:
        return False
    fault = server.faults.popleft()
    time.sleep(fault.delay)
    exchange.send_raw(fault.status, fault.body.encode(), fault.content_type)
    return True
