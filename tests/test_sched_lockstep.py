"""Refinement: the fast scheduler kernel and the reference model agree on every effect.

A Hypothesis state machine feeds the same events to
:func:`agentrm.kernel.scheduler.transitions.step` and
:func:`agentrm.specs.sched_model.model_step` -- submissions (fresh, duplicate, with
known, unknown or ended parents, unknown providers), heartbeats, finished steps,
finishes, failures, 429s with and without Retry-After, clock advances (small steps,
jumps past idle limits and boost instants, and clocks going backwards) -- and asserts
after every event that both emitted exactly the same effects and agree on every task's
phase, level, service time and lane and on every provider's gate. The mutable
benchmark implementation (:class:`agentrm.adapters.bench_kernel.MutableScheduler`) is
fed the same events and must emit the same effects too.
"""

from __future__ import annotations

from typing import Any

import attrs

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, precondition, rule

from agentrm.adapters.bench_kernel import MutableScheduler
from agentrm.kernel.scheduler.config import ClassConfig, ProviderConfig, SchedulerConfig, TaskClass
from agentrm.kernel.scheduler.effects import CancelReason, CancelTask, SchedulerEffect, StartTask, WakeAt, YieldTask
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
from agentrm.kernel.scheduler.lifecycle import Phase
from agentrm.kernel.scheduler.state import SchedulerState
from agentrm.kernel.scheduler.transitions import step
from agentrm.specs.sched_model import MPhase, ModelState, model_step
from agentrm.kernel import gate_view

from strategies_sched import AGENTS, configs

SMALL_DT = st.integers(0, 120)
"""Most events are close together, so steps finish within allotments and idle limits."""
ANY_DT = st.one_of(SMALL_DT, SMALL_DT, st.integers(0, 2_500))
"""Sometimes a jump: past idle limits (<= 400 ms), run limits and boost periods (<= 2 s)."""
TOKENS = st.one_of(st.integers(0, 50), st.integers(0, 3_000))


@st.composite
def lockstep_configs(draw: st.DrawFn) -> SchedulerConfig:
    """The shared small configs; half of them with generous providers and idle limits so lanes fill up."""
    config = draw(configs())
    if draw(st.booleans()):
        providers = tuple(
            attrs.evolve(p, requests_per_min=draw(st.integers(600, 6_000)),
                         tokens_per_min=draw(st.integers(20_000, 1_000_000)))
            for p in config.providers
        )
        # Long idle limits too, so lanes fill up and preemption at step boundaries matters.
        idle = draw(st.integers(500, 3_000))
        config = attrs.evolve(
            config, providers=providers, queue_cap=draw(st.integers(3, 12)),
            interactive=attrs.evolve(config.interactive, idle_ms_reap=idle),
            batch=attrs.evolve(config.batch, idle_ms_reap=idle),
            background=attrs.evolve(config.background, idle_ms_reap=idle),
        )
    return config


def project_kernel(s: SchedulerState) -> tuple[Any, ...]:
    """The observable state of the kernel, in a form comparable with the model's."""
    tasks = tuple(
        (t.task_id, t.phase.value, t.level, t.used_ms, t.lane, t.demand_tokens)
        for t in sorted(s.tasks.values(), key=lambda t: t.submit_seq)
    )
    gates = tuple(
        (g.limit_permille, g.streak, g.requests_scaled, g.tokens_scaled, g.paused_until_ms, g.half_open, g.probe)
        for g in (gate_view(s, p.name) for p in s.config.providers)
    )
    return s.now_ms, s.next_boost_ms, s.last_wake_ms, tasks, gates


def project_model(m: ModelState) -> tuple[Any, ...]:
    """The observable state of the model, shaped like :func:`project_kernel`."""
    tasks = tuple(
        (t.task_id, t.phase.value, t.level, t.used_ms, None if t.lane < 0 else t.lane, t.demand)
        for t in m.tasks
    )
    gates = tuple((p.e, p.streak, p.req, p.tok, p.paused_until_ms, p.half_open, p.probe) for p in m.providers)
    return m.now_ms, m.next_boost_ms, m.last_wake_ms, tasks, gates


