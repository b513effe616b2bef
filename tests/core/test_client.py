"""The client over real loopback HTTP: wire request, batching, retries, every error path."""

from __future__ import annotations

import asyncio
import gc
import json
import warnings

import pytest

from steerlm import (
    GenerationOptions,
    SteerLMClient,
    SteerLMConnectionError,
    SteerLMInputError,
    SteerLMResponseError,
    SteerLMServerError,
    SteerLMSettings,
    SteerLMTimeoutError,
    Turn,
)
from steerlm.server.app import Fault, NeMoServer
from steerlm.server.scripted_engine import ScriptedEngine

QUESTION = [Turn("user", "Hi")]


def settings(nemo: NeMoServer, **fields: object) -> SteerLMSettings:
    return SteerLMSettings(base_url=nemo.base_url, **fields)  # type: ignore[arg-type]


def test_wire_request_sends_explicit_keys_and_greedy(nemo: NeMoServer) -> None:
    llm = settings(nemo, stop=["END"])
    llm.pipeline.send(llm.pipeline.plan([QUESTION], {"stop": ["###"]}))
    body = nemo.received[-1]
    assert body == {
        "sentences": body["sentences"],
        "tokens_to_generate": 1024,
        "min_tokens_to_generate": 0,
        "greedy": True,
        "top_k": 0,
        "top_p": 0.9,
        "repetition_penalty": 1.0,
        "add_BOS": False,
        "all_probs": False,
        "end_strings": [  # most important first: the marker, the caller's, the preset's
            "<extra_id_1>",
            "END",
            "###",
            "quality:",
            "quality:9",
            "quality:0",
            "<extra_id_2>",
            "<|endoftext|>",
        ],
    }


@pytest.mark.parametrize("temperature", [None, 0, 0.0])
def test_temperature_zero_or_none_is_greedy_with_no_temperature(
    nemo: NeMoServer, temperature: float | None
) -> None:
    llm = settings(nemo, temperature=temperature)
    llm.pipeline.send(llm.pipeline.plan([QUESTION], {}))
    assert nemo.received[-1]["greedy"] is True
    assert "temperature" not in nemo.received[-1]


def test_sampling_options_and_seed_reach_the_wire(nemo: NeMoServer) -> None:
    llm = settings(nemo, temperature=0.7, top_k=5, random_seed=3)
    llm.pipeline.send(
        llm.pipeline.plan([QUESTION], {"top_p": 0.5, "max_tokens": 7, "logprobs": True})
    )
    body = nemo.received[-1]
    assert (body["greedy"], body["temperature"], body["top_k"], body["top_p"]) == (
        False,
        0.7,
        5,
        0.5,
    )
    assert (body["random_seed"], body["tokens_to_generate"], body["compute_logprob"]) == (
        3,
        7,
        True,
    )


def test_300_prompts_go_out_in_3_requests(nemo: NeMoServer) -> None:
    llm = settings(nemo)
    completions = llm.pipeline.send(
        llm.pipeline.plan([[Turn("user", f"q{i}")] for i in range(300)], {})
    )
    assert [len(body["sentences"]) for body in nemo.received] == [128, 128, 44]
    assert len(completions) == 300
    assert completions[299].prompt.endswith(
        "q299\n<extra_id_1>Assistant\n" + completions[299].prompt.split("Assistant\n")[-1]
    )
    assert {c.text for c in completions} == {ScriptedEngine.default_answer}


async def test_async_300_prompts_in_3_requests(nemo: NeMoServer) -> None:
    llm = settings(nemo)
    plan = llm.pipeline.plan([[Turn("user", f"q{i}")] for i in range(300)], {})
    completions = await llm.pipeline.asend(plan)
    assert [len(body["sentences"]) for body in nemo.received] == [128, 128, 44]
    assert completions[0].text == ScriptedEngine.default_answer


def test_validation_string_with_http_200_is_a_server_error(nemo: NeMoServer) -> None:
    client = SteerLMClient(nemo.base_url)
    with pytest.raises(SteerLMServerError, match="temperature must be a positive number") as info:
        client.post_json({"sentences": ["x"], "temperature": 0})
    assert info.value.status == 200
    assert nemo.base_url in str(info.value)


