"""Render a conversation into the exact bytes of the SteerLM prompt template.

Single turn (every ``\\n`` counts)::

    <extra_id_0>System\\n{system}\\n<extra_id_1>User\\n{question}\\n
    <extra_id_1>Assistant\\n<extra_id_2>{labels}\\n

Earlier assistant turns carry their own label line before their text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from steerlm.attributes import encode_attributes, merge_attributes
from steerlm.errors import SteerLMInputError
from steerlm.presets import AttributeValue, Preset
from steerlm.types import Turn

SYSTEM_MARKER = "<extra_id_0>"
TURN_MARKER = "<extra_id_1>"
LABEL_MARKER = "<extra_id_2>"

# The model's tokenizer turns "<extra_id_N>" into a special token. No text that enters the
# prompt may contain one, or a message (say, a retrieved document), a tool description or
# a schema could open a new turn or rewrite the label line. Every "<extra_id_" becomes
# "<extra-id-": visible to a human, plain text to the model, and the replacement cannot
# form a new marker. build_prompt applies it to every text it receives, whatever its source;
# only the markers build_prompt writes itself are real.
_MARKER_PREFIX = re.compile(re.escape("<extra_id_"))
_NEUTRAL_PREFIX = "<extra-id-"

#: Separator between several system messages merged into the one system turn.
SYSTEM_JOINER = "\n\n"


def neutralize_markers(text: str) -> str:
    """Make SteerLM turn markers in message content inert (``<extra_id_`` -> ``<extra-id-``)."""
    return _MARKER_PREFIX.sub(_NEUTRAL_PREFIX, text)


def build_prompt(
    turns: Sequence[Turn],
    attributes: Mapping[str, AttributeValue],
    preset: Preset,
    system_prompt: str | None = None,
    system_suffix: str = "",
) -> str:
    """Render ``turns`` into a SteerLM generation prompt that ends with the label line.

    Args:
        turns: The conversation. System turns anywhere are merged, in order, into the one
            system turn at the top; the last turn must be a user turn.
        attributes: The validated attributes for the answer to generate.
        preset: The model preset (canonical key order, default system prompt).
        system_prompt: System text used when ``turns`` has no system turn; the preset's
            default when None.
        system_suffix: Text added, after a blank line, to the system turn (tool and JSON
            instructions). It is neutralised like every other text: tool names,
            descriptions and schemas often come from third parties.

    Returns:
        The prompt, ending with ``<extra_id_2>{labels}\\n``.

    Raises:
        SteerLMInputError: No user turn to answer, or the conversation ends with the
            assistant.
        InvalidAttributesError: Attributes recorded on an assistant turn are invalid.
    """
    system_texts = [turn.text for turn in turns if turn.role == "system"]
    dialogue = [turn for turn in turns if turn.role != "system"]
    if not dialogue or dialogue[-1].role != "user":
        found = dialogue[-1].role if dialogue else "no user or assistant message"
        raise SteerLMInputError(
            "A SteerLM prompt must end with a user message for the model to answer; "
            f"the conversation ends with {found}. Append the user's question."
        )
    labels = encode_attributes(attributes, preset)
    if system_texts:
        system = SYSTEM_JOINER.join(system_texts)
    else:
        system = preset.system_prompt if system_prompt is None else system_prompt
    if system_suffix:
        system = f"{system}{SYSTEM_JOINER}{system_suffix}" if system else system_suffix
    # The whole system text at once, so no marker can be assembled across the joins.
    parts = [f"{SYSTEM_MARKER}System\n{neutralize_markers(system)}\n"]
    parts += _render_dialogue(dialogue, labels, preset)
    parts.append(f"{TURN_MARKER}Assistant\n{LABEL_MARKER}{labels}\n")
    return "".join(parts)


def _render_dialogue(dialogue: Iterable[Turn], labels: str, preset: Preset) -> list[str]:
    parts = []
    for turn in dialogue:
        text = neutralize_markers(turn.text)
        if turn.role == "user":
            parts.append(f"{TURN_MARKER}User\n{text}\n")
        elif turn.role == "assistant":
            # NVIDIA's chat clients re-render a past answer with the labels that produced it.
            turn_labels = (
                labels
                if turn.attributes is None
                else encode_attributes(merge_attributes(preset, turn.attributes), preset)
            )
            parts.append(f"{TURN_MARKER}Assistant\n{LABEL_MARKER}{turn_labels}\n{text}\n")
        else:
            raise SteerLMInputError(
                f"Unknown message role {turn.role!r}: use 'system', 'user' or 'assistant'."
            )
    return parts
