"""A deterministic discrete-event simulation that drives a scheduling policy with a workload.

The simulator is the shell around a policy, exactly like the asyncio runtime, except
that time is virtual: a heap of ``(time, seq, ...)`` items (``seq`` is a counter, so
the order is total and never depends on hashing) replaces the clock. It plays three
parts, none of which decides anything about priorities:

* **the agents** -- on ``StartTask`` an agent calls the provider for its next step;
  the step takes its ``duration_ms``, with a heartbeat every ``heartbeat_ms``; then
  it reports ``StepFinished`` (or ``TaskFinished`` after its last step). Faults are
  played as written in the workload: a hung agent stops at its step and is never
  heard from again, a crashing one reports ``TaskFailed``, a silently finishing one
  completes its step and never reports;
* **the provider** -- per-minute request and token buckets of its own (the
  workload's :class:`~.workload.ProviderModel`), answering 429 with Retry-After when a
  call cannot be paid for, and to every call during a storm;
* **the clock** -- the policy's ``WakeAt`` becomes a ``ClockAdvanced`` at that time,
  unless another input reached the policy at or after it first.

A policy is anything with :class:`Policy`'s shape: the kernel (``mlfq``, wrapped by
:class:`ReducerPolicy`) or a baseline from :mod:`.baselines`. With the kernel, an agent
that gets a 429 reports ``RateLimited`` and gives its lane back; under a baseline,
agents retry 429s on their own while holding their lane (what frameworks do today).

The simulator records ground truth the policy cannot see (which agents are hung, when a
lane is held without progress) in a :class:`SimResult`; :mod:`.metrics` turns it into
numbers.
"""

from __future__ import annotations

import enum
import heapq
import random
from collections.abc import Callable
from typing import IO, Any, Final, Generic, Protocol, TypeVar

import attrs

