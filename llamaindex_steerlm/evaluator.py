"""LlamaIndex evaluator on a SteerLM attribute model: how helpful, correct... is an answer.

``SteerLMEvaluator`` scores the response to a query with the attribute model and reports
one number, the *objective* (an attribute, or a weighted sum of attributes; see
:class:`steerlm.scoring.Objective`), with every attribute in the feedback. It needs no
judge LLM and no prompt, and works with ``BatchEvalRunner``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llama_index.core.evaluation import BaseEvaluator, EvaluationResult
from llama_index.core.prompts.mixin import PromptDictType

from steerlm import SteerLMInputError
from steerlm.scoring import AttributeScores, Objective, SteerLMScorer
from steerlm.scoring.objective import ObjectiveInput


class SteerLMEvaluator(BaseEvaluator):
    """Evaluate responses with a SteerLM attribute model.

    ``score`` is the objective's value for the response; ``passing`` is
    ``score >= threshold`` when a threshold is set, else None; ``feedback`` lists every
    attribute's score and label. The retrieved ``contexts`` are not read: the attribute
    model rates the answer to the question.

    Args:
        scorer: The attribute model's client; built from ``**settings`` when None.
        objective: An attribute name, or a dict of weights such as
            ``{"helpfulness": 1.0, "verbosity": -0.5}``; default ``"helpfulness"``.
        threshold: The objective value at or above which a response passes.
        **settings: The scorer's settings instead of ``scorer`` (``base_url``, ``model``,
            ``api``, ``attributes``, ``system_prompt``, ``api_key``, ``timeout``,
            ``max_retries``); see :class:`steerlm.SteerLMScorer`.

    Raises:
        SteerLMInputError: Both ``scorer`` and settings, or an objective naming an
            attribute the model does not score (when its attributes are known ahead).

    Example:
        .. code-block:: python

            from llamaindex_steerlm import SteerLMEvaluator

            evaluator = SteerLMEvaluator(base_url="http://localhost:5555", threshold=3.0)
            result = evaluator.evaluate(query="Hi?", response="Hello! How can I help?")
            result.score, result.passing, result.feedback
    """

    def __init__(
        self,
        scorer: SteerLMScorer | None = None,
        *,
        objective: ObjectiveInput | None = None,
        threshold: float | None = None,
        **settings: Any,
    ) -> None:
        if scorer is not None and settings:
            raise SteerLMInputError(
                f"Give either scorer= or the scorer's settings ({', '.join(settings)}), not "
                "both: set them on the SteerLMScorer."
            )
        self._scorer = scorer if scorer is not None else SteerLMScorer(**settings)
        self._objective = Objective.parse(objective)
        known = self._scorer.resolved_attributes
        if known is not None:
            self._objective.check(known)
        if threshold is not None and (
            isinstance(threshold, bool) or not isinstance(threshold, int | float)
        ):
            raise SteerLMInputError(f"threshold must be a number, got {threshold!r}.")
        self._threshold = None if threshold is None else float(threshold)

    @property
    def scorer(self) -> SteerLMScorer:
        """The attribute model's client."""
        return self._scorer

    @property
    def objective(self) -> Objective:
        """What ``score`` measures."""
        return self._objective

    @property
    def threshold(self) -> float | None:
        """The passing mark, if any."""
        return self._threshold

    def _get_prompts(self) -> PromptDictType:
        return {}  # no judge prompt: the attribute model reads the answer itself

    def _update_prompts(self, prompts_dict: PromptDictType) -> None:
        pass

    def evaluate(
        self,
        query: str | None = None,
        response: str | None = None,
        contexts: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> EvaluationResult:
        """Score ``response`` as the answer to ``query`` (one scoring request).

        Raises:
            SteerLMInputError: ``query`` or ``response`` missing.
            SteerLMError: The attribute model could not score it.
        """
        conversation = _conversation(query, response)
        scores = self._scorer.score([conversation])[0]
        return self._result(query, response, contexts, scores)

    async def aevaluate(
        self,
        query: str | None = None,
        response: str | None = None,
        contexts: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> EvaluationResult:
        """Async :meth:`evaluate`."""
        conversation = _conversation(query, response)
        scores = (await self._scorer.ascore([conversation]))[0]
        return self._result(query, response, contexts, scores)

    def _result(
        self,
        query: str | None,
        response: str | None,
        contexts: Sequence[str] | None,
        scores: AttributeScores,
    ) -> EvaluationResult:
        value = self._objective.value(scores)
        labels = scores.labels
        lines = [f"{name}: {score:.3f} (label {labels[name]})" for name, score in scores.items()]
        lines.append(f"objective {self._objective} = {value:.3f}")
        if self._threshold is not None:
            lines[-1] += f" (threshold {self._threshold:g})"
        return EvaluationResult(
            query=query,
            response=response,
            contexts=contexts,
            score=value,
            passing=None if self._threshold is None else value >= self._threshold,
            feedback="\n".join(lines),
        )


def _conversation(query: str | None, response: str | None) -> list[tuple[str, str]]:
    if query is None or response is None:
        missing = " and ".join(
            name for name, value in (("query", query), ("response", response)) if value is None
        )
        raise SteerLMInputError(
            f"SteerLMEvaluator needs a query and a response; {missing} missing."
        )
    return [("user", query), ("assistant", response)]
