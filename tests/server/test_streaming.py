"""The dev server's /v1/completions streams text while the engine generates it.

Unit tier: the scripted engine's ``step_hook`` holds generation at a step until the test
has read the first chunk, so "the first chunk arrives before generation ends" is shown by
causality, never by timing. Integration tier: the same on the real model, where
``GET /health`` says whether a generation is still running when the first chunk arrives.
"""

from __future__ import annotations

import codecs
import json
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence

import pytest
import requests
from llama_index.core.llms import ChatMessage, MessageRole

from langchain_steerlm import SteerLMChat as LangChainSteerLM
from llamaindex_steerlm import SteerLMChat as LlamaIndexSteerLM
from steerlm import SteerLMServerError
from steerlm.server.app import NeMoServer, serve_in_thread
from steerlm.server.engine import Cancelled, Generation, TokenSink
from steerlm.server.protocol import GenerateParams
from steerlm.server.scripted_engine import ScriptedEngine, TokenizerKind

ANSWER = "Techno was born in Detroit in the 1980s, from funk and electro."
TOKENS = 25  # of ANSWER, plain tokenizer: words, spaces and punctuation


class Gate:
    """A ``step_hook`` that holds generation before step ``at`` until released."""

    def __init__(self, at: int = 3, fail: bool = False) -> None:
        self.at = at
        self.fail = fail
        self.steps: list[int] = []
        self.release = threading.Event()
        self.timed_out = False

    def holding(self) -> bool:
        """Whether generation has not passed step ``at``: it cannot have ended."""
        return len(self.steps) <= self.at + 1 and not self.release.is_set()

    def __call__(self, step: int) -> None:
        self.steps.append(step)
        if step != self.at:
            return
        if self.fail:
            raise RuntimeError("the engine broke")
        # Bounded, so a server that does not stream fails the test instead of hanging it.
        self.timed_out = not self.release.wait(30)


@pytest.fixture
def gate(engine: ScriptedEngine) -> Gate:
    gate = Gate()
    engine.step_hook = gate
    engine.script(ANSWER)
    return gate


def events(response: requests.Response) -> Iterator[dict[str, object] | str]:
    """The server-sent events of a streamed response, decoded, as they arrive."""
    for line in response.iter_lines(chunk_size=None):
        if line.startswith(b"data: "):
            data = line[len(b"data: ") :].decode()
            yield data if data == "[DONE]" else json.loads(data)


def completions(nemo: NeMoServer, **body: object) -> requests.Response:
    request = {"prompt": "Techno?", "max_tokens": 64, "temperature": 0, **body}
    return requests.post(f"{nemo.base_url}/v1/completions", json=request, stream=True, timeout=60)


def texts(stream: Sequence[dict[str, object] | str]) -> list[str]:
    return [
        str(event["choices"][0]["text"])  # type: ignore[index]
        for event in stream
        if isinstance(event, dict) and event.get("choices")
    ]


# -- the first chunk leaves before generation ends -------------------------------------------


def test_the_first_event_leaves_while_the_engine_is_held(nemo: NeMoServer, gate: Gate) -> None:
    with completions(nemo, stream=True) as response:
        stream = events(response)
        first = next(stream)
        # The engine is held before its 4th token: the first event cannot come from the end.
        assert gate.holding()
        assert texts([first]) == ["Techno"]
        gate.release.set()
        rest = list(stream)
    assert not gate.timed_out and len(gate.steps) == TOKENS
    assert "".join(texts([first, *rest])) == ANSWER
    assert rest[-1] == "[DONE]"


def test_langchain_streams_while_the_engine_is_held(nemo: NeMoServer, gate: Gate) -> None:
    llm = LangChainSteerLM(api="openai", base_url=nemo.base_url + "/v1")
    chunks = llm.stream("Techno?")
    first = next(chunks)
    assert first.content == "Techno" and gate.holding()
    gate.release.set()
    rest = list(chunks)
    assert not gate.timed_out
    assert first.content + "".join(str(c.content) for c in rest) == ANSWER


async def test_langchain_astreams_while_the_engine_is_held(nemo: NeMoServer, gate: Gate) -> None:
    llm = LangChainSteerLM(api="openai", base_url=nemo.base_url + "/v1")
    pieces = []
    async for chunk in llm.astream("Techno?"):
        if not pieces:
            assert gate.holding()
            gate.release.set()
        pieces.append(str(chunk.content))
    assert not gate.timed_out and len(pieces) > 5 and "".join(pieces) == ANSWER


def test_llamaindex_streams_while_the_engine_is_held(nemo: NeMoServer, gate: Gate) -> None:
    llm = LlamaIndexSteerLM(api="openai", base_url=nemo.base_url + "/v1")
    responses = llm.stream_chat([ChatMessage(role=MessageRole.USER, content="Techno?")])
    first = next(responses)
    assert first.delta == "Techno" and gate.holding()
    gate.release.set()
    last = list(responses)[-1]
    assert not gate.timed_out and last.message.content == ANSWER


