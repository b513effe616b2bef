"""Token streaming with api="openai": the incremental stop cut, and streams over real HTTP.

The dev server's /v1/completions streams one event per token of the scripted engine. With
``nemo_version="1.17"`` the engine ignores end strings, so the text goes on past a stop
string, as from a server that does not honour ``stop``: the client's cut is what is tested.
"""

from __future__ import annotations

import json
import random
import time

import pytest

from steerlm import (
    SteerLMResponseError,
    SteerLMResponseTooLargeError,
    SteerLMServerError,
    SteerLMSettings,
    SteerLMStreamEndedError,
    SteerLMTimeoutError,
    Turn,
)
from steerlm.http import SSEDecoder
from steerlm.options import GenerationOptions
from steerlm.response import StreamCut, cut_answer
from steerlm.server.app import NeMoServer
from steerlm.server.scripted_engine import ScriptedEngine
from steerlm.transports.openai import OpenAIClient
from steerlm.types import StreamChunk
from tests.raw_server import Pause, RawServer

QUESTION = [Turn("user", "Hi")]
STOPS = ("<extra_id_1>", "quality:", "The end", "<|endoftext|>")


def settings(nemo: NeMoServer, **fields: object) -> SteerLMSettings:
    return SteerLMSettings(api="openai", base_url=nemo.base_url + "/v1", **fields)  # type: ignore[arg-type]


def stream(llm: SteerLMSettings, **call: object) -> list[StreamChunk]:
    return list(llm.pipeline.stream(llm.pipeline.plan([QUESTION], call)))


# -- the cut, without HTTP -----------------------------------------------------------------


def test_the_stream_cut_is_the_whole_cut_for_every_split() -> None:
    # Every text, split anywhere, streams exactly the whole answer's cut, never more.
    pieces = ["a", " ", "\n", "<", "extra_id_", "1", ">", "<extra_id_3>", "quality", ":",
              "The", " end", "The en", "<|endoftext|>", "<|end", "x"]  # fmt: skip
    rng = random.Random(13)
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 10)))
        cut, shown, position = StreamCut(STOPS), [], 0
        while position < len(text) and not cut.stopped:
            step = rng.randint(1, 5)
            shown.append(cut.feed(text[position : position + step]))
            position += step
        shown.append(cut.finish())
        assert "".join(shown) == cut_answer(text, STOPS)[0], text
        assert cut.stop_string == cut_answer(text, STOPS)[1]


def test_prefixes_of_stops_and_markers_are_held_back_then_released() -> None:
    cut = StreamCut(STOPS)
    assert cut.feed("Story. The") == "Story."  # "The" may start "The end"
    assert cut.feed(" en") == ""
    assert cut.feed("d is near") == ""  # it did: nothing after the stop, ever
    assert cut.stopped and cut.stop_string == "The end"
    cut = StreamCut(STOPS)
    assert cut.feed("Story. The") == "Story."
    assert cut.feed("re it is <extra_") == " There it is"
    assert cut.finish() == ""  # a marker cut off at the end is dropped
    cut = StreamCut(STOPS)
    assert cut.feed("a <extra_id_3>b quality") == "a b"
    assert cut.finish() == " quality"  # not a stop after all


def test_sse_decoder_handles_crlf_multiline_data_comments_and_split_bytes() -> None:
    decoder = SSEDecoder()
    stream = b': ping\r\ndata: {"a":\r\ndata: 1}\r\n\r\nevent: x\ndata: [DONE]\n\n'
    events = [event for i in range(len(stream)) for event in decoder.feed(stream[i : i + 1])]
    assert events == ['{"a":\n1}', "[DONE]"]
    assert decoder.feed(b"data: tail") == []
    assert decoder.finish() == ["tail"]


# -- over HTTP -----------------------------------------------------------------------------


def test_a_stream_is_token_by_token_and_joins_to_the_whole_answer(
    nemo: NeMoServer, engine: ScriptedEngine
) -> None:
    llm = settings(nemo)
    answer = "SteerLM steers each answer by its attributes."
    engine.script(answer, answer)
    chunks = stream(llm)
    assert len(chunks) > 5
    assert all(chunk.completion is None for chunk in chunks[:-1])
    final = chunks[-1].completion
    assert final is not None
    assert "".join(chunk.text for chunk in chunks) == final.text == answer
    assert final.text == llm.pipeline.send(llm.pipeline.plan([QUESTION], {}))[0].text
    assert nemo.received[0]["stream"] is True
    assert nemo.received[0]["stream_options"] == {"include_usage": True}


