"""Coalescing over real HTTP: many callers, few requests, each caller its own answer.

The scripted engine is given a step latency so that requests overlap as they do on a
NeMo server; which calls merge is then decided by the server's pace, so the tests assert
what must hold whatever the merge (own answers, uniform options, fewer requests).
"""

from __future__ import annotations

import asyncio
import re
from concurrent.futures import ThreadPoolExecutor

import pytest

from langchain_steerlm import SteerLMChat
from steerlm import SteerLMInputError, SteerLMServerError
from steerlm.server.app import NeMoServer
from steerlm.server.protocol import Rejection, RejectionError
from steerlm.server.scripted_engine import ScriptedEngine

CALLERS = 64
STEP = 0.002  # seconds per decoding step: a request of 5 tokens takes about 10 ms


def echo_question(prompt: str) -> str:
    """Answer with the last user question, so each caller can check it got its own."""
    question = re.findall(r"<extra_id_1>User\n(.*?)\n<extra_id_1>", prompt, re.S)[-1]
    if "BAD" in question:
        # What NeMo answers to a prompt it cannot take (HTTP 200, a JSON string).
        raise RejectionError(Rejection(200, f"prompt is too long: {question}"))
    return f"answer to {question}"


@pytest.fixture
def slow_engine(engine: ScriptedEngine) -> ScriptedEngine:
    engine.responder = echo_question
    engine.step_seconds = STEP
    return engine


def test_concurrent_threads_each_get_their_own_answer_from_few_requests(
    nemo: NeMoServer, slow_engine: ScriptedEngine
) -> None:
    llm = SteerLMChat(base_url=nemo.base_url)
    questions = [f"question {i}" for i in range(CALLERS)]
    with ThreadPoolExecutor(CALLERS) as pool:
        answers = list(pool.map(lambda q: llm.invoke(q).content, questions))
    assert answers == [f"answer to {q}" for q in questions]
    assert len(nemo.received) < CALLERS / 4
    assert sum(len(body["sentences"]) for body in nemo.received) == CALLERS


def test_model_instances_pointing_at_one_server_share_requests(
    nemo: NeMoServer, slow_engine: ScriptedEngine
) -> None:
    questions = [f"question {i}" for i in range(CALLERS)]

    def ask(question: str) -> str:  # an app that builds a model per request
        return str(SteerLMChat(base_url=nemo.base_url).invoke(question).content)

    with ThreadPoolExecutor(CALLERS) as pool:
        answers = list(pool.map(ask, questions))
    assert answers == [f"answer to {q}" for q in questions]
    assert len(nemo.received) < CALLERS / 4


async def test_concurrent_tasks_each_get_their_own_answer_from_few_requests(
    nemo: NeMoServer, slow_engine: ScriptedEngine
) -> None:
    llm = SteerLMChat(base_url=nemo.base_url)
    questions = [f"question {i}" for i in range(CALLERS)]
    answers = await asyncio.gather(*(llm.ainvoke(q) for q in questions))
    assert [a.content for a in answers] == [f"answer to {q}" for q in questions]
    assert len(nemo.received) < CALLERS / 4
    await llm.aclose()


def test_calls_with_different_options_are_never_merged(
    nemo: NeMoServer, slow_engine: ScriptedEngine
) -> None:
    llm = SteerLMChat(base_url=nemo.base_url)
    calls = [(i, 20 + i % 3, {"humor": i % 2}) for i in range(48)]
    with ThreadPoolExecutor(48) as pool:
        answers = list(
            pool.map(
                lambda c: llm.invoke(f"question {c[0]}", max_tokens=c[1], attributes=c[2]).content,
                calls,
            )
        )
    assert answers == [f"answer to question {i}" for i, _, _ in calls]
    for body in nemo.received:
        # Each prompt went out with its own caller's options (attributes are in the prompt,
        # so callers with different attributes but equal options may share a request).
        for sentence in body["sentences"]:
            number = int(re.findall(r"question (\d+)", sentence)[-1])
            assert body["tokens_to_generate"] == 20 + number % 3
    assert len({b["tokens_to_generate"] for b in nemo.received}) == 3
    assert len(nemo.received) < 48


def test_one_callers_bad_prompt_does_not_fail_the_others(
    nemo: NeMoServer, slow_engine: ScriptedEngine
) -> None:
    llm = SteerLMChat(base_url=nemo.base_url, max_retries=0)
    questions = [f"question {i}" for i in range(24)]
    questions[7] = "question BAD"

    def ask(question: str) -> object:
        try:
            return llm.invoke(question).content
        except SteerLMServerError as exc:
            return exc

    with ThreadPoolExecutor(24) as pool:
        answers = list(pool.map(ask, questions))
    for question, answer in zip(questions, answers, strict=True):
        if "BAD" in question:
            assert isinstance(answer, SteerLMServerError)
            assert "too long" in str(answer)
        else:
            assert answer == f"answer to {question}"


def test_an_idle_single_call_goes_out_at_once_as_its_own_request(
    nemo: NeMoServer, slow_engine: ScriptedEngine
) -> None:
    llm = SteerLMChat(base_url=nemo.base_url)
    assert llm.invoke("question one").content == "answer to question one"
    assert [body["sentences"] for body in nemo.received] == [[nemo.received[0]["sentences"][0]]]


def test_coalescing_off_sends_one_request_per_call(
    nemo: NeMoServer, slow_engine: ScriptedEngine
) -> None:
    llm = SteerLMChat(base_url=nemo.base_url, coalesce=False)
    questions = [f"question {i}" for i in range(16)]
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda q: llm.invoke(q).content, questions))
    assert answers == [f"answer to {q}" for q in questions]
    assert len(nemo.received) == 16


def test_coalesce_must_be_a_bool() -> None:
    with pytest.raises(SteerLMInputError):
        SteerLMChat(coalesce="sometimes")


class ConnectionCountingServer(NeMoServer):
    """Records the client address of every TCP connection it accepts."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), ScriptedEngine(step_seconds=STEP))
        self.connections: set[tuple[str, int]] = set()

    def process_request(self, request: object, client_address: tuple[str, int]) -> None:  # type: ignore[override]
        self.connections.add(client_address)
        super().process_request(request, client_address)  # type: ignore[arg-type]


def test_the_pool_keeps_a_connection_per_concurrent_caller() -> None:
    from steerlm.server.app import serve_in_thread

    server = ConnectionCountingServer()
    serve_in_thread(server)
    try:
        llm = SteerLMChat(base_url=server.base_url, coalesce=False)
        with ThreadPoolExecutor(32) as pool:
            for _ in range(3):
                list(pool.map(lambda i: llm.invoke(f"question {i}"), range(32)))
        # urllib3's default pool of 10 would discard and reopen connections every round.
        assert len(server.connections) <= 32
        llm.close()
    finally:
        server.shutdown()
        server.server_close()


def test_seeded_calls_are_never_merged(nemo: NeMoServer, slow_engine: ScriptedEngine) -> None:
    # Merged with others, a seeded sample would depend on who shared its request.
    llm = SteerLMChat(base_url=nemo.base_url, temperature=0.7, random_seed=7)
    questions = [f"question {i}" for i in range(12)]
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda q: llm.invoke(q).content, questions))
    assert answers == [f"answer to {q}" for q in questions]
    assert [len(body["sentences"]) for body in nemo.received] == [1] * 12
