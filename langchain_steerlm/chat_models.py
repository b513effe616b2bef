"""LangChain chat model for NVIDIA SteerLM on NeMo or an OpenAI-compatible server."""

from __future__ import annotations

import contextvars
import json
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager
from operator import itemgetter
from typing import Any, Literal

from langchain_core.caches import BaseCache
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.exceptions import OutputParserException
from langchain_core.globals import get_llm_cache
from langchain_core.language_models import BaseChatModel, LangSmithParams, LanguageModelInput
from langchain_core.load import dumps
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.tool import invalid_tool_call, tool_call, tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import (
    Runnable,
    RunnableConfig,
    RunnableLambda,
    RunnableMap,
    RunnablePassthrough,
)
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_json_schema, convert_to_openai_tool
from pydantic import BaseModel, Field
from pydantic.v1 import BaseModel as BaseModelV1

from steerlm import CallPlan, Completion, SteerLMInputError, SteerLMSettings, Turn
from steerlm.options import normalize_stop
from steerlm.settings import API_KEY_ENV
from steerlm.tools import ToolSpec, extract_json, normalize_tool_choice, schema_problem
from steerlm.turns import Message, MessageRole, ToolCallRecord
from steerlm.turns import to_turns as neutral_turns
from steerlm.types import StreamChunk

# Completions fetched in one request by batch()/abatch(), keyed by prompt, for the
# per-input runs that LangChain then starts (so callbacks and tracing stay per input).
_PREFETCHED: contextvars.ContextVar[dict[str, deque[Completion | BaseException]] | None] = (
    contextvars.ContextVar("steerlm_prefetched", default=None)
)

# Keywords LangChain itself passes along to _generate; they are not ours to validate.
_FRAMEWORK_KWARGS = frozenset({"stream", "ls_structured_output_format", "structured_output_format"})

# Content blocks that duplicate AIMessage.tool_calls (Anthropic-style and v1 blocks).
_CALL_BLOCKS = frozenset({"tool_use", "tool_call", "function_call"})

_ROLES: dict[str, MessageRole] = {
    "system": "system",
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "ai": "assistant",
}


