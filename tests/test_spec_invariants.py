"""The scheduler invariants (SPEC.md section 2) hold on good states and catch corrupted ones.

Every predicate is shown to pass on a hand-built consistent state and on states the
kernel produces, and to fail on a state (or transition) corrupted in exactly the way
it forbids -- so none of them is vacuous.
"""

from __future__ import annotations

import attrs
import immutables
import pytest

from agentrm.kernel.common import Step
from agentrm.kernel.scheduler.config import ClassConfig, ProviderConfig, SchedulerConfig, TaskClass
from agentrm.kernel.scheduler.effects import SchedulerEffect, StartTask, YieldTask
from agentrm.kernel.scheduler.events import ClockAdvanced, StepFinished
from agentrm.kernel.scheduler.lifecycle import Phase
from agentrm.kernel.scheduler.state import (
    SCALE,
    FifoQueue,
    SchedulerState,
    TaskRecord,
    derive_lane_deadlines,
    derive_queue_order,
    derive_running_by_class,
    derive_waiting_by_class,
)
from agentrm.specs import Violation, check_scheduler, check_scheduler_transition
from agentrm.specs import scheduler_invariants as inv

CONFIG = SchedulerConfig(
    lanes=3,
    level_allotments_ms=(100, 200, 400),
    boost_period_ms=1_000,
    interactive=ClassConfig(entry_level=0, reserved_lanes=1, idle_ms_reap=500, run_ms_limit=0),
    batch=ClassConfig(entry_level=1, reserved_lanes=0, idle_ms_reap=500, run_ms_limit=2_000),
    background=ClassConfig(entry_level=2, reserved_lanes=0, idle_ms_reap=500, run_ms_limit=0),
    providers=(ProviderConfig("default", 60, 6_000),),
)

StepT = Step[SchedulerState, SchedulerEffect]


def task(tid: str, seq: int, phase: Phase, *, cls: TaskClass = TaskClass.BATCH, level: int = 1,
         lane: int | None = None, enq: int = 0, parent: str | None = None, pos: int = 0) -> TaskRecord:
    """A task record with plausible defaults at time 100."""
    return TaskRecord(
        task_id=tid, agent="a", task_class=cls, provider="default", parent=parent, submit_seq=seq,
        phase=phase, level=level, used_ms=0, last_progress_ms=100, demand_tokens=10, enqueue_seq=enq,
        queue_pos=pos, lane=lane, started_ms=100 if phase is Phase.RUNNING else None,
        slice_start_ms=100, charged_tokens=10,
    )


def good_state() -> SchedulerState:
    """A consistent state at t=200: r0 runs on lane 0, w1 and w2 wait in one queue, f3 finished, c4 child of r0 waits."""
    tasks = {
        "r0": task("r0", 0, Phase.RUNNING, lane=0, enq=0),
        "w1": task("w1", 1, Phase.WAITING, enq=1, pos=0),
        "w2": task("w2", 2, Phase.WAITING, enq=3, pos=1),
        "f3": task("f3", 3, Phase.FINISHED, enq=2),
        "c4": task("c4", 4, Phase.WAITING, cls=TaskClass.BACKGROUND, level=2, enq=4, parent="r0", pos=0),
    }
    q1, _ = FifoQueue().push("w1")
    q1, _ = q1.push("w2")
    q2, _ = FifoQueue().push("c4")
    base = SchedulerState.initial(CONFIG)
    # Both buckets empty, so the waiting tasks are legitimately not dispatchable.
    gate = attrs.evolve(base.gates["default"], requests_scaled=0, tokens_scaled=0, refilled_ms=200)
    return rederive(attrs.evolve(
        base, now_ms=200, tasks=immutables.Map(tasks),
        children=immutables.Map({"r0": ("c4",)}),
        queues=immutables.Map({(1, TaskClass.BATCH, "default"): q1, (2, TaskClass.BACKGROUND, "default"): q2}),
        lanes=("r0", None, None), gates=immutables.Map({"default": gate}),
        waiting=3, live=4, next_submit_seq=5, next_enqueue_seq=5,
    ))


def rederive(s: SchedulerState) -> SchedulerState:
    """``s`` with its derived indexes recomputed by the kernel's own functions."""
    return attrs.evolve(s, lane_deadlines=derive_lane_deadlines(s), running_by_class=derive_running_by_class(s),
                        queue_order=derive_queue_order(s), waiting_by_class=derive_waiting_by_class(s))


def with_task(s: SchedulerState, tid: str, **changes: object) -> SchedulerState:
    """``s`` with one task's record changed."""
    return attrs.evolve(s, tasks=s.tasks.set(tid, attrs.evolve(s.tasks[tid], **changes)))


def with_gate(s: SchedulerState, **changes: object) -> SchedulerState:
    """``s`` with the default provider's gate changed."""
    return attrs.evolve(s, gates=s.gates.set("default", attrs.evolve(s.gates["default"], **changes)))


def ids(vs: tuple[Violation, ...]) -> list[str]:
    """The invariant ids of some violations, in order, without repeats."""
    return list(dict.fromkeys(v.invariant for v in vs))