def test_usage_and_finish_reason_arrive_on_the_last_chunk(
    nemo: NeMoServer, engine: ScriptedEngine
) -> None:
    engine.script("one two three four")
    chunks = stream(settings(nemo), max_tokens=3)
    final = chunks[-1].completion
    assert final is not None
    assert final.finish_reason == "length"
    assert final.usage is not None and final.usage.completion_tokens == 3
    assert final.usage.prompt_tokens > 10
    assert final.raw["model"] == "scripted"


def test_a_stop_split_across_chunks_is_never_shown(
    nemo: NeMoServer, engine: ScriptedEngine
) -> None:
    nemo.nemo_version = "1.17"  # the server does not stop: the client must
    engine.script("Once upon a time. The end of it. The rest")
    chunks = stream(settings(nemo, stop=["The end"]))
    texts = [chunk.text for chunk in chunks]
    assert "".join(texts) == "Once upon a time."
    assert not any("The" in text for text in texts)
    final = chunks[-1].completion
    assert final is not None and final.stop_string == "The end"
    assert final.finish_reason == "stop"


def test_a_held_back_prefix_is_released_when_the_stream_ends(
    nemo: NeMoServer, engine: ScriptedEngine
) -> None:
    engine.script("Story. The en")
    chunks = stream(settings(nemo, stop=["The end"]))
    assert "".join(chunk.text for chunk in chunks[:-1]) == "Story."
    assert chunks[-1].text == " The en"


def test_markers_and_label_lines_never_reach_the_user(
    nemo: NeMoServer, engine: ScriptedEngine
) -> None:
    nemo.nemo_version = "1.17"
    engine.script("Sure <extra_id_3>thing.\n<extra_id_1>User\nquality:9,humor:0\nmore")
    texts = [chunk.text for chunk in stream(settings(nemo))]
    assert "".join(texts) == "Sure thing."
    assert not any("<" in text or "quality" in text for text in texts)
    engine.script("Cut off <extra_id_1")  # the token limit hit inside a marker
    texts = [chunk.text for chunk in stream(settings(nemo), max_tokens=4)]
    assert "".join(texts) == "Cut off"


async def test_async_stream_equals_the_sync_stream(
    nemo: NeMoServer, engine: ScriptedEngine
) -> None:
    llm = settings(nemo)
    answer = "Async streams the same tokens."
    engine.script(answer, answer)
    sync = [chunk.text for chunk in stream(llm)]
    pieces = [chunk async for chunk in llm.pipeline.astream(llm.pipeline.plan([QUESTION], {}))]
    assert [chunk.text for chunk in pieces] == sync
    assert pieces[-1].completion is not None and pieces[-1].completion.text == answer
    await llm.aclose()


