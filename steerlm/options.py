"""Generation options, declared once, and the wire request of NeMo's ``PUT /generate``.

:class:`GenerationFields` declares each option (type, default, description) in one place:
the adapters' settings inherit it as constructor fields, and :class:`GenerationOptions`,
the frozen options of one call, inherits it too. Adding an option is one field here plus
its key in each transport's request body.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from steerlm.errors import SteerLMInputError

#: NeMo's end-of-sequence string. From NeMo 1.18 a sent ``end_strings`` replaces the
#: server default, and end-of-sequence stops generation only while this is in the list.
END_OF_TEXT = "<|endoftext|>"

#: NeMo refuses requests with more sentences than this.
MAX_SENTENCES_PER_REQUEST = 128


class GenerationFields(BaseModel):
    """The decoding settings, declared once for the settings and for each call.

    Attributes:
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

    max_tokens: int = Field(default=1024, strict=True, description="Most tokens to generate.")
    temperature: float | None = Field(
        default=None, description="Sampling temperature; None or 0 means greedy decoding."
    )
    top_k: int = Field(default=0, strict=True, description="Top-k sampling; 0 disables it.")
    top_p: float = Field(default=0.9, description="Nucleus sampling mass, 0 to 1.")
    repetition_penalty: float = Field(
        default=1.0,
        description="1.0 disables; always sent (NeMo's default changed between releases).",
    )
    min_tokens: int = Field(default=0, strict=True, description="Fewest tokens to generate.")
    random_seed: int | None = Field(
        default=None, strict=True, description="Sampling seed (recent NeMo releases)."
    )
    logprobs: bool = Field(
        default=False, description="Ask the server for log-probabilities of the answer."
    )
    add_bos: bool = Field(
        default=False, description="Prepend the BOS token to each prompt (NeMo's add_BOS)."
    )


#: The names of the generation options, each also a per-call keyword.
OPTION_NAMES = frozenset(GenerationFields.model_fields)
_DEFAULTS = {name: field.default for name, field in GenerationFields.model_fields.items()}


class GenerationOptions(GenerationFields):
    """The decoding settings of one call: frozen, hashable, validated.

    Built from the instance's settings with per-call overrides
    (:meth:`~steerlm.settings.SteerLMSettings.generation_options`), or directly:
    ``GenerationOptions(max_tokens=64, temperature=0.7)``.

    Raises:
        SteerLMInputError: An unknown option, or a value the server would refuse.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    def __init__(self, **options: Any) -> None:
        values = _checked(options)
        try:
            super().__init__(**values)
        except ValidationError as exc:  # only for types _problems does not look at
            raise SteerLMInputError(f"Invalid generation options: {exc}") from None

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> GenerationOptions:
        """Options from a complete mapping of option values, checked once (no coercion).

        The per-call path: cheaper than the constructor, and values keep their types.
        """
        return cls.model_construct(**_checked(values))

    @property
    def greedy(self) -> bool:
        """Whether decoding is greedy (temperature None or 0)."""
        return not self.temperature

    def replace(self, overrides: Mapping[str, Any]) -> GenerationOptions:
        """Return a copy with ``overrides`` applied, validated.

        Raises:
            SteerLMInputError: An override names no option, or its value is invalid.
        """
        if not overrides:
            return self
        return GenerationOptions.of({**self.__dict__, **overrides})


def _checked(options: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(options) - OPTION_NAMES)
    if unknown:
        raise SteerLMInputError(
            f"Unknown generation option(s) {', '.join(map(repr, unknown))}. "
            f"Valid per-call options: {', '.join(sorted(OPTION_NAMES))}, attributes, stop."
        )
    values = {**_DEFAULTS, **options}
    problems = list(_problems(values))
    if problems:
        raise SteerLMInputError("Invalid generation options: " + "; ".join(problems) + ".")
    return values


def _is_int(value: object) -> bool:
    return type(value) is int


def _is_number(value: object) -> bool:
    return type(value) in (int, float)


def _problems(options: Mapping[str, Any]) -> Iterable[str]:
    max_tokens, min_tokens = options["max_tokens"], options["min_tokens"]
    if not (_is_int(max_tokens) and max_tokens >= 1):
        yield f"max_tokens must be an integer >= 1, got {max_tokens!r}"
    t = options["temperature"]
    if t is not None and not (_is_number(t) and 0 <= t <= 100):
        yield f"temperature must be None or 0 (greedy) or a number up to 100, got {t!r}"
    if not (_is_int(options["top_k"]) and options["top_k"] >= 0):
        yield f"top_k must be an integer >= 0, got {options['top_k']!r}"
    if not (_is_number(options["top_p"]) and 0 <= options["top_p"] <= 1):
        yield f"top_p must be a number from 0 to 1, got {options['top_p']!r}"
    penalty = options["repetition_penalty"]
    if not (_is_number(penalty) and 1 <= penalty < float("inf")):
        yield f"repetition_penalty must be a finite number >= 1.0, got {penalty!r}"
    if not (_is_int(min_tokens) and min_tokens >= 0):
        yield f"min_tokens must be an integer >= 0, got {min_tokens!r}"
    elif _is_int(max_tokens) and min_tokens > max_tokens:
        yield f"min_tokens ({min_tokens}) must not exceed max_tokens ({max_tokens})"
    seed = options["random_seed"]
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
