"""The scheduler's transitions (SPEC.md 1.2-1.6).

Public verbs first (``step``, ``admit``, ``tick``, ``demote``, ``reap``), then the
event handlers, then the pure helpers they share. Each verb copies the frozen state
into a private :class:`_Draft`, lets the helpers update the draft's references (the
maps themselves stay persistent; nothing shared is mutated) and freezes it once at
the end: one state construction per event instead of one ``attrs.evolve`` per
field (TOOLING.md). Heartbeats, clock ticks and waiting submissions of a busy system
skip the draft altogether (:func:`_busy_fast_path`, held equal to the general path by
a property test), and gates are refilled only when a step reads them (SPEC.md 1.2).
"""

from __future__ import annotations

import enum
from typing import Any, Final, assert_never

import attrs
import immutables

from ..common import Step
from .config import ProviderConfig, SchedulerConfig, TaskClass
from .effects import CancelReason, CancelTask, Refusal, RefusalReason, SchedulerEffect, StartTask, WakeAt, YieldTask
from .events import (
    ClockAdvanced,
    Heartbeat,
    RateLimited,
    SchedulerEvent,
    StepFinished,
    Submit,
    TaskFailed,
    TaskFinished,
)
from .gate import (
    UNBOUNDED_DEMAND,
    GateFields,
    charge_fields,
    charge_gate,
    fields_max_admitted_demand,
    gate_429,
    gate_max_admitted_demand,
    gate_of,
    gate_probe_done,
    gate_reopen_ms,
    refill_gate,
    step_succeeded_fields,
)
from .lifecycle import TERMINAL, Move, Phase, next_phase
from .records import class_config, fifo_push, fifo_remove, from_fields, provider_config, reap_deadline
from .state import (
    FifoQueue,
    GateState,
    QueueKey,
    SchedulerState,
    TaskRecord,
    queue_sort_key,
)

SchedStep = Step[SchedulerState, SchedulerEffect]
"""What every scheduler transition returns."""

# Module constants are Final: the compiled build keeps them in C statics instead of
# looking them up in the module's dict (an enum member costs a dict and an attribute
# lookup otherwise).
_CLASSES: Final[tuple[TaskClass, ...]] = tuple(TaskClass)
"""Class order for scans: enum definition order, never hash order."""

_EMPTY_QUEUE: Final = FifoQueue()

_WAITING: Final = Phase.WAITING
_RUNNING: Final = Phase.RUNNING
_TERMINAL: Final = TERMINAL
_DISPATCH: Final = Move.DISPATCH
_YIELD: Final = Move.YIELD
_FINISH: Final = Move.FINISH


# --- public verbs ----------------------------------------------------------------------


def step(state: SchedulerState, event: SchedulerEvent) -> SchedStep:
    """Apply one event: clock, advance (boost, refill, reap), the event, dispatch, wake-up.

    A log of events replays as a fold of this function (SPEC.md 1.2).
    """
    if event.at_ms < state.now_ms:
        return _clock_refusal(state, event)
    fast = _busy_fast_path(state, event)
    if fast is not None:
        return fast
    return _general_step(state, event)


def _general_step(state: SchedulerState, event: SchedulerEvent) -> SchedStep:
    """:func:`step` for an event at or after ``state.now_ms``, through a draft."""
    d = _Draft(state)
    _advance(d, event.at_ms)
    match event:
        case Submit():
            _on_submit(d, event)
        case Heartbeat():
            _on_heartbeat(d, event)
        case StepFinished():
            _on_step_finished(d, event)
        case TaskFinished():
            _on_task_finished(d, event)
        case TaskFailed():
            _on_task_failed(d, event)
        case RateLimited():
            _on_rate_limited(d, event)
        case ClockAdvanced():
            pass
        case _:
            assert_never(event)
    _dispatch(d)
    _announce(d)
    return _step(d.freeze(), tuple(d.effects))


def _step(state: SchedulerState, effects: tuple[SchedulerEffect, ...]) -> SchedStep:
    """``Step(state, effects)`` through :func:`from_fields` (every event builds one)."""
    return from_fields(Step, {"state": state, "effects": effects})


def _class_index(c: TaskClass) -> int:
    """``_CLASSES.index(c)`` by identity (compiled, a few compares instead of a method call)."""
    if c is _CLASSES[0]:
        return 0
    return 1 if c is _CLASSES[1] else 2


def _waiting_mask(waiting_by_class: list[int] | tuple[int, int, int]) -> int:
    """The classes with a waiting task, as a bit mask (bit i: ``_CLASSES[i]``)."""
    w0, w1, w2 = waiting_by_class
    return (w0 > 0) | (w1 > 0) << 1 | (w2 > 0) << 2


