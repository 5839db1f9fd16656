"""Every scheduler invariant (SPEC.md section 2) holds along any sequence of kernel calls.

A Hypothesis state machine calls the kernel's public transitions -- ``admit``,
``step`` with every kind of event, ``tick``, ``reap`` and ``demote`` -- on task ids
kept in a Bundle. Each state invariant (S1-S8, S14) is an ``@invariant`` checked after every
call; the transition invariants S9-S13 are checked on every ``step``/``admit``/``tick``
(the transitions that dispatch).
"""

from __future__ import annotations

import attrs
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, precondition, rule

from agentrm.kernel.common import Step
from agentrm.kernel.scheduler.config import SchedulerConfig, TaskClass
from agentrm.kernel.scheduler.effects import SchedulerEffect
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
from agentrm.kernel.scheduler.state import SchedulerState
from agentrm.kernel.scheduler.transitions import admit, demote, reap, step, tick
from agentrm.specs import scheduler_invariants as inv
from strategies_sched import AGENTS, configs

SMALL_DT = st.integers(0, 120)
TOKENS = st.one_of(st.integers(0, 50), st.integers(0, 3_000))


@st.composite
def machine_configs(draw: st.DrawFn) -> SchedulerConfig:
    """The shared small configs; half of them with generous providers and idle limits so lanes fill up."""
    config = draw(configs())
    if draw(st.booleans()):
        idle = draw(st.integers(500, 3_000))
        config = attrs.evolve(
            config,
            providers=tuple(attrs.evolve(p, requests_per_min=draw(st.integers(600, 6_000)),
                                         tokens_per_min=draw(st.integers(20_000, 1_000_000)))
                            for p in config.providers),
            queue_cap=draw(st.integers(3, 12)),
            interactive=attrs.evolve(config.interactive, idle_ms_reap=idle),
            batch=attrs.evolve(config.batch, idle_ms_reap=idle),
            background=attrs.evolve(config.background, idle_ms_reap=idle),
        )
    return config


