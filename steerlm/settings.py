"""The settings both chat-model adapters share, and the request pipeline behind them.

``SteerLMSettings`` is a pydantic model that each adapter class inherits next to its
framework's base class, so the field names, defaults, descriptions and validation live
here once. Its :meth:`~SteerLMSettings.plan_call` turns neutral turns plus per-call
keywords into prompts and options; :meth:`~SteerLMSettings.send` sends them.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import AsyncGenerator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_serializer,
    model_validator,
)

from steerlm.attributes import AttributesInput, merge_attributes
from steerlm.client import BASE_URL_ENV, SteerLMClient, resolve_base_url
from steerlm.errors import SteerLMInputError
from steerlm.http import DEFAULT_MAX_RESPONSE_BYTES, redact_url
from steerlm.openai import DEFAULT_OPENAI_BASE_URL, OpenAIClient
from steerlm.options import OPTION_NAMES, GenerationOptions, end_strings, normalize_stop
from steerlm.presets import AttributeValue, Preset, get_preset
from steerlm.prompt import SYSTEM_JOINER, build_prompt
from steerlm.tools import (
    NONE,
    ParsedAnswer,
    ToolSpec,
    json_instructions,
    normalize_tool_choice,
    parse_tool_calls,
    tool_instructions,
)
from steerlm.types import Completion, StreamChunk, Turn

#: Environment variable with the API key, when ``api_key`` is not given.
API_KEY_ENV = "STEERLM_API_KEY"

#: Per-call keywords besides the generation options.
CALL_KEYWORDS = frozenset({"attributes", "stop", "model", "tools", "tool_choice", "json_schema"})


@dataclass(frozen=True)
class CallPlan:
    """Everything one call sends, decided before any network I/O.

    Attributes:
        prompts: One rendered SteerLM prompt per conversation.
        attributes: The merged attributes of the answers, in canonical order.
        options: Decoding settings.
        stops: End strings: preset's, instance's, call's, then ``<|endoftext|>``.
        model_name: Model name to report (a per-call ``model`` overrides the instance's).
        tools: Tools the model was told about; their calls are parsed from the answer.
        model_from_call: ``model_name`` is a per-call ``model`` (reported as it is).
    """

    prompts: tuple[str, ...]
    attributes: dict[str, AttributeValue]
    options: GenerationOptions
    stops: tuple[str, ...]
    model_name: str
    tools: tuple[ToolSpec, ...] = ()
    model_from_call: bool = False


class SteerLMSettings(BaseModel):
    """Fields and request pipeline shared by the LangChain and LlamaIndex chat models."""

    model_config = ConfigDict(arbitrary_types_allowed=True, protected_namespaces=())

    base_url: str | None = Field(
        default=None,
        # Credentials in it (http://user:token@host) stay on the instance so copies keep
        # working; repr and serialization show them redacted (http://***@host).
        repr=False,
        description="Root URL of the NeMo text-generation server. Falls back to "
        "$STEERLM_BASE_URL, then http://localhost:5555 (NeMo's default port). "
        "Credentials as http://user:token@host go out as Basic auth, shown nowhere.",
    )
    model: str | None = Field(
        default=None,
        description="Model name. With api='nemo' it is only reported in metadata (the "
        "preset's by default). With api='openai' it is sent in each request; when None the "
        "server's /models is asked once and its only model is used and reported.",
    )
    api: Literal["nemo", "openai"] = Field(
        default="nemo",
        description="Wire protocol: 'nemo' is NeMo's PUT {base_url}/generate (no streaming); "
        "'openai' is POST {base_url}/completions of an OpenAI-compatible server (vLLM, "
        "TensorRT-LLM, NIM, llama.cpp; base_url is the API root such as "
        "http://localhost:8000/v1), with token streaming.",
    )
    api_key: SecretStr | None = Field(
        default=None,
        description="API key sent as 'Authorization: Bearer ...' with either api (NeMo is "
        "often behind a gateway). Falls back to $STEERLM_API_KEY. Never shown in repr, "
        "serialization, tracing or errors.",
    )
    default_headers: dict[str, str] | None = Field(
        default=None,
        repr=False,
        description="Extra headers for every request, with either api (values are not "
        "shown in repr or serialization).",
    )
    preset: str | Preset = Field(
        default="llama2-13b-steerlm",
        description="Preset name or steerlm.Preset: attribute keys, ranges, defaults, "
        "end strings, system prompt and context window of the model.",
    )
    attributes: dict[str, AttributeValue] | str | None = Field(
        default=None,
        description="Default attributes of this instance, over the preset's defaults: a "
        "mapping such as {'humor': 3} or a string such as 'quality:9,humor:3'.",
    )
    system_prompt: str | None = Field(
        default=None,
        description="System turn used when the messages have no system message; the "
        "preset's default system prompt when None.",
    )
    max_tokens: int = Field(default=1024, strict=True, description="Most tokens to generate.")
    temperature: float | None = Field(
        default=None, description="Sampling temperature; None or 0 means greedy decoding."
    )
    top_k: int = Field(default=0, strict=True, description="Top-k sampling; 0 disables it.")
    top_p: float = Field(default=0.9, description="Nucleus sampling mass, 0 to 1.")
    repetition_penalty: float = Field(default=1.0, description="1.0 disables; always sent.")
    min_tokens: int = Field(default=0, strict=True, description="Fewest tokens to generate.")
    random_seed: int | None = Field(
        default=None, strict=True, description="Sampling seed (recent NeMo releases)."
    )
    stop: list[str] | None = Field(
        default=None, description="Stop strings, added to the preset's end strings."
    )
    logprobs: bool = Field(
        default=False, description="Ask the server for log-probabilities of the answer."
    )
    timeout: float = Field(
        default=120.0,
        description="Seconds one HTTP attempt may take in all, from connecting to the last "
        "byte of the answer; each retry gets as long again, after its backoff wait.",
    )
    max_retries: int = Field(
        default=2,
        strict=True,
        description="Retries after failures another attempt can cure: connection errors, "
        "408, 429 and 5xx (not timeouts, redirects, other 4xx, or a prompt too long).",
    )
    max_response_bytes: int = Field(
        default=DEFAULT_MAX_RESPONSE_BYTES,
        strict=True,
        description="Cap of one decoded answer body in bytes (64 MiB); larger answers "
        "raise SteerLMResponseTooLargeError.",
    )
    context_window: int | None = Field(
        default=None,
        strict=True,
        description="Tokens the served model holds (prompt plus answer); the preset's "
        "when None. Set it to the server's real context length.",
    )
    coalesce: bool = Field(
        default=True,
        description="Merge concurrent calls to the same server with the same options into "
        "shared requests (NeMo runs one request at a time); False sends one request per call.",
    )

    _client: SteerLMClient | OpenAIClient = PrivateAttr()

    def __init__(self, **data: Any) -> None:
        # Pydantic wraps errors raised by validators in a ValidationError; raise the
        # SteerLMInputError the README promises, with its message, instead.
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise _input_error(type(self).__name__, exc) from None

    @model_validator(mode="before")
    @classmethod
    def _check_raw_input(cls, data: Any) -> Any:
        # Before pydantic coerces anything: a typo'd argument would otherwise be ignored,
        # and instance attributes such as {"humor": True} or 9.0 would become 1 or 9.
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        names = set(cls.model_fields) | {
            alias
            for field in cls.model_fields.values()
            for alias in (field.alias, field.validation_alias)
            if isinstance(alias, str)
        }
        unknown = sorted(str(key) for key in data if key not in names)
        if unknown:
            hints = []
            for key in unknown:
                close = difflib.get_close_matches(key, sorted(names), n=1)
                hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            raise SteerLMInputError(
                f"Unknown argument(s) for {cls.__name__}: {', '.join(hints)}. See the "
                "README for the settings; per-call options go to invoke/chat as keywords."
            )
        if data.get("attributes") is not None:
            preset = data.get("preset") or cls.model_fields["preset"].default
            merge_attributes(get_preset(preset), data["attributes"])
        return data

    @model_validator(mode="after")
    def _validate_settings(self) -> SteerLMSettings:
        # Fail at construction, not at the first call: resolve and check everything once.
        preset = get_preset(self.preset)
        merge_attributes(preset, self.attributes)
        self.generation_options()
        normalize_stop(self.stop)
        if self.context_window is None:
            self.context_window = preset.context_window
        elif self.context_window < 1:
            raise SteerLMInputError(
                f"context_window must be a positive number of tokens, got {self.context_window}."
            )
        # The URL really used (from the environment or the default), credentials kept.
        if self.api == "openai":
            url = self.base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_OPENAI_BASE_URL
            self.base_url = resolve_base_url(url)
            self._client = OpenAIClient(
                self.base_url,
                model=self.model,
                timeout=self.timeout,
                max_retries=self.max_retries,
                max_response_bytes=self.max_response_bytes,
                headers=self._headers(),
            )
            return self
        self._client = SteerLMClient(
            self.base_url,
            timeout=self.timeout,
            max_retries=self.max_retries,
            max_response_bytes=self.max_response_bytes,
            coalesce=self.coalesce,
            headers=self._headers(),
        )
        self.base_url = resolve_base_url(self.base_url)
        return self

    def _headers(self) -> dict[str, str]:
        """``default_headers``, and the API key as a Bearer token (it wins over both)."""
        headers = dict(self.default_headers or {})
        for name, value in headers.items():
            if not isinstance(value, str) or any(c in name + value for c in "\r\n\0"):
                raise SteerLMInputError(
                    f"default_headers: header {name!r} must be a string without line breaks."
                )
        key = self.api_key.get_secret_value() if self.api_key else os.environ.get(API_KEY_ENV)
        if key:
            if any(c in key for c in "\r\n\0 "):
                raise SteerLMInputError(
                    "api_key must be one token without spaces or line breaks; check "
                    f"api_key or ${API_KEY_ENV}."
                )
            headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
            headers["Authorization"] = f"Bearer {key}"
        return headers

    @field_serializer("default_headers")
    def _serialize_headers(self, headers: dict[str, str] | None) -> dict[str, str] | None:
        # Header values are often credentials of a gateway: dumps show only the names.
        return {name: "***" for name in headers} if headers else headers

    @field_serializer("base_url")
    def _serialize_base_url(self, url: str | None) -> str | None:
        # Dumps feed to_json, tracing and logs: never the credentials.
        return redact_url(url) if url else url

    def __repr_args__(self) -> Any:
        yield from super().__repr_args__()
        yield "base_url", redact_url(self.base_url) if self.base_url else self.base_url

    @property
    def resolved_preset(self) -> Preset:
        """The :class:`~steerlm.Preset` object of ``preset``."""
        return get_preset(self.preset)

    @property
    def model_name(self) -> str:
        """``model``; with api='openai' the model discovered on the server once known;
        else the preset's model name."""
        discovered = self._client.model if isinstance(self._client, OpenAIClient) else None
        return self.model or discovered or self.resolved_preset.model_name

    @property
    def client(self) -> SteerLMClient | OpenAIClient:
        """The transport (one connection pool per instance)."""
        return self._client

    @staticmethod
    def served_model_name(plan: CallPlan, completion: Completion) -> str:
        """The model to report for ``completion``: a per-call ``model``, else the one the
        server says answered it (OpenAI-compatible servers name it in each answer), else
        the plan's (``model`` or the preset's)."""
        model = completion.raw.get("model")
        if plan.model_from_call or not (isinstance(model, str) and model):
            return plan.model_name
        return model

    def generation_options(self, overrides: Mapping[str, Any] | None = None) -> GenerationOptions:
        """The instance's decoding settings, with per-call ``overrides`` applied."""
        base = GenerationOptions(
            max_tokens=self.max_tokens,
            temperature=self.temperature,
            top_k=self.top_k,
            top_p=self.top_p,
            repetition_penalty=self.repetition_penalty,
            min_tokens=self.min_tokens,
            random_seed=self.random_seed,
            logprobs=self.logprobs,
        )
        return base.replace(overrides or {})

    def merged_attributes(
        self, call_attributes: AttributesInput = None
    ) -> dict[str, AttributeValue]:
        """Preset defaults < instance ``attributes`` < ``call_attributes``, validated."""
        return merge_attributes(self.resolved_preset, self.attributes, call_attributes)

    def plan_call(
        self, conversations: Sequence[Sequence[Turn] | str], call_kwargs: Mapping[str, Any]
    ) -> CallPlan:
        """Render prompts and options for one call; raises before any network I/O.

        Args:
            conversations: One list of turns per prompt, or a string: a prompt that is
                already in the SteerLM format, sent as it is.
            call_kwargs: Per-call keywords: ``attributes``, ``stop``, ``model`` (the name
                to report; one server serves one model), ``tools`` (ToolSpecs) with
                ``tool_choice``, ``json_schema`` (ask for a JSON answer), and any
                generation option (``max_tokens``, ``temperature``...). None values are
                ignored.

        Raises:
            SteerLMInputError: An unknown keyword, a bad option, bad attributes or a
                conversation that cannot be rendered.
        """
        kwargs = {key: value for key, value in call_kwargs.items() if value is not None}
        unknown = sorted(set(kwargs) - OPTION_NAMES - CALL_KEYWORDS)
        if unknown:
            raise SteerLMInputError(
                f"Unknown keyword(s) {', '.join(map(repr, unknown))} for a SteerLM call. "
                f"Valid: {', '.join(sorted(CALL_KEYWORDS | OPTION_NAMES))}."
            )
        call_model = kwargs.pop("model", None)
        model_name = str(call_model or self.model_name)
        preset = self.resolved_preset
        attributes = self.merged_attributes(kwargs.pop("attributes", None))
        stops = end_strings(
            preset.end_strings, normalize_stop(self.stop), normalize_stop(kwargs.pop("stop", None))
        )
        tools, instructions = _instructions(
            kwargs.pop("tools", ()),
            kwargs.pop("tool_choice", None),
            kwargs.pop("json_schema", None),
        )
        options = self.generation_options(kwargs)
        prompts = tuple(
            turns
            if isinstance(turns, str)
            else build_prompt(turns, attributes, preset, self.system_prompt, instructions)
            for turns in conversations
        )
        return CallPlan(
            prompts=prompts,
            attributes=attributes,
            options=options,
            stops=stops,
            model_name=model_name,
            model_from_call=call_model is not None,
            tools=tools,
        )

    @staticmethod
    def parse_answer(plan: CallPlan, completion: Completion) -> ParsedAnswer:
        """Split a completion into content and tool calls (none unless tools were sent)."""
        if not plan.tools:
            return ParsedAnswer(content=completion.text, tool_calls=[], invalid_tool_calls=[])
        return parse_tool_calls(completion.text, plan.tools)

    def close(self) -> None:
        """Release this model's sync connections (copies of it share them).

        The model stays usable: the next call opens a new connection.
        """
        self._client.close()

    async def aclose(self) -> None:
        """Close this model's async connections of the running event loop.

        Connections of event loops that have ended are closed when their loop shuts down.
        """
        await self._client.aclose()

    def send(self, plan: CallPlan) -> list[Completion]:
        """Send a planned call; one request per 128 prompts."""
        return self._client.generate(plan.prompts, plan.options, plan.stops)

    async def asend(self, plan: CallPlan) -> list[Completion]:
        """Async :meth:`send`, non-blocking."""
        return await self._client.agenerate(plan.prompts, plan.options, plan.stops)

    @property
    def streams_tokens(self) -> bool:
        """Whether :meth:`send_stream` delivers tokens as they are generated (api='openai')."""
        return isinstance(self._client, OpenAIClient)

    def streams(self, plan: CallPlan) -> bool:
        """Whether a stream of ``plan`` yields tokens, or the whole answer as one piece.

        Tokens need api='openai'. With tools, whether the text is a call is known only
        from the whole answer, so the answer is one piece.
        """
        return self.streams_tokens and not plan.tools

    def send_stream(self, plan: CallPlan) -> Iterator[StreamChunk]:
        """Stream the answer to the plan's one prompt.

        With api='openai' the text arrives as it is generated, cut at stop strings even
        across chunks; the last chunk carries the whole :class:`~steerlm.types.Completion`.
        With api='nemo' (``/generate`` does not stream) the answer is one chunk.
        Closing the iterator early closes the connection.
        """
        if isinstance(self._client, OpenAIClient):
            yield from self._client.stream(plan.prompts[0], plan.options, plan.stops)
            return
        completion = self.send(plan)[0]
        yield StreamChunk(completion.text, completion)

    async def asend_stream(self, plan: CallPlan) -> AsyncGenerator[StreamChunk, None]:
        """Async :meth:`send_stream`."""
        if isinstance(self._client, OpenAIClient):
            chunks = self._client.astream(plan.prompts[0], plan.options, plan.stops)
            try:
                async for chunk in chunks:
                    yield chunk
            finally:
                await chunks.aclose()  # at once, not when the generator is collected
            return
        completion = (await self.asend(plan))[0]
        yield StreamChunk(completion.text, completion)


def _instructions(
    tools: Sequence[ToolSpec], tool_choice: str | None, json_schema: Mapping[str, Any] | None
) -> tuple[tuple[ToolSpec, ...], str]:
    """The tools whose calls to parse, and the system-turn text that announces them."""
    tools = tuple(tools)
    if not all(isinstance(tool, ToolSpec) for tool in tools):
        raise SteerLMInputError("tools must be steerlm.tools.ToolSpec objects.")
    parts = []
    if tools:
        choice = normalize_tool_choice(tool_choice, tools)
        if choice == NONE:
            tools = ()
        else:
            parts.append(tool_instructions(tools, choice))
    if json_schema is not None:
        parts.append(json_instructions(json_schema))
    return tools, SYSTEM_JOINER.join(parts)


_SECRET_FIELDS = {("api_key",), ("default_headers",), ("base_url",)}


def _input_error(class_name: str, exc: ValidationError) -> SteerLMInputError:
    """The SteerLMInputError behind a ValidationError, or one that lists its problems."""
    problems = []
    for error in exc.errors():
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, SteerLMInputError):
            return cause
        where = ".".join(str(part) for part in error["loc"])
        # Never echo what may be a secret: the key, headers, or a URL with a password.
        shown = "" if error["loc"][:1] in _SECRET_FIELDS else f" (got {error.get('input')!r})"
        problems.append(f"{where}: {error['msg']}{shown}")
    return SteerLMInputError(f"Invalid {class_name} settings: " + "; ".join(problems) + ".")