def _busy_fast_path(s: SchedulerState, ev: SchedulerEvent) -> SchedStep | None:
    """:func:`_general_step`'s exact result for the commonest events of a loaded system, or None.

    It applies to a clock advance, to a heartbeat of a running task, to an accepted
    submission whose class may not take a free lane and to a finished step after which
    its task keeps its lane, when no waiting task's class may
    take a free lane (every lane busy, or the free ones reserved for classes with
    nothing waiting) and no boost or reap is due at the event's time. Then advance
    changes only the clock (gates refill lazily), dispatch starts nothing, and the
    wake-up is the earliest of the boost and the lane deadlines (gates add none, 1.6),
    so the new state is built directly instead of through a draft. A property test
    holds this equal to the general path on generated event sequences.
    """
    kind = type(ev)
    if kind is not Heartbeat and kind is not ClockAdvanced and kind is not Submit and kind is not StepFinished:
        return None
    # The state's fields are read through its field dict: in the compiled build a dict
    # lookup costs a third of a generic attribute read (the same in pure Python).
    f: dict[str, Any] = s.__dict__
    now: int = ev.at_ms
    if now >= f["next_boost_ms"] or f["live"] == 0:
        return None  # a boost is due, or an idle system (no wake-up at all): the general path
    deadlines: tuple[int | None, ...] = f["lane_deadlines"]
    free = False
    for x in deadlines:
        if x is None:
            free = True
        elif x <= now:
            return None  # a reap is due
    # The classes that may take a free lane, computed once for both checks below.
    waiting: int = f["waiting"]
    may_take = _lane_mask(f["config"], f["running_by_class"], None) if free and (waiting or kind is Submit) else 0
    if may_take and waiting and may_take & _waiting_mask(f["waiting_by_class"]):
        return None  # dispatch may start something
    if isinstance(ev, Submit):
        return _busy_submit(f, ev, now, may_take)
    if isinstance(ev, StepFinished):
        return _busy_step_finished(f, ev, now)
    tasks: immutables.Map[str, TaskRecord] = f["tasks"]
    if isinstance(ev, Heartbeat):
        t = tasks.get(ev.task_id) if ev.task_id else None
        if t is None or t.phase is not _RUNNING or t.lane is None:
            return None  # refused: the general path words the refusal
        lane = t.lane
        t = _with(t, last_progress_ms=now)
        tasks = tasks.set(t.task_id, t)
        # Later than the old deadline (idle moves on, the run limit does not), so after now.
        deadlines = deadlines[:lane] + (reap_deadline(f["config"], t),) + deadlines[lane + 1:]
    fields = f.copy()
    fields["now_ms"] = now
    fields["tasks"] = tasks
    fields["lane_deadlines"] = deadlines
    return _busy_step(fields)


def _busy_submit(f: dict[str, Any], ev: Submit, now: int, may_take: int) -> SchedStep | None:
    """:func:`_busy_fast_path` for a submission: :func:`_on_submit` on the state's fields ``f``.

    None when the submission is refused (the general path words the refusal) or its
    class may take a free lane (it may start now: the general path dispatches).
    """
    cfg: SchedulerConfig = f["config"]
    tasks: immutables.Map[str, TaskRecord] = f["tasks"]
    waiting: int = f["waiting"]
    cls = ev.task_class
    if (_submit_refusal(ev, tasks, f["gates"], waiting, cfg.queue_cap) is not None
            or may_take >> _class_index(cls) & 1):
        return None
    task_id, provider, parent = ev.task_id, ev.provider, ev.parent
    submit_seq: int = f["next_submit_seq"]
    enqueue_seq: int = f["next_enqueue_seq"]
    window, admissions, level = _admitted(cfg, now, f["admission_window"], f["admissions"], ev.agent, cls)
    queues, order, pos = _pushed(f["queues"], f["queue_order"], (level, cls, provider), task_id)
    fields = f.copy()
    fields["now_ms"] = now
    fields["tasks"] = tasks.set(task_id, _submitted_record(ev, level, submit_seq, enqueue_seq, pos, now))
    fields["queues"] = queues
    fields["queue_order"] = order
    fields["admission_window"] = window
    fields["admissions"] = admissions
    fields["next_enqueue_seq"] = enqueue_seq + 1
    fields["next_submit_seq"] = submit_seq + 1
    fields["waiting"] = waiting + 1
    fields["live"] = f["live"] + 1
    w = list(f["waiting_by_class"])
    w[_class_index(cls)] += 1
    fields["waiting_by_class"] = (w[0], w[1], w[2])
    if parent is not None:
        children: immutables.Map[str, tuple[str, ...]] = f["children"]
        fields["children"] = children.set(parent, children.get(parent, ()) + (task_id,))
    return _busy_step(fields)


def _busy_step_finished(f: dict[str, Any], ev: StepFinished, now: int) -> SchedStep | None:
    """:func:`_busy_fast_path` for a finished step: :func:`_on_step_finished`'s running
    branch on the state's fields ``f``.

    None when the event is refused or the task yields (its gate is closed for its next
    step, or a waiting task may take its lane): the general path handles those.
    """
    task_id, tokens_used, demand = ev.task_id, ev.tokens_used, ev.next_step_tokens
    tasks: immutables.Map[str, TaskRecord] = f["tasks"]
    t = tasks.get(task_id) if task_id and tokens_used >= 0 and demand >= 0 else None
    if t is None or t.phase is not _RUNNING or t.lane is None:
        return None
    cfg: SchedulerConfig = f["config"]
    pname, lane = t.provider, t.lane
    provider = provider_config(cfg, pname)
    gates: immutables.Map[str, GateState] = f["gates"]
    gate = step_succeeded_fields(gates[pname], provider, max(0, tokens_used - t.charged_tokens), task_id, now)
    used, level, preempt_below = _service_after_step(cfg, t, now)
    ceiling = fields_max_admitted_demand(gate, provider, now)
    if not (demand <= ceiling or ceiling == UNBOUNDED_DEMAND):
        return None  # its gate is closed for its next step: it yields
    if f["waiting"] and _best_head(cfg, now, tasks, f["queues"], gates, f["queue_order"], f["running_by_class"],
                                   f["waiting_by_class"], preempt_below, t, pname, ceiling) is not None:
        return None  # a waiting task takes its lane: it yields
    charged_gate, t = _keeps_running(t, gate, provider, demand, used, level, now)
    deadlines: tuple[int | None, ...] = f["lane_deadlines"]
    fields = f.copy()
    fields["now_ms"] = now
    fields["tasks"] = tasks.set(task_id, t)
    fields["gates"] = gates.set(pname, charged_gate)
    # Later than the old deadline (idle moves on, the run limit does not), so after now.
    fields["lane_deadlines"] = deadlines[:lane] + (reap_deadline(cfg, t),) + deadlines[lane + 1:]
    return _busy_step(fields)


