"""Kernel benchmark: microseconds per event at 1k, 10k and 100k live tasks.

Run ``python -m agentrm.adapters.bench_kernel`` (or ``make bench-kernel``). It is a
command, not a test: the numbers depend on the machine and on its load.

For each size it submits that many tasks (not timed), then records a realistic mix of
events against the kernel (submissions, finished steps, heartbeats, finished tasks,
occasional 429s and clock advances, each aimed at tasks that really are running), and
replays that same event list, timing every event, through

* the kernel (``agentrm.kernel.step``: frozen state, persistent maps), and
* :class:`MutableScheduler`, a plain in-place implementation of the same policy
  (dicts, deques, lists), written only for this comparison.

Both must emit identical effects for every event (checked), so the comparison is
between two implementations of one policy. The garbage collector is frozen after
set-up for both, so a collection of the set-up heap does not land in one side's timing.
Each event is timed by this thread's CPU time (``--clock wall`` for wall time), so
other processes on a shared machine do not inflate the numbers. The whole event list
is replayed ``--repeat`` times (default 5) from the same set-up state -- the same work
each time -- and each event counts with its fastest replay, which filters out the
interruptions and frequency changes of a shared virtual machine (the ``timeit`` rule).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections import deque
from collections.abc import Sequence

import attrs

from agentrm.kernel import (
    CancelReason,
    CancelTask,
    ClassConfig,
    ClockAdvanced,
    Heartbeat,
    ProviderConfig,
    RateLimited,
    Refusal,
    RefusalReason,
    SchedulerConfig,
    SchedulerEffect,
    SchedulerEvent,
    SchedulerState,
    StartTask,
    StepFinished,
    Submit,
    TaskClass,
    TaskFailed,
    TaskFinished,
    WakeAt,
    YieldTask,
    step,
)
from agentrm.kernel.scheduler.gate import (
    admits,
    charge,
    charge_excess,
    clamp,
    earliest_admit_ms,
    effective_rate,
    on_429,
    on_success,
    refill,
    step_tokens,
)
from agentrm.kernel.scheduler.state import SCALE

CLASSES = tuple(TaskClass)

BENCH_CONFIG = SchedulerConfig(
    lanes=8,
    level_allotments_ms=(2_000, 8_000, 32_000),
    boost_period_ms=60_000,
    interactive=ClassConfig(entry_level=0, reserved_lanes=2, idle_ms_reap=30_000),
    batch=ClassConfig(entry_level=1, reserved_lanes=1, idle_ms_reap=60_000),
    background=ClassConfig(entry_level=2, reserved_lanes=0, idle_ms_reap=120_000),
    admission_window_ms=10_000,
    admission_rate_per_window=20,
    queue_cap=1_000_000,
    providers=(ProviderConfig("openai", 10_000, 20_000_000), ProviderConfig("anthropic", 4_000, 8_000_000)),
)
"""Eight lanes, three levels, two providers with production-sized limits."""


# --- the plain mutable implementation ------------------------------------------------------


class _Task:
    __slots__ = ("task_id", "cls", "ci", "provider", "parent", "seq", "phase", "level", "used", "progress",
                 "demand", "enq", "lane", "started", "slice", "charged", "key")

    def __init__(self, task_id: str, cls: TaskClass, provider: str, parent: str | None, seq: int,
                 level: int, now: int, demand: int) -> None:
        self.task_id, self.cls, self.ci, self.provider, self.parent = task_id, cls, CLASSES.index(cls), provider, parent
        self.seq, self.phase, self.level, self.used, self.progress = seq, "W", level, 0, now
        self.demand, self.enq, self.lane, self.started, self.slice, self.charged = demand, 0, -1, -1, now, 0
        self.key: tuple[int, int, str] = (level, self.ci, provider)


class _Gate:
    __slots__ = ("e", "req", "tok", "at", "paused", "streak", "cfg", "half_open", "probe")

    def __init__(self, cfg: ProviderConfig) -> None:
        self.cfg, self.e, self.streak, self.at, self.paused = cfg, 1000, 0, 0, 0
        self.req, self.tok = cfg.requests_per_min * SCALE, cfg.tokens_per_min * SCALE
        self.half_open, self.probe = False, ""  # the half-open circuit (SPEC.md 1.5)

    def rates(self) -> tuple[int, int]:
        return effective_rate(self.cfg.requests_per_min, self.e), effective_rate(self.cfg.tokens_per_min, self.e)

    def refill(self, now: int) -> None:
        if now > self.at:
            r, t = self.rates()
            self.req, self.tok, self.at = refill(self.req, r, now - self.at), refill(self.tok, t, now - self.at), now

    def admits(self, demand: int, now: int) -> bool:
        if self.half_open and self.probe:
            return False
        return admits(self.req, self.tok, self.rates()[1], demand, self.paused, now)

    def charge(self, demand: int, tid: str) -> int:
        tpm = self.rates()[1]
        self.req, self.tok = charge(self.req, self.tok, tpm, demand)
        if self.half_open:
            self.probe = tid
        return step_tokens(demand, tpm)

    def completed(self, tid: str) -> None:
        if self.probe == tid:
            self.half_open, self.probe = False, ""


class MutableScheduler:
    """The same policy as the kernel (SPEC.md 1), in place: dicts, deques with lazy deletion, lists."""

    def __init__(self, cfg: SchedulerConfig) -> None:
        self.cfg = cfg
        self.now = 0
        self.tasks: dict[str, _Task] = {}
        self.children: dict[str, list[str]] = {}
        self.queues: dict[tuple[int, int, str], deque[tuple[int, str]]] = {}
        self.lanes: list[_Task | None] = [None] * cfg.lanes
        self.deadline: list[int | None] = [None] * cfg.lanes
        self.running = [0, 0, 0]
        self.gates = {p.name: _Gate(p) for p in cfg.providers}
        self.window, self.admissions = 0, dict[str, int]()
        self.waiting = self.live = self.next_seq = self.next_enq = 0
        self.next_boost, self.last_wake = cfg.boost_period_ms, -1
        ccs = [cfg.class_config(c) for c in CLASSES]
        self.entry = [c.entry_level for c in ccs]
        self.idle = [c.idle_ms_reap for c in ccs]
        self.run_limit = [c.run_ms_limit for c in ccs]
        self.reserved = [c.reserved_lanes for c in ccs]
        self.shared = cfg.lanes - sum(self.reserved)
        self.out: list[SchedulerEffect] = []

    # -- the reducer
    def step(self, ev: SchedulerEvent) -> tuple[SchedulerEffect, ...]:
        """Apply one event; the effects, exactly as the kernel would emit them."""
        if ev.at_ms < self.now:
            return (Refusal("" if isinstance(ev, ClockAdvanced) else ev.task_id, RefusalReason.CLOCK_WENT_BACKWARDS),)
        self.out = []
        self.advance(ev.at_ms)
        if isinstance(ev, Submit):
            self.submit(ev)
        elif isinstance(ev, ClockAdvanced):
            pass
        elif isinstance(ev, RateLimited) and ev.retry_after_ms is not None and ev.retry_after_ms < 0:
            self.out.append(Refusal(ev.task_id, RefusalReason.INVALID))
        elif isinstance(ev, StepFinished) and (ev.tokens_used < 0 or ev.next_step_tokens < 0):
            self.out.append(Refusal(ev.task_id, RefusalReason.INVALID))
        else:
            t = self.find(ev.task_id, not isinstance(ev, TaskFailed))
            if t is not None:
                self.on_task_event(t, ev)
        self.dispatch()
        self.announce()
        return tuple(self.out)

    def find(self, tid: str, running_only: bool) -> _Task | None:
        """The live task ``tid`` (running, if ``running_only``), or None after emitting the refusal."""
        t = self.tasks.get(tid) if tid else None
        reason = (RefusalReason.INVALID if not tid else RefusalReason.UNKNOWN_TASK if t is None
                  else RefusalReason.TASK_TERMINAL if t.phase not in "WR"
                  else RefusalReason.NOT_RUNNING if running_only and t.phase != "R" else None)
        if reason is not None:
            self.out.append(Refusal(tid, reason))
            return None
        return t

    def on_task_event(self, t: _Task, ev: SchedulerEvent) -> None:
        """Apply a heartbeat, step boundary, finish, failure or 429 of a known live task."""
        now = self.now
        if isinstance(ev, Heartbeat):
            t.progress = now
            self.set_deadline(t)
        elif isinstance(ev, TaskFinished):
            self.gates[t.provider].completed(t.task_id)
            self.end(t, "F")
        elif isinstance(ev, TaskFailed):
            self.end(t, "X")
            self.cascade([t.task_id])
        elif isinstance(ev, RateLimited):
            if ev.provider not in self.gates:
                self.out.append(Refusal(t.task_id, RefusalReason.UNKNOWN_PROVIDER))
                return
            g = self.gates[ev.provider]
            pause = g.cfg.default_retry_after_ms if ev.retry_after_ms is None else ev.retry_after_ms
            is_probe = g.probe == t.task_id
            if is_probe:
                g.probe = ""
            if not g.half_open or is_probe:  # the first 429 of a pause, or the probe's: cut once
                g.e = on_429(g.e, g.cfg.floor_permille, g.cfg.decrease_permille)
                r, k = g.rates()
                g.req, g.tok, g.streak = clamp(g.req, r), clamp(g.tok, k), 0
            g.paused, g.half_open = max(g.paused, now + pause), True
            self.release(t)
            t.used += now - t.slice
            self.enqueue(t)
            self.out.append(YieldTask(t.task_id))
        elif isinstance(ev, StepFinished):
            g = self.gates[t.provider]
            g.e, g.streak = on_success(g.e, g.streak, g.cfg.success_streak, g.cfg.increase_permille)
            g.tok = charge_excess(g.tok, max(0, ev.tokens_used - t.charged))
            g.completed(t.task_id)
            t.used += now - t.slice
            spent = t.used >= self.cfg.level_allotments_ms[t.level]
            if spent:
                t.used, t.level = 0, min(t.level + 1, self.cfg.levels - 1)
            t.progress = t.slice = now
            t.demand = ev.next_step_tokens
            if not g.admits(t.demand, now) or self.best(t.level + 1 if spent else t.level, t) is not None:
                self.release(t)
                self.enqueue(t)
                self.out.append(YieldTask(t.task_id))
            else:
                t.charged = g.charge(t.demand, t.task_id)
                self.set_deadline(t)

    def submit(self, ev: Submit) -> None:
        """Admit a submission: refusals in SPEC order, admission-rate level, enqueue."""
        cfg = self.cfg
        parent = self.tasks.get(ev.parent) if ev.parent is not None else None
        reason = (RefusalReason.INVALID if not ev.task_id or not ev.agent or ev.step_tokens < 0
                  else RefusalReason.DUPLICATE_TASK if ev.task_id in self.tasks
                  else RefusalReason.UNKNOWN_PROVIDER if ev.provider not in self.gates
                  else RefusalReason.UNKNOWN_PARENT if ev.parent is not None and parent is None
                  else RefusalReason.PARENT_TERMINAL if parent is not None and parent.phase not in "WR"
                  else RefusalReason.QUEUE_FULL if self.waiting >= cfg.queue_cap else None)
        if reason is not None:
            self.out.append(Refusal(ev.task_id, reason))
            return
        window = self.now // cfg.admission_window_ms
        if window != self.window:
            self.window, self.admissions = window, {}
        n = self.admissions.get(ev.agent, 0)
        self.admissions[ev.agent] = n + 1
        level = self.entry[CLASSES.index(ev.task_class)]
        if n >= cfg.admission_rate_per_window:
            level = min(level + 1, cfg.levels - 1)
        t = _Task(ev.task_id, ev.task_class, ev.provider, ev.parent, self.next_seq, level, self.now, ev.step_tokens)
        self.next_seq += 1
        self.live += 1
        self.tasks[t.task_id] = t
        if ev.parent is not None:
            self.children.setdefault(ev.parent, []).append(t.task_id)
        self.enqueue(t)

    # -- advance
    def advance(self, now: int) -> None:
        """Move the clock: boost if due, refill every gate, reap overdue running tasks."""
        self.now = now
        if self.next_boost <= now:
            self.boost()
            self.next_boost = (now // self.cfg.boost_period_ms + 1) * self.cfg.boost_period_ms
        for g in self.gates.values():
            g.refill(now)
        reaped = []
        for lane, dl in enumerate(self.deadline):
            if dl is not None and dl <= now:
                t = self.lanes[lane]
                assert t is not None
                idle = now - t.progress >= self.idle[t.ci]
                self.end(t, "P")
                self.out.append(CancelTask(t.task_id, CancelReason.IDLE if idle else CancelReason.RUN_LIMIT))
                reaped.append(t.task_id)
        if reaped:
            self.cascade(reaped)

    def boost(self) -> None:
        """Return every live task to its class's entry level, keeping FIFO order by enqueue number."""
        for t in self.lanes:
            if t is not None:
                t.level, t.used, t.slice = self.entry[t.ci], 0, self.now
        if not self.waiting:
            return
        merged: dict[tuple[int, int, str], list[tuple[int, str]]] = {}
        for q in self.queues.values():
            for enq, tid in q:
                t = self.tasks[tid]
                if t.phase == "W" and t.enq == enq:
                    t.level, t.used = self.entry[t.ci], 0
                    t.key = (t.level, t.ci, t.provider)
                    merged.setdefault(t.key, []).append((enq, tid))
        self.queues = {k: deque(sorted(v)) for k, v in merged.items()}

    # -- dispatch
    def head(self, q: deque[tuple[int, str]]) -> _Task | None:
        """The live head of a queue, dropping stale entries lazily; None if it is empty."""
        while q:
            enq, tid = q[0]
            t = self.tasks[tid]
            if t.phase == "W" and t.enq == enq:
                return t
            q.popleft()  # lazily drop entries of tasks that left the queue
        return None

    def may_take(self, freeing: _Task | None) -> list[bool]:
        """Per class: whether it may take a lane, counting ``freeing``'s lane as free."""
        running = self.running[:]
        if freeing is not None:
            running[freeing.ci] -= 1
        used = sum(max(0, r - res) for r, res in zip(running, self.reserved))
        return [r < res or used < self.shared for r, res in zip(running, self.reserved)]

    def best(self, below: int, freeing: _Task | None) -> _Task | None:
        """The dispatchable task above level ``below`` with the lowest (level, enqueue number)."""
        if not self.waiting:
            return None
        ok = self.may_take(freeing)
        best: _Task | None = None
        for (level, ci, provider), q in self.queues.items():
            if level >= below or not ok[ci]:
                continue
            t = self.head(q)
            if t is None or (best is not None and (level, t.enq) >= (best.level, best.enq)):
                continue
            if self.gates[provider].admits(t.demand, self.now):
                best = t
        return best

    def dispatch(self) -> None:
        """Start dispatchable tasks on free lanes until none is left (reaping expired ones)."""
        while self.waiting and None in self.lanes:
            t = self.best(self.cfg.levels, None)
            if t is None:
                return
            if self.run_limit[t.ci] > 0 and t.started >= 0 and self.now - t.started >= self.run_limit[t.ci]:
                self.end(t, "P")  # its run limit ran out while it waited: reaped, not started
                self.out.append(CancelTask(t.task_id, CancelReason.RUN_LIMIT))
                self.cascade([t.task_id])
                continue
            lane = self.lanes.index(None)
            t.charged = self.gates[t.provider].charge(t.demand, t.task_id)
            self.waiting -= 1
            t.phase, t.lane = "R", lane
            if t.started < 0:
                t.started = self.now
            t.slice = t.progress = self.now
            self.lanes[lane] = t
            self.running[t.ci] += 1
            self.set_deadline(t)
            self.out.append(StartTask(t.task_id, lane, t.level))

    # -- wake-up
    def announce(self) -> None:
        """Emit ``WakeAt`` when the next deadline differs from the last one announced."""
        if self.live == 0:
            return
        now = self.now
        cands = [self.next_boost] + [d for d in self.deadline if d is not None]
        if self.waiting and None in self.lanes:
            # Gate deadlines only for the heads whose class may take a free lane.
            may = self.may_take(None)
            smallest: dict[str, int] = {}
            for q in self.queues.values():
                t = self.head(q)
                if t is not None and may[t.ci] and t.demand < smallest.get(t.provider, t.demand + 1):
                    smallest[t.provider] = t.demand
            for p in self.cfg.providers:
                g = self.gates[p.name]
                if p.name in smallest and not (g.half_open and g.probe):
                    r, k = g.rates()
                    cands.append(earliest_admit_ms(g.req, g.tok, r, k, smallest[p.name], g.paused, now))
        future = [c for c in cands if c > now]
        if future and min(future) != self.last_wake:
            self.last_wake = min(future)
            self.out.append(WakeAt(self.last_wake))

    # -- helpers
    def set_deadline(self, t: _Task) -> None:
        """Record the reap deadline (idle or run limit) of ``t``'s lane."""
        dl = t.progress + self.idle[t.ci]
        if self.run_limit[t.ci] > 0:
            dl = min(dl, t.started + self.run_limit[t.ci])
        self.deadline[t.lane] = dl

    def enqueue(self, t: _Task) -> None:
        """Put ``t`` at the tail of its (level, class, provider) queue with a new enqueue number."""
        t.phase, t.lane, t.enq = "W", -1, self.next_enq
        t.key = (t.level, t.ci, t.provider)
        self.next_enq += 1
        self.waiting += 1
        self.queues.setdefault(t.key, deque()).append((t.enq, t.task_id))

    def release(self, t: _Task) -> None:
        """Free ``t``'s lane and, if it was its provider's probe, the probe slot."""
        self.lanes[t.lane] = None
        self.deadline[t.lane] = None
        self.running[t.ci] -= 1
        g = self.gates[t.provider]
        if g.probe == t.task_id:  # the probe stopped without completing its step
            g.probe = ""

    def end(self, t: _Task, phase: str) -> None:
        """Make ``t`` terminal with ``phase``, freeing its lane or its place in the queue count."""
        if t.phase == "R":
            self.release(t)
        else:
            self.waiting -= 1  # its queue entry is dropped lazily
        t.phase, t.lane = phase, -1
        self.live -= 1

    def cascade(self, roots: list[str]) -> None:
        """Cancel every live descendant of ``roots`` in submission order."""
        seen, stack, found = set(roots), list(roots), list[_Task]()
        while stack:
            for cid in self.children.get(stack.pop(), ()):
                if cid not in seen:
                    seen.add(cid)
                    if self.tasks[cid].phase in "WR":
                        found.append(self.tasks[cid])
                    stack.append(cid)
        for c in sorted(found, key=lambda x: x.seq):
            self.end(c, "C")
            self.out.append(CancelTask(c.task_id, CancelReason.PARENT_REAPED))