class Lockstep(RuleBasedStateMachine):
    """Drives kernel and model with identical events; any divergence fails the run."""

    ids = Bundle("ids")

    def __init__(self) -> None:
        super().__init__()
        self.kernel: SchedulerState | None = None
        self.model: ModelState | None = None
        self.bench: MutableScheduler | None = None
        self.now = 0
        self.fresh = 0
        self.providers: tuple[str, ...] = ()

    @initialize(config=lockstep_configs())
    def start(self, config: SchedulerConfig) -> None:
        """Both sides start empty with the same config."""
        self.kernel = SchedulerState.initial(config)
        self.model = ModelState.initial(config)
        self.bench = MutableScheduler(config)
        self.providers = tuple(p.name for p in config.providers)

    def apply(self, event: SchedulerEvent) -> tuple[SchedulerEffect, ...]:
        """Feed ``event`` to both sides and demand identical effects and observable state."""
        assert self.kernel is not None and self.model is not None
        kstep = step(self.kernel, event)
        self.model, meffects = model_step(self.model, event)
        assert kstep.effects == meffects, f"{event}:\n kernel {kstep.effects}\n model  {meffects}"
        assert self.bench is not None
        beffects = self.bench.step(event)
        assert kstep.effects == beffects, f"{event}:\n kernel {kstep.effects}\n bench  {beffects}"
        self.kernel = kstep.state
        assert project_kernel(self.kernel) == project_model(self.model), event
        self.now = max(self.now, event.at_ms)
        return kstep.effects

    def running_ids(self) -> list[str]:
        """Ids of the tasks holding a lane, in lane order."""
        assert self.kernel is not None
        return [t for t in self.kernel.lanes if t is not None]

    def has_running(self) -> bool:
        """Whether some task holds a lane."""
        return self.kernel is not None and bool(self.running_ids())

    # -- submissions ------------------------------------------------------------------

    @rule(target=ids, dt=ANY_DT, agent=st.sampled_from(AGENTS), cls=st.sampled_from(list(TaskClass)),
          tokens=TOKENS, other_provider=st.booleans())
    def submit(self, dt: int, agent: str, cls: TaskClass, tokens: int, other_provider: bool) -> str:
        """A fresh root task."""
        tid = f"t{self.fresh}"
        self.fresh += 1
        provider = self.providers[-1] if other_provider else self.providers[0]
        self.apply(Submit(self.now + dt, tid, agent, cls, provider, tokens))
        return tid

    @rule(target=ids, dt=SMALL_DT, parent=ids, cls=st.sampled_from(list(TaskClass)), tokens=TOKENS)
    def submit_child(self, dt: int, parent: str, cls: TaskClass, tokens: int) -> str:
        """A sub-agent task of an existing (maybe ended) task."""
        tid = f"t{self.fresh}"
        self.fresh += 1
        self.apply(Submit(self.now + dt, tid, "a", cls, self.providers[0], tokens, parent))
        return tid

    @precondition(lambda self: self.kernel is not None and self.kernel.live > 0)
    @rule(target=ids, data=st.data(), dt=SMALL_DT, cls=st.sampled_from(list(TaskClass)), tokens=TOKENS)
    def submit_child_of_live(self, data: st.DataObject, dt: int, cls: TaskClass, tokens: int) -> str:
        """A sub-agent task of a live task (so that reaps and failures cascade)."""
        assert self.kernel is not None
        live = sorted((t.submit_seq, t.task_id) for t in self.kernel.tasks.values() if not t.phase.terminal)
        parent = data.draw(st.sampled_from([tid for _, tid in live]))
        return self.submit_child(dt, parent, cls, tokens)

    @rule(dt=SMALL_DT, tid=ids, agent=st.sampled_from(AGENTS), cls=st.sampled_from(list(TaskClass)))
    def submit_duplicate(self, dt: int, tid: str, agent: str, cls: TaskClass) -> None:
        """Repeating a submission id is refused and changes nothing."""
        self.apply(Submit(self.now + dt, tid, agent, cls, self.providers[0], 1))

    @rule(dt=SMALL_DT, bad=st.sampled_from(["ghost-parent", "nope-provider", "empty-agent", "negative"]))
    def submit_bad(self, dt: int, bad: str) -> None:
        """Submissions with an unknown parent or provider, an empty agent or negative tokens."""
        tid = f"t{self.fresh}"
        self.fresh += 1
        ev = {
            "ghost-parent": Submit(self.now + dt, tid, "a", TaskClass.BATCH, self.providers[0], 1, "ghost"),
            "nope-provider": Submit(self.now + dt, tid, "a", TaskClass.BATCH, "nope", 1),
            "empty-agent": Submit(self.now + dt, tid, "", TaskClass.BATCH, self.providers[0], 1),
            "negative": Submit(self.now + dt, tid, "a", TaskClass.BATCH, self.providers[0], -1),
        }[bad]
        self.apply(ev)

    # -- progress from running tasks ----------------------------------------------------

    @precondition(has_running)
    @rule(data=st.data(), dt=SMALL_DT, used=TOKENS, nxt=TOKENS)
    def step_finished(self, data: st.DataObject, dt: int, used: int, nxt: int) -> None:
        """A running task finishes a step (it may continue, be demoted, or yield)."""
        tid = data.draw(st.sampled_from(self.running_ids()))
        self.apply(StepFinished(self.now + dt, tid, used, nxt))

    @precondition(has_running)
    @rule(data=st.data(), dt=SMALL_DT)
    def heartbeat(self, data: st.DataObject, dt: int) -> None:
        """A running task says it is alive."""
        self.apply(Heartbeat(self.now + dt, data.draw(st.sampled_from(self.running_ids()))))

    @precondition(has_running)
    @rule(data=st.data(), dt=SMALL_DT)
    def finished(self, data: st.DataObject, dt: int) -> None:
        """A running task completes."""
        self.apply(TaskFinished(self.now + dt, data.draw(st.sampled_from(self.running_ids()))))

    @precondition(has_running)
    @rule(data=st.data(), dt=SMALL_DT)
    def failed(self, data: st.DataObject, dt: int) -> None:
        """A running task fails; its live sub-agents are cancelled."""
        self.apply(TaskFailed(self.now + dt, data.draw(st.sampled_from(self.running_ids())), "boom"))

    def live_parents(self) -> list[str]:
        """Live tasks with a live sub-agent, in submission order."""
        assert self.kernel is not None
        tasks = self.kernel.tasks
        found = {t.parent for t in tasks.values() if t.parent is not None and not t.phase.terminal}
        return [t.task_id for t in sorted(tasks.values(), key=lambda t: t.submit_seq)
                if t.task_id in found and not t.phase.terminal]

    @precondition(lambda self: self.kernel is not None and bool(self.live_parents()))
    @rule(data=st.data(), dt=SMALL_DT)
    def fail_parent(self, data: st.DataObject, dt: int) -> None:
        """A live task with live sub-agents fails: they are cancelled in submission order."""
        self.apply(TaskFailed(self.now + dt, data.draw(st.sampled_from(self.live_parents())), "boom"))

    @precondition(has_running)
    @rule(data=st.data(), dt=SMALL_DT, retry=st.one_of(st.none(), st.integers(0, 800)))
    def rate_limited(self, data: st.DataObject, dt: int, retry: int | None) -> None:
        """A running task's step gets a 429, with or without Retry-After."""
        tid = data.draw(st.sampled_from(self.running_ids()))
        assert self.kernel is not None
        self.apply(RateLimited(self.now + dt, tid, self.kernel.tasks[tid].provider, retry))

    # -- events about any task (late, unknown, wrong phase) ---------------------------------

    @rule(dt=SMALL_DT, tid=st.one_of(ids, ids, ids, st.sampled_from(["unknown", ""])),
          kind=st.sampled_from(["heartbeat", "step", "finished", "failed", "429", "429-nope", "bad-step",
                                "backwards"]))
    def any_event(self, dt: int, tid: str, kind: str) -> None:
        """Any event about any id: refused (unknown, terminal, not running, invalid, clock) or applied."""
        if kind == "backwards" and self.now > 0:
            # An event dated before the kernel's clock is refused and changes nothing.
            before = self.kernel
            effects = self.apply(Heartbeat(max(0, self.now - 1 - dt), tid))
            assert len(effects) == 1 and self.kernel is before
            return
        at = self.now + dt
        prov = self.providers[0]
        ev: SchedulerEvent = {
            "heartbeat": Heartbeat(at, tid),
            "step": StepFinished(at, tid, 5, 5),
            "finished": TaskFinished(at, tid),
            "failed": TaskFailed(at, tid, "boom"),
            "429": RateLimited(at, tid, prov, None),
            "429-nope": RateLimited(at, tid, "nope", 10),
            "bad-step": StepFinished(at, tid, -1, 0),
            "backwards": ClockAdvanced(at),
        }[kind]
        self.apply(ev)

    # -- time -------------------------------------------------------------------------------

    @rule(dt=st.one_of(SMALL_DT, st.integers(100, 3_000)))
    def advance(self, dt: int) -> None:
        """Time passes: refills, reaps (idle and run limits), boosts, gate re-opening."""
        self.apply(ClockAdvanced(self.now + dt))

