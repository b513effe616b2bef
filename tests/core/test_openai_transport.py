"""api="openai" over real loopback HTTP: the dev server's /v1 routes on the scripted engine.

Wire mapping, model discovery, batches (a prompt list, or concurrent requests when the
server refuses lists), OpenAI error objects, credentials (api_key, default_headers) that
reach the wire and nothing else.
"""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from steerlm import (
    SteerLMInputError,
    SteerLMResponseError,
    SteerLMServerError,
    SteerLMSettings,
    Turn,
    build_prompt,
    get_preset,
)
from steerlm.options import GenerationOptions
from steerlm.server.app import Fault, NeMoServer
from steerlm.server.scripted_engine import ScriptedEngine
from steerlm.transports.openai import OpenAIClient
from tests.raw_server import SECRET, RawServer, response

QUESTION = [Turn("user", "Hi")]


def v1(nemo: NeMoServer) -> str:
    return nemo.base_url + "/v1"


def settings(nemo: NeMoServer, **fields: object) -> SteerLMSettings:
    return SteerLMSettings(api="openai", base_url=v1(nemo), **fields)  # type: ignore[arg-type]


def test_the_wire_request_is_the_steerlm_prompt_with_openai_names(
    nemo: NeMoServer, engine: ScriptedEngine
) -> None:
    llm = settings(nemo, max_tokens=50, attributes={"humor": 3})
    engine.script("Hello!")
    plan = llm.pipeline.plan([QUESTION], {})
    [completion] = llm.pipeline.send(plan)
    assert completion.text == "Hello!"
    body = nemo.received[-1]
    preset = get_preset("llama2-13b-steerlm")
    assert body["prompt"] == build_prompt(QUESTION, llm.merged_attributes(), preset)
    assert body["prompt"] == plan.prompts[0]  # byte for byte NeMo's prompt
    assert body["model"] == "scripted"  # discovered
    assert body["max_tokens"] == 50
    assert body["temperature"] == 0  # greedy
    assert body["top_p"] == 0.9
    # At most 4 (vLLM's VLLM_MAX_STOP_STRINGS, OpenAI's spec), most important first,
    # without <|endoftext|> (these engines stop at end of sequence themselves).
    assert body["stop"] == ["<extra_id_1>", "quality:", "<extra_id_2>"]
    assert list(plan.stops) == [
        "<extra_id_1>",
        "quality:",
        "quality:9",
        "quality:0",
        "<extra_id_2>",
        "<|endoftext|>",
    ]
    # Keys that are off are not sent (servers differ in their names and defaults).
    for key in ("top_k", "repetition_penalty", "repeat_penalty", "min_tokens", "seed"):
        assert key not in body
    assert "stream" not in body


def test_sampling_keys_are_sent_under_vllms_names(nemo: NeMoServer, engine: ScriptedEngine) -> None:
    llm = settings(nemo, temperature=0.7, top_k=40, repetition_penalty=1.1, min_tokens=2)
    engine.script("One two three.")
    llm.pipeline.send(llm.pipeline.plan([QUESTION], {"random_seed": 7, "logprobs": True}))
    body = nemo.received[-1]
    assert body["temperature"] == 0.7
    assert body["top_k"] == 40
    assert body["repetition_penalty"] == 1.1  # vLLM, TensorRT-LLM
    assert "repeat_penalty" not in body  # llama.cpp's name: trtllm-serve refuses unknown keys
    assert body["min_tokens"] == 2
    assert body["seed"] == 7
    assert body["logprobs"] == 1


def test_usage_finish_reason_and_logprobs_come_from_the_server(
    nemo: NeMoServer, engine: ScriptedEngine
) -> None:
    llm = settings(nemo, max_tokens=3)
    engine.script("one two three four five")
    [completion] = llm.pipeline.send(llm.pipeline.plan([QUESTION], {"logprobs": True}))
    assert completion.text == "one two"  # 3 tokens: "one", " ", "two"
    assert completion.finish_reason == "length"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 3
    assert completion.logprobs == [-0.25, -0.25, -0.25]
    assert completion.raw["model"] == "scripted"


def test_the_client_cuts_at_the_earliest_stop_when_the_server_does_not(
    nemo: NeMoServer, engine: ScriptedEngine
) -> None:
    nemo.nemo_version = "1.17"  # the engine ignores end strings: the text keeps them
    llm = settings(nemo)
    engine.script("Fine, thanks.\n<extra_id_1>User\nAnd you?")
    [completion] = llm.pipeline.send(llm.pipeline.plan([QUESTION], {}))
    assert completion.text == "Fine, thanks."
    assert completion.stop_string == "<extra_id_1>"
    assert completion.finish_reason == "stop"


