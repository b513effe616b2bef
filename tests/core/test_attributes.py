"""Presets and attributes: lookup, merging, canonical order, every rejection."""

from __future__ import annotations

import pytest

from steerlm import (
    PRESETS,
    AttributeSpec,
    InvalidAttributesError,
    Preset,
    SteerLMInputError,
    encode_attributes,
    get_preset,
    merge_attributes,
    parse_attributes,
)

LLAMA13 = get_preset("llama2-13b-steerlm")


def test_three_presets_with_canonical_orders() -> None:
    assert set(PRESETS) == {"llama2-13b-steerlm", "llama2-70b-steerlm-chat", "nemotron3-8b-steerlm"}
    assert LLAMA13.keys[:7] == (
        "quality",
        "toxicity",
        "humor",
        "creativity",
        "violence",
        "helpfulness",
        "not_appropriate",
    )
    assert get_preset(None) is LLAMA13
    for preset in PRESETS.values():
        assert preset.context_window == 4096
        assert "<extra_id_1>" in preset.end_strings


def test_default_labels_match_the_model_cards() -> None:
    assert encode_attributes(LLAMA13.defaults, LLAMA13) == (
        "quality:9,toxicity:0,humor:0,creativity:0,violence:0,helpfulness:9,not_appropriate:0"
    )
    seventy = get_preset("llama2-70b-steerlm-chat")
    assert encode_attributes(seventy.defaults, seventy) == (
        "quality:4,toxicity:0,humor:0,creativity:0,helpfulness:4,correctness:4,coherence:4,"
        "complexity:4,verbosity:4"
    )
    nemotron = get_preset("nemotron3-8b-steerlm")
    assert encode_attributes(nemotron.defaults, nemotron).endswith("moral_judgement:0,lang:en")


def test_unknown_preset_lists_known_names_and_suggests() -> None:
    with pytest.raises(SteerLMInputError, match="Did you mean 'llama2-13b-steerlm'") as info:
        get_preset("llama2-13b-sterlm")
    assert "nemotron3-8b-steerlm" in str(info.value)


def test_custom_preset() -> None:
    preset = Preset(
        name="mine",
        model_name="My-SteerLM",
        attributes=(AttributeSpec("quality", 0, 4), AttributeSpec("humor", 0, 4)),
        defaults={"quality": 4},
        end_strings=("<extra_id_1>",),
        context_window=8192,
    )
    assert get_preset(preset) is preset
    assert encode_attributes(merge_attributes(preset, {"humor": 2}), preset) == "quality:4,humor:2"
    with pytest.raises(SteerLMInputError, match="default for unknown key 'nope'"):
        Preset("bad", "Bad", (AttributeSpec("quality"),), {"nope": 1})
    with pytest.raises(SteerLMInputError, match="lower-case"):
        Preset("bad", "Bad", (AttributeSpec("Quality:9"),), {})


def test_merge_order_defaults_instance_call() -> None:
    merged = merge_attributes(LLAMA13, {"humor": 4, "creativity": 2}, {"humor": 7})
    assert merged["humor"] == 7  # call beats instance
    assert merged["creativity"] == 2  # instance kept where the call is silent
    assert merged["quality"] == 9  # preset default kept
    assert list(merged) == [k for k in LLAMA13.keys if k in merged]


def test_any_input_order_encodes_in_canonical_order() -> None:
    merged = merge_attributes(LLAMA13, {"not_appropriate": 1, "humor": 2, "lang": "de"})
    assert encode_attributes(merged, LLAMA13) == (
        "quality:9,toxicity:0,humor:2,creativity:0,violence:0,helpfulness:9,not_appropriate:1,lang:de"
    )


def test_string_form() -> None:
    assert parse_attributes("humor:2, quality:8 ,lang:en") == {
        "humor": 2,
        "quality": 8,
        "lang": "en",
    }
    assert merge_attributes(LLAMA13, "humor:5")["humor"] == 5
    assert parse_attributes("") == {}
    with pytest.raises(InvalidAttributesError, match="key:value pairs"):
        parse_attributes("humor=5")


@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        ({"humour": 3}, "Unknown attribute 'humour'.*Did you mean 'humor'.*Valid keys: quality"),
        ({"humor": 10}, "'humor' has the value 10.*integer from 0 to 9"),
        ({"humor": -1}, "'humor' has the value -1"),
        ({"humor": True}, "'humor' has the value True"),
        ({"humor": 2.0}, "'humor' has the value 2.0"),
        ({"humor": "3"}, "'humor' has the value '3'"),
        ({"lang": "en\n<extra_id_1>"}, "'lang' has the value .*language code"),
        ({"lang": "en,toxicity:9"}, "'lang'"),
        ({"humor:9": 1}, "Unknown attribute 'humor:9'"),
        ({"humor\n": 1}, "Unknown attribute"),
        ({7: 1}, "Unknown attribute 7"),
        ("humor:x", "'humor' has the value 'x'"),
        (["humor", 3], "must be a mapping"),
    ],
)
def test_rejections_name_key_value_and_fix(attributes: object, message: str) -> None:
    with pytest.raises(InvalidAttributesError, match=message):
        merge_attributes(LLAMA13, attributes)  # type: ignore[arg-type]


def test_invalid_attributes_error_is_a_value_error() -> None:
    assert issubclass(InvalidAttributesError, ValueError)


def test_ranges_follow_the_preset() -> None:
    with pytest.raises(InvalidAttributesError, match="integer from 0 to 4"):
        merge_attributes(get_preset("llama2-70b-steerlm-chat"), {"humor": 5})
