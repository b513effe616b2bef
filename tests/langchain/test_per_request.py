"""Per-request attributes in LCEL chains and LangGraph graphs and agents (README examples)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import ConfigurableField, Runnable
from langchain_core.tools import tool

from langchain_steerlm import SteerLMChat
from steerlm.server import NeMoServer
from tests import helpers
from tests.helpers import LABELS, label_line, sent_prompt


def labels(**attributes: int) -> str:
    line = LABELS
    for key, value in attributes.items():
        line = line.replace(f"{key}:0", f"{key}:{value}")
    return line + "\n"


@pytest.fixture
def steered(nemo: NeMoServer) -> Runnable[Any, Any]:
    # As in the README: the attributes become a per-request configurable field.
    return SteerLMChat(base_url=nemo.base_url, attributes={"humor": 2}).configurable_fields(
        attributes=ConfigurableField(id="attributes", name="SteerLM attributes")
    )


def test_lcel_chain_takes_attributes_from_the_config(
    steered: Runnable[Any, Any], nemo: NeMoServer
) -> None:
    chain = ChatPromptTemplate.from_messages([("user", "{question}")]) | steered | StrOutputParser()
    chain.invoke({"question": "Tell me a joke."})
    assert label_line(sent_prompt(nemo)) == labels(humor=2)  # the instance's default
    chain.invoke(
        {"question": "Tell me a joke."}, config={"configurable": {"attributes": {"humor": 9}}}
    )
    assert label_line(sent_prompt(nemo)) == labels(humor=9)
    chain.with_config(configurable={"attributes": "humor:7,creativity:5"}).invoke(
        {"question": "Again."}
    )
    assert label_line(sent_prompt(nemo)) == labels(humor=7, creativity=5)


def test_a_keyword_to_chain_invoke_never_reaches_the_model(
    nemo: NeMoServer,
) -> None:
    llm = SteerLMChat(base_url=nemo.base_url)
    chain = ChatPromptTemplate.from_messages([("user", "{question}")]) | llm
    # RunnableSequence.invoke accepts **kwargs and drops them: the README warns about it.
    chain.invoke({"question": "Tell me a joke."}, attributes={"humor": 9})  # type: ignore[call-arg]
    assert label_line(sent_prompt(nemo)) == labels()
    # Keywords reach the model when bound to it, or given to the model's own invoke.
    (
        ChatPromptTemplate.from_messages([("user", "{q}")]) | llm.bind(attributes={"humor": 9})
    ).invoke({"q": "Joke?"})
    assert label_line(sent_prompt(nemo)) == labels(humor=9)


def test_langgraph_node_takes_attributes_from_the_config(
    steered: Runnable[Any, Any], nemo: NeMoServer
) -> None:
    from langgraph.graph import START, MessagesState, StateGraph

    def answer(state: MessagesState) -> dict[str, Any]:
        # The graph's config reaches runnables invoked inside a node.
        return {"messages": [steered.invoke(state["messages"])]}

    graph = StateGraph(MessagesState).add_node(answer).add_edge(START, "answer").compile()
    graph.invoke(
        {"messages": [("user", "Tell me a joke.")]},
        config={"configurable": {"attributes": {"humor": 8}}},
    )
    assert label_line(sent_prompt(nemo)) == labels(humor=8)


def test_create_agent_takes_attributes_per_request_through_middleware(
    nemo: NeMoServer,
) -> None:
    from langchain.agents import create_agent
    from langchain.agents.middleware import ModelRequest, ModelResponse, wrap_model_call

    @dataclass
    class Steering:
        humor: int = 0

    # create_agent binds tools to the model itself (a configurable model would be replaced
    # by its default), so per-request attributes go in as model settings.
    @wrap_model_call  # type: ignore[arg-type]
    def steer(request: ModelRequest, handler: Any) -> ModelResponse:
        settings = {
            **request.model_settings,
            "attributes": {"humor": request.runtime.context.humor},
        }
        return handler(request.override(model_settings=settings))  # type: ignore[no-any-return]

    agent = create_agent(
        SteerLMChat(base_url=nemo.base_url),
        [tool(helpers.add)],
        middleware=[steer],
        context_schema=Steering,
    )
    agent.invoke({"messages": [("user", "Tell me a joke.")]}, context=Steering(humor=6))
    assert label_line(sent_prompt(nemo)) == labels(humor=6)