def test_a_stop_the_server_stopped_at_is_named(nemo: NeMoServer, engine: ScriptedEngine) -> None:
    llm = settings(nemo)
    engine.script("Fine.\n<extra_id_1>User")
    [completion] = llm.pipeline.send(llm.pipeline.plan([QUESTION], {}))
    assert completion.text == "Fine."
    assert completion.raw["text"] == "Fine.\n"  # the server excluded the stop string
    assert completion.stop_string == "<extra_id_1>"  # from vLLM's stop_reason


def test_a_batch_is_one_request_with_a_prompt_list(
    nemo: NeMoServer, engine: ScriptedEngine
) -> None:
    llm = settings(nemo)
    engine.script("A.", "B.", "C.")
    plan = llm.pipeline.plan([QUESTION, [Turn("user", "Yo")], [Turn("user", "Hey")]], {})
    assert [c.text for c in llm.pipeline.send(plan)] == ["A.", "B.", "C."]
    assert len(nemo.received) == 1
    assert nemo.received[0]["prompt"] == list(plan.prompts)
    assert llm.transport.prompt_lists is True  # type: ignore[attr-defined]


def test_a_server_that_refuses_lists_gets_concurrent_requests(
    nemo: NeMoServer, engine: ScriptedEngine
) -> None:
    # llama-cpp-python's server asserts one prompt: HTTP 500 (no retries for the probe).
    nemo.faults.append(Fault(500, '{"detail": "Internal Server Error"}'))
    engine.responder = lambda prompt: "Answer to " + prompt.split("User\n")[1].split("\n")[0]
    llm = settings(nemo)
    plan = llm.pipeline.plan([QUESTION, [Turn("user", "Yo")], [Turn("user", "Hey")]], {})
    assert [c.text for c in llm.pipeline.send(plan)] == [
        "Answer to Hi",
        "Answer to Yo",
        "Answer to Hey",
    ]
    assert llm.transport.prompt_lists is False  # type: ignore[attr-defined]
    assert [isinstance(b["prompt"], list) for b in nemo.received] == [True] + [False] * 3
    nemo.received.clear()
    assert len(asyncio.run(llm.pipeline.asend(plan))) == 3  # learnt: no list is sent again
    assert [isinstance(b["prompt"], str) for b in nemo.received] == [True] * 3


async def test_async_batch_and_discovery(nemo: NeMoServer, engine: ScriptedEngine) -> None:
    llm = settings(nemo)
    engine.script("A.", "B.")
    completions = await llm.pipeline.asend(llm.pipeline.plan([QUESTION, [Turn("user", "Yo")]], {}))
    assert [c.text for c in completions] == ["A.", "B."]
    assert llm.model_name == "scripted"
    await llm.aclose()


def test_the_model_is_discovered_once_and_reported(
    nemo: NeMoServer, engine: ScriptedEngine
) -> None:
    nemo.openai_models = ["nvidia/Llama2-13B-SteerLM-hf"]
    llm = settings(nemo)
    assert llm.model_name == "Llama2-13B-SteerLM"  # the preset's, before the server is asked
    for _ in range(2):
        llm.pipeline.send(llm.pipeline.plan([QUESTION], {}))
    assert [b["model"] for b in nemo.received] == ["nvidia/Llama2-13B-SteerLM-hf"] * 2
    assert llm.model_name == "nvidia/Llama2-13B-SteerLM-hf"


def test_several_served_models_are_listed_in_the_error(nemo: NeMoServer) -> None:
    nemo.openai_models = ["steerlm-13b", "steerlm-70b"]
    llm = settings(nemo)
    with pytest.raises(SteerLMInputError, match="serves 2 models: 'steerlm-13b', 'steerlm-70b'"):
        llm.pipeline.send(llm.pipeline.plan([QUESTION], {}))
    assert nemo.received == []
    picked = settings(nemo, model="steerlm-70b")
    picked.pipeline.send(picked.pipeline.plan([QUESTION], {}))
    assert nemo.received[-1]["model"] == "steerlm-70b"


def test_an_empty_model_list_is_a_response_error(raw: RawServer) -> None:
    raw.queue([response(200, '{"object": "list", "data": []}')])
    client = OpenAIClient(raw.base_url + "/v1", max_retries=0)
    with pytest.raises(SteerLMResponseError, match="lists no model"):
        client.generate(["p"], GenerationOptions(), [])