# --- the workload ------------------------------------------------------------------------


class _Lcg:
    """A fixed linear congruential generator: the same workload on every run and platform."""

    def __init__(self, seed: int) -> None:
        self.x = seed

    def __call__(self, m: int) -> int:
        self.x = (self.x * 6364136223846793005 + 1442695040888963407) % 2**64
        return (self.x >> 33) % m


def _submit(rng: _Lcg, now: int, i: int) -> Submit:
    return Submit(now, f"t{i}", f"agent{rng(200)}", CLASSES[rng(3)], BENCH_CONFIG.providers[rng(2)].name,
                  step_tokens=200 + rng(3_000))


def workload(live: int, events: int, seed: int = 7) -> tuple[list[SchedulerEvent], list[SchedulerEvent]]:
    """(set-up submissions, the measured mix), generated against the kernel so every event is meaningful.

    Mix: 15 % submissions, 30 % finished steps, 30 % heartbeats, 15 % finished tasks, 0.3 % 429s,
    9.7 % clock advances; the clock moves 0-9 ms per event. Submissions match finishes, so the
    number of live tasks stays near ``live``. (When no task is running -- every provider
    paused -- the event is a submission.)
    """
    rng = _Lcg(seed)
    setup: list[SchedulerEvent] = [_submit(rng, 0, i) for i in range(live)]
    s = SchedulerState.initial(BENCH_CONFIG)
    for e in setup:
        s = step(s, e).state
    out: list[SchedulerEvent] = []
    now, nxt = 0, live
    while len(out) < events:
        now += rng(10)
        running = [tid for tid in s.lanes if tid is not None]
        k = rng(1_000)
        ev: SchedulerEvent
        if k < 150 or not running:
            ev = _submit(rng, now, nxt)
            nxt += 1
        elif k < 450:
            ev = StepFinished(now, running[rng(len(running))], 200 + rng(3_500), 200 + rng(3_000))
        elif k < 750:
            ev = Heartbeat(now, running[rng(len(running))])
        elif k < 900:
            ev = TaskFinished(now, running[rng(len(running))])
        elif k < 903:
            tid = running[rng(len(running))]
            ev = RateLimited(now, tid, s.tasks[tid].provider, 1_000 if rng(2) else None)
        else:
            ev = ClockAdvanced(now)
        s = step(s, ev).state
        out.append(ev)
    return setup, out


