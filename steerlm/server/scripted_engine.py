"""The scripted engine: deterministic answers the test chooses, tokenized and stopped as NeMo does.

It imitates the tokenizers NeMo serves with (:class:`FakeTokenizer`) and each release's
stop rules, so the client's handling of echoes, offsets and end strings is tested against
NeMo's behaviour. Its byte-level BPE table (:data:`GPT2_BYTE_CHARS`) is written here on
purpose, not imported from the client (``steerlm.response``): a mistake in the client's
table then shows up in the tests instead of being shared by both sides.
"""

from __future__ import annotations

import functools
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from steerlm.server.engine import (
    Cancelled,
    Generation,
    TextDeltas,
    TokenSink,
    generated_text,
    nemo_offsets,
    too_long,
)
from steerlm.server.protocol import (
    END_OF_TEXT,
    GenerateParams,
    Rejection,
    RejectionError,
    release,
)

#: The scripted engine's default context window, the dev server's ``--ctx`` default.
DEFAULT_CONTEXT_WINDOW = 2048


def _gpt2_byte_chars() -> dict[int, str]:
    # GPT-2's encoder.py (bytes_to_unicode): the 188 printable Latin-1 bytes ("!".."~",
    # "¡".."¬", "®".."ÿ") stand for themselves; the other 68, in byte order, become
    # U+0100, U+0101... so that no piece holds a space or a control character.
    printable = [b for b in range(256) if 0x21 <= b <= 0x7E or (0xA1 <= b <= 0xFF and b != 0xAD)]
    others = [b for b in range(256) if b not in printable]
    return {
        **{byte: chr(byte) for byte in printable},
        **{byte: chr(0x100 + rank) for rank, byte in enumerate(others)},
    }


#: GPT-2's byte-to-character table of byte-level BPE pieces (space "Ġ", newline "Ċ").
GPT2_BYTE_CHARS = _gpt2_byte_chars()
#: Its inverse, to decode pieces back to bytes.
GPT2_CHAR_BYTES = {char: byte for byte, char in GPT2_BYTE_CHARS.items()}

EchoMode = Literal["exact", "drop_markers", "respace_markers", "normalize_whitespace"]

#: How the scripted engine tokenizes and decodes, imitating tokenizers NeMo serves with:
#: ``plain``: word/space/punctuation tokens that are their own text, no end-of-sequence
#: token (the echo follows ``echo_mode``); ``sp``: Llama-2 SentencePiece, markers are plain
#: text (``<``, ``extra``, ``_``...), ``▁`` for spaces, ``<0x0A>`` byte pieces, lossless;
#: ``sp_legacy``: NeMo's legacy SentencePiece with the markers as special tokens, whose
#: ``ids_to_text`` re-spaces them (``\n <extra_id_1> User``); ``hf``: a Hugging Face
#: byte-level BPE (``Ġ``, ``Ċ``) with the markers as special tokens, dropped from the echo.
TokenizerKind = Literal["plain", "sp", "sp_legacy", "hf"]
TOKENIZER_KINDS: tuple[TokenizerKind, ...] = ("plain", "sp", "sp_legacy", "hf")

_MARKER = re.compile(r"<extra_id_(\d+)>")
_PIECE = re.compile(r"<extra_id_\d+>|<\|endoftext\|>|\s+|\w+|[^\w\s]")
_UNIT = re.compile(r"\n|\t| ?[A-Za-z0-9]+| ?[^\sA-Za-z0-9]| ")


def echo(text: str, mode: EchoMode) -> str:
    """Decode ``text`` the way some real tokenizers do (markers dropped, re-spaced...)."""
    if mode == "drop_markers":
        return _MARKER.sub("", text)
    if mode == "respace_markers":
        return _MARKER.sub(r" <extra_id_\1> ", text)
    if mode == "normalize_whitespace":
        return " ".join(text.split())
    return text