def test_too_many_sentences_is_http_400_not_retried(nemo: NeMoServer) -> None:
    client = SteerLMClient(nemo.base_url)
    with pytest.raises(SteerLMServerError, match="HTTP 400.*Maximum number of sentences is 128"):
        client.post_json({"sentences": ["x"] * 129})
    assert len(nemo.received) == 1


def test_5xx_is_retried_then_succeeds(nemo: NeMoServer) -> None:
    nemo.faults.extend(
        [Fault(503, "busy"), Fault(500, "<html>oops</html>", content_type="text/html")]
    )
    llm = settings(nemo, max_retries=2)
    [completion] = llm.pipeline.send(llm.pipeline.plan([QUESTION], {}))
    assert completion.text == ScriptedEngine.default_answer
    assert len(nemo.received) == 3


def test_5xx_after_all_retries_names_status_and_body(nemo: NeMoServer) -> None:
    nemo.faults.extend([Fault(500, "<html>boom</html>")] * 3)
    llm = settings(nemo, max_retries=1)
    with pytest.raises(SteerLMServerError, match="HTTP 500.*boom") as info:
        llm.pipeline.send(llm.pipeline.plan([QUESTION], {}))
    assert info.value.status == 500
    assert len(nemo.received) == 2


def test_missing_sentences_is_http_500(nemo: NeMoServer) -> None:
    with pytest.raises(SteerLMServerError, match="HTTP 500"):
        SteerLMClient(nemo.base_url, max_retries=0).post_json({"tokens_to_generate": 3})


@pytest.mark.parametrize(
    ("fault", "problem"),
    [
        (Fault(200, "<html>hello</html>", content_type="text/html"), "not JSON"),
        (Fault(200, "[1, 2]"), "not a JSON object"),
        (Fault(200, '{"text": "hi"}'), "no 'sentences' list"),
        (Fault(200, '{"sentences": ["a", "b"]}'), "2 sentences for 1 prompts"),
        (Fault(200, '{"sentences": ["something else"]}'), "does not start with its prompt"),
    ],
)
def test_garbage_answers_are_response_errors_with_an_excerpt(
    nemo: NeMoServer, fault: Fault, problem: str
) -> None:
    nemo.faults.append(fault)
    llm = settings(nemo)
    with pytest.raises(SteerLMResponseError, match=problem) as info:
        llm.pipeline.send(llm.pipeline.plan([QUESTION], {}))
    assert nemo.base_url in str(info.value)
    assert info.value.body[:5] in str(info.value)


def test_server_down_names_url_and_how_to_start_one(dead_url: str) -> None:
    llm = SteerLMSettings(base_url=dead_url, max_retries=1)
    with pytest.raises(SteerLMConnectionError, match="steerlm-server") as info:
        llm.pipeline.send(llm.pipeline.plan([QUESTION], {}))
    assert f"{dead_url}/generate" in str(info.value)
    assert "connection refused" in str(info.value)


async def test_async_server_down(dead_url: str) -> None:
    llm = SteerLMSettings(base_url=dead_url, max_retries=0)
    with pytest.raises(SteerLMConnectionError, match=dead_url):
        await llm.pipeline.asend(llm.pipeline.plan([QUESTION], {}))


def test_slow_server_times_out_without_retry(nemo: NeMoServer) -> None:
    nemo.faults.append(Fault(200, "{}", delay=1.0))
    llm = settings(nemo, timeout=0.2, max_retries=2)
    with pytest.raises(SteerLMTimeoutError, match=r"did not answer within 0.2 s"):
        llm.pipeline.send(llm.pipeline.plan([QUESTION], {}))
    assert len(nemo.received) == 1


async def test_async_timeout(nemo: NeMoServer) -> None:
    nemo.faults.append(Fault(200, "{}", delay=1.0))
    llm = settings(nemo, timeout=0.2)
    with pytest.raises(SteerLMTimeoutError):
        await llm.pipeline.asend(llm.pipeline.plan([QUESTION], {}))