def _wait_for(condition: object, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


def test_leaving_a_stream_early_closes_the_connection(
    nemo: NeMoServer, engine: ScriptedEngine
) -> None:
    before = nemo.abandoned
    nemo.stream_interval = 0.01  # the whole stream would take 10 s
    engine.script(" ".join(["word"] * 500))
    llm = settings(nemo, max_tokens=1000)
    chunks = llm.pipeline.stream(llm.pipeline.plan([QUESTION], {}))
    assert next(chunks).text == "word"
    chunks.close()  # what breaking out of a for loop does
    assert _wait_for(lambda: nemo.abandoned == before + 1)


async def test_leaving_an_async_stream_early_closes_the_connection(
    nemo: NeMoServer, engine: ScriptedEngine
) -> None:
    before = nemo.abandoned
    nemo.stream_interval = 0.01
    engine.script(" ".join(["word"] * 500))
    llm = settings(nemo, max_tokens=1000)
    chunks = llm.pipeline.astream(llm.pipeline.plan([QUESTION], {}))
    async for _ in chunks:
        break
    await chunks.aclose()
    assert _wait_for(lambda: nemo.abandoned == before + 1)
    await llm.aclose()


def test_an_error_before_the_stream_is_raised(nemo: NeMoServer) -> None:
    nemo.api_key = "right"
    llm = settings(nemo, model="scripted", api_key="wrong")
    with pytest.raises(SteerLMServerError, match="HTTP 401") as caught:
        stream(llm)
    assert "wrong" not in str(caught.value)


def _sse(*events: object) -> bytes:
    return b"".join(
        f"data: {json.dumps(e) if not isinstance(e, str) else e}\n\n".encode() for e in events
    )


_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"


def _token(text: str) -> dict[str, object]:
    return {"choices": [{"index": 0, "text": text, "finish_reason": None}], "model": "m"}


def test_an_error_object_mid_stream_is_a_server_error(raw: RawServer) -> None:
    raw.queue([_HEAD + _sse(_token("Hel"), {"error": {"message": "engine died", "code": 500}})])
    client = OpenAIClient(raw.base_url + "/v1", model="m", engine="generic", max_retries=0)
    received = []
    with pytest.raises(SteerLMServerError, match="engine died"):
        for chunk in client.stream("p", GenerationOptions(), ()):
            received.append(chunk.text)
    assert received == ["Hel"]


def test_the_deadline_bounds_each_gap_not_the_whole_stream(raw: RawServer) -> None:
    slow_but_steady = [_HEAD]
    for word in ["One", " two", " three", " four"]:
        slow_but_steady += [_sse(_token(word)), Pause(0.2)]
    slow_but_steady.append(_sse("[DONE]"))
    raw.queue(slow_but_steady, [_HEAD, _sse(_token("One")), Pause(1.2), _sse("[DONE]")])
    client = OpenAIClient(
        raw.base_url + "/v1", model="m", engine="generic", timeout=0.6, max_retries=0
    )
    # 0.8 s in all, longer than the timeout, but no gap is: it completes.
    chunks = list(client.stream("p", GenerationOptions(), ()))
    assert chunks[-1].completion is not None
    assert chunks[-1].completion.text == "One two three four"
    with pytest.raises(SteerLMTimeoutError):
        list(client.stream("p", GenerationOptions(), ()))


async def test_the_async_deadline_bounds_each_gap(raw: RawServer) -> None:
    raw.queue(
        [
            _HEAD,
            _sse(_token("One")),
            Pause(0.2),
            _sse(_token(" two")),
            Pause(0.2),
            _sse(_token(" three")),
            Pause(0.2),
            _sse(_token(" four")),
            Pause(0.2),
            _sse("[DONE]"),
        ],
        [_HEAD, _sse(_token("One")), Pause(1.2), _sse("[DONE]")],
    )
    client = OpenAIClient(
        raw.base_url + "/v1", model="m", engine="generic", timeout=0.6, max_retries=0
    )
    chunks = [chunk async for chunk in client.astream("p", GenerationOptions(), ())]
    assert chunks[-1].completion is not None
    assert chunks[-1].completion.text == "One two three four"
    with pytest.raises(SteerLMTimeoutError):
        async for _ in client.astream("p", GenerationOptions(), ()):
            pass
    await client.aclose()


def test_the_size_cap_counts_the_whole_stream(raw: RawServer) -> None:
    raw.queue([_HEAD, _sse(*[_token("x" * 100)] * 50)])
    client = OpenAIClient(
        raw.base_url + "/v1", model="m", engine="generic", max_response_bytes=2000, max_retries=0
    )
    with pytest.raises(SteerLMResponseTooLargeError):
        list(client.stream("p", GenerationOptions(), ()))


async def test_a_stream_cut_off_mid_answer_is_an_error_with_the_partial_text(
    raw: RawServer,
) -> None:
    # The connection closes with no finish_reason and no [DONE] (issue 17): the last
    # event is still read (its blank line never came), but the answer is not whole.
    unterminated = _HEAD + _sse(_token("Hel")) + b'data: {"choices": [{"text": "lo"}]}'
    raw.queue([unterminated], [unterminated])
    client = OpenAIClient(raw.base_url + "/v1", model="m", engine="generic", max_retries=0)
    with pytest.raises(SteerLMStreamEndedError, match="ended before the server finished"):
        list(client.stream("p", GenerationOptions(), ()))
    with pytest.raises(SteerLMStreamEndedError) as caught:
        _ = [chunk async for chunk in client.astream("p", GenerationOptions(), ())]
    assert caught.value.partial == "Hello"
    assert isinstance(caught.value, SteerLMResponseError)
    await client.aclose()