class KernelMachine(RuleBasedStateMachine):
    """The kernel under arbitrary calls, with every invariant checked after each."""

    ids = Bundle("ids")

    def __init__(self) -> None:
        super().__init__()
        self.state: SchedulerState | None = None
        self.last: tuple[SchedulerState, SchedulerEvent, Step[SchedulerState, SchedulerEffect]] | None = None
        self.fresh = 0

    @initialize(config=machine_configs())
    def start(self, config: SchedulerConfig) -> None:
        """An empty scheduler."""
        self.state = SchedulerState.initial(config)

    @property
    def s(self) -> SchedulerState:
        """The current state (always set after initialize)."""
        assert self.state is not None
        return self.state

    def apply(self, event: SchedulerEvent) -> None:
        """Run the reducer and remember the transition for S9-S13."""
        result = step(self.s, event)
        self.last = (self.s, event, result)
        self.state = result.state

    def running(self) -> list[str]:
        """Ids on a lane, in lane order."""
        return [t for t in self.s.lanes if t is not None]

    def has_running(self) -> bool:
        """Whether a task holds a lane."""
        return self.state is not None and bool(self.running())

    def live(self) -> list[str]:
        """Non-terminal ids in submission order."""
        return [t.task_id for t in sorted(self.s.tasks.values(), key=lambda t: t.submit_seq)
                if not t.phase.terminal]

    # -- rules --------------------------------------------------------------------------------

    @rule(target=ids, dt=st.one_of(SMALL_DT, st.integers(0, 2_500)), agent=st.sampled_from(AGENTS),
          cls=st.sampled_from(list(TaskClass)), tokens=TOKENS, last_provider=st.booleans())
    def admit_task(self, dt: int, agent: str, cls: TaskClass, tokens: int, last_provider: bool) -> str:
        """``admit`` a fresh root task."""
        tid = f"t{self.fresh}"
        self.fresh += 1
        provider = self.s.config.providers[-1 if last_provider else 0].name
        sub = Submit(self.s.now_ms + dt, tid, agent, cls, provider, tokens)
        result = admit(self.s, sub, sub.at_ms)
        self.last = (self.s, sub, result)
        self.state = result.state
        return tid

    @precondition(lambda self: self.state is not None and self.s.live > 0)
    @rule(target=ids, data=st.data(), dt=SMALL_DT, cls=st.sampled_from(list(TaskClass)), tokens=TOKENS)
    def submit_child(self, data: st.DataObject, dt: int, cls: TaskClass, tokens: int) -> str:
        """A sub-agent of a live task."""
        tid = f"t{self.fresh}"
        self.fresh += 1
        parent = data.draw(st.sampled_from(self.live()))
        self.apply(Submit(self.s.now_ms + dt, tid, "a", cls, self.s.config.providers[0].name, tokens, parent))
        return tid

    @rule(dt=SMALL_DT, tid=ids, parent=st.one_of(st.none(), ids, st.just("ghost")))
    def submit_again(self, dt: int, tid: str, parent: str | None) -> None:
        """A duplicate id, or a new one under a known, ended or unknown parent."""
        self.apply(Submit(self.s.now_ms + dt, tid, "b", TaskClass.BATCH, "default", 1, None))
        self.fresh += 1
        self.apply(Submit(self.s.now_ms + dt, f"t{self.fresh}", "b", TaskClass.BATCH, "default", 1, parent))

    @precondition(has_running)
    @rule(data=st.data(), dt=SMALL_DT, used=TOKENS, nxt=TOKENS)
    def step_finished(self, data: st.DataObject, dt: int, used: int, nxt: int) -> None:
        """A running task reaches a step boundary."""
        self.apply(StepFinished(self.s.now_ms + dt, data.draw(st.sampled_from(self.running())), used, nxt))

    @precondition(has_running)
    @rule(data=st.data(), dt=SMALL_DT,
          kind=st.sampled_from(["heartbeat", "finished", "failed", "429", "429-retry"]))
    def running_event(self, data: st.DataObject, dt: int, kind: str) -> None:
        """A heartbeat, finish, failure or 429 from a running task."""
        tid = data.draw(st.sampled_from(self.running()))
        at = self.s.now_ms + dt
        provider = self.s.tasks[tid].provider
        self.apply({
            "heartbeat": Heartbeat(at, tid),
            "finished": TaskFinished(at, tid),
            "failed": TaskFailed(at, tid),
            "429": RateLimited(at, tid, provider),
            "429-retry": RateLimited(at, tid, provider, 300),
        }[kind])

    @rule(dt=SMALL_DT, tid=st.one_of(ids, ids, st.just("nobody")),
          kind=st.sampled_from(["heartbeat", "step", "finished", "failed", "429"]))
    def event_about_any_task(self, dt: int, tid: str, kind: str) -> None:
        """Events about waiting, ended or unknown tasks (mostly refused; a waiting task may fail)."""
        at = self.s.now_ms + dt
        self.apply({
            "heartbeat": Heartbeat(at, tid),
            "step": StepFinished(at, tid, 1, 1),
            "finished": TaskFinished(at, tid),
            "failed": TaskFailed(at, tid),
            "429": RateLimited(at, tid, "default", 50),
        }[kind])

    @rule(dt=st.one_of(SMALL_DT, st.integers(100, 3_000)))
    def tick_clock(self, dt: int) -> None:
        """``tick``: time passes (refill, reaps, boosts, dispatch)."""
        ev = ClockAdvanced(self.s.now_ms + dt)
        result = tick(self.s, ev.at_ms)
        self.last = (self.s, ev, result)
        self.state = result.state

    @rule(dt=st.integers(0, 3_000))
    def reap_only(self, dt: int) -> None:
        """``reap``: the advance without dispatch (state invariants only)."""
        self.state = reap(self.s, self.s.now_ms + dt).state
        self.last = None

    @rule(tid=ids, dt=SMALL_DT)
    def demote_task(self, tid: str, dt: int) -> None:
        """``demote`` any task (refused unless it is live)."""
        self.state = demote(self.s, tid, self.s.now_ms + dt).state
        self.last = None

    @precondition(lambda self: self.state is not None and self.s.now_ms > 0)
    @rule(back=st.integers(1, 100))
    def clock_backwards(self, back: int) -> None:
        """An event from the past is refused."""
        self.apply(ClockAdvanced(max(0, self.s.now_ms - back)))

    # -- invariants: S1-S8 on the state, S9-S13 on the last dispatching transition ---------------

    def check(self, problems: tuple[str, ...]) -> None:
        """Fail with every problem a predicate found."""
        assert problems == (), "\n".join(problems)

    @invariant()
    def s1_every_task_placed(self) -> None:
        """S1."""
        if self.state is not None:
            self.check(inv.every_task_placed(self.s))

    @invariant()
    def s2_lanes_within_limits(self) -> None:
        """S2."""
        if self.state is not None:
            self.check(inv.lanes_within_limits(self.s))

    @invariant()
    def s3_levels_in_range(self) -> None:
        """S3."""
        if self.state is not None:
            self.check(inv.levels_in_range(self.s))

    @invariant()
    def s4_queues_fifo(self) -> None:
        """S4."""
        if self.state is not None:
            self.check(inv.queues_fifo(self.s))

    @invariant()
    def s5_buckets_within_capacity(self) -> None:
        """S5."""
        if self.state is not None:
            self.check(inv.buckets_within_capacity(self.s))

    @invariant()
    def s6_aimd_within_bounds(self) -> None:
        """S6."""
        if self.state is not None:
            self.check(inv.aimd_within_bounds(self.s))

    @invariant()
    def s7_no_overdue_running(self) -> None:
        """S7."""
        if self.state is not None:
            self.check(inv.no_overdue_running(self.s))

    @invariant()
    def s8_orphans_cancelled(self) -> None:
        """S8."""
        if self.state is not None:
            self.check(inv.orphans_cancelled(self.s))

    @invariant()
    def s14_indexes_consistent(self) -> None:
        """S14."""
        if self.state is not None:
            self.check(inv.indexes_consistent(self.s))

    @invariant()
    def s9_to_s13_transition(self) -> None:
        """S9-S13 on the last step/admit/tick."""
        if self.last is not None:
            before, event, result = self.last
            for _, pred in inv.TRANSITION_INVARIANTS:
                self.check(pred(before, event, result))


KernelMachine.TestCase.settings = settings(
    KernelMachine.TestCase.settings, max_examples=200, stateful_step_count=50,
)
TestKernelMachine = KernelMachine.TestCase
TestKernelMachine.__doc__ = "Every scheduler invariant holds after every call in any generated sequence."
