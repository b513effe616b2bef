"""The request pipeline both adapters share: plan a call, send it, stream it, parse it.

:meth:`CallPipeline.plan` turns neutral turns plus per-call keywords into prompts and
options, before any network I/O; :meth:`~CallPipeline.send` and
:meth:`~CallPipeline.stream` hand the plan to the instance's transport; the adapters only
translate messages and answers. The pipeline reads what a transport declares
(:class:`~steerlm.transports.base.Transport`), never its class.
"""

from __future__ import annotations

import difflib
from collections.abc import AsyncGenerator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from steerlm.errors import SteerLMInputError
from steerlm.options import OPTION_NAMES, GenerationOptions, end_strings, normalize_stop
from steerlm.presets import AttributeValue
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

if TYPE_CHECKING:
    from steerlm.settings import SteerLMSettings
    from steerlm.transports.base import Transport

#: Per-call keywords besides the generation options.
CALL_KEYWORDS = frozenset({"attributes", "stop", "model", "tools", "tool_choice", "json_schema"})
_VALID_KEYWORDS = sorted(CALL_KEYWORDS | OPTION_NAMES)


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


class CallPipeline:
    """Plan, send, stream and parse the calls of one model instance.

    Get it from :attr:`steerlm.settings.SteerLMSettings.pipeline`; it reads the
    instance's settings as they are at each call.

    Args:
        settings: The model instance (its fields and its transport).
    """

    __slots__ = ("settings", "transport")

    def __init__(self, settings: SteerLMSettings) -> None:
        self.settings = settings
        self.transport: Transport = settings.transport

    # -- planning (no I/O) -----------------------------------------------------------------

    def plan(
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
            SteerLMInputError: An unknown keyword (with the closest valid one), a bad
                option, bad attributes or a conversation that cannot be rendered.
        """
        settings = self.settings
        kwargs = {key: value for key, value in call_kwargs.items() if value is not None}
        _check_keywords(kwargs)
        call_model = kwargs.pop("model", None)
        preset = settings.resolved_preset
        attributes = settings.merged_attributes(kwargs.pop("attributes", None))
        stops = end_strings(
            preset.end_strings,
            normalize_stop(settings.stop),
            normalize_stop(kwargs.pop("stop", None)),
        )
        tools, instructions = _instructions(
            kwargs.pop("tools", ()),
            kwargs.pop("tool_choice", None),
            kwargs.pop("json_schema", None),
        )
        options = settings.generation_options(kwargs)
        prompts = tuple(
            turns
            if isinstance(turns, str)
            else build_prompt(turns, attributes, preset, settings.system_prompt, instructions)
            for turns in conversations
        )
        return CallPlan(
            prompts=prompts,
            attributes=attributes,
            options=options,
            stops=stops,
            model_name=str(call_model or settings.model_name),
            model_from_call=call_model is not None,
            tools=tools,
        )

    def streams(self, plan: CallPlan) -> bool:
        """Whether a stream of ``plan`` yields tokens, or the whole answer as one piece.

        Tokens need a transport that streams them. With tools, whether the text is a call
        is known only from the whole answer, so the answer is one piece.
        """
        return self.transport.streams_tokens and not plan.tools

    # -- sending ---------------------------------------------------------------------------

    def send(self, plan: CallPlan) -> list[Completion]:
        """Send a planned call: one completion per prompt, in order."""
        return self.transport.generate(plan.prompts, plan.options, plan.stops)

    async def asend(self, plan: CallPlan) -> list[Completion]:
        """Async :meth:`send`, non-blocking."""
        return await self.transport.agenerate(plan.prompts, plan.options, plan.stops)

    def stream(self, plan: CallPlan, fetched: Completion | None = None) -> Iterator[StreamChunk]:
        """Stream the answer to the plan's one prompt: the one streaming path.

        Where :meth:`streams` says so, text arrives as it is generated, cut at stop
        strings even across chunks. Otherwise (a server that does not stream, or tools
        offered) the answer is one chunk holding its content (tool calls parsed out). The
        last chunk always carries the whole :class:`~steerlm.types.Completion`. Closing
        the iterator early closes the connection.

        Args:
            plan: A plan of one prompt.
            fetched: The answer, when it was already fetched (by a batch): streamed as
                one chunk, with nothing sent.
        """
        if fetched is None and self.streams(plan):
            yield from self.transport.stream(plan.prompts[0], plan.options, plan.stops)
            return
        completion = fetched or self.send(plan)[0]
        yield StreamChunk(self.parse(plan, completion).content, completion)

    async def astream(
        self, plan: CallPlan, fetched: Completion | None = None
    ) -> AsyncGenerator[StreamChunk, None]:
        """Async :meth:`stream`; leaving early closes the connection at once."""
        if fetched is None and self.streams(plan):
            chunks = self.transport.astream(plan.prompts[0], plan.options, plan.stops)
            try:
                async for chunk in chunks:
                    yield chunk
            finally:
                await chunks.aclose()  # at once, not when the generator is collected
            return
        completion = fetched or (await self.asend(plan))[0]
        yield StreamChunk(self.parse(plan, completion).content, completion)

    # -- answers ---------------------------------------------------------------------------

    @staticmethod
    def parse(plan: CallPlan, completion: Completion) -> ParsedAnswer:
        """Split a completion into content and tool calls (none unless tools were sent)."""
        if not plan.tools:
            return ParsedAnswer(content=completion.text, tool_calls=[], invalid_tool_calls=[])
        return parse_tool_calls(completion.text, plan.tools)

    def served_model_name(self, plan: CallPlan, completion: Completion) -> str:
        """The model to report for ``completion``: a per-call ``model``, else the one the
        server says answered it (where the transport reports one), else the plan's."""
        model = completion.raw.get("model") if self.transport.reports_model else None
        if plan.model_from_call or not (isinstance(model, str) and model):
            return plan.model_name
        return model


def _check_keywords(kwargs: Mapping[str, Any]) -> None:
    unknown = sorted(set(kwargs) - OPTION_NAMES - CALL_KEYWORDS)
    if not unknown:
        return
    hints = []
    for key in unknown:
        close = difflib.get_close_matches(key, _VALID_KEYWORDS, n=1)
        hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    raise SteerLMInputError(
        f"Unknown keyword(s) {', '.join(hints)} for a SteerLM call. "
        f"Valid: {', '.join(_VALID_KEYWORDS)}."
    )


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
