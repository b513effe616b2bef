"""Objectives: an attribute name or weights, validated with "did you mean"."""

from __future__ import annotations

import pytest

from steerlm.scoring import (
    STEERLM_ATTRIBUTES,
    AttributeScores,
    InvalidObjectiveError,
    Objective,
    objective_value,
)

SCORES = AttributeScores({"helpfulness": 3.0, "correctness": 2.0, "verbosity": 4.0})


def test_a_name_or_weights() -> None:
    assert objective_value(SCORES) == 3.0  # helpfulness by default
    assert objective_value(SCORES, "correctness") == 2.0
    weights = {"helpfulness": 1.0, "correctness": 1.0, "verbosity": -0.5}
    assert objective_value(SCORES, weights) == 3.0
    assert Objective.parse(weights).describe() == weights
    assert Objective.parse("verbosity").describe() == "verbosity"
    assert str(Objective.parse(weights)) == "helpfulness + correctness - 0.5*verbosity"
    assert str(Objective.parse({"verbosity": -2, "humor": 1})) == "-2*verbosity + humor"


@pytest.mark.parametrize(
    ("objective", "words"),
    [
        ("", "attribute name"),
        ({}, "attribute name"),
        (3, "attribute name"),
        ({"helpfulness": "1"}, "finite numbers"),
        ({"helpfulness": float("nan")}, "finite numbers"),
        ({"helpfulness": True}, "finite numbers"),
    ],
)
def test_malformed_objectives(objective: object, words: str) -> None:
    with pytest.raises(InvalidObjectiveError, match=words):
        Objective.parse(objective)  # type: ignore[arg-type]


def test_unknown_names_get_did_you_mean_and_the_list() -> None:
    with pytest.raises(InvalidObjectiveError, match="Did you mean 'helpfulness'") as caught:
        Objective.parse({"helpfullness": 1.0}).check(STEERLM_ATTRIBUTES)
    assert "quality, toxicity" in str(caught.value)
    with pytest.raises(InvalidObjectiveError, match="'humor'"):
        objective_value(SCORES, "humor")
