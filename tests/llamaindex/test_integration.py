"""LlamaIndex SteerLMChat against the dev server on the real small model."""

from __future__ import annotations

import pytest
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.llms import ChatMessage

from llamaindex_steerlm import SteerLMChat
from tests.llamaindex.conftest import WordCountEmbedding

pytestmark = pytest.mark.integration


@pytest.fixture
def llm(real_server_url: str) -> SteerLMChat:
    return SteerLMChat(base_url=real_server_url, max_tokens=16)


def question() -> list[ChatMessage]:
    return [ChatMessage(role="user", content="Write one sentence about the sea.")]


async def test_every_method_answers_with_real_text(llm: SteerLMChat) -> None:
    answers = [
        llm.chat(question()).message.content,
        llm.complete("Write one sentence about the sea.").text,
        "".join(r.delta or "" for r in llm.stream_chat(question())),
        "".join(r.delta or "" for r in llm.stream_complete("Write one sentence about the sea.")),
        (await llm.achat(question())).message.content,
        (await llm.acomplete("Write one sentence about the sea.")).text,
        "".join([r.delta or "" async for r in await llm.astream_chat(question())]),
        "".join(
            [
                r.delta or ""
                async for r in await llm.astream_complete("Write one sentence about the sea.")
            ]
        ),
    ]
    assert all(answer and "<extra_id_" not in answer for answer in answers)
    assert len(set(answers)) == 1  # greedy decoding: the same answer every time


def test_usage_and_steering_reach_the_real_server(llm: SteerLMChat) -> None:
    response = llm.with_attributes(humor=9).chat(question())
    assert response.message.additional_kwargs["attributes"]["humor"] == 9
    assert response.additional_kwargs["prompt_tokens"] > 50
    assert 0 < response.additional_kwargs["completion_tokens"] <= 16


def test_query_engine_on_the_real_model(llm: SteerLMChat, embed_model: WordCountEmbedding) -> None:
    index = VectorStoreIndex.from_documents([Document(text="Techno music started in Detroit.")])
    answer = index.as_query_engine(llm=llm).query("Where was techno music started?")
    assert str(answer).strip()
