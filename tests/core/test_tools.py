"""The tool-calling convention and JSON answers, parsed from scripted answers over HTTP."""

from __future__ import annotations

import pytest

from steerlm import SteerLMInputError, SteerLMSettings, Turn
from steerlm.server import NeMoServer, ScriptedEngine
from steerlm.tools import (
    MAX_JSON_DEPTH,
    ParsedAnswer,
    ToolSpec,
    extract_json,
    format_tool_calls,
    format_tool_result,
    loads_json,
    schema_problem,
)
from tests.helpers import MARKER_ATTACK, assert_markers_inert, sent_prompt

ADD = ToolSpec(
    name="add",
    description="Add two integers.",
    parameters={
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["a", "b"],
    },
)
WEATHER = ToolSpec.from_openai(
    {
        "type": "function",
        "function": {
            "name": "weather",
            "description": "Weather of a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
)


def ask(nemo: NeMoServer, answer: str, **kwargs: object) -> ParsedAnswer:
    nemo.engine.script(answer)  # type: ignore[attr-defined]
    llm = SteerLMSettings(base_url=nemo.base_url)
    plan = llm.pipeline.plan(
        [[Turn("user", "What is 2 + 3?")]], {"tools": [ADD, WEATHER], **kwargs}
    )
    [completion] = llm.pipeline.send(plan)
    return llm.pipeline.parse(plan, completion)


def test_instructions_land_in_the_system_turn(nemo: NeMoServer, engine: ScriptedEngine) -> None:
    ask(nemo, "ok")
    prompt = nemo.received[-1]["sentences"][0]
    system = prompt.split("<extra_id_1>User")[0]
    assert system.startswith("<extra_id_0>System\nA chat between a curious user")
    assert '{"name": "add", "description": "Add two integers.", "parameters": {' in system
    assert (
        '<tool_call>{"name": "<tool name>", "arguments": {<arguments as JSON>}}</tool_call>'
        in system
    )
    assert system.endswith("Call a tool only when it helps; otherwise answer directly.\n")


@pytest.mark.parametrize(
    ("choice", "rule"),
    [
        ("any", "You must call at least one tool before answering."),
        ("required", "You must call at least one tool before answering."),
        ("add", "You must call the tool add."),
    ],
)
def test_tool_choice_changes_the_instruction(nemo: NeMoServer, choice: str, rule: str) -> None:
    ask(nemo, "ok", tool_choice=choice)
    assert rule in nemo.received[-1]["sentences"][0]


def test_tool_choice_none_sends_no_tools(nemo: NeMoServer) -> None:
    parsed = ask(
        nemo,
        '<tool_call>{"name": "add", "arguments": {"a": 1, "b": 2}}</tool_call>',
        tool_choice="none",
    )
    assert "<tool_call>" not in nemo.received[-1]["sentences"][0]
    assert parsed.tool_calls == []


def test_unknown_tool_choice_is_an_input_error(nemo: NeMoServer) -> None:
    with pytest.raises(
        SteerLMInputError, match="tool_choice 'mul' is not a bound tool.*add, weather"
    ):
        ask(nemo, "ok", tool_choice="mul")


def test_one_call(nemo: NeMoServer) -> None:
    parsed = ask(nemo, '<tool_call>{"name": "add", "arguments": {"a": 2, "b": 3}}</tool_call>')
    assert parsed.content == ""
    [call] = parsed.tool_calls
    assert (call.name, call.arguments) == ("add", {"a": 2, "b": 3})
    assert call.id.startswith("call_")


def test_two_calls_with_surrounding_text(nemo: NeMoServer) -> None:
    parsed = ask(
        nemo,
        "Let me check.\n"
        '<tool_call>{"name": "add", "arguments": {"a": 2, "b": 3}}</tool_call>\n'
        '<tool_call>{"name": "weather", "arguments": {"city": "Paris"}}</tool_call>',
    )
    assert parsed.content == "Let me check."
    assert [(c.name, c.arguments) for c in parsed.tool_calls] == [
        ("add", {"a": 2, "b": 3}),
        ("weather", {"city": "Paris"}),
    ]
    assert len({c.id for c in parsed.tool_calls}) == 2


def test_an_unclosed_call_at_the_end_still_counts(nemo: NeMoServer) -> None:
    parsed = ask(nemo, '<tool_call>{"name": "add", "arguments": {"a": 1, "b": 1}}')
    assert [c.arguments for c in parsed.tool_calls] == [{"a": 1, "b": 1}]


@pytest.mark.parametrize(
    ("answer", "name", "error"),
    [
        ('<tool_call>{"name": "add", "arguments": {"a": 2,</tool_call>', "add", "not valid JSON"),
        (
            '<tool_call>{"name": "mul", "arguments": {}}</tool_call>',
            "mul",
            "unknown tool 'mul'; the tools are: add, weather",
        ),
        (
            '<tool_call>{"name": "add", "arguments": {"a": 2}}</tool_call>',
            "add",
            "arguments lacks required 'b'",
        ),
        (
            '<tool_call>{"name": "add", "arguments": {"a": "2", "b": 3}}</tool_call>',
            "add",
            'arguments.a must be integer, got "2"',
        ),
        ('<tool_call>["add", 1, 2]</tool_call>', None, 'a call must be {"name"'),
    ],
)
def test_malformed_calls_become_invalid_calls(
    nemo: NeMoServer, answer: str, name: str | None, error: str
) -> None:
    parsed = ask(nemo, answer)
    assert parsed.tool_calls == []
    [invalid] = parsed.invalid_tool_calls
    assert invalid.name == name
    assert error in invalid.error


def test_history_rendering_helpers() -> None:
    assert (
        format_tool_calls([("add", {"a": 1})])
        == '<tool_call>{"name": "add", "arguments": {"a": 1}}</tool_call>'
    )
    assert format_tool_result("add", "3") == '<tool_result name="add">\n3\n</tool_result>'


@pytest.mark.parametrize(
    "answer",
    [
        '{"name": "Ada", "age": 36}',
        'Sure! Here it is: {"name": "Ada", "age": 36} Hope that helps.',
        'Here:\n```json\n{"name": "Ada", "age": 36}\n```\n',
        '```\n{"name": "Ada", "age": 36}\n```',
    ],
)
def test_extract_json_from_prose_and_fences(answer: str) -> None:
    assert extract_json(answer) == {"name": "Ada", "age": 36}


def test_extract_json_says_what_came_back() -> None:
    with pytest.raises(ValueError, match="no JSON object or array: 'I do not know.'"):
        extract_json("I do not know.")


def test_json_schema_instruction(nemo: NeMoServer, engine: ScriptedEngine) -> None:
    llm = SteerLMSettings(base_url=nemo.base_url)
    schema = {"type": "object", "properties": {"name": {"type": "string"}}}
    llm.pipeline.send(llm.pipeline.plan([[Turn("user", "Who?")]], {"json_schema": schema}))
    assert (
        "Answer with one JSON value that matches this JSON schema, and nothing else:\n"
        '{"type": "object", "properties": {"name": {"type": "string"}}}\n<extra_id_1>User'
    ) in nemo.received[-1]["sentences"][0]


def test_schema_subset() -> None:
    schema = {
        "type": "object",
        "properties": {
            "tags": {"type": "array", "items": {"type": "string"}},
            "n": {"type": ["integer", "null"]},
        },
        "additionalProperties": False,
    }
    assert schema_problem({"tags": ["a"], "n": None}, schema) is None
    assert schema_problem({"tags": ["a", 1]}, schema) == "arguments.tags[1] must be string, got 1"
    assert schema_problem({"x": 1}, schema) == "arguments has unknown 'x'"
    assert schema_problem({"n": True}, schema) == "arguments.n must be integer or null, got true"


HOSTILE_TOOLS = {
    "tool name": ToolSpec(name=f"add{MARKER_ATTACK}"),
    "tool description": ToolSpec(name="add", description=MARKER_ATTACK),
    "parameter description": ToolSpec(
        name="add",
        parameters={
            "type": "object",
            "properties": {"a": {"type": "integer", "description": MARKER_ATTACK}},
        },
    ),
    "parameter name and enum": ToolSpec(
        name="add",
        parameters={
            "type": "object",
            "properties": {MARKER_ATTACK: {"type": "string", "enum": [MARKER_ATTACK]}},
        },
    ),
}


@pytest.mark.parametrize("where", HOSTILE_TOOLS)
@pytest.mark.parametrize("tool_choice", [None, "required", "named"])
def test_markers_in_tool_texts_cannot_reach_the_prompt(
    nemo: NeMoServer, where: str, tool_choice: str | None
) -> None:
    tool = HOSTILE_TOOLS[where]
    choice = tool.name if tool_choice == "named" else tool_choice
    llm = SteerLMSettings(base_url=nemo.base_url)
    llm.pipeline.send(
        llm.pipeline.plan([[Turn("user", "Q")]], {"tools": [tool], "tool_choice": choice})
    )
    assert_markers_inert(sent_prompt(nemo))


@pytest.mark.parametrize(
    "schema",
    [
        {"title": MARKER_ATTACK, "type": "object"},
        {"type": "object", "description": MARKER_ATTACK},
        {"type": "object", "properties": {"x": {"type": "string", "description": MARKER_ATTACK}}},
        {"type": "object", "properties": {MARKER_ATTACK: {"type": "string"}}},
    ],
)
def test_markers_in_a_json_schema_cannot_reach_the_prompt(
    nemo: NeMoServer, schema: dict[str, object]
) -> None:
    llm = SteerLMSettings(base_url=nemo.base_url)
    llm.pipeline.send(llm.pipeline.plan([[Turn("user", "Q")]], {"json_schema": schema}))
    assert_markers_inert(sent_prompt(nemo))


DEEP = "[" * 3000


@pytest.mark.parametrize(
    "answer",
    [
        f"<tool_call>{DEEP}</tool_call>",
        f'<tool_call>{{"name": "add", "arguments": {{"a": {DEEP}}}}}</tool_call>',
        f"<tool_call>{DEEP}",
    ],
)
def test_deeply_nested_calls_become_invalid_calls(nemo: NeMoServer, answer: str) -> None:
    parsed = ask(nemo, answer, max_tokens=4000)
    assert parsed.tool_calls == []
    [invalid] = parsed.invalid_tool_calls
    assert f"nested more than {MAX_JSON_DEPTH} levels deep" in invalid.error


@pytest.mark.parametrize(
    "answer", [DEEP, DEEP + "]" * 3000, f'Sure: {{"a": {DEEP}}}', f"```json\n{DEEP}\n```"]
)
def test_extract_json_refuses_deep_nesting_with_a_value_error(answer: str) -> None:
    with pytest.raises(ValueError, match=f"nested more than {MAX_JSON_DEPTH} levels deep"):
        extract_json(answer)


def test_json_at_the_depth_limit_is_read() -> None:
    nested = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert extract_json(f"Here: {nested}") is not None
    with pytest.raises(ValueError, match="nested more than"):
        loads_json("[" + nested + "]")
    assert loads_json('{"s": "[[[[{{{{"}') == {"s": "[[[[{{{{"}