from agentrm.kernel.scheduler.config import SchedulerConfig, TaskClass
from agentrm.kernel.scheduler.effects import (
    CancelReason,
    CancelTask,
    Refusal,
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

from .eventlog import EventLogWriter
from .workload import Fault, ProviderModel, TaskSpec, Workload

SCALE: Final = 60_000
"""Bucket units per request or token: per-ms refill of a per-minute rate is then exact."""

MAX_RETRY_ATTEMPTS: Final = 6
"""A self-retrying agent gives up after this many 429s in a row (tenacity's common
``stop_after_attempt(6)``), and its task fails."""
BACKOFF_BASE_MS: Final = 1_000
BACKOFF_CAP_MS: Final = 60_000
"""Exponential backoff 1 s, 2 s, 4 s ... capped at 60 s (tenacity ``wait_random_exponential``
defaults to max=60 s)."""


class SimulationError(RuntimeError):
    """The policy asked for something impossible (e.g. starting a task that is not waiting)."""


class Policy(Protocol):
    """What the simulator drives: a reducer of scheduler events into effects.

    ``agents_retry`` is True when agents handle 429s themselves (baselines) rather than
    reporting ``RateLimited`` to the scheduler; ``wants_heartbeats`` is False when the
    policy ignores heartbeats (the simulator then saves itself the events).
    """

    name: str
    agents_retry: bool
    wants_heartbeats: bool

    def step(self, event: SchedulerEvent) -> tuple[SchedulerEffect, ...]:
        """Apply one event; return the effects to perform, in order."""
        ...


S = TypeVar("S")


class ReducerPolicy(Generic[S]):
    """A pure reducer ``(state, event) -> (state, effects)`` as a :class:`Policy`.

    Wraps the kernel (see :func:`kernel_policy`) or the reference model; every step is
    written to ``log`` when one is given, and ``on_step(before, event, after, effects)``
    lets a caller check invariants as the run goes.
    """

    agents_retry = False
    wants_heartbeats = True

    def __init__(self, name: str, state: S, reducer: Callable[[S, SchedulerEvent], tuple[S, tuple[SchedulerEffect, ...]]],
                 log: EventLogWriter | None = None,
                 on_step: Callable[[S, SchedulerEvent, S, tuple[SchedulerEffect, ...]], None] | None = None) -> None:
        self.name = name
        self.state = state
        self._reducer = reducer
        self._log = log
        self._on_step = on_step

    def step(self, event: SchedulerEvent) -> tuple[SchedulerEffect, ...]:
        """Fold one event into the state; log it; return its effects."""
        before = self.state
        self.state, effects = self._reducer(before, event)
        if self._log is not None:
            self._log.write(event, effects)
        if self._on_step is not None:
            self._on_step(before, event, self.state, effects)
        return effects


def kernel_reducer() -> tuple[Callable[[SchedulerConfig], Any], Callable[[Any, SchedulerEvent], tuple[Any, tuple[SchedulerEffect, ...]]]]:
    """The kernel's ``initial`` and ``step`` as a plain ``(state, effects)`` reducer."""
    from agentrm.kernel import SchedulerState, step

    def reduce(state: Any, event: SchedulerEvent) -> tuple[Any, tuple[SchedulerEffect, ...]]:
        result = step(state, event)
        return result.state, result.effects

    return SchedulerState.initial, reduce


def kernel_policy(config: SchedulerConfig, log: IO[str] | None = None,
                  on_step: Callable[[Any, SchedulerEvent, Any, tuple[SchedulerEffect, ...]], None] | None = None,
                  ) -> ReducerPolicy[Any]:
    """agentrm's scheduler (``mlfq``) over ``config``, writing an event log to ``log`` if given.

    ``on_step(before, event, after, effects)`` is called after every step (e.g. to check
    invariants while the simulation runs).
    """
    initial, reduce = kernel_reducer()
    writer = EventLogWriter(log, config) if log is not None else None
    return ReducerPolicy("mlfq", initial(config), reduce, writer, on_step)


# --------------------------------------------------------------------------- provider

class ProviderSim:
    """The real provider: its own token buckets, 429 when a call cannot be paid for."""

    def __init__(self, model: ProviderModel) -> None:
        self.model = model
        # Capacity: burst_ms worth of the rate, in units scaled by 60,000 (SCALE), at
        # least one request and one call's tokens so a lone call can always pass.
        self.req_cap = max(SCALE, model.requests_per_min * model.burst_ms)
        self.tok_cap = max(SCALE, model.tokens_per_min * model.burst_ms)
        self.requests = self.req_cap
        self.tokens = self.tok_cap
        self.at_ms = 0

    def call(self, now_ms: int, tokens: int) -> int | None:
        """Charge one call of ``tokens``; None when accepted, else the Retry-After in ms."""
        m = self.model
        elapsed = now_ms - self.at_ms
        self.at_ms = now_ms
        self.requests = min(self.req_cap, self.requests + elapsed * m.requests_per_min)
        self.tokens = min(self.tok_cap, self.tokens + elapsed * m.tokens_per_min)
        for storm in m.storms:
            if storm.start_ms <= now_ms < storm.end_ms:
                return max(m.retry_after_ms, 1)
        demand = min(tokens * SCALE, self.tok_cap)
        if self.requests < SCALE or self.tokens < demand:
            return max(m.retry_after_ms, 1)
        self.requests -= SCALE
        self.tokens -= demand
        return None


# --------------------------------------------------------------------------- records

class Outcome(enum.Enum):
    """How a task's run ended, as the simulator saw it (ground truth)."""

    FINISHED = "finished"
    FAILED = "failed"
    """It crashed, or its agent gave up retrying 429s."""
    REAPED = "reaped"
    """The policy cancelled it for idleness or a run limit (a timeout, for baselines)."""
    CANCELLED = "cancelled"
    """The policy cancelled it because its parent ended."""
    REJECTED = "rejected"
    """The policy refused its submission (backpressure)."""
    UNFINISHED = "unfinished"
    """Still waiting or running at the horizon."""
    NOT_ARRIVED = "not_arrived"
    """It arrives after the horizon."""


class AgentState(enum.Enum):
    """What a task's agent is doing."""

    QUEUED = "queued"
    RUNNING = "running"
    BOUNDARY = "boundary"
    BACKOFF = "backoff"
    HUNG = "hung"
    SILENT = "silent"
    DONE = "done"


_NO_PROGRESS: Final = frozenset({AgentState.BACKOFF, AgentState.HUNG, AgentState.SILENT})
"""Agent states in which a held lane is wasted."""


@attrs.frozen
class TaskResult:
    """One task's ground truth at the end of the run."""

    spec: TaskSpec
    outcome: Outcome
    end_ms: int | None
    """When it finished, failed or was cancelled; None if it never ended."""
    first_start_ms: int | None
    zombie: bool
    """It held a lane without progress (hung or silent) at the end of the run."""
    healthy_reaped: bool
    """It was reaped although its agent was still making progress (a false positive)."""

    @property
    def latency_ms(self) -> int | None:
        """Arrival to finish, for finished tasks."""
        if self.outcome is not Outcome.FINISHED or self.end_ms is None:
            return None
        return self.end_ms - self.spec.arrival_ms


@attrs.frozen
class LaneInterval:
    """``task_id`` held ``lane`` from ``start_ms`` to ``end_ms``, making progress or not."""

    lane: int
    task_id: str
    start_ms: int
    end_ms: int
    progress: bool


@attrs.frozen
class SimResult:
    """Everything a run produced: per-task ground truth, lane occupancy and counters."""

    policy: str
    lanes: int
    end_ms: int
    tasks: tuple[TaskResult, ...]
    lane_intervals: tuple[LaneInterval, ...]
    provider_calls: int
    rate_limited: int
    """429 answers the provider gave."""
    retries: int
    """Calls that repeated a call answered 429."""
    policy_steps: int
    """Inputs the policy handled."""


# --------------------------------------------------------------------------- the engine

@attrs.define
class _Task:
    spec: TaskSpec
    state: AgentState = AgentState.QUEUED
    next_step: int = 0
    lane: int | None = None
    epoch: int = 0
    attempts: int = 0
    retrying: bool = False
    submitted: bool = False
    outcome: Outcome | None = None
    end_ms: int | None = None
    first_start_ms: int | None = None
    span_start: int = 0
    healthy_reaped: bool = False


class _Kind(enum.IntEnum):
    # At one instant: inputs already decided first, then steps ending, then arrivals, then wake-ups.
    INPUT = 0
    STEP_DONE = 1
    HEARTBEAT = 2
    RETRY = 3
    ARRIVAL = 4
    WAKE = 5


class Simulator:
    """One run of a workload under a policy. Use :func:`simulate`."""

    def __init__(self, workload: Workload, policy: Policy, *, seed: int | None = None,
                 progress: Callable[[int], None] | None = None) -> None:
        self.workload = workload
        self.policy = policy
        header = workload.header
        self.horizon = header.horizon_ms
        self.heartbeat_ms = header.heartbeat_ms
        self.providers = {p.name: ProviderSim(p) for p in header.providers}
        self.tasks: dict[str, _Task] = {}
        self.order: list[str] = []
        self.heap: list[tuple[int, int, int, str, int, Any]] = []
        self.seq = 0
        self.now = 0
        self.last_input_ms = -1
        self.last_activity = 0
        self.wake_ms: int | None = None
        self.intervals: list[LaneInterval] = []
        self.calls = self.limited = self.retries = self.steps = 0
        # Jitter for self-retrying agents: one seeded stream per run, drawn in event order.
        self.rng = random.Random(f"{header.seed if seed is None else seed}:{policy.name}:jitter")
        self._progress = progress
        for spec in workload.tasks:
            self.tasks[spec.task_id] = _Task(spec)
            self.order.append(spec.task_id)
            if not self.horizon or spec.arrival_ms <= self.horizon:
                self._push(spec.arrival_ms, _Kind.ARRIVAL, spec.task_id, 0)

    # -- plumbing

    def _push(self, at: int, kind: _Kind, task_id: str, epoch: int, payload: Any = None) -> None:
        heapq.heappush(self.heap, (at, kind, self.seq, task_id, epoch, payload))
        self.seq += 1

    def _feed(self, event: SchedulerEvent) -> tuple[SchedulerEffect, ...]:
        self.steps += 1
        self.last_input_ms = event.at_ms
        effects = self.policy.step(event)
        for effect in effects:
            self._apply(effect, event)
        return effects

    def _span_close(self, t: _Task) -> None:
        """Close the current lane interval of ``t`` (progress or not) at now."""
        if t.lane is not None and self.now > t.span_start:
            progress = t.state not in _NO_PROGRESS
            self.intervals.append(LaneInterval(t.lane, t.spec.task_id, t.span_start, self.now, progress))
        t.span_start = self.now

    def _set_state(self, t: _Task, state: AgentState) -> None:
        if (t.state in _NO_PROGRESS) != (state in _NO_PROGRESS):
            self._span_close(t)
        t.state = state

    def _release(self, t: _Task) -> None:
        self._span_close(t)
        t.lane = None

    def _end(self, t: _Task, outcome: Outcome) -> None:
        if t.lane is not None:
            self._release(t)
        t.epoch += 1  # whatever the agent had scheduled is moot
        t.state = AgentState.DONE
        t.outcome = outcome
        t.end_ms = self.now

    # -- effects

    def _apply(self, effect: SchedulerEffect, cause: SchedulerEvent) -> None:
        if isinstance(effect, StartTask):
            t = self.tasks.get(effect.task_id)
            if t is None or t.state is not AgentState.QUEUED or t.lane is not None:
                raise SimulationError(f"t={self.now}: {self.policy.name} started {effect.task_id!r}, which is not waiting")
            t.lane = effect.lane
            t.span_start = self.now
            if t.first_start_ms is None:
                t.first_start_ms = self.now
            self._begin_step(t)
        elif isinstance(effect, YieldTask):
            t = self.tasks[effect.task_id]
            self._release(t)
            t.epoch += 1
            self._set_state(t, AgentState.QUEUED)
        elif isinstance(effect, CancelTask):
            t = self.tasks[effect.task_id]
            if t.outcome is not None:
                return
            if effect.reason is CancelReason.PARENT_REAPED:
                self._end(t, Outcome.CANCELLED)
            else:
                t.healthy_reaped = t.state not in (AgentState.HUNG, AgentState.SILENT)
                self._end(t, Outcome.REAPED)
        elif isinstance(effect, WakeAt):
            self.wake_ms = effect.at_ms
            self._push(effect.at_ms, _Kind.WAKE, "", 0, effect.at_ms)
        elif isinstance(effect, Refusal):
            t = self.tasks.get(effect.task_id)
            if isinstance(cause, Submit) and t is not None and cause.task_id == effect.task_id and t.outcome is None:
                self._end(t, Outcome.REJECTED)
        else:  # pragma: no cover - exhaustive over SchedulerEffect
            raise SimulationError(f"unknown effect {effect!r}")

    # -- the agent

    def _begin_step(self, t: _Task) -> None:
        """The agent, holding a lane, starts its next step by calling the provider."""
        spec = t.spec
        if spec.fault is Fault.HANG and t.next_step == spec.fault_step:
            self._set_state(t, AgentState.HUNG)
            return
        self._call(t)

    def _call(self, t: _Task) -> None:
        spec = t.spec
        step = spec.steps[t.next_step]
        provider = self.providers.get(spec.provider)
        self.calls += 1
        if t.retrying:
            self.retries += 1
        retry_after = provider.call(self.now, step.tokens) if provider is not None else None
        if retry_after is None:
            t.retrying = False
            t.attempts = 0
            self._set_state(t, AgentState.RUNNING)
            t.epoch += 1
            end = self.now + step.duration_ms
            self._push(end, _Kind.STEP_DONE, spec.task_id, t.epoch)
            if self.policy.wants_heartbeats and self.now + self.heartbeat_ms < end:
                self._push(self.now + self.heartbeat_ms, _Kind.HEARTBEAT, spec.task_id, t.epoch, end)
            return
        self.limited += 1
        t.retrying = True
        if not self.policy.agents_retry:
            # Report to the scheduler; it takes the lane back (YieldTask) and re-dispatches later.
            self._set_state(t, AgentState.BOUNDARY)
            self._push(self.now, _Kind.INPUT, spec.task_id, 0,
                       RateLimited(self.now, spec.task_id, spec.provider, retry_after))
            return
        t.attempts += 1
        if t.attempts >= MAX_RETRY_ATTEMPTS:
            self._set_state(t, AgentState.BOUNDARY)
            self._push(self.now, _Kind.INPUT, spec.task_id, 0,
                       TaskFailed(self.now, spec.task_id, "rate limited: retries exhausted"))
            return
        # Exponential backoff with jitter, never sooner than Retry-After, holding the lane.
        ceiling = min(BACKOFF_CAP_MS, BACKOFF_BASE_MS << min(t.attempts - 1, 16))
        delay = max(retry_after, ceiling // 2 + self.rng.randint(0, ceiling // 2))
        self._set_state(t, AgentState.BACKOFF)
        t.epoch += 1
        self._push(self.now + delay, _Kind.RETRY, spec.task_id, t.epoch)

    def _step_done(self, t: _Task) -> None:
        spec = t.spec
        k = t.next_step
        if spec.fault is Fault.CRASH and k == spec.fault_step:
            self._set_state(t, AgentState.BOUNDARY)
            self._feed(TaskFailed(self.now, spec.task_id, "crashed"))
            if t.outcome is None:
                self._end(t, Outcome.FAILED)
            return
        if spec.fault is Fault.SILENT_FINISH and k == spec.fault_step:
            self._set_state(t, AgentState.SILENT)
            return
        t.next_step = k + 1
        self._set_state(t, AgentState.BOUNDARY)
        if t.next_step == len(spec.steps):
            self._feed(TaskFinished(self.now, spec.task_id))
            if t.outcome is None:
                self._end(t, Outcome.FINISHED)
            return
        nxt = spec.steps[t.next_step]
        self._feed(StepFinished(self.now, spec.task_id, spec.steps[k].tokens, nxt.tokens))
        if t.state is AgentState.BOUNDARY and t.lane is not None and t.outcome is None:
            self._begin_step(t)  # the policy let it keep its lane

    # -- the loop

    def run(self) -> SimResult:
        """Run to the horizon (or until nothing more can happen) and return the record."""
        report_every = 20_000
        handled = 0
        while self.heap:
            at, kind, _, task_id, epoch, payload = self.heap[0]
            if self.horizon and at > self.horizon:
                break
            heapq.heappop(self.heap)
            self.now = at
            handled += 1
            if self._progress is not None and handled % report_every == 0:
                self._progress(at)
            if kind is _Kind.WAKE:
                if payload == self.wake_ms and self.last_input_ms < at:
                    effects = self._feed(ClockAdvanced(at))
                    if any(not isinstance(e, WakeAt) for e in effects):
                        self.last_activity = at
                continue
            t = self.tasks[task_id]
            stale = kind not in (_Kind.ARRIVAL, _Kind.INPUT) and (epoch != t.epoch or t.outcome is not None)
            if stale:
                continue  # scheduled before the agent was yielded, cancelled or moved on
            self.last_activity = at
            if kind is _Kind.ARRIVAL:
                spec = t.spec
                t.submitted = True
                self._feed(Submit(at, spec.task_id, spec.agent, spec.task_class, spec.provider,
                                  spec.steps[0].tokens, spec.parent))
            elif kind is _Kind.INPUT:
                if t.outcome is None:
                    event: SchedulerEvent = payload
                    self._feed(event)
                    if isinstance(event, TaskFailed) and t.outcome is None:
                        self._end(t, Outcome.FAILED)
            elif kind is _Kind.STEP_DONE:
                self._step_done(t)
            elif kind is _Kind.HEARTBEAT:
                end: int = payload
                self._feed(Heartbeat(at, task_id))
                if t.epoch == epoch and t.outcome is None and at + self.heartbeat_ms < end:
                    self._push(at + self.heartbeat_ms, _Kind.HEARTBEAT, task_id, epoch, end)
            elif kind is _Kind.RETRY:
                self._call(t)
        # A run without a horizon ends at its last activity, not at a wake-up that found
        # nothing to do (the shell keeps a wake-up the policy announced, even if moot).
        self.now = self.horizon if self.horizon else self.last_activity
        return self._result()

    def _result(self) -> SimResult:
        results: list[TaskResult] = []
        for task_id in self.order:
            t = self.tasks[task_id]
            zombie = t.lane is not None and t.state in (AgentState.HUNG, AgentState.SILENT)
            if t.lane is not None:
                self._span_close(t)
            outcome = t.outcome
            if outcome is None:
                outcome = Outcome.UNFINISHED if t.submitted else Outcome.NOT_ARRIVED
            results.append(TaskResult(t.spec, outcome, t.end_ms, t.first_start_ms, zombie, t.healthy_reaped))
        lanes = self.workload.header.config.lanes
        intervals = tuple(sorted(self.intervals, key=lambda i: (i.start_ms, i.lane, i.end_ms, i.task_id)))
        return SimResult(self.policy.name, lanes, self.now, tuple(results), intervals,
                         self.calls, self.limited, self.retries, self.steps)


def simulate(workload: Workload, policy: Policy, *, progress: Callable[[int], None] | None = None) -> SimResult:
    """Run ``workload`` under ``policy`` on a virtual clock; deterministic for a given input.

    ``progress(now_ms)`` is called now and then (for a progress bar).
    """
    return Simulator(workload, policy, progress=progress).run()


TASK_CLASSES: Final = tuple(TaskClass)
"""Class order for reports: enum definition order."""