async def test_llamaindex_astreams_while_the_engine_is_held(nemo: NeMoServer, gate: Gate) -> None:
    llm = LlamaIndexSteerLM(api="openai", base_url=nemo.base_url + "/v1")
    message = [ChatMessage(role=MessageRole.USER, content="Techno?")]
    deltas = []
    async for response in await llm.astream_chat(message):
        if not deltas:
            assert gate.holding()
            gate.release.set()
        deltas.append(response.delta or "")
    assert not gate.timed_out and "".join(deltas) == ANSWER


def test_step_latency_is_paid_per_streamed_step(engine: ScriptedEngine, nemo: NeMoServer) -> None:
    # With step_seconds, each step sleeps before its token: the stream still arrives whole.
    engine.step_seconds = 0.001
    gate = Gate(at=-1)
    engine.step_hook = gate
    engine.script(ANSWER)
    with completions(nemo, stream=True) as response:
        assert "".join(texts(list(events(response)))) == ANSWER
    assert gate.steps == list(range(TOKENS))


# -- the events add up to the non-streamed answer ---------------------------------------------

CASES = [
    ("plain", "Hello, wörld 🌍! The end is near.", ["The end"]),
    ("plain", "a <extra_id_1> b<extra_id_1>", ["<extra_id_1>"]),
    ("plain", "quality quality: done", ["quality:"]),
    ("sp", "Hello, wörld 🌍!\nNext line <extra_id_1>User", ["<extra_id_1>"]),
    ("sp_legacy", "One two <extra_id_1> three", ["<extra_id_1>"]),
    ("hf", "Grüße 🌍 aus Köln\n\nTschüss", ["Köln"]),
    ("hf", "An answer.<|endoftext|>ignored", []),
]


@pytest.mark.parametrize("version", ["1.17", "1.20", "latest"])
@pytest.mark.parametrize(("tokenizer", "text", "stop"), CASES)
def test_the_events_add_up_to_the_answer(
    nemo: NeMoServer,
    engine: ScriptedEngine,
    version: str,
    tokenizer: TokenizerKind,
    text: str,
    stop: list[str],
) -> None:
    nemo.nemo_version = version
    engine.tokenizer = tokenizer
    engine.script(text, text)
    body = {"prompt": "Say it:\n", "stop": stop}
    whole = completions(nemo, **body).json()
    with completions(nemo, stream=True, stream_options={"include_usage": True}, **body) as r:
        stream = list(events(r))
    assert "".join(texts(stream)) == whole["choices"][0]["text"]
    closing = stream[-3]
    assert isinstance(closing, dict)
    assert closing["choices"][0]["finish_reason"] == whole["choices"][0]["finish_reason"]  # type: ignore[index]
    assert stream[-2]["usage"] == whole["usage"]  # type: ignore[index]


def test_a_stop_string_is_never_sent(nemo: NeMoServer, engine: ScriptedEngine) -> None:
    # "quality" could begin "quality:", so it waits; the second time it does.
    engine.script("good quality and quality: 9")
    with completions(nemo, stream=True, stop=["quality:"]) as response:
        stream = list(events(response))
    assert texts(stream) == ["good", " ", "quality ", "and", " ", ""]
    assert stream[-2]["choices"][0]["stop_reason"] == "quality:"  # type: ignore[index]


def test_utf8_pieces_decode_as_the_whole_answer() -> None:
    # The llama.cpp engine decodes each row's bytes incrementally (an incomplete character
    # waits) and the whole sentence at once: both with "replace", to the same text.
    rng = random.Random(13)
    alphabet = [b"a", b" ", "ö".encode(), "🌍".encode(), b"\xf0\x9f", b"\x8c", b"\xff", b"\xc3"]
    for _ in range(2000):
        data = b"".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        cuts = sorted(rng.sample(range(len(data) + 1), min(len(data) + 1, 4)))
        pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        text = "".join(decoder.decode(piece) for piece in pieces) + decoder.decode(b"", True)
        assert text == data.decode(errors="replace"), data


# -- faults and clients that leave ------------------------------------------------------------


def test_a_failure_mid_stream_ends_with_an_error_event(
    nemo: NeMoServer, engine: ScriptedEngine
) -> None:
    engine.step_hook = Gate(at=3, fail=True)
    engine.script(ANSWER)
    with completions(nemo, stream=True) as response:
        assert response.status_code == 200
        stream = list(events(response))
    assert "".join(texts(stream)) == "Techno was"  # sent before the failure, not taken back
    assert stream[-2] == {
        "error": {
            "message": "Internal Server Error",
            "type": "InternalServerError",
            "param": None,
            "code": 500,
        }
    }
    assert stream[-1] == "[DONE]"


