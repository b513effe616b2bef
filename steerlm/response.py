"""Answer shaping: NeMo's ``/generate`` answer (errors, extraction, usage), and the stop
cut every transport shares, for whole answers (:func:`cut_answer`) and for streams
(:class:`StreamCut`, the same cut applied to a growing text)."""

from __future__ import annotations

import bisect
import itertools
import json
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from steerlm.errors import SteerLMResponseError, SteerLMServerError
from steerlm.options import GenerationOptions
from steerlm.prompt import LABEL_MARKER, TURN_MARKER
from steerlm.types import Completion, FinishReason, Usage

# A turn marker as a tokenizer may echo it: possibly re-spaced inside the brackets.
_ECHOED_MARKER = re.compile(r"<\s*extra_id_\s*\d+\s*>")
_MARKER_BYTES = re.compile(rb"<\s*extra_id_\s*\d+\s*>")
# With the markers dropped from the echo, a made-up next turn shows as a line holding only
# a role name of the template, or a SteerLM label line (canonical order starts at quality).
_DROPPED_TURN = re.compile(
    r"^[ \t]*(?:(?:System|User|Assistant)|(?P<label>quality:[^\s,]*(?:,\w+:[^\s,]*)*))[ \t]*$",
    re.MULTILINE,
)
_BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")
# A byte piece as a whole token in tokens joined by NUL.
_BYTE_PIECE_LINE = re.compile(r"(?:^|\0)<0x[0-9A-Fa-f]{2}>(?=\0|$)")
#: Tokens with no text (bos, eos, pad...) of common tokenizers; others are learnt from
#: ``offsets``, which do not advance over them.
_SPECIAL_TOKENS = frozenset(
    {"<s>", "</s>", "<pad>", "<unk>", "<|endoftext|>", "<|end_of_text|>", "<|eot_id|>", "<eos>"}
)


def _bytes_to_unicode() -> dict[int, str]:
    # GPT-2's byte-level BPE alphabet: printable bytes stand for themselves, the others are
    # shifted above 255 (space is "Ġ", newline "Ċ").
    keep = {*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)}
    table: dict[int, str] = {}
    shifted = 0
    for byte in range(256):
        if byte in keep:
            table[byte] = chr(byte)
        else:
            table[byte] = chr(256 + shifted)
            shifted += 1
    return table


#: GPT-2's byte-to-character table of byte-level BPE tokenizers.
BYTE_TO_UNICODE = _bytes_to_unicode()
#: Its inverse, to decode byte-level pieces.
UNICODE_TO_BYTE = {char: byte for byte, char in BYTE_TO_UNICODE.items()}
# The start of a marker cut off by the token limit, e.g. "<extra_" at the very end.
_PARTIAL_MARKER = re.compile(r"<(?:e(?:x(?:t(?:r(?:a(?:_(?:i(?:d(?:_\d*)?)?)?)?)?)?)?)?)?$")


def load_json(url: str, status: int, text: str) -> Any:
    """The JSON value of an answer body, for every transport.

    Raises:
        SteerLMServerError: The body is not JSON and the status is not 200.
        SteerLMResponseError: A 200 whose body is not JSON.
    """
    try:
        return json.loads(text)
    except ValueError:
        if status != 200:
            raise SteerLMServerError(url, status, text) from None
        raise SteerLMResponseError(url, "the body is not JSON", text) from None


def decode_body(url: str, status: int, text: str) -> dict[str, Any]:
    """Decode an HTTP answer of ``/generate`` into its JSON object.

    Raises:
        SteerLMServerError: A status other than 200, or a 200 whose body is a JSON string
            (how NeMo reports a failed validation).
        SteerLMResponseError: The body is not JSON, or not a JSON object.
    """
    body = load_json(url, status, text)
    if isinstance(body, str):
        raise SteerLMServerError(url, status, body)
    if status != 200:
        raise SteerLMServerError(url, status, text)
    if not isinstance(body, dict):
        raise SteerLMResponseError(url, "the body is not a JSON object", text)
    return body