# --- measurement ---------------------------------------------------------------------------

_CLOCK = [time.thread_time_ns]
"""The per-event clock: this thread's CPU time by default, so that other processes on a
shared machine do not inflate the numbers; ``--clock wall`` uses ``perf_counter_ns``."""


@attrs.frozen
class Result:
    """Per-event timings of one implementation on one workload."""

    name: str
    live: int
    median_us: float
    mean_us: float
    events_per_s: float
    max_ms: float


def _time_kernel(setup: Sequence[SchedulerEvent], events: Sequence[SchedulerEvent],
                 repeat: int) -> tuple[list[int], list[tuple[SchedulerEffect, ...]]]:
    start = SchedulerState.initial(BENCH_CONFIG)
    for ev in setup:
        start = step(start, ev).state
    best: list[int] = []
    effects: list[tuple[SchedulerEffect, ...]] = []
    clock = _CLOCK[0]
    for rep in range(repeat):
        s = start  # immutable: every replay starts from the very same state
        gc.collect()
        gc.freeze()
        times = []
        for ev in events:
            t0 = clock()
            r = step(s, ev)
            times.append(clock() - t0)
            s = r.state
            if rep == 0:
                effects.append(r.effects)
        gc.unfreeze()
        best = times if rep == 0 else [min(a, b) for a, b in zip(best, times)]
    return best, effects


