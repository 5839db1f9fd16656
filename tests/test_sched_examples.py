"""Worked examples of every scheduler transition, each asserting the whole result.

A result is compared through :func:`view`, which lists every field of the state
(tasks in full, queues as id tuples, lanes, gates, counters), together with the whole
effect tuple.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import pytest

from agentrm.kernel import (
    CancelReason,
    CancelTask,
    ClassConfig,
    ClockAdvanced,
    GateState,
    Heartbeat,
    Phase,
    ProviderConfig,
    RateLimited,
    Refusal,
    RefusalReason,
    SchedulerConfig,
    SchedulerEvent,
    SchedulerState,
    StartTask,
    StepFinished,
    Submit,
    TaskClass,
    TaskFailed,
    TaskFinished,
    TaskRecord,
    WakeAt,
    YieldTask,
    admit,
    demote,
    gate_view,
    next_wake_ms,
    reap,
    step,
    tick,
)
from agentrm.kernel.scheduler.lifecycle import ALLOWED, TERMINAL, IllegalMove, Move, next_phase
from agentrm.kernel.scheduler.state import SCALE

I, B, G = TaskClass.INTERACTIVE, TaskClass.BATCH, TaskClass.BACKGROUND
W, R = Phase.WAITING, Phase.RUNNING

CONFIG = SchedulerConfig(
    lanes=2,
    level_allotments_ms=(100, 200),
    boost_period_ms=10_000,
    interactive=ClassConfig(entry_level=0, reserved_lanes=1, idle_ms_reap=1_000, run_ms_limit=0),
    batch=ClassConfig(entry_level=0, reserved_lanes=0, idle_ms_reap=1_000, run_ms_limit=5_000),
    background=ClassConfig(entry_level=1, reserved_lanes=0, idle_ms_reap=1_000, run_ms_limit=0),
    admission_window_ms=1_000,
    admission_rate_per_window=2,
    queue_cap=3,
    providers=(ProviderConfig("default", 60, 6_000),),
)
"""Two lanes (one reserved for interactive), two levels, one request per second."""


def view(s: SchedulerState) -> dict[str, Any]:
    """Every field of the state in a plain, order-defined form."""
    return {
        "now_ms": s.now_ms,
        "tasks": {tid: s.tasks[tid] for tid in sorted(s.tasks.keys())},
        "children": {p: s.children[p] for p in sorted(s.children.keys())},
        "queues": {k: s.queues[k].task_ids() for k in sorted(s.queues.keys(), key=lambda k: (k[0], k[1].value, k[2]))},
        "lanes": s.lanes,
        "gates": {name: gate_view(s, name) for name in sorted(s.gates.keys())},  # as of now
        "admission_window": s.admission_window,
        "admissions": dict(s.admissions.items()),
        "waiting": s.waiting,
        "live": s.live,
        "next_submit_seq": s.next_submit_seq,
        "next_enqueue_seq": s.next_enqueue_seq,
        "next_boost_ms": s.next_boost_ms,
        "last_wake_ms": s.last_wake_ms,
    }


def rec(tid: str, seq: int, phase: Phase, **kw: Any) -> TaskRecord:
    """A task record of agent 'a', interactive, at level 0 submitted at 0, with overrides."""
    base = TaskRecord(
        task_id=tid, agent="a", task_class=I, provider="default", parent=None, submit_seq=seq,
        phase=phase, level=0, used_ms=0, last_progress_ms=0, demand_tokens=0, enqueue_seq=seq,
        queue_pos=0, lane=None, started_ms=None, slice_start_ms=0, charged_tokens=0,
    )
    return attrs.evolve(base, **kw)


FULL = GateState(1000, 60 * SCALE, 6_000 * SCALE, 0, 0, 0)


def run(events: Sequence[SchedulerEvent], state: SchedulerState | None = None) -> SchedulerState:
    """Fold ``step`` over ``events``."""
    s = SchedulerState.initial(CONFIG) if state is None else state
    for ev in events:
        s = step(s, ev).state
    return s


def test_initial_state_is_empty_with_full_buckets() -> None:
    """The initial state has no task, free lanes, full buckets and the first boost one period away."""
    assert view(SchedulerState.initial(CONFIG)) == {
        "now_ms": 0, "tasks": {}, "children": {}, "queues": {}, "lanes": (None, None),
        "gates": {"default": FULL}, "admission_window": 0, "admissions": {}, "waiting": 0,
        "live": 0, "next_submit_seq": 0, "next_enqueue_seq": 0, "next_boost_ms": 10_000,
        "last_wake_ms": None,
    }
    assert next_wake_ms(SchedulerState.initial(CONFIG)) is None


def test_admit_starts_task_on_lowest_lane_and_announces_idle_deadline() -> None:
    """Admitting into an idle scheduler starts the task at once, charges the gate and announces its reap deadline."""
    r = admit(SchedulerState.initial(CONFIG), Submit(0, "t1", "a", I, step_tokens=100), 10)
    assert r.effects == (StartTask("t1", 0, 0), WakeAt(1_010))
    assert view(r.state) == {
        "now_ms": 10,
        "tasks": {"t1": rec("t1", 0, R, lane=0, started_ms=10, slice_start_ms=10, last_progress_ms=10,
                            demand_tokens=100, charged_tokens=100)},
        "children": {}, "queues": {}, "lanes": ("t1", None),
        "gates": {"default": GateState(1000, 59 * SCALE, 5_900 * SCALE, 10, 0, 0)},
        "admission_window": 0, "admissions": {"a": 1}, "waiting": 0, "live": 1,
        "next_submit_seq": 1, "next_enqueue_seq": 1, "next_boost_ms": 10_000, "last_wake_ms": 1_010,
    }


def test_a_gate_is_stored_as_of_its_last_refill_and_viewed_as_of_now() -> None:
    """A heartbeat does not touch the gate: the state keeps it as of its last refill, gate_view refills it to now."""
    s = admit(SchedulerState.initial(CONFIG), Submit(0, "t1", "a", I, step_tokens=100), 10).state
    s = step(s, Heartbeat(400, "t1")).state
    charged = GateState(1000, 59 * SCALE, 5_900 * SCALE, 10, 0, 0)
    assert s.gates["default"] == charged  # stored as of 10 ms, when the start charged it
    # As of 400 ms: 390 ms of refill at 60 requests and 6,000 tokens a minute (scaled units).
    assert gate_view(s, "default") == GateState(1000, 59 * SCALE + 390 * 60, 5_900 * SCALE + 390 * 6_000, 400, 0, 0)


def test_duplicate_submit_is_refused_and_changes_nothing_but_the_clock() -> None:
    """Submitting an existing id again is refused with DUPLICATE_TASK; the result equals time passing alone."""
    s = run([Submit(0, "t1", "a", I)])
    r = step(s, Submit(5, "t1", "b", B))
    assert r.effects == (Refusal("t1", RefusalReason.DUPLICATE_TASK),)
    assert view(r.state) == view(tick(s, 5).state)


def test_submit_refusals_follow_precedence() -> None:
    """Each submit refusal reason is reported, the first applicable one in SPEC order."""
    s = run([Submit(0, "p", "a", I), TaskFinished(1, "p")])
    cases = [
        (Submit(2, "", "a", I, provider="nope"), RefusalReason.INVALID),
        (Submit(2, "x", "a", I, step_tokens=-1), RefusalReason.INVALID),
        (Submit(2, "p", "a", I, provider="nope"), RefusalReason.DUPLICATE_TASK),
        (Submit(2, "x", "a", I, provider="nope", parent="zz"), RefusalReason.UNKNOWN_PROVIDER),
        (Submit(2, "x", "a", I, parent="zz"), RefusalReason.UNKNOWN_PARENT),
        (Submit(2, "x", "a", I, parent="p"), RefusalReason.PARENT_TERMINAL),
    ]
    for ev, reason in cases:
        r = step(s, ev)
        assert r.effects == (Refusal(ev.task_id, reason),), ev
        assert view(r.state) == view(tick(s, 2).state)


def test_queue_full_refuses_with_backpressure() -> None:
    """With queue_cap tasks waiting, a further submission is refused with QUEUE_FULL."""
    # Two interactive tasks hold both lanes; three more wait (queue_cap = 3).
    s = run([Submit(0, f"t{i}", f"a{i}", I) for i in range(5)])
    assert s.waiting == 3
    r = step(s, Submit(0, "t5", "z", I))
    assert r.effects == (Refusal("t5", RefusalReason.QUEUE_FULL),)
    assert view(r.state) == view(s)


def test_burst_beyond_admission_rate_enters_one_level_lower() -> None:
    """The third submission of one agent in a window enters at entry_level + 1; a new window resets."""
    s = run([Submit(0, "t0", "a", I), Submit(0, "t1", "a", I), Submit(0, "t2", "a", I)])
    assert view(s)["tasks"]["t2"] == rec("t2", 2, W, level=1, enqueue_seq=2)
    assert view(s)["admissions"] == {"a": 3}
    s2 = run([TaskFinished(1_000, "t0"), Submit(1_000, "t3", "a", I)], s)
    assert s2.admission_window == 1 and dict(s2.admissions.items()) == {"a": 1}
    assert s2.tasks["t3"].level == 0


def test_step_finished_spent_allotment_yields_to_same_level_waiter() -> None:
    """A task that spends its allotment drops a level; a same-level waiter takes its lane (round robin)."""
    # Batch tasks share the single unreserved lane: b0 runs, b1 waits at level 0.
    s = run([Submit(0, "b0", "a", B), Submit(0, "b1", "a", B)])
    assert s.lanes == ("b0", None)
    r = step(s, StepFinished(150, "b0", tokens_used=5, next_step_tokens=7))
    assert r.effects == (YieldTask("b0"), StartTask("b1", 0, 0), WakeAt(1_150))
    assert view(r.state) == {
        "now_ms": 150,
        "tasks": {
            "b0": rec("b0", 0, W, task_class=B, level=1, used_ms=0, last_progress_ms=150, slice_start_ms=150,
                      demand_tokens=7, enqueue_seq=2, started_ms=0, charged_tokens=0),
            "b1": rec("b1", 1, R, task_class=B, lane=0, started_ms=150, slice_start_ms=150, last_progress_ms=150),
        },
        "children": {}, "queues": {(1, B, "default"): ("b0",)}, "lanes": ("b1", None),
        # 60 req/min refills 60 units/ms: after two starts and 150 ms, 58*SCALE + 150*60.
        # b0's 5 tokens beyond its (zero) charge come out of the full token bucket.
        "gates": {"default": GateState(1000, 58 * SCALE + 150 * 60, 5_995 * SCALE, 150, 0, 1)},
        "admission_window": 0, "admissions": {"a": 2}, "waiting": 1, "live": 2,
        "next_submit_seq": 2, "next_enqueue_seq": 3, "next_boost_ms": 10_000, "last_wake_ms": 1_150,
    }


def test_step_finished_continues_when_nothing_better_waits() -> None:
    """A task under its allotment with an open gate keeps its lane; the gate is charged for its next step."""
    s = run([Submit(0, "t", "a", I, step_tokens=10)])
    r = step(s, StepFinished(50, "t", tokens_used=30, next_step_tokens=20))
    assert r.effects == (WakeAt(1_050),)
    # 5,990 tokens after the first charge, +5 refilled in 50 ms, -20 excess, -20 for the next step.
    assert view(r.state)["tasks"] == {
        "t": rec("t", 0, R, lane=0, started_ms=0, used_ms=50, slice_start_ms=50, last_progress_ms=50,
                 demand_tokens=20, charged_tokens=20),
    }
    assert view(r.state)["gates"] == {
        "default": GateState(1000, 58 * SCALE + 50 * 60, 5_955 * SCALE, 50, 0, 1)
    }


def test_rate_limited_cuts_limit_pauses_provider_and_requeues() -> None:
    """A 429 halves the limit, clamps buckets, pauses the provider half-open and sends the task back to its queue."""
    s = run([Submit(0, "t", "a", I)])
    r = step(s, RateLimited(40, "t", "default", retry_after_ms=500))
    assert r.effects == (YieldTask("t"), WakeAt(540))
    assert view(r.state) == {
        "now_ms": 40,
        "tasks": {"t": rec("t", 0, W, used_ms=40, started_ms=0, enqueue_seq=1)},
        "children": {}, "queues": {(0, I, "default"): ("t",)}, "lanes": (None, None),
        "gates": {"default": GateState(500, 30 * SCALE, 3_000 * SCALE, 40, 540, 0, True, "")},
        "admission_window": 0, "admissions": {"a": 1}, "waiting": 1, "live": 1,
        "next_submit_seq": 1, "next_enqueue_seq": 2, "next_boost_ms": 10_000, "last_wake_ms": 540,
    }
    r2 = tick(r.state, 540)
    assert r2.effects == (StartTask("t", 0, 0), WakeAt(1_540))
    assert r2.state.gates["default"] == GateState(500, 29 * SCALE, 3_000 * SCALE, 540, 540, 0, True, "t")


def test_reap_cancels_idle_zombie_then_its_children_in_submission_order() -> None:
    """An idle running task is reaped with CancelTask(IDLE); its live descendants follow as PARENT_REAPED."""
    s = run([Submit(0, "p", "a", I), Submit(0, "c1", "a", G, parent="p"),
             Submit(0, "c2", "a", G, parent="c1"), Heartbeat(500, "c1")])
    assert s.lanes == ("p", "c1")
    r = reap(s, 1_000)
    assert r.effects == (CancelTask("p", CancelReason.IDLE), CancelTask("c1", CancelReason.PARENT_REAPED),
                         CancelTask("c2", CancelReason.PARENT_REAPED))
    assert view(r.state) == {
        **view(s), "now_ms": 1_000, "lanes": (None, None), "waiting": 0, "live": 0, "queues": {},
        "tasks": {
            "c1": rec("c1", 1, Phase.CANCELLED, task_class=G, parent="p", level=1, started_ms=0,
                      last_progress_ms=500),
            "c2": rec("c2", 2, Phase.CANCELLED, task_class=G, parent="c1", level=1),
            "p": rec("p", 0, Phase.REAPED, started_ms=0),
        },
        "gates": {"default": GateState(1000, 58 * SCALE + 1_000 * 60, 6_000 * SCALE, 1_000, 0, 0)},
    }


def test_run_limit_reaps_a_task_that_keeps_heartbeating() -> None:
    """A batch task past its run limit is reaped with RUN_LIMIT even though it heartbeats."""
    s = run([Submit(0, "b", "a", B)] + [Heartbeat(t, "b") for t in range(900, 5_000, 900)])
    r = tick(s, 5_000)
    assert r.effects == (CancelTask("b", CancelReason.RUN_LIMIT),)
    assert r.state.tasks["b"].phase is Phase.REAPED and r.state.lanes == (None, None)


def test_a_waiting_task_past_its_run_limit_is_reaped_at_dispatch_not_started() -> None:
    """A started task whose run limit runs out while it waits after a 429 is reaped from its queue when selected, with its sub-agent."""
    s = run([Submit(0, "b", "a", B), Submit(0, "c", "a", G, parent="b")]
            + [Heartbeat(t, "b") for t in range(900, 4_000, 900)]
            + [RateLimited(4_000, "b", "default", retry_after_ms=2_000)])
    assert s.queues[(0, B, "default")].task_ids() == ("b",) and s.last_wake_ms == 6_000  # the pause, not the run limit
    r = tick(s, 6_000)
    assert r.effects == (CancelTask("b", CancelReason.RUN_LIMIT), CancelTask("c", CancelReason.PARENT_REAPED))
    assert view(r.state) == {
        **view(s), "now_ms": 6_000, "queues": {}, "lanes": (None, None), "waiting": 0, "live": 0,
        "tasks": {
            "b": rec("b", 0, Phase.REAPED, task_class=B, started_ms=0, last_progress_ms=3_600, used_ms=4_000,
                     enqueue_seq=2),
            "c": rec("c", 1, Phase.CANCELLED, task_class=G, parent="b", level=1, enqueue_seq=1),
        },
        "gates": {"default": GateState(500, 30 * SCALE, 3_000 * SCALE, 6_000, 6_000, 0, True, "")},
    }


def test_a_task_that_never_started_has_no_run_limit_clock() -> None:
    """A batch task that waits past its run limit without ever starting is started, not reaped."""
    s = run([Submit(0, "i1", "a", I), Submit(0, "i2", "a", I), Submit(0, "b", "z", B)]
            + [Heartbeat(t, tid) for t in range(900, 6_000, 900) for tid in ("i1", "i2")])
    r = step(s, TaskFinished(6_000, "i2"))
    assert r.effects == (StartTask("b", 1, 0),)  # the next deadline is still i1's idle one, 6,400
    assert view(r.state) == {
        **view(s), "now_ms": 6_000, "queues": {}, "lanes": ("i1", "b"), "waiting": 0, "last_wake_ms": 6_400,
        "tasks": {
            "b": rec("b", 2, R, agent="z", task_class=B, lane=1, started_ms=6_000, slice_start_ms=6_000,
                     last_progress_ms=6_000, enqueue_seq=2),
            "i1": s.tasks["i1"],
            "i2": attrs.evolve(s.tasks["i2"], phase=Phase.FINISHED, lane=None),
        },
        "live": 2,
        "gates": {"default": GateState(1000, 59 * SCALE, 6_000 * SCALE, 6_000, 0, 0)},
    }


def test_late_events_from_reaped_task_are_refused() -> None:
    """Heartbeat, step and finish from a reaped task are refused with TASK_TERMINAL and change nothing."""
    s = tick(run([Submit(0, "t", "a", I)]), 1_000).state
    for ev in (Heartbeat(1_001, "t"), StepFinished(1_001, "t"), TaskFinished(1_001, "t"),
               TaskFailed(1_001, "t"), RateLimited(1_001, "t", "default")):
        r = step(s, ev)
        assert r.effects == (Refusal("t", RefusalReason.TASK_TERMINAL),)
        assert view(r.state) == view(tick(s, 1_001).state)


def test_event_refusals_unknown_and_not_running() -> None:
    """Events about an unknown task or a waiting one get UNKNOWN_TASK / NOT_RUNNING."""
    s = run([Submit(0, "t0", "a", I), Submit(0, "t1", "b", I), Submit(0, "w", "c", I)])
    assert s.tasks["w"].phase is W
    assert step(s, Heartbeat(0, "zz")).effects == (Refusal("zz", RefusalReason.UNKNOWN_TASK),)
    assert step(s, Heartbeat(0, "w")).effects == (Refusal("w", RefusalReason.NOT_RUNNING),)
    assert step(s, StepFinished(0, "w")).effects == (Refusal("w", RefusalReason.NOT_RUNNING),)
    assert step(s, StepFinished(0, "t0", tokens_used=-1)).effects == (Refusal("t0", RefusalReason.INVALID),)
    assert step(s, RateLimited(0, "t0", "nope")).effects == (Refusal("t0", RefusalReason.UNKNOWN_PROVIDER),)
    assert step(s, RateLimited(0, "t0", "default", -5)).effects == (Refusal("t0", RefusalReason.INVALID),)


def test_clock_going_backwards_changes_nothing() -> None:
    """An event earlier than the kernel clock is refused and the state is returned unchanged."""
    s = run([Submit(100, "t", "a", I)])
    for ev in (Heartbeat(50, "t"), ClockAdvanced(99)):
        r = step(s, ev)
        assert r.state is s
        assert r.effects == (Refusal("" if isinstance(ev, ClockAdvanced) else "t",
                                     RefusalReason.CLOCK_WENT_BACKWARDS),)
    assert tick(s, 0).state is s and reap(s, 0).state is s and demote(s, "t", 0).state is s


def test_task_failed_while_waiting_cancels_children() -> None:
    """A waiting task that fails leaves its queue; its live children are cancelled."""
    s = run([Submit(0, "t0", "a", I), Submit(0, "t1", "b", I), Submit(0, "w", "c", I),
             Submit(0, "k", "c", I, parent="w")])
    r = step(s, TaskFailed(10, "w"))
    assert r.effects == (CancelTask("k", CancelReason.PARENT_REAPED),)
    assert view(r.state)["queues"] == {}
    assert (r.state.waiting, r.state.live) == (0, 2)
    assert r.state.tasks["w"].phase is Phase.FAILED and r.state.tasks["k"].phase is Phase.CANCELLED


def test_task_finished_frees_lane_and_leaves_children_alone() -> None:
    """A finished task frees its lane for the next waiter; its sub-agents keep running."""
    s = run([Submit(0, "p", "a", I), Submit(0, "c", "a", I, parent="p"), Submit(0, "w", "b", I)])
    r = step(s, TaskFinished(10, "p"))
    assert r.effects == (StartTask("w", 0, 0),)
    assert r.state.lanes == ("w", "c")
    assert r.state.tasks["c"].phase is R and r.state.tasks["p"].phase is Phase.FINISHED


def test_boost_returns_every_task_to_its_entry_level() -> None:
    """At the boost instant waiting and running tasks return to entry level with used_ms 0, FIFO kept."""
    no_run_limit = attrs.evolve(CONFIG, batch=ClassConfig(entry_level=0, reserved_lanes=0, idle_ms_reap=1_000))
    s = run([Submit(0, "b0", "a", B), Submit(0, "b1", "b", B), Submit(0, "b2", "c", B),
             StepFinished(150, "b0"), StepFinished(400, "b1")], SchedulerState.initial(no_run_limit))
    # b0 and b1 were demoted to level 1 in turn; b2 runs at level 0.
    assert view(s)["queues"] == {(1, B, "default"): ("b0", "b1")}
    s = run([Heartbeat(t, "b2") for t in range(900, 10_000, 900)], s)
    r = tick(s, 10_000)
    assert r.effects == (WakeAt(10_900),)  # the boost was due; b2's idle deadline is next
    assert view(r.state)["queues"] == {(0, B, "default"): ("b0", "b1")}
    assert [(t.level, t.used_ms) for t in (r.state.tasks[x] for x in ("b0", "b1", "b2"))] == [(0, 0)] * 3
    assert r.state.next_boost_ms == 20_000


def test_boost_leaves_unchanged_waiting_tasks_and_lone_queues_untouched() -> None:
    """A boost rewrites only the waiting tasks whose level or used_ms changes; a lone entry-level queue is kept as is."""
    s = run([Submit(0, "t0", "a", I), Submit(0, "t1", "b", I), Submit(0, "w", "c", I)])
    assert s.lanes == ("t0", "t1") and s.tasks["w"].used_ms == 0
    s = run([Heartbeat(t, x) for t in range(900, 10_000, 900) for x in ("t0", "t1")], s)
    r = tick(s, 10_000)
    assert r.effects == (WakeAt(10_900),)  # the running tasks' idle deadline (last heartbeat 9,900)
    assert r.state.tasks["w"] is s.tasks["w"]
    assert r.state.queues[(0, I, "default")] is s.queues[(0, I, "default")]
    assert view(r.state)["queues"] == {(0, I, "default"): ("w",)}


def test_demote_moves_waiting_task_to_tail_of_lower_queue() -> None:
    """demote of a waiting task re-enqueues it one level down with a new enqueue number."""
    s = run([Submit(0, "t0", "a", I), Submit(0, "t1", "b", I), Submit(0, "w", "c", I)])
    r = demote(s, "w", 5)
    assert r.effects == ()
    assert view(r.state) == {
        **view(s), "now_ms": 5, "queues": {(1, I, "default"): ("w",)}, "next_enqueue_seq": 4,
        "tasks": {**view(s)["tasks"], "w": rec("w", 2, W, agent="c", level=1, enqueue_seq=3)},
        "gates": view(r.state)["gates"],
    }
    assert demote(s, "zz", 5).effects == (Refusal("zz", RefusalReason.UNKNOWN_TASK),)


def test_gate_closed_keeps_task_waiting_and_announces_refill() -> None:
    """With the request bucket empty no task starts (no lane held) and the wake-up is the refill time."""
    cfg = attrs.evolve(CONFIG, providers=(ProviderConfig("default", 1, 6_000),), lanes=3)
    s = SchedulerState.initial(cfg)
    s = step(s, Submit(0, "t0", "a", I)).state
    r = step(s, Submit(0, "t1", "b", I))
    # One request per minute: t1 waits with two lanes free until the bucket refills at 60,000;
    # t0's idle deadline (1,000, announced already) comes first.
    assert r.effects == ()
    assert r.state.lanes == ("t0", None, None) and r.state.tasks["t1"].phase is W
    assert next_wake_ms(r.state) == 1_000
    r2 = step(r.state, TaskFinished(500, "t0"))
    assert r2.effects == (WakeAt(10_000),)  # the boost precedes the refill
    assert tick(r2.state, 50_000).effects == (WakeAt(60_000),)  # now the refill is next
    assert tick(r2.state, 60_000).effects == (StartTask("t1", 0, 0), WakeAt(61_000))


def test_lifecycle_table_is_total_over_phase_and_move() -> None:
    """Every (phase, move) pair is either an allowed move of SPEC 1.1 or raises; terminal phases have none."""
    expected = {
        (W, Move.DISPATCH): R, (R, Move.YIELD): W, (R, Move.RATE_LIMITED): W,
        (R, Move.FINISH): Phase.FINISHED, (R, Move.FAIL): Phase.FAILED, (W, Move.FAIL): Phase.FAILED,
        (R, Move.REAP): Phase.REAPED, (W, Move.REAP): Phase.REAPED,
        (R, Move.CANCEL): Phase.CANCELLED, (W, Move.CANCEL): Phase.CANCELLED,
    }
    assert dict(ALLOWED) == expected
    for phase in Phase:
        for move in Move:
            if (phase, move) in expected:
                assert next_phase(phase, move) is expected[(phase, move)]
            else:
                with pytest.raises(IllegalMove):
                    next_phase(phase, move)
    assert all(p.terminal == (p in TERMINAL) for p in Phase)
    assert not any(phase in TERMINAL for phase, _ in ALLOWED)
