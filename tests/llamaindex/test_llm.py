"""SteerLMChat for LlamaIndex over real HTTP, against the scripted engine."""

from __future__ import annotations

import inspect
import pydoc

import pytest
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.agent.workflow import ReActAgent
from llama_index.core.base.llms.types import ImageBlock, TextBlock
from llama_index.core.llms import ChatMessage, MessageRole
from llama_index.core.memory import ChatMemoryBuffer
from llama_index.core.tools import FunctionTool

from llamaindex_steerlm import SteerLMChat
from steerlm import InvalidAttributesError, SteerLMConnectionError, SteerLMInputError
from steerlm.server import NeMoServer, ScriptedEngine
from tests.helpers import LABELS, label_line, sent_prompt
from tests.llamaindex.conftest import WordCountEmbedding


@pytest.fixture
def llm(nemo: NeMoServer) -> SteerLMChat:
    return SteerLMChat(base_url=nemo.base_url)


def user(text: str) -> ChatMessage:
    return ChatMessage(role=MessageRole.USER, content=text)


def test_metadata_and_class_name(llm: SteerLMChat) -> None:
    metadata = llm.metadata
    # The window is the server's (the scripted engine reports 2048 in /health), not the
    # preset's 4096: issue 19.
    assert (metadata.is_chat_model, metadata.context_window, metadata.num_output) == (
        True,
        2048,
        1024,
    )
    assert metadata.model_name == "Llama2-13B-SteerLM"
    assert SteerLMChat.class_name() == "SteerLMChat"
    assert SteerLMChat(max_tokens=64, model="mine").metadata.num_output == 64


def test_chat_returns_clean_answer_attributes_usage_and_raw(
    llm: SteerLMChat, nemo: NeMoServer, engine: ScriptedEngine
) -> None:
    engine.script("Detroit.\n<extra_id_1>User\nmore")
    response = llm.chat([user("Where?")], attributes={"humor": 3})
    assert response.message.content == "Detroit."
    assert response.message.additional_kwargs["attributes"]["humor"] == 3
    assert response.additional_kwargs["completion_tokens"] == 4  # Detroit . \n <extra_id_1>
    assert response.additional_kwargs["finish_reason"] == "stop"
    assert response.raw is not None and response.raw["sentences"].endswith("<extra_id_1>")
    assert "humor:3" in label_line(sent_prompt(nemo))


async def test_every_method_sync_and_async(llm: SteerLMChat, engine: ScriptedEngine) -> None:
    engine.script(*[f"answer {i}" for i in range(8)])
    assert llm.chat([user("q")]).message.content == "answer 0"
    assert llm.complete("q").text == "answer 1"
    assert [r.delta for r in llm.stream_chat([user("q")])] == ["answer 2"]
    assert [r.delta for r in llm.stream_complete("q")] == ["answer 3"]
    assert (await llm.achat([user("q")])).message.content == "answer 4"
    assert (await llm.acomplete("q")).text == "answer 5"
    assert [r.delta async for r in await llm.astream_chat([user("q")])] == ["answer 6"]
    completions = [r async for r in await llm.astream_complete("q")]
    assert [(r.delta, r.text) for r in completions] == [("answer 7", "answer 7")]


def test_complete_renders_one_user_turn_and_formatted_is_sent_as_is(
    llm: SteerLMChat, nemo: NeMoServer
) -> None:
    llm.complete("Name a color.")
    assert sent_prompt(nemo).endswith(
        f"<extra_id_1>User\nName a color.\n<extra_id_1>Assistant\n<extra_id_2>{LABELS}\n"
    )
    raw = (
        "<extra_id_0>System\n\n<extra_id_1>User\nHi\n<extra_id_1>Assistant\n<extra_id_2>quality:4\n"
    )
    llm.complete(raw, formatted=True)
    assert sent_prompt(nemo) == raw


