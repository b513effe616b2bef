"""Tool calling, structured output and an agent loop for LangChain, over HTTP (scripted)."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from pydantic import BaseModel
from typing_extensions import TypedDict

from langchain_steerlm import SteerLMChat
from steerlm import SteerLMInputError
from steerlm.server import NeMoServer, ScriptedEngine
from tests import helpers
from tests.helpers import TWO_TOOL_AGENT_SCRIPT, TWO_TOOL_QUESTION, sent_prompt

add = tool(helpers.add)
multiply = tool(helpers.multiply)


class Person(BaseModel):
    """A person."""

    name: str
    age: int


class PersonDict(TypedDict):
    name: str
    age: int


def get_time(city: str) -> str:
    """Current time in a city."""
    return "12:00"


OPENAI_TOOL = {
    "type": "function",
    "function": {
        "name": "lookup",
        "description": "Look a word up.",
        "parameters": {
            "type": "object",
            "properties": {"word": {"type": "string"}},
            "required": ["word"],
        },
    },
}


@pytest.fixture
def llm(nemo: NeMoServer) -> SteerLMChat:
    return SteerLMChat(base_url=nemo.base_url)


def system_turn(nemo: NeMoServer) -> str:
    return sent_prompt(nemo).split("<extra_id_1>User")[0]


def test_bind_tools_accepts_every_kind_and_parses_calls(
    llm: SteerLMChat, nemo: NeMoServer, engine: ScriptedEngine
) -> None:
    engine.script(
        "I will compute.\n"
        '<tool_call>{"name": "add", "arguments": {"a": 2, "b": 3}}</tool_call>\n'
        '<tool_call>{"name": "lookup", "arguments": {"word": "steer"}}</tool_call>'
    )
    message = llm.bind_tools([add, Person, get_time, OPENAI_TOOL]).invoke("2 + 3?")
    system = system_turn(nemo)
    for name in ("add", "Person", "get_time", "lookup"):
        assert f'{{"name": "{name}", "description": ' in system
    assert message.content == "I will compute."
    assert [(c["name"], c["args"]) for c in message.tool_calls] == [
        ("add", {"a": 2, "b": 3}),
        ("lookup", {"word": "steer"}),
    ]
    assert all(c["id"] and c["id"].startswith("call_") for c in message.tool_calls)


@pytest.mark.parametrize(
    ("choice", "rule"),
    [
        ("auto", "Call a tool only when it helps"),
        ("any", "You must call at least one tool"),
        (True, "You must call at least one tool"),
        ("multiply", "You must call the tool multiply."),
        ({"type": "function", "function": {"name": "add"}}, "You must call the tool add."),
    ],
)
def test_tool_choice(llm: SteerLMChat, nemo: NeMoServer, choice: Any, rule: str) -> None:
    llm.bind_tools([add, multiply], tool_choice=choice).invoke("go")
    assert rule in system_turn(nemo)


def test_unknown_tool_choice_fails_at_bind(llm: SteerLMChat) -> None:
    with pytest.raises(SteerLMInputError, match="not a bound tool"):
        llm.bind_tools([add], tool_choice="divide")


def test_malformed_calls_become_invalid_tool_calls(
    llm: SteerLMChat, engine: ScriptedEngine
) -> None:
    engine.script(
        '<tool_call>{"name": "add", "arguments": {"a": 2</tool_call>'
        '<tool_call>{"name": "divide", "arguments": {}}</tool_call>'
        '<tool_call>{"name": "add", "arguments": {"a": "x", "b": 1}}</tool_call>'
    )
    message = llm.bind_tools([add]).invoke("go")
    assert message.tool_calls == []
    errors = [c["error"] for c in message.invalid_tool_calls]
    assert "not valid JSON" in errors[0]
    assert "unknown tool 'divide'" in errors[1]
    assert 'arguments.a must be integer, got "x"' in errors[2]


def test_tool_history_is_rendered_for_the_next_turn(llm: SteerLMChat, nemo: NeMoServer) -> None:
    call = {"name": "add", "args": {"a": 2, "b": 3}, "id": "call_1", "type": "tool_call"}
    llm.bind_tools([add]).invoke(
        [
            HumanMessage("2 + 3?"),
            AIMessage("", tool_calls=[call], response_metadata={"attributes": {"humor": 1}}),
            ToolMessage("5", tool_call_id="call_1"),
        ]
    )
    assert sent_prompt(nemo).endswith(
        "<extra_id_1>User\n2 + 3?\n"
        "<extra_id_1>Assistant\n<extra_id_2>quality:9,toxicity:0,humor:1,creativity:0,violence:0,"
        "helpfulness:9,not_appropriate:0\n"
        '<tool_call>{"name": "add", "arguments": {"a": 2, "b": 3}}</tool_call>\n'
        '<extra_id_1>User\n<tool_result name="add">\n5\n</tool_result>\n'
        "<extra_id_1>Assistant\n<extra_id_2>quality:9,toxicity:0,humor:0,creativity:0,violence:0,"
        "helpfulness:9,not_appropriate:0\n"
    )


def test_streamed_tool_calls(llm: SteerLMChat, engine: ScriptedEngine) -> None:
    engine.script('<tool_call>{"name": "add", "arguments": {"a": 1, "b": 2}}</tool_call>')
    chunks = list(llm.bind_tools([add]).stream("go"))
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged += chunk
    assert [(c["name"], c["args"]) for c in merged.tool_calls] == [("add", {"a": 1, "b": 2})]


@pytest.mark.parametrize("schema", [Person, PersonDict, Person.model_json_schema()])
@pytest.mark.parametrize(
    "answer",
    [
        '{"name": "Ada", "age": 36}',
        'Here you go: {"name": "Ada", "age": 36}. Anything else?',
        '```json\n{"name": "Ada", "age": 36}\n```',
    ],
)
def test_structured_output(
    llm: SteerLMChat, nemo: NeMoServer, engine: ScriptedEngine, schema: Any, answer: str
) -> None:
    engine.script(answer)
    result = llm.with_structured_output(schema).invoke("Who wrote the first program?")
    expected = {"name": "Ada", "age": 36}
    assert (result.model_dump() if isinstance(result, BaseModel) else result) == expected
    assert "Answer with one JSON value that matches this JSON schema" in system_turn(nemo)


def test_structured_output_include_raw_returns_errors(
    llm: SteerLMChat, engine: ScriptedEngine
) -> None:
    engine.script('{"name": "Ada"}', "I cannot say.")
    missing_age = llm.with_structured_output(Person, include_raw=True).invoke("Who?")
    assert missing_age["parsed"] is None
    assert "does not match Person" in str(missing_age["parsing_error"])
    assert missing_age["raw"].content == '{"name": "Ada"}'
    no_json = llm.with_structured_output(PersonDict, include_raw=True).invoke("Who?")
    assert "no JSON object" in str(no_json["parsing_error"])


def test_structured_output_by_function_calling(llm: SteerLMChat, engine: ScriptedEngine) -> None:
    engine.script(
        '<tool_call>{"name": "Person", "arguments": {"name": "Ada", "age": 36}}</tool_call>'
    )
    result = llm.with_structured_output(Person, method="function_calling").invoke("Who?")
    assert result == Person(name="Ada", age=36)


def test_langgraph_agent_runs_a_two_tool_task(
    llm: SteerLMChat, nemo: NeMoServer, engine: ScriptedEngine
) -> None:
    from langgraph.prebuilt import create_react_agent

    engine.script(*TWO_TOOL_AGENT_SCRIPT)
    agent = create_react_agent(llm, [add, multiply])
    result = agent.invoke({"messages": [HumanMessage(TWO_TOOL_QUESTION)]})
    assert result["messages"][-1].content == TWO_TOOL_AGENT_SCRIPT[-1]
    assert [m.content for m in result["messages"] if isinstance(m, ToolMessage)] == ["5", "20"]
    assert len(nemo.received) == 3
    assert '<tool_result name="add">\n5\n</tool_result>' in sent_prompt(nemo, 1)
    assert '<tool_result name="multiply">\n20\n</tool_result>' in sent_prompt(nemo, 2)
