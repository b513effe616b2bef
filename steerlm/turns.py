"""Chat messages of any framework, reduced to the turns the SteerLM prompt renders.

Each adapter maps its own message type onto :class:`Message` (role, text, tool calls);
:func:`to_turns` does the rest once for both: tool calls of earlier answers are written
back in the calling convention of :mod:`steerlm.tools`, and tool results become user
turns, so an agent loop keeps a correct history.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from steerlm.presets import AttributeValue
from steerlm.tools import format_tool_calls, format_tool_result
from steerlm.types import Turn

MessageRole = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True)
class ToolCallRecord:
    """A tool call an earlier answer made.

    Attributes:
        id: The call's id, which tool results refer to (None when unknown).
        name: The tool's name.
        arguments: The arguments, as a mapping (or the raw text of a broken call).
    """

    id: str | None
    name: str
    arguments: Any


@dataclass(frozen=True)
class Message:
    """One chat message, as far as the SteerLM prompt can render it.

    Attributes:
        role: ``"system"``, ``"user"``, ``"assistant"`` or ``"tool"`` (a tool's result).
        text: The message's text.
        attributes: For an answer, the attributes that produced it, when known.
        tool_calls: For an answer, the tool calls it made.
        tool_call_id: For a tool result, the id of the call it answers.
        tool_name: For a tool result, the tool's name, when the message says it.
    """

    role: MessageRole
    text: str
    attributes: Mapping[str, AttributeValue] | str | None = None
    tool_calls: Sequence[ToolCallRecord] = ()
    tool_call_id: str | None = None
    tool_name: str | None = None


def to_turns(messages: Sequence[Message]) -> list[Turn]:
    """Translate messages into neutral turns.

    A tool result becomes a user turn naming its tool (by its own name, else by the
    call it answers); an answer with tool calls gets them written after its text.
    """
    names = {call.id: call.name for message in messages for call in message.tool_calls}
    turns = []
    for message in messages:
        if message.role == "tool":
            name = message.tool_name or names.get(message.tool_call_id)
            turns.append(Turn("user", format_tool_result(name, message.text)))
        elif message.tool_calls:
            calls = format_tool_calls((call.name, call.arguments) for call in message.tool_calls)
            text = "\n".join(filter(None, [message.text, calls]))
            turns.append(Turn("assistant", text, message.attributes))
        else:
            turns.append(Turn(message.role, message.text, message.attributes))
    return turns