def test_system_prompt_lands_in_the_system_turn(nemo: NeMoServer) -> None:
    llm = SteerLMChat(base_url=nemo.base_url, system_prompt="You are terse.")
    llm.complete("Hi")
    assert sent_prompt(nemo).startswith(
        "<extra_id_0>System\nYou are terse.\n<extra_id_1>User\nHi\n"
    )
    from llama_index.core.prompts import PromptTemplate

    llm.predict(PromptTemplate("Say {word}"), word="yes")
    assert sent_prompt(nemo).startswith(
        "<extra_id_0>System\nYou are terse.\n<extra_id_1>User\nSay yes\n"
    )


def test_with_attributes_returns_a_configured_copy(llm: SteerLMChat, nemo: NeMoServer) -> None:
    funny = llm.with_attributes(humor=6)
    funny.chat([user("q")])
    assert "humor:6" in label_line(sent_prompt(nemo))
    llm.chat([user("q")])
    assert "humor:0" in label_line(sent_prompt(nemo))
    assert funny.with_attributes(creativity=2).merged_attributes()["humor"] == 6
    with pytest.raises(InvalidAttributesError, match="Did you mean 'humor'"):
        llm.with_attributes(humour=6)


def test_invalid_input_raises_before_any_request(llm: SteerLMChat, nemo: NeMoServer) -> None:
    with pytest.raises(InvalidAttributesError):
        llm.chat([user("q")], attributes={"humor": 99})
    with pytest.raises(SteerLMInputError, match="Unknown keyword"):
        llm.complete("q", max_new_tokens=5)
    with pytest.raises(SteerLMInputError, match="cannot render a 'function' message"):
        llm.chat([user("q"), ChatMessage(role=MessageRole.FUNCTION, content="42")])
    image = ChatMessage(
        role=MessageRole.USER,
        blocks=[TextBlock(text="What?"), ImageBlock(url="https://example.com/a.png")],
    )
    with pytest.raises(SteerLMInputError, match="text-only.*ImageBlock"):
        llm.chat([image])
    with pytest.raises(SteerLMInputError, match="must end with a user message"):
        list(llm.stream_chat([ChatMessage(role=MessageRole.ASSISTANT, content="x")]))
    assert nemo.received == []


def test_server_errors_reach_the_user(dead_url: str) -> None:
    with pytest.raises(SteerLMConnectionError, match=dead_url):
        SteerLMChat(base_url=dead_url, max_retries=0).complete("q")


def test_earlier_answers_are_re_rendered_with_their_attributes(
    llm: SteerLMChat, nemo: NeMoServer
) -> None:
    first = llm.chat([user("Joke?")], attributes={"humor": 9})
    llm.chat([user("Joke?"), first.message, user("Seriously now")])
    assert (
        f"<extra_id_2>{LABELS.replace('humor:0', 'humor:9')}\n{first.message.content}\n"
        in sent_prompt(nemo)
    )
    assert label_line(sent_prompt(nemo)) == LABELS + "\n"


def test_query_engine_sends_retrieved_context_in_a_steerlm_prompt(
    llm: SteerLMChat, nemo: NeMoServer, engine: ScriptedEngine, embed_model: WordCountEmbedding
) -> None:
    index = VectorStoreIndex.from_documents(
        [
            Document(text="Techno music started in Detroit."),
            Document(text="Jazz started in New Orleans."),
        ]
    )
    engine.script("Detroit.")
    answer = index.as_query_engine(llm=llm.with_attributes(humor=6), similarity_top_k=1).query(
        "Where was techno music started?"
    )
    assert str(answer) == "Detroit."
    prompt = sent_prompt(nemo)
    assert prompt.startswith("<extra_id_0>System\nYou are an expert Q&A system")
    assert "Techno music started in Detroit." in prompt
    assert "New Orleans" not in prompt
    assert "Query: Where was techno music started?" in prompt
    assert label_line(prompt) == LABELS.replace("humor:0", "humor:6") + "\n"