Lockstep.TestCase.settings = settings(
    Lockstep.TestCase.settings, max_examples=300, stateful_step_count=50,
)
TestLockstep = Lockstep.TestCase
TestLockstep.__doc__ = "The kernel emits exactly the model's effects and state for every generated event sequence."


def test_model_phases_mirror_kernel_phases() -> None:
    """The model's phase enum has exactly the kernel's phases, so state projections are comparable."""
    assert [p.value for p in MPhase] == [p.value for p in Phase]


# -- the three reasons to yield at a step boundary (SPEC 1.3), as fixed scenarios ----------------

B, I = TaskClass.BATCH, TaskClass.INTERACTIVE


def two_lane_config(allotments_ms: tuple[int, ...], requests_per_min: int = 600) -> SchedulerConfig:
    """Two lanes, one reserved for interactive work; every class enters at level 0."""
    return SchedulerConfig(
        lanes=2, level_allotments_ms=allotments_ms, boost_period_ms=100_000,
        interactive=ClassConfig(0, 1, 10_000), batch=ClassConfig(0, 0, 10_000),
        background=ClassConfig(0, 0, 10_000),
        providers=(ProviderConfig("default", requests_per_min, 100_000),),
    )


def run_both(config: SchedulerConfig, events: list[SchedulerEvent]) -> list[tuple[SchedulerEffect, ...]]:
    """Every event's effects, after checking that kernel and model emit the same ones."""
    kernel, model = SchedulerState.initial(config), ModelState.initial(config)
    out = []
    for ev in events:
        kstep = step(kernel, ev)
        model, meffects = model_step(model, ev)
        assert kstep.effects == meffects, ev
        kernel = kstep.state
        assert project_kernel(kernel) == project_model(model), ev
        out.append(kstep.effects)
    return out


