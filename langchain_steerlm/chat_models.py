"""LangChain chat model for NVIDIA SteerLM on a NeMo text-generation server."""

from __future__ import annotations

import contextvars
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams, LanguageModelInput
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import RunnableConfig
from pydantic import Field

from steerlm import CallPlan, Completion, SteerLMInputError, SteerLMSettings, Turn
from steerlm.types import Role

# Completions fetched in one request by batch()/abatch(), keyed by prompt, for the
# per-input runs that LangChain then starts (so callbacks and tracing stay per input).
_PREFETCHED: contextvars.ContextVar[dict[str, deque[Completion | BaseException]] | None] = (
    contextvars.ContextVar("steerlm_prefetched", default=None)
)

_ROLES: dict[str, Role] = {
    "system": "system",
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "ai": "assistant",
}


class SteerLMChat(BaseChatModel, SteerLMSettings):
    """NVIDIA SteerLM chat model served by NeMo's text-generation server.

    Every answer is steered by *attributes* (quality, humor, toxicity...), set on the
    instance and overridable per call. Messages become the SteerLM prompt; the request
    goes to ``PUT {base_url}/generate``; stop strings apply on the server and again on the
    client.

    Setup:
        Start a server: NeMo's ``megatron_gpt_eval.py ... server=True``, or for
        development ``steerlm-server`` (installed with the ``[server]`` extra).

        .. code-block:: bash

            pip install "steerlm-integrations[langchain]"
            export STEERLM_BASE_URL=http://localhost:5555

    Key init args:
        base_url: Server root; ``$STEERLM_BASE_URL``, then ``http://localhost:5555``.
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

    Invoke with per-call attributes (merged over the instance's, key by key):
        .. code-block:: python

            llm.invoke("Tell me about techno.", attributes={"humor": 7}, max_tokens=200)
            llm.bind(attributes={"humor": 9}).invoke("And about jazz?")

    The answer's ``response_metadata["attributes"]`` records the attributes used, and
    the prompt reuses them when the message comes back in a later turn's history.
    """

    streaming: bool = Field(
        default=False, description="Stream by default (the answer arrives as one chunk)."
    )

    @property
    def _llm_type(self) -> str:
        return "steerlm-chat"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "base_url": self.client.base_url,
            "preset": self.resolved_preset.name,
            "attributes": self.merged_attributes(),
            **self.generation_options().__dict__,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        options = self.generation_options(
            {
                k: v
                for k, v in kwargs.items()
                if k in ("temperature", "max_tokens") and v is not None
            }
        )
        params = LangSmithParams(
            ls_provider="steerlm",
            ls_model_name=str(kwargs.get("model") or self.model_name),
            ls_model_type="chat",
            ls_temperature=options.temperature or 0.0,
            ls_max_tokens=options.max_tokens,
        )
        stops = [*(self.stop or []), *(stop or [])]
        if stops:
            params["ls_stop"] = stops
        return params

    # -- planning: messages and keywords -> prompt and options (no I/O) -------------------

    def _plan(
        self, conversations: Sequence[Sequence[BaseMessage]], stop: list[str] | None, kwargs: Any
    ) -> CallPlan:
        kwargs = {k: v for k, v in kwargs.items() if k != "stream"}
        return self.plan_call(
            [to_turns(messages) for messages in conversations], {**kwargs, "stop": stop}
        )

    def _chat_result(self, completion: Completion, plan: CallPlan) -> ChatResult:
        message = AIMessage(
            content=completion.text,
            usage_metadata=_usage(completion),
            response_metadata=self._response_metadata(completion, plan),
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _response_metadata(self, completion: Completion, plan: CallPlan) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "model_name": plan.model_name,
            "finish_reason": completion.finish_reason,
            "stop_string": completion.stop_string,
            "attributes": dict(plan.attributes),
        }
        if completion.logprobs is not None:
            metadata["logprobs"] = completion.logprobs
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
        completion = _take_prefetched(plan) or self.send(plan)[0]
        return self._chat_result(completion, plan)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        plan = self._plan([messages], stop, kwargs)
        completion = _take_prefetched(plan) or (await self.asend(plan))[0]
        return self._chat_result(completion, plan)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        # NeMo's /generate does not stream: the whole answer is one honest chunk.
        chunk = self._single_chunk(self._generate(messages, stop, **kwargs))
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
        chunk = self._single_chunk(await self._agenerate(messages, stop, **kwargs))
        if run_manager:
            await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
        yield chunk

    @staticmethod
    def _single_chunk(result: ChatResult) -> ChatGenerationChunk:
        message = result.generations[0].message
        assert isinstance(message, AIMessage)
        return ChatGenerationChunk(
            message=AIMessageChunk(
                content=message.content,
                usage_metadata=message.usage_metadata,
                response_metadata=message.response_metadata,
                chunk_position="last",
            )
        )

    def batch(
        self,
        inputs: list[LanguageModelInput],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[AIMessage]:
        """Answer many inputs with one request to the server (128 prompts per request).

        Each input still gets its own run, callbacks and trace. Keywords apply to all
        inputs, as in :meth:`invoke`.
        """
        plan = self._batch_plan(inputs, kwargs)
        if plan is None:
            return super().batch(inputs, config, return_exceptions=return_exceptions, **kwargs)
        try:
            outcomes: Sequence[Completion | BaseException] = self.send(plan)
        except Exception as exc:  # each input's run reports it
            outcomes = [exc] * len(plan.prompts)
        token = _PREFETCHED.set(_index(plan, outcomes))
        try:
            return super().batch(inputs, config, return_exceptions=return_exceptions, **kwargs)
        finally:
            _PREFETCHED.reset(token)

    async def abatch(
        self,
        inputs: list[LanguageModelInput],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[AIMessage]:
        """Async :meth:`batch`: one non-blocking request for all inputs."""
        plan = self._batch_plan(inputs, kwargs)
        if plan is None:
            return await super().abatch(
                inputs, config, return_exceptions=return_exceptions, **kwargs
            )
        try:
            outcomes: Sequence[Completion | BaseException] = await self.asend(plan)
        except Exception as exc:
            outcomes = [exc] * len(plan.prompts)
        token = _PREFETCHED.set(_index(plan, outcomes))
        try:
            return await super().abatch(
                inputs, config, return_exceptions=return_exceptions, **kwargs
            )
        finally:
            _PREFETCHED.reset(token)

    def _batch_plan(self, inputs: Sequence[LanguageModelInput], kwargs: Any) -> CallPlan | None:
        # Bad input raises here, before anything is sent, as invoke() would.
        if len(inputs) < 2 or self.cache:
            return None
        conversations = [self._convert_input(item).to_messages() for item in inputs]
        return self._plan(
            conversations, kwargs.get("stop"), {k: v for k, v in kwargs.items() if k != "stop"}
        )


def _index(
    plan: CallPlan, outcomes: Sequence[Completion | BaseException]
) -> dict[str, deque[Completion | BaseException]]:
    by_prompt: dict[str, deque[Completion | BaseException]] = defaultdict(deque)
    for prompt, outcome in zip(plan.prompts, outcomes, strict=True):
        by_prompt[prompt].append(outcome)
    return by_prompt


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
    """Translate LangChain messages into neutral turns.

    Raises:
        SteerLMInputError: A message type SteerLM cannot render (tool results, images...).
    """
    return [
        Turn(_role(message), message_text(message), _attributes(message)) for message in messages
    ]


def _role(message: BaseMessage) -> Role:
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
        f"(role {getattr(message, 'role', message.type)!r}): use system, human and AI "
        "messages. SteerLM has no native tool calling."
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