class FakeTokenizer:
    """A deterministic stand-in for the tokenizers NeMo serves with (see ``TokenizerKind``).

    ``encode`` gives raw token strings as NeMo's ``ids_to_tokens`` lists them, ``decode``
    gives the text NeMo's ``ids_to_text`` returns for them.
    """

    def __init__(self, kind: TokenizerKind, echo_mode: EchoMode = "exact") -> None:
        self.kind = kind
        self.echo_mode = echo_mode
        self.eos: str | None = {"plain": None, "sp": "</s>", "sp_legacy": "</s>"}.get(
            kind, END_OF_TEXT
        )
        self.bos = "<s>" if kind in ("sp", "sp_legacy") else END_OF_TEXT
        # NeMo's zero-length tokens (pad/eos/bos...); the markers are not among them.
        self.zero_length = frozenset({self.bos, *([self.eos] if self.eos else [])})
        self.marker_tokens_special = kind in ("sp_legacy", "hf")

    def encode(self, text: str, continuation: bool = False) -> list[str]:
        """Tokens of ``text``; ``continuation`` means it follows earlier text (no dummy prefix)."""
        if self.kind == "plain":
            return _PIECE.findall(text)
        pieces: list[str] = []
        specials = r"<extra_id_\d+>" + (r"|<\|endoftext\|>" if self.kind == "hf" else "")
        parts = re.split(f"({specials})", text) if self.marker_tokens_special else [text]
        for index, part in enumerate(parts):
            if index % 2:
                pieces.append(self.eos if part == END_OF_TEXT and self.eos else part)
            elif part:
                # SentencePiece adds a dummy "▁" prefix to each text it encodes: the whole
                # text, or (legacy) each stretch between special tokens.
                prefix = self.kind == "sp_legacy" or (self.kind == "sp" and index == 0)
                pieces += self._encode_text(part, prefix and not (continuation and index == 0))
        return pieces

    def _encode_text(self, text: str, dummy_prefix: bool) -> list[str]:
        sp = self.kind != "hf"
        space = "▁" if sp else "Ġ"
        pieces: list[str] = []
        for unit in _UNIT.findall(text):
            lead, body = (space, unit[1:]) if unit.startswith(" ") else ("", unit)
            if dummy_prefix and not pieces:
                lead = lead or "▁"
            if body in ("\n", "\t") or not body:
                pieces += [lead] if lead else []
                if body:
                    pieces.append(f"<0x{ord(body):02X}>" if sp else GPT2_BYTE_CHARS[ord(body)])
            elif body.isascii():
                pieces.append(lead + body)
            elif sp:  # SentencePiece byte fallback
                pieces += [lead] if lead else []
                pieces += [f"<0x{byte:02X}>" for byte in body.encode()]
            else:
                pieces.append(lead + "".join(GPT2_BYTE_CHARS[b] for b in body.encode()))
        return pieces

    def decode(self, tokens: Sequence[str]) -> str:
        """The text of ``tokens`` as NeMo's ``ids_to_text`` returns it."""
        if self.kind == "plain":
            return echo("".join(tokens), self.echo_mode)
        if self.kind == "hf":
            # NeMo's AutoTokenizer drops every special token, markers included.
            kept = [t for t in tokens if t not in self.zero_length and not _MARKER.fullmatch(t)]
            return bytes(GPT2_CHAR_BYTES[c] for t in kept for c in t).decode(errors="replace")
        if self.kind == "sp":
            return self._decode_sp(tokens)
        # Legacy SentencePiece: decode the stretches, put " <marker> " between, strip.
        text, stretch = "", list[str]()
        for token in tokens:
            if _MARKER.fullmatch(token):
                text += self._decode_sp(stretch) + " " + token + " "
                stretch = []
            else:
                stretch.append(token)
        return (text + self._decode_sp(stretch)).strip()

    def _decode_sp(self, tokens: Sequence[str]) -> str:
        data = bytearray()
        for token in tokens:
            if token in self.zero_length:
                continue
            byte = re.fullmatch(r"<0x([0-9A-F]{2})>", token)
            data += bytes([int(byte[1], 16)]) if byte else token.replace("▁", " ").encode()
        # SentencePiece drops the space of the dummy prefix.
        return data.decode(errors="replace").removeprefix(" ")


@dataclass(frozen=True)
class _StopRule:
    """When a row stops, per NeMo release (``end_of_generation_condition``)."""

    tokens: frozenset[str]  # stop as soon as one of these tokens is generated
    strings: tuple[str, ...]  # stop when the decoded row ends with one of these

    @staticmethod
    def of(params: GenerateParams, tokenizer: FakeTokenizer) -> _StopRule:
        eos = {tokenizer.eos} if tokenizer.eos else set()
        ends = params.end_strings
        version = release(params.nemo_version)
        if tokenizer.kind == "plain":  # no EOS token: whole end strings on the text
            return _StopRule(frozenset(), tuple(s for s in ends if s != END_OF_TEXT))
        if tuple(ends) in ((END_OF_TEXT,), ()):  # also all of 1.17, which has no end_strings
            return _StopRule(frozenset(eos), ())
        if version < (1, 20):
            # 1.18-1.19: whole strings on the decoded text; EOS only while it is listed.
            has_eos = END_OF_TEXT in ends
            return _StopRule(
                frozenset(eos if has_eos else ()), tuple(s for s in ends if s != END_OF_TEXT)
            )
        reference = tokenizer.encode("<extra_id_1>")
        tokens, strings = set(eos), list[str]()
        for end in ends:
            with_end = tokenizer.encode(f"<extra_id_1>{end}")
            if version == (1, 20):
                # 1.20: the first token after the <extra_id_1> prefix stops, whatever follows.
                if len(with_end) > len(reference):
                    tokens.add(with_end[len(reference)])
                strings.append(end)
            elif end == END_OF_TEXT:
                continue  # 1.21+: mapped to the EOS token, always included
            elif len(with_end) == len(reference) + 1 and with_end[:-1] == reference:
                tokens.add(with_end[-1])  # 1.21+: an end string that is one token
            else:
                strings.append(end)
        return _StopRule(frozenset(tokens), tuple(strings))

    def stops(self, token: str, text: Callable[[], str]) -> bool:
        """Whether generating ``token`` ends the row; ``text()`` decodes the row so far."""
        if token in self.tokens:
            return True
        if not self.strings:
            return False
        decoded = text()
        return any(decoded.endswith(s) for s in self.strings if s)