def _busy_step(fields: dict[str, Any]) -> SchedStep:
    """The fast path's step: the state ``fields`` (a copy of the old state's, with the
    event's changes), whose wake-up is the earliest of the boost and the lane deadlines."""
    best: int = fields["next_boost_ms"]
    for x in fields["lane_deadlines"]:
        if x is not None and x < best:
            best = x
    effects: tuple[SchedulerEffect, ...] = ()
    if best != fields["last_wake_ms"]:
        fields["last_wake_ms"] = best
        effects = (WakeAt(best),)
    return _step(from_fields(SchedulerState, fields), effects)


def admit(state: SchedulerState, submit: Submit, now_ms: int) -> SchedStep:
    """Submit a task at ``now_ms`` (the reducer's ``Submit`` transition, SPEC.md 1.3)."""
    return step(state, attrs.evolve(submit, at_ms=now_ms))


def tick(state: SchedulerState, now_ms: int) -> SchedStep:
    """Let time pass to ``now_ms``: boost, refill, reap, dispatch, announce the wake-up."""
    return step(state, ClockAdvanced(now_ms))


def reap(state: SchedulerState, now_ms: int) -> SchedStep:
    """Advance to ``now_ms`` (boost, refill, reap zombies and their sub-agents); no dispatch."""
    if now_ms < state.now_ms:
        return _clock_refusal(state, ClockAdvanced(now_ms))
    d = _Draft(state)
    _advance(d, now_ms)
    return Step(d.freeze(), tuple(d.effects))


def demote(state: SchedulerState, task_id: str, now_ms: int) -> SchedStep:
    """Drop a non-terminal task one level (``used_ms := 0``), then dispatch and announce.

    A waiting task moves to the tail of its lower queue (a new enqueue number); at the
    last level it keeps its place. Refused like any event about a task.
    """
    if now_ms < state.now_ms:
        return _clock_refusal(state, Heartbeat(now_ms, task_id))
    d = _Draft(state)
    _advance(d, now_ms)
    t = _task_or_refuse(d, task_id, running_only=False)
    if t is not None:
        _demote(d, t)
    _dispatch(d)
    _announce(d)
    return Step(d.freeze(), tuple(d.effects))


def next_wake_ms(state: SchedulerState) -> int | None:
    """The next deadline after ``state.now_ms`` at which the kernel needs a tick (SPEC 1.6)."""
    return _next_deadline(_Draft(state))


# --- the draft ---------------------------------------------------------------------------


class _Draft:
    """A private, short-lived working copy of a state; its maps stay persistent."""

    __slots__ = (
        "config", "now_ms", "tasks", "children", "queues", "lanes", "gates", "admission_window",
        "admissions", "waiting", "live", "next_submit_seq", "next_enqueue_seq", "next_boost_ms",
        "last_wake_ms", "lane_deadlines", "running", "queue_order", "waiting_cls", "effects", "pick",
    )

    def __init__(self, s: SchedulerState) -> None:
        # Read through the state's field dict: in the compiled build a dict lookup costs a
        # third of a generic attribute read, and a draft reads every field.
        f: dict[str, Any] = s.__dict__
        self.config: SchedulerConfig = f["config"]
        self.now_ms: int = f["now_ms"]
        self.tasks: immutables.Map[str, TaskRecord] = f["tasks"]
        self.children: immutables.Map[str, tuple[str, ...]] = f["children"]
        self.queues: immutables.Map[QueueKey, FifoQueue] = f["queues"]
        self.lanes: list[str | None] = list(f["lanes"])
        self.gates: immutables.Map[str, GateState] = f["gates"]
        self.admission_window: int = f["admission_window"]
        self.admissions: immutables.Map[str, int] = f["admissions"]
        self.waiting: int = f["waiting"]
        self.live: int = f["live"]
        self.next_submit_seq: int = f["next_submit_seq"]
        self.next_enqueue_seq: int = f["next_enqueue_seq"]
        self.next_boost_ms: int = f["next_boost_ms"]
        self.last_wake_ms: int | None = f["last_wake_ms"]
        self.lane_deadlines: list[int | None] = list(f["lane_deadlines"])
        self.running: list[int] = list(f["running_by_class"])
        self.queue_order: tuple[QueueKey, ...] = f["queue_order"]
        self.waiting_cls: list[int] = list(f["waiting_by_class"])
        self.effects: list[SchedulerEffect] = []
        # The task the next dispatch starts first, when a handler already found it.
        self.pick: TaskRecord | None = None

    def freeze(self) -> SchedulerState:
        """The frozen state this draft describes."""
        running, waiting = self.running, self.waiting_cls
        return from_fields(SchedulerState, {
            "config": self.config, "now_ms": self.now_ms, "tasks": self.tasks, "children": self.children,
            "queues": self.queues, "lanes": tuple(self.lanes), "gates": self.gates,
            "admission_window": self.admission_window, "admissions": self.admissions,
            "waiting": self.waiting, "live": self.live, "next_submit_seq": self.next_submit_seq,
            "next_enqueue_seq": self.next_enqueue_seq, "next_boost_ms": self.next_boost_ms,
            "last_wake_ms": self.last_wake_ms, "lane_deadlines": tuple(self.lane_deadlines),
            "running_by_class": (running[0], running[1], running[2]), "queue_order": self.queue_order,
            "waiting_by_class": (waiting[0], waiting[1], waiting[2]),
        })


# --- event handlers (SPEC.md 1.3) ----------------------------------------------------------


