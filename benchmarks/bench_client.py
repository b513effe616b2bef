"""Benchmarks: batching, client overhead, and the dev server on the real model.

Run with ``make bench``. Prints ratios measured in one run; the machines are shared and
noisy, so nothing here asserts a time. Servers run in child processes on loopback.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from langchain_steerlm import SteerLMChat
from steerlm import SteerLMSettings, Turn
from steerlm.server.process import dev_server


def best_of(runs: int, action: Callable[[], object]) -> float:
    """Fastest of ``runs`` timings of ``action``, in seconds."""
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        timings.append(time.perf_counter() - started)
    return min(timings)


def bench_batching(url: str, count: int = 64) -> None:
    llm = SteerLMChat(base_url=url)
    questions = [f"Question number {i}?" for i in range(count)]
    llm.invoke("warm up")
    one_request = best_of(5, lambda: llm.batch(questions))
    sequential = best_of(5, lambda: [llm.invoke(q) for q in questions])
    print(
        f"batch of {count} (scripted engine): one request {one_request * 1e3:.1f} ms, "
        f"{count} requests {sequential * 1e3:.1f} ms -> {sequential / one_request:.1f}x faster"
    )


def bench_core_overhead(url: str) -> None:
    settings = SteerLMSettings(base_url=url)
    turns = (
        [Turn("system", "Be brief.")]
        + [Turn(role, f"message {i} " * 20) for i in range(10) for role in ("user", "assistant")]
        + [Turn("user", "Last question?")]
    )
    plan = settings.plan_call([turns], {"attributes": {"humor": 3}})
    settings.send(plan)
    planning = best_of(2000, lambda: settings.plan_call([turns], {"attributes": {"humor": 3}}))
    round_trip = best_of(50, lambda: settings.send(plan))
    print(
        f"core planning of a 21-turn conversation: {planning * 1e6:.0f} us; "
        f"HTTP round trip to the scripted server: {round_trip * 1e3:.2f} ms "
        f"-> planning is {planning / round_trip:.1%} of a round trip"
    )


def bench_real_model(url: str) -> None:
    llm = SteerLMChat(base_url=url, max_tokens=32)
    questions = ["Write one sentence about the sea.", "Write one sentence about apples."] * 2
    llm.invoke(questions[0])
    started = time.perf_counter()
    answers = llm.batch(questions)
    elapsed = time.perf_counter() - started
    tokens = sum((a.usage_metadata or {}).get("output_tokens", 0) for a in answers)
    print(
        f"real model (SmolLM2-135M, CPU): {len(questions)} prompts, {tokens} tokens in "
        f"{elapsed:.2f} s -> {tokens / elapsed:.0f} tokens/s"
    )


def main() -> None:
    with dev_server("--engine", "scripted", "--log-level", "WARNING") as server:
        bench_batching(server.url)
        bench_core_overhead(server.url)
    with dev_server("--log-level", "WARNING") as server:
        bench_real_model(server.url)


if __name__ == "__main__":
    main()
