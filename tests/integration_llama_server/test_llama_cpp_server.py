"""api="openai" against a real third-party server: ``python -m llama_cpp.server`` on SmolLM2.

The model was not trained on SteerLM prompts, so its answers are not judged; what is
checked is the transport: requests the server accepts, greedy answers that agree between
invoke, batch and stream, streams of many chunks whose first arrives while the answer is
still being generated, stop strings, per-call attributes in chains and query engines, and
what this server does not do (prompt lists, usage in streams).

Greedy answers are compared only after another prompt: llama-cpp-python keeps the KV cache
of the previous prompt, and for an identical prompt it re-evaluates only the last token,
which shifts the logits of this 4-bit model enough to change a greedy answer. After a
different prompt both calls evaluate the same way (:func:`fresh`).
"""

from __future__ import annotations

import time
from functools import reduce
from operator import add

import pytest
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.llms import ChatMessage, MessageRole

from langchain_steerlm import SteerLMChat
from llamaindex_steerlm import SteerLMChat as LlamaIndexChat
from tests.integration_llama_server.conftest import MODEL_ALIAS
from tests.llamaindex.conftest import WordCountEmbedding

pytestmark = pytest.mark.integration

#: A question the model answers at length (up to max_tokens) from the raw SteerLM prompt.
LONG = "Hi"
#: One it answers briefly.
SHORT = "Name three colors."


@pytest.fixture
def llm(llama_url: str) -> SteerLMChat:
    return SteerLMChat(api="openai", base_url=llama_url, max_tokens=48)


def fresh(llama_url: str) -> None:
    """Send another prompt, so that the next one is not a repeat of the server's last."""
    SteerLMChat(api="openai", base_url=llama_url, max_tokens=1).invoke("Something else.")


def test_invoke_reports_the_served_model_and_the_servers_usage(llm: SteerLMChat) -> None:
    message = llm.invoke(SHORT, attributes={"humor": 3})
    assert message.response_metadata["model_name"] == MODEL_ALIAS  # discovered
    assert message.response_metadata["attributes"]["humor"] == 3
    assert message.usage_metadata is not None
    assert message.usage_metadata["input_tokens"] > 50  # the whole SteerLM prompt
    assert "<extra_id" not in str(message.content)


def test_stream_has_many_chunks_and_the_first_comes_before_the_end(
    llm: SteerLMChat, llama_url: str
) -> None:
    fresh(llama_url)
    arrivals: list[float] = []
    chunks = []
    for chunk in llm.stream(LONG):
        arrivals.append(time.monotonic())
        chunks.append(chunk)
    assert len(chunks) > 5
    # Chunks come as tokens are generated, not all at once after the answer: the last
    # arrives strictly later than the first (an ordering, not a speed).
    assert arrivals[0] < arrivals[-1]
    streamed = reduce(add, chunks)
    fresh(llama_url)
    assert streamed.content == llm.invoke(LONG).content  # greedy: the same answer
    # llama-cpp-python sends no usage in streams (it ignores stream_options).
    assert streamed.usage_metadata is None
    assert streamed.response_metadata["finish_reason"] == "length"


async def test_astream_equals_ainvoke(llm: SteerLMChat, llama_url: str) -> None:
    fresh(llama_url)
    chunks = [chunk async for chunk in llm.astream(LONG)]
    assert len(chunks) > 5
    fresh(llama_url)
    assert "".join(str(c.content) for c in chunks) == (await llm.ainvoke(LONG)).content
    await llm.aclose()


def test_batch_goes_out_as_concurrent_requests(llm: SteerLMChat) -> None:
    answers = llm.batch([SHORT, LONG], max_tokens=8)
    assert [a.response_metadata["finish_reason"] for a in answers] == ["length"] * 2
    assert all(a.usage_metadata and a.usage_metadata["output_tokens"] == 8 for a in answers)
    # The server asserts one prompt per request: learnt on the first batch.
    assert llm.transport.prompt_lists is False  # type: ignore[union-attr]


def test_stop_strings_apply(llm: SteerLMChat, llama_url: str) -> None:
    fresh(llama_url)
    whole = str(llm.invoke(LONG).content)
    word = whole.split()[3]
    fresh(llama_url)
    cut = llm.invoke(LONG, stop=[word])
    assert word not in str(cut.content)
    assert whole.startswith(str(cut.content))
    fresh(llama_url)
    streamed = "".join(str(c.content) for c in llm.stream(LONG, stop=[word]))
    assert streamed == cut.content


def test_a_chain_with_per_call_attributes(llm: SteerLMChat, llama_url: str) -> None:
    prompt = ChatPromptTemplate.from_messages([("human", "Name three {things}.")])
    chain = prompt | llm.bind(attributes={"creativity": 4}) | StrOutputParser()
    fresh(llama_url)
    pieces = list(chain.stream({"things": "colors"}))
    fresh(llama_url)
    assert "".join(pieces) == chain.invoke({"things": "colors"})


def user(text: str) -> ChatMessage:
    return ChatMessage(role=MessageRole.USER, content=text)


def test_llamaindex_stream_chat(llama_url: str) -> None:
    llm = LlamaIndexChat(api="openai", base_url=llama_url, max_tokens=48)
    fresh(llama_url)
    responses = list(llm.stream_chat([user(LONG)], attributes={"humor": 2}))
    assert len(responses) > 5
    fresh(llama_url)
    whole = llm.chat([user(LONG)], attributes={"humor": 2}).message.content
    assert responses[-1].message.content == whole
    assert responses[-1].additional_kwargs["model_name"] == MODEL_ALIAS


async def test_llamaindex_astream_chat(llama_url: str) -> None:
    llm = LlamaIndexChat(api="openai", base_url=llama_url, max_tokens=48)
    fresh(llama_url)
    deltas = [r.delta async for r in await llm.astream_chat([user(LONG)])]
    assert len(deltas) > 5
    fresh(llama_url)
    assert "".join(d or "" for d in deltas) == (await llm.achat([user(LONG)])).message.content
    await llm.aclose()


def test_llamaindex_query_engine_with_per_call_attributes(
    llama_url: str, embed_model: WordCountEmbedding
) -> None:
    llm = LlamaIndexChat(api="openai", base_url=llama_url, max_tokens=32)
    index = VectorStoreIndex.from_documents(
        [
            Document(text="Techno music started in Detroit."),
            Document(text="Jazz started in New Orleans."),
        ]
    )
    engine = index.as_query_engine(
        llm=llm.with_attributes(humor=6), similarity_top_k=1, streaming=True
    )
    answer = engine.query("Where was techno music started?")
    pieces = list(answer.response_gen)  # type: ignore[union-attr]
    assert len(pieces) >= 1
    assert "<extra_id" not in "".join(pieces)