class SteerLMChat(BaseChatModel, SteerLMSettings):
    """NVIDIA SteerLM chat model on NeMo's text-generation server or an OpenAI-compatible one.

    Every answer is steered by *attributes* (quality, humor, toxicity...), set on the
    instance and overridable per call. Messages become the SteerLM prompt. With
    ``api="nemo"`` (default) the request goes to NeMo's ``PUT {base_url}/generate``; with
    ``api="openai"`` the same prompt goes to ``POST {base_url}/completions`` of vLLM,
    TensorRT-LLM, NIM or llama.cpp, which stream tokens. Stop strings apply on the server
    and again on the client.

    Setup:
        Start a server: NeMo's ``megatron_gpt_eval.py ... server=True``, an
        OpenAI-compatible server (``vllm serve``, ``trtllm-serve``, a NIM), or for
        development ``steerlm-server`` (installed with the ``[server]`` extra).

        .. code-block:: bash

            pip install "steerlm-integrations[langchain]"
            export STEERLM_BASE_URL=http://localhost:5555
            export STEERLM_API_KEY=...  # only behind a gateway or a server with a key

    Key init args:
        base_url: Server root (NeMo) or API root such as ``http://localhost:8000/v1``
            (OpenAI); ``$STEERLM_BASE_URL``, then ``http://localhost:5555`` (NeMo) or
            ``http://localhost:8000/v1`` (OpenAI).
        api: ``"nemo"`` (default) or ``"openai"``.
        api_key: Sent as ``Authorization: Bearer ...``; ``$STEERLM_API_KEY`` by default.
        model: With ``api="openai"`` the served model's name (asked from ``/models`` when
            None); with NeMo only the name reported.
        preset: ``"llama2-13b-steerlm"`` (default), ``"llama2-70b-steerlm-chat"``,
            ``"nemotron3-8b-steerlm"`` or a ``steerlm.Preset``.
        attributes: Instance default attributes, e.g. ``{"humor": 3}``.
        max_tokens: Most tokens to generate (1024).
        temperature: None or 0 for greedy decoding (default), else sampling.
        stop: Extra stop strings; the preset's end strings always apply.

    Instantiate:
        .. code-block:: python

            from langchain_steerlm import SteerLMChat

            llm = SteerLMChat(base_url="http://localhost:5555", attributes={"creativity": 4})
            streaming_llm = SteerLMChat(api="openai", base_url="http://localhost:8000/v1")

    Invoke with per-call attributes (merged over the instance's, key by key):
        .. code-block:: python

            llm.invoke("Tell me about techno.", attributes={"humor": 7}, max_tokens=200)
            llm.bind(attributes={"humor": 9}).invoke("And about jazz?")

    The outputs below are real, from the dev server on its embedded SmolLM2-135M
    (``api="openai"``, ``max_tokens=60``), a small model that is not SteerLM-trained.

    Stream:
        .. code-block:: python

            for chunk in llm.stream("Where did techno music originate?"):
                print(repr(chunk.content), end=" | ")

        .. code-block:: none

            'Techn' | 'o' | ' music' | ' originated' | ' in' | ' the' | ' late' | ...

        Text that could still become a stop string is held back, so nothing shown is
        ever taken back. The last chunk carries usage and ``response_metadata``, so
        adding the chunks gives the message ``invoke`` returns:

        .. code-block:: python

            full = None
            for chunk in llm.stream("Where did techno music originate?"):
                full = chunk if full is None else full + chunk
            full

        .. code-block:: none

            AIMessageChunk(content='Techno music originated in the late 1980s in the United
            States, specifically in New York City, ...', response_metadata={'model_name':
            'llama', 'finish_reason': 'length', 'stop_string': None, 'attributes': {...}},
            usage_metadata={'input_tokens': 106, 'output_tokens': 60, 'total_tokens': 166},
            chunk_position='last')

        With ``api="nemo"`` (``/generate`` does not stream) the answer is one chunk.

    Async:
        .. code-block:: python

            await llm.ainvoke("Where did techno music originate?")
            async for chunk in llm.astream("Name a colour."):
                print(repr(chunk.content), end=" | ")
            await llm.abatch(["Name a colour.", "Name a fruit."])

        .. code-block:: none

            AIMessage(content='Techno music originated in the late 1980s in the United ...')
            'A' | ' colour' | ' is' | ' a' | ' color' | '.' | '' |
            [AIMessage(content='A colour is a color.', ...),
             AIMessage(content='A fruit is a fruit.', ...)]

    Batch:
        .. code-block:: python

            llm.batch(["Name a colour.", "Name a fruit."])

        .. code-block:: none

            [AIMessage(content='A colour is a color.', ...),
             AIMessage(content='A fruit is a fruit.', ...)]

        One request for all inputs: NeMo runs it as one batch (128 prompts per request);
        OpenAI-compatible servers get a prompt list, or concurrent requests when they
        take one prompt per request (llama.cpp).

    Tool calling:
        .. code-block:: python

            from pydantic import BaseModel, Field

            class GetWeather(BaseModel):
                \"\"\"Get the current weather in a given location.\"\"\"

                location: str = Field(..., description="The city and state, e.g. San Francisco, CA")

            msg = llm.bind_tools([GetWeather], tool_choice="any").invoke(
                "What is the weather in 'Paris, FR'?"
            )
            msg.tool_calls

        .. code-block:: none

            [{'name': 'GetWeather', 'args': {'location': 'Paris, FR'},
              'id': 'call_46b999a41822408a89cc4ddb', 'type': 'tool_call'}]

        (That output is from the scripted compliant model of the tests: SteerLM has no
        native tool calling, the tools go into the system turn, and SmolLM2 does not
        follow the convention; it answered in prose, ``msg.tool_calls == []``.) Streamed,
        a call arrives whole on the last chunk as ``tool_call_chunks``.

    Structured output:
        .. code-block:: python

            class Joke(BaseModel):
                \"\"\"Joke to tell user.\"\"\"

                setup: str = Field(description="The setup of the joke")
                punchline: str = Field(description="The punchline to the joke")

            llm.with_structured_output(Joke, include_raw=True).invoke("Tell me a joke about cats")

        .. code-block:: none

            {'raw': AIMessage(content='A cat is a cat. A cat is a cat.', ...), 'parsed': None,
             'parsing_error': OutputParserException("the answer holds no JSON object ...")}

        SmolLM2 writes no JSON; a model that follows the schema in the system turn gives
        ``'parsed': Joke(setup=..., punchline=...)`` (without ``include_raw`` a bad answer
        raises ``OutputParserException``).

    Token usage:
        .. code-block:: python

            msg = llm.invoke("Where did techno music originate?")
            msg.usage_metadata

        .. code-block:: none

            {'input_tokens': 106, 'output_tokens': 60, 'total_tokens': 166}

        From the server's tokenizer: OpenAI-compatible servers' ``usage`` (in a stream,
        when the server honours ``stream_options.include_usage``; llama.cpp's does not),
        NeMo's ``tokens``.

    Response metadata:
        .. code-block:: python

            msg.response_metadata

        .. code-block:: none

            {'model_name': 'llama', 'finish_reason': 'length', 'stop_string': None,
             'attributes': {'quality': 9, 'toxicity': 0, 'humor': 0, 'creativity': 0,
             'violence': 0, 'helpfulness': 9, 'not_appropriate': 0}}

        ``model_name`` is the model the server says it served (``api="openai"``), else
        ``model`` or the preset's name (NeMo's answer names no model). ``attributes``
        are the ones used; the prompt reuses them when the message comes back in a later
        turn's history.
    """

    streaming: bool = Field(
        default=False,
        description="Stream by default (token by token with api='openai'; one chunk with "
        "api='nemo').",
    )

    @property
    def _llm_type(self) -> str:
        return "steerlm-chat"

    @property
    def lc_secrets(self) -> dict[str, str]:
        """Where LangChain's serialization finds the key: never in the dump itself."""
        return {"api_key": API_KEY_ENV}

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "base_url": self.transport.base_url,
            "preset": self.resolved_preset.name,
            "attributes": self.merged_attributes(),
            **self.generation_options().__dict__,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        # Tracing reads two options: the per-call value, else the instance's (the plan
        # validates them all before anything is sent).
        temperature = kwargs.get("temperature")
        max_tokens = kwargs.get("max_tokens")
        params = LangSmithParams(
            ls_provider="steerlm",
            ls_model_name=str(kwargs.get("model") or self.model_name),
            ls_model_type="chat",
            ls_temperature=(self.temperature if temperature is None else temperature) or 0.0,
            ls_max_tokens=self.max_tokens if max_tokens is None else max_tokens,
        )
        stops = [*(self.stop or []), *normalize_stop(stop)]  # a bad stop fails here first
        if stops:
            params["ls_stop"] = stops
        return params

    # -- planning: messages and keywords -> prompt and options (no I/O) -------------------

    def _plan(
        self, conversations: Sequence[Sequence[BaseMessage]], stop: list[str] | None, kwargs: Any
    ) -> CallPlan:
        kwargs = {k: v for k, v in kwargs.items() if k not in _FRAMEWORK_KWARGS}
        return self.pipeline.plan(
            [to_turns(messages) for messages in conversations], {**kwargs, "stop": stop}
        )

    def _chat_result(self, completion: Completion, plan: CallPlan) -> ChatResult:
        answer = self.pipeline.parse(plan, completion)
        message = AIMessage(
            content=answer.content,
            tool_calls=[
                tool_call(name=c.name, args=c.arguments, id=c.id) for c in answer.tool_calls
            ],
            invalid_tool_calls=[
                invalid_tool_call(name=c.name, args=c.arguments, id=c.id, error=c.error)
                for c in answer.invalid_tool_calls
            ],
            usage_metadata=_usage(completion),
            response_metadata=self._response_metadata(completion, plan),
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _response_metadata(self, completion: Completion, plan: CallPlan) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "model_name": self.pipeline.served_model_name(plan, completion),
            "finish_reason": completion.finish_reason,
            "stop_string": completion.stop_string,
            "attributes": dict(plan.attributes),
        }
        if completion.logprobs is not None:
            metadata["logprobs"] = completion.logprobs
        if completion.best_of is not None:
            metadata["best_of"] = completion.best_of
        return metadata

    # -- LangChain entry points ---------------------------------------------------------

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        plan = self._plan([messages], stop, kwargs)
        completion = _take_prefetched(plan) or self.pipeline.send(plan)[0]
        return self._chat_result(completion, plan)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        plan = self._plan([messages], stop, kwargs)
        completion = _take_prefetched(plan) or (await self.pipeline.asend(plan))[0]
        return self._chat_result(completion, plan)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        plan = self._plan([messages], stop, kwargs)
        for piece in self.pipeline.stream(plan, _take_prefetched(plan)):
            chunk = self._stream_chunk(piece, plan)
            if run_manager:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        plan = self._plan([messages], stop, kwargs)
        pieces = self.pipeline.astream(plan, _take_prefetched(plan))
        try:
            async for piece in pieces:
                chunk = self._stream_chunk(piece, plan)
                if run_manager:
                    await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                yield chunk
        finally:
            await pieces.aclose()  # leaving early closes the connection now

    def _stream_chunk(self, piece: StreamChunk, plan: CallPlan) -> ChatGenerationChunk:
        if piece.completion is None:
            return ChatGenerationChunk(message=AIMessageChunk(content=piece.text))
        # The last chunk: the rest of the text, tool calls, usage and metadata. LangChain
        # merges chunks, so the stream adds up to the message of invoke.
        return self._single_chunk(self._chat_result(piece.completion, plan), piece.text)

    @staticmethod
    def _single_chunk(result: ChatResult, content: str | None = None) -> ChatGenerationChunk:
        """The answer as one chunk; ``content`` replaces its text (a stream's last chunk)."""
        message = result.generations[0].message
        assert isinstance(message, AIMessage)
        # LangChain rebuilds tool_calls and invalid_tool_calls from tool_call_chunks each
        # time chunks are merged (also for the one chunk of invoke on a streaming
        # instance), so every call, valid or not, must be a chunk.
        calls = [
            (call["name"], json.dumps(call["args"], ensure_ascii=False), call["id"])
            for call in message.tool_calls
        ] + [
            (call["name"], _invalid_chunk_args(call["args"], call["error"]), call["id"])
            for call in message.invalid_tool_calls
        ]
        return ChatGenerationChunk(
            message=AIMessageChunk(
                content=message.content if content is None else content,
                tool_call_chunks=[
                    tool_call_chunk(name=name, args=args, id=call_id, index=index)
                    for index, (name, args, call_id) in enumerate(calls)
                ],
                usage_metadata=message.usage_metadata,
                response_metadata=message.response_metadata,
                chunk_position="last",
            )
        )

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | bool | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Describe ``tools`` to the model in the system turn; parse its calls.

        SteerLM has no native tool calling: the tools and a fixed calling convention go
        into the system turn (see docs/tools.md), and the answer's calls are parsed into
        ``AIMessage.tool_calls``. Malformed calls become ``invalid_tool_calls``.

        Args:
            tools: LangChain tools, pydantic models, functions or OpenAI-style dicts.
            tool_choice: ``"auto"`` (or None), ``"any"``/``"required"``/True, ``"none"``,
                or a tool name (also as ``{"type": "function", "function": {"name": ...}}``).
            **kwargs: Other per-call keywords to bind.
        """
        specs = [ToolSpec.from_openai(convert_to_openai_tool(tool)) for tool in tools]
        choice = normalize_tool_choice(_tool_choice_name(tool_choice), specs)
        return self.bind(tools=specs, tool_choice=choice, **kwargs)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type | None = None,
        *,
        method: Literal["json_schema", "function_calling", "json_mode"] = "json_schema",
        include_raw: bool = False,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | BaseModel]:
        """Answer with a JSON value matching ``schema``, parsed and validated.

        Args:
            schema: A pydantic model, v2 or ``pydantic.v1`` (the result is an instance),
                a TypedDict or a JSON schema (the result is a dict).
            method: ``"json_schema"`` puts the schema in the system turn and reads the
                JSON from the answer, even wrapped in prose or a code fence;
                ``"function_calling"`` asks for a call of a tool named after the schema;
                ``"json_mode"`` is ``"json_schema"``. With ``api="openai"`` on an engine
                that constrains decoding (vLLM, TensorRT-LLM, NIM, llama.cpp) the schema
                also goes in its own key, so the answer is valid by construction
                (docs/engines.md).
            include_raw: Return ``{"raw", "parsed", "parsing_error"}`` instead of raising
                on an answer that does not parse.
            strict: Accepted for compatibility; answers are always validated against the
                schema, constrained or not.
        """
        if schema is None:
            raise SteerLMInputError("with_structured_output needs a schema.")
        if method == "function_calling":
            return super().with_structured_output(schema, include_raw=include_raw, **kwargs)
        if method not in ("json_schema", "json_mode"):
            raise SteerLMInputError(
                f"Unknown method {method!r}: use 'json_schema', 'function_calling' or 'json_mode'."
            )
        if kwargs:
            raise SteerLMInputError(f"Unsupported arguments: {', '.join(kwargs)}.")
        json_schema = _json_schema(schema)
        llm = self.bind(
            json_schema=json_schema,
            ls_structured_output_format={"kwargs": {"method": method}, "schema": json_schema},
        )
        # A pydantic.v1 instance is not a (v2) BaseModel for type checkers; it is returned.
        parser: Runnable[BaseMessage, Any] = RunnableLambda(
            lambda message: parse_structured(message, schema, json_schema)
        )
        if not include_raw:
            return llm | parser
        parsed = RunnablePassthrough.assign(
            parsed=itemgetter("raw") | parser, parsing_error=lambda _: None
        )
        failed = RunnablePassthrough.assign(parsed=lambda _: None)
        return RunnableMap(raw=llm) | parsed.with_fallbacks([failed], exception_key="parsing_error")

    def batch(
        self,
        inputs: list[LanguageModelInput],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[AIMessage]:
        """Answer many inputs with one request to the server (128 prompts per request).

        Inputs whose answer is in the LLM cache (the instance's ``cache``, or the global
        one from ``set_llm_cache``) are not sent; the ``rate_limiter`` is acquired once per
        request that is actually sent. Each input still gets its own run, callbacks, trace
        and cache update. Keywords apply to all inputs, as in :meth:`invoke`.
        """
        plan = self._batch_plan([i for i in inputs if not self._cached(i, kwargs)], kwargs)
        if plan is None:
            return super().batch(inputs, config, return_exceptions=return_exceptions, **kwargs)
        try:
            for _ in range(self._requests(plan)):
                if self.rate_limiter:
                    self.rate_limiter.acquire(blocking=True)
            outcomes: Sequence[Completion | BaseException] = self.pipeline.send(plan)
        except Exception as exc:  # each input's run reports it
            outcomes = [exc] * len(plan.prompts)
        with prefetched(plan, outcomes):
            runner = self.model_copy(update={"rate_limiter": None})  # acquired above
            return super(SteerLMChat, runner).batch(
                inputs, config, return_exceptions=return_exceptions, **kwargs
            )

    async def abatch(
        self,
        inputs: list[LanguageModelInput],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[AIMessage]:
        """Async :meth:`batch`: one non-blocking request for the inputs not in the cache."""
        misses = [i for i in inputs if not await self._acached(i, kwargs)]
        plan = self._batch_plan(misses, kwargs)
        if plan is None:
            return await super().abatch(
                inputs, config, return_exceptions=return_exceptions, **kwargs
            )
        try:
            for _ in range(self._requests(plan)):
                if self.rate_limiter:
                    await self.rate_limiter.aacquire(blocking=True)
            outcomes: Sequence[Completion | BaseException] = await self.pipeline.asend(plan)
        except Exception as exc:
            outcomes = [exc] * len(plan.prompts)
        with prefetched(plan, outcomes):
            runner = self.model_copy(update={"rate_limiter": None})
            return await super(SteerLMChat, runner).abatch(
                inputs, config, return_exceptions=return_exceptions, **kwargs
            )

    def _requests(self, plan: CallPlan) -> int:
        """How many requests the transport sends for ``plan`` (the rate limiter's count)."""
        per_request = self.transport.max_prompts_per_request or len(plan.prompts)
        return -(-len(plan.prompts) // per_request)

    def _batch_plan(self, inputs: Sequence[LanguageModelInput], kwargs: Any) -> CallPlan | None:
        # Bad input raises here, before anything is sent, as invoke() would.
        if not inputs:
            return None
        conversations = [self._convert_input(item).to_messages() for item in inputs]
        return self._plan(
            conversations, kwargs.get("stop"), {k: v for k, v in kwargs.items() if k != "stop"}
        )

    def _cache_entry(
        self, item: LanguageModelInput, kwargs: dict[str, Any]
    ) -> tuple[BaseCache, str, str] | None:
        """The cache, prompt key and llm string LangChain's run of ``item`` will look up."""
        cache = self.cache if isinstance(self.cache, BaseCache) else get_llm_cache()
        if self.cache is False or cache is None:
            return None
        messages = [
            m.model_copy(update={"id": None}) if getattr(m, "id", None) is not None else m
            for m in self._convert_input(item).to_messages()
        ]
        options = {k: v for k, v in kwargs.items() if k != "stop"}
        return cache, dumps(messages), self._get_llm_string(stop=kwargs.get("stop"), **options)

    def _cached(self, item: LanguageModelInput, kwargs: dict[str, Any]) -> bool:
        entry = self._cache_entry(item, kwargs)
        return entry is not None and isinstance(entry[0].lookup(entry[1], entry[2]), list)

    async def _acached(self, item: LanguageModelInput, kwargs: dict[str, Any]) -> bool:
        entry = self._cache_entry(item, kwargs)
        return entry is not None and isinstance(await entry[0].alookup(entry[1], entry[2]), list)


@contextmanager
def prefetched(plan: CallPlan, outcomes: Sequence[Completion | BaseException]) -> Iterator[None]:
    """Hand completions fetched in one request to the per-input runs LangChain starts next.

    ``batch()``/``abatch()`` fetch every uncached answer in one request, then let
    LangChain run each input as usual (its own callbacks, trace, cache update), where
    ``_generate`` takes its completion from here by prompt instead of sending. This relies
    on LangChain copying context variables into the worker threads and tasks of its
    ``batch`` (``contextvars.copy_context`` in ``langchain_core.runnables.config``), so the
    value set here is seen there. Prompts that are asked twice get their answers in order.
    """
    by_prompt: dict[str, deque[Completion | BaseException]] = defaultdict(deque)
    for prompt, outcome in zip(plan.prompts, outcomes, strict=True):
        by_prompt[prompt].append(outcome)
    token = _PREFETCHED.set(by_prompt)
    try:
        yield
    finally:
        _PREFETCHED.reset(token)


def _take_prefetched(plan: CallPlan) -> Completion | None:
    prefetched = _PREFETCHED.get()
    queue = prefetched.get(plan.prompts[0]) if prefetched else None
    if not queue:
        return None
    outcome = queue.popleft()
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def to_turns(messages: Sequence[BaseMessage]) -> list[Turn]:
    """Translate LangChain messages into neutral turns (see :func:`steerlm.turns.to_turns`).

    Raises:
        SteerLMInputError: A message SteerLM cannot render (images, audio, files...).
    """
    return neutral_turns([_message(message) for message in messages])


def _message(message: BaseMessage) -> Message:
    if isinstance(message, ToolMessage):
        return Message(
            "tool", message_text(message), tool_call_id=message.tool_call_id, tool_name=message.name
        )
    if isinstance(message, AIMessage):
        calls = [ToolCallRecord(c["id"], c["name"], c["args"]) for c in message.tool_calls]
        return Message("assistant", message_text(message), _attributes(message), calls)
    return Message(_role(message), message_text(message))


def _role(message: BaseMessage) -> MessageRole:
    if isinstance(message, SystemMessage):
        return "system"
    if isinstance(message, HumanMessage):
        return "user"
    if isinstance(message, AIMessage):
        return "assistant"
    if isinstance(message, ChatMessage) and message.role in _ROLES:
        return _ROLES[message.role]
    raise SteerLMInputError(
        f"SteerLMChat cannot render a {type(message).__name__} "
        f"(role {getattr(message, 'role', message.type)!r}): use system, human, AI and "
        "tool messages."
    )


def message_text(message: BaseMessage) -> str:
    """The text of a message; text content blocks are joined.

    Raises:
        SteerLMInputError: The message has non-text content (image, audio, file...).
    """
    content = message.content
    if isinstance(content, str):
        return content
    parts = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and block.get("type") == "text":
            parts.append(str(block.get("text", "")))
        elif isinstance(block, dict) and block.get("type") in _CALL_BLOCKS:
            continue  # a provider's copy of a tool call: rendered from message.tool_calls
        else:
            kind = block.get("type") if isinstance(block, dict) else type(block).__name__
            raise SteerLMInputError(
                f"SteerLM is text-only: a {type(message).__name__} has a {kind!r} content "
                "block. Send text, or describe the image/audio/file in words."
            )
    return "".join(parts)


def _attributes(message: BaseMessage) -> Any:
    # Answers made by SteerLMChat record their attributes; the prompt re-renders them.
    return message.response_metadata.get("attributes") if isinstance(message, AIMessage) else None


def _usage(completion: Completion) -> UsageMetadata | None:
    if completion.usage is None:
        return None
    return UsageMetadata(
        input_tokens=completion.usage.prompt_tokens,
        output_tokens=completion.usage.completion_tokens,
        total_tokens=completion.usage.total_tokens,
    )


def _tool_choice_name(choice: str | bool | dict[str, Any] | None) -> str | None:
    if choice is True:
        return "any"
    if choice is False:
        return None
    if isinstance(choice, dict):
        return str(choice.get("function", {}).get("name") or choice.get("name"))
    return choice


def _invalid_chunk_args(args: str | None, error: str | None) -> str:
    # A chunk has no error field, and LangChain reads any args it can repair into a JSON
    # object as a valid call: a bad call whose arguments are JSON (wrong types, unknown
    # tool) would become a call to execute. "(reason) args" is never JSON, so the call
    # stays invalid, and the reason stays readable.
    return f"({error or 'invalid call'}) {args or ''}".rstrip()


def _json_schema(schema: dict[str, Any] | type) -> dict[str, Any]:
    """The schema in LangChain's standard form (``convert_to_json_schema``).

    The same schema goes into the prompt and to callbacks and tracing
    (``ls_structured_output_format``). A JSON schema without a ``title`` (which LangChain's
    form requires) is used as it is.
    """
    if isinstance(schema, dict) and "title" not in schema:
        return schema
    return convert_to_json_schema(schema)


def parse_structured(
    message: BaseMessage, schema: dict[str, Any] | type, json_schema: dict[str, Any]
) -> Any:
    """Read and validate the JSON answer of ``with_structured_output``.

    Returns:
        An instance of a pydantic (v2 or v1) ``schema``, else a dict.

    Raises:
        OutputParserException: No JSON, or JSON that does not match the schema.
    """
    text = message_text(message)
    try:
        value = extract_json(text)
    except ValueError as exc:
        raise OutputParserException(str(exc), llm_output=text) from exc
    if isinstance(schema, type) and issubclass(schema, (BaseModel, BaseModelV1)):
        try:
            if issubclass(schema, BaseModel):
                return schema.model_validate(value)
            return schema.parse_obj(value)
        except ValueError as exc:
            raise OutputParserException(
                f"The JSON does not match {schema.__name__}: {exc}", llm_output=text
            ) from exc
    problem = schema_problem(value, json_schema, "answer")
    if problem or not isinstance(value, dict):
        raise OutputParserException(
            f"The JSON does not match the schema: {problem or 'not an object'}", llm_output=text
        )
    return value
