"""Conversations to score: the turns they may be given as, and the text each API receives.

A conversation is a sequence of turns that ends with the assistant answer to score. The
Triton API receives the text NeMo-Aligner's ``attribute_annotate.py`` renders
(``NVIDIA/NeMo-Aligner@v0.7.0:examples/nlp/data/steerlm/attribute_annotate.py#L104-L115``
with the templates of ``common.py#L20-L26``): the system turn, every turn without label
lines, then ``<extra_id_2>``, where the model reads the answer's attributes::

    <extra_id_0>System\\n{system}\\n<extra_id_1>User\\n{question}\\n
    <extra_id_1>Assistant\\n{answer}\\n<extra_id_2>

Every text is neutralised as in the chat prompt (:func:`steerlm.prompt.neutralize_markers`),
so an answer cannot end its own turn or write the label prefix. The NIM API receives the
turns as chat messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeAlias

from steerlm.errors import SteerLMInputError
from steerlm.prompt import (
    LABEL_MARKER,
    SYSTEM_JOINER,
    SYSTEM_MARKER,
    TURN_MARKER,
    neutralize_markers,
)
from steerlm.scoring.scores import SCORER_SYSTEM_PROMPT
from steerlm.turns import Message, MessageRole, to_turns
from steerlm.types import Turn

#: One turn: the core's :class:`~steerlm.turns.Message` or :class:`~steerlm.types.Turn`,
#: or a ``(role, text)`` pair with role ``"system"``, ``"user"`` or ``"assistant"``.
TurnInput: TypeAlias = "Message | Turn | tuple[str, str]"
#: A conversation: its turns, ending with the assistant answer to score.
Conversation: TypeAlias = "Sequence[Message | Turn | tuple[str, str]]"

_ROLES: dict[str, MessageRole] = {
    "system": "system",
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "ai": "assistant",
}


def _is_pair(item: Any) -> bool:
    return (
        isinstance(item, tuple | list)
        and len(item) == 2
        and isinstance(item[0], str)
        and isinstance(item[1], str)
    )


def _is_turn(item: Any) -> bool:
    return isinstance(item, Message | Turn) or _is_pair(item)


def normalize_conversations(conversations: Sequence[Conversation]) -> list[list[Turn]]:
    """Check every conversation and reduce it to neutral turns, before anything is sent.

    Raises:
        SteerLMInputError: Not a list of conversations, a turn of an unknown form or role,
            or a conversation that does not end with the assistant answer to score.
    """
    if isinstance(conversations, str | bytes) or not isinstance(conversations, Sequence):
        raise SteerLMInputError(
            "score() takes a list of conversations, each a list of turns such as "
            f"[('user', question), ('assistant', answer)]; got {type(conversations).__name__}."
        )
    if conversations and _is_turn(conversations[0]):
        raise SteerLMInputError(
            "score() takes a list of conversations, and this looks like one conversation "
            "(its items are turns): wrap it in a list, score([conversation])."
        )
    return [_turns(conversation, index) for index, conversation in enumerate(conversations)]


def _turns(conversation: Conversation, index: int) -> list[Turn]:
    where = f"Conversation {index}"
    if isinstance(conversation, str | bytes) or not isinstance(conversation, Sequence):
        raise SteerLMInputError(
            f"{where} must be a list of turns such as [('user', question), ('assistant', "
            f"answer)], not {type(conversation).__name__}."
        )
    messages = []
    for position, item in enumerate(conversation):
        if isinstance(item, Message):
            messages.append(item)
        elif isinstance(item, Turn):
            messages.append(Message(item.role, item.text))
        elif _is_pair(item) and item[0].lower() in _ROLES:
            messages.append(Message(_ROLES[item[0].lower()], item[1]))
        else:
            shown = f"role {item[0]!r}" if _is_pair(item) else type(item).__name__
            raise SteerLMInputError(
                f"{where}, turn {position}: cannot read a {shown}. Give turns as "
                "steerlm.turns.Message, steerlm.Turn, or (role, text) pairs with role "
                "'system', 'user' or 'assistant'."
            )
    turns = to_turns(messages)  # tool results become user turns, as in the chat prompt
    dialogue = [turn for turn in turns if turn.role != "system"]
    if not dialogue or dialogue[-1].role != "assistant":
        found = f"a {dialogue[-1].role} turn" if dialogue else "no user or assistant turn"
        raise SteerLMInputError(
            f"{where} must end with the assistant answer to score; it ends with {found}. "
            "Append the answer, e.g. [('user', question), ('assistant', answer)]."
        )
    return turns


def system_text(
    turns: Sequence[Turn], system_prompt: str | None, default: str | None
) -> str | None:
    """The system turn: the conversation's own (several are joined), else ``system_prompt``,
    else ``default``."""
    own = [turn.text for turn in turns if turn.role == "system"]
    if own:
        return SYSTEM_JOINER.join(own)
    return default if system_prompt is None else system_prompt


def render_for_scoring(turns: Sequence[Turn], system_prompt: str | None = None) -> str:
    """The text the attribute model reads for ``turns``, as ``attribute_annotate.py`` renders it.

    Args:
        turns: The conversation, ending with the assistant answer (see
            :func:`normalize_conversations`).
        system_prompt: The system turn when the conversation has none; NeMo-Aligner's
            default (:data:`~steerlm.scoring.scores.SCORER_SYSTEM_PROMPT`) when None.
    """
    system = system_text(turns, system_prompt, SCORER_SYSTEM_PROMPT)
    parts = [f"{SYSTEM_MARKER}System\n{neutralize_markers(system or '')}\n"]
    for turn in turns:
        if turn.role == "system":
            continue
        speaker = "User" if turn.role == "user" else "Assistant"
        parts.append(f"{TURN_MARKER}{speaker}\n{neutralize_markers(turn.text)}\n")
    parts.append(LABEL_MARKER)
    return "".join(parts)


def chat_messages(turns: Sequence[Turn], system_prompt: str | None = None) -> list[dict[str, str]]:
    """The turns as OpenAI chat messages for a hosted reward model.

    A system message goes first only when the conversation has one or ``system_prompt``
    is set: NVIDIA's documented request is the user and the assistant message alone.
    """
    system = system_text(turns, system_prompt, None)
    messages = [] if system is None else [{"role": "system", "content": neutralize_markers(system)}]
    messages += [
        {"role": turn.role, "content": neutralize_markers(turn.text)}
        for turn in turns
        if turn.role != "system"
    ]
    return messages