def test_good_states_satisfy_every_state_invariant() -> None:
    """The initial state and a hand-built consistent state violate nothing."""
    assert check_scheduler(SchedulerState.initial(CONFIG)) == ()
    assert check_scheduler(good_state()) == ()


CORRUPTIONS = [
    # S1: a waiting task dropped from its queue is lost.
    ("S1", lambda s: attrs.evolve(s, queues=s.queues.delete((2, TaskClass.BACKGROUND, "default")))),
    # S1: a finished task still holding a lane.
    ("S1", lambda s: attrs.evolve(s, lanes=("r0", "f3", None))),
    # S1: the waiting counter drifted.
    ("S1", lambda s: attrs.evolve(s, waiting=2)),
    # S1: the task on lane 0 thinks it is on lane 1.
    ("S1", lambda s: with_task(s, "r0", lane=1)),
    # S2: a fourth lane appeared.
    ("S2", lambda s: attrs.evolve(s, lanes=s.lanes + (None,))),
    # S3: a background task (entry level 2) waiting at level 1, in the level-1 queue.
    ("S3", lambda s: attrs.evolve(
        with_task(s, "c4", level=1),
        queues=s.queues.delete((2, TaskClass.BACKGROUND, "default")).set(
            (1, TaskClass.BACKGROUND, "default"), s.queues[(2, TaskClass.BACKGROUND, "default")]))),
    # S4: two waiting tasks out of FIFO order.
    ("S4", lambda s: with_task(with_task(s, "w1", enqueue_seq=3), "w2", enqueue_seq=1)),
    # S4: an enqueue number not yet issued.
    ("S4", lambda s: attrs.evolve(s, next_enqueue_seq=4)),
    # S4: a queue whose head cursor skips its first task.
    ("S4", lambda s: attrs.evolve(s, queues=s.queues.set(
        (1, TaskClass.BATCH, "default"), attrs.evolve(s.queues[(1, TaskClass.BATCH, "default")], head=1)))),
    # S1: a running task on a provider that is not configured.
    ("S1", lambda s: with_task(s, "r0", provider="nope")),
    # S5: a gate refilled up to a time after now.
    ("S5", lambda s: with_gate(s, refilled_ms=201)),
    # S5: a token bucket above one minute of the rate.
    ("S5", lambda s: with_gate(s, tokens_scaled=6_000 * SCALE + 1)),
    # S5: a negative request bucket (a step charged beyond the limit).
    ("S5", lambda s: with_gate(s, requests_scaled=-1)),
    # S6: the effective limit below its floor.
    ("S6", lambda s: with_gate(s, limit_permille=99)),
    # S6: a streak that should have reset.
    ("S6", lambda s: with_gate(s, streak=10)),
    # S7: a running task idle for its whole idle limit.
    ("S7", lambda s: attrs.evolve(s, now_ms=600)),
    # S7: a batch task past its run limit (with fresh progress).
    ("S7", lambda s: with_task(attrs.evolve(s, now_ms=2_100), "r0", last_progress_ms=2_000, slice_start_ms=2_000)),
    # S7: a batch task started now although its run limit ran out while it waited (SPEC 1.4).
    ("S7", lambda s: with_task(attrs.evolve(s, now_ms=2_100), "r0", last_progress_ms=2_100, slice_start_ms=2_100)),
    # S8: a live child of a reaped parent.
    ("S8", lambda s: attrs.evolve(with_task(s, "r0", phase=Phase.REAPED, lane=None),
                                  lanes=(None, None, None), live=3)),
    # S14: a child missing from its parent's children.
    ("S14", lambda s: attrs.evolve(s, children=immutables.Map())),
    # S15: a closed gate holding a probe.
    ("S15", lambda s: with_gate(s, probe="r0")),
    # S15: a half-open gate whose probe is a waiting task.
    ("S15", lambda s: with_gate(s, half_open=True, probe="w1")),
]
RAW_CORRUPTIONS = [
    # S14: a stale reap deadline for lane 0.
    ("S14", lambda s: attrs.evolve(s, lane_deadlines=(999, None, None))),
    # S14: a stale running count.
    ("S14", lambda s: attrs.evolve(s, running_by_class=(0, 0, 0))),
    # S14: a queue order missing a non-empty queue.
    ("S14", lambda s: attrs.evolve(s, queue_order=s.queue_order[1:])),
    # S14: a stale waiting count.
    ("S14", lambda s: attrs.evolve(s, waiting_by_class=(0, 0, 0))),
]


@pytest.mark.parametrize(("expected", "corrupt"), CORRUPTIONS, ids=[c[0] for c in CORRUPTIONS])
def test_each_state_invariant_catches_its_corruption(expected: str, corrupt: object) -> None:
    """Each corruption is reported by exactly the invariant that forbids it."""
    assert callable(corrupt)
    vs = check_scheduler(rederive(corrupt(good_state())))
    assert ids(vs) == [expected], vs
    assert all(isinstance(v.message, str) and v.message for v in vs)


