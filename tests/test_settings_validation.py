"""Bad settings fail at construction, bad per-call values before sending, in both frameworks."""

from __future__ import annotations

from typing import Any

import pytest
from llama_index.core.llms import ChatMessage, MessageRole

from langchain_steerlm import SteerLMChat as LangChainChat
from llamaindex_steerlm import SteerLMChat as LlamaIndexChat
from steerlm import InvalidAttributesError, SteerLMInputError
from steerlm.server.app import NeMoServer

FRAMEWORKS = {"langchain": LangChainChat, "llamaindex": LlamaIndexChat}


@pytest.fixture(params=list(FRAMEWORKS))
def chat_class(request: pytest.FixtureRequest) -> Any:
    return FRAMEWORKS[request.param]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_token": 10}, r"'max_token' \(did you mean 'max_tokens'\?\)"),
        ({"temprature": 0.5}, r"'temprature' \(did you mean 'temperature'\?\)"),
        ({"max_token": 10, "temprature": 0.5}, r"'max_token'.*'temprature'"),
    ],
)
def test_unknown_constructor_arguments_name_the_close_match(
    chat_class: Any, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(SteerLMInputError, match=message):
        chat_class(base_url="http://127.0.0.1:1", **kwargs)


@pytest.mark.parametrize("value", [True, 9.0, b"9", "9"])
def test_instance_attributes_are_not_coerced(chat_class: Any, value: object) -> None:
    with pytest.raises(InvalidAttributesError, match="'humor'"):
        chat_class(base_url="http://127.0.0.1:1", attributes={"humor": value})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"repetition_penalty": float("inf")}, "repetition_penalty must be a finite number"),
        ({"repetition_penalty": float("nan")}, "repetition_penalty must be a finite number"),
        ({"timeout": float("inf")}, "timeout must be a positive number"),
        ({"base_url": "http://h:99999"}, "not a valid URL"),
        ({"base_url": "http://[::1"}, "not a valid URL"),
        ({"max_tokens": "10"}, "max_tokens"),
        ({"stop": 5}, "stop"),
    ],
)
def test_bad_settings_fail_at_construction(
    chat_class: Any, kwargs: dict[str, Any], message: str
) -> None:
    kwargs = {"base_url": "http://127.0.0.1:1", **kwargs}
    with pytest.raises(SteerLMInputError, match=message):
        chat_class(**kwargs)


def test_valid_settings_still_construct(chat_class: Any) -> None:
    llm = chat_class(
        base_url="http://[::1]:5555", attributes={"humor": 3}, timeout=5, repetition_penalty=1.1
    )
    assert llm.merged_attributes()["humor"] == 3


def test_per_call_stop_must_be_strings(nemo: NeMoServer) -> None:
    with pytest.raises(SteerLMInputError, match="stop must be a string or a list of strings"):
        LangChainChat(base_url=nemo.base_url).invoke("Hi", stop=5)  # type: ignore[arg-type]
    with pytest.raises(SteerLMInputError, match="stop must be a string or a list of strings"):
        LlamaIndexChat(base_url=nemo.base_url).chat(
            [ChatMessage(role=MessageRole.USER, content="Hi")], stop=5
        )
    assert nemo.received == []


def test_api_key_is_a_secret_field(chat_class: Any) -> None:
    # LangChain passes api_key to every chat model: a real field (a Bearer token with either
    # api), shown nowhere. Its wire behaviour is tested in tests/core/test_openai_transport.py.
    llm = chat_class(base_url="http://127.0.0.1:1", api_key="s3cr3t-key")
    assert llm.api_key.get_secret_value() == "s3cr3t-key"
    assert "s3cr3t-key" not in repr(llm)
    assert "s3cr3t-key" not in llm.model_dump_json()


def test_unknown_api_fails_at_construction(chat_class: Any) -> None:
    # The names come from the transport registry (issue 16), no longer a fixed Literal.
    with pytest.raises(SteerLMInputError, match="Unknown api 'grpc'.*'nemo', 'openai'"):
        chat_class(base_url="http://127.0.0.1:1", api="grpc")


def test_a_misspelt_api_gets_a_did_you_mean(chat_class: Any) -> None:
    with pytest.raises(SteerLMInputError, match="Did you mean 'openai'"):
        chat_class(base_url="http://127.0.0.1:1", api="opneai")


def test_a_misspelt_per_call_keyword_gets_a_did_you_mean(chat_class: Any) -> None:
    llm = chat_class(base_url="http://127.0.0.1:1")  # nothing listens: raised before I/O
    call = llm.invoke if chat_class is LangChainChat else llm.complete
    with pytest.raises(SteerLMInputError, match=r"'max_token' \(did you mean 'max_tokens'\?\)"):
        call("hi", max_token=10)