def test_chat_engine_keeps_multi_turn_history(
    llm: SteerLMChat, nemo: NeMoServer, engine: ScriptedEngine
) -> None:
    from llama_index.core.chat_engine import SimpleChatEngine

    chat_engine = SimpleChatEngine.from_defaults(llm=llm, memory=ChatMemoryBuffer.from_defaults())
    engine.script("Hello Ada.", "Your name is Ada.")
    chat_engine.chat("My name is Ada.")
    assert str(chat_engine.chat("What is my name?")) == "Your name is Ada."
    prompt = sent_prompt(nemo)
    assert (
        f"<extra_id_1>User\nMy name is Ada.\n<extra_id_1>Assistant\n<extra_id_2>{LABELS}\nHello Ada.\n"
        "<extra_id_1>User\nWhat is my name?\n<extra_id_1>Assistant\n"
    ) in prompt


async def test_react_agent_calls_the_tool_and_ignores_a_fabricated_observation(
    llm: SteerLMChat, nemo: NeMoServer, engine: ScriptedEngine
) -> None:
    calls: list[tuple[int, int]] = []

    def add(a: int, b: int) -> int:
        """Add two integers."""
        calls.append((a, b))
        return a + b

    engine.script(
        'Thought: I need to add.\nAction: add\nAction Input: {"a": 2, "b": 3}\nObservation: 99',
        "Thought: I can answer without using any more tools.\nAnswer: 2 + 3 = 5\n<extra_id_1>User",
    )
    agent = ReActAgent(tools=[FunctionTool.from_defaults(add)], llm=llm)
    result = await agent.run(user_msg="What is 2 + 3?")
    assert calls == [(2, 3)]
    assert str(result) == "2 + 3 = 5"
    second = sent_prompt(nemo)
    assert "Observation: 5" in second
    assert "99" not in second
    assert "\nObservation:" in nemo.received[0]["end_strings"]


PUBLIC_METHODS = {
    "chat": "(messages: 'Sequence[ChatMessage]', **kwargs: 'Any') -> 'ChatResponse'",
    "achat": "(messages: 'Sequence[ChatMessage]', **kwargs: 'Any') -> 'ChatResponse'",
    "stream_chat": "(messages: 'Sequence[ChatMessage]', **kwargs: 'Any') -> 'ChatResponseGen'",
    "astream_chat": (
        "(messages: 'Sequence[ChatMessage]', **kwargs: 'Any') -> 'ChatResponseAsyncGen'"
    ),
    "complete": "(prompt: 'str', formatted: 'bool' = False, **kwargs: 'Any') -> 'CompletionResponse'",
    "acomplete": "(prompt: 'str', formatted: 'bool' = False, **kwargs: 'Any') -> 'CompletionResponse'",
    "stream_complete": (
        "(prompt: 'str', formatted: 'bool' = False, **kwargs: 'Any') -> 'CompletionResponseGen'"
    ),
    "astream_complete": (
        "(prompt: 'str', formatted: 'bool' = False, **kwargs: 'Any') "
        "-> 'CompletionResponseAsyncGen'"
    ),
}


@pytest.mark.parametrize("name", PUBLIC_METHODS)
def test_public_methods_read_well_in_help(llm: SteerLMChat, name: str) -> None:
    # LlamaIndex's callback decorators leave a (_self, ...) signature and drop nothing
    # else: help() shows what inspect.signature and __doc__ say.
    method = getattr(llm, name)
    assert str(inspect.signature(method)) == PUBLIC_METHODS[name]
    assert "_self" not in pydoc.render_doc(method)
    assert method.__doc__ and method.__doc__.strip()


def test_every_public_member_has_a_docstring() -> None:
    own = [name for name in vars(SteerLMChat) if not name.startswith("_")]
    undocumented = [
        name
        for name in own
        if name not in ("model_config", "model_post_init")
        and not (getattr(SteerLMChat, name).__doc__ or "").strip()
    ]
    assert undocumented == []
    assert "**kwargs: Per-call ``attributes``" in (SteerLMChat.chat.__doc__ or "")