@pytest.mark.parametrize(("expected", "corrupt"), RAW_CORRUPTIONS, ids=[c[0] for c in RAW_CORRUPTIONS])
def test_stale_indexes_are_caught(expected: str, corrupt: object) -> None:
    """A derived index that disagrees with the tasks is reported by S14 alone."""
    assert callable(corrupt)
    assert ids(check_scheduler(corrupt(good_state()))) == [expected]


def step_of(state: SchedulerState, *effects: SchedulerEffect) -> StepT:
    """A Step as a reducer would return it."""
    return Step(state, tuple(effects))


def test_each_transition_invariant_catches_its_corruption() -> None:
    """S9-S13 and S16 pass on a consistent no-op step and each fails on the transition it forbids."""
    s = good_state()
    tick = ClockAdvanced(200)
    assert check_scheduler_transition(s, tick, step_of(s)) == ()

    # S9: w1 (level 1) started while interactive i5 at level 0 was dispatchable
    # (the gate has room for two steps; i5 may use the reserved interactive lane).
    rich = with_gate(s, requests_scaled=2 * SCALE, tokens_scaled=6_000 * SCALE)
    i5 = task("i5", 5, Phase.WAITING, cls=TaskClass.INTERACTIVE, level=0, enq=5)
    q, _ = FifoQueue().push("i5")
    before = attrs.evolve(rich, tasks=rich.tasks.set("i5", i5), waiting=4, live=5, next_submit_seq=6,
                          next_enqueue_seq=6, queues=rich.queues.set((0, TaskClass.INTERACTIVE, "default"), q))
    q1 = before.queues[(1, TaskClass.BATCH, "default")].remove(0)
    after = attrs.evolve(
        with_task(before, "w1", phase=Phase.RUNNING, lane=1, started_ms=200, slice_start_ms=200,
                  last_progress_ms=200),
        lanes=("r0", "w1", None), waiting=3, queues=before.queues.set((1, TaskClass.BATCH, "default"), q1),
        gates=before.gates.set("default", attrs.evolve(before.gates["default"], requests_scaled=SCALE,
                                                       tokens_scaled=5_990 * SCALE)))
    vs = check_scheduler_transition(before, tick, step_of(after, StartTask("w1", 1, 1)))
    assert "S9" in ids(vs) and "S10" in ids(vs)
    assert inv.dispatch_respects_priority(before, tick, step_of(after, StartTask("w1", 1, 1)))
    # S9 alone: levels out of order.
    assert inv.dispatch_respects_priority(s, tick, step_of(s, StartTask("a", 1, 2), StartTask("b", 2, 1)))

    # S11: r0 continued after a StepFinished although its provider is paused.
    paused = with_gate(s, paused_until_ms=300)
    assert ids(check_scheduler_transition(s, StepFinished(200, "r0"), step_of(paused))) == ["S11"]
    # ... but yielding is fine.
    assert check_scheduler_transition(s, StepFinished(200, "r0"), step_of(paused, YieldTask("r0"))) == ()

    # S16: two steps started on a half-open gate (and neither the other one is its probe).
    half_open = with_gate(s, half_open=True, probe="r0")
    assert check_scheduler_transition(s, tick, step_of(half_open)) == ()
    assert inv.half_open_admits_one(s, tick, step_of(half_open, StartTask("r0", 0, 1), StartTask("w1", 1, 1)))
    assert inv.half_open_admits_one(s, tick, step_of(half_open, StartTask("w1", 1, 1)))
    assert inv.half_open_admits_one(s, tick, step_of(half_open, StartTask("r0", 0, 1))) == ()

    # S12: a tick at the boost instant must leave every live task at entry level, nothing used.
    boosted = attrs.evolve(s, now_ms=1_000, next_boost_ms=2_000)
    assert inv.boost_resets_levels(s, ClockAdvanced(1_000), step_of(boosted)) == ()
    assert inv.boost_resets_levels(s, ClockAdvanced(1_000), step_of(with_task(boosted, "w2", used_ms=7)))
    assert inv.boost_resets_levels(s, ClockAdvanced(1_000), step_of(attrs.evolve(boosted, next_boost_ms=1_000)))

    # S13: a finished task resurrected, and a started terminal task, and time going back.
    back = with_task(s, "f3", phase=Phase.WAITING)
    assert inv.terminal_is_final(s, tick, step_of(back))
    assert inv.terminal_is_final(s, tick, step_of(s, StartTask("f3", 1, 1)))
    assert inv.terminal_is_final(s, tick, step_of(attrs.evolve(s, now_ms=199)))
    assert inv.terminal_is_final(s, tick, step_of(attrs.evolve(s, tasks=s.tasks.delete("f3"))))


def test_violation_renders_its_id_name_and_message() -> None:
    """A Violation prints as 'id name: message' for CLI output."""
    v = Violation("S5", "buckets_within_capacity", "provider 'default': ...")
    assert str(v) == "S5 buckets_within_capacity: provider 'default': ..."
