"""What "best" means among scored answers: one attribute, or a weighted sum of several.

An objective is an attribute name (``"helpfulness"``) or a dict of weights
(``{"helpfulness": 1.0, "correctness": 1.0, "verbosity": -0.5}``); its value for an
answer is that score, or the weighted sum of the scores. The evaluator of
:mod:`llamaindex_steerlm` and best-of-n in the chat models both use it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TypeAlias

from steerlm.errors import SteerLMInputError, did_you_mean

#: What callers pass: an attribute name or a mapping of attribute name to weight.
ObjectiveInput: TypeAlias = "str | Mapping[str, float] | Objective"

#: The objective when none is given.
DEFAULT_OBJECTIVE = "helpfulness"


class InvalidObjectiveError(SteerLMInputError):
    """An objective that names no attribute of the model, or a weight that is not a number."""


@dataclass(frozen=True)
class Objective:
    """A validated objective: attribute names and their weights.

    Build it with :meth:`parse`; :meth:`check` it against the model's attribute names
    before sending, when they are known; :meth:`value` of an answer's scores.

    Attributes:
        weights: Attribute name to weight, in the order given.
        single: True when the objective was one attribute name (weight 1).
    """

    weights: tuple[tuple[str, float], ...]
    single: bool = False

    @classmethod
    def parse(cls, objective: ObjectiveInput | None = None) -> Objective:
        """An :class:`Objective` from a name or weights (:data:`DEFAULT_OBJECTIVE` for None).

        Raises:
            InvalidObjectiveError: Not a non-empty name or mapping of names to finite
                numbers.
        """
        if objective is None:
            objective = DEFAULT_OBJECTIVE
        if isinstance(objective, Objective):
            return objective
        if isinstance(objective, str):
            if not objective:
                raise InvalidObjectiveError(_SHAPE.format(got="''"))
            return cls(((objective, 1.0),), single=True)
        if not isinstance(objective, Mapping) or not objective:
            raise InvalidObjectiveError(_SHAPE.format(got=repr(objective)))
        weights = []
        for name, weight in objective.items():
            if not isinstance(name, str) or not name:
                raise InvalidObjectiveError(_SHAPE.format(got=repr(objective)))
            if not (
                isinstance(weight, int | float)
                and not isinstance(weight, bool)
                and math.isfinite(weight)
            ):
                raise InvalidObjectiveError(
                    f"The objective's weight of {name!r} is {weight!r}; weights are finite "
                    "numbers, e.g. {'helpfulness': 1.0, 'verbosity': -0.5}."
                )
            weights.append((name, float(weight)))
        return cls(tuple(weights))

    @property
    def names(self) -> tuple[str, ...]:
        """The attribute names the objective reads."""
        return tuple(name for name, _ in self.weights)

    def check(self, attributes: Iterable[str]) -> None:
        """Check that every name is one of the model's ``attributes``.

        Raises:
            InvalidObjectiveError: A name the model does not score, with the closest
                name and the list of valid ones.
        """
        known = list(attributes)
        for name in self.names:
            if name not in known:
                hint = did_you_mean(name, known)
                raise InvalidObjectiveError(
                    f"The objective names {name!r}, which the attribute model does not "
                    f"score.{hint} Its attributes: {', '.join(known)}."
                )

    def value(self, scores: Mapping[str, float]) -> float:
        """The objective's value for one answer's scores.

        Raises:
            InvalidObjectiveError: ``scores`` lack a name the objective reads.
        """
        self.check(scores)
        return math.fsum(weight * float(scores[name]) for name, weight in self.weights)

    def describe(self) -> str | dict[str, float]:
        """The objective as given: the name, or the weights (for metadata and feedback)."""
        return self.weights[0][0] if self.single else dict(self.weights)

    def __str__(self) -> str:
        # "helpfulness + correctness - 0.5*verbosity"
        text = ""
        for name, weight in self.weights:
            term = name if abs(weight) == 1 else f"{abs(weight):g}*{name}"
            sign = "-" if weight < 0 else "+"
            text += f" {sign} {term}" if text else ("-" if weight < 0 else "") + term
        return text


_SHAPE = (
    "An objective is an attribute name such as 'helpfulness' or a dict of weights such as "
    "{{'helpfulness': 1.0, 'correctness': 1.0, 'verbosity': -0.5}}; got {got}."
)


def objective_value(scores: Mapping[str, float], objective: ObjectiveInput | None = None) -> float:
    """The value of ``objective`` (a name or weights) for one answer's ``scores``.

    Raises:
        InvalidObjectiveError: A malformed objective, or a name not in ``scores``.
    """
    return Objective.parse(objective).value(scores)