def test_an_unknown_model_is_the_servers_404(nemo: NeMoServer) -> None:
    llm = settings(nemo, model="nope")
    with pytest.raises(SteerLMServerError, match=r"HTTP 404.*The model `nope` does not exist"):
        llm.pipeline.send(llm.pipeline.plan([QUESTION], {}))


def test_error_objects_map_onto_server_errors(nemo: NeMoServer) -> None:
    llm = settings(nemo, temperature=200.0 / 3, max_retries=0)
    nemo.faults.append(
        Fault(
            400,
            json.dumps(
                {
                    "error": {
                        "message": "max_tokens is too large",
                        "type": "BadRequestError",
                        "code": 400,
                    }
                }
            ),
        )
    )
    with pytest.raises(SteerLMServerError) as caught:
        llm.pipeline.send(llm.pipeline.plan([QUESTION], {}))
    assert caught.value.status == 400
    assert "max_tokens is too large (type BadRequestError, code 400)" in str(caught.value)
    assert f"{v1(nemo)}/completions" in str(caught.value)


def test_validation_by_the_engine_is_a_400_error_object(nemo: NeMoServer) -> None:
    # The client would refuse top_p above 1 before sending: the request is built by hand.
    client = OpenAIClient(v1(nemo))
    with pytest.raises(SteerLMServerError) as caught:
        client.request_json("POST", "/completions", {"prompt": "x", "top_p": 5})
    assert caught.value.status == 400
    assert "top_p" in caught.value.body  # NeMo's validation message


def test_an_error_object_in_a_200_and_the_old_vllm_form(raw: RawServer) -> None:
    raw.queue(
        [response(200, '{"error": {"message": "overloaded", "type": "x", "code": 503}}')],
        [
            response(
                400,
                '{"object": "error", "message": "bad prompt", "type": "BadRequestError", "code": 400}',
            )
        ],
    )
    client = OpenAIClient(raw.base_url + "/v1", model="m", engine="generic", max_retries=0)
    with pytest.raises(SteerLMServerError) as first:
        client.generate(["p"], GenerationOptions(), [])
    assert first.value.status == 503
    assert first.value.retryable
    with pytest.raises(SteerLMServerError, match="bad prompt") as second:
        client.generate(["p"], GenerationOptions(), [])
    assert second.value.status == 400


def test_throttling_is_retried(nemo: NeMoServer, engine: ScriptedEngine) -> None:
    nemo.faults.append(Fault(429, '{"error": {"message": "slow down", "code": 429}}'))
    engine.script("Done.")
    llm = SteerLMSettings(
        api="openai", base_url=v1(nemo), model="scripted", max_retries=1, timeout=10
    )
    [completion] = llm.pipeline.send(llm.pipeline.plan([QUESTION], {}))
    assert completion.text == "Done."
    assert len(nemo.received) == 2


def test_a_choices_list_of_the_wrong_length_is_a_response_error(raw: RawServer) -> None:
    raw.queue([response(200, '{"choices": []}')])
    client = OpenAIClient(raw.base_url + "/v1", model="m", engine="generic", max_retries=0)
    with pytest.raises(SteerLMResponseError, match="no 'choices' list"):
        client.generate(["p"], GenerationOptions(), [])


# -- credentials ---------------------------------------------------------------------------


