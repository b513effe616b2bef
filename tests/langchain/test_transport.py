"""LangChain: credentials in base_url never leave the wire; copies keep them; close/aclose.

The raw server (tests/raw_server.py) records the headers of each request, so the tests see
what went on the wire: the credentials as Basic auth, and nowhere else.
"""

from __future__ import annotations

import asyncio
import gc
import json
import warnings
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.load import dumpd
from langchain_core.runnables import ConfigurableField

from langchain_steerlm import SteerLMChat
from steerlm import SteerLMConnectionError
from steerlm.server import NeMoServer
from tests.raw_server import ANSWER, BASIC_AUTH, SECRET, RawServer, with_credentials


class Recorder(BaseCallbackHandler):
    """Everything LangChain hands to callbacks and tracers, as text."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def on_chat_model_start(self, serialized: Any, messages: Any, **kwargs: Any) -> None:
        self.seen.append(json.dumps(serialized, default=repr))
        self.seen.append(json.dumps(kwargs, default=repr))

    def on_llm_end(self, response: Any, **kwargs: Any) -> None:
        self.seen.append(repr(response))

    def on_llm_error(self, error: BaseException, **kwargs: Any) -> None:
        self.seen.append(repr(error) + str(error))


def test_credentials_reach_the_wire_and_nothing_else(raw: RawServer) -> None:
    llm = SteerLMChat(base_url=with_credentials(raw.base_url))
    recorder = Recorder()
    assert llm.invoke("Hi", config={"callbacks": [recorder]}).content == ANSWER
    assert raw.requests[0].headers["authorization"] == BASIC_AUTH
    shown = [
        repr(llm),
        str(llm),
        json.dumps(llm._identifying_params),
        str(llm._get_ls_params()),
        llm.model_dump_json(),
        json.dumps(dumpd(llm)),
        *recorder.seen,
    ]
    assert recorder.seen and all(SECRET not in text for text in shown)
    assert "http://***@127.0.0.1" in repr(llm)
    assert llm._identifying_params["base_url"] == raw.base_url.replace("http://", "http://***@")


def test_errors_reported_to_callbacks_do_not_show_credentials(dead_url: str) -> None:
    llm = SteerLMChat(base_url=with_credentials(dead_url), max_retries=0)
    recorder = Recorder()
    with pytest.raises(SteerLMConnectionError) as info:
        llm.invoke("Hi", config={"callbacks": [recorder]})
    assert SECRET not in str(info.value)
    assert all(SECRET not in text for text in recorder.seen)


def test_copies_keep_the_credentials_for_the_wire(raw: RawServer) -> None:
    llm = SteerLMChat(base_url=with_credentials(raw.base_url))
    configurable = llm.configurable_fields(max_tokens=ConfigurableField(id="max_tokens"))
    configurable.invoke("Hi", config={"configurable": {"max_tokens": 5}})
    llm.model_copy(update={"max_tokens": 7}).invoke("Hi")
    llm.bind(max_tokens=9).invoke("Hi")
    assert [r.headers["authorization"] for r in raw.requests] == [BASIC_AUTH] * 3
    assert [r.json["tokens_to_generate"] for r in raw.requests] == [5, 7, 9]


def test_close_and_aclose_release_connections(nemo: NeMoServer) -> None:
    llm = SteerLMChat(base_url=nemo.base_url)
    llm.invoke("Hi")
    llm.close()
    assert llm.invoke("Hi").content  # reopens when used again

    async def run() -> None:
        await llm.ainvoke("Hi")
        await llm.aclose()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncio.run(run())
        for _ in range(5):
            asyncio.run(llm.ainvoke("Hi"))  # no aclose: closed when the loop shuts down
        gc.collect()
    assert [w.message for w in caught if issubclass(w.category, ResourceWarning)] == []
    llm.close()