async def test_async_call_does_not_block_the_event_loop(nemo: NeMoServer) -> None:
    nemo.faults.append(Fault(200, json.dumps({"sentences": ["x"]}), delay=0.5))
    client = SteerLMClient(nemo.base_url)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.02)
            ticks += 1

    task = asyncio.create_task(ticker())
    await client.apost_json({"sentences": ["x"]})
    task.cancel()
    assert ticks >= 5  # the loop kept running while the request waited
    await client.aclose()


def test_connection_is_reused(nemo: NeMoServer) -> None:
    llm = settings(nemo)
    plan = llm.pipeline.plan([QUESTION], {})
    for _ in range(3):
        llm.pipeline.send(plan)
    pools = llm.transport.http.pools()
    assert pools.sync_open
    assert pools.sockets_opened == 1  # one socket served the three calls


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"max_tokens": 0}, "max_tokens must be an integer >= 1"),
        ({"temperature": -1}, "temperature must be None or 0"),
        ({"top_p": 2}, "top_p must be a number from 0 to 1"),
        ({"top_k": -1}, "top_k must be an integer >= 0"),
        ({"repetition_penalty": 0.5}, "repetition_penalty must be a .*number >= 1.0"),
        ({"min_tokens": 5, "max_tokens": 2}, "min_tokens \\(5\\) must not exceed max_tokens"),
        ({"random_seed": -3}, "random_seed must be None or an integer"),
        ({"base_url": "localhost:5555"}, "must start with http"),
        ({"timeout": 0}, "timeout must be a positive number"),
        ({"preset": "gpt-4"}, "Unknown SteerLM preset 'gpt-4'"),
        ({"attributes": {"humor": 11}}, "'humor' has the value 11"),
        ({"stop": [""]}, "non-empty strings"),
    ],
)
def test_bad_settings_fail_at_construction(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SteerLMSettings(**fields)  # type: ignore[arg-type]


def test_bad_call_options_raise_before_any_request(nemo: NeMoServer) -> None:
    llm = settings(nemo)
    with pytest.raises(SteerLMInputError, match="Unknown keyword\\(s\\) 'max_new_tokens'"):
        llm.pipeline.plan([QUESTION], {"max_new_tokens": 5})
    with pytest.raises(SteerLMInputError, match="max_tokens must be"):
        llm.pipeline.plan([QUESTION], {"max_tokens": -1})
    assert nemo.received == []


def test_options_validation_directly() -> None:
    with pytest.raises(SteerLMInputError, match="top_k"):
        GenerationOptions(top_k=True)  # type: ignore[arg-type]


def test_async_pools_of_finished_event_loops_are_closed(nemo: NeMoServer) -> None:
    llm = settings(nemo)
    plan = llm.pipeline.plan([QUESTION], {})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(10):
            asyncio.run(llm.pipeline.asend(plan))  # each run ends its loop with a pool open
        gc.collect()
    assert [w.message for w in caught if issubclass(w.category, ResourceWarning)] == []
    assert llm.transport.http.pools().async_loops == ()  # closed as each loop shut down


def test_close_releases_the_pool_and_the_model_still_works(nemo: NeMoServer) -> None:
    llm = settings(nemo)
    plan = llm.pipeline.plan([QUESTION], {})
    llm.pipeline.send(plan)
    llm.close()
    assert not llm.transport.http.pools().sync_open
    assert llm.pipeline.send(plan)[0].text == ScriptedEngine.default_answer
    llm.close()


async def test_aclose_closes_the_pool_of_the_running_loop(nemo: NeMoServer) -> None:
    llm = settings(nemo)
    plan = llm.pipeline.plan([QUESTION], {})
    await llm.pipeline.asend(plan)
    assert asyncio.get_running_loop() in llm.transport.http.pools().async_loops
    await llm.aclose()
    assert llm.transport.http.pools().async_loops == ()
    assert (await llm.pipeline.asend(plan))[0].text == ScriptedEngine.default_answer
    await llm.aclose()


def test_context_window_is_an_instance_setting(dead_url: str) -> None:
    # Unset, it stays None (a user's value is told apart from the preset's default); the
    # window used is the server's, else the preset's (issue 19).
    assert SteerLMSettings(base_url=dead_url).context_window is None
    assert SteerLMSettings(base_url=dead_url).resolved_context_window == 4096  # the preset's
    assert SteerLMSettings(base_url=dead_url, context_window=2048).context_window == 2048
