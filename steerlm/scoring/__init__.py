"""The SteerLM attribute model: score answers, label data, pick by an objective.

- :class:`~steerlm.scoring.scorer.SteerLMScorer`: the client (NeMo-Aligner's Triton
  reward server, or a hosted reward model on NIM);
- :class:`~steerlm.scoring.scores.AttributeScores`: one answer's scores, labels and
  label line;
- :class:`~steerlm.scoring.objective.Objective`: an attribute or a weighted sum of them;
- :mod:`steerlm.scoring.annotate`: ``steerlm-annotate``, NeMo-Aligner's data annotation.
"""

from steerlm.scoring.conversation import render_for_scoring
from steerlm.scoring.objective import (
    DEFAULT_OBJECTIVE,
    InvalidObjectiveError,
    Objective,
    objective_value,
)
from steerlm.scoring.scorer import SCORER_URL_ENV, SteerLMScorer
from steerlm.scoring.scores import (
    HELPSTEER2_ATTRIBUTES,
    SCORER_SYSTEM_PROMPT,
    STEERLM_ATTRIBUTES,
    AttributeScores,
    to_label,
)

__all__ = [
    "DEFAULT_OBJECTIVE",
    "HELPSTEER2_ATTRIBUTES",
    "SCORER_SYSTEM_PROMPT",
    "SCORER_URL_ENV",
    "STEERLM_ATTRIBUTES",
    "AttributeScores",
    "InvalidObjectiveError",
    "Objective",
    "SteerLMScorer",
    "objective_value",
    "render_for_scoring",
    "to_label",
]
