"""Attribute parsing, merging, validation and encoding into a SteerLM label line."""

from __future__ import annotations

import re
from collections.abc import Mapping

from steerlm.errors import InvalidAttributesError, did_you_mean
from steerlm.presets import LANGUAGE_KIND, AttributeValue, Preset

#: What callers may pass as attributes: a mapping in any order, or an encoded label string.
AttributesInput = Mapping[str, AttributeValue] | str | None

_LANGUAGE_CODE = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*")
_INTEGER = re.compile(r"[0-9]+")


def parse_attributes(attributes: AttributesInput) -> dict[str, AttributeValue]:
    """Turn a mapping or a label string such as ``"quality:9,humor:2"`` into a dict.

    Values of the string form that are all digits become integers. Nothing is validated
    against a preset here; see :func:`validate_attributes`.

    Raises:
        InvalidAttributesError: The string is not ``key:value`` pairs joined by commas, or
            the value is neither a mapping, a string nor None.
    """
    if attributes is None:
        return {}
    if isinstance(attributes, Mapping):
        return dict(attributes)
    if not isinstance(attributes, str):
        raise InvalidAttributesError(
            f"Attributes must be a mapping such as {{'humor': 3}} or a string such as "
            f"'quality:9,humor:3', not {type(attributes).__name__}."
        )
    parsed: dict[str, AttributeValue] = {}
    for pair in filter(None, (part.strip() for part in attributes.split(","))):
        key, colon, value = pair.partition(":")
        if not colon or not key.strip() or not value.strip():
            raise InvalidAttributesError(
                f"Cannot read {pair!r} in the attribute string {attributes!r}: write "
                "key:value pairs joined by commas, e.g. 'quality:9,humor:3'."
            )
        value = value.strip()
        parsed[key.strip()] = int(value) if _INTEGER.fullmatch(value) else value
    return parsed


def validate_attributes(attributes: Mapping[str, AttributeValue], preset: Preset) -> None:
    """Check every key and value against ``preset``.

    Raises:
        InvalidAttributesError: Names the key, the value and what is allowed.
    """
    for key, value in attributes.items():
        spec = preset.spec(key) if isinstance(key, str) else None
        if spec is None:
            hint = did_you_mean(str(key), preset.keys)
            raise InvalidAttributesError(
                f"Unknown attribute {key!r} for preset {preset.name!r}.{hint} "
                f"Valid keys: {', '.join(preset.keys)}."
            )
        if spec.kind == LANGUAGE_KIND:
            if not (isinstance(value, str) and _LANGUAGE_CODE.fullmatch(value)):
                raise InvalidAttributesError(
                    f"Attribute {key!r} has the value {value!r}; it must be {spec.describe()}."
                )
            continue
        # bool is an int subclass; True would silently become 1 in the label line.
        if type(value) is not int or not spec.minimum <= value <= spec.maximum:
            raise InvalidAttributesError(
                f"Attribute {key!r} has the value {value!r}; preset {preset.name!r} "
                f"accepts {spec.describe()}."
            )


def merge_attributes(preset: Preset, *layers: AttributesInput) -> dict[str, AttributeValue]:
    """Merge preset defaults with each layer in turn, later layers winning key by key.

    Args:
        preset: Supplies the defaults, the valid keys and the canonical order.
        *layers: Attributes from lowest to highest priority (e.g. instance, then call).

    Returns:
        The merged attributes, validated, in the preset's canonical order.

    Raises:
        InvalidAttributesError: A layer has a bad key or value.
    """
    merged: dict[str, AttributeValue] = dict(preset.defaults)
    for layer in layers:
        parsed = parse_attributes(layer)
        validate_attributes(parsed, preset)
        merged.update(parsed)
    return {key: merged[key] for key in preset.keys if key in merged}


def encode_attributes(attributes: Mapping[str, AttributeValue], preset: Preset) -> str:
    """Encode validated attributes as a label line body, e.g. ``quality:9,humor:0``.

    Keys are emitted in the preset's canonical order, whatever order the caller used,
    because every SteerLM model was trained on one fixed order.
    """
    validate_attributes(attributes, preset)
    return ",".join(f"{key}:{attributes[key]}" for key in preset.keys if key in attributes)
