"""Framework-neutral types that both adapters translate to and from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from steerlm.presets import AttributeValue

Role = Literal["system", "user", "assistant"]
FinishReason = Literal["stop", "length"]
#: Key of ``Completion.raw`` holding ``(prompts in the request, its total Usage)`` where a
#: server answered a prompt list with one usage for the whole request.
REQUEST_USAGE = "request_usage"


@dataclass(frozen=True)
class Turn:
    """One message of a conversation.

    Args:
        role: ``"system"``, ``"user"`` or ``"assistant"``.
        text: The message text.
        attributes: For an assistant turn, the attributes that produced it, when known.
    """

    role: Role
    text: str
    attributes: Mapping[str, AttributeValue] | str | None = None


@dataclass(frozen=True)
class Usage:
    """Token counts of one generation, from the server's own tokenizer."""

    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        """Prompt and completion tokens together."""
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Completion:
    """The parsed answer to one prompt.

    Attributes:
        text: The generated answer, cut at the first stop string, without it.
        finish_reason: ``"stop"`` (stop string or end of sequence), ``"length"``, or
            None when the server did not say (NeMo 2.x deployments) and no stop string
            was found.
        stop_string: The stop string the answer was cut at, if any.
        usage: Token counts, or None when the server sent no token offsets.
        logprobs: Log-probabilities of the generated tokens, when asked for.
        prompt: The prompt that was sent.
        raw: This prompt's share of the server's answer (``sentences``, ``tokens``...).
        best_of: With ``best_of`` > 1: the objective, the index of the chosen candidate,
            and every candidate's text, scores and objective value.
    """

    text: str
    finish_reason: FinishReason | None
    stop_string: str | None
    usage: Usage | None
    logprobs: list[float] | None
    prompt: str
    raw: dict[str, Any] = field(repr=False)
    best_of: dict[str, Any] | None = field(default=None, repr=False)


@dataclass(frozen=True)
class StreamChunk:
    """One piece of a streamed answer.

    Attributes:
        text: New answer text, safe to show: it is never taken back (see
            :class:`steerlm.response.StreamCut`). May be empty on the last chunk.
        completion: On the last chunk only: the whole answer with its finish reason,
            stop string and usage (None when the server sent no counts).
    """

    text: str
    completion: Completion | None = None
