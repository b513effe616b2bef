"""Coalescing: concurrent calls to one server with the same options leave as one request.

NeMo serves one generation at a time, behind a global lock, and a request of N prompts
costs about as much GPU time as a request of one (decoding is memory-bound; the batch
shares every step). So many callers that each send one prompt are served one after
another, while the same prompts in one request would finish together. The
:class:`Coalescer` closes that gap without adding latency to an idle server:

- a call that finds nothing in flight on its *lane* (server + wire options) goes out at
  once;
- calls that arrive while a request is in flight wait; when it returns, they leave
  together, as one request of up to ``max_items`` prompts, since they would have waited
  behind the server's lock anyway;
- each caller gets exactly its own results, or its own error: when a merged request fails
  in a way that one caller's prompt could cause, each caller is retried alone.

Sync calls coalesce across threads; async calls coalesce within their event loop. Lanes
are process-wide, so model instances that point at the same server with the same options
share them.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

P = TypeVar("P")
R = TypeVar("R")

#: NeMo's limit of prompts in one request.
MAX_ITEMS = 128


@dataclass(eq=False)
class _Member(Generic[P, R]):
    """One caller's share of a lane: its prompts, then its results or error."""

    items: Sequence[P]
    wake: Any  # threading.Event or asyncio.Event
    results: list[R] | None = None
    error: BaseException | None = None
    alone: bool = False  # the merged request failed; send these items alone
    group: list[_Member[P, R]] = field(default_factory=list)  # set when promoted to leader


@dataclass(eq=False)
class _Lane(Generic[P, R]):
    """A lane with a request in flight (an idle lane has no entry at all)."""

    pending: deque[_Member[P, R]] = field(default_factory=deque)


