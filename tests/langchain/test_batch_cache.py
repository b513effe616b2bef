"""batch()/abatch(): one request for what is not cached, rate-limited for what is sent."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from langchain_core.caches import InMemoryCache
from langchain_core.globals import set_llm_cache
from langchain_core.rate_limiters import BaseRateLimiter

from langchain_steerlm import SteerLMChat
from steerlm.server.app import NeMoServer
from steerlm.server.scripted_engine import ScriptedEngine


class CountingRateLimiter(BaseRateLimiter):
    """Lets every request through and counts how many were asked for."""

    def __init__(self) -> None:
        self.acquired = 0

    def acquire(self, *, blocking: bool = True) -> bool:
        self.acquired += 1
        return True

    async def aacquire(self, *, blocking: bool = True) -> bool:
        self.acquired += 1
        return True


@pytest.fixture
def global_cache() -> Iterator[InMemoryCache]:
    cache = InMemoryCache()
    set_llm_cache(cache)
    yield cache
    set_llm_cache(None)


@pytest.fixture
def echo(engine: ScriptedEngine) -> ScriptedEngine:
    engine.responder = lambda prompt: "answer to " + prompt.split("User\n")[-1].split("\n")[0]
    return engine


def sent_prompts(nemo: NeMoServer) -> list[int]:
    return [len(body["sentences"]) for body in nemo.received]


def test_batch_sends_only_the_prompts_the_global_cache_misses(
    nemo: NeMoServer, echo: ScriptedEngine, global_cache: InMemoryCache
) -> None:
    llm = SteerLMChat(base_url=nemo.base_url)
    assert llm.invoke("question one").content == "answer to question one"
    answers = llm.batch(["question one", "question two", "question three"])
    assert [a.content for a in answers] == [
        f"answer to question {n}" for n in ("one", "two", "three")
    ]
    assert sent_prompts(nemo) == [1, 2]
    # Every answer is cached now: an identical batch sends nothing.
    assert [a.content for a in llm.batch(["question two", "question three"])] == [
        "answer to question two",
        "answer to question three",
    ]
    assert sent_prompts(nemo) == [1, 2]


async def test_abatch_sends_only_the_prompts_the_instance_cache_misses(
    nemo: NeMoServer, echo: ScriptedEngine
) -> None:
    llm = SteerLMChat(base_url=nemo.base_url, cache=InMemoryCache())
    await llm.ainvoke("question one")
    answers = await llm.abatch(["question one", "question two", "question three"])
    assert [a.content for a in answers] == [
        f"answer to question {n}" for n in ("one", "two", "three")
    ]
    assert sent_prompts(nemo) == [1, 2]
    await llm.abatch(["question two", "question three"])
    assert sent_prompts(nemo) == [1, 2]
    await llm.aclose()


def test_cache_false_sends_everything(
    nemo: NeMoServer, echo: ScriptedEngine, global_cache: InMemoryCache
) -> None:
    llm = SteerLMChat(base_url=nemo.base_url, cache=False)
    llm.batch(["question one", "question two"])
    llm.batch(["question one", "question two"])
    assert sent_prompts(nemo) == [2, 2]


def test_the_rate_limiter_counts_requests_sent_not_inputs(
    nemo: NeMoServer, echo: ScriptedEngine, global_cache: InMemoryCache
) -> None:
    limiter = CountingRateLimiter()
    llm = SteerLMChat(base_url=nemo.base_url, rate_limiter=limiter)
    llm.batch([f"question {n}" for n in range(5)])
    assert (limiter.acquired, sent_prompts(nemo)) == (1, [5])
    llm.batch([f"question {n}" for n in range(5)])  # all cached: nothing sent, nothing acquired
    assert (limiter.acquired, sent_prompts(nemo)) == (1, [5])


async def test_the_rate_limiter_counts_requests_sent_async(
    nemo: NeMoServer, echo: ScriptedEngine
) -> None:
    limiter = CountingRateLimiter()
    llm = SteerLMChat(base_url=nemo.base_url, rate_limiter=limiter)
    await llm.abatch([f"question {n}" for n in range(130)])
    assert (limiter.acquired, sent_prompts(nemo)) == (2, [128, 2])
    await llm.aclose()