def parse_generation(
    url: str,
    body: dict[str, Any],
    prompts: Sequence[str],
    stops: Sequence[str],
    options: GenerationOptions,
) -> list[Completion]:
    """Turn a decoded ``/generate`` body into one :class:`Completion` per prompt.

    The answer is the generated part of each sentence, cut at the earliest stop string
    (NeMo 1.17 ignores ``end_strings``; every release keeps the stop string it stopped at),
    at a stop-string fragment NeMo 1.20 stops at, or, when the tokenizer dropped the turn
    markers from the echo, at a made-up next turn; it is stripped of whitespace, as
    NVIDIA's own clients strip it. Token counts come from the row's ``tokens`` (see
    :func:`count_tokens`), never counting end-of-sequence padding.

    Raises:
        SteerLMResponseError: ``sentences`` is missing, of the wrong length, or a sentence
            does not contain its prompt.
    """
    sentences = body.get("sentences")
    if not isinstance(sentences, list) or not all(isinstance(s, str) for s in sentences):
        raise SteerLMResponseError(url, "no 'sentences' list of strings", json.dumps(body))
    if len(sentences) != len(prompts):
        raise SteerLMResponseError(
            url,
            f"{len(sentences)} sentences for {len(prompts)} prompts",
            json.dumps(body),
        )
    raws = [{key: _item(value, i) for key, value in body.items()} for i in range(len(prompts))]
    counts = [
        count_tokens(raw.get("tokens"), raw.get("offsets"), prompt)
        for raw, prompt in zip(raws, prompts, strict=True)
    ]
    # NeMo runs the batch to tokens_to_generate past the longest prompt, so a row with a
    # shorter prompt may generate more than max_tokens before it reaches its own limit.
    longest = max((c.prompt_tokens for c in counts if c), default=0)
    completions = []
    for index, (prompt, sentence, raw, count) in enumerate(
        zip(prompts, sentences, raws, counts, strict=True)
    ):
        start = find_generation_start(sentence, prompt)
        if start is None:
            raise SteerLMResponseError(
                url, f"sentence {index} does not start with its prompt", sentence
            )
        at_limit: bool | None = None
        if count is not None:
            limit = options.max_tokens + longest - count.prompt_tokens
            at_limit = not count.ended_with_eos and count.completion_tokens >= limit
        text, stop_string = extract_answer(
            sentence[start:], stops, markers_dropped(prompt, sentence), at_limit is False
        )
        usage = count.usage if count else None
        completions.append(
            Completion(
                text=text,
                finish_reason=_finish_reason(stop_string, usage, at_limit, options),
                stop_string=stop_string,
                usage=usage,
                logprobs=(
                    _generated_logprobs(raw.get("logprob"), usage) if options.logprobs else None
                ),
                prompt=prompt,
                raw=raw,
            )
        )
    return completions


def _item(value: Any, index: int) -> Any:
    return value[index] if isinstance(value, list) and index < len(value) else None


def find_generation_start(sentence: str, prompt: str) -> int | None:
    """Index in ``sentence`` where the generated text begins, or None if the prompt is absent.

    The echoed prompt is usually byte-identical, but tokenizers may drop or re-space the
    ``<extra_id_N>`` markers, drop a leading space or normalise whitespace. So when the
    fast path fails, the prompt is matched character by character ignoring markers and
    whitespace on both sides, and the whitespace that ended the prompt is skipped.
    """
    if sentence.startswith(prompt):
        return len(prompt)
    wanted = "".join(_ECHOED_MARKER.sub("", prompt).split())
    matched = 0
    position = 0
    while matched < len(wanted):
        if position >= len(sentence):
            return None
        marker = _ECHOED_MARKER.match(sentence, position)
        if marker:
            position = marker.end()
        elif sentence[position].isspace():
            position += 1
        elif sentence[position] == wanted[matched]:
            matched += 1
            position += 1
        else:
            return None
    # The prompt ends with the label line's newline; it may come back as any whitespace.
    tail = len(prompt) - len(prompt.rstrip())
    while tail and position < len(sentence) and sentence[position].isspace():
        position += 1
        tail -= 1
    return position


