"""Chat mode reads SteerLM prompts back and turns label lines into instructions."""

from __future__ import annotations

import pytest

from steerlm.presets import get_preset
from steerlm.prompt import build_prompt
from steerlm.server.chat_mode import (
    HELPFUL,
    Conversation,
    attribute_maximum,
    label_instruction,
    parse_steerlm_prompt,
)
from steerlm.types import Turn


def test_a_multi_turn_prompt_is_read_back_into_its_turns_and_labels() -> None:
    preset = get_preset("llama2-13b-steerlm")
    labels = {**preset.defaults, "humor": 9}
    prompt = build_prompt(
        [
            Turn("system", "Be brief."),
            Turn("user", "Hi!"),
            Turn("assistant", "Hello.\nHow can I help?", attributes={"humor": 0}),
            Turn("user", "Where did techno music originate?"),
        ],
        labels,
        preset,
    )
    conversation = parse_steerlm_prompt(prompt)
    assert conversation == Conversation(
        system="Be brief.",
        turns=(
            ("user", "Hi!"),
            ("assistant", "Hello.\nHow can I help?"),
            ("user", "Where did techno music originate?"),
        ),
        labels=labels,
    )
    assert conversation.messages() == [
        {"role": "system", "content": f"Be brief.\n\n{HELPFUL} Be very funny."},
        {"role": "user", "content": "Hi!"},
        {"role": "assistant", "content": "Hello.\nHow can I help?"},
        {"role": "user", "content": "Where did techno music originate?"},
    ]


@pytest.mark.parametrize(
    "text", ["The sky is", "<extra_id_1>User\nHi\n", "<extra_id_0>System\n\n<extra_id_1>Bot\nx\n"]
)
def test_text_that_is_not_a_steerlm_generation_prompt_is_left_alone(text: str) -> None:
    assert parse_steerlm_prompt(text) is None


@pytest.mark.parametrize(
    ("labels", "maximum"),
    [
        ({"quality": 9, "humor": 0}, 9),
        ({"quality": 4, "correctness": 4, "verbosity": 2}, 4),  # HelpSteer keys
        ({"quality": 4, "understanding": 4}, 4),  # Nemotron
        ({"quality": 2, "made_up": 1}, 4),  # unknown keys, all values <= 4
        ({"quality": 7, "made_up": 1}, 9),
    ],
)
def test_the_value_range_comes_from_the_preset_with_these_keys(
    labels: dict[str, int], maximum: int
) -> None:
    assert attribute_maximum(labels) == maximum


@pytest.mark.parametrize(
    ("labels", "instruction"),
    [
        ({"quality": 9, "helpfulness": 9, "humor": 0}, HELPFUL),
        ({"quality": 9, "helpfulness": 9, "humor": 9}, f"{HELPFUL} Be very funny."),
        ({"quality": 9, "helpfulness": 9, "humor": 4}, f"{HELPFUL} Add a touch of humor."),
        ({"quality": 0, "helpfulness": 0}, "Give a careless, unhelpful answer."),
        ({"quality": 5, "creativity": 9}, "Be very creative and imaginative."),
        (
            {"quality": 4, "helpfulness": 4, "verbosity": 0, "complexity": 4},
            f"{HELPFUL} Answer in one short sentence. Use expert vocabulary.",
        ),
        ({"quality": 4, "lang": "de"}, f"{HELPFUL} Answer in German."),
        ({"quality": 4, "lang": "en"}, HELPFUL),
        ({"violence": 9, "hate_speech": 9}, ""),  # not steered
        ({}, ""),
    ],
)
def test_label_lines_become_short_instructions(
    labels: dict[str, int | str], instruction: str
) -> None:
    assert label_instruction(labels) == instruction