def _time_mutable(setup: Sequence[SchedulerEvent], events: Sequence[SchedulerEvent],
                  repeat: int) -> tuple[list[int], list[tuple[SchedulerEffect, ...]]]:
    best: list[int] = []
    effects: list[tuple[SchedulerEffect, ...]] = []
    clock = _CLOCK[0]
    for rep in range(repeat):
        m = MutableScheduler(BENCH_CONFIG)  # mutated in place: set up afresh for every replay
        for ev in setup:
            m.step(ev)
        gc.collect()
        gc.freeze()
        times = []
        for ev in events:
            t0 = clock()
            out = m.step(ev)
            times.append(clock() - t0)
            if rep == 0:
                effects.append(out)
        gc.unfreeze()
        best = times if rep == 0 else [min(a, b) for a, b in zip(best, times)]
    return best, effects


def _result(name: str, live: int, times: list[int]) -> Result:
    total_s = sum(times) / 1e9
    return Result(name, live, statistics.median(times) / 1_000, statistics.fmean(times) / 1_000, len(times) / total_s,
                  max(times) / 1e6)


@attrs.frozen
class _Ref:
    a: int
    b: int
    c: int
    d: int
    e: int


def reference_us() -> float:
    """Median cost of one ``attrs.evolve`` of a 5-field frozen class (TOOLING.md: about 2.3 µs).

    Printed beside the table so that numbers from a loaded or slower machine can be read
    against the machine the targets were set on.
    """
    x, samples = _Ref(1, 2, 3, 4, 5), []
    for _ in range(5):
        t0 = _CLOCK[0]()
        for i in range(20_000):
            x = attrs.evolve(x, a=i)
        samples.append((_CLOCK[0]() - t0) / 20_000 / 1_000)
    return statistics.median(samples)


