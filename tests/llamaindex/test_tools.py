"""Function calling, structured output and agents for LlamaIndex, over HTTP (scripted)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.llms import ChatMessage
from llama_index.core.prompts import PromptTemplate
from llama_index.core.tools import FunctionTool
from llama_index.core.types import PydanticProgramMode
from llama_index_instrumentation import get_dispatcher
from llama_index_instrumentation.span_handlers import SimpleSpanHandler
from pydantic import BaseModel

from llamaindex_steerlm import SteerLMChat
from steerlm.server import NeMoServer, ScriptedEngine
from tests.helpers import (
    MARKER_ATTACK,
    TWO_TOOL_AGENT_SCRIPT,
    TWO_TOOL_QUESTION,
    HostileArgs,
    HostilePerson,
    add,
    assert_markers_inert,
    hostile_lookup,
    multiply,
    sent_prompt,
)

ADD = FunctionTool.from_defaults(add)
MULTIPLY = FunctionTool.from_defaults(multiply)


class Person(BaseModel):
    """A person."""

    name: str
    age: int


@pytest.fixture
def llm(nemo: NeMoServer) -> SteerLMChat:
    return SteerLMChat(base_url=nemo.base_url)


def system_turn(nemo: NeMoServer, index: int = -1) -> str:
    return sent_prompt(nemo, index).split("<extra_id_1>User")[0]


def test_is_a_function_calling_model(llm: SteerLMChat) -> None:
    assert llm.metadata.is_function_calling_model


def test_chat_with_tools_and_get_tool_calls(
    llm: SteerLMChat, nemo: NeMoServer, engine: ScriptedEngine
) -> None:
    engine.script(
        'Computing.\n<tool_call>{"name": "add", "arguments": {"a": 2, "b": 3}}</tool_call>\n'
        '<tool_call>{"name": "multiply", "arguments": {"a": 4, "b": 5}}</tool_call>'
    )
    response = llm.chat_with_tools(
        [ADD, MULTIPLY], user_msg="2+3 and 4*5?", allow_parallel_tool_calls=True
    )
    system = system_turn(nemo)
    assert '{"name": "add", "description": "add(a: ' in system
    assert (
        'Add two integers.", "parameters": {"properties": {"a": {"title": "A", "type": "integer"}'
        in system
    )
    assert response.message.content == "Computing."
    calls = llm.get_tool_calls_from_response(response)
    assert [(c.tool_name, c.tool_kwargs) for c in calls] == [
        ("add", {"a": 2, "b": 3}),
        ("multiply", {"a": 4, "b": 5}),
    ]


async def test_parallel_calls_are_cut_to_one_unless_allowed(
    llm: SteerLMChat, engine: ScriptedEngine
) -> None:
    engine.script(
        '<tool_call>{"name": "add", "arguments": {"a": 1, "b": 1}}</tool_call>'
        '<tool_call>{"name": "add", "arguments": {"a": 2, "b": 2}}</tool_call>'
    )
    response = await llm.achat_with_tools([ADD], user_msg="go")
    assert len(llm.get_tool_calls_from_response(response)) == 1


def test_tool_required_changes_the_instruction(llm: SteerLMChat, nemo: NeMoServer) -> None:
    llm.chat_with_tools([ADD], user_msg="hi", tool_required=True)
    assert "You must call at least one tool" in system_turn(nemo)


def test_no_valid_call_says_why(llm: SteerLMChat, engine: ScriptedEngine) -> None:
    engine.script('<tool_call>{"name": "add", "arguments": {"a": 1}}</tool_call>')
    response = llm.chat_with_tools([ADD], user_msg="go")
    with pytest.raises(ValueError, match="invalid \\(arguments lacks required 'b'\\)"):
        llm.get_tool_calls_from_response(response)
    assert llm.get_tool_calls_from_response(response, error_on_no_tool_call=False) == []


def test_predict_and_call_runs_the_tool(llm: SteerLMChat, engine: ScriptedEngine) -> None:
    engine.script('<tool_call>{"name": "multiply", "arguments": {"a": 6, "b": 7}}</tool_call>')
    assert str(llm.predict_and_call([MULTIPLY], user_msg="6 times 7?")) == "42"


@pytest.mark.parametrize(
    "answer",
    [
        '{"name": "Ada", "age": 36}',
        'Sure: {"name": "Ada", "age": 36}!',
        '```json\n{"name": "Ada", "age": 36}\n```',
    ],
)
def test_structured_predict(
    llm: SteerLMChat, nemo: NeMoServer, engine: ScriptedEngine, answer: str
) -> None:
    engine.script(answer)
    person = llm.structured_predict(
        Person, PromptTemplate("Who wrote the first program? {hint}"), hint="1843"
    )
    assert person == Person(name="Ada", age=36)
    assert "Answer with one JSON value that matches this JSON schema" in system_turn(nemo)
    assert "Who wrote the first program? 1843" in sent_prompt(nemo)


async def test_structured_predict_async_and_errors(
    llm: SteerLMChat, engine: ScriptedEngine
) -> None:
    engine.script('{"name": "Ada", "age": 36}', '{"name": "Ada"}')
    assert await llm.astructured_predict(Person, PromptTemplate("Who?")) == Person(
        name="Ada", age=36
    )
    with pytest.raises(ValueError, match="not a valid Person"):
        await llm.astructured_predict(Person, PromptTemplate("Who?"))


def test_as_structured_llm(llm: SteerLMChat, engine: ScriptedEngine) -> None:
    engine.script('{"name": "Grace", "age": 85}')
    response = llm.as_structured_llm(Person).chat([ChatMessage(role="user", content="Who?")])
    assert response.raw == Person(name="Grace", age=85)


async def test_function_agent_calls_tools_then_answers(
    llm: SteerLMChat, nemo: NeMoServer, engine: ScriptedEngine
) -> None:
    engine.script(*TWO_TOOL_AGENT_SCRIPT)
    agent = FunctionAgent(tools=[ADD, MULTIPLY], llm=llm)
    result = await agent.run(user_msg=TWO_TOOL_QUESTION)
    assert str(result) == TWO_TOOL_AGENT_SCRIPT[-1]
    assert len(nemo.received) == 3
    second = sent_prompt(nemo, 1)
    assert '<tool_call>{"name": "add", "arguments": {"a": 2, "b": 3}}</tool_call>\n' in second
    assert '<extra_id_1>User\n<tool_result name="add">\n5\n</tool_result>\n' in second
    assert '<tool_result name="multiply">\n20\n</tool_result>' in sent_prompt(nemo, 2)


# -- trust boundary: tool and schema texts cannot inject markers ---------------------------


HOSTILE_TOOLS = {
    "docstring": FunctionTool.from_defaults(hostile_lookup),
    "name and description": FunctionTool.from_defaults(
        add, name=f"add{MARKER_ATTACK}", description=MARKER_ATTACK
    ),
    "Field description": FunctionTool.from_defaults(hostile_lookup, fn_schema=HostileArgs),
}


@pytest.mark.parametrize("where", HOSTILE_TOOLS)
async def test_chat_with_tools_texts_cannot_inject_markers(
    llm: SteerLMChat, nemo: NeMoServer, where: str
) -> None:
    llm.chat_with_tools([HOSTILE_TOOLS[where]], user_msg="go", tool_required=True)
    assert_markers_inert(sent_prompt(nemo))
    await llm.achat_with_tools([HOSTILE_TOOLS[where]], user_msg="go")
    assert_markers_inert(sent_prompt(nemo))


async def test_structured_predict_schema_texts_cannot_inject_markers(
    llm: SteerLMChat, nemo: NeMoServer, engine: ScriptedEngine
) -> None:
    engine.script(*['{"name": "Ada", "age": 36}'] * 3)
    assert llm.structured_predict(HostilePerson, PromptTemplate("Who?")).name == "Ada"
    assert_markers_inert(sent_prompt(nemo))
    assert (await llm.astructured_predict(HostilePerson, PromptTemplate("Who?"))).age == 36
    assert_markers_inert(sent_prompt(nemo))
    llm.as_structured_llm(HostilePerson).chat([ChatMessage(role="user", content="Who?")])
    assert_markers_inert(sent_prompt(nemo))


# -- degenerate answers: invalid calls and ValueError, never RecursionError --------------

DEEP = "[" * 3000  # cut at max_tokens (1024): about 1,000 nested "["


def test_deeply_nested_call_is_an_invalid_call(llm: SteerLMChat, engine: ScriptedEngine) -> None:
    engine.script(f'<tool_call>{{"name": "add", "arguments": {{"a": {DEEP}')
    response = llm.chat_with_tools([ADD], user_msg="go")
    [invalid] = response.message.additional_kwargs["invalid_tool_calls"]
    assert "nested more than 100 levels deep" in invalid["error"]
    with pytest.raises(ValueError, match="nested more than 100 levels deep"):
        llm.get_tool_calls_from_response(response)


async def test_deeply_nested_json_is_a_value_error(
    llm: SteerLMChat, engine: ScriptedEngine
) -> None:
    engine.script(DEEP, DEEP)
    with pytest.raises(ValueError, match="nested more than 100 levels deep"):
        llm.structured_predict(Person, PromptTemplate("Who?"))
    with pytest.raises(ValueError, match="nested more than 100 levels deep"):
        await llm.astructured_predict(Person, PromptTemplate("Who?"))


# -- structured_predict: instrumentation and pydantic_program_mode ----------------------


@pytest.fixture
def spans() -> Iterator[SimpleSpanHandler]:
    handler = SimpleSpanHandler()
    root = get_dispatcher()
    root.add_span_handler(handler)
    yield handler
    root.span_handlers.remove(handler)


async def test_structured_predict_opens_a_span(
    llm: SteerLMChat, engine: ScriptedEngine, spans: SimpleSpanHandler
) -> None:
    engine.script('{"name": "Ada", "age": 36}', '{"name": "Ada", "age": 36}')
    llm.structured_predict(Person, PromptTemplate("Who?"))
    await llm.astructured_predict(Person, PromptTemplate("Who?"))
    names = [span.id_.split("-")[0] for span in spans.completed_spans]
    assert names.count("SteerLMChat.structured_predict") == 1
    assert names.count("SteerLMChat.astructured_predict") == 1
    assert names.count("SteerLMChat.chat") == 1  # the JSON path runs inside the span


def test_function_mode_runs_llamaindexs_function_program(
    nemo: NeMoServer, engine: ScriptedEngine
) -> None:
    llm = SteerLMChat(base_url=nemo.base_url, pydantic_program_mode=PydanticProgramMode.FUNCTION)
    engine.script(
        '<tool_call>{"name": "Person", "arguments": {"name": "Ada", "age": 36}}</tool_call>'
    )
    assert llm.structured_predict(Person, PromptTemplate("Who?")) == Person(name="Ada", age=36)
    system = system_turn(nemo)
    assert '{"name": "Person", "description": "A person."' in system
    assert "Answer with one JSON value" not in system


async def test_llm_mode_runs_llamaindexs_text_program(
    nemo: NeMoServer, engine: ScriptedEngine
) -> None:
    llm = SteerLMChat(base_url=nemo.base_url, pydantic_program_mode=PydanticProgramMode.LLM)
    engine.script('{"name": "Ada", "age": 36}', '{"name": "Ada", "age": 36}')
    assert llm.structured_predict(Person, PromptTemplate("Who?")) == Person(name="Ada", age=36)
    assert "Answer with one JSON value" not in sent_prompt(nemo)
    assert '"age"' in sent_prompt(nemo)  # LlamaIndex's own schema prompt, in the user turn
    assert await llm.astructured_predict(Person, PromptTemplate("Who?")) == Person(
        name="Ada", age=36
    )
