"""The coalescing logic: who leads, who waits, how results and errors reach each caller.

These tests drive :class:`steerlm.coalesce.Coalescer` with a ``send`` that holds each
request open until the test releases it, so what overlaps is decided, not timed. Over-HTTP
behaviour is in tests/core/test_coalescing_http.py.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from steerlm.coalesce import Coalescer


class Gate:
    """A ``send`` that records each request and blocks it until released."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.requests: list[list[str]] = []
        self.release = threading.Event()
        self.entered = threading.Event()
        self.fail_on = fail_on

    def __call__(self, items: Sequence[str]) -> list[str]:
        self.requests.append(list(items))
        self.entered.set()
        self.release.wait(10)
        if self.fail_on is not None and self.fail_on in items and len(items) > 1:
            raise ValueError(f"bad prompt {self.fail_on}")
        if self.fail_on is not None and list(items) == [self.fail_on]:
            raise ValueError(f"bad prompt {self.fail_on}")
        return [item.upper() for item in items]


def isolate(exc: BaseException) -> bool:
    return isinstance(exc, ValueError)


def run_threads(coalescer: Coalescer, gate: Gate, calls: list[list[str]]) -> list[object]:
    """Start the first call, wait until its request is in flight, then start the rest."""
    results: list[object] = [None] * len(calls)

    def call(index: int) -> None:
        try:
            results[index] = coalescer.run("lane", calls[index], gate, isolate)
        except Exception as exc:
            results[index] = exc

    first = threading.Thread(target=call, args=(0,))
    first.start()
    assert gate.entered.wait(10)
    others = [threading.Thread(target=call, args=(i,)) for i in range(1, len(calls))]
    for thread in others:
        thread.start()
    while coalescer.waiting() < sum(len(c) for c in calls[1:]):
        threading.Event().wait(0.001)
    gate.release.set()
    for thread in [first, *others]:
        thread.join(10)
    return results


def test_an_idle_call_goes_out_at_once_alone() -> None:
    gate = Gate()
    gate.release.set()
    assert Coalescer().run("lane", ["a"], gate, isolate) == ["A"]
    assert gate.requests == [["a"]]


def test_calls_that_wait_leave_together_and_each_gets_its_own_results() -> None:
    coalescer = Coalescer()
    gate = Gate()
    results = run_threads(coalescer, gate, [["a"], ["b"], ["c", "d"], ["e"]])
    assert results == [["A"], ["B"], ["C", "D"], ["E"]]
    assert gate.requests == [["a"], ["b", "c", "d", "e"]]
    assert coalescer.in_flight() == 0


def test_a_merged_request_holds_at_most_max_items() -> None:
    coalescer = Coalescer(max_items=3)
    gate = Gate()
    results = run_threads(coalescer, gate, [["a"], ["b", "c"], ["d"], ["e", "f"]])
    assert results == [["A"], ["B", "C"], ["D"], ["E", "F"]]
    assert gate.requests == [["a"], ["b", "c", "d"], ["e", "f"]]


def test_one_callers_bad_prompt_does_not_fail_the_others() -> None:
    gate = Gate(fail_on="bad")
    results = run_threads(Coalescer(), gate, [["a"], ["b"], ["bad"], ["c"]])
    assert results[:2] == [["A"], ["B"]]
    assert isinstance(results[2], ValueError)
    assert results[3] == ["C"]
    # The merged request failed, then each of its callers was sent alone.
    assert gate.requests[1] == ["b", "bad", "c"]
    assert sorted(map(tuple, gate.requests[2:])) == [("b",), ("bad",), ("c",)]


def test_an_error_that_is_not_the_prompts_fault_reaches_every_caller() -> None:
    def send(items: Sequence[str]) -> list[str]:
        raise ConnectionError("server gone")

    with pytest.raises(ConnectionError):
        Coalescer().run("lane", ["a"], send, isolate)


def test_different_lanes_are_never_merged() -> None:
    coalescer = Coalescer()
    gate = Gate()
    gate.release.set()
    assert coalescer.run("one", ["a"], gate, isolate) == ["A"]
    assert coalescer.run("two", ["b"], gate, isolate) == ["B"]
    assert gate.requests == [["a"], ["b"]]


