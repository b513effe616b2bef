"""Parse NeMo's ``/generate`` answer: errors, answer extraction, stop strings, usage."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from steerlm.errors import SteerLMResponseError, SteerLMServerError
from steerlm.options import GenerationOptions
from steerlm.types import Completion, FinishReason, Usage

# A turn marker as a tokenizer may echo it: possibly re-spaced inside the brackets.
_ECHOED_MARKER = re.compile(r"<\s*extra_id_\s*\d+\s*>")
# The start of a marker cut off by the token limit, e.g. "<extra_" at the very end.
_PARTIAL_MARKER = re.compile(r"<(?:e(?:x(?:t(?:r(?:a(?:_(?:i(?:d(?:_\d*)?)?)?)?)?)?)?)?)?$")


def decode_body(url: str, status: int, text: str) -> dict[str, Any]:
    """Decode an HTTP answer of ``/generate`` into its JSON object.

    Raises:
        SteerLMServerError: A status other than 200, or a 200 whose body is a JSON string
            (how NeMo reports a failed validation).
        SteerLMResponseError: The body is not JSON, or not a JSON object.
    """
    try:
        body = json.loads(text)
    except ValueError:
        if status != 200:
            raise SteerLMServerError(url, status, text) from None
        raise SteerLMResponseError(url, "the body is not JSON", text) from None
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
    completions = []
    for index, (prompt, sentence) in enumerate(zip(prompts, sentences, strict=True)):
        start = find_generation_start(sentence, prompt)
        if start is None:
            raise SteerLMResponseError(
                url, f"sentence {index} does not start with its prompt", sentence
            )
        raw = {key: _item(value, index) for key, value in body.items()}
        text, stop_string = truncate_at_stop(sentence[start:], stops)
        usage = count_usage(raw.get("tokens"), raw.get("offsets"), start)
        completions.append(
            Completion(
                text=text,
                finish_reason=_finish_reason(stop_string, usage, options),
                stop_string=stop_string,
                usage=usage,
                logprobs=_generated_logprobs(raw.get("logprob"), usage),
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


def count_usage(tokens: Any, offsets: Any, generation_start: int) -> Usage | None:
    """Count prompt and completion tokens from the server's tokens and character offsets.

    A token belongs to the prompt when it starts before the generated text does.
    Returns None when the server sent no usable ``tokens`` and ``offsets``.
    """
    if not (isinstance(tokens, list) and isinstance(offsets, list)):
        return None
    if len(tokens) != len(offsets) or not all(type(o) is int for o in offsets):
        return None
    prompt_tokens = sum(1 for offset in offsets if offset < generation_start)
    return Usage(prompt_tokens=prompt_tokens, completion_tokens=len(tokens) - prompt_tokens)


def _finish_reason(
    stop_string: str | None, usage: Usage | None, options: GenerationOptions
) -> FinishReason:
    if stop_string is not None:
        return "stop"
    if usage is not None and usage.completion_tokens < options.max_tokens:
        return "stop"  # the model ended its sequence before the limit
    return "length"


def _generated_logprobs(logprob: Any, usage: Usage | None) -> list[float] | None:
    # NeMo's logprob covers every token after the first; keep the generated ones.
    if not isinstance(logprob, list) or usage is None:
        return None
    return (
        [float(value) for value in logprob[-usage.completion_tokens :]]
        if usage.completion_tokens
        else []
    )