def run(sizes: Sequence[int], events: int, repeat: int = 5) -> list[tuple[Result, Result, float]]:
    """Benchmark both implementations at each size; raises if their effects ever differ.

    Each row also carries the machine reference (:func:`reference_us`), the mean of one
    measurement just before and one just after that size's timings: this machine's
    speed can drift within minutes, so each row is read against its own reference.
    """
    rows = []
    for live in sizes:
        setup, evs = workload(live, events)
        before = reference_us()
        kt, ke = _time_kernel(setup, evs, repeat)
        mt, me = _time_mutable(setup, evs, repeat)
        ref = (before + reference_us()) / 2
        for i, (a, b) in enumerate(zip(ke, me)):
            if a != b:
                raise AssertionError(f"live={live} event {i} {evs[i]!r}: kernel {a!r} != mutable {b!r}")
        rows.append((_result("kernel", live, kt), _result("mutable", live, mt), ref))
    return rows


def kernel_build() -> str:
    """Which build of the kernel this process runs: the mypyc-compiled modules, or pure Python."""
    from agentrm.kernel.scheduler import gate, records, transitions

    compiled = [m.__name__.rpartition(".")[2] for m in (transitions, gate, records)
                if not (m.__file__ or "").endswith(".py")]
    return f"compiled by mypyc ({', '.join(compiled)})" if compiled else "pure Python"


