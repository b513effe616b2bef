"""The attribute model's answer for one conversation: raw scores, labels, the label line."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from steerlm.presets import DEFAULT_SYSTEM_PROMPT

#: NeMo-Aligner's ``ALL_STEERLM_ATTRIBUTES``: the outputs of a SteerLM attribute model, in
#: order (``NVIDIA/NeMo-Aligner@v0.7.0:examples/nlp/data/steerlm/common.py#L28-L32``).
STEERLM_ATTRIBUTES: tuple[str, ...] = (
    "quality",
    "toxicity",
    "humor",
    "creativity",
    "helpfulness",
    "correctness",
    "coherence",
    "complexity",
    "verbosity",
)

#: The five HelpSteer2 attributes a hosted reward model (Nemotron-4-340B-Reward) reports.
HELPSTEER2_ATTRIBUTES: tuple[str, ...] = STEERLM_ATTRIBUTES[4:]

#: The system turn ``attribute_annotate.py`` always sends (``common.py#L15-L18``); the same
#: text as :data:`steerlm.DEFAULT_SYSTEM_PROMPT`.
SCORER_SYSTEM_PROMPT: str = DEFAULT_SYSTEM_PROMPT

#: The label scale of the HelpSteer-era attribute models: labels are clamped to it.
LABEL_MIN, LABEL_MAX = 0, 4


def to_label(score: float) -> int:
    """A raw score as a label, as ``attribute_annotate.py#L129-L139`` makes it.

    Clamped to 0..4, then Python's ``round`` (to even on a tie: 2.5 -> 2, 3.5 -> 4).
    """
    return round(min(float(LABEL_MAX), max(float(LABEL_MIN), float(score))))


class AttributeScores(Mapping[str, float]):
    """A read-only mapping of attribute name to the raw score, in the model's order.

    Args:
        scores: The scores, a mapping or ``(name, score)`` pairs, in the model's order.

    Example:
        >>> scores = AttributeScores({"helpfulness": 3.4, "verbosity": 2.5})
        >>> scores["helpfulness"], scores.labels, scores.label_line
        (3.4, {'helpfulness': 3, 'verbosity': 2}, 'helpfulness:3,verbosity:2')
    """

    __slots__ = ("_scores",)

    def __init__(self, scores: Mapping[str, float] | Iterable[tuple[str, float]]) -> None:
        pairs = scores.items() if isinstance(scores, Mapping) else scores
        self._scores: dict[str, float] = {str(name): float(value) for name, value in pairs}

    def __getitem__(self, name: str) -> float:
        return self._scores[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._scores)

    def __len__(self) -> int:
        return len(self._scores)

    @property
    def labels(self) -> dict[str, int]:
        """Each score clamped to 0..4 and rounded with Python's ``round``, in order."""
        return {name: to_label(value) for name, value in self._scores.items()}

    @property
    def label_line(self) -> str:
        """The labels as NeMo-Aligner writes them: ``"quality:4,toxicity:0,..."``."""
        return ",".join(f"{name}:{label}" for name, label in self.labels.items())

    def to_dict(self) -> dict[str, float]:
        """The scores as a plain dict (for JSON, tracing, metadata)."""
        return dict(self._scores)

    def __repr__(self) -> str:
        return f"AttributeScores({self._scores!r})"

    def __reduce__(self) -> tuple[type[AttributeScores], tuple[dict[str, float]]]:
        return (AttributeScores, (self._scores,))
