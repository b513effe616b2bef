"""B1 and B2: many callers sharing one NeMo-like server, and batch() against invoke().

The server is the dev server's scripted engine in a child process with a batch-aware
latency model (``--step-ms``): a request costs ``step`` per generated token of its longest
row, whatever its number of rows, as a batch on a GPU does. NeMo's global lock is there
too: one request at a time.

- B1 concurrency: 64 concurrent ``invoke`` callers (threads), and 64 concurrent
  ``ainvoke`` tasks, against 64 sequential calls; each caller's p50/p95 latency with
  coalescing on and off.
- B2 batch: ``batch()`` of 64 against 64 sequential ``invoke``.

Ratios from one run; nothing here asserts a time.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from langchain_steerlm import SteerLMChat
from steerlm.server.process import dev_server

CALLERS = 64
STEP_MS = 5.0
# 100 tokens of the scripted engine's plain tokenizer (words, spaces, punctuation): a short
# answer, half a second per request at 5 ms a step, as on a GPU.
ANSWER = " ".join(["word"] * 49) + " end."


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def percentiles(latencies: list[float]) -> str:
    cuts = statistics.quantiles(latencies, n=20)
    return f"p50 {statistics.median(latencies) * 1e3:.0f} ms, p95 {cuts[18] * 1e3:.0f} ms"


def threads(llm: SteerLMChat) -> tuple[float, list[float]]:
    """Wall time of 64 concurrent invoke calls, and each caller's latency."""
    latencies: list[float] = [0.0] * CALLERS

    def call(index: int) -> None:
        latencies[index] = timed(lambda: llm.invoke(f"Question number {index}?"))

    with ThreadPoolExecutor(CALLERS) as pool:
        wall = timed(lambda: list(pool.map(call, range(CALLERS))))
    return wall, latencies


def tasks(llm: SteerLMChat) -> tuple[float, list[float]]:
    """Wall time of 64 concurrent ainvoke tasks, and each task's latency.

    One event loop, warmed up first, as in a long-lived async app (a loop's first call
    opens its connection).
    """

    async def call(index: int) -> float:
        started = time.perf_counter()
        await llm.ainvoke(f"Question number {index}?")
        return time.perf_counter() - started

    async def run() -> tuple[float, list[float]]:
        try:
            await llm.ainvoke("warm up")
            started = time.perf_counter()
            latencies = list(await asyncio.gather(*(call(i) for i in range(CALLERS))))
            return time.perf_counter() - started, latencies
        finally:
            await llm.aclose()

    return asyncio.run(run())


def main() -> None:
    args = ("--engine", "scripted", "--step-ms", str(STEP_MS), "--answer", ANSWER)
    with dev_server(*args, "--log-level", "WARNING") as server:
        on = SteerLMChat(base_url=server.url)
        off = SteerLMChat(base_url=server.url, coalesce=False)
        on.invoke("warm up")
        sequential = timed(lambda: [on.invoke(f"Question number {i}?") for i in range(CALLERS)])
        print(
            f"server: scripted engine, {STEP_MS:g} ms per decoding step, 100-token answers, "
            f"one request at a time"
        )
        print(f"64 sequential invoke: {sequential:.2f} s")
        for name, run in (("threads (invoke)", threads), ("tasks (ainvoke)", tasks)):
            wall_on, lat_on = run(on)
            wall_off, lat_off = run(off)
            print(
                f"B1 {CALLERS} concurrent {name}: coalesced {wall_on:.2f} s "
                f"({sequential / wall_on:.1f}x sequential; {percentiles(lat_on)}), "
                f"not coalesced {wall_off:.2f} s ({sequential / wall_off:.1f}x; "
                f"{percentiles(lat_off)})"
            )
        questions = [f"Question number {i}?" for i in range(CALLERS)]
        batched = timed(lambda: on.batch(questions))
        print(
            f"B2 batch() of {CALLERS}: {batched:.2f} s, {sequential / batched:.1f}x faster than "
            f"{CALLERS} sequential invoke"
        )


if __name__ == "__main__":
    main()