def main(argv: Sequence[str] | None = None) -> int:
    """Print the benchmark table (markdown)."""
    ap = argparse.ArgumentParser(prog="python -m agentrm.adapters.bench_kernel", description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1000,10000,100000", help="live-task counts, comma-separated")
    ap.add_argument("--events", type=int, default=20_000, help="measured events per size")
    ap.add_argument("--repeat", type=int, default=5,
                    help="replays of the event list; each event counts with its fastest replay (default 5)")
    ap.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                    help="time each event by this thread's CPU time (default) or by wall clock")
    args = ap.parse_args(argv)
    _CLOCK[0] = time.thread_time_ns if args.clock == "cpu" else time.perf_counter_ns
    try:
        sizes = [int(x) for x in args.sizes.split(",")]
    except ValueError:
        ap.error(f"--sizes: expected comma-separated integers, got {args.sizes!r}")
    for name in ("events", "repeat"):
        if getattr(args, name) < 1:
            ap.error(f"--{name}: must be >= 1")
    if any(n < 1 for n in sizes):
        ap.error("--sizes: every size must be >= 1")
    rows = run(sizes, args.events, args.repeat)
    print(f"kernel build: {kernel_build()}")
    print(f"{args.events} events per size, {args.clock} time per event, fastest of {args.repeat} replays; "
          "effects identical in both implementations\n")
    print("| live tasks | kernel median µs/event | kernel mean µs | kernel events/s | kernel slowest ms "
          "| mutable median µs/event | mutable mean µs | mutable events/s | kernel/mutable (median) "
          "| machine ref µs |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for k, m, ref in rows:
        print(f"| {k.live:,} | {k.median_us:.1f} | {k.mean_us:.1f} | {k.events_per_s:,.0f} | {k.max_ms:.1f} "
              f"| {m.median_us:.1f} | {m.mean_us:.1f} | {m.events_per_s:,.0f} | {k.median_us / m.median_us:.2f}x "
              f"| {ref:.2f} |")
    if len(rows) >= 2:
        a, b = rows[-2][0], rows[-1][0]
        print(f"\nkernel growth {a.live:,} -> {b.live:,}: {b.median_us / a.median_us:.2f}x (median)")
    print("machine ref: one attrs.evolve of a 5-field frozen class, measured before and after each row "
          "(TOOLING.md measured about 2.3 µs on this machine)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
