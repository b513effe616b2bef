"""Both frameworks score, evaluate and pick the best of n against a real Triton server.

The chat answers come from the dev server's scripted engine; every score comes from the
real Triton server (PyTriton 0.7.0, bound as NeMo-Aligner's RewardModelServer binds its
model), whose stand-in model scores by the dev server's scripted rule: an answer's word
count over ten, unless it holds a ``[[scores: name=value]]`` directive.
"""

from __future__ import annotations

import asyncio

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from llama_index.core.evaluation import BatchEvalRunner
from llama_index.core.llms import ChatMessage

from langchain_steerlm import SteerLMChat as LangChainChat
from langchain_steerlm import SteerLMRewardModel
from llamaindex_steerlm import SteerLMChat as LlamaIndexChat
from llamaindex_steerlm import SteerLMEvaluator
from steerlm import SteerLMScorer
from steerlm.server import NeMoServer, ScriptedEngine

pytestmark = pytest.mark.integration


def test_langchain_reward_model_and_evaluator_on_triton(triton_url: str) -> None:
    reward = SteerLMRewardModel(base_url=triton_url)
    scores = reward.batch(
        [
            [HumanMessage("Capital of France?"), AIMessage("Paris.")],
            [HumanMessage("Capital of France?"), AIMessage("It is Paris, on the Seine.")],
        ]
    )
    assert [round(s["helpfulness"], 4) for s in scores] == [0.1, 0.6]
    evaluate = reward.as_evaluator(keys=["helpfulness"])
    result = evaluate({"question": "Capital?"}, {"answer": "[[scores: helpfulness=3.5]] Paris"})
    assert result == [{"key": "helpfulness", "score": pytest.approx(3.5)}]


# llama-index's own BatchEvalRunner calls its deprecated asyncio_module().
@pytest.mark.filterwarnings("ignore:asyncio_module:DeprecationWarning")
def test_llamaindex_evaluator_and_batch_runner_on_triton(triton_url: str) -> None:
    evaluator = SteerLMEvaluator(base_url=triton_url, threshold=0.5)
    result = evaluator.evaluate(query="Capital?", response="It is Paris, on the Seine.")
    assert result.score == pytest.approx(0.6) and result.passing is True
    runner = BatchEvalRunner({"steerlm": evaluator}, workers=2)
    results = asyncio.run(
        runner.aevaluate_response_strs(
            queries=["Q1?", "Q2?"], response_strs=["Short.", "A longer answer here."]
        )
    )
    assert [r.score for r in results["steerlm"]] == [pytest.approx(0.1), pytest.approx(0.4)]


def test_best_of_n_in_both_chat_models_scores_on_triton(
    nemo: NeMoServer, engine: ScriptedEngine, triton_url: str
) -> None:
    scorer = SteerLMScorer(triton_url)
    lc = LangChainChat(base_url=nemo.base_url, scorer=scorer, best_of=3, temperature=0.7)
    engine.script("One.", "[[scores: helpfulness=3.9]] Two.", "Three four five.")
    message = lc.invoke("q")
    assert message.content == "[[scores: helpfulness=3.9]] Two."
    assert message.response_metadata["best_of"]["chosen"] == 1
    assert nemo.reward_requests == []  # scored by Triton, not by the dev server
    li = LlamaIndexChat(base_url=nemo.base_url, scorer=scorer, temperature=0.7)
    engine.script("Short.", "A much longer answer.")
    response = li.chat([ChatMessage(role="user", content="q")], best_of=2)
    assert response.message.content == "A much longer answer."
    assert response.additional_kwargs["best_of"]["candidates"][0]["value"] == pytest.approx(0.1)
