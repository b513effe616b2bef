"""Each engine behind ``api="openai"``, through both frameworks, on the dev server's imitation.

The dev server's ``/v1`` routes imitate each engine (``nemo.openai_profile``; every
behaviour cited in steerlm/server/openai_profiles.py against the engine's source). The
client must learn the engine from what the server shows (``engine="auto"``) and then
invoke, batch and stream on it: the 4-stop cap (vLLM), the slash routes (Export-Deploy),
JSON answers to ``stream: true``, prompt-list refusals, word counts that are not token
counts, finish reasons that were not given, and each engine's constrained-decoding key.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from pydantic import BaseModel

from langchain_steerlm import SteerLMChat as LangChainChat
from llamaindex_steerlm import SteerLMChat as LlamaIndexChat
from steerlm import SteerLMInputError
from steerlm.server import NeMoServer, ScriptedEngine
from steerlm.server.openai_profiles import TRTLLM_COMPLETION_FIELDS
from tests.helpers import add

# profile the dev server imitates -> (engine the client should learn, model name needed)
ENGINES = {
    "steerlm": ("generic", False),
    "vllm": ("vllm", False),
    "trtllm": ("trtllm", False),
    "nim": ("nim", False),
    "llamacpp": ("llamacpp", False),
    "nemo-deploy": ("nemo-deploy", True),
    "nemo-deploy-ray": ("nemo-deploy-ray", False),
    "nemo-flask": ("nemo-flask", True),
}
STREAMS = {"steerlm", "vllm", "trtllm", "nim", "llamacpp"}
TAKES_LISTS = {"steerlm", "vllm", "trtllm", "nim", "llamacpp"}
TOKEN_USAGE = STREAMS
ANSWER = "Black holes are regions where gravity is so strong that nothing escapes."


def chat(nemo: NeMoServer, profile: str, **fields: Any) -> LangChainChat:
    nemo.openai_profile = profile
    model = {"model": "scripted"} if ENGINES[profile][1] else {}
    return LangChainChat(api="openai", base_url=nemo.base_url + "/v1", **model, **fields)


@pytest.mark.parametrize("profile", sorted(ENGINES))
def test_invoke_batch_and_stream_work_on_every_engine(
    nemo: NeMoServer, engine: ScriptedEngine, profile: str
) -> None:
    llm = chat(nemo, profile)
    engine.script(ANSWER)
    message = llm.invoke("What is a black hole?")  # the 13B preset: 5 stop strings
    assert message.content == ANSWER
    assert llm.transport.profile.name == ENGINES[profile][0]  # type: ignore[attr-defined]
    metadata = message.response_metadata
    if profile in TOKEN_USAGE:
        assert message.usage_metadata is not None and message.usage_metadata["output_tokens"] > 0
        assert metadata["finish_reason"] == "stop"
    else:  # words, or nothing: not reported as tokens; a reason not given is not made up
        assert message.usage_metadata is None
        assert metadata["finish_reason"] is None
    assert metadata["model_name"] == "scripted"  # never NeMo Flask's "nemo model"

    before = len(nemo.received)
    engine.script("one", "two", "three")
    answers = [str(m.content) for m in llm.batch(["a", "b", "c"])]
    # Sent one by one (concurrently) where lists are not taken: scripted answers go out
    # in arrival order, so only the set is certain there.
    assert sorted(answers) == ["one", "three", "two"]
    assert len(nemo.received) - before == (1 if profile in TAKES_LISTS else 3)

    engine.script(ANSWER)
    chunks = list(llm.stream("What is a black hole?"))
    assert "".join(str(c.content) for c in chunks) == ANSWER
    assert (len([c for c in chunks if c.content]) > 1) == (profile in STREAMS)
    if profile == "trtllm":  # extra="forbid": every body the client sent kept to its fields
        assert all(set(body) <= TRTLLM_COMPLETION_FIELDS for body in nemo.received)


@pytest.mark.parametrize("profile", sorted(ENGINES))
def test_llamaindex_chat_stream_and_astream_on_every_engine(
    nemo: NeMoServer, engine: ScriptedEngine, profile: str
) -> None:
    nemo.openai_profile = profile
    model = {"model": "scripted"} if ENGINES[profile][1] else {}
    llm = LlamaIndexChat(api="openai", base_url=nemo.base_url + "/v1", **model)
    engine.script(ANSWER, ANSWER, ANSWER)
    assert llm.complete("What is a black hole?").text == ANSWER
    assert "".join(r.delta or "" for r in llm.stream_complete("Q")) == ANSWER

    async def collect() -> str:
        return "".join([r.delta or "" async for r in await llm.astream_complete("Q")])

    assert asyncio.run(collect()) == ANSWER


def test_vllm_gets_four_stop_strings_and_the_client_cuts_at_the_rest(
    nemo: NeMoServer, engine: ScriptedEngine
) -> None:
    llm = chat(nemo, "vllm", stop=["MINE", "THEIRS"])
    engine.script("It is dark. <extra_id_2> more")  # the 5th stop: cut on the client
    message = llm.invoke("x")
    assert message.content == "It is dark."
    assert message.response_metadata["stop_string"] == "<extra_id_2>"
    assert nemo.received[-1]["stop"] == ["<extra_id_1>", "MINE", "THEIRS", "quality:"]


@pytest.mark.parametrize("profile", ["nemo-deploy", "nemo-flask"])
def test_a_server_without_models_asks_for_a_model_name(nemo: NeMoServer, profile: str) -> None:
    nemo.openai_profile = profile
    llm = LangChainChat(api="openai", base_url=nemo.base_url + "/v1", max_retries=0)
    with pytest.raises(SteerLMInputError, match="pass model=") as caught:
        llm.invoke("x")
    if profile == "nemo-flask":
        assert "api='nemo'" in str(caught.value)


def test_export_deploy_gets_one_request_per_prompt_on_its_slash_route(
    nemo: NeMoServer, engine: ScriptedEngine
) -> None:
    llm = chat(nemo, "nemo-deploy", engine="nemo-deploy", top_k=40, temperature=0.5)
    engine.script("a", "b")
    assert sorted(str(m.content) for m in llm.batch(["x", "y"])) == ["a", "b"]
    assert all(isinstance(body["prompt"], str) for body in nemo.received)
    assert all(body["top_p"] == 0.0 for body in nemo.received)  # never top_k and top_p


def test_a_slash_redirect_is_followed_once_then_remembered(
    nemo: NeMoServer, engine: ScriptedEngine
) -> None:
    # engine="generic" on Export-Deploy's Ray route: the client asks /v1/completions and
    # Starlette answers 307 to /v1/completions/.
    llm = chat(nemo, "nemo-deploy-ray", engine="generic")
    engine.script("one", "two")
    assert llm.invoke("x").content == "one"
    assert llm.invoke("x").content == "two"
    assert llm.transport.http.moved(llm.transport._completions).url.endswith("/completions/")  # type: ignore[attr-defined]


class Answer(BaseModel):
    a: int


@pytest.mark.parametrize(
    ("profile", "key"),
    [
        ("vllm", "structured_outputs"),
        ("trtllm", "response_format"),
        ("nim", "nvext"),
        ("llamacpp", "json_schema"),
        ("steerlm", None),
    ],
)
def test_structured_output_sends_the_schema_in_the_engines_own_key(
    nemo: NeMoServer, engine: ScriptedEngine, profile: str, key: str | None
) -> None:
    llm = chat(nemo, profile)
    engine.script('{"a": 5}', '{"a": 6}')
    assert llm.with_structured_output(Answer).invoke("five") == Answer(a=5)
    body = nemo.received[-1]
    keys = {"structured_outputs", "response_format", "nvext", "json_schema", "guided_json"}
    assert keys & set(body) == ({key} if key else set())
    li = LlamaIndexChat(api="openai", base_url=nemo.base_url + "/v1")
    from llama_index.core.prompts import PromptTemplate

    assert li.structured_predict(Answer, PromptTemplate("six")) == Answer(a=6)
    assert keys & set(nemo.received[-1]) == ({key} if key else set())


def test_a_forced_tool_call_is_constrained_and_its_bare_object_is_the_call(
    nemo: NeMoServer, engine: ScriptedEngine
) -> None:
    llm = chat(nemo, "vllm")
    engine.script('{"name": "add", "arguments": {"a": 2, "b": 3}}')
    message = llm.bind_tools([add], tool_choice="add").invoke("2 + 3?")
    assert isinstance(message, AIMessage)
    assert [(c["name"], c["args"]) for c in message.tool_calls] == [("add", {"a": 2, "b": 3})]
    schema = nemo.received[-1]["structured_outputs"]["json"]
    assert schema["properties"]["name"] == {"type": "string", "enum": ["add"]}
    assert json.dumps(schema["properties"]["arguments"]).count('"a"') >= 1
    # with_structured_output(method="function_calling") forces the call the same way.
    engine.script('{"name": "Answer", "arguments": {"a": 7}}')
    structured = llm.with_structured_output(Answer, method="function_calling")
    assert structured.invoke("seven") == Answer(a=7)
