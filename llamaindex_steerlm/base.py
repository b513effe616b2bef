"""LlamaIndex LLM for NVIDIA SteerLM on NeMo or an OpenAI-compatible server."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

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
    ToolCallBlock,
)
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import ToolSelection
from llama_index.core.prompts import BasePromptTemplate
from llama_index.core.types import PydanticProgramMode
from llama_index_instrumentation import get_dispatcher
from pydantic import BaseModel

from steerlm import CallPlan, Completion, SteerLMInputError, SteerLMSettings, Turn
from steerlm.presets import AttributeValue
from steerlm.tools import REQUIRED, ToolSpec, extract_json
from steerlm.turns import Message, ToolCallRecord
from steerlm.turns import MessageRole as Role
from steerlm.turns import to_turns as neutral_turns
from steerlm.types import StreamChunk

if TYPE_CHECKING:
    from llama_index.core.tools.types import BaseTool

_ROLES: dict[MessageRole, Role] = {
    MessageRole.TOOL: "tool",
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

dispatcher = get_dispatcher(__name__)

_Method = TypeVar("_Method", bound=Callable[..., Any])
_Model = TypeVar("_Model", bound=BaseModel)


def _readable(decorator: Callable[[_Method], Any]) -> Callable[[_Method], _Method]:
    """Apply a LlamaIndex callback decorator, keeping the method's signature for help().

    The decorators copy the docstring but leave their own ``(_self, *args, **kwargs)``
    signature, which is what ``help()`` and ``inspect.signature`` would show.
    """

    def apply(method: _Method) -> _Method:
        signature = inspect.signature(method)  # before: the decorator sets __wrapped__ = True
        decorated = decorator(method)
        decorated.__signature__ = signature
        return decorated  # type: ignore[no-any-return]

    return apply


class SteerLMChat(FunctionCallingLLM, SteerLMSettings):
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

    With ``api="openai"`` (``base_url`` an API root such as ``http://localhost:8000/v1``
    of vLLM, TensorRT-LLM, NIM or llama.cpp), ``stream_chat``/``astream_chat``/
    ``stream_complete``/``astream_complete`` yield tokens as they are generated; with
    NeMo's ``/generate`` the answer is one response.

    Fields are those of the LangChain ``SteerLMChat``: ``base_url``, ``api``, ``api_key``,
    ``default_headers``, ``model``, ``preset``,
    ``attributes``, ``system_prompt``, ``max_tokens``, ``temperature``, ``top_k``,
    ``top_p``, ``repetition_penalty``, ``min_tokens``, ``random_seed``, ``stop``,
    ``logprobs``, ``timeout``, ``max_retries``.
    """

    @classmethod
    def class_name(cls) -> str:
        """The name LlamaIndex serialises this class under: ``"SteerLMChat"``."""
        return "SteerLMChat"

    @property
    def metadata(self) -> LLMMetadata:
        """Context window, output tokens, model name; a chat and function-calling model."""
        return LLMMetadata(
            # The user's setting, else the server's (asked once, here on first use: not at
            # construction), else the preset's.
            context_window=self.resolved_context_window,
            num_output=self.max_tokens,
            is_chat_model=True,
            is_function_calling_model=True,  # through the prompt convention of steerlm.tools
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
        return self.pipeline.plan([turns], kwargs)

    def _plan_complete(self, prompt: str, formatted: bool, kwargs: dict[str, Any]) -> CallPlan:
        # formatted=True: the prompt is already a SteerLM prompt; send it as it is.
        return self.pipeline.plan([prompt if formatted else [Turn("user", prompt)]], kwargs)

    def _chat_response(self, completion: Completion, plan: CallPlan) -> ChatResponse:
        answer = self.pipeline.parse(plan, completion)
        calls: dict[str, Any] = {}
        if plan.tools:
            calls["tool_calls"] = [
                {"id": c.id, "name": c.name, "arguments": c.arguments} for c in answer.tool_calls
            ]
            calls["invalid_tool_calls"] = [
                {"id": c.id, "name": c.name, "arguments": c.arguments, "error": c.error}
                for c in answer.invalid_tool_calls
            ]
        usage: dict[str, Any] = {}
        if completion.usage is not None:
            usage = {
                "prompt_tokens": completion.usage.prompt_tokens,
                "completion_tokens": completion.usage.completion_tokens,
                "total_tokens": completion.usage.total_tokens,
            }
        message = ChatMessage(
            role=MessageRole.ASSISTANT,
            content=answer.content,
            additional_kwargs={"attributes": dict(plan.attributes), **calls},
        )
        return ChatResponse(
            message=message,
            raw=completion.raw,
            delta=answer.content,
            logprobs=None,
            additional_kwargs={
                **usage,
                "model_name": self.pipeline.served_model_name(plan, completion),
                "finish_reason": completion.finish_reason,
                "stop_string": completion.stop_string,
                **({"token_logprobs": completion.logprobs} if completion.logprobs else {}),
                **({"best_of": completion.best_of} if completion.best_of else {}),
            },
        )

    # -- chat ---------------------------------------------------------------------------

    @_readable(llm_chat_callback())
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """Answer a conversation.

        Args:
            messages: System, user, assistant and tool messages; the last one is the
                user's.
            **kwargs: Per-call ``attributes``, ``stop``, ``max_tokens``, ``temperature``
                and the other generation options (see docs/settings.md).

        Returns:
            The answer; ``message.additional_kwargs["attributes"]`` holds the attributes
            used, ``additional_kwargs`` the token counts and the finish reason.

        Raises:
            SteerLMInputError: A bad keyword, attribute or message, before any request.
            SteerLMError: The server failed, timed out or answered something unusable.
        """
        plan = self._plan_chat(messages, kwargs)
        return self._chat_response(self.pipeline.send(plan)[0], plan)

    @_readable(llm_chat_callback())
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """Async :meth:`chat`: a non-blocking request."""
        plan = self._plan_chat(messages, kwargs)
        return self._chat_response((await self.pipeline.asend(plan))[0], plan)

    @_readable(llm_chat_callback())
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        """:meth:`chat` as a stream of responses, each with its new text in ``delta``.

        With ``api="openai"`` the text arrives as it is generated (stop strings are cut
        even across chunks; text that could become one is held back); the last response
        carries the token counts and finish reason. With tools offered, text that is or
        could become a tool call is held back and the calls come with the last response.
        With ``api="nemo"`` (``/generate`` does not stream), on an engine that does not
        stream, or for an answer forced to be a tool call, the answer is one response.
        Leaving the loop early closes the connection.
        """
        plan = self._plan_chat(messages, kwargs)
        return self._stream_responses(plan)

    @_readable(llm_chat_callback())
    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        """Async :meth:`stream_chat`."""
        plan = self._plan_chat(messages, kwargs)
        return self._astream_responses(plan)

    def _stream_responses(self, plan: CallPlan) -> ChatResponseGen:
        shown = ""
        for piece in self.pipeline.stream(plan):
            yield self._stream_response(piece, plan, shown)
            shown += piece.text

    async def _astream_responses(self, plan: CallPlan) -> ChatResponseAsyncGen:
        shown = ""
        pieces = self.pipeline.astream(plan)
        try:
            async for piece in pieces:
                yield self._stream_response(piece, plan, shown)
                shown += piece.text
        finally:
            await pieces.aclose()  # leaving early closes the connection now

    def _stream_response(self, piece: StreamChunk, plan: CallPlan, shown: str) -> ChatResponse:
        if piece.completion is not None:  # the last: the whole answer, calls, counts, finish
            response = self._chat_response(piece.completion, plan)
            response.delta = piece.text
            return response
        message = ChatMessage(
            role=MessageRole.ASSISTANT,
            content=shown + piece.text,
            additional_kwargs={"attributes": dict(plan.attributes)},
        )
        return ChatResponse(message=message, delta=piece.text)

    # -- tools and structured output ----------------------------------------------------

    def _prepare_chat_with_tools(
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        messages = list(chat_history or [])
        if isinstance(user_msg, str):
            messages.append(ChatMessage(role=MessageRole.USER, content=user_msg))
        elif user_msg is not None:
            messages.append(user_msg)
        specs = [
            ToolSpec(
                name=tool.metadata.get_name(),
                description=tool.metadata.description,
                parameters=tool.metadata.get_parameters_dict(),
            )
            for tool in tools
        ]
        choice = tool_choice or (REQUIRED if tool_required else None)
        return {"messages": messages, "tools": specs, "tool_choice": choice, **kwargs}

    def _validate_chat_with_tools_response(
        self,
        response: ChatResponse,
        tools: Sequence[BaseTool],
        allow_parallel_tool_calls: bool = False,
        **kwargs: Any,
    ) -> ChatResponse:
        calls = response.message.additional_kwargs.get("tool_calls") or []
        if not allow_parallel_tool_calls and len(calls) > 1:
            response.message.additional_kwargs["tool_calls"] = calls[:1]
        return response

    def get_tool_calls_from_response(
        self, response: ChatResponse, error_on_no_tool_call: bool = True, **kwargs: Any
    ) -> list[ToolSelection]:
        """The valid tool calls of a response of :meth:`chat_with_tools`.

        Raises:
            ValueError: No valid call while ``error_on_no_tool_call``; says why calls
                were invalid, if any were written.
        """
        extra = response.message.additional_kwargs
        calls = [
            ToolSelection(tool_id=c["id"], tool_name=c["name"], tool_kwargs=c["arguments"])
            for c in extra.get("tool_calls") or []
        ]
        if not calls and error_on_no_tool_call:
            problems = "; ".join(c["error"] for c in extra.get("invalid_tool_calls") or [])
            raise ValueError(
                "The model called no tool"
                + (f": its calls were invalid ({problems})" if problems else "")
                + f". It answered: {(response.message.content or '')[:200]!r}"
            )
        return calls

    @dispatcher.span
    def structured_predict(
        self,
        output_cls: type[_Model],
        prompt: BasePromptTemplate,
        llm_kwargs: dict[str, Any] | None = None,
        **prompt_args: Any,
    ) -> _Model:
        """Answer ``prompt`` as JSON matching ``output_cls`` and validate it.

        In the default ``pydantic_program_mode`` the schema goes into the system turn and
        the JSON is read from the answer, even when wrapped in prose or a code fence.
        Other modes (``FUNCTION``, ``LLM``...) run LlamaIndex's own programs.

        Raises:
            ValueError: The answer holds no JSON, or JSON that does not validate.
        """
        if self.pydantic_program_mode != PydanticProgramMode.DEFAULT:
            result = super().structured_predict(output_cls, prompt, llm_kwargs, **prompt_args)
            return cast(_Model, result)
        messages = prompt.format_messages(llm=self, **prompt_args)
        kwargs = {**(llm_kwargs or {}), "json_schema": output_cls.model_json_schema()}
        return _validated(output_cls, self.chat(messages, **kwargs))

    @dispatcher.span
    async def astructured_predict(
        self,
        output_cls: type[_Model],
        prompt: BasePromptTemplate,
        llm_kwargs: dict[str, Any] | None = None,
        **prompt_args: Any,
    ) -> _Model:
        """Async :meth:`structured_predict`."""
        if self.pydantic_program_mode != PydanticProgramMode.DEFAULT:
            result = await super().astructured_predict(
                output_cls, prompt, llm_kwargs, **prompt_args
            )
            return cast(_Model, result)
        messages = prompt.format_messages(llm=self, **prompt_args)
        kwargs = {**(llm_kwargs or {}), "json_schema": output_cls.model_json_schema()}
        return _validated(output_cls, await self.achat(messages, **kwargs))

    # -- complete -----------------------------------------------------------------------

    @_readable(llm_completion_callback())
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        """Answer ``prompt``, sent as the one user turn of the SteerLM template.

        Args:
            prompt: The question.
            formatted: True when ``prompt`` already is a whole SteerLM prompt (ending
                with the label line): it is then sent as it is.
            **kwargs: Per-call ``attributes``, ``stop`` and generation options, as in
                :meth:`chat`.
        """
        plan = self._plan_complete(prompt, formatted, kwargs)
        return _to_completion(self._chat_response(self.pipeline.send(plan)[0], plan))

    @_readable(llm_completion_callback())
    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        """Async :meth:`complete`."""
        plan = self._plan_complete(prompt, formatted, kwargs)
        return _to_completion(self._chat_response((await self.pipeline.asend(plan))[0], plan))

    @_readable(llm_completion_callback())
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        """:meth:`complete` as a stream (token by token with ``api="openai"``, one
        response with ``api="nemo"``; see :meth:`stream_chat`)."""
        plan = self._plan_complete(prompt, formatted, kwargs)

        def gen() -> CompletionResponseGen:
            for response in self._stream_responses(plan):
                yield _to_completion(response)

        return gen()

    @_readable(llm_completion_callback())
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        """Async :meth:`stream_complete`."""
        plan = self._plan_complete(prompt, formatted, kwargs)

        async def gen() -> CompletionResponseAsyncGen:
            responses = self._astream_responses(plan)
            try:
                async for response in responses:
                    yield _to_completion(response)
            finally:
                await responses.aclose()

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
    """Translate LlamaIndex chat messages into neutral turns (see
    :func:`steerlm.turns.to_turns`).

    Raises:
        SteerLMInputError: Non-text content such as images.
    """
    return neutral_turns([_message(message) for message in messages])


def _message(message: ChatMessage) -> Message:
    extra = message.additional_kwargs
    role = _role(message)
    if role == "tool":
        return Message(
            "tool",
            _text(message),
            tool_call_id=extra.get("tool_call_id"),
            tool_name=extra.get("name"),
        )
    calls = _tool_calls(message) if role == "assistant" else []
    return Message(role, _text(message), extra.get("attributes"), calls)


def _tool_calls(message: ChatMessage) -> list[ToolCallRecord]:
    """The calls in an assistant message, ours or a provider's."""
    ours = [
        ToolCallRecord(call["id"], call["name"], call["arguments"])
        for call in message.additional_kwargs.get("tool_calls") or []
    ]
    blocks = [
        ToolCallRecord(block.tool_call_id, block.tool_name, block.tool_kwargs)
        for block in message.blocks
        if isinstance(block, ToolCallBlock)
    ]
    return ours or blocks


def _validated(output_cls: type[_Model], response: ChatResponse) -> _Model:
    text = response.message.content or ""
    try:
        return output_cls.model_validate(extract_json(text))
    except ValueError as exc:
        raise ValueError(
            f"The answer is not a valid {output_cls.__name__}: {exc}. It was: {text[:200]!r}"
        ) from exc


def _role(message: ChatMessage) -> Role:
    role = _ROLES.get(MessageRole(message.role))
    if role is None:
        raise SteerLMInputError(
            f"SteerLMChat cannot render a {message.role.value!r} message: use system, user, "
            "assistant and tool messages."
        )
    return role


def _text(message: ChatMessage) -> str:
    parts = []
    for block in message.blocks:
        if isinstance(block, ToolCallBlock):
            continue  # rendered from the message's tool calls
        if not isinstance(block, TextBlock):
            raise SteerLMInputError(
                f"SteerLM is text-only: a {message.role.value} message has a "
                f"{type(block).__name__}. Send text, or describe the content in words."
            )
        parts.append(block.text)
    return "".join(parts)
