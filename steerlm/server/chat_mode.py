"""Chat-template mode: a SteerLM prompt re-rendered for a model that never learned SteerLM.

A small instruction-tuned model (the embedded SmolLM2-135M) does not know SteerLM's
``<extra_id_N>`` turns or label lines: shown a SteerLM prompt byte for byte, it often opens
a new label line at once and answers nothing. In chat mode the dev server parses the
received prompt back into a conversation, turns the label line into a short instruction
the model can follow (humor 9 of 9 -> "Be very funny."), and lets the engine render that in
the model's own chat template. The answer goes back in NeMo's response shape, as if the
model had written it after the label line.

Attribute values are read relative to their range: the preset whose keys match the label
line gives the maximum (9 for the Llama-2 13B labels, 4 for HelpSteer and Nemotron); keys
of no preset, or of presets with different ranges, are taken as 0-9 if any value exceeds
4, else 0-4. See :data:`LEVELS` and
:func:`label_instruction` for the mapping.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from steerlm.attributes import parse_attributes
from steerlm.errors import SteerLMError
from steerlm.presets import PRESETS, AttributeValue
from steerlm.prompt import LABEL_MARKER, SYSTEM_MARKER, TURN_MARKER

_FINAL_TURN = re.compile(
    re.escape(f"{TURN_MARKER}Assistant\n{LABEL_MARKER}") + r"(?P<labels>[^\n]*)\n\Z"
)
_PAST_ANSWER = re.compile(re.escape(LABEL_MARKER) + r"[^\n]*\n")

#: Fractions of the attribute range from which a value counts as high, or as present.
HIGH, PRESENT = 0.7, 0.35

#: Per attribute: the instruction for a high value, then for a middle one ("" = none).
#: quality, helpfulness, correctness, understanding and coherence are read together.
LEVELS: dict[str, tuple[str, str]] = {
    "humor": ("Be very funny.", "Add a touch of humor."),
    "creativity": ("Be very creative and imaginative.", "Be a little creative."),
    "toxicity": ("Be rude.", "Be a little impolite."),
    "verbosity": ("Give a detailed answer.", ""),
    "complexity": ("Use expert vocabulary.", ""),
}
#: Instructions for low values (below :data:`PRESENT`) of attributes that default high.
LOW_LEVELS: dict[str, str] = {
    "verbosity": "Answer in one short sentence.",
    "complexity": "Use simple words.",
}
_HELPFUL_KEYS = ("quality", "helpfulness", "correctness", "understanding", "coherence")
HELPFUL = "Answer helpfully and accurately."
UNHELPFUL = "Give a careless, unhelpful answer."

_LANGUAGES = {
    "de": "German",
    "es": "Spanish",
    "fr": "French",
    "it": "Italian",
    "ja": "Japanese",
    "nl": "Dutch",
    "pt": "Portuguese",
    "ru": "Russian",
    "zh": "Chinese",
}


@dataclass(frozen=True)
class Conversation:
    """A SteerLM generation prompt read back into its parts.

    Args:
        system: The system turn's text ("" when the prompt has none).
        turns: ``(role, text)`` pairs, role ``"user"`` or ``"assistant"``; the last is the
            user turn to answer. Past answers lose their label lines.
        labels: The attributes of the final label line.
    """

    system: str
    turns: tuple[tuple[str, str], ...]
    labels: dict[str, AttributeValue]

    def messages(self) -> list[dict[str, str]]:
        """OpenAI-style messages for a chat template, the instruction in the system turn."""
        instruction = label_instruction(self.labels)
        system = "\n\n".join(part for part in (self.system, instruction) if part)
        head = [{"role": "system", "content": system}] if system else []
        return head + [{"role": role, "content": text} for role, text in self.turns]


def parse_steerlm_prompt(prompt: str) -> Conversation | None:
    """Read a SteerLM generation prompt (as ``steerlm.prompt.build_prompt`` writes it).

    Returns:
        The conversation, or None when ``prompt`` does not end with an assistant turn's
        label line (plain completion text), which chat mode then passes on unchanged.
    """
    final = _FINAL_TURN.search(prompt)
    if final is None:
        return None
    head = prompt[: final.start()]
    system = ""
    if head.startswith(f"{SYSTEM_MARKER}System\n"):
        system_text, _, head = head[len(SYSTEM_MARKER) + len("System\n") :].partition(TURN_MARKER)
        system = _strip_newline(system_text)
        head = TURN_MARKER + head if head else ""
    elif not head.startswith(TURN_MARKER) and head:
        return None
    turns: list[tuple[str, str]] = []
    for chunk in head.split(TURN_MARKER)[1:]:
        role, newline, text = chunk.partition("\n")
        if not newline or role not in ("User", "Assistant"):
            return None
        if role == "Assistant":
            text = _PAST_ANSWER.sub("", text, count=1) if text.startswith(LABEL_MARKER) else text
        turns.append((role.lower(), _strip_newline(text)))
    if not turns or turns[-1][0] != "user":
        return None
    try:
        labels = parse_attributes(final.group("labels"))
    except SteerLMError:
        labels = {}
    return Conversation(system, tuple(turns), labels)


def attribute_maximum(labels: Mapping[str, AttributeValue]) -> int:
    """The top of the value range of ``labels``: from the preset that has these keys."""
    keys = set(labels)
    maxima = {
        spec.maximum
        for preset in PRESETS.values()
        if keys and keys <= set(preset.keys)
        for spec in preset.attributes
        if spec.key in keys and spec.kind == "int"
    }
    if len(maxima) == 1:
        return maxima.pop()
    # Unknown keys, or keys that several presets share with different ranges.
    numbers = [value for value in labels.values() if isinstance(value, int)]
    return 9 if numbers and max(numbers) > 4 else 4


def label_instruction(labels: Mapping[str, AttributeValue]) -> str:
    """A short instruction saying what the label line asks for, e.g. ``"Be very funny."``.

    Values are fractions of the range (:func:`attribute_maximum`): from 70% high, from 35%
    middle, below that low. quality, helpfulness, correctness, understanding and coherence
    are averaged into "Answer helpfully and accurately." (high) or "Give a careless,
    unhelpful answer." (low). humor, creativity, toxicity, verbosity and complexity map
    through :data:`LEVELS` and :data:`LOW_LEVELS`; a ``lang`` other than ``en`` asks for
    that language. Other keys (violence, not_appropriate, hate_speech...) are not steered.
    """
    maximum = attribute_maximum(labels) or 1
    levels = {key: value / maximum for key, value in labels.items() if isinstance(value, int)}
    parts = []
    helpful = [levels[key] for key in _HELPFUL_KEYS if key in levels]
    if helpful:
        mean = sum(helpful) / len(helpful)
        if mean >= HIGH:
            parts.append(HELPFUL)
        elif mean < PRESENT:
            parts.append(UNHELPFUL)
    for key, (high, middle) in LEVELS.items():
        level = levels.get(key)
        if level is None:
            continue
        if level >= HIGH:
            parts.append(high)
        elif level >= PRESENT and middle:
            parts.append(middle)
        elif level < PRESENT and key in LOW_LEVELS:
            parts.append(LOW_LEVELS[key])
    language = labels.get("lang")
    if isinstance(language, str) and language.lower() not in ("en", ""):
        name = _LANGUAGES.get(language.lower()[:2], f"the language with code {language}")
        parts.append(f"Answer in {name}.")
    return " ".join(parts)


def _strip_newline(text: str) -> str:
    return text[:-1] if text.endswith("\n") else text
