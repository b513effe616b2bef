"""Generation options and the wire request of NeMo's ``PUT /generate``."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from steerlm.errors import SteerLMInputError

#: NeMo's end-of-sequence string. From NeMo 1.18 a sent ``end_strings`` replaces the
#: server default, and end-of-sequence stops generation only while this is in the list.
END_OF_TEXT = "<|endoftext|>"

#: NeMo refuses requests with more sentences than this.
MAX_SENTENCES_PER_REQUEST = 128


@dataclass(frozen=True)
class GenerationOptions:
    """Decoding settings of one call.

    Args:
        max_tokens: Most tokens to generate (``tokens_to_generate``).
        temperature: Sampling temperature; None or 0 means greedy decoding.
        top_k: Sample from the k most likely tokens; 0 disables.
        top_p: Nucleus sampling mass, 0 to 1.
        repetition_penalty: 1.0 disables; NeMo's default changed between releases, so it
            is always sent.
        min_tokens: Fewest tokens to generate before an end of sequence may stop.
        random_seed: Seed for sampling (recent NeMo); None leaves it to the server.
        logprobs: Ask for log-probabilities of the generated tokens.
        add_bos: Prepend the BOS token (``add_BOS``).
    """

    max_tokens: int = 1024
    temperature: float | None = None
    top_k: int = 0
    top_p: float = 0.9
    repetition_penalty: float = 1.0
    min_tokens: int = 0
    random_seed: int | None = None
    logprobs: bool = False
    add_bos: bool = False

    def __post_init__(self) -> None:
        problems = list(_problems(self))
        if problems:
            raise SteerLMInputError("Invalid generation options: " + "; ".join(problems) + ".")

    @property
    def greedy(self) -> bool:
        """Whether decoding is greedy (temperature None or 0)."""
        return not self.temperature

    def replace(self, overrides: Mapping[str, Any]) -> GenerationOptions:
        """Return a copy with ``overrides`` applied, validated.

        Raises:
            SteerLMInputError: An override names no option, or its value is invalid.
        """
        unknown = sorted(set(overrides) - OPTION_NAMES)
        if unknown:
            raise SteerLMInputError(
                f"Unknown generation option(s) {', '.join(map(repr, unknown))}. "
                f"Valid per-call options: {', '.join(sorted(OPTION_NAMES))}, attributes, stop."
            )
        return dataclasses.replace(self, **overrides) if overrides else self


OPTION_NAMES = frozenset(f.name for f in dataclasses.fields(GenerationOptions))


def _is_int(value: object) -> bool:
    return type(value) is int


def _is_number(value: object) -> bool:
    return type(value) in (int, float)


def _problems(options: GenerationOptions) -> Iterable[str]:
    if not (_is_int(options.max_tokens) and options.max_tokens >= 1):
        yield f"max_tokens must be an integer >= 1, got {options.max_tokens!r}"
    t = options.temperature
    if t is not None and not (_is_number(t) and 0 <= t <= 100):
        yield f"temperature must be None or 0 (greedy) or a number up to 100, got {t!r}"
    if not (_is_int(options.top_k) and options.top_k >= 0):
        yield f"top_k must be an integer >= 0, got {options.top_k!r}"
    if not (_is_number(options.top_p) and 0 <= options.top_p <= 1):
        yield f"top_p must be a number from 0 to 1, got {options.top_p!r}"
    if not (
        _is_number(options.repetition_penalty) and 1 <= options.repetition_penalty < float("inf")
    ):
        yield (
            f"repetition_penalty must be a finite number >= 1.0, got {options.repetition_penalty!r}"
        )
    if not (_is_int(options.min_tokens) and options.min_tokens >= 0):
        yield f"min_tokens must be an integer >= 0, got {options.min_tokens!r}"
    elif _is_int(options.max_tokens) and options.min_tokens > options.max_tokens:
        yield f"min_tokens ({options.min_tokens}) must not exceed max_tokens ({options.max_tokens})"
    seed = options.random_seed
    if seed is not None and not (_is_int(seed) and seed >= 0):
        yield f"random_seed must be None or an integer >= 0, got {seed!r}"


def normalize_stop(stop: str | Sequence[str] | None) -> tuple[str, ...]:
    """Turn a stop string or list of them into a tuple, rejecting empty strings.

    Raises:
        SteerLMInputError: A stop is not a non-empty string.
    """
    if stop is None:
        return ()
    if not isinstance(stop, str | Sequence | set | frozenset) or isinstance(stop, bytes):
        raise SteerLMInputError(
            f"stop must be a string or a list of strings, got {stop!r} "
            f"({type(stop).__name__}), e.g. stop=['\\n\\n']."
        )
    stops = (stop,) if isinstance(stop, str) else tuple(stop)
    for item in stops:
        if not isinstance(item, str) or not item:
            raise SteerLMInputError(
                f"Stop strings must be non-empty strings, got {item!r} in {stop!r}."
            )
    return stops


def end_strings(*groups: Iterable[str]) -> tuple[str, ...]:
    """Join stop-string groups in order, dropping repeats, and end with ``<|endoftext|>``."""
    ordered = dict.fromkeys(s for group in groups for s in group)
    ordered.setdefault(END_OF_TEXT)
    return tuple(ordered)


def build_request_body(
    prompts: Sequence[str], options: GenerationOptions, stops: Sequence[str]
) -> dict[str, Any]:
    """Build the JSON body of ``PUT /generate`` for ``prompts``.

    Keys whose server default differs between NeMo releases are always sent explicitly.
    Greedy decoding is sent as ``greedy: true`` with no temperature, since the server
    rejects a temperature of 0.
    """
    body: dict[str, Any] = {
        "sentences": list(prompts),
        "tokens_to_generate": options.max_tokens,
        "min_tokens_to_generate": options.min_tokens,
        "greedy": options.greedy,
        "top_k": options.top_k,
        "top_p": options.top_p,
        "repetition_penalty": options.repetition_penalty,
        "add_BOS": options.add_bos,
        "all_probs": False,
        "end_strings": list(stops),
    }
    if not options.greedy:
        body["temperature"] = options.temperature
    if options.logprobs:
        body["compute_logprob"] = True
    if options.random_seed is not None:
        body["random_seed"] = options.random_seed
    return body


def check_prompts(prompts: Sequence[str]) -> None:
    """Raise :class:`~steerlm.errors.SteerLMInputError` before any I/O when there are none."""
    if not prompts:
        raise SteerLMInputError("No prompts to generate: pass at least one.")
