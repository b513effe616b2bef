"""``SteerLMScorer``: the client of a SteerLM attribute model (a regression reward model).

It scores conversations that end with an assistant answer and returns one
:class:`~steerlm.scoring.scores.AttributeScores` per conversation. Two server APIs:

- ``api="triton"``: NeMo-Aligner's reward server (PyTriton, KServe v2), every
  conversation of a call in ONE request (:mod:`steerlm.scoring.triton`);
- ``api="nim"``: a hosted reward model's ``/chat/completions``, one conversation per
  request, sent concurrently (:mod:`steerlm.scoring.nim`).

HTTP (retries, the deadline, the size cap, no redirects, credentials) is
:class:`steerlm.http.HttpSession`'s, as for the chat models.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import quote

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)

from steerlm.errors import SteerLMConnectionError, SteerLMInputError, did_you_mean
from steerlm.http import (
    API_KEY_ENV,
    DEFAULT_MAX_RESPONSE_BYTES,
    SECRET_MASK,
    Endpoint,
    HttpResponse,
    HttpSession,
    bearer_authorization,
    redact_url,
    transport_session,
)
from steerlm.scoring import nim, triton
from steerlm.scoring.conversation import (
    Conversation,
    chat_messages,
    normalize_conversations,
    render_for_scoring,
)
from steerlm.scoring.scores import STEERLM_ATTRIBUTES, AttributeScores
from steerlm.transports.base import resolve_base_url
from steerlm.types import Turn

#: Environment variable with the attribute model's URL, when ``base_url`` is not given
#: (not ``$STEERLM_BASE_URL``, which names the chat server).
SCORER_URL_ENV = "STEERLM_SCORER_URL"
#: The server APIs and their default addresses.
SCORER_APIS: dict[str, str] = {"triton": triton.DEFAULT_TRITON_URL, "nim": nim.DEFAULT_NIM_URL}

T = TypeVar("T")


class SteerLMScorer(BaseModel):
    """Client of a SteerLM attribute model: scores answers on every attribute.

    Construct it with keywords (``base_url`` may also come first, positionally); the
    instance is immutable.

    Attributes:
        base_url: The server's root (``api="triton"``) or API root (``api="nim"``);
            falls back to ``$STEERLM_SCORER_URL``, then ``http://localhost:5555``
            (triton) or ``http://localhost:8000/v1`` (nim). Credentials in it
            (``http://user:token@host``) go out as Basic auth and are shown nowhere.
        model: The served model's name: the Triton model (NeMo-Aligner binds
            ``reward_model``), or the NIM model (e.g. ``nvidia/nemotron-4-340b-reward``).
        api: ``"triton"`` (NeMo-Aligner's reward server) or ``"nim"``.
        attributes: The model's output names, in order; default the nine of
            NeMo-Aligner's ``ALL_STEERLM_ATTRIBUTES`` (triton) or the names the answer
            gives (nim).
        system_prompt: The system turn of conversations that have none; None: NeMo-Aligner's
            default (triton), none at all (nim).
        api_key: Sent as ``Authorization: Bearer ...``; falls back to ``$STEERLM_API_KEY``.
            Never shown in repr, serialisation, tracing or errors.
        timeout: Seconds one HTTP attempt may take in all.
        max_retries: Retries after failures another attempt can cure (connection
            errors, 408, 429, 5xx).
        max_response_bytes: Cap of one decoded answer body.
        max_concurrency: Requests in flight at once with ``api="nim"``.

    Raises:
        SteerLMInputError: A setting that cannot work, before anything is sent.

    Example:
        >>> scorer = SteerLMScorer("http://localhost:5555")  # doctest: +SKIP
        >>> [scores] = scorer.score([[("user", "Hi?"), ("assistant", "Hello!")]])  # doctest: +SKIP
    """

    model_config = ConfigDict(frozen=True, protected_namespaces=(), extra="forbid")

    base_url: str | None = Field(default=None, repr=False)
    model: str = triton.DEFAULT_REWARD_MODEL
    api: str = "triton"
    attributes: tuple[str, ...] | None = None
    system_prompt: str | None = None
    api_key: SecretStr | None = None
    timeout: float = 120.0
    max_retries: int = Field(default=2, strict=True)
    max_response_bytes: int = Field(default=DEFAULT_MAX_RESPONSE_BYTES, strict=True)
    max_concurrency: int = Field(default=8, strict=True)

    _http: HttpSession = PrivateAttr()
    _endpoint: Endpoint = PrivateAttr()

    def __init__(self, base_url: str | None = None, **settings: Any) -> None:
        try:
            super().__init__(base_url=base_url, **settings)
        except ValidationError as exc:
            raise _input_error(exc) from None

    # -- validation ------------------------------------------------------------------------

    @model_validator(mode="before")
    @classmethod
    def _resolve_url(cls, data: Any) -> Any:
        if isinstance(data, dict):
            api = data.get("api", "triton")
            default = SCORER_APIS.get(api, triton.DEFAULT_TRITON_URL)
            url = data.get("base_url") or os.environ.get(SCORER_URL_ENV) or default
            # Given a URL, resolve_base_url never reads $STEERLM_BASE_URL (the chat server).
            data = {**data, "base_url": resolve_base_url(url, default)}
        return data

    @field_validator("api")
    @classmethod
    def _check_api(cls, api: str) -> str:
        if api not in SCORER_APIS:
            hint = did_you_mean(str(api), SCORER_APIS)
            raise SteerLMInputError(
                f"Unknown scorer api {api!r}.{hint} Use 'triton' (NeMo-Aligner's reward "
                "server) or 'nim' (a hosted reward model's /chat/completions)."
            )
        return api

    @field_validator("model")
    @classmethod
    def _check_model(cls, model: str) -> str:
        if not model.strip():
            raise SteerLMInputError("model must name the served reward model, e.g. 'reward_model'.")
        return model

    @field_validator("attributes", mode="before")
    @classmethod
    def _check_attributes(cls, attributes: Any) -> Any:
        if attributes is None:
            return None
        if isinstance(attributes, str) or not all(
            isinstance(name, str) and name for name in attributes
        ):
            raise SteerLMInputError(
                "attributes must be a list of the model's output names, in order, e.g. "
                f"{list(STEERLM_ATTRIBUTES)}; got {attributes!r}."
            )
        names = tuple(attributes)
        if not names or len(set(names)) != len(names):
            raise SteerLMInputError(
                f"attributes must name each output once, at least one; got {list(names)}."
            )
        return names

    @field_validator("max_concurrency")
    @classmethod
    def _check_concurrency(cls, value: int) -> int:
        if value < 1:
            raise SteerLMInputError(f"max_concurrency must be at least 1, got {value}.")
        return value

    def model_post_init(self, context: Any, /) -> None:
        key = self.api_key.get_secret_value() if self.api_key else os.environ.get(API_KEY_ENV)
        headers = {"Authorization": bearer_authorization(key)} if key else {}
        self._http = transport_session(
            self.timeout, self.max_retries, self.max_response_bytes, None, headers
        )
        assert self.base_url is not None  # resolved before validation
        self._endpoint = Endpoint.parse(self.base_url)

    @field_validator("api_key", mode="before")
    @classmethod
    def _not_the_mask(cls, key: Any) -> Any:
        # A dump shows the mask for a key that is set; reloaded, the key comes from the
        # environment at each request instead (see _headers), never the mask.
        return None if key == SECRET_MASK else key

    @field_serializer("api_key")
    def _serialize_api_key(self, key: SecretStr | None) -> str | None:
        # JSON dumps (a chat model's to_json with this scorer set) show a key is set, never it.
        return SECRET_MASK if key else None

    @field_serializer("base_url")
    def _serialize_base_url(self, url: str | None) -> str | None:
        return redact_url(url) if url else url

    def __repr_args__(self) -> Any:
        yield "base_url", redact_url(self.base_url) if self.base_url else self.base_url
        yield from super().__repr_args__()

    # -- what it sends to ------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Where scores are requested, as it may be shown (credentials redacted)."""
        return self._target().display

    @property
    def resolved_attributes(self) -> tuple[str, ...] | None:
        """The attribute names expected, in order (None: taken from each NIM answer)."""
        if self.attributes is not None or self.api == "nim":
            return self.attributes
        return STEERLM_ATTRIBUTES

    def _target(self) -> Endpoint:
        if self.api == "triton":
            return self._endpoint.join(triton.infer_path(quote(self.model, safe="")))
        return self._endpoint.join(nim.CHAT_PATH)

    def render(self, conversations: Sequence[Conversation]) -> list[str]:
        """The texts ``api="triton"`` sends for ``conversations`` (no request is made).

        Raises:
            SteerLMInputError: As :meth:`score`.
        """
        return [
            render_for_scoring(turns, self.system_prompt)
            for turns in normalize_conversations(conversations)
        ]

    # -- scoring ---------------------------------------------------------------------------

    def score(self, conversations: Sequence[Conversation]) -> list[AttributeScores]:
        """Score the last answer of each conversation.

        Args:
            conversations: Each a sequence of turns (:class:`steerlm.turns.Message`,
                :class:`steerlm.Turn`, or ``(role, text)`` pairs) ending with the
                assistant answer to score.

        Returns:
            One :class:`AttributeScores` per conversation, in order.

        Raises:
            SteerLMInputError: A conversation that does not end with an answer (nothing
                was sent).
            SteerLMConnectionError: The server could not be reached (after retries).
            SteerLMServerError: The server refused (an unknown model is a 404 whose
                message suggests ``model=``).
            SteerLMScoresError: The answer does not hold the scores asked for (e.g. a row
                width other than ``len(attributes)``).
        """
        turns = normalize_conversations(conversations)
        if not turns:
            return []
        if self.api == "triton":
            texts = [render_for_scoring(t, self.system_prompt) for t in turns]
            with self._connection_advice():
                rows = self._http.request(
                    "POST",
                    self._target(),
                    triton.infer_body(texts),
                    self._triton_decoder(len(texts)),
                )
            return self._triton_scores(rows)
        workers = min(self.max_concurrency, len(turns))
        if workers == 1:
            return [self._score_one(t) for t in turns]
        with ThreadPoolExecutor(workers, thread_name_prefix="steerlm-scorer") as pool:
            return list(pool.map(self._score_one, turns))

    async def ascore(self, conversations: Sequence[Conversation]) -> list[AttributeScores]:
        """Async :meth:`score`; it never blocks the event loop."""
        turns = normalize_conversations(conversations)
        if not turns:
            return []
        if self.api == "triton":
            texts = [render_for_scoring(t, self.system_prompt) for t in turns]
            with self._connection_advice():
                rows = await self._http.arequest(
                    "POST",
                    self._target(),
                    triton.infer_body(texts),
                    self._triton_decoder(len(texts)),
                )
            return self._triton_scores(rows)
        limit = asyncio.Semaphore(self.max_concurrency)

        async def one(conversation: list[Turn]) -> AttributeScores:
            async with limit:
                return await self._ascore_one(conversation)

        return await _gather_or_cancel([functools.partial(one, t) for t in turns])

    def _triton_decoder(self, rows: int) -> Callable[[HttpResponse], list[list[float]]]:
        url, names = self.url, self.resolved_attributes
        assert names is not None

        def decode(response: HttpResponse) -> list[list[float]]:
            return triton.decode_rewards(url, response, self.model, rows, names)

        return decode

    def _triton_scores(self, rows: list[list[float]]) -> list[AttributeScores]:
        names = self.resolved_attributes
        assert names is not None
        return [AttributeScores(zip(names, row, strict=True)) for row in rows]

    def _nim_request(
        self, turns: list[Turn]
    ) -> tuple[dict[str, Any], Callable[[HttpResponse], AttributeScores]]:
        url = self.url

        def decode(response: HttpResponse) -> AttributeScores:
            return AttributeScores(nim.decode_scores(url, response, self.model, self.attributes))

        return nim.chat_body(self.model, chat_messages(turns, self.system_prompt)), decode

    def _score_one(self, turns: list[Turn]) -> AttributeScores:
        body, decode = self._nim_request(turns)
        with self._connection_advice():
            return self._http.request("POST", self._target(), body, decode)

    async def _ascore_one(self, turns: list[Turn]) -> AttributeScores:
        body, decode = self._nim_request(turns)
        with self._connection_advice():
            return await self._http.arequest("POST", self._target(), body, decode)

    @contextlib.contextmanager
    def _connection_advice(self) -> Iterator[None]:
        """Say how to start the attribute model, not the chat server, when it is down."""
        try:
            yield
        except SteerLMConnectionError as error:
            if type(error) is not SteerLMConnectionError:
                raise  # a timeout says what to change already
            server = (
                "NeMo-Aligner's serve_reward_model.py (or the dev server `steerlm-server`)"
                if self.api == "triton"
                else "the reward model's NIM"
            )
            advice = (
                f"Is the attribute model running? Start {server} and point base_url (or "
                f"${SCORER_URL_ENV}) at it."
            )
            raise SteerLMConnectionError(
                error.url, error.reason, answered_before=error.answered_before, advice=advice
            ) from None

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Release the sync connection pool (reopened when used again)."""
        self._http.close()

    async def aclose(self) -> None:
        """Close the async connection pool of the running event loop."""
        await self._http.aclose()

    def __enter__(self) -> SteerLMScorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> SteerLMScorer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


async def _gather_or_cancel(calls: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
    """Run ``calls`` concurrently; on the first failure cancel the rest and raise it."""
    tasks = [asyncio.ensure_future(call()) for call in calls]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _input_error(exc: ValidationError) -> SteerLMInputError:
    """The SteerLMInputError behind a ValidationError, or one listing its problems."""
    problems = []
    for error in exc.errors():
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, SteerLMInputError):
            return cause
        where = ".".join(str(part) for part in error["loc"])
        # Never echo what may be a secret: the key or a URL with a password.
        secret = error["loc"][:1] in (("api_key",), ("base_url",))
        shown = "" if secret else f" (got {error.get('input')!r})"
        problems.append(f"{where}: {error['msg']}{shown}")
    return SteerLMInputError("Invalid SteerLMScorer settings: " + "; ".join(problems) + ".")