def _on_submit(d: _Draft, ev: Submit) -> None:
    reason = _submit_refusal(ev, d.tasks, d.gates, d.waiting, d.config.queue_cap)
    if reason is not None:
        d.effects.append(Refusal(ev.task_id, reason))
        return
    task_id, cls, parent = ev.task_id, ev.task_class, ev.parent
    d.admission_window, d.admissions, level = _admitted(d.config, d.now_ms, d.admission_window, d.admissions,
                                                        ev.agent, cls)
    # The new task goes straight to the tail of its queue (one record built, not two).
    pos = _push(d, (level, cls, ev.provider), task_id)
    d.tasks = d.tasks.set(task_id, _submitted_record(ev, level, d.next_submit_seq, d.next_enqueue_seq, pos,
                                                     d.now_ms))
    d.next_enqueue_seq += 1
    d.waiting += 1
    d.next_submit_seq += 1
    d.live += 1
    if parent is not None:
        d.children = d.children.set(parent, d.children.get(parent, ()) + (task_id,))


def _admitted(cfg: SchedulerConfig, now: int, window: int, admissions: immutables.Map[str, int],
              agent: str, task_class: TaskClass) -> tuple[int, immutables.Map[str, int], int]:
    """The admission window and counts after accepting a submission of ``agent`` at ``now``,
    and the submission's entry level."""
    current = now // cfg.admission_window_ms
    if current != window:
        window, admissions = current, immutables.Map()
    accepted = admissions.get(agent, 0)
    level = class_config(cfg, task_class).entry_level
    if accepted >= cfg.admission_rate_per_window:
        level = min(level + 1, len(cfg.level_allotments_ms) - 1)  # a burst enters one level lower
    return window, admissions.set(agent, accepted + 1), level


def _submitted_record(ev: Submit, level: int, submit_seq: int, enqueue_seq: int, pos: int, now: int) -> TaskRecord:
    """The record of an accepted submission, waiting at ``pos`` in its queue at ``level``."""
    return from_fields(TaskRecord, {
        "task_id": ev.task_id, "agent": ev.agent, "task_class": ev.task_class, "provider": ev.provider,
        "parent": ev.parent, "submit_seq": submit_seq, "phase": _WAITING, "level": level,
        "used_ms": 0, "last_progress_ms": now, "demand_tokens": ev.step_tokens,
        "enqueue_seq": enqueue_seq, "queue_pos": pos, "lane": None, "started_ms": None,
        "slice_start_ms": now, "charged_tokens": 0,
    })


def _submit_refusal(ev: Submit, tasks: immutables.Map[str, TaskRecord], gates: immutables.Map[str, GateState],
                    waiting: int, queue_cap: int) -> RefusalReason | None:
    """The first refusal reason that applies to a submission, in SPEC precedence."""
    task_id, parent = ev.task_id, ev.parent
    if not task_id or not ev.agent or ev.step_tokens < 0:
        return RefusalReason.INVALID
    if task_id in tasks:
        return RefusalReason.DUPLICATE_TASK
    if ev.provider not in gates:
        return RefusalReason.UNKNOWN_PROVIDER
    if parent is not None:
        p = tasks.get(parent)
        if p is None:
            return RefusalReason.UNKNOWN_PARENT
        if p.phase in _TERMINAL:
            return RefusalReason.PARENT_TERMINAL
    if waiting >= queue_cap:
        return RefusalReason.QUEUE_FULL
    return None


def _on_heartbeat(d: _Draft, ev: Heartbeat) -> None:
    t = _task_or_refuse(d, ev.task_id, running_only=True)
    if t is not None:
        _set_running(d, _with(t, last_progress_ms=d.now_ms))


def _on_step_finished(d: _Draft, ev: StepFinished) -> None:
    if ev.tokens_used < 0 or ev.next_step_tokens < 0:
        d.effects.append(Refusal(ev.task_id, RefusalReason.INVALID))
        return
    t = _task_or_refuse(d, ev.task_id, running_only=True)
    if t is None:
        return
    cfg, now = d.config, d.now_ms
    tid, pname = t.task_id, t.provider  # read once: each read of a record's field is a lookup
    provider = provider_config(cfg, pname)
    # Refill, AIMD success, excess tokens and (for the probe) closing the circuit, as the
    # gate's fields: the gate is built once below, charged or not.
    gate = step_succeeded_fields(d.gates[pname], provider, max(0, ev.tokens_used - t.charged_tokens), tid, now)
    used, level, preempt_below = _service_after_step(cfg, t, now)
    demand = ev.next_step_tokens
    ceiling = fields_max_admitted_demand(gate, provider, now)
    if demand <= ceiling or ceiling == UNBOUNDED_DEMAND:  # the gate admits its next step (a full bucket any)
        # The head that would take the lane is exactly the one the dispatch after this
        # event picks first (same classes, gates and queues; the yielding task re-enters
        # behind it), so it is handed over instead of searched for twice. The scan sees
        # this provider's gate as succeeded (its ceiling), like the dispatch will.
        d.pick = _best_dispatchable(d, preempt_below, t, pname, ceiling) if d.waiting else None
        yields = d.pick is not None
    else:
        yields = True
    # Each branch builds the gate and the task's new record once, with every changed field.
    if yields:
        d.gates = d.gates.set(pname, gate_of(gate))
        _release_lane(d, t)
        pos = _push(d, (level, t.task_class, pname), tid)
        d.tasks = d.tasks.set(tid, _with(
            t, phase=next_phase(t.phase, _YIELD), level=level, used_ms=used, last_progress_ms=now,
            slice_start_ms=now, demand_tokens=demand, lane=None, enqueue_seq=d.next_enqueue_seq, queue_pos=pos,
        ))
        d.next_enqueue_seq += 1
        d.waiting += 1
        d.effects.append(YieldTask(tid))
        return
    charged_gate, t = _keeps_running(t, gate, provider, demand, used, level, now)
    d.gates = d.gates.set(pname, charged_gate)
    _set_running(d, t)


