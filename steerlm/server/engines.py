"""Generation engines behind the NeMo-compatible server, and the scripted test engine."""

from __future__ import annotations

import re
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from steerlm.server.protocol import GenerateParams


@dataclass(frozen=True)
class Generation:
    """One prompt's share of the answer, in NeMo's terms.

    ``sentence`` is prompt plus generated text as decoded; ``tokens``, ``token_ids`` and
    ``offsets`` (start character of each token in ``sentence``) cover both; ``logprob``
    has one value per token after the first, or is None when not asked for.
    """

    sentence: str
    tokens: list[str]
    token_ids: list[int]
    offsets: list[int]
    logprob: list[float] | None
    generated_tokens: int


class Engine(Protocol):
    """What the server needs from a model."""

    name: str

    def generate(self, prompts: Sequence[str], params: GenerateParams) -> list[Generation]:
        """Generate a continuation of every prompt."""
        ...


def ending_end_string(text: str, end_strings: Iterable[str]) -> str | None:
    """The end string ``text`` ends with, if any: NeMo stops as soon as one is generated."""
    return next((s for s in end_strings if s and text.endswith(s)), None)


EchoMode = Literal["exact", "drop_markers", "respace_markers", "normalize_whitespace"]

_MARKER = re.compile(r"<extra_id_(\d+)>")
_PIECE = re.compile(r"<extra_id_\d+>|<\|endoftext\|>|\s+|\w+|[^\w\s]")


def echo(text: str, mode: EchoMode) -> str:
    """Decode ``text`` the way some real tokenizers do (markers dropped, re-spaced...)."""
    if mode == "drop_markers":
        return _MARKER.sub("", text)
    if mode == "respace_markers":
        return _MARKER.sub(r" <extra_id_\1> ", text)
    if mode == "normalize_whitespace":
        return " ".join(text.split())
    return text


class ScriptedEngine:
    """A deterministic engine whose completions the caller chooses.

    Completions come, in order, from a queue filled by :meth:`script`; when it is empty,
    ``responder(prompt)`` or a fixed default answers. Text is split into word, space and
    punctuation tokens; ``<extra_id_N>`` markers are one token each, as in SteerLM's
    tokenizer. Generation stops after ``tokens_to_generate`` tokens, as soon as the text
    ends with an end string, or when the scripted text runs out (end of sequence).

    Args:
        responder: Answers a prompt when no completion is queued.
        echo_mode: How the returned sentence re-renders markers and whitespace.
    """

    name = "scripted"
    default_answer = "This is a scripted answer."

    def __init__(
        self,
        responder: Callable[[str], str] | None = None,
        echo_mode: EchoMode = "exact",
    ) -> None:
        self.responder = responder
        self.echo_mode: EchoMode = echo_mode
        self._queue: deque[str] = deque()
        self._lock = threading.Lock()

    def script(self, *completions: str) -> None:
        """Queue completions, used one per prompt in order."""
        with self._lock:
            self._queue.extend(completions)

    def reset(self) -> None:
        """Forget queued completions and restore exact echo and the default answer."""
        with self._lock:
            self._queue.clear()
        self.responder = None
        self.echo_mode = "exact"

    def _next_completion(self, prompt: str) -> str:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
        return self.responder(prompt) if self.responder else self.default_answer

    def generate(self, prompts: Sequence[str], params: GenerateParams) -> list[Generation]:
        """Generate every prompt from the script."""
        return [self._generate_one(prompt, params) for prompt in prompts]

    def _generate_one(self, prompt: str, params: GenerateParams) -> Generation:
        generated = ""
        count = 0
        for piece in _PIECE.findall(self._next_completion(prompt)):
            if count == params.tokens_to_generate:
                break
            generated += piece
            count += 1
            if ending_end_string(generated, params.end_strings):
                break
        prompt_pieces = _PIECE.findall(echo(prompt, self.echo_mode))
        generated_pieces = _PIECE.findall(echo(generated, self.echo_mode))
        pieces = prompt_pieces + generated_pieces
        offsets, position = [], 0
        for piece in pieces:
            offsets.append(position)
            position += len(piece)
        return Generation(
            sentence="".join(pieces),
            tokens=pieces,
            token_ids=[_token_id(piece) for piece in pieces],
            offsets=offsets,
            logprob=[-0.25] * (len(pieces) - 1) if params.wants_logprobs else None,
            generated_tokens=count,
        )


def _token_id(piece: str) -> int:
    # Stable across runs (unlike hash()), small, and the same piece gets the same id.
    return int(sum(ord(ch) * 31**i for i, ch in enumerate(piece[:8])) % 50_000)
