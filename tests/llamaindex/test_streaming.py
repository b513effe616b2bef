"""LlamaIndex streaming with api="openai", against the dev server's /v1 on the scripted engine."""

from __future__ import annotations

import pytest
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.llms import ChatMessage, MessageRole
from llama_index.core.tools import FunctionTool

from llamaindex_steerlm import SteerLMChat
from steerlm.server import NeMoServer, ScriptedEngine
from tests.langchain.compliant import compliant_answer
from tests.llamaindex.conftest import WordCountEmbedding

ANSWER = "Techno started in Detroit in the eighties."


@pytest.fixture
def llm(nemo: NeMoServer) -> SteerLMChat:
    return SteerLMChat(api="openai", base_url=nemo.base_url + "/v1")


def user(text: str) -> ChatMessage:
    return ChatMessage(role=MessageRole.USER, content=text)


def test_stream_chat_yields_deltas_and_ends_with_the_whole_answer(
    llm: SteerLMChat, engine: ScriptedEngine
) -> None:
    engine.script(ANSWER, ANSWER)
    responses = list(llm.stream_chat([user("Where?")], attributes={"humor": 2}))
    assert len(responses) > 5
    assert "".join(r.delta or "" for r in responses) == ANSWER
    assert [r.message.content for r in responses][-1] == ANSWER
    # Each response holds the text so far; the last one the counts and finish reason.
    assert responses[2].message.content == "".join(r.delta or "" for r in responses[:3])
    last = responses[-1]
    assert last.additional_kwargs["finish_reason"] == "stop"
    assert last.additional_kwargs["completion_tokens"] > 5
    assert last.additional_kwargs["model_name"] == "scripted"
    assert last.message.additional_kwargs["attributes"]["humor"] == 2
    assert llm.chat([user("Where?")], attributes={"humor": 2}).message.content == ANSWER


async def test_astream_chat_and_astream_complete(llm: SteerLMChat, engine: ScriptedEngine) -> None:
    engine.script(ANSWER, ANSWER)
    deltas = [r.delta async for r in await llm.astream_chat([user("Where?")])]
    assert len(deltas) > 5 and "".join(d or "" for d in deltas) == ANSWER
    completions = [r async for r in await llm.astream_complete("Where?")]
    assert len(completions) > 5
    assert completions[-1].text == ANSWER
    assert completions[-1].additional_kwargs["attributes"]["quality"] == 9
    await llm.aclose()


def test_stream_complete_cuts_a_stop_across_chunks(
    llm: SteerLMChat, nemo: NeMoServer, engine: ScriptedEngine
) -> None:
    nemo.nemo_version = "1.17"  # the server runs past end strings: the client cuts
    engine.script("Detroit. The end of it.\n<extra_id_1>User\nMore")
    responses = list(llm.stream_complete("Where?", stop=["The end"]))
    assert "".join(r.delta or "" for r in responses) == "Detroit."
    assert responses[-1].text == "Detroit."
    assert responses[-1].additional_kwargs["stop_string"] == "The end"


def test_tools_answer_as_one_response_with_the_parsed_call(
    llm: SteerLMChat, engine: ScriptedEngine
) -> None:
    def get_weather(city: str) -> str:
        """Get the weather in a city."""
        return "sunny"

    engine.responder = compliant_answer
    tool = FunctionTool.from_defaults(fn=get_weather)
    responses = list(
        llm.stream_chat_with_tools([tool], user_msg="Weather in 'Paris'?", tool_required=True)
    )
    assert len(responses) == 1
    [call] = llm.get_tool_calls_from_response(responses[-1])
    assert (call.tool_name, call.tool_kwargs) == ("get_weather", {"city": "Paris"})


def test_a_streaming_query_engine_with_per_call_attributes(
    llm: SteerLMChat, nemo: NeMoServer, engine: ScriptedEngine, embed_model: WordCountEmbedding
) -> None:
    index = VectorStoreIndex.from_documents(
        [
            Document(text="Techno music started in Detroit."),
            Document(text="Jazz started in New Orleans."),
        ]
    )
    engine.script(ANSWER)
    engine_ = index.as_query_engine(
        llm=llm.with_attributes(humor=6), similarity_top_k=1, streaming=True
    )
    answer = engine_.query("Where was techno music started?")
    pieces = list(answer.response_gen)  # type: ignore[union-attr]
    assert len(pieces) > 5 and "".join(pieces) == ANSWER
    prompt = nemo.received[-1]["prompt"]
    assert "Techno music started in Detroit." in prompt
    assert "humor:6" in prompt


def test_nemo_streams_one_response(nemo: NeMoServer, engine: ScriptedEngine) -> None:
    engine.script(ANSWER)
    responses = list(SteerLMChat(base_url=nemo.base_url).stream_chat([user("Where?")]))
    assert len(responses) == 1 and responses[0].delta == ANSWER