def _service_after_step(cfg: SchedulerConfig, t: TaskRecord, now: int) -> tuple[int, int, int]:
    """A running task's service at ``now``, when a step of it finished: ``used_ms`` and
    ``level`` (one lower, and ``used_ms`` 0, once its level's allotment is spent), and the
    level a waiting task must be above to take its lane.

    It yields if its gate is closed for its next step, or a waiting task could use the
    lane: strictly higher levels always; the same level only once the allotment is
    spent (round robin).
    """
    used, level = t.used_ms + now - t.slice_start_ms, t.level
    if used >= cfg.level_allotments_ms[level]:
        level = min(level + 1, len(cfg.level_allotments_ms) - 1)
        return 0, level, level + 1
    return used, level, level


def _keeps_running(t: TaskRecord, gate: GateFields, provider: ProviderConfig, demand: int, used: int, level: int,
                   now: int) -> tuple[GateState, TaskRecord]:
    """A finished step after which ``t`` keeps its lane: its gate (``gate``, succeeded)
    charged for the next step of ``demand`` tokens, and its record with the new service,
    level, demand and charge (the fast path and the general path share this)."""
    charged_gate, charged = charge_fields(gate, provider, demand, t.task_id)
    return charged_gate, _with(t, level=level, used_ms=used, last_progress_ms=now, slice_start_ms=now,
                               demand_tokens=demand, charged_tokens=charged)


def _on_task_finished(d: _Draft, ev: TaskFinished) -> None:
    t = _task_or_refuse(d, ev.task_id, running_only=True)
    if t is not None:
        # Its last step completed: if it was the probe, the circuit closes.
        gate = d.gates[t.provider]
        if gate.probe == t.task_id:
            d.gates = d.gates.set(t.provider, gate_probe_done(gate, t.task_id, completed=True))
        _end(d, t, _FINISH)


def _on_task_failed(d: _Draft, ev: TaskFailed) -> None:
    t = _task_or_refuse(d, ev.task_id, running_only=False)
    if t is not None:
        _end(d, t, Move.FAIL)
        _cascade(d, (t.task_id,))


def _on_rate_limited(d: _Draft, ev: RateLimited) -> None:
    if not ev.task_id or (ev.retry_after_ms is not None and ev.retry_after_ms < 0):
        d.effects.append(Refusal(ev.task_id, RefusalReason.INVALID))
        return
    t = _task_or_refuse(d, ev.task_id, running_only=True)
    if t is None:
        return
    if ev.provider not in d.gates:
        d.effects.append(Refusal(ev.task_id, RefusalReason.UNKNOWN_PROVIDER))
        return
    provider = provider_config(d.config, ev.provider)
    pause = provider.default_retry_after_ms if ev.retry_after_ms is None else ev.retry_after_ms
    d.gates = d.gates.set(ev.provider, gate_429(_gate(d, ev.provider), provider, pause, d.now_ms, t.task_id))
    _release_lane(d, t)
    used = t.used_ms + d.now_ms - t.slice_start_ms
    _enqueue(d, _with(t, phase=next_phase(t.phase, Move.RATE_LIMITED), lane=None, used_ms=used))
    d.effects.append(YieldTask(t.task_id))


# --- advance: boost, refill, reap (SPEC.md 1.2 step 2) ------------------------------------