BUSY = [Submit(0, "i1", "a", I), Submit(0, "b1", "a", B), Submit(0, "b2", "a", B)]
"""i1 takes the interactive lane, b1 the shared one; b2 waits at the same level."""


def test_round_robin_only_once_the_allotment_is_spent() -> None:
    """At the last level a task keeps its lane until its allotment is spent, then yields to its level's next task."""
    assert run_both(two_lane_config((100,)), BUSY + [StepFinished(50, "b1"), StepFinished(150, "b1")]) == [
        (StartTask("i1", 0, 0), WakeAt(10_000)),
        (StartTask("b1", 1, 0),),
        (),
        (),
        (YieldTask("b1"), StartTask("b2", 1, 0)),
    ]


def test_a_demoted_task_yields_to_a_higher_level() -> None:
    """A task that drops a level yields to a waiting higher-level task; the latter keeps its lane."""
    assert run_both(two_lane_config((100, 1_000)), BUSY + [StepFinished(150, "b1"), StepFinished(160, "b2")]) == [
        (StartTask("i1", 0, 0), WakeAt(10_000)),
        (StartTask("b1", 1, 0),),
        (),
        (YieldTask("b1"), StartTask("b2", 1, 0)),
        (),
    ]


def test_a_closed_gate_frees_the_lane() -> None:
    """A task whose next step the gate does not admit yields, and the wake-up moves to the refill."""
    config = two_lane_config((100,), requests_per_min=1)
    assert run_both(config, [Submit(0, "b1", "a", B), StepFinished(10, "b1")]) == [
        (StartTask("b1", 0, 0), WakeAt(10_000)),
        (YieldTask("b1"), WakeAt(60_000)),
    ]


