"""Baseline schedulers: faithful models of what agent frameworks do today.

They answer the same events with the same effects as the kernel, so the simulator
drives them exactly as it drives agentrm, but they live here, outside the kernel, and
keep mutable state (they are not part of the verified core).

* ``fifo`` -- a pool of lanes taken in arrival order; a task keeps its lane until it
  ends; every task has a 5-minute timeout from its start (``asyncio.wait_for`` around
  the run, the OpenClaw lane pattern); agents retry 429s on their own with exponential
  backoff and jitter while holding their lane (tenacity's pattern).
* ``rr`` -- the same lanes and retries, but a task that has used a time slice yields
  its lane at the next step boundary when others wait (AIOS-style round robin).
* ``priority`` -- static class priorities (interactive, batch, background), FIFO within
  a class, a lower class yielding at a step boundary to a waiting higher one; no
  feedback, no aging, no reaping and no timeout.

None of them has a provider gate, lane reservations, a queue bound or zombie reaping:
those are what agentrm adds.
"""

from __future__ import annotations

import heapq
from typing import Final

from agentrm.kernel.scheduler.config import SchedulerConfig, TaskClass
from agentrm.kernel.scheduler.effects import (
    CancelReason,
    CancelTask,
    SchedulerEffect,
    StartTask,
    WakeAt,
    YieldTask,
)
from agentrm.kernel.scheduler.events import (
    ClockAdvanced,
    Heartbeat,
    RateLimited,
    SchedulerEvent,
    StepFinished,
    Submit,
    TaskFailed,
    TaskFinished,
)

TIMEOUT_MS: Final = 300_000
"""The per-task timeout of the fifo and rr baselines: five minutes, a common framework default."""
RR_SLICE_MS: Final = 2_000
"""The rr time slice: the same as agentrm's top-level allotment, so only feedback differs."""
_RANK: Final = {TaskClass.INTERACTIVE: 0, TaskClass.BATCH: 1, TaskClass.BACKGROUND: 2}


class LanePolicy:
    """A lane pool with a fixed ordering rule; see the module docstring for the variants.

    ``by_class`` orders the queue by class first; ``slice_ms`` (rr) makes a task that
    used a slice yield when others wait; ``preempt`` (priority) yields to a strictly
    higher class; ``timeout_ms`` cancels a task that long after its first start (0: never).
    """

    agents_retry = True
    wants_heartbeats = False

    def __init__(self, name: str, lanes: int, *, by_class: bool = False, slice_ms: int = 0,
                 preempt: bool = False, timeout_ms: int = 0) -> None:
        self.name = name
        self.by_class = by_class
        self.slice_ms = slice_ms
        self.preempt = preempt
        self.timeout_ms = timeout_ms
        self.free: list[int] = list(range(lanes))  # a heap: lowest lane first
        self.queue: list[tuple[int, int, str]] = []  # (rank, enqueue seq, task id)
        self.enqueue_seq = 0
        self.classes: dict[str, TaskClass] = {}
        self.running: dict[str, tuple[int, int]] = {}  # task id -> (lane, slice start)
        self.started: dict[str, int] = {}  # task id -> first start, for the timeout
        self.deadlines: list[tuple[int, str]] = []
        self.ended: set[str] = set()
        self.last_wake: int | None = None
        self.now = 0

    def _rank(self, task_id: str) -> int:
        return _RANK[self.classes[task_id]] if self.by_class else 0

    def _enqueue(self, task_id: str) -> None:
        heapq.heappush(self.queue, (self._rank(task_id), self.enqueue_seq, task_id))
        self.enqueue_seq += 1

    def _free(self, task_id: str) -> None:
        lane, _ = self.running.pop(task_id)
        heapq.heappush(self.free, lane)

    def _end(self, task_id: str) -> None:
        self.ended.add(task_id)
        if task_id in self.running:
            self._free(task_id)

    def step(self, event: SchedulerEvent) -> tuple[SchedulerEffect, ...]:
        """Handle one event: timeouts, the event, dispatch, wake-up."""
        self.now = max(self.now, event.at_ms)
        out: list[SchedulerEffect] = self._timeouts()
        if isinstance(event, Submit):
            if event.task_id not in self.classes:
                self.classes[event.task_id] = event.task_class
                self._enqueue(event.task_id)
        elif isinstance(event, StepFinished):
            if event.task_id in self.running and self._should_yield(event.task_id):
                self._free(event.task_id)
                self._enqueue(event.task_id)
                out.append(YieldTask(event.task_id))
        elif isinstance(event, (TaskFinished, TaskFailed)):
            if event.task_id in self.classes and event.task_id not in self.ended:
                self._end(event.task_id)
                # A failed task may still be queued (never started): drop it lazily at dispatch.
        elif isinstance(event, (Heartbeat, RateLimited, ClockAdvanced)):
            pass  # no liveness tracking; 429s are the agents' business
        out += self._dispatch()
        out += self._wake()
        return tuple(out)

    def _should_yield(self, task_id: str) -> bool:
        if not self.queue:
            return False
        head_rank = self.queue[0][0]
        if self.preempt and head_rank < self._rank(task_id):
            return True
        if self.slice_ms:
            _, start = self.running[task_id]
            return self.now - start >= self.slice_ms
        return False

    def _dispatch(self) -> list[SchedulerEffect]:
        out: list[SchedulerEffect] = []
        while self.queue and self.free:
            _, _, task_id = heapq.heappop(self.queue)
            if task_id in self.ended:
                continue
            lane = heapq.heappop(self.free)
            self.running[task_id] = (lane, self.now)
            if task_id not in self.started:
                self.started[task_id] = self.now
                if self.timeout_ms:
                    heapq.heappush(self.deadlines, (self.now + self.timeout_ms, task_id))
            out.append(StartTask(task_id, lane, self._rank(task_id)))
        return out

    def _timeouts(self) -> list[SchedulerEffect]:
        out: list[SchedulerEffect] = []
        while self.deadlines and self.deadlines[0][0] <= self.now:
            _, task_id = heapq.heappop(self.deadlines)
            if task_id not in self.ended:
                self._end(task_id)
                out.append(CancelTask(task_id, CancelReason.RUN_LIMIT))
        return out

    def _wake(self) -> list[SchedulerEffect]:
        while self.deadlines and self.deadlines[0][1] in self.ended:
            heapq.heappop(self.deadlines)
        nxt = self.deadlines[0][0] if self.deadlines else None
        if nxt is None or nxt == self.last_wake:
            return []
        self.last_wake = nxt
        return [WakeAt(nxt)]


def fifo(config: SchedulerConfig) -> LanePolicy:
    """Lanes in arrival order, 5-minute timeout, agents retrying 429s themselves."""
    return LanePolicy("fifo", config.lanes, timeout_ms=TIMEOUT_MS)


def rr(config: SchedulerConfig) -> LanePolicy:
    """Round-robin time slices over the same lanes (AIOS-style), same timeout and retries."""
    return LanePolicy("rr", config.lanes, slice_ms=RR_SLICE_MS, timeout_ms=TIMEOUT_MS)


def priority(config: SchedulerConfig) -> LanePolicy:
    """Static class priorities, yielding to a higher class at step boundaries; no reaping."""
    return LanePolicy("priority", config.lanes, by_class=True, preempt=True)


BASELINES: Final = {"fifo": fifo, "rr": rr, "priority": priority}
"""Every baseline by name."""
