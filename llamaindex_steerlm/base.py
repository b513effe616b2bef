"""LlamaIndex LLM for NVIDIA SteerLM on a NeMo text-generation server."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
    TextBlock,
)
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.llm import LLM

from steerlm import CallPlan, Completion, SteerLMInputError, SteerLMSettings, Turn
from steerlm.presets import AttributeValue
from steerlm.types import Role

_ROLES: dict[MessageRole, Role] = {
    MessageRole.SYSTEM: "system",
    MessageRole.DEVELOPER: "system",
    MessageRole.USER: "user",
    MessageRole.ASSISTANT: "assistant",
    MessageRole.CHATBOT: "assistant",
    MessageRole.MODEL: "assistant",
}

# The ReAct agent's output format. A small model often writes the tool's result itself;
# cutting there makes the agent run the real tool instead of trusting a made-up one.
_REACT_FORMAT_HINT = "Observation:"
_REACT_STOP = "\nObservation:"


class SteerLMChat(LLM, SteerLMSettings):
    """NVIDIA SteerLM chat model for LlamaIndex, served by NeMo's text-generation server.

    Answers are steered by *attributes* (quality, humor, toxicity...): defaults on the
    instance, per-call overrides as ``attributes=...``, or a configured copy from
    :meth:`with_attributes` for query engines and agents, which pass no keywords.

    Examples:
        .. code-block:: python

            from llama_index.core.llms import ChatMessage
            from llamaindex_steerlm import SteerLMChat

            llm = SteerLMChat(base_url="http://localhost:5555")
            llm.chat([ChatMessage(role="user", content="Hi!")], attributes={"humor": 7})
            engine = index.as_query_engine(llm=llm.with_attributes(humor=6))

    Fields are those of the LangChain ``SteerLMChat``: ``base_url``, ``model``, ``preset``,
    ``attributes``, ``system_prompt``, ``max_tokens``, ``temperature``, ``top_k``,
    ``top_p``, ``repetition_penalty``, ``min_tokens``, ``random_seed``, ``stop``,
    ``logprobs``, ``timeout``, ``max_retries``.
    """

    @classmethod
    def class_name(cls) -> str:
        return "SteerLMChat"

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(
            context_window=self.resolved_preset.context_window,
            num_output=self.max_tokens,
            is_chat_model=True,
            model_name=self.model_name,
        )

    def with_attributes(self, **attributes: AttributeValue) -> SteerLMChat:
        """A copy whose default attributes are this instance's updated with ``attributes``.

        Raises:
            InvalidAttributesError: A key or value the preset does not accept.
        """
        merged = self.merged_attributes(attributes)
        return self.model_copy(update={"attributes": merged})

    # -- planning and responses ---------------------------------------------------------

    def _plan_chat(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> CallPlan:
        turns = to_turns(messages)
        if any(t.role == "system" and _REACT_FORMAT_HINT in t.text for t in turns):
            kwargs = {**kwargs, "stop": [*(kwargs.get("stop") or []), _REACT_STOP]}
        return self.plan_call([turns], kwargs)

    def _plan_complete(self, prompt: str, formatted: bool, kwargs: dict[str, Any]) -> CallPlan:
        # formatted=True: the prompt is already a SteerLM prompt; send it as it is.
        return self.plan_call([prompt if formatted else [Turn("user", prompt)]], kwargs)

    def _chat_response(self, completion: Completion, plan: CallPlan) -> ChatResponse:
        usage: dict[str, Any] = {}
        if completion.usage is not None:
            usage = {
                "prompt_tokens": completion.usage.prompt_tokens,
                "completion_tokens": completion.usage.completion_tokens,
                "total_tokens": completion.usage.total_tokens,
            }
        message = ChatMessage(
            role=MessageRole.ASSISTANT,
            content=completion.text,
            additional_kwargs={"attributes": dict(plan.attributes)},
        )
        return ChatResponse(
            message=message,
            raw=completion.raw,
            delta=completion.text,
            logprobs=None,
            additional_kwargs={
                **usage,
                "model_name": plan.model_name,
                "finish_reason": completion.finish_reason,
                "stop_string": completion.stop_string,
                **({"token_logprobs": completion.logprobs} if completion.logprobs else {}),
            },
        )

    # -- chat ---------------------------------------------------------------------------

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        plan = self._plan_chat(messages, kwargs)
        return self._chat_response(self.send(plan)[0], plan)

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        plan = self._plan_chat(messages, kwargs)
        return self._chat_response((await self.asend(plan))[0], plan)

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        # NeMo's /generate does not stream: the answer arrives as one delta.
        plan = self._plan_chat(messages, kwargs)

        def gen() -> ChatResponseGen:
            yield self._chat_response(self.send(plan)[0], plan)

        return gen()

    @llm_chat_callback()
    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        plan = self._plan_chat(messages, kwargs)

        async def gen() -> ChatResponseAsyncGen:
            yield self._chat_response((await self.asend(plan))[0], plan)

        return gen()

    # -- complete -----------------------------------------------------------------------

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        plan = self._plan_complete(prompt, formatted, kwargs)
        return _to_completion(self._chat_response(self.send(plan)[0], plan))

    @llm_completion_callback()
    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        plan = self._plan_complete(prompt, formatted, kwargs)
        return _to_completion(self._chat_response((await self.asend(plan))[0], plan))

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        plan = self._plan_complete(prompt, formatted, kwargs)

        def gen() -> CompletionResponseGen:
            yield _to_completion(self._chat_response(self.send(plan)[0], plan))

        return gen()

    @llm_completion_callback()
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        plan = self._plan_complete(prompt, formatted, kwargs)

        async def gen() -> CompletionResponseAsyncGen:
            yield _to_completion(self._chat_response((await self.asend(plan))[0], plan))

        return gen()


def _to_completion(response: ChatResponse) -> CompletionResponse:
    return CompletionResponse(
        text=response.message.content or "",
        delta=response.delta,
        raw=response.raw,
        additional_kwargs={
            **response.additional_kwargs,
            "attributes": response.message.additional_kwargs["attributes"],
        },
    )


def to_turns(messages: Sequence[ChatMessage]) -> list[Turn]:
    """Translate LlamaIndex chat messages into neutral turns.

    Raises:
        SteerLMInputError: A tool or function message, or non-text content.
    """
    return [
        Turn(_role(message), _text(message), message.additional_kwargs.get("attributes"))
        for message in messages
    ]


def _role(message: ChatMessage) -> Role:
    role = _ROLES.get(MessageRole(message.role))
    if role is None:
        raise SteerLMInputError(
            f"SteerLMChat cannot render a {message.role.value!r} message: use system, user "
            "and assistant messages. SteerLM has no native tool calling; use ReActAgent."
        )
    return role


def _text(message: ChatMessage) -> str:
    parts = []
    for block in message.blocks:
        if not isinstance(block, TextBlock):
            raise SteerLMInputError(
                f"SteerLM is text-only: a {message.role.value} message has a "
                f"{type(block).__name__}. Send text, or describe the content in words."
            )
        parts.append(block.text)
    return "".join(parts)
