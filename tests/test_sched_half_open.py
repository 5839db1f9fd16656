"""Worked examples of the half-open gate after a 429 pause (SPEC.md 1.5).

One provider at 60 requests/min; two lanes (one reserved for interactive). Tasks t1
and t2 (agent a) start at 0, t3 (agent b, so not a burst) waits. 429s for t1 at 10
and t2 at 20 pause the provider until 520; at 520 exactly one probe step goes out.
"""

from __future__ import annotations

from agentrm.kernel import (
    ClockAdvanced,
    GateState,
    RateLimited,
    SchedulerEffect,
    SchedulerEvent,
    SchedulerState,
    StartTask,
    StepFinished,
    Submit,
    TaskFailed,
    TaskFinished,
    WakeAt,
    YieldTask,
    gate_view,
    step,
    tick,
)
from agentrm.kernel.scheduler.state import SCALE
from agentrm.specs import check_scheduler_transition

from test_sched_examples import I, R, W, rec, run, view

PAUSED = GateState(500, 30 * SCALE, 3_000 * SCALE, 20, 520, 0, True, "")
"""After both 429s: cut once (1000 -> 500 permille), buckets clamped, paused until 520."""


def paused_state() -> SchedulerState:
    """t1 and t2 got 429s at 10 and 20; t3 waits; the provider is paused until 520."""
    s = run([Submit(0, "t1", "a", I), Submit(0, "t2", "a", I), Submit(0, "t3", "b", I),
             RateLimited(10, "t1", "default", retry_after_ms=500)])
    r = step(s, RateLimited(20, "t2", "default", retry_after_ms=500))
    assert r.effects == (YieldTask("t2"), WakeAt(520))
    return r.state


def probing_state() -> SchedulerState:
    """The pause is over at 520: t3, the oldest waiting task, holds the probe on lane 0."""
    s, effects = checked(paused_state(), ClockAdvanced(520))
    assert effects == (StartTask("t3", 0, 0), WakeAt(1_520))
    return s


def checked(before: SchedulerState, event: SchedulerEvent) -> tuple[SchedulerState, tuple[SchedulerEffect, ...]]:
    """Apply ``event`` and assert every scheduler invariant (S1-S16) on the transition."""
    r = step(before, event)
    assert check_scheduler_transition(before, event, r) == ()
    return r.state, r.effects


def test_second_429_of_a_pause_extends_it_without_cutting_again() -> None:
    """A 429 for a step admitted before the pause began extends the pause but does not cut the limit again."""
    s = paused_state()
    assert view(s) == {
        "now_ms": 20,
        "tasks": {
            "t1": rec("t1", 0, W, used_ms=10, started_ms=0, enqueue_seq=3, queue_pos=1),
            "t2": rec("t2", 1, W, used_ms=20, started_ms=0, enqueue_seq=4, queue_pos=2),
            "t3": rec("t3", 2, W, agent="b", enqueue_seq=2),
        },
        "children": {}, "queues": {(0, I, "default"): ("t3", "t1", "t2")}, "lanes": (None, None),
        "gates": {"default": PAUSED},
        "admission_window": 0, "admissions": {"a": 2, "b": 1}, "waiting": 3, "live": 3,
        "next_submit_seq": 3, "next_enqueue_seq": 5, "next_boost_ms": 10_000, "last_wake_ms": 520,
    }


def test_pause_end_admits_exactly_one_probe() -> None:
    """When the pause ends one step goes out (the probe) although a lane and the buckets have room for more."""
    s = probing_state()
    assert s.lanes == ("t3", None)
    assert s.tasks["t3"] == rec("t3", 2, R, agent="b", lane=0, started_ms=520, slice_start_ms=520,
                                last_progress_ms=520, enqueue_seq=2)
    assert gate_view(s, "default") == GateState(500, 29 * SCALE, 3_000 * SCALE, 520, 520, 0, True, "t3")
    assert s.queues[(0, I, "default")].task_ids() == ("t1", "t2")


def test_probe_success_closes_the_gate_and_dispatches_the_rest() -> None:
    """The probe's StepFinished closes the circuit: the probe continues and waiting tasks start at once."""
    s, effects = checked(probing_state(), StepFinished(600, "t3", 0, 0))
    assert effects == (StartTask("t1", 1, 0), WakeAt(1_600))
    assert gate_view(s, "default") == GateState(500, 29 * SCALE + 80 * 30 - 2 * SCALE, 3_000 * SCALE, 600, 520, 1)
    assert s.lanes == ("t3", "t1")


def test_probe_finishing_its_task_closes_the_gate() -> None:
    """A probe whose task finishes completed its step: the circuit closes and both free lanes fill."""
    s, effects = checked(probing_state(), TaskFinished(600, "t3"))
    assert effects == (StartTask("t1", 0, 0), StartTask("t2", 1, 0), WakeAt(1_600))
    assert gate_view(s, "default") == GateState(500, 29 * SCALE + 80 * 30 - 2 * SCALE, 3_000 * SCALE, 600, 520, 0)


def test_429_on_the_probe_cuts_again_and_pauses_again() -> None:
    """A 429 for the probe is a new pause: the limit is cut again, the probe freed, the gate stays half-open."""
    s, effects = checked(probing_state(), RateLimited(600, "t3", "default", retry_after_ms=500))
    assert effects == (YieldTask("t3"), WakeAt(1_100))
    assert gate_view(s, "default") == GateState(250, 15 * SCALE, 1_500 * SCALE, 600, 1_100, 0, True, "")
    assert s.lanes == (None, None)


def test_failed_probe_frees_it_for_the_next_probe() -> None:
    """A probe whose task fails frees the probe: the next waiting task becomes the probe, and only it."""
    s, effects = checked(probing_state(), TaskFailed(600, "t3"))
    assert effects == (StartTask("t1", 0, 0), WakeAt(1_600))
    assert gate_view(s, "default") == GateState(500, 29 * SCALE + 80 * 30 - SCALE, 3_000 * SCALE, 600, 520, 0, True, "t1")
    assert s.lanes == ("t1", None)


def test_non_probe_success_does_not_close_and_yields() -> None:
    """A step admitted before the pause that finishes while the probe is out yields and leaves the gate half-open."""
    s = run([Submit(0, "t1", "a", I), Submit(0, "t2", "a", I), Submit(0, "t3", "b", I),
             RateLimited(10, "t1", "default", retry_after_ms=500)])
    r = tick(s, 510)
    assert r.effects == (StartTask("t3", 0, 0), WakeAt(1_000))  # t2 still runs from before the pause
    s, effects = checked(r.state, StepFinished(600, "t2", 0, 0))
    assert effects == (YieldTask("t2"), WakeAt(1_510))
    assert gate_view(s, "default") == GateState(500, 29 * SCALE + 90 * 30, 3_000 * SCALE, 600, 510, 1, True, "t3")
    assert s.lanes == ("t3", None)
