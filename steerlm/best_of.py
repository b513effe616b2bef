"""Best of n: sample n answers, score them with the attribute model, keep the best.

SteerLM's two models work together here: the chat model samples ``best_of`` answers to
each prompt (in one request where the server takes prompt lists, since each prompt is
simply repeated), the attribute model (:class:`~steerlm.scoring.SteerLMScorer`) scores
them all in one scoring call, and the answer with the highest value of the objective
(an attribute, or a weighted sum of several: :class:`~steerlm.scoring.Objective`) is
returned, with every candidate in its ``best_of`` record.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from steerlm.errors import SteerLMInputError
from steerlm.options import GenerationOptions
from steerlm.scoring import AttributeScores, Objective, SteerLMScorer
from steerlm.types import REQUEST_USAGE, Completion, Turn, Usage

__all__ = ["BestOf", "best_of_settings"]


@dataclass(frozen=True)
class BestOf:
    """How one call picks its answers.

    Attributes:
        n: Answers sampled per prompt.
        scorer: The attribute model that scores them.
        objective: What "best" means.
    """

    n: int
    scorer: SteerLMScorer
    objective: Objective

    def expand(self, prompts: Sequence[str]) -> tuple[str, ...]:
        """Each prompt ``n`` times, in order: the candidates' prompts."""
        return tuple(prompt for prompt in prompts for _ in range(self.n))

    def conversations(
        self, turns: Sequence[Sequence[Turn]], candidates: Sequence[Completion]
    ) -> list[list[Turn]]:
        """The conversation each candidate answers, ending with that answer."""
        return [
            [*turns[index // self.n], Turn("assistant", candidate.text)]
            for index, candidate in enumerate(candidates)
        ]

    def choose(
        self, candidates: Sequence[Completion], scores: Sequence[AttributeScores]
    ) -> list[Completion]:
        """The best candidate of each prompt, with its ``best_of`` record.

        The first of equally good candidates wins. Usage counts every candidate (where
        the server counted each), since all of them were generated.
        """
        chosen = []
        for start in range(0, len(candidates), self.n):
            group = candidates[start : start + self.n]
            values = [self.objective.value(s) for s in scores[start : start + self.n]]
            best = max(range(len(group)), key=values.__getitem__)
            record: dict[str, Any] = {
                "objective": self.objective.describe(),
                "chosen": best,
                "candidates": [
                    {"text": candidate.text, "scores": dict(score), "value": value}
                    for candidate, score, value in zip(
                        group, scores[start : start + self.n], values, strict=True
                    )
                ],
            }
            chosen.append(dataclasses.replace(group[best], usage=_total(group), best_of=record))
        return chosen


def best_of_settings(
    n: Any, scorer: Any, objective: Any, options: GenerationOptions
) -> BestOf | None:
    """The :class:`BestOf` of a call, or None for one answer per prompt (``n`` of 1).

    Raises:
        SteerLMInputError: ``n`` is not a positive integer; n > 1 without a scorer or
            with greedy decoding (every candidate would be the same answer); a malformed
            objective, or one naming an attribute the scorer does not score.
    """
    if not (isinstance(n, int) and not isinstance(n, bool) and n >= 1):
        raise SteerLMInputError(
            f"best_of must be a whole number of answers (1 or more), got {n!r}."
        )
    if n == 1:
        return None
    if not isinstance(scorer, SteerLMScorer):
        raise SteerLMInputError(
            f"best_of={n} needs the attribute model to choose with: pass "
            "scorer=steerlm.SteerLMScorer(base_url=...) on the model or with the call."
        )
    if options.greedy:
        raise SteerLMInputError(
            f"best_of={n} needs sampling (greedy decoding gives {n} copies of one answer): "
            "set temperature, e.g. temperature=0.7."
        )
    if options.random_seed is not None:
        raise SteerLMInputError(
            f"best_of={n} with random_seed={options.random_seed}: servers that seed each "
            f"prompt of a request (vLLM, TensorRT-LLM, llama.cpp) would sample one answer "
            f"{n} times. Leave random_seed unset for best_of."
        )
    parsed = Objective.parse(objective)
    if scorer.resolved_attributes is not None:
        parsed.check(scorer.resolved_attributes)
    return BestOf(n, scorer, parsed)


def _total(group: Sequence[Completion]) -> Usage | None:
    usages = [candidate.usage for candidate in group]
    if any(usage is None for usage in usages):
        # A prompt list counted as a whole (OpenAI-style servers): the request's total is
        # the group's when the group was the whole request (one prompt, n candidates).
        whole = group[0].raw.get(REQUEST_USAGE)
        if isinstance(whole, tuple) and whole[0] == len(group):
            return whole[1] if isinstance(whole[1], Usage) else None
        return None
    return Usage(
        prompt_tokens=sum(u.prompt_tokens for u in usages if u is not None),
        completion_tokens=sum(u.completion_tokens for u in usages if u is not None),
    )