class _RunningText:
    """The decoded text of a growing row, for end-string checks.

    Plain tokens with an exact echo decode to themselves, so the text grows by each token
    (decoding the whole row at every step would make a long batch quadratic); other
    tokenizers decode the whole row, and only when an end string needs the text.
    """

    def __init__(self, tokenizer: FakeTokenizer, row: list[str]) -> None:
        self.tokenizer = tokenizer
        self.row = row
        self.incremental = tokenizer.kind == "plain" and tokenizer.echo_mode == "exact"
        self.text = "".join(row) if self.incremental else ""

    def after(self, token: str) -> Callable[[], str]:
        """A function giving the row's text now that ``token`` was appended to it."""
        if self.incremental:
            self.text += token
            text = self.text
            return lambda: text
        return lambda: self.tokenizer.decode(self.row)


class ScriptedEngine:
    """A deterministic engine whose completions the caller chooses, answering like NeMo.

    Completions come, in order, from a queue filled by :meth:`script`; when it is empty,
    ``responder(prompt)`` or a fixed default answers. The text is tokenized by a
    :class:`FakeTokenizer` of kind ``tokenizer``; when the scripted text runs out the
    model emits end-of-sequence. Rows stop as the server's release does (from
    ``params.nemo_version``): at end-of-sequence, at ``tokens_to_generate``, or at an end
    string by that release's rule (1.18-1.19 whole strings, 1.20 the first token of each,
    1.21+ special tokens or whole strings; 1.17 has none). A batch runs as NeMo's does:
    each row may run to ``tokens_to_generate`` plus its prompt's shortfall against the
    longest prompt, and rows that finished early are padded with end-of-sequence tokens.
    ``offsets`` follow NeMo's arithmetic (:func:`nemo_offsets`).

    A prompt of ``context_window`` tokens or more is refused as the llama.cpp engine
    refuses it (the scripted answer itself is never cut to the window, so a test may
    script any length).

    Args:
        responder: Answers a prompt when no completion is queued.
        echo_mode: With the ``plain`` tokenizer, how the echo re-renders markers and
            whitespace.
        tokenizer: Which tokenizer to imitate.
        step_seconds: Latency of one decoding step. A request then takes ``step_seconds``
            times its longest row's generated tokens, whatever its number of rows, as a
            batch on a GPU does (decoding is memory-bound; the rows share each step). A
            streamed generation (``on_token``) sleeps before each step, so its first text
            leaves after one step.
        context_window: Tokens of context it reports (``GET /health``, ``/v1/models``)
            and refuses prompts beyond.
    """

    name = "scripted"
    default_answer = "This is a scripted answer."

    def __init__(
        self,
        responder: Callable[[str], str] | None = None,
        echo_mode: EchoMode = "exact",
        tokenizer: TokenizerKind = "plain",
        step_seconds: float = 0.0,
        context_window: int = DEFAULT_CONTEXT_WINDOW,
    ) -> None:
        self.responder = responder
        self.context_window = context_window
        self.step_seconds = step_seconds
        self.echo_mode: EchoMode = echo_mode
        self.tokenizer: TokenizerKind = tokenizer
        #: Called with the step number before each step of a streamed generation: tests
        #: hold generation there (or make it fail) to see what the client has by then.
        self.step_hook: Callable[[int], None] | None = None
        self._queue: deque[str] = deque()
        self._lock = threading.Lock()

    def script(self, *completions: str) -> None:
        """Queue completions, used one per prompt in order."""
        with self._lock:
            self._queue.extend(completions)

    def reset(self) -> None:
        """Forget queued completions; restore the plain tokenizer, exact echo, default answer.

        Also no step latency, no step hook and the default context window.
        """
        with self._lock:
            self._queue.clear()
        self.responder = None
        self.echo_mode = "exact"
        self.tokenizer = "plain"
        self.step_seconds = 0.0
        self.step_hook = None
        self.context_window = DEFAULT_CONTEXT_WINDOW

    def _next_completion(self, prompt: str) -> str:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
        return self.responder(prompt) if self.responder else self.default_answer

    def generate(
        self,
        prompts: Sequence[str],
        params: GenerateParams,
        *,
        cancelled: Cancelled | None = None,
        on_token: TokenSink | None = None,
    ) -> list[Generation]:
        """Generate every prompt from the script, as one NeMo batch.

        With ``on_token``, the rows are handed out step by step, one token each (a step
        sleeps ``step_seconds`` and calls ``step_hook`` first), until ``cancelled()``;
        without it the whole batch is planned at once and ``cancelled`` is not consulted.

        Raises:
            RejectionError: A prompt leaves no room in the context window.
        """
        tokenizer = FakeTokenizer(self.tokenizer, self.echo_mode)
        rule = _StopRule.of(params, tokenizer)
        contexts = [
            ([tokenizer.bos] if params.add_BOS else []) + tokenizer.encode(prompt)
            for prompt in prompts
        ]
        for index, context in enumerate(contexts):
            if len(context) >= self.context_window:  # before any scripted answer is used
                raise RejectionError(
                    Rejection(200, too_long(index, len(context), self.context_window))
                )
        longest = max((len(c) for c in contexts), default=0)
        rows: list[list[str]] = []
        for prompt, context in zip(prompts, contexts, strict=True):
            planned = tokenizer.encode(self._next_completion(prompt), continuation=True)
            limit = params.tokens_to_generate + longest - len(context)
            if tokenizer.eos:
                # The script ran out: end of sequence, again and again while it does not
                # stop the row (NeMo 1.18-1.19 without <|endoftext|> in end_strings).
                planned += [tokenizer.eos] * (1 if tokenizer.eos in rule.tokens else limit)
            row = list(context)
            text = _RunningText(tokenizer, row)
            for token in planned[:limit]:
                row.append(token)
                if rule.stops(token, text.after(token)):
                    break
            rows.append(row)
        counts = [len(row) - len(context) for row, context in zip(rows, contexts, strict=True)]
        if on_token is not None:
            steps = self._stream(prompts, rows, counts, tokenizer, cancelled, on_token)
            # Cancelled: the rows as far as they got.
            rows = [r[: len(r) - count + steps] for r, count in zip(rows, counts, strict=True)]
            counts = [min(count, steps) for count in counts]
        elif self.step_seconds:
            time.sleep(self.step_seconds * max(counts, default=0))
        width = max((len(row) for row in rows), default=0)
        generations = []
        for row, count in zip(rows, counts, strict=True):
            if tokenizer.eos:
                row += [tokenizer.eos] * (width - len(row))  # NeMo pads finished rows
            generations.append(
                Generation(
                    sentence=tokenizer.decode(row),
                    tokens=row,
                    token_ids=[_token_id(token) for token in row],
                    offsets=nemo_offsets(row, tokenizer.zero_length),
                    logprob=[-0.25] * (len(row) - 1) if params.wants_logprobs else None,
                    generated_tokens=count,
                )
            )
        return generations

    def _stream(
        self,
        prompts: Sequence[str],
        rows: list[list[str]],
        counts: list[int],
        tokenizer: FakeTokenizer,
        cancelled: Cancelled | None,
        on_token: TokenSink,
    ) -> int:
        """Hand out the planned rows one decoding step at a time; the steps taken."""
        deltas = [TextDeltas() for _ in rows]
        steps = max(counts, default=0)
        for step in range(steps):
            if cancelled is not None and cancelled():
                return step
            if self.step_hook is not None:
                self.step_hook(step)
            if self.step_seconds:
                time.sleep(self.step_seconds)
            for index, (prompt, row, count) in enumerate(zip(prompts, rows, counts, strict=True)):
                if step >= count:
                    continue  # this row has finished
                end = len(row) - count + step + 1
                partial = row[:end]
                text = generated_text(
                    prompt,
                    Generation(tokenizer.decode(partial), partial, [], [], None, step + 1),
                )
                delta = deltas[index].update(text, final=end == len(row))
                if delta:
                    on_token(index, delta)
        return steps


@functools.lru_cache(maxsize=65536)
def _token_id(piece: str) -> int:
    # Stable across runs (unlike hash()), small, and the same piece gets the same id.
    return int(sum(ord(ch) * 31**i for i, ch in enumerate(piece[:8])) % 50_000)
