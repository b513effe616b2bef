"""langchain_steerlm.SteerLMRewardModel: a runnable with runs, batches in one request,
and LangSmith-shaped evaluators, over HTTP against the scripted attribute model."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda

from langchain_steerlm import SteerLMRewardModel
from steerlm import AttributeScores, SteerLMInputError, SteerLMScorer, SteerLMServerError
from steerlm.server.app import NeMoServer
from tests.scoring.helpers import SYSTEM_PROMPT, infer_bodies, sent_texts

CONVERSATION = [HumanMessage("What is 2 + 2?"), AIMessage("It is four.")]


class Runs(BaseCallbackHandler):
    """Chain runs started and ended, by name."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.ended: list[Any] = []
        self.errors: list[BaseException] = []

    def on_chain_start(self, serialized: Any, inputs: Any, *, run_id: UUID, **kw: Any) -> None:
        self.started.append(kw.get("name") or (serialized or {}).get("name"))

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kw: Any) -> None:
        self.ended.append(outputs)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kw: Any) -> None:
        self.errors.append(error)


def test_invoke_scores_the_last_ai_message_and_emits_a_run(nemo: NeMoServer) -> None:
    reward = SteerLMRewardModel(base_url=nemo.base_url)
    runs = Runs()
    conversation = [SystemMessage("Be exact."), *CONVERSATION, HumanMessage("Thanks!")]
    scores = reward.invoke(conversation, config={"callbacks": [runs]})
    assert isinstance(scores, AttributeScores)
    assert scores["helpfulness"] == pytest.approx(0.3)
    assert sent_texts(nemo) == [
        "<extra_id_0>System\nBe exact.\n<extra_id_1>User\nWhat is 2 + 2?\n"
        "<extra_id_1>Assistant\nIt is four.\n<extra_id_2>"
    ]
    assert runs.started == ["SteerLMRewardModel"] and len(runs.ended) == 1


def test_a_prompt_value_and_lcel(nemo: NeMoServer) -> None:
    reward = SteerLMRewardModel(base_url=nemo.base_url)
    prompt = ChatPromptTemplate.from_messages([("human", "{q}"), ("ai", "{a}")])
    chain = prompt | reward | RunnableLambda(lambda s: s.label_line)
    assert chain.invoke({"q": "Hi", "a": "Hello there you"}).startswith("quality:0,")
    assert sent_texts(nemo)[0].startswith(f"<extra_id_0>System\n{SYSTEM_PROMPT}\n")


def test_batch_and_abatch_are_one_request_with_a_run_each(nemo: NeMoServer) -> None:
    reward = SteerLMRewardModel(scorer=SteerLMScorer(nemo.base_url))
    inputs = [[HumanMessage("Q"), AIMessage("w " * i)] for i in range(1, 5)]
    runs = Runs()
    results = reward.batch(inputs, config={"callbacks": [runs]})
    assert [r["verbosity"] for r in results] == pytest.approx([0.1, 0.2, 0.3, 0.4])
    assert len(infer_bodies(nemo)) == 1 and len(runs.started) == 4
    results = asyncio.run(reward.abatch(inputs))
    assert [r["verbosity"] for r in results] == pytest.approx([0.1, 0.2, 0.3, 0.4])
    assert len(infer_bodies(nemo)) == 2


def test_a_bad_input_fails_alone_in_a_batch(nemo: NeMoServer) -> None:
    reward = SteerLMRewardModel(base_url=nemo.base_url)
    results = reward.batch([CONVERSATION, [HumanMessage("no answer")]], return_exceptions=True)
    assert isinstance(results[0], AttributeScores)
    assert isinstance(results[1], SteerLMInputError)
    assert "last AIMessage" in str(results[1])
    with pytest.raises(SteerLMInputError, match="scores a conversation"):
        reward.invoke("just text")


def test_ainvoke_and_server_errors_reach_the_run(nemo: NeMoServer) -> None:
    reward = SteerLMRewardModel(base_url=nemo.base_url)
    assert asyncio.run(reward.ainvoke(CONVERSATION))["quality"] == pytest.approx(0.3)
    runs = Runs()
    with pytest.raises(SteerLMServerError):
        SteerLMRewardModel(base_url=nemo.base_url, model="nope").invoke(
            CONVERSATION, config={"callbacks": [runs]}
        )
    assert len(runs.errors) == 1


def test_settings_or_scorer_not_both_and_no_key_shown(nemo: NeMoServer) -> None:
    with pytest.raises(SteerLMInputError, match="either scorer= or"):
        SteerLMRewardModel(scorer=SteerLMScorer(nemo.base_url), model="x")
    reward = SteerLMRewardModel(base_url=nemo.base_url, api_key="sekrit-key")
    assert reward.client.base_url == nemo.base_url
    assert "sekrit" not in repr(reward) and "sekrit" not in str(reward.to_json())


def test_as_evaluator_has_langsmiths_shape(nemo: NeMoServer) -> None:
    reward = SteerLMRewardModel(base_url=nemo.base_url)
    evaluate = reward.as_evaluator()
    results = evaluate({"input": "Q?"}, {"output": "one two three"})
    assert [r["key"] for r in results] == list(reward.client.resolved_attributes or ())
    assert results[0]["score"] == pytest.approx(0.3)
    two = reward.as_evaluator(keys=["correctness", "helpfulness"])
    assert [r["key"] for r in two({"question": "Q"}, {"answer": AIMessage("a b")})] == [
        "correctness",
        "helpfulness",
    ]
    only = two({"q": "Q"}, {"text": "a b"})  # the dicts' only values
    assert only[0]["score"] == pytest.approx(0.2)
    with pytest.raises(SteerLMInputError, match="Did you mean 'helpfulness'"):
        reward.as_evaluator(keys=["helpfullness"])
    with pytest.raises(SteerLMInputError, match="Cannot tell which"):
        evaluate({"a": "Q", "b": "R"}, {"output": "x"})
    with pytest.raises(SteerLMInputError, match="string or a message"):
        evaluate({"input": "Q"}, {"output": 3})
