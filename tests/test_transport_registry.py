"""A new server API is one Transport subclass and one registration (issue 16).

The toy transport below lives only in this test. Registered under a name of its own, it
drives both adapters (invoke, batch, stream, chat, stream_chat, async) with no edit to
the pipeline or the adapters: they read what a transport declares, never its class.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Iterable, Iterator, Sequence
from typing import Any

import pytest
from langchain_core.messages import AIMessageChunk
from llama_index.core.llms import ChatMessage

from langchain_steerlm import SteerLMChat as LangChainChat
from llamaindex_steerlm import SteerLMChat as LlamaIndexChat
from steerlm import (
    Completion,
    GenerationOptions,
    SteerLMInputError,
    Transport,
    Usage,
    register_transport,
)
from steerlm.http import HttpResponse
from steerlm.transports import api_names, unregister_transport
from steerlm.types import StreamChunk


class EchoTransport(Transport):
    """Answers each prompt with its number of characters, word by word when streamed."""

    api = "toy-echo"
    default_base_url = "http://toy.invalid"
    streams_tokens = True
    max_prompts_per_request = 2
    requests: list[list[str]] = []  # noqa: RUF012 - one list per test, reset by the fixture

    @property
    def url(self) -> str:
        return self.base_url + "/echo"

    def generate(
        self, prompts: Sequence[str], options: GenerationOptions, stops: Sequence[str]
    ) -> list[Completion]:
        completions = []
        for start in range(0, len(prompts), 2):
            self.requests.append(list(prompts[start : start + 2]))
            completions += [self._answer(p, options) for p in prompts[start : start + 2]]
        return completions

    async def agenerate(
        self, prompts: Sequence[str], options: GenerationOptions, stops: Sequence[str]
    ) -> list[Completion]:
        return self.generate(prompts, options, stops)

    def stream(
        self, prompt: str, options: GenerationOptions, stops: Sequence[str]
    ) -> Iterator[StreamChunk]:
        completion = self._answer(prompt, options)
        words = completion.text.split(" ")
        for word in words[:-1]:
            yield StreamChunk(word + " ")
        yield StreamChunk(words[-1], completion)

    async def astream(
        self, prompt: str, options: GenerationOptions, stops: Sequence[str]
    ) -> AsyncGenerator[StreamChunk, None]:
        for chunk in self.stream(prompt, options, stops):
            yield chunk

    def decode_answer(self, url: str, response: HttpResponse) -> dict[str, Any]:
        return dict(json.loads(response.text))

    @staticmethod
    def _answer(prompt: str, options: GenerationOptions) -> Completion:
        text = f"echo of {len(prompt)} characters at most {options.max_tokens} tokens"
        return Completion(
            text=text,
            finish_reason="stop",
            stop_string=None,
            usage=Usage(prompt_tokens=len(prompt), completion_tokens=len(text.split())),
            logprobs=None,
            prompt=prompt,
            raw={},
        )


@pytest.fixture(autouse=True)
def toy_api() -> Iterable[None]:
    EchoTransport.requests = []
    register_transport("toy-echo", EchoTransport)
    yield
    unregister_transport("toy-echo")


def test_the_registered_name_is_a_valid_api() -> None:
    assert "toy-echo" in api_names()
    llm = LangChainChat(api="toy-echo")
    assert isinstance(llm.transport, EchoTransport)
    assert llm.base_url == "http://toy.invalid"  # the transport's default URL


def test_langchain_invoke_batch_and_stream() -> None:
    llm = LangChainChat(api="toy-echo", max_tokens=7)
    answer = llm.invoke("Hi", attributes={"humor": 3})
    assert answer.content.startswith("echo of ")
    assert answer.content.endswith("at most 7 tokens")
    assert answer.usage_metadata is not None
    assert answer.response_metadata["attributes"]["humor"] == 3

    EchoTransport.requests.clear()
    answers = llm.batch(["a", "b", "c"])
    assert [a.content for a in answers] == [llm.invoke(q).content for q in "abc"]
    assert [len(r) for r in EchoTransport.requests[:2]] == [2, 1]  # its own request size

    chunks = list(llm.stream("Hi", max_tokens=5))
    assert len(chunks) > 2  # token by token: the transport says it streams
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged += chunk
    assert isinstance(merged, AIMessageChunk)
    assert merged.content == llm.invoke("Hi", max_tokens=5).content


async def test_langchain_async() -> None:
    llm = LangChainChat(api="toy-echo")
    pieces = [chunk.content async for chunk in llm.astream("Hi")]
    assert "".join(map(str, pieces)) == (await llm.ainvoke("Hi")).content


def test_llamaindex_chat_complete_and_stream() -> None:
    llm = LlamaIndexChat(api="toy-echo", max_tokens=9)
    messages = [ChatMessage(role="user", content="Hi")]
    response = llm.chat(messages, attributes={"humor": 2})
    assert response.message.content is not None
    assert response.message.content.endswith("at most 9 tokens")
    assert response.message.additional_kwargs["attributes"]["humor"] == 2
    assert llm.complete("Hi").text == response.message.content
    deltas = [r.delta for r in llm.stream_chat(messages)]
    assert len(deltas) > 2
    assert "".join(d or "" for d in deltas) == response.message.content


async def test_llamaindex_async_stream() -> None:
    llm = LlamaIndexChat(api="toy-echo")
    messages = [ChatMessage(role="user", content="Hi")]
    stream = await llm.astream_chat(messages)
    deltas = [r.delta async for r in stream]
    assert "".join(d or "" for d in deltas) == (await llm.achat(messages)).message.content


def test_registering_something_that_is_not_a_transport_is_refused() -> None:
    with pytest.raises(SteerLMInputError, match="Transport subclass"):
        register_transport("bad", dict)  # type: ignore[arg-type]