async def test_async_calls_coalesce_within_their_loop() -> None:
    coalescer = Coalescer()
    requests: list[list[str]] = []
    first_in_flight = asyncio.Event()
    release = asyncio.Event()

    async def send(items: Sequence[str]) -> list[str]:
        requests.append(list(items))
        first_in_flight.set()
        await release.wait()
        return [item.upper() for item in items]

    first = asyncio.create_task(coalescer.arun("lane", ["a"], send, isolate))
    await first_in_flight.wait()
    rest = [asyncio.create_task(coalescer.arun("lane", [x], send, isolate)) for x in "bcd"]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(first, *rest) == [["A"], ["B"], ["C"], ["D"]]
    assert requests == [["a"], ["b", "c", "d"]]


async def test_a_cancelled_waiter_does_not_stall_the_lane() -> None:
    coalescer = Coalescer()
    release = asyncio.Event()
    in_flight = asyncio.Event()

    async def send(items: Sequence[str]) -> list[str]:
        in_flight.set()
        await release.wait()
        return [item.upper() for item in items]

    first = asyncio.create_task(coalescer.arun("lane", ["a"], send, isolate))
    await in_flight.wait()
    doomed = asyncio.create_task(coalescer.arun("lane", ["b"], send, isolate))
    survivor = asyncio.create_task(coalescer.arun("lane", ["c"], send, isolate))
    await asyncio.sleep(0)
    doomed.cancel()
    release.set()
    assert await first == ["A"]
    assert await survivor == ["C"]
    assert doomed.cancelled()
    later = await coalescer.arun("lane", ["z"], send, isolate)
    assert later == ["Z"]


async def test_tasks_started_together_leave_in_one_request() -> None:
    # asyncio.gather schedules every task in the same turn of the loop: the first one to
    # reach the idle lane lets the others join before it sends, without any timer.
    coalescer = Coalescer()
    requests: list[list[str]] = []

    async def send(items: Sequence[str]) -> list[str]:
        requests.append(list(items))
        await asyncio.sleep(0)
        return [item.upper() for item in items]

    answers = await asyncio.gather(*(coalescer.arun("lane", [x], send, isolate) for x in "abcd"))
    assert answers == [["A"], ["B"], ["C"], ["D"]]
    assert requests == [["a", "b", "c", "d"]]


async def test_a_leader_cancelled_before_sending_leaves_the_lane_working() -> None:
    coalescer = Coalescer()

    async def send(items: Sequence[str]) -> list[str]:
        return [item.upper() for item in items]

    leader = asyncio.create_task(coalescer.arun("lane", ["a"], send, isolate))
    await asyncio.sleep(0)  # the leader is now in its one turn of waiting for joiners
    follower = asyncio.create_task(coalescer.arun("lane", ["b"], send, isolate))
    leader.cancel()
    assert await follower == ["B"]
    assert leader.cancelled()
    assert coalescer.in_flight() == 0


class Interrupted(Exception):
    """What a signal handler raises into a waiting call (as Ctrl-C or an alarm would)."""


def test_a_waiter_interrupted_while_waiting_does_not_stall_the_lane() -> None:
    import signal

    coalescer = Coalescer()
    gate = Gate()
    leader = threading.Thread(target=lambda: coalescer.run("lane", ["a"], gate, isolate))
    leader.start()
    assert gate.entered.wait(10)

    def interrupt(signum: int, frame: object) -> None:
        raise Interrupted

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        with pytest.raises(Interrupted):
            coalescer.run("lane", ["b"], gate, isolate)  # waits behind "a", then interrupted
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    gate.release.set()
    leader.join(10)
    later: list[object] = []
    caller = threading.Thread(
        target=lambda: later.append(coalescer.run("lane", ["c"], gate, isolate))
    )
    caller.start()
    caller.join(10)
    assert later == [["C"]]
    assert gate.requests == [["a"], ["c"]]  # the interrupted "b" was never sent
    assert coalescer.in_flight() == 0


async def test_cancelling_the_caller_that_started_a_request_costs_the_others_nothing() -> None:
    coalescer = Coalescer()
    requests: list[list[str]] = []
    release = asyncio.Event()

    async def send(items: Sequence[str]) -> list[str]:
        requests.append(list(items))
        await release.wait()
        return [item.upper() for item in items]

    tasks = [asyncio.create_task(coalescer.arun("lane", [x], send, isolate)) for x in "abcde"]
    while not requests:
        await asyncio.sleep(0)
    tasks[0].cancel()  # e.g. asyncio.wait_for gave up on the first caller
    release.set()
    assert await asyncio.gather(*tasks[1:]) == [["B"], ["C"], ["D"], ["E"]]
    assert tasks[0].cancelled()
    assert requests == [["a", "b", "c", "d", "e"]]  # one request, not one per caller