def test_a_client_sees_a_failure_mid_stream_as_a_server_error(
    nemo: NeMoServer, engine: ScriptedEngine
) -> None:
    engine.step_hook = Gate(at=3, fail=True)
    engine.script(ANSWER)
    llm = LangChainSteerLM(api="openai", base_url=nemo.base_url + "/v1", max_retries=0)
    with pytest.raises(SteerLMServerError, match="Internal Server Error"):
        list(llm.stream("Techno?"))


def test_a_failure_before_any_text_is_an_http_error(
    nemo: NeMoServer, engine: ScriptedEngine
) -> None:
    engine.step_hook = Gate(at=0, fail=True)
    engine.script(ANSWER)
    with completions(nemo, stream=True) as response:
        assert response.status_code == 500
        assert response.json()["error"]["type"] == "InternalServerError"


def _wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_a_client_that_leaves_stops_the_generation(
    nemo: NeMoServer, engine: ScriptedEngine
) -> None:
    gate = Gate(at=3)
    engine.step_hook = gate
    engine.script(" ".join(["word"] * 500))
    before = nemo.abandoned
    llm = LangChainSteerLM(api="openai", base_url=nemo.base_url + "/v1", max_tokens=1000)
    chunks = llm.stream("Talk.")
    assert next(chunks).content == "word"
    chunks.close()  # what breaking out of a for loop does: the connection closes
    gate.release.set()
    assert _wait_for(lambda: nemo.abandoned == before + 1)
    assert len(gate.steps) < 10  # of 999 steps: the engine stopped, not just the events


def test_generate_answers_as_before_with_a_held_engine(nemo: NeMoServer, gate: Gate) -> None:
    # NeMo's /generate does not stream: the step hook is never reached.
    answer = requests.put(
        f"{nemo.base_url}/generate",
        json={"sentences": ["Techno?"], "tokens_to_generate": 64},
        timeout=10,
    ).json()
    assert answer["sentences"] == ["Techno?" + ANSWER] and gate.steps == []


class _WholeAnswers:
    """An engine that does not stream: it hands over whole answers only."""

    name = "whole"
    context_window = 2048

    def __init__(self) -> None:
        self.scripted = ScriptedEngine()

    def generate(
        self,
        prompts: Sequence[str],
        params: GenerateParams,
        *,
        cancelled: Cancelled | None = None,
        on_token: TokenSink | None = None,  # never called: this engine does not stream
    ) -> list[Generation]:
        return self.scripted.generate(prompts, params, cancelled=cancelled)


def test_an_engine_that_does_not_stream_sends_its_events_at_the_end() -> None:
    engine = _WholeAnswers()
    engine.scripted.script(ANSWER)
    server = NeMoServer(("127.0.0.1", 0), engine)
    serve_in_thread(server)
    try:
        with completions(server, stream=True) as response:
            stream = list(events(response))
    finally:
        server.shutdown()
        server.server_close()
    assert len(texts(stream)) == TOKENS + 1 and "".join(texts(stream)) == ANSWER


# -- the real model -------------------------------------------------------------------------


def _generating(url: str) -> bool:
    return bool(requests.get(f"{url}/health", timeout=10).json()["generating"])


@pytest.mark.integration
def test_the_dev_server_streams_as_the_model_generates(real_server_url: str) -> None:
    # 96 tokens at least (end of turn held back): seconds of generation on the CPU.
    llm = LangChainSteerLM(
        api="openai", base_url=real_server_url + "/v1", max_tokens=128, min_tokens=96
    )
    question = "Tell me about the sea."
    chunks = llm.stream(question)
    first = next(chunks)
    # The server holds its generation lock until the model is done: it is still generating.
    still_generating = _generating(real_server_url)
    rest = list(chunks)
    assert still_generating, "the first chunk came only after the whole answer was generated"
    assert first.content and len(rest) > 10
    assert not _generating(real_server_url)
    streamed = str(first.content) + "".join(str(chunk.content) for chunk in rest)
    assert streamed == llm.invoke(question).content  # greedy: the same answer


@pytest.mark.integration
async def test_llamaindex_astreams_from_the_dev_server(real_server_url: str) -> None:
    llm = LlamaIndexSteerLM(
        api="openai", base_url=real_server_url + "/v1", max_tokens=96, min_tokens=64
    )
    message = [ChatMessage(role=MessageRole.USER, content="Tell me about rivers.")]
    deltas, generating_at_first = [], None
    async for response in await llm.astream_chat(message):
        if generating_at_first is None:
            generating_at_first = _generating(real_server_url)
        deltas.append(response.delta or "")
    assert generating_at_first and len(deltas) > 10 and "".join(deltas).strip()
