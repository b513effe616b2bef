"""Model presets: which attributes a SteerLM model was trained on, and how to prompt it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from steerlm.errors import SteerLMInputError, did_you_mean

DEFAULT_SYSTEM_PROMPT = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)

#: Keys whose value is a language code rather than an integer score.
LANGUAGE_KIND = "language"

_KEY_PATTERN = re.compile(r"[a-z][a-z0-9_]*")

AttributeValue = int | str


@dataclass(frozen=True)
class AttributeSpec:
    """One steerable attribute: its key and the values it accepts.

    Args:
        key: The label key, e.g. ``"humor"``.
        minimum: Smallest allowed integer value.
        maximum: Largest allowed integer value.
        kind: ``"int"`` for scores, ``"language"`` for a language code such as ``"en"``.
    """

    key: str
    minimum: int = 0
    maximum: int = 9
    kind: str = "int"

    def describe(self) -> str:
        """Say in words which values the attribute accepts."""
        if self.kind == LANGUAGE_KIND:
            return "a language code such as 'en'"
        return f"an integer from {self.minimum} to {self.maximum}"


@dataclass(frozen=True)
class Preset:
    """Everything the integrations need to know about one SteerLM model.

    Args:
        name: Short name used to look the preset up, e.g. ``"llama2-13b-steerlm"``.
        model_name: Model name reported in response metadata.
        attributes: The attribute keys in the model's canonical (training) order.
        defaults: Attribute values used when the caller does not set them.
        end_strings: Stop strings recommended for the model.
        system_prompt: System turn used when the conversation has none.
        context_window: Context length in tokens.
    """

    name: str
    model_name: str
    attributes: tuple[AttributeSpec, ...]
    defaults: Mapping[str, AttributeValue]
    end_strings: tuple[str, ...] = ("<extra_id_1>",)
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    context_window: int = 4096
    _by_key: Mapping[str, AttributeSpec] = field(init=False, repr=False, compare=False)
    _keys: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_key = {spec.key: spec for spec in self.attributes}
        problems = []
        if len(by_key) != len(self.attributes):
            problems.append("an attribute key is listed twice")
        problems += [
            f"attribute key {key!r} must be lower-case letters, digits and '_'"
            for key in by_key
            if not _KEY_PATTERN.fullmatch(key)
        ]
        problems += [
            f"default for unknown key {key!r}" for key in self.defaults if key not in by_key
        ]
        if self.context_window < 1:
            problems.append("context_window must be positive")
        if problems:
            raise SteerLMInputError(f"Invalid preset {self.name!r}: {'; '.join(problems)}.")
        object.__setattr__(self, "_by_key", MappingProxyType(by_key))
        object.__setattr__(self, "_keys", tuple(by_key))  # read on every call: built once
        object.__setattr__(self, "defaults", MappingProxyType(dict(self.defaults)))
        object.__setattr__(self, "end_strings", tuple(self.end_strings))

    @property
    def keys(self) -> tuple[str, ...]:
        """Attribute keys in canonical order."""
        return self._keys

    def spec(self, key: str) -> AttributeSpec | None:
        """The spec of ``key``, or None when the preset has no such attribute."""
        return self._by_key.get(key)


def _scores(keys: str, maximum: int) -> tuple[AttributeSpec, ...]:
    return tuple(
        AttributeSpec(key, 0, maximum, LANGUAGE_KIND if key == "lang" else "int")
        for key in keys.split()
    )


LLAMA2_13B_STEERLM = Preset(
    name="llama2-13b-steerlm",
    model_name="Llama2-13B-SteerLM",
    attributes=_scores(
        "quality toxicity humor creativity violence helpfulness not_appropriate "
        "hate_speech sexual_content fails_task political_content moral_judgement lang",
        9,
    ),
    defaults={
        "quality": 9,
        "toxicity": 0,
        "humor": 0,
        "creativity": 0,
        "violence": 0,
        "helpfulness": 9,
        "not_appropriate": 0,
    },
    # As on the model card (the model may start a new label line instead of ending its
    # turn), plus the label marker, at which NeMo's own chat endpoint stops too.
    end_strings=("<extra_id_1>", "quality:", "quality:9", "quality:0", "<extra_id_2>"),
)

LLAMA2_70B_STEERLM_CHAT = Preset(
    name="llama2-70b-steerlm-chat",
    model_name="Llama2-70B-SteerLM-Chat",
    attributes=_scores(
        "quality toxicity humor creativity helpfulness correctness coherence complexity verbosity",
        4,
    ),
    defaults={
        "quality": 4,
        "toxicity": 0,
        "humor": 0,
        "creativity": 0,
        "helpfulness": 4,
        "correctness": 4,
        "coherence": 4,
        "complexity": 4,
        "verbosity": 4,
    },
    end_strings=("<extra_id_1>", "<extra_id_2>"),
)

NEMOTRON3_8B_STEERLM = Preset(
    name="nemotron3-8b-steerlm",
    model_name="Nemotron-3-8B-Chat-SteerLM",
    attributes=_scores(
        "quality understanding correctness coherence complexity verbosity toxicity humor "
        "creativity violence helpfulness not_appropriate hate_speech sexual_content "
        "fails_task political_content moral_judgement lang",
        4,
    ),
    defaults={
        "quality": 4,
        "understanding": 4,
        "correctness": 4,
        "coherence": 4,
        "complexity": 4,
        "verbosity": 4,
        "toxicity": 0,
        "humor": 0,
        "creativity": 0,
        "violence": 0,
        "helpfulness": 4,
        "not_appropriate": 0,
        "hate_speech": 0,
        "sexual_content": 0,
        "fails_task": 0,
        "political_content": 0,
        "moral_judgement": 0,
        "lang": "en",
    },
    end_strings=("<extra_id_1>", "<extra_id_2>"),
)

#: The model of the seed model card, used when no preset is named.
DEFAULT_PRESET = LLAMA2_13B_STEERLM

PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (LLAMA2_13B_STEERLM, LLAMA2_70B_STEERLM_CHAT, NEMOTRON3_8B_STEERLM)
}


def get_preset(preset: str | Preset | None) -> Preset:
    """Return a preset by name, or ``preset`` itself when it already is one.

    Args:
        preset: A preset name from :data:`PRESETS`, a :class:`Preset`, or None for the default.

    Raises:
        SteerLMInputError: The name is not a known preset.
    """
    if preset is None:
        return DEFAULT_PRESET
    if isinstance(preset, Preset):
        return preset
    if isinstance(preset, str) and preset in PRESETS:
        return PRESETS[preset]
    hint = did_you_mean(str(preset), PRESETS)
    raise SteerLMInputError(
        f"Unknown SteerLM preset {preset!r}.{hint} Known presets: {', '.join(PRESETS)}; "
        "or pass a steerlm.Preset for another model."
    )
