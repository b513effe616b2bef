"""LlamaIndex: credentials in base_url never leave the wire; copies keep them; close/aclose;
``metadata.context_window`` follows the instance setting."""

from __future__ import annotations

import asyncio
import gc
import warnings

import pytest
from llama_index.core.llms import ChatMessage

from llamaindex_steerlm import SteerLMChat
from steerlm import SteerLMConnectionError
from steerlm.server import NeMoServer
from tests.raw_server import ANSWER, BASIC_AUTH, SECRET, RawServer, with_credentials

HI = [ChatMessage(role="user", content="Hi")]


def test_credentials_reach_the_wire_and_nothing_else(raw: RawServer) -> None:
    llm = SteerLMChat(base_url=with_credentials(raw.base_url))
    assert llm.chat(HI).message.content == ANSWER
    assert raw.requests[0].headers["authorization"] == BASIC_AUTH
    shown = [repr(llm), str(llm), llm.to_json(), str(llm.to_dict()), llm.model_dump_json()]
    assert all(SECRET not in text for text in shown)
    assert llm.to_dict()["base_url"] == raw.base_url.replace("http://", "http://***@")


def test_errors_do_not_show_credentials(dead_url: str) -> None:
    llm = SteerLMChat(base_url=with_credentials(dead_url), max_retries=0)
    with pytest.raises(SteerLMConnectionError) as info:
        llm.chat(HI)
    assert SECRET not in str(info.value)


def test_copies_keep_the_credentials_for_the_wire(raw: RawServer) -> None:
    llm = SteerLMChat(base_url=with_credentials(raw.base_url))
    llm.with_attributes(humor=3).chat(HI)
    llm.model_copy(update={"max_tokens": 7}).chat(HI)
    generations = [r for r in raw.requests if r.line.startswith("PUT /generate")]
    assert [r.headers["authorization"] for r in generations] == [BASIC_AUTH] * 2
    # LlamaIndex reads metadata on each call, so the context window is asked of the
    # server (GET /health, which this server cannot answer): with the credentials too.
    assert {r.headers["authorization"] for r in raw.requests} == {BASIC_AUTH}
    # A round trip through JSON keeps the redacted URL only: credentials are not exported.
    assert SteerLMChat.from_json(llm.to_json()).base_url == llm.to_dict()["base_url"]


def test_metadata_context_window_follows_the_setting(dead_url: str) -> None:
    # No server to ask: the preset's; a user's value always wins.
    assert SteerLMChat(base_url=dead_url).metadata.context_window == 4096  # the 13B preset's
    assert SteerLMChat(base_url=dead_url, context_window=2048).metadata.context_window == 2048


def test_metadata_context_window_comes_from_the_server(nemo: NeMoServer) -> None:
    # The dev server says its window in /health (NeMo's API) and /v1/models (vLLM's
    # max_model_len); asked on first use, once per model and its copies (issue 19).
    nemo.engine.context_window = 1024  # type: ignore[attr-defined]
    try:
        llm = SteerLMChat(base_url=nemo.base_url)
        assert llm.context_window is None  # not asked at construction
        assert llm.metadata.context_window == 1024
        v1 = SteerLMChat(base_url=f"{nemo.base_url}/v1", api="openai")
        assert v1.metadata.context_window == 1024
        nemo.engine.context_window = 512  # type: ignore[attr-defined]
        assert llm.with_attributes(humor=1).metadata.context_window == 1024  # asked once
        assert (
            SteerLMChat(base_url=nemo.base_url, context_window=300).metadata.context_window == 300
        )
    finally:
        nemo.engine.context_window = 2048  # type: ignore[attr-defined]


def test_close_and_aclose_release_connections(nemo: NeMoServer) -> None:
    llm = SteerLMChat(base_url=nemo.base_url)
    llm.chat(HI)
    llm.close()
    assert llm.chat(HI).message.content  # reopens when used again

    async def run() -> None:
        await llm.achat(HI)
        await llm.aclose()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncio.run(run())
        for _ in range(5):
            asyncio.run(llm.achat(HI))  # no aclose: closed when the loop shuts down
        gc.collect()
    assert [w.message for w in caught if issubclass(w.category, ResourceWarning)] == []
    llm.close()