def test_a_closed_gate_makes_no_wake_up_while_every_lane_is_busy() -> None:
    """With every lane busy a gate-blocked head announces no refill deadline; the lane freeing announces it."""
    events: list[SchedulerEvent] = [
        Submit(0, "i1", "a", I, step_tokens=100_000),  # empties the token bucket
        Submit(0, "b1", "a", B, step_tokens=0),
        Submit(0, "b2", "a", B, step_tokens=1_000),  # admitted at 600 ms, but no lane is free
        TaskFinished(100, "b1"),
        ClockAdvanced(600),
    ]
    assert run_both(two_lane_config((1_000,)), events) == [
        (StartTask("i1", 0, 0), WakeAt(10_000)),
        (StartTask("b1", 1, 0),),
        (),
        (WakeAt(600),),
        (StartTask("b2", 1, 0), WakeAt(10_000)),
    ]


def test_a_closed_gate_makes_no_wake_up_while_the_free_lane_is_reserved_for_another_class() -> None:
    """A free lane reserved for interactive work does not make a batch head's refill a wake-up."""
    events: list[SchedulerEvent] = [
        Submit(0, "b1", "a", B, step_tokens=100_000),  # takes the shared lane, empties the token bucket
        Submit(0, "b2", "a", B, step_tokens=1_000),  # admitted at 600 ms; only the interactive lane is free
        TaskFinished(100, "b1"),
        ClockAdvanced(600),
    ]
    assert run_both(two_lane_config((1_000,)), events) == [
        (StartTask("b1", 0, 0), WakeAt(10_000)),
        (),
        (WakeAt(600),),
        (StartTask("b2", 0, 0), WakeAt(10_600)),
    ]


def test_the_gate_wake_up_follows_the_smallest_head_that_may_take_the_lane() -> None:
    """A small head whose class cannot take the free lane does not hide the refill an eligible head needs."""
    config = SchedulerConfig(
        lanes=2, boost_period_ms=100_000, interactive=ClassConfig(0, 1, 300_000),
        batch=ClassConfig(1, 0, 300_000), background=ClassConfig(2, 0, 300_000),
        providers=(ProviderConfig("a", 60, 6_000),),
    )
    events: list[SchedulerEvent] = [
        Submit(0, "b1", "x", B, "a", 0),  # takes the shared lane
        Submit(0, "i1", "y", I, "a", 6_000),  # takes the interactive lane, empties the token bucket
        Submit(0, "b2", "x", B, "a", 0),  # admissible now, but no lane it may take
        Submit(0, "i2", "y", I, "a", 1_000),
        TaskFinished(10, "i1"),  # the interactive lane frees; i2 is admitted at 10 s
        ClockAdvanced(10_000),
    ]
    assert run_both(config, events) == [
        (StartTask("b1", 0, 1), WakeAt(100_000)),
        (StartTask("i1", 1, 0),),
        (),
        (),
        (WakeAt(10_000),),
        (StartTask("i2", 1, 0), WakeAt(100_000)),
    ]


def test_any_demand_starts_on_a_full_bucket() -> None:
    """A step demand beyond every threshold (over 2**62 tokens) is capped like any other and starts on a full bucket."""
    assert run_both(two_lane_config((1_000,)), [Submit(0, "b1", "a", B, step_tokens=2**62 + 1)]) == [
        (StartTask("b1", 0, 0), WakeAt(10_000)),
    ]


def test_a_task_past_its_run_limit_is_reaped_from_its_queue_not_dispatched() -> None:
    """A task whose run limit ran out while it waited is reaped when selected (SPEC 1.4), never started again."""
    config = attrs.evolve(two_lane_config((100,)), background=ClassConfig(0, 0, 500, run_ms_limit=300))
    g = TaskClass.BACKGROUND
    events: list[SchedulerEvent] = [Submit(0, "g", "a", g), RateLimited(0, "g", "default"), ClockAdvanced(1_000),
                                    ClockAdvanced(1_500)]
    assert run_both(config, events) == [
        (StartTask("g", 0, 0), WakeAt(300)),
        (YieldTask("g"), WakeAt(1_000)),  # the default Retry-After; its run limit makes no wake-up
        (CancelTask("g", CancelReason.RUN_LIMIT),),  # nothing is live: no wake-up
        (),
    ]
