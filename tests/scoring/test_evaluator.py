"""llamaindex_steerlm.SteerLMEvaluator: EvaluationResult contract and BatchEvalRunner."""

from __future__ import annotations

import asyncio

import pytest
from llama_index.core.evaluation import BatchEvalRunner, EvaluationResult

from llamaindex_steerlm import SteerLMEvaluator
from steerlm import SteerLMInputError, SteerLMScorer
from steerlm.scoring import InvalidObjectiveError
from steerlm.server.app import NeMoServer
from tests.scoring.helpers import infer_bodies

ANSWER = "four [[scores: helpfulness=3.5, correctness=2, verbosity=1]]"


def test_evaluate_scores_the_objective(nemo: NeMoServer) -> None:
    evaluator = SteerLMEvaluator(base_url=nemo.base_url)
    result = evaluator.evaluate(query="2 + 2?", response=ANSWER, contexts=["ctx"])
    assert isinstance(result, EvaluationResult)
    assert result.score == 3.5 and result.passing is None
    assert result.query == "2 + 2?" and result.response == ANSWER
    assert result.contexts == ["ctx"]
    assert result.feedback is not None
    for name in ("quality", "helpfulness: 3.500 (label 4)", "verbosity: 1.000 (label 1)"):
        assert name in result.feedback
    assert result.feedback.endswith("objective helpfulness = 3.500")


def test_weights_and_threshold(nemo: NeMoServer) -> None:
    weights = {"helpfulness": 1.0, "correctness": 1.0, "verbosity": -0.5}
    evaluator = SteerLMEvaluator(SteerLMScorer(nemo.base_url), objective=weights, threshold=5)
    result = asyncio.run(evaluator.aevaluate(query="Q", response=ANSWER))
    assert result.score == 5.0 and result.passing is True
    low = SteerLMEvaluator(SteerLMScorer(nemo.base_url), objective=weights, threshold=5.01)
    assert low.evaluate(query="Q", response=ANSWER).passing is False


def test_bad_objective_and_missing_inputs(nemo: NeMoServer) -> None:
    with pytest.raises(InvalidObjectiveError, match="Did you mean 'correctness'"):
        SteerLMEvaluator(base_url=nemo.base_url, objective="corectness")
    with pytest.raises(SteerLMInputError, match="either scorer= or"):
        SteerLMEvaluator(SteerLMScorer(nemo.base_url), base_url=nemo.base_url)
    with pytest.raises(SteerLMInputError, match="response missing"):
        SteerLMEvaluator(base_url=nemo.base_url).evaluate(query="Q")
    assert nemo.reward_requests == []


# llama-index-core's own BatchEvalRunner calls its deprecated asyncio_module().
@pytest.mark.filterwarnings("ignore:asyncio_module\\(\\) is deprecated:DeprecationWarning")
def test_batch_eval_runner(nemo: NeMoServer) -> None:
    evaluator = SteerLMEvaluator(base_url=nemo.base_url, threshold=0.2)
    runner = BatchEvalRunner({"steerlm": evaluator}, workers=2)
    results = runner.evaluate_response_strs(
        queries=["Q1", "Q2", "Q3"], response_strs=["a", "a b", "a b c"]
    )
    scores = [r.score for r in results["steerlm"]]
    assert scores == pytest.approx([0.1, 0.2, 0.3])
    assert [r.passing for r in results["steerlm"]] == [False, True, True]
    assert len(infer_bodies(nemo)) == 3  # one scoring request per evaluation