@pytest.mark.parametrize("api", ["openai", "nemo"])
def test_api_key_goes_out_as_a_bearer_token_and_nowhere_else(
    nemo: NeMoServer, engine: ScriptedEngine, api: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = v1(nemo) if api == "openai" else nemo.base_url
    llm = SteerLMSettings(api=api, base_url=url, api_key=SECRET, default_headers={"X-Team": "a"})  # type: ignore[arg-type]
    engine.script("Hi.")
    with caplog.at_level(logging.DEBUG):
        llm.pipeline.send(llm.pipeline.plan([QUESTION], {}))
    if api == "openai":
        assert nemo.received_headers[-1]["authorization"] == f"Bearer {SECRET}"
        assert nemo.received_headers[-1]["x-team"] == "a"
    shown = repr(llm) + llm.model_dump_json() + str(llm.model_dump()) + caplog.text
    assert SECRET not in shown
    assert "'X-Team': '***'" in str(llm.model_dump())


def test_api_key_with_nemo_reaches_the_wire(raw: RawServer) -> None:
    llm = SteerLMSettings(base_url=raw.base_url, api_key=SECRET, default_headers={"X-Gw": "1"})
    llm.pipeline.send(llm.pipeline.plan([QUESTION], {}))
    assert raw.requests[-1].headers["authorization"] == f"Bearer {SECRET}"
    assert raw.requests[-1].headers["x-gw"] == "1"


def test_api_key_falls_back_to_the_environment(
    nemo: NeMoServer, engine: ScriptedEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STEERLM_API_KEY", SECRET)
    nemo.api_key = SECRET
    llm = settings(nemo)
    engine.script("Hi.")
    assert llm.pipeline.send(llm.pipeline.plan([QUESTION], {}))[0].text == "Hi."
    assert nemo.received_headers[-1]["authorization"] == f"Bearer {SECRET}"
    # Filled at construction, as LangChain partners do (secret_from_env), never shown.
    assert llm.api_key is not None and llm.api_key.get_secret_value() == SECRET
    assert SECRET not in repr(llm) and SECRET not in llm.model_dump_json()


def test_api_key_serializes_in_both_frameworks_without_the_key(
    nemo: NeMoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from langchain_core.load import dumps

    from langchain_steerlm import SteerLMChat as LangChainChat
    from llamaindex_steerlm import SteerLMChat as LlamaIndexChat

    monkeypatch.setenv("STEERLM_API_KEY", SECRET)
    lli = LlamaIndexChat(api="openai", base_url=v1(nemo))
    assert json.loads(lli.to_json())["api_key"] == "**********"
    assert SECRET not in lli.to_json() and SECRET not in str(lli.to_dict())
    lc = LangChainChat(api="openai", base_url=v1(nemo))
    assert lc.api_key is not None and lc.lc_secrets == {"api_key": "STEERLM_API_KEY"}
    assert SECRET not in dumps(lc) and SECRET not in repr(lc)


def test_a_wrong_key_says_how_to_pass_one_and_shows_neither(nemo: NeMoServer) -> None:
    nemo.api_key = "the-right-key"
    llm = settings(nemo, api_key=SECRET, model="scripted")
    with pytest.raises(SteerLMServerError) as caught:
        llm.pipeline.send(llm.pipeline.plan([QUESTION], {}))
    message = str(caught.value)
    assert caught.value.status == 401
    assert "api_key" in message and "STEERLM_API_KEY" in message
    assert SECRET not in message and "the-right-key" not in message


def test_bad_headers_fail_at_construction(nemo: NeMoServer) -> None:
    with pytest.raises(SteerLMInputError, match="default_headers"):
        settings(nemo, default_headers={"X-Evil": "a\r\nInjected: 1"})
    with pytest.raises(SteerLMInputError, match="api_key"):
        settings(nemo, api_key="two words")


def test_openai_defaults_to_vllms_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STEERLM_BASE_URL", raising=False)
    assert SteerLMSettings(api="openai").base_url == "http://localhost:8000/v1"
    assert SteerLMSettings().base_url == "http://localhost:5555"


def test_a_transient_failure_of_the_first_list_is_retried_not_taken_for_a_refusal(
    nemo: NeMoServer, engine: ScriptedEngine
) -> None:
    nemo.faults.append(Fault(503, '{"error": {"message": "overloaded", "code": 503}}'))
    engine.script("A.", "B.")
    llm = settings(nemo)
    plan = llm.pipeline.plan([QUESTION, [Turn("user", "Yo")]], {})
    assert [c.text for c in llm.pipeline.send(plan)] == ["A.", "B."]
    assert [isinstance(b["prompt"], list) for b in nemo.received] == [True, True]
    assert llm.transport.prompt_lists is True  # type: ignore[attr-defined]


def test_lists_are_given_up_only_when_single_prompts_work(
    nemo: NeMoServer, engine: ScriptedEngine
) -> None:
    # The list fails, and so does each single prompt: nothing is learnt from that.
    for _ in range(3):
        nemo.faults.append(Fault(500, '{"detail": "Internal Server Error"}'))
    llm = settings(nemo, max_retries=0)
    plan = llm.pipeline.plan([QUESTION, [Turn("user", "Yo")]], {})
    with pytest.raises(SteerLMServerError):
        llm.pipeline.send(plan)
    assert llm.transport.prompt_lists is None  # type: ignore[attr-defined]


def test_a_stop_that_is_not_strings_is_a_400_error_object(nemo: NeMoServer) -> None:
    client = OpenAIClient(v1(nemo), max_retries=2)
    with pytest.raises(SteerLMServerError) as caught:
        client.request_json("POST", "/completions", {"prompt": "x", "stop": 5})
    assert caught.value.status == 400
    assert "stop must be a string or a list of strings" in caught.value.body
    assert len(nemo.received) == 1  # a 400 is not retried