def extract_answer(
    generated: str, stops: Sequence[str], markers_dropped: bool, stopped_early: bool
) -> tuple[str, str | None]:
    """The user-visible answer in the generated text, and the stop string it ended at.

    Args:
        generated: The sentence after the echoed prompt.
        stops: The end strings sent.
        markers_dropped: The echo lost the ``<extra_id_N>`` markers (see
            :func:`markers_dropped`): a line holding only a role name, or a label line,
            then starts a made-up next turn and ends the answer too.
        stopped_early: Generation ended before the token limit; a trailing proper prefix
            of an end string starting a line is then a fragment NeMo 1.20 stopped at
            (it stops at the first token of each end string) and is removed.
    """
    text, stop_string = truncate_at_stop(generated, stops)
    if markers_dropped:
        turn = _DROPPED_TURN.search(text)
        if turn:
            text = text[: turn.start()]
            stop_string = LABEL_MARKER if turn.group("label") else TURN_MARKER
    if stop_string is None and stopped_early:
        # Before truncate_at_stop's removal of a cut-off marker: "<" may be the fragment.
        cut, stop_string = _drop_stop_fragment(_ECHOED_MARKER.sub("", generated), stops)
        if stop_string is not None:
            text = cut
    return text.strip(), stop_string


def cut_answer(generated: str, stops: Sequence[str]) -> tuple[str, str | None]:
    """The answer in a generated text: cut at the earliest stop, without markers, stripped.

    The shaping both transports share (see :func:`truncate_at_stop`); NeMo's
    :func:`extract_answer` adds its echo-specific cuts on top.

    Returns:
        The answer, and the stop string it was cut at (None if there was none).
    """
    text, stop_string = truncate_at_stop(generated, stops)
    return text.strip(), stop_string


# The start of a turn marker that more text could complete ("<", "<extra_id_", "< extra_id_1").
_MARKER_TAIL = re.compile(
    r"<\s*(?:extra_id_\s*\d*\s*|e(?:x(?:t(?:r(?:a(?:_(?:i(?:d)?)?)?)?)?)?)?)?\Z"
)
_MARKER_TAIL_WINDOW = 32


def settled_answer(generated: str, stops: Sequence[str]) -> tuple[str, str | None]:
    """The part of the answer that no continuation of ``generated`` can change.

    It is :func:`cut_answer` of ``generated`` without its unsettled tail: a suffix that is
    the start of a stop string or of a turn marker (more text may complete it), and
    trailing whitespace (the final answer is stripped, and the newline before a stop is
    dropped). So each result is a prefix of the next and of the final answer: a stream
    never shows text it would have to take back.

    Returns:
        The settled answer, and the stop string once one was found (the answer is then
        final).
    """
    text, stop_string = cut_answer(generated, stops)
    if stop_string is not None:
        return text, stop_string
    hold = len(generated)
    for stop in stops:
        for size in range(min(len(stop) - 1, len(generated)), 0, -1):
            if generated.endswith(stop[:size]):
                hold = min(hold, len(generated) - size)
                break
    window = max(0, hold - _MARKER_TAIL_WINDOW)
    tail = _MARKER_TAIL.search(generated, window, hold)
    if tail:
        hold = tail.start()
    return cut_answer(generated[:hold], stops)[0], None


