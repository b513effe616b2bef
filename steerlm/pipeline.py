"""The request pipeline both adapters share: plan a call, send it, stream it, parse it.

:meth:`CallPipeline.plan` turns neutral turns plus per-call keywords into prompts and
options, before any network I/O; :meth:`~CallPipeline.send` and
:meth:`~CallPipeline.stream` hand the plan to the instance's transport; the adapters only
translate messages and answers. The pipeline reads what a transport declares
(:class:`~steerlm.transports.base.Transport`), never its class.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from steerlm.best_of import BestOf, best_of_settings
from steerlm.errors import SteerLMInputError, unknown_names
from steerlm.options import OPTION_NAMES, GenerationOptions, end_strings, normalize_stop
from steerlm.presets import AttributeValue
from steerlm.prompt import SYSTEM_JOINER, build_prompt
from steerlm.tools import (
    AUTO,
    NONE,
    TOOL_CALL_CLOSE,
    TOOL_CALL_OPEN,
    ParsedAnswer,
    ToolSpec,
    ToolTextGate,
    json_instructions,
    normalize_tool_choice,
    parse_tool_calls,
    tool_call_schema,
    tool_instructions,
)
from steerlm.transports.engines import Constraint
from steerlm.types import Completion, StreamChunk, Turn

if TYPE_CHECKING:
    from steerlm.settings import SteerLMSettings
    from steerlm.transports.base import Transport

#: Per-call keywords besides the generation options.
CALL_KEYWORDS = frozenset(
    {
        "attributes",
        "stop",
        "model",
        "tools",
        "tool_choice",
        "json_schema",
        "best_of",
        "scorer",
        "objective",
    }
)
_VALID_KEYWORDS = sorted(CALL_KEYWORDS | OPTION_NAMES)


@dataclass(frozen=True)
class CallPlan:
    """Everything one call sends, decided before any network I/O.

    Attributes:
        prompts: One rendered SteerLM prompt per conversation.
        attributes: The merged attributes of the answers, in canonical order.
        options: Decoding settings.
        stops: End strings, most important first: the preset's turn marker, the
            instance's, the call's, the preset's others, then ``<|endoftext|>``.
        model_name: Model name to report (a per-call ``model`` overrides the instance's).
        tools: Tools the model was told about; their calls are parsed from the answer.
        model_from_call: ``model_name`` is a per-call ``model`` (reported as it is).
        constraint: The JSON schema the answer must match (structured output, or a
            forced tool call), for a server that can constrain decoding; the prompt asks
            for it either way.
        best_of: How many answers to sample per prompt and how to pick one (None: one).
        turns: The conversations the prompts were rendered from (for the scorer).
    """

    prompts: tuple[str, ...]
    attributes: dict[str, AttributeValue]
    options: GenerationOptions
    stops: tuple[str, ...]
    model_name: str
    tools: tuple[ToolSpec, ...] = ()
    model_from_call: bool = False
    constraint: Constraint | None = None
    best_of: BestOf | None = None
    turns: tuple[Sequence[Turn], ...] = ()

    @property
    def forced_call(self) -> bool:
        """Whether the answer is constrained to be a tool call (nothing to show)."""
        return self.constraint is not None and self.constraint.tool_call


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
        # Most important first: a server that takes only a few (vLLM: 4) gets these.
        stops = end_strings(
            preset.end_strings[:1],
            normalize_stop(settings.stop),
            normalize_stop(kwargs.pop("stop", None)),
            preset.end_strings[1:],
        )
        tools, instructions, constraint = _instructions(
            kwargs.pop("tools", ()),
            kwargs.pop("tool_choice", None),
            kwargs.pop("json_schema", None),
        )
        best_of = best_of_settings(
            kwargs.pop("best_of", settings.best_of),
            kwargs.pop("scorer", settings.scorer),
            kwargs.pop("objective", settings.objective),
            options := settings.generation_options(kwargs),
        )
        if best_of is not None and any(isinstance(c, str) for c in conversations):
            raise SteerLMInputError(
                "best_of scores each answer with its conversation: pass chat messages, not "
                "a prompt already in the SteerLM format."
            )
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
            constraint=constraint,
            best_of=best_of,
            turns=tuple(c for c in conversations if not isinstance(c, str)) if best_of else (),
        )

    def streams(self, plan: CallPlan) -> bool:
        """Whether a stream of ``plan`` yields tokens, or the whole answer as one piece.

        Tokens need a transport that streams them. An answer constrained to be a tool
        call has no text to show, so it is one piece.
        """
        return self.transport.streams_tokens and not plan.forced_call and plan.best_of is None

    def _constraint(self, plan: CallPlan) -> dict[str, Any]:
        # Only transports that declare it take the keyword (a registered one may not).
        if plan.constraint is not None and self.transport.constrains:
            return {"constraint": plan.constraint}
        return {}

    # -- sending ---------------------------------------------------------------------------

    def send(self, plan: CallPlan) -> list[Completion]:
        """Send a planned call: one completion per prompt, in order.

        With ``best_of`` > 1, every candidate goes out in the same request, all of them
        are scored in one scoring call, and each prompt's best is returned.
        """
        best_of = plan.best_of
        prompts = best_of.expand(plan.prompts) if best_of else plan.prompts
        completions = self.transport.generate(
            prompts, plan.options, plan.stops, **self._constraint(plan)
        )
        if best_of is None:
            return completions
        scores = best_of.scorer.score(best_of.conversations(plan.turns, completions))
        return best_of.choose(completions, scores)

    async def asend(self, plan: CallPlan) -> list[Completion]:
        """Async :meth:`send`, non-blocking."""
        best_of = plan.best_of
        prompts = best_of.expand(plan.prompts) if best_of else plan.prompts
        completions = await self.transport.agenerate(
            prompts, plan.options, plan.stops, **self._constraint(plan)
        )
        if best_of is None:
            return completions
        scores = await best_of.scorer.ascore(best_of.conversations(plan.turns, completions))
        return best_of.choose(completions, scores)

    def stream(self, plan: CallPlan, fetched: Completion | None = None) -> Iterator[StreamChunk]:
        """Stream the answer to the plan's one prompt: the one streaming path.

        Where :meth:`streams` says so, text arrives as it is generated, cut at stop
        strings even across chunks. With tools offered, text that is or could become a
        tool call is held back, and the calls are parsed from the whole answer on the
        last chunk. Otherwise (a server that does not stream, or an answer that must be a
        tool call) the answer is one chunk holding its content. The last chunk always
        carries the whole :class:`~steerlm.types.Completion`, and the chunks' text adds
        up to the parsed content. Closing the iterator early closes the connection.

        Args:
            plan: A plan of one prompt.
            fetched: The answer, when it was already fetched (by a batch): streamed as
                one chunk, with nothing sent.
        """
        if fetched is None and self.streams(plan):
            chunks = self.transport.stream(
                plan.prompts[0], plan.options, plan.stops, **self._constraint(plan)
            )
            if not plan.tools:
                yield from chunks
                return
            gate = ToolTextGate()
            try:
                for chunk in chunks:
                    yield self._gated(plan, gate, chunk)
            finally:
                if close := getattr(chunks, "close", None):
                    close()  # leaving early closes the connection at once
            return
        completion = fetched or self.send(plan)[0]
        yield StreamChunk(self.parse(plan, completion).content, completion)

    async def astream(
        self, plan: CallPlan, fetched: Completion | None = None
    ) -> AsyncGenerator[StreamChunk, None]:
        """Async :meth:`stream`; leaving early closes the connection at once."""
        if fetched is None and self.streams(plan):
            chunks = self.transport.astream(
                plan.prompts[0], plan.options, plan.stops, **self._constraint(plan)
            )
            gate = ToolTextGate() if plan.tools else None
            try:
                async for chunk in chunks:
                    yield chunk if gate is None else self._gated(plan, gate, chunk)
            finally:
                await chunks.aclose()  # at once, not when the generator is collected
            return
        completion = fetched or (await self.asend(plan))[0]
        yield StreamChunk(self.parse(plan, completion).content, completion)

    def _gated(self, plan: CallPlan, gate: ToolTextGate, chunk: StreamChunk) -> StreamChunk:
        """A chunk of a stream with tools offered: only text that is surely content."""
        if chunk.completion is None:
            return StreamChunk(gate.feed(chunk.text))
        gate.feed(chunk.text)
        content = self.parse(plan, chunk.completion).content
        return StreamChunk(gate.rest(content), chunk.completion)

    # -- answers ---------------------------------------------------------------------------

    @staticmethod
    def parse(plan: CallPlan, completion: Completion) -> ParsedAnswer:
        """Split a completion into content and tool calls (none unless tools were sent).

        An answer constrained to a tool call's schema is the bare call object.
        """
        if not plan.tools:
            return ParsedAnswer(content=completion.text, tool_calls=[], invalid_tool_calls=[])
        text = completion.text
        if plan.forced_call and TOOL_CALL_OPEN not in text and text.strip().startswith("{"):
            text = f"{TOOL_CALL_OPEN}{text.strip()}{TOOL_CALL_CLOSE}"
        return parse_tool_calls(text, plan.tools)

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
    raise SteerLMInputError(
        f"Unknown keyword(s) {unknown_names(unknown, _VALID_KEYWORDS)} for a SteerLM call. "
        f"Valid: {', '.join(_VALID_KEYWORDS)}."
    )


def _instructions(
    tools: Sequence[ToolSpec], tool_choice: str | None, json_schema: Mapping[str, Any] | None
) -> tuple[tuple[ToolSpec, ...], str, Constraint | None]:
    """The tools whose calls to parse, the system-turn text that announces them, and the
    schema a server that constrains decoding enforces (a forced call, or the JSON asked)."""
    tools = tuple(tools)
    if not all(isinstance(tool, ToolSpec) for tool in tools):
        raise SteerLMInputError("tools must be steerlm.tools.ToolSpec objects.")
    parts = []
    constraint = None
    if tools:
        choice = normalize_tool_choice(tool_choice, tools)
        if choice == NONE:
            tools = ()
        else:
            parts.append(tool_instructions(tools, choice))
            if choice != AUTO:  # "required", or one tool by name
                called = (
                    tools
                    if choice not in {t.name for t in tools}
                    else tuple(t for t in tools if t.name == choice)
                )
                constraint = Constraint(tool_call_schema(called), "tool_call", tool_call=True)
    if json_schema is not None:
        parts.append(json_instructions(json_schema))
        if constraint is None:
            name = json_schema.get("title")
            constraint = Constraint(json_schema, name if isinstance(name, str) else "answer")
    return tools, SYSTEM_JOINER.join(parts), constraint
