"""The settings both chat-model adapters share: fields, defaults and their validation.

``SteerLMSettings`` is a pydantic model that each adapter class inherits next to its
framework's base class, so the field names, defaults, descriptions and validation live
here once (the generation options in :class:`steerlm.options.GenerationFields`). Each
instance owns a transport, chosen by ``api`` from :mod:`steerlm.transports.registry`;
its calls go through :attr:`SteerLMSettings.pipeline` (:mod:`steerlm.pipeline`).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from typing import Any

from pydantic import (
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)

from steerlm.attributes import AttributesInput, merge_attributes
from steerlm.best_of import best_of_settings
from steerlm.errors import SteerLMInputError, unknown_names
from steerlm.http import (
    API_KEY_ENV,
    DEFAULT_MAX_RESPONSE_BYTES,
    SECRET_MASK,
    bearer_authorization,
    redact_url,
)
from steerlm.options import GenerationFields, GenerationOptions, normalize_stop
from steerlm.pipeline import CallPipeline
from steerlm.presets import AttributeValue, Preset, get_preset
from steerlm.scoring import DEFAULT_OBJECTIVE, SteerLMScorer
from steerlm.transports.base import Transport, resolve_base_url
from steerlm.transports.registry import transport_class

#: Environment variable with the API key, when ``api_key`` is not given.

__all__ = ["API_KEY_ENV", "SteerLMSettings"]


class SteerLMSettings(GenerationFields):
    """Fields shared by the LangChain and LlamaIndex chat models, and their transport."""

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
    api: str = Field(
        default="nemo",
        description="Server API, a name of steerlm.transports.registry: 'nemo' is NeMo's "
        "PUT {base_url}/generate (no streaming); 'openai' is POST {base_url}/completions of "
        "an OpenAI-compatible server (vLLM, TensorRT-LLM, NIM, llama.cpp; base_url is the "
        "API root such as http://localhost:8000/v1), with token streaming.",
    )
    engine: str = Field(
        default="auto",
        description="With api='openai': the engine behind the server, whose limits and "
        "constrained-decoding key the client follows ('vllm', 'trtllm', 'nim', 'llamacpp', "
        "'nemo-deploy', 'nemo-deploy-ray', 'nemo-flask', 'generic'). 'auto' learns it once "
        "from the server's /models. See docs/engines.md.",
    )
    api_key: SecretStr | None = Field(
        default_factory=lambda: _secret_from_env(API_KEY_ENV),
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
    stop: list[str] | None = Field(
        default=None, description="Stop strings, added to the preset's end strings."
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
        description="Tokens the served model holds (prompt plus answer). When None: what "
        "the server reports (the dev server's /health, vLLM's max_model_len in /models, "
        "llama.cpp's /props), asked once on first use; else the preset's. See "
        "resolved_context_window.",
    )
    scorer: SteerLMScorer | None = Field(
        default=None,
        description="The attribute model (steerlm.SteerLMScorer) that best_of scores "
        "candidates with.",
    )
    best_of: int = Field(
        default=1,
        strict=True,
        description="Answers sampled per prompt; with more than 1, the scorer scores them "
        "and the best by objective is returned (needs sampling: a temperature).",
    )
    objective: str | dict[str, float] = Field(
        default=DEFAULT_OBJECTIVE,
        description="What best_of maximises: an attribute name, or weights such as "
        "{'helpfulness': 1.0, 'correctness': 1.0, 'verbosity': -0.5}.",
    )
    coalesce: bool = Field(
        default=True,
        description="Merge concurrent calls to the same server with the same options into "
        "shared requests (NeMo runs one request at a time); False sends one request per call.",
    )

    _transport: Transport = PrivateAttr()

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
            raise SteerLMInputError(
                f"Unknown argument(s) for {cls.__name__}: "
                f"{unknown_names(unknown, sorted(names))}. See the "
                "settings page (docs/settings.md); per-call options go to invoke/chat as keywords."
            )
        if data.get("attributes") is not None:
            preset = data.get("preset") or cls.model_fields["preset"].default
            merge_attributes(get_preset(preset), data["attributes"])
        return data

    @field_validator("api_key", mode="before")
    @classmethod
    def _key_or_environment(cls, key: Any) -> Any:
        # None (to_dict/from_dict of a model without a key) or the mask its dump shows
        # (one with a key): the key comes from the environment again, never the mask.
        if key is None or key == SECRET_MASK:
            return _secret_from_env(API_KEY_ENV)
        return key

    @field_validator("api")
    @classmethod
    def _known_api(cls, api: str) -> str:
        transport_class(api)  # raises, naming the registered APIs
        return api

    @model_validator(mode="after")
    def _validate_settings(self) -> SteerLMSettings:
        # Fail at construction, not at the first call: resolve and check everything once.
        preset = get_preset(self.preset)
        merge_attributes(preset, self.attributes)
        best_of_settings(self.best_of, self.scorer, self.objective, self.generation_options())
        normalize_stop(self.stop)
        if self.context_window is not None and self.context_window < 1:
            raise SteerLMInputError(
                f"context_window must be a positive number of tokens, got {self.context_window}."
            )
        transport = transport_class(self.api)
        self._transport = transport(
            self.base_url,
            model=self.model,
            timeout=self.timeout,
            max_retries=self.max_retries,
            max_response_bytes=self.max_response_bytes,
            headers=self._headers(),
            coalesce=self.coalesce,
            engine=self.engine,
        )
        # The URL really used (from the environment or the default), credentials kept.
        self.base_url = resolve_base_url(self.base_url, transport.default_base_url)
        return self

    def _headers(self) -> dict[str, str]:
        """``default_headers``, and the API key as a Bearer token (it wins over both)."""
        headers = dict(self.default_headers or {})
        for name, value in headers.items():
            if not isinstance(value, str) or any(c in name + value for c in "\r\n\0"):
                raise SteerLMInputError(
                    f"default_headers: header {name!r} must be a string without line breaks."
                )
        if self.api_key:
            authorization = bearer_authorization(self.api_key.get_secret_value())
            headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
            headers["Authorization"] = authorization
        return headers

    @field_serializer("default_headers")
    def _serialize_headers(self, headers: dict[str, str] | None) -> dict[str, str] | None:
        # Header values are often credentials of a gateway: dumps show only the names.
        return {name: "***" for name in headers} if headers else headers

    @field_serializer("api_key")
    def _serialize_api_key(self, key: SecretStr | None) -> str | None:
        # JSON dumps (LlamaIndex's to_json, tracing) show that a key is set, never the key.
        return SECRET_MASK if key else None

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
        """``model``; else the model the transport learnt from the server (api='openai'
        asks ``/models`` once); else the preset's model name."""
        return self.model or self.transport.model or self.resolved_preset.model_name

    @property
    def resolved_context_window(self) -> int:
        """Tokens the model holds: ``context_window`` if set, else what the server reports
        (asked once, on first use), else the preset's."""
        return (
            self.context_window
            or self.transport.server_context_window()
            or self.resolved_preset.context_window
        )

    @property
    def transport(self) -> Transport:
        """The transport of ``api`` (one connection pool per instance; copies share it)."""
        # Straight from pydantic's private storage: its __getattr__ fallback costs
        # microseconds, and this is read several times per call.
        transport: Transport = self.__pydantic_private__["_transport"]  # type: ignore[index]
        return transport

    @property
    def pipeline(self) -> CallPipeline:
        """The request pipeline: plan, send, stream and parse calls with these settings."""
        return CallPipeline(self)

    def generation_options(self, overrides: Mapping[str, Any] | None = None) -> GenerationOptions:
        """The instance's decoding settings, with per-call ``overrides`` applied.

        Raises:
            SteerLMInputError: An override names no option, or a value is invalid.
        """
        values = tuple(getattr(self, name) for name in _OPTION_FIELDS)
        try:
            base = _cached_options(values)
        except TypeError:  # a field reassigned to something unhashable: say what is wrong
            base = _options_of(values)
        return base.replace(overrides) if overrides else base

    def merged_attributes(
        self, call_attributes: AttributesInput = None
    ) -> dict[str, AttributeValue]:
        """Preset defaults < instance ``attributes`` < ``call_attributes``, validated."""
        return merge_attributes(self.resolved_preset, self.attributes, call_attributes)

    def close(self) -> None:
        """Release this model's sync connections (copies of it share them).

        The model stays usable: the next call opens a new connection.
        """
        self._transport.close()

    async def aclose(self) -> None:
        """Close this model's async connections of the running event loop.

        Connections of event loops that have ended are closed when their loop shuts down.
        """
        await self._transport.aclose()


_OPTION_FIELDS = tuple(GenerationFields.model_fields)


def _secret_from_env(name: str) -> SecretStr | None:
    """``$name`` as a secret, or None when it is unset or empty."""
    value = os.environ.get(name)
    return SecretStr(value) if value else None


def _options_of(values: tuple[Any, ...]) -> GenerationOptions:
    return GenerationOptions.of(dict(zip(_OPTION_FIELDS, values, strict=True)))


# The instance's own options are checked once per distinct set of values, not per call
# (the fields can be reassigned, so they are read each call).
_cached_options = functools.lru_cache(maxsize=256)(_options_of)


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