class StreamCut:
    """Cuts a streamed answer as its text arrives, exactly as :func:`cut_answer` cuts it whole.

    Feed each delta of generated text; get back the new text that is safe to show. Text
    that could still become a stop string or a marker is held back until it is settled,
    and everything from the first stop string on is never shown.

    Args:
        stops: The end strings of the call.
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = tuple(stops)
        self.generated = ""
        self.shown = ""
        self.stop_string: str | None = None

    @property
    def stopped(self) -> bool:
        """Whether a stop string was found: the answer is complete, later text is dropped."""
        return self.stop_string is not None

    def feed(self, delta: str) -> str:
        """Add generated text; returns the text newly safe to show ("" if none)."""
        if self.stopped or not delta:
            return ""
        self.generated += delta
        text, self.stop_string = settled_answer(self.generated, self.stops)
        return self._advance(text)

    def finish(self) -> str:
        """The stream ended: returns the rest of the answer (what was held back and stays)."""
        if self.stopped:
            return ""
        text, self.stop_string = cut_answer(self.generated, self.stops)
        return self._advance(text)

    def _advance(self, text: str) -> str:
        # Invariant of settled_answer: the shown text is a prefix of every later answer.
        if not text.startswith(self.shown):
            raise AssertionError(f"stream cut would retract {self.shown!r} for {text!r}")
        new, self.shown = text[len(self.shown) :], text
        return new


def markers_dropped(prompt: str, sentence: str) -> bool:
    """Whether the server's tokenizer dropped the prompt's markers from its echo."""
    return bool(_ECHOED_MARKER.search(prompt)) and not _ECHOED_MARKER.search(sentence)


def _drop_stop_fragment(text: str, stops: Sequence[str]) -> tuple[str, str | None]:
    body = text.rstrip()
    best: tuple[int, str] | None = None
    for stop in stops:
        for size in range(len(stop) - 1, 0, -1):
            if body.endswith(stop[:size]):
                start = len(body) - size
                before = body[:start].rstrip(" \t")
                at_line_start = not before or before.endswith("\n")
                if at_line_start and (best is None or start < best[0]):
                    best = (start, stop)
                break
    if best is None:
        return text, None
    return body[: best[0]], best[1]


def truncate_at_stop(text: str, stops: Sequence[str]) -> tuple[str, str | None]:
    """Cut ``text`` at the earliest stop string and remove stray turn markers.

    The stop string is dropped, and so is the newline that ends the turn before it.
    NeMo returns the stop string it stopped at, and NeMo 1.17 ignores ``end_strings``
    altogether, so this always runs on the client. A marker the model emitted that is
    not a stop string (say ``<extra_id_3>``), or one cut off by the token limit at the
    end, is removed: answers never carry markers.

    Returns:
        The cut text, and the stop string found (None if there was none).
    """
    best: tuple[int, str] | None = None
    for stop in stops:
        found = text.find(stop)
        if found != -1 and (best is None or found < best[0]):
            best = (found, stop)
    if best is None:
        return _PARTIAL_MARKER.sub("", _ECHOED_MARKER.sub("", text)), None
    cut = text[: best[0]].removesuffix("\n")
    return _ECHOED_MARKER.sub("", cut), best[1]


@dataclass(frozen=True)
class TokenCount:
    """How one row of ``tokens`` splits into prompt, answer and end-of-sequence tokens.

    Attributes:
        prompt_tokens: Tokens of the prompt (with a BOS token, if one was added).
        completion_tokens: Generated tokens, without end-of-sequence tokens and padding.
        ended_with_eos: The row ends with end-of-sequence tokens (the model's own, or the
            padding of a row that finished before others in its batch).
    """

    prompt_tokens: int
    completion_tokens: int
    ended_with_eos: bool

    @property
    def usage(self) -> Usage:
        """The counts as :class:`~steerlm.types.Usage`."""
        return Usage(prompt_tokens=self.prompt_tokens, completion_tokens=self.completion_tokens)


def count_tokens(tokens: Any, offsets: Any, prompt: str) -> TokenCount | None:
    """Split one row of the server's ``tokens`` at the end of ``prompt``.

    NeMo's ``offsets`` are not character positions in the sentence (they add up raw
    token-string lengths), so the tokens are decoded here: SentencePiece pieces (``▁``,
    ``<0xNN>``), byte-level BPE pieces (``Ġ``, ``Ċ``) or plain text. The prompt ends at
    the token where its characters, compared without markers and whitespace, run out,
    plus its final newline. Tokens NeMo counts as zero-length (``offsets`` do not advance
    over them) at the end of the row are end-of-sequence and padding, never counted.

    Returns:
        The counts, or None when the row has no usable tokens or does not hold the prompt.
    """
    # C-level scans (map, compress): this runs on every answer, over every token.
    if not isinstance(tokens, list) or not set(map(type, tokens)) <= {str}:
        return None
    zero = set(_SPECIAL_TOKENS)
    if isinstance(offsets, list) and len(offsets) == len(tokens):
        added = set(itertools.compress(tokens, map(operator.eq, offsets, offsets[1:])))
        added.discard("")
        zero.update(added)
    end = len(tokens)
    while end and tokens[end - 1] in zero:
        end -= 1
    decode = _piece_decoder(tokens)
    pieces = [b"" if token in zero else decode(token) for token in tokens[:end]]
    boundary = _prompt_end(b"".join(pieces), prompt)
    if boundary is None:
        return None
    # Byte position where each token starts; the prompt's tokens start before its end.
    starts = list(itertools.accumulate(map(len, pieces), initial=0))[:-1]
    prompt_tokens = bisect.bisect_left(starts, boundary)
    return TokenCount(prompt_tokens, end - prompt_tokens, end < len(tokens))


def _piece_decoder(tokens: Sequence[str]) -> Callable[[str], bytes]:
    joined = "\0".join(tokens)  # one scan instead of one per token
    if "▁" in joined or _BYTE_PIECE_LINE.search(joined):
        return _sentencepiece_bytes
    if "Ġ" in joined or "Ċ" in joined:
        return _byte_level_bytes
    return str.encode


def _sentencepiece_bytes(token: str) -> bytes:
    byte = _BYTE_PIECE.fullmatch(token)
    return bytes([int(byte[1], 16)]) if byte else token.replace("▁", " ").encode()


def _byte_level_bytes(token: str) -> bytes:
    return b"".join(
        bytes([UNICODE_TO_BYTE[c]]) if c in UNICODE_TO_BYTE else c.encode() for c in token
    )


def _prompt_end(data: bytes, prompt: str) -> int | None:
    """Byte index in ``data`` where the prompt ends (see :func:`count_tokens`)."""
    exact = prompt.encode()
    if data.startswith(exact):
        return len(exact)  # a lossless echo: what the comparison below would find
    wanted = b"".join(_MARKER_BYTES.sub(b"", prompt.encode()).split())
    matched = position = 0
    while matched < len(wanted):
        if position >= len(data):
            return None
        marker = _MARKER_BYTES.match(data, position)
        if marker:
            position = marker.end()
        elif data[position : position + 1].isspace():
            position += 1
        elif data[position] == wanted[matched]:
            matched += 1
            position += 1
        else:
            return None
    tail = len(prompt) - len(prompt.rstrip())
    while tail and data[position : position + 1].isspace():
        position += 1
        tail -= 1
    return position


def _finish_reason(
    stop_string: str | None,
    usage: Usage | None,
    at_limit: bool | None,
    options: GenerationOptions,
) -> FinishReason:
    if stop_string is not None:
        return "stop"
    if at_limit is not None:
        # Not at the limit: end of sequence, or an end string the echo does not show.
        return "length" if at_limit else "stop"
    if usage is not None and usage.completion_tokens < options.max_tokens:
        return "stop"  # the model ended its sequence before the limit
    return "length"


def _generated_logprobs(logprob: Any, usage: Usage | None) -> list[float] | None:
    # NeMo's logprob covers every token after the first, padding included: keep the
    # generated ones. A server that sends only the answer's gets them as they are.
    if not isinstance(logprob, list) or usage is None:
        return None
    if len(logprob) >= usage.total_tokens - 1:
        first = max(usage.prompt_tokens - 1, 0)
        values = logprob[first : first + usage.completion_tokens]
    else:
        values = logprob[-usage.completion_tokens :] if usage.completion_tokens else []
    return [float(value) for value in values]
