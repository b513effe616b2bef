"""The engine interface: what the server needs from a model, and helpers every engine shares.

An engine turns a request's prompts into :class:`Generation` rows, NeMo's answer shape.
Every engine has the one :meth:`Engine.generate` signature; the cancellation check and
the token callback are optional keyword arguments, so the server calls every engine the
same way and an engine that cannot stop early or stream simply ignores them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from steerlm.server.protocol import GenerateParams

#: Turns true when the client has gone: an engine that checks it stops generating.
Cancelled = Callable[[], bool]
#: Receives each piece of generated text as the engine produces it: (prompt index, text).
TokenSink = Callable[[int, str], None]


@dataclass(frozen=True)
class Generation:
    """One prompt's share of the answer, in NeMo's terms.

    ``sentence`` is prompt plus generated text as decoded; ``tokens``, ``token_ids`` and
    ``offsets`` (NeMo's: summed raw token lengths, see :func:`nemo_offsets`) cover both and
    any end-of-sequence padding; ``logprob`` has one value per token after the first, or
    is None when not asked for.
    """

    sentence: str
    tokens: list[str]
    token_ids: list[int]
    offsets: list[int]
    logprob: list[float] | None
    generated_tokens: int


class Engine(Protocol):
    """What the server needs from a model.

    Attributes:
        name: Shown in ``GET /health`` and, by default, the model ``GET /v1/models`` lists.
    """

    name: str

    @property
    def context_window(self) -> int:
        """Tokens one sequence holds, prompt and answer together (vLLM's ``max_model_len``)."""
        ...

    def generate(
        self,
        prompts: Sequence[str],
        params: GenerateParams,
        *,
        cancelled: Cancelled | None = None,
        on_token: TokenSink | None = None,
    ) -> list[Generation]:
        """Generate a continuation of every prompt, as one NeMo batch.

        Args:
            prompts: The request's sentences.
            params: The validated request.
            cancelled: Checked between decoding steps, if the engine can stop early; when
                it turns true (the client has gone) the rows are returned as far as they got.
            on_token: Called with ``(index, text)`` as each prompt's text is generated, if
                the engine streams. The pieces of a prompt add up to the generated part of
                its :class:`Generation` (see :func:`generated_text`) when generation ends
                normally; an incomplete UTF-8 character is held back until it is whole.
                An engine that does not stream never calls it.

        Raises:
            RejectionError: A request NeMo refuses, e.g. a prompt longer than the context.
        """
        ...


@dataclass(frozen=True)
class RatedAnswer:
    """One answer to score, with the question it answers (empty when there is none)."""

    question: str
    answer: str


class Scorer(Protocol):
    """What the attribute-model routes need: scores of answers, one row per answer.

    Attributes:
        name: Says which scorer serves the routes (``scripted``, ``llama stand-in``).
    """

    name: str

    def score(self, answers: Sequence[RatedAnswer], attributes: Sequence[str]) -> list[list[float]]:
        """One row per answer, one score per attribute, in the order of ``attributes``."""
        ...


def generated_text(prompt: str, generation: Generation) -> str:
    """The generated part of ``generation``: what follows the echoed prompt.

    When the decoded sentence does not start with the prompt (a tokenizer that re-renders
    it, or a BOS token in the echo), the text of the generated tokens.
    """
    if generation.sentence.startswith(prompt):
        return generation.sentence[len(prompt) :]
    return "".join(generation.tokens[len(generation.tokens) - generation.generated_tokens :])


class TextDeltas:
    """The new text of successive decodings of a growing answer, for a stream.

    Only text that extends what was already handed out is new: a decoding that ends in an
    incomplete UTF-8 character (U+FFFD until its last byte arrives) or that a tokenizer
    re-renders is held back until it is settled.
    """

    def __init__(self) -> None:
        self.sent = ""

    def update(self, text: str, final: bool = False) -> str:
        """The part of ``text`` not handed out yet; ``final``: the answer is complete."""
        if not final:
            text = text.rstrip("\ufffd")
        if len(text) <= len(self.sent) or not text.startswith(self.sent):
            return ""
        delta, self.sent = text[len(self.sent) :], text
        return delta


def ending_end_string(text: str, end_strings: Iterable[str]) -> str | None:
    """The end string ``text`` ends with, if any: NeMo stops as soon as one is generated."""
    return next((s for s in end_strings if s and text.endswith(s)), None)


def nemo_offsets(tokens: Sequence[str], zero_length: Iterable[str]) -> list[int]:
    """``offsets`` as NeMo's ``generate()`` computes them for one row.

    Not character positions: each offset adds up the lengths of the raw token strings
    before it (``▁What``, ``<0x0A>``...), counting only the tokenizer's pad, eos, bos, cls,
    unk, sep and mask tokens (``zero_length``) as empty.
    """
    special = frozenset(zero_length)
    offsets = [0]
    for token in tokens[:-1]:
        offsets.append(offsets[-1] + (0 if token in special else len(token)))
    return offsets[: len(tokens)]


def too_long(index: int, prompt_tokens: int, context_window: int, how: str = "") -> str:
    """The message refusing prompt ``index``: it leaves no room to generate in the context.

    NeMo has no such check (v1.23.0 text_generation_server.py:64-227 validates keys only;
    text_generation_utils.py:782-784 clips the length, so the model fails or generates
    nothing); the dev server says it, with the counts, as NeMo says request errors.
    """
    return (
        f"prompt {index} is {prompt_tokens} tokens long{how}, which leaves no room to "
        f"generate in the context of {context_window} tokens: shorten it to at most "
        f"{context_window - 1} tokens, or start the server with a larger --ctx"
    )
