"""Best of n in both chat models (issue 18): sample n, score all at once, return the best.

On the scripted dev server, which serves the chat model and the attribute model on one
port; its scorer rates every attribute ``len(answer.split()) / 10`` unless the answer
holds a ``[[scores: name=value]]`` directive (steerlm/server/scripted_scorer.py).
"""

from __future__ import annotations

import asyncio
import json

import pytest
from langchain_core.load import dumps
from langchain_core.messages import AIMessage
from llama_index.core.base.llms.types import ChatMessage

from langchain_steerlm import SteerLMChat as LangChainChat
from llamaindex_steerlm import SteerLMChat as LlamaIndexChat
from steerlm import SteerLMInputError, SteerLMScorer
from steerlm.server import NeMoServer, ScriptedEngine
from tests.helpers import add

CANDIDATES = (
    "Short.",
    "A somewhat longer answer here.",
    "[[scores: helpfulness=3.9]] Pick me.",
    "Mid one.",
)


@pytest.fixture
def scorer(nemo: NeMoServer) -> SteerLMScorer:
    return SteerLMScorer(nemo.base_url)


def test_langchain_best_of_four_is_one_request_one_scoring_call_and_the_best(
    nemo: NeMoServer, engine: ScriptedEngine, scorer: SteerLMScorer
) -> None:
    llm = LangChainChat(base_url=nemo.base_url, scorer=scorer, best_of=4, temperature=0.7)
    engine.script(*CANDIDATES)
    message = llm.invoke("What is a black hole?")
    assert message.content == "[[scores: helpfulness=3.9]] Pick me."
    record = message.response_metadata["best_of"]
    assert record["objective"] == "helpfulness" and record["chosen"] == 2
    assert [c["text"] for c in record["candidates"]] == list(CANDIDATES)
    assert record["candidates"][2]["value"] == pytest.approx(3.9)
    assert record["candidates"][0]["scores"]["helpfulness"] == pytest.approx(0.1)
    assert len(nemo.received) == 1 and len(nemo.received[0]["sentences"]) == 4
    assert len(set(nemo.received[0]["sentences"])) == 1  # the same prompt, sampled 4 times
    [scoring] = nemo.reward_requests
    assert json.loads(scoring["body"])["inputs"][0]["shape"] == [4, 1]
    # Usage counts every candidate: all four were generated.
    assert message.usage_metadata is not None
    assert message.usage_metadata["output_tokens"] > len(str(message.content).split())


def test_per_call_best_of_and_a_weighted_objective(
    nemo: NeMoServer, engine: ScriptedEngine, scorer: SteerLMScorer
) -> None:
    llm = LangChainChat(base_url=nemo.base_url, scorer=scorer, temperature=0.7)
    engine.script("One two three four.", "One.", "One two.")
    message = llm.invoke("q", best_of=3, objective={"helpfulness": 1.0, "verbosity": -2.0})
    assert message.content == "One."  # every score is words/10: -1 * words/10 is best short
    assert message.response_metadata["best_of"]["objective"] == {
        "helpfulness": 1.0,
        "verbosity": -2.0,
    }
    engine.script("plain")
    assert "best_of" not in llm.invoke("q").response_metadata  # the instance's best_of is 1


def test_greedy_or_no_scorer_or_an_unknown_attribute_fails_before_any_request(
    nemo: NeMoServer, scorer: SteerLMScorer
) -> None:
    greedy = LangChainChat(base_url=nemo.base_url, scorer=scorer)
    with pytest.raises(SteerLMInputError, match="needs sampling"):
        greedy.invoke("q", best_of=2)
    with pytest.raises(SteerLMInputError, match="needs the attribute model"):
        LangChainChat(base_url=nemo.base_url, temperature=0.7).invoke("q", best_of=2)
    with pytest.raises(SteerLMInputError, match="Did you mean 'helpfulness'"):
        greedy.invoke("q", best_of=2, temperature=0.7, objective="helpfulnes")
    with pytest.raises(SteerLMInputError, match="best_of must be"):
        greedy.invoke("q", best_of=0)
    with pytest.raises(SteerLMInputError, match="Leave random_seed unset"):
        greedy.invoke("q", best_of=2, temperature=0.7, random_seed=3)
    assert nemo.received == [] and nemo.reward_requests == []


def test_llamaindex_best_of_in_chat_and_async(
    nemo: NeMoServer, engine: ScriptedEngine, scorer: SteerLMScorer
) -> None:
    keyed = SteerLMScorer(nemo.base_url, api_key="sk-scorer-secret")
    llm = LlamaIndexChat(base_url=nemo.base_url, scorer=keyed, best_of=2, temperature=0.7)
    engine.script("Tiny.", "A much longer and more helpful answer.")
    response = llm.complete("q")
    assert response.text == "A much longer and more helpful answer."
    assert response.additional_kwargs["best_of"]["chosen"] == 1
    engine.script("A much longer and more helpful answer.", "Tiny.")
    chat = asyncio.run(llm.achat([ChatMessage.from_str("q")]))
    assert chat.message.content == "A much longer and more helpful answer."
    assert chat.additional_kwargs["best_of"]["chosen"] == 0
    assert "sk-scorer-secret" not in llm.to_json() and "sk-scorer-secret" not in repr(llm)
    lc = LangChainChat(base_url=nemo.base_url, scorer=keyed, best_of=2, temperature=0.7)
    assert "sk-scorer-secret" not in dumps(lc) and "sk-scorer-secret" not in repr(lc)


def test_best_of_on_an_openai_engine_is_one_prompt_list(
    nemo: NeMoServer, engine: ScriptedEngine, scorer: SteerLMScorer
) -> None:
    nemo.openai_profile = "vllm"
    llm = LangChainChat(
        api="openai", base_url=nemo.base_url + "/v1", scorer=scorer, best_of=3, temperature=0.7
    )
    engine.script("a", "a b c", "a b")
    message = llm.invoke("q")
    assert message.content == "a b c"
    assert len(nemo.received) == 1 and len(nemo.received[0]["prompt"]) == 3
    # vLLM counts the prompt list as a whole: that is the three candidates' usage.
    assert message.usage_metadata is not None and message.usage_metadata["output_tokens"] > 3


def test_tools_stream_and_batch_work_on_the_chosen_answer(
    nemo: NeMoServer, engine: ScriptedEngine, scorer: SteerLMScorer
) -> None:
    llm = LangChainChat(base_url=nemo.base_url, scorer=scorer, best_of=2, temperature=0.7)
    call = '<tool_call>{"name": "add", "arguments": {"a": 2, "b": 3}}</tool_call>'
    engine.script("I do not know.", f"Let me compute it with the tool now. {call}")
    message = llm.bind_tools([add]).invoke("2 + 3?")
    assert isinstance(message, AIMessage)
    assert message.tool_calls[0]["args"] == {"a": 2, "b": 3}
    engine.script("x", "x y z")
    chunks = list(llm.stream("q"))
    assert "".join(str(c.content) for c in chunks) == "x y z"
    engine.script("a", "a b", "c d e", "c")
    assert [m.content for m in llm.batch(["q1", "q2"])] == ["a b", "c d e"]
    assert len(nemo.received[-1]["sentences"]) == 4
