"""Streaming with tools bound (issue 17): the text streams, the calls arrive on the last chunk.

On the dev server's ``/v1`` (token by token, as vLLM streams), through both frameworks'
public API: no chunk shows any part of a ``<tool_call>``, the visible text arrives in more
than one piece before the answer ends, and the chunks add up to ``invoke``'s message.
"""

from __future__ import annotations

from functools import reduce
from operator import add as plus

import pytest
from langchain_core.messages import AIMessageChunk
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.tools import FunctionTool

from langchain_steerlm import SteerLMChat as LangChainChat
from llamaindex_steerlm import SteerLMChat as LlamaIndexChat
from steerlm.server import NeMoServer, ScriptedEngine
from steerlm.tools import ToolTextGate, parse_tool_calls
from tests.helpers import add

CALL = '<tool_call>{"name": "add", "arguments": {"a": 2, "b": 3}}</tool_call>'
ANSWERS = [
    f"Let me add those two numbers for you. {CALL}",
    "The sum of two and three is five, as anyone can check.",
    f"{CALL}\nDone.",
    f"  Checking with the tool now.  \n{CALL}  And after it, more text.",
]


@pytest.fixture
def lc(nemo: NeMoServer) -> LangChainChat:
    return LangChainChat(api="openai", base_url=nemo.base_url + "/v1", model="scripted")


@pytest.mark.parametrize("answer", ANSWERS)
def test_langchain_stream_with_tools_adds_up_to_invoke(
    lc: LangChainChat, engine: ScriptedEngine, answer: str
) -> None:
    bound = lc.bind_tools([add])
    engine.script(answer, answer)
    expected = bound.invoke("go")
    chunks = list(bound.stream("go"))
    merged = reduce(plus, chunks)
    assert isinstance(merged, AIMessageChunk)
    assert merged.content == expected.content
    assert [c["args"] for c in merged.tool_calls] == [c["args"] for c in expected.tool_calls]
    assert all("<" not in str(chunk.content) for chunk in chunks)
    text_chunks = [c for c in chunks[:-1] if c.content]
    if len(str(expected.content)) > 20:
        assert len(text_chunks) > 1  # the text streamed in pieces before the end
    assert all(not c.tool_call_chunks for c in chunks[:-1])


async def test_langchain_astream_with_tools(lc: LangChainChat, engine: ScriptedEngine) -> None:
    engine.script(ANSWERS[0])
    chunks = [c async for c in lc.bind_tools([add]).astream("go")]
    merged = reduce(plus, chunks)
    assert merged.content == "Let me add those two numbers for you."
    assert merged.tool_calls[0]["name"] == "add" and merged.tool_calls[0]["args"] == {
        "a": 2,
        "b": 3,
    }
    assert len([c for c in chunks if c.content]) > 1


def test_llamaindex_stream_chat_with_tools(nemo: NeMoServer, engine: ScriptedEngine) -> None:
    llm = LlamaIndexChat(api="openai", base_url=nemo.base_url + "/v1", model="scripted")
    engine.script(ANSWERS[0])
    tool = FunctionTool.from_defaults(fn=add)
    responses = list(
        llm.stream_chat_with_tools([tool], chat_history=[ChatMessage(role="user", content="go")])
    )
    assert "".join(r.delta or "" for r in responses) == "Let me add those two numbers for you."
    assert all("<" not in (r.delta or "") for r in responses)
    assert len([r for r in responses if r.delta]) > 1
    calls = llm.get_tool_calls_from_response(responses[-1], error_on_no_tool_call=True)
    assert calls[0].tool_name == "add" and calls[0].tool_kwargs == {"a": 2, "b": 3}


@pytest.mark.parametrize("answer", [*ANSWERS, "<tool_ca", "plain", "a <tool_callx> b", ""])
def test_the_gate_shows_a_prefix_of_the_parsed_content_at_every_split(answer: str) -> None:
    content = parse_tool_calls(answer, []).content
    for size in (1, 2, 5, 11):
        gate = ToolTextGate()
        shown = "".join(gate.feed(answer[i : i + size]) for i in range(0, len(answer), size))
        assert content.startswith(shown)
        assert "<tool_call>" not in shown
        assert shown + gate.rest(content) == content


def test_the_gate_holds_only_what_could_still_be_a_call() -> None:
    gate = ToolTextGate()
    assert gate.feed("Hello <tool") == "Hello"
    assert gate.feed("box> and more") == " <toolbox> and more"