class Coalescer:
    """Merges concurrent calls of the same lane into one request.

    Args:
        max_items: Most items (prompts) in one merged request.
    """

    def __init__(self, max_items: int = MAX_ITEMS) -> None:
        self.max_items = max_items
        self._lock = threading.Lock()  # guards every lane; never held across I/O
        self._lanes: dict[Hashable, _Lane[Any, Any]] = {}
        self._drains: set[asyncio.Task[None]] = set()  # keeps drain tasks referenced

    def run(
        self,
        key: Hashable,
        items: Sequence[P],
        send: Callable[[Sequence[P]], list[R]],
        isolate: Callable[[BaseException], bool],
    ) -> list[R]:
        """Send ``items`` through ``send``, merged with concurrent calls of lane ``key``.

        Args:
            key: The lane: calls with equal keys may share a request.
            items: This caller's items, at most ``max_items``.
            send: Sends items as one request; returns one result per item, in order.
            isolate: Whether an error of a merged request may come from one caller's items,
                so that each caller should be retried alone.

        Returns:
            One result per item of ``items``.
        """
        member: _Member[P, R] = _Member(items, threading.Event())
        if not self._join(key, member):
            try:
                member.wake.wait()  # the leader's request has a deadline and retries
            except BaseException:  # Ctrl-C, an alarm: leave without stalling the lane
                self._leave(key, member)
                raise
            if not member.group:
                return send(member.items) if member.alone else _result(member)
        # This thread leads a request for its group; when it returns, the next waiter leads.
        try:
            self._lead(member.group, send, isolate)
        finally:
            self._promote(self._next_group(key))
        return send(member.items) if member.alone else _result(member)

    def _leave(self, key: Hashable, member: _Member[Any, Any]) -> None:
        """Take an interrupted waiter out of its lane, handing on a group it was to lead."""
        with self._lock:
            lane = self._lanes.get(key)
            if lane is not None and member in lane.pending:
                lane.pending.remove(member)
                return
            group, member.group = member.group, []
        if group:  # promoted to lead this group, and never sent it
            self._promote(group[1:] or self._next_group(key))

    @staticmethod
    def _promote(group: list[_Member[Any, Any]]) -> None:
        """Wake the first member of ``group`` to send the group's request."""
        if group:
            group[0].group = group
            group[0].wake.set()

    def _lead(
        self,
        group: list[_Member[P, R]],
        send: Callable[[Sequence[P]], list[R]],
        isolate: Callable[[BaseException], bool],
    ) -> None:
        try:
            results = send(_merged(group))
        except BaseException as exc:  # every caller must learn the outcome, even of Ctrl-C
            _fail(group, exc, isolate)
            if not isinstance(exc, Exception):
                raise
            return
        _distribute(group, results)

    async def arun(
        self,
        key: Hashable,
        items: Sequence[P],
        send: Callable[[Sequence[P]], Awaitable[list[R]]],
        isolate: Callable[[BaseException], bool],
    ) -> list[R]:
        """Async :meth:`run`: merges calls within the running event loop.

        Every request is sent by a task of its own, so a caller that is cancelled (also
        the one whose call started the request) only stops waiting: the others still get
        their answers from the same request.
        """
        key = (id(asyncio.get_running_loop()), key)
        member: _Member[P, R] = _Member(items, asyncio.Event())
        if self._join(key, member):
            # One turn of the loop, no timer: tasks already scheduled with this one (as by
            # asyncio.gather) reach the lane and leave in this request instead of the next.
            try:
                await asyncio.sleep(0)
            except BaseException:  # cancelled before sending: the lane goes on without it
                self._start_next(key, send, isolate)
                raise
            joined = self._next_group(key, len(items), idle_if_empty=False)
            self._spawn(key, [member, *joined], send, isolate)
        await member.wake.wait()
        return await send(member.items) if member.alone else _result(member)

    async def _adrain(
        self,
        key: Hashable,
        group: list[_Member[P, R]],
        send: Callable[[Sequence[P]], Awaitable[list[R]]],
        isolate: Callable[[BaseException], bool],
    ) -> None:
        try:
            try:
                results = await send(_merged(group))
            except BaseException as exc:
                _fail(group, exc, isolate)
                if not isinstance(exc, Exception):
                    raise  # the drain itself was cancelled (loop shutdown): each goes alone
            else:
                _distribute(group, results)
        finally:
            self._start_next(key, send, isolate)

    def _start_next(
        self,
        key: Hashable,
        send: Callable[[Sequence[P]], Awaitable[list[R]]],
        isolate: Callable[[BaseException], bool],
    ) -> None:
        """Send the lane's next group from a task of its own, or mark the lane idle."""
        following = self._next_group(key)
        if following:
            self._spawn(key, following, send, isolate)

    def _spawn(
        self,
        key: Hashable,
        group: list[_Member[P, R]],
        send: Callable[[Sequence[P]], Awaitable[list[R]]],
        isolate: Callable[[BaseException], bool],
    ) -> None:
        task = asyncio.get_running_loop().create_task(self._adrain(key, group, send, isolate))
        self._drains.add(task)
        task.add_done_callback(self._drains.discard)

    def in_flight(self) -> int:
        """How many lanes have a request in flight (for tests and diagnostics)."""
        with self._lock:
            return len(self._lanes)

    def waiting(self) -> int:
        """How many items wait in all lanes for the next request (for tests and diagnostics)."""
        with self._lock:
            return sum(len(m.items) for lane in self._lanes.values() for m in lane.pending)

    def _join(self, key: Hashable, member: _Member[Any, Any]) -> bool:
        """Enter the lane: True when the member leads a request now, False when it waits."""
        with self._lock:
            lane = self._lanes.get(key)
            if lane is not None:
                lane.pending.append(member)
                return False
            self._lanes[key] = _Lane()
            member.group = [member]
            return True

    def _next_group(
        self, key: Hashable, count: int = 0, idle_if_empty: bool = True
    ) -> list[_Member[Any, Any]]:
        """Take the next waiters, up to ``max_items`` items with ``count`` taken already.

        With none waiting, the lane is marked idle (unless ``idle_if_empty`` is False).
        """
        with self._lock:
            lane = self._lanes[key]
            if not lane.pending:
                if idle_if_empty:
                    del self._lanes[key]  # idle lanes cost nothing
                return []
            if count + len(lane.pending[0].items) > self.max_items:
                return []
            group = [lane.pending.popleft()]
            count += len(group[0].items)
            while lane.pending and count + len(lane.pending[0].items) <= self.max_items:
                count += len(lane.pending[0].items)
                group.append(lane.pending.popleft())
            group[0].group = group  # under the lock: an interrupted waiter can tell (_leave)
            return group


def _merged(group: list[_Member[P, R]]) -> list[P]:
    return [item for member in group for item in member.items]


def _result(member: _Member[P, R]) -> list[R]:
    if member.error is not None:
        raise member.error
    assert member.results is not None
    return member.results


def _distribute(group: list[_Member[P, R]], results: list[R]) -> None:
    start = 0
    for member in group:
        member.results = results[start : start + len(member.items)]
        start += len(member.items)
        member.wake.set()


def _fail(
    group: list[_Member[Any, Any]], exc: BaseException, isolate: Callable[[BaseException], bool]
) -> None:
    # An error one caller's prompt could cause, or the leader's own interruption, must not
    # fail the others: each of them is then sent alone.
    alone = len(group) > 1 and (not isinstance(exc, Exception) or isolate(exc))
    for member in group:
        if alone:
            member.alone = True
        else:
            member.error = exc
        member.wake.set()