def _advance(d: _Draft, now: int) -> None:
    d.now_ms = now
    cfg = d.config
    if d.next_boost_ms <= now:
        _boost(d)
        d.next_boost_ms = (now // cfg.boost_period_ms + 1) * cfg.boost_period_ms
    # Gates are refilled lazily, when a transition reads them (:func:`_gate`): refilling is
    # additive (refill a then b ms == refill a + b ms) and the rate only changes after a
    # read, so the buckets are exactly those of a refill at every event (SPEC.md 1.5).
    _reap(d)


def _boost(d: _Draft) -> None:
    """Every non-terminal task back to its entry level with ``used_ms = 0``.

    Running tasks change in place. Waiting tasks of one (class, provider) all land in
    the queue at their entry level, merged by enqueue number so FIFO order holds. A
    (class, provider) with a single queue keeps it whole (no merge) and rewrites only
    the tasks whose level or used_ms changes; a merge rewrites the tasks it moves.
    """
    cfg = d.config
    tasks = d.tasks.mutate()
    for tid in d.lanes:
        if tid is not None:
            t = tasks[tid]
            entry = class_config(cfg, t.task_class).entry_level
            if t.level != entry or t.used_ms or t.slice_start_ms != d.now_ms:
                # The slice restarts too: service before the boost is forgiven with used_ms.
                tasks[tid] = _with(t, level=entry, used_ms=0, slice_start_ms=d.now_ms)
    if d.waiting:
        waiting = d.tasks  # waiting records are read from the state: only running ones changed above
        queues: immutables.Map[QueueKey, FifoQueue] = immutables.Map()
        for cls in _CLASSES:
            entry = class_config(cfg, cls).entry_level
            for p in cfg.providers:
                found = [(level, q) for level in range(len(cfg.level_allotments_ms))
                         if (q := d.queues.get((level, cls, p.name))) is not None]
                if not found:
                    continue
                if len(found) == 1:
                    # One queue: its order and positions stay valid at the entry level, so it
                    # moves whole and only the tasks whose level or used_ms changes are rewritten.
                    level, q = found[0]
                    for tid in q.items.values():
                        t = waiting[tid]
                        if t.level != entry or t.used_ms:
                            tasks[tid] = _with(t, level=entry, used_ms=0)
                    queues = queues.set((entry, cls, p.name), q)
                    continue
                # Enqueue numbers are unique, so the sort never compares two records.
                members: list[tuple[int, TaskRecord]] = []
                for _, q in found:
                    members.extend((t.enqueue_seq, t) for t in map(waiting.__getitem__, q.items.values()))
                members.sort()
                items = immutables.Map[int, str]().mutate()
                for pos, (_, t) in enumerate(members):
                    tid = t.task_id
                    items[pos] = tid
                    if t.level != entry or t.used_ms or t.queue_pos != pos:
                        tasks[tid] = _with(t, level=entry, used_ms=0, queue_pos=pos)
                queues = queues.set((entry, cls, p.name), FifoQueue(items.finish(), 0, len(members)))
        d.queues = queues
        d.queue_order = tuple(sorted(queues.keys(), key=queue_sort_key))
    d.tasks = tasks.finish()


def _reap(d: _Draft) -> None:
    """Reap running zombies in lane order, then cancel their live descendants."""
    now = d.now_ms
    reaped: list[str] = []
    for lane, deadline in enumerate(d.lane_deadlines):
        if deadline is None or deadline > now:
            continue
        tid = d.lanes[lane]
        assert tid is not None, "a lane with a deadline holds a task"
        t = d.tasks[tid]
        idle = now - t.last_progress_ms >= class_config(d.config, t.task_class).idle_ms_reap
        _end(d, t, Move.REAP)
        d.effects.append(CancelTask(tid, CancelReason.IDLE if idle else CancelReason.RUN_LIMIT))
        reaped.append(tid)
    if reaped:
        _cascade(d, tuple(reaped))


# --- dispatch (SPEC.md 1.4) ----------------------------------------------------------------


def _dispatch(d: _Draft) -> None:
    """Start dispatchable tasks (lowest level, then lowest enqueue number) on free lanes.

    A selected task whose run limit ran out while it waited is reaped instead of
    started, and the selection repeats (SPEC.md 1.4): it never holds a lane.
    """
    while d.waiting and _has_free_lane(d):
        t = d.pick
        if t is None:
            t = _best_dispatchable(d, len(d.config.level_allotments_ms), None)
        else:
            d.pick = None
        if t is None:
            return
        if _run_limit_expired(d.config, t, d.now_ms):
            _end(d, t, Move.REAP)
            d.effects.append(CancelTask(t.task_id, CancelReason.RUN_LIMIT))
            _cascade(d, (t.task_id,))
            continue
        _start(d, t, d.lanes.index(None))


def _has_free_lane(d: _Draft) -> bool:
    """``None in d.lanes``, from the running counts (S14 keeps them equal to the lanes'
    occupants; compiled, three list reads instead of a comparison per lane)."""
    r = d.running
    return r[0] + r[1] + r[2] < len(d.lanes)


def _run_limit_expired(cfg: SchedulerConfig, t: TaskRecord, now: int) -> bool:
    """Whether a task that has started before has used up its class's run limit by ``now``."""
    limit = class_config(cfg, t.task_class).run_ms_limit
    return limit > 0 and t.started_ms is not None and now - t.started_ms >= limit


def _best_dispatchable(d: _Draft, below_level: int, freeing: TaskRecord | None, provider_seen: str = "",
                       its_ceiling: int = 0) -> TaskRecord | None:
    """:func:`_best_head` over the draft."""
    return _best_head(d.config, d.now_ms, d.tasks, d.queues, d.gates, d.queue_order, d.running, d.waiting_cls,
                      below_level, freeing, provider_seen, its_ceiling)


def _best_head(cfg: SchedulerConfig, now: int, tasks: immutables.Map[str, TaskRecord],
               queues: immutables.Map[QueueKey, FifoQueue], gates: immutables.Map[str, GateState],
               order: tuple[QueueKey, ...], running: list[int] | tuple[int, int, int],
               waiting_cls: list[int] | tuple[int, int, int], below_level: int, freeing: TaskRecord | None,
               provider_seen: str, its_ceiling: int) -> TaskRecord | None:
    """The dispatchable queue head with the lowest (level, enqueue number) under ``below_level``.

    ``freeing`` is a running task counted as if its lane were already free; when
    ``provider_seen`` is given, its gate is taken to admit demands up to ``its_ceiling``
    (a gate a finished step changed but that is not stored yet). The scan
    visits the non-empty queues in ``queue_order`` (level first) and stops after the
    first level that has a dispatchable head; within a level the lowest enqueue number
    wins (enqueue numbers are unique, so the choice is a total order).
    """
    if not order or order[0][0] >= below_level:
        return None  # no queue above the level asked for (e.g. a level-0 task's step)
    mask = _lane_mask(cfg, running, freeing) & _waiting_mask(waiting_cls)
    if not mask:
        return None  # no class that may take the lane has a waiting task: no scan
    # Each provider's gate reduced to one number: a head is admitted iff its demand <= it.
    ceiling: dict[str, int] = {provider_seen: its_ceiling} if provider_seen else {}
    best: TaskRecord | None = None
    for key in order:
        level, cls, provider = key
        if level >= below_level or (best is not None and level > best.level):
            break
        if not mask >> _class_index(cls) & 1:
            continue
        q = queues[key]
        t = tasks[q.items[q.head]]
        if best is not None and t.enqueue_seq > best.enqueue_seq:
            continue
        limit = ceiling.get(provider)
        if limit is None:
            limit = ceiling[provider] = gate_max_admitted_demand(gates[provider], provider_config(cfg, provider), now)
        if t.demand_tokens <= limit or limit == UNBOUNDED_DEMAND:  # a full bucket admits any demand
            best = t
    return best


def _lane_mask(cfg: SchedulerConfig, running: list[int] | tuple[int, int, int], freeing: TaskRecord | None) -> int:
    """The classes that may take a free lane, as a bit mask (bit i: ``_CLASSES[i]``), with
    ``running`` tasks per class (``freeing`` counted as if its lane were already free).

    Class c may take one iff r_c < R_c or the shared lanes are not all used (SPEC.md 1.4).
    """
    r0, r1, r2 = running
    if freeing is not None:
        c = freeing.task_class
        if c is _CLASSES[0]:
            r0 -= 1
        elif c is _CLASSES[1]:
            r1 -= 1
        else:
            r2 -= 1
    res0, res1, res2 = (cfg.interactive.reserved_lanes, cfg.batch.reserved_lanes,
                        cfg.background.reserved_lanes)  # _CLASSES order
    shared_free = cfg.lanes - res0 - res1 - res2  # minus each class's overflow beyond its reservation:
    if r0 > res0:
        shared_free -= r0 - res0
    if r1 > res1:
        shared_free -= r1 - res1
    if r2 > res2:
        shared_free -= r2 - res2
    if shared_free > 0:
        return 7
    return (r0 < res0) | (r1 < res1) << 1 | (r2 < res2) << 2


def _start(d: _Draft, t: TaskRecord, lane: int) -> None:
    tid, pname, now = t.task_id, t.provider, d.now_ms
    gate, charged = charge_gate(d.gates[pname], provider_config(d.config, pname), t.demand_tokens, tid, now)
    d.gates = d.gates.set(pname, gate)
    _dequeue(d, t)
    started = t.started_ms
    t = _with(
        t, phase=next_phase(t.phase, _DISPATCH), lane=lane, started_ms=now if started is None else started,
        slice_start_ms=now, last_progress_ms=now, charged_tokens=charged,
    )
    d.lanes[lane] = tid
    d.running[_class_index(t.task_class)] += 1
    _set_running(d, t)
    d.effects.append(StartTask(tid, lane, t.level))


# --- wake-up (SPEC.md 1.6) -----------------------------------------------------------------


def _announce(d: _Draft) -> None:
    deadline = _next_deadline(d)
    if deadline is not None and deadline != d.last_wake_ms:
        d.last_wake_ms = deadline
        d.effects.append(WakeAt(deadline))


def _next_deadline(d: _Draft) -> int | None:
    """The earliest deadline after ``now``: boost, reap limits, gate re-opening for a head."""
    if d.live == 0:
        return None
    cfg, now = d.config, d.now_ms
    best = d.next_boost_ms if d.next_boost_ms > now else None
    # After the reap no lane deadline is due, and a task whose run limit ran out while it
    # waited is reaped instead of started (1.4), so every lane deadline is after ``now``
    # (the comparison with ``now`` only guards hand-built states).
    for x in d.lane_deadlines:
        if x is not None and x > now and (best is None or x < best):
            best = x
    eligible = _lane_mask(cfg, d.running, None) & _waiting_mask(d.waiting_cls) if d.waiting and _has_free_lane(d) else 0
    if eligible:
        # A gate matters only for the heads of classes that may take a free lane: other
        # heads wait for a lane, which frees on an event or a reap deadline (both
        # already counted), and dispatch follows them.
        # A gate that admits any demand now re-opens at ``now``, which does not count;
        # only the others need their eligible heads' smallest demand (min() is order-free).
        tasks, queues, gates = d.tasks, d.queues, d.gates
        ceiling = {p.name: gate_max_admitted_demand(gates[p.name], p, now) for p in cfg.providers}
        smallest: dict[str, int] = {}
        for key in d.queue_order:
            provider = key[2]
            if eligible >> _class_index(key[1]) & 1 and ceiling[provider] < UNBOUNDED_DEMAND:
                q = queues[key]
                demand = tasks[q.items[q.head]].demand_tokens
                if demand < smallest.get(provider, demand + 1):
                    smallest[provider] = demand
        for p in cfg.providers:
            gate = gates[p.name]
            if gate.half_open and gate.probe:
                continue  # waiting for the probe's outcome: an event, not a time
            if p.name in smallest and smallest[p.name] > ceiling[p.name]:
                at = gate_reopen_ms(gate, p, smallest[p.name], now)
                if at > now and (best is None or at < best):
                    best = at
    return best


# --- small helpers ---------------------------------------------------------------------------


class _Keep(enum.Enum):
    KEEP = 0


_K: Final = _Keep.KEEP


def _with(
    t: TaskRecord, *, phase: Phase | _Keep = _K, level: int | _Keep = _K, used_ms: int | _Keep = _K,
    last_progress_ms: int | _Keep = _K, demand_tokens: int | _Keep = _K, enqueue_seq: int | _Keep = _K,
    queue_pos: int | _Keep = _K, lane: int | None | _Keep = _K, started_ms: int | None | _Keep = _K,
    slice_start_ms: int | _Keep = _K, charged_tokens: int | _Keep = _K,
) -> TaskRecord:
    """``attrs.evolve`` for the mutable fields of a task, at a fraction of its cost (hot path)."""
    f = t.__dict__.copy()
    if phase is not _K:
        f["phase"] = phase
    if level is not _K:
        f["level"] = level
    if used_ms is not _K:
        f["used_ms"] = used_ms
    if last_progress_ms is not _K:
        f["last_progress_ms"] = last_progress_ms
    if demand_tokens is not _K:
        f["demand_tokens"] = demand_tokens
    if enqueue_seq is not _K:
        f["enqueue_seq"] = enqueue_seq
    if queue_pos is not _K:
        f["queue_pos"] = queue_pos
    if lane is not _K:
        f["lane"] = lane
    if started_ms is not _K:
        f["started_ms"] = started_ms
    if slice_start_ms is not _K:
        f["slice_start_ms"] = slice_start_ms
    if charged_tokens is not _K:
        f["charged_tokens"] = charged_tokens
    return from_fields(TaskRecord, f)


def _clock_refusal(state: SchedulerState, event: SchedulerEvent) -> SchedStep:
    task_id = "" if isinstance(event, ClockAdvanced) else event.task_id
    return Step(state, (Refusal(task_id, RefusalReason.CLOCK_WENT_BACKWARDS),))


def _task_or_refuse(d: _Draft, task_id: str, running_only: bool) -> TaskRecord | None:
    """The task an event is about, or None after recording the refusal (SPEC precedence)."""
    reason: RefusalReason | None = None
    t = d.tasks.get(task_id) if task_id else None
    if not task_id:
        reason = RefusalReason.INVALID
    elif t is None:
        reason = RefusalReason.UNKNOWN_TASK
    elif t.phase in _TERMINAL:
        reason = RefusalReason.TASK_TERMINAL
    elif running_only and t.phase is not _RUNNING:
        reason = RefusalReason.NOT_RUNNING
    if reason is not None:
        d.effects.append(Refusal(task_id, reason))
        return None
    return t


def _gate(d: _Draft, name: str) -> GateState:
    """Provider ``name``'s gate refilled up to now (stored back, so a step refills it once)."""
    gate = d.gates[name]
    if gate.refilled_ms < d.now_ms:
        gate = refill_gate(gate, provider_config(d.config, name), d.now_ms)
        d.gates = d.gates.set(name, gate)
    return gate


def _enqueue(d: _Draft, t: TaskRecord) -> None:
    """Put ``t`` (phase already WAITING) at the tail of its queue with a new enqueue number."""
    pos = _push(d, (t.level, t.task_class, t.provider), t.task_id)
    d.tasks = d.tasks.set(t.task_id, _with(t, enqueue_seq=d.next_enqueue_seq, queue_pos=pos))
    d.next_enqueue_seq += 1
    d.waiting += 1


def _dequeue(d: _Draft, t: TaskRecord) -> None:
    cls = t.task_class
    key = (t.level, cls, t.provider)
    q = fifo_remove(d.queues[key], t.queue_pos)
    if q.items:
        d.queues = d.queues.set(key, q)
    else:
        d.queues = d.queues.delete(key)
        d.queue_order = tuple(k for k in d.queue_order if k != key)
    d.waiting -= 1
    d.waiting_cls[_class_index(cls)] -= 1


def _push(d: _Draft, key: QueueKey, task_id: str) -> int:
    """Append ``task_id`` to queue ``key`` (creating it, in ``queue_order`` too); its position."""
    d.queues, d.queue_order, pos = _pushed(d.queues, d.queue_order, key, task_id)
    d.waiting_cls[_class_index(key[1])] += 1
    return pos


def _pushed(queues: immutables.Map[QueueKey, FifoQueue], order: tuple[QueueKey, ...], key: QueueKey,
            task_id: str) -> tuple[immutables.Map[QueueKey, FifoQueue], tuple[QueueKey, ...], int]:
    """The queues and queue order with ``task_id`` appended to queue ``key``, and its position."""
    old = queues.get(key)
    if old is None:
        q, pos = fifo_push(_EMPTY_QUEUE, task_id)
        order = tuple(sorted(order + (key,), key=queue_sort_key))
    else:
        q, pos = fifo_push(old, task_id)
    return queues.set(key, q), order, pos


def _release_lane(d: _Draft, t: TaskRecord) -> None:
    lane, tid = t.lane, t.task_id
    assert lane is not None and d.lanes[lane] == tid, "a running task holds its lane"
    d.lanes[lane] = None
    d.lane_deadlines[lane] = None
    d.running[_class_index(t.task_class)] -= 1
    gate = d.gates[t.provider]
    if gate.probe == tid:  # the probe stopped without completing its step: free it
        d.gates = d.gates.set(t.provider, gate_probe_done(gate, tid, completed=False))


def _set_running(d: _Draft, t: TaskRecord) -> None:
    """Store a running task's record and its lane's reap deadline."""
    lane = t.lane
    assert lane is not None
    d.tasks = d.tasks.set(t.task_id, t)
    d.lane_deadlines[lane] = reap_deadline(d.config, t)


def _end(d: _Draft, t: TaskRecord, move: Move) -> None:
    """Move a live task to a terminal phase, freeing its lane or its queue slot."""
    phase = next_phase(t.phase, move)
    if t.phase is _RUNNING:
        _release_lane(d, t)
    else:
        _dequeue(d, t)
    d.live -= 1
    d.tasks = d.tasks.set(t.task_id, _with(t, phase=phase, lane=None))


def _cascade(d: _Draft, roots: tuple[str, ...]) -> None:
    """Cancel every live descendant of ``roots``, in submission order (SPEC.md 1.2)."""
    found: list[TaskRecord] = []
    seen = set(roots)  # membership only; the order comes from submit_seq below
    stack = list(roots)
    while stack:
        for child in d.children.get(stack.pop(), ()):
            if child in seen:
                continue
            seen.add(child)
            c = d.tasks[child]
            if c.phase not in _TERMINAL:
                found.append(c)
            stack.append(child)
    for c in sorted(found, key=lambda r: r.submit_seq):
        _end(d, d.tasks[c.task_id], Move.CANCEL)
        d.effects.append(CancelTask(c.task_id, CancelReason.PARENT_REAPED))


def _demote(d: _Draft, t: TaskRecord) -> None:
    level = min(t.level + 1, len(d.config.level_allotments_ms) - 1)
    if t.phase is _WAITING and level != t.level:
        _dequeue(d, t)
        _enqueue(d, _with(t, level=level, used_ms=0))
    elif t.phase is _RUNNING:
        # The slice restarts with used_ms, so the new level's allotment counts from now.
        d.tasks = d.tasks.set(t.task_id, _with(t, level=level, used_ms=0, slice_start_ms=d.now_ms))
    else:
        d.tasks = d.tasks.set(t.task_id, _with(t, level=level, used_ms=0))
