"""The scheduler invariants S1..S16 of SPEC.md section 2, as importable predicates.

Each invariant is one pure function. State invariants take a
:class:`~agentrm.kernel.scheduler.state.SchedulerState`; transition invariants take
``(before, event, step)`` where ``step`` is the :class:`~agentrm.kernel.common.Step`
that the reducer returned for ``event`` applied to ``before``. Each returns the
problems it found as a tuple of human-readable messages (empty: it holds), so a
failure says exactly which task, lane, queue or provider is wrong.

Most callers want the two entry points:

* :func:`check_scheduler` -- every state invariant, as :class:`Violation` values;
* :func:`check_scheduler_transition` -- every state invariant on the new state plus
  every transition invariant.

They serve Hypothesis ``@invariant``s, ``agentrm check`` and users' own tests alike.
Nothing here iterates a set or dict of strings where it reaches a message: tasks are
visited in submission order, providers in config order, lanes by number.
"""

from __future__ import annotations

import operator
import weakref
from typing import Callable

from agentrm.kernel.common import Step
from agentrm.kernel.scheduler.config import SchedulerConfig, TaskClass
from agentrm.kernel.scheduler.effects import SchedulerEffect, StartTask
from agentrm.kernel.scheduler.events import ClockAdvanced, SchedulerEvent, StepFinished
from agentrm.kernel.scheduler.lifecycle import Phase
from agentrm.kernel.scheduler.queries import gate_view
from agentrm.kernel.scheduler.state import SCALE, FifoQueue, GateState, SchedulerState, TaskRecord

from .sched_model import class_may_take, effective_rate
from .violation import Violation as Violation  # re-exported: part of this module's API
from .violation import collect

SchedulerStep = Step[SchedulerState, SchedulerEffect]
"""What the scheduler reducer returns."""

_CLASSES = (TaskClass.INTERACTIVE, TaskClass.BATCH, TaskClass.BACKGROUND)
_LIVE = (Phase.WAITING, Phase.RUNNING)


# ---------------------------------------------------------------------------
# Helpers (deterministic orders only)
# ---------------------------------------------------------------------------


_BY_SUBMISSION = operator.attrgetter("submit_seq", "task_id")
_last_sorted: list[tuple[weakref.ref[SchedulerState], tuple[TaskRecord, ...]]] = []
"""The last state :func:`_tasks` sorted (by weak reference, dropped with the state), so the
invariants of one check sort it once."""


def _tasks(state: SchedulerState) -> tuple[TaskRecord, ...]:
    """Every task, in submission order."""
    try:
        ref, tasks = _last_sorted[0]  # one read of the pair: safe if another thread replaces it
    except IndexError:
        pass
    else:
        if ref() is state:
            return tasks
    tasks = tuple(sorted(state.tasks.values(), key=_BY_SUBMISSION))
    _last_sorted[:] = [(weakref.ref(state, _forget_sorted), tasks)]
    return tasks


def _forget_sorted(ref: weakref.ref[SchedulerState]) -> None:
    """Drop the cached order once its state is gone (so the cache keeps no tasks alive)."""
    if _last_sorted and _last_sorted[0][0] is ref:
        _last_sorted.clear()


def _queues(state: SchedulerState) -> tuple[tuple[tuple[int, TaskClass, str], FifoQueue], ...]:
    """Every queue, in (level, class order, provider) order."""
    return tuple(sorted(state.queues.items(), key=lambda kv: (kv[0][0], _CLASSES.index(kv[0][1]), kv[0][2])))


def _rates(config: SchedulerConfig, name: str, gate: GateState) -> tuple[int, int]:
    p = config.provider(name)
    assert p is not None
    e = min(1000, max(1, gate.limit_permille))
    return effective_rate(p.requests_per_min, e), effective_rate(p.tokens_per_min, e)


def _running_by_class(state: SchedulerState) -> tuple[int, int, int]:
    counts = [0, 0, 0]
    for tid in state.lanes:
        if tid is not None and tid in state.tasks:
            counts[_CLASSES.index(state.tasks[tid].task_class)] += 1
    return counts[0], counts[1], counts[2]


def _reserved(config: SchedulerConfig) -> tuple[int, int, int]:
    return config.interactive.reserved_lanes, config.batch.reserved_lanes, config.background.reserved_lanes


def _admits(state: SchedulerState, provider: str, demand: int, extra_req: int = 0, extra_tok: int = 0,
            probe_taken_later: frozenset[str] = frozenset()) -> bool:
    """Whether ``provider``'s gate admits ``demand`` now, with ``extra_*`` scaled units added back.

    A half-open gate holding a probe admits nothing, unless the probe was taken by a
    start in ``probe_taken_later`` (so, at the moment being reconstructed, it was free).
    """
    gate = gate_view(state, provider)  # buckets as of now (the state keeps them as of the last refill)
    _, tpm_e = _rates(state.config, provider, gate)
    if state.now_ms < gate.paused_until_ms:
        return False
    if gate.half_open and gate.probe and gate.probe not in probe_taken_later:
        return False
    return (gate.requests_scaled + extra_req >= SCALE
            and gate.tokens_scaled + extra_tok >= min(demand, tpm_e) * SCALE)


def _heads(state: SchedulerState) -> tuple[TaskRecord, ...]:
    heads: list[TaskRecord] = []
    for _, q in _queues(state):
        tid = q.peek()
        if tid is not None and tid in state.tasks:
            heads.append(state.tasks[tid])
    return tuple(heads)


# ---------------------------------------------------------------------------
# State invariants
# ---------------------------------------------------------------------------


def every_task_placed(state: SchedulerState) -> tuple[str, ...]:
    """S1: every task is in exactly one place -- its own queue, its own lane, or terminal -- and none is lost."""
    problems: list[str] = []
    seen: dict[str, str] = {}
    for key, q in _queues(state):
        if len(q) == 0:
            problems.append(f"queue {key} is empty but still present")
        for tid in q.task_ids():
            where = f"queue {key}"
            if tid in seen:
                problems.append(f"task {tid!r} is in {seen[tid]} and in {where}")
            seen[tid] = where
            t = state.tasks.get(tid)
            if t is None:
                problems.append(f"{where} holds unknown task {tid!r}")
            elif t.phase is not Phase.WAITING or (t.level, t.task_class, t.provider) != key:
                problems.append(f"{where} holds task {tid!r} ({t.phase.value}, level {t.level}, "
                                f"{t.task_class.value}, {t.provider!r})")
    for lane, held in enumerate(state.lanes):
        if held is None:
            continue
        where = f"lane {lane}"
        if held in seen:
            problems.append(f"task {held!r} is in {seen[held]} and on {where}")
        seen[held] = where
        t = state.tasks.get(held)
        if t is None:
            problems.append(f"{where} holds unknown task {held!r}")
        elif t.phase is not Phase.RUNNING or t.lane != lane:
            problems.append(f"{where} holds task {held!r} ({t.phase.value}, lane {t.lane})")
    waiting = live = 0
    for t in _tasks(state):
        if t.phase is Phase.WAITING:
            waiting += 1
        if t.phase in _LIVE:
            live += 1
            if t.task_id not in seen:
                problems.append(f"task {t.task_id!r} is {t.phase.value} but in no queue and on no lane (lost)")
        elif t.task_id in seen:
            problems.append(f"terminal task {t.task_id!r} ({t.phase.value}) is still in {seen[t.task_id]}")
        if t.phase is not Phase.RUNNING and t.lane is not None:
            problems.append(f"task {t.task_id!r} is {t.phase.value} but records lane {t.lane}")
        if t.phase in _LIVE and t.provider not in state.gates:
            problems.append(f"task {t.task_id!r} is {t.phase.value} on unknown provider {t.provider!r}")
    if waiting != state.waiting:
        problems.append(f"waiting counter is {state.waiting}, but {waiting} tasks are waiting")
    if live != state.live:
        problems.append(f"live counter is {state.live}, but {live} tasks are live")
    return tuple(problems)


def lanes_within_limits(state: SchedulerState) -> tuple[str, ...]:
    """S2: there are exactly ``lanes`` lanes, and the running classes respect every reservation."""
    cfg = state.config
    problems: list[str] = []
    if len(state.lanes) != cfg.lanes:
        problems.append(f"{len(state.lanes)} lanes in state, config says {cfg.lanes}")
    running = _running_by_class(state)
    reserved = _reserved(cfg)
    shared = cfg.lanes - sum(reserved)
    overflow = sum(max(0, r - v) for r, v in zip(running, reserved))
    if overflow > shared:
        problems.append(f"running per class {running} overflow reservations {reserved} by {overflow} "
                        f"but only {shared} lanes are shared")
    return tuple(problems)


def levels_in_range(state: SchedulerState) -> tuple[str, ...]:
    """S3: every live task's level lies between its class's entry level and the last level, with used_ms >= 0."""
    cfg = state.config
    problems: list[str] = []
    for t in _tasks(state):
        if t.phase not in _LIVE:
            continue
        entry = cfg.class_config(t.task_class).entry_level
        if not entry <= t.level < cfg.levels:
            problems.append(f"task {t.task_id!r} at level {t.level}, outside [{entry}, {cfg.levels - 1}]")
        if t.used_ms < 0:
            problems.append(f"task {t.task_id!r} has used_ms {t.used_ms} < 0")
    return tuple(problems)


def queues_fifo(state: SchedulerState) -> tuple[str, ...]:
    """S4: each queue is in strictly increasing enqueue order, and enqueue numbers are unique and already issued."""
    problems: list[str] = []
    numbers: dict[int, str] = {}
    for key, q in _queues(state):
        if len(q) and (q.head != min(q.items.keys()) or q.tail <= max(q.items.keys())):
            problems.append(f"queue {key}: head {q.head} / tail {q.tail} do not bracket its positions "
                            f"{min(q.items.keys())}..{max(q.items.keys())}")
        last = -1
        for tid in q.task_ids():
            t = state.tasks.get(tid)
            if t is None:
                continue  # reported by S1
            if t.enqueue_seq <= last:
                problems.append(f"queue {key}: task {tid!r} (enqueue {t.enqueue_seq}) after enqueue {last}")
            last = t.enqueue_seq
            if t.enqueue_seq in numbers:
                problems.append(f"tasks {numbers[t.enqueue_seq]!r} and {tid!r} share enqueue number {t.enqueue_seq}")
            numbers[t.enqueue_seq] = tid
            if not 0 <= t.enqueue_seq < state.next_enqueue_seq:
                problems.append(f"task {tid!r} has enqueue number {t.enqueue_seq}, "
                                f"not yet issued (next is {state.next_enqueue_seq})")
    return tuple(problems)


def buckets_within_capacity(state: SchedulerState) -> tuple[str, ...]:
    """S5: each provider's request and token buckets hold between 0 and one minute of its effective rate."""
    problems: list[str] = []
    for p in state.config.providers:
        gate = state.gates.get(p.name)
        if gate is None:
            problems.append(f"provider {p.name!r} has no gate")
            continue
        rpm_e, tpm_e = _rates(state.config, p.name, gate)
        if gate.refilled_ms > state.now_ms:
            problems.append(f"provider {p.name!r}: refilled up to {gate.refilled_ms}, after now ({state.now_ms})")
        if not 0 <= gate.requests_scaled <= rpm_e * SCALE:
            problems.append(f"provider {p.name!r}: request bucket {gate.requests_scaled} outside "
                            f"[0, {rpm_e * SCALE}]")
        if not 0 <= gate.tokens_scaled <= tpm_e * SCALE:
            problems.append(f"provider {p.name!r}: token bucket {gate.tokens_scaled} outside [0, {tpm_e * SCALE}]")
    if len(state.gates) != len(state.config.providers):
        problems.append(f"{len(state.gates)} gates for {len(state.config.providers)} configured providers")
    return tuple(problems)


def aimd_within_bounds(state: SchedulerState) -> tuple[str, ...]:
    """S6: each provider's effective limit stays in [floor_permille, 1000] and its streak below success_streak."""
    problems: list[str] = []
    for p in state.config.providers:
        gate = state.gates.get(p.name)
        if gate is None:
            continue  # reported by S5
        if not p.floor_permille <= gate.limit_permille <= 1000:
            problems.append(f"provider {p.name!r}: limit {gate.limit_permille} permille outside "
                            f"[{p.floor_permille}, 1000]")
        if not 0 <= gate.streak < p.success_streak:
            problems.append(f"provider {p.name!r}: streak {gate.streak} outside [0, {p.success_streak - 1}]")
    return tuple(problems)


def no_overdue_running(state: SchedulerState) -> tuple[str, ...]:
    """S7: after reaping, no running task's last progress is its idle limit old, nor its run time at its run limit."""
    problems: list[str] = []
    now = state.now_ms
    for t in _tasks(state):
        if t.phase is not Phase.RUNNING:
            continue
        cc = state.config.class_config(t.task_class)
        if now - t.last_progress_ms >= cc.idle_ms_reap:
            problems.append(f"running task {t.task_id!r}: no progress since {t.last_progress_ms}, "
                            f"now {now}, idle limit {cc.idle_ms_reap}")
        if t.started_ms is None:
            problems.append(f"running task {t.task_id!r} has no start time")
        elif cc.run_ms_limit > 0 and now - t.started_ms >= cc.run_ms_limit:
            problems.append(f"running task {t.task_id!r}: started {t.started_ms}, now {now}, "
                            f"run limit {cc.run_ms_limit}")
        if not t.last_progress_ms <= now or not t.slice_start_ms <= now:
            problems.append(f"running task {t.task_id!r} has progress/slice times in the future")
    return tuple(problems)


def orphans_cancelled(state: SchedulerState) -> tuple[str, ...]:
    """S8: every parent was submitted before its child, and no live task has a failed, reaped or cancelled ancestor."""
    problems: list[str] = []
    dead = (Phase.FAILED, Phase.REAPED, Phase.CANCELLED)
    for t in _tasks(state):
        if t.parent is None:
            continue
        p = state.tasks.get(t.parent)
        if p is None:
            problems.append(f"task {t.task_id!r} has unknown parent {t.parent!r}")
            continue
        if p.submit_seq >= t.submit_seq:
            problems.append(f"task {t.task_id!r} was submitted before its parent {t.parent!r}")
        if t.phase in _LIVE and p.phase in dead:
            problems.append(f"task {t.task_id!r} is {t.phase.value} but its parent {t.parent!r} is {p.phase.value}")
    return tuple(problems)


def indexes_consistent(state: SchedulerState) -> tuple[str, ...]:
    """S14: the state's derived indexes (children, per-lane reap deadlines, running per class) match the tasks."""
    problems: list[str] = []
    expected: dict[str, list[str]] = {}
    for t in _tasks(state):
        if t.parent is not None:
            expected.setdefault(t.parent, []).append(t.task_id)
    for parent in sorted(set(expected) | set(state.children.keys())):
        got = state.children.get(parent, ())
        if got != tuple(expected.get(parent, ())):
            problems.append(f"children of {parent!r} recorded as {got}, expected {tuple(expected.get(parent, ()))}")
    deadlines: list[int | None] = []
    for tid in state.lanes:
        held = state.tasks.get(tid) if tid is not None else None
        if held is None:
            deadlines.append(None)
            continue
        cc = state.config.class_config(held.task_class)
        d = held.last_progress_ms + cc.idle_ms_reap
        if cc.run_ms_limit > 0 and held.started_ms is not None:
            d = min(d, held.started_ms + cc.run_ms_limit)
        deadlines.append(d)
    if tuple(state.lane_deadlines) != tuple(deadlines):
        problems.append(f"lane deadlines recorded as {state.lane_deadlines}, expected {tuple(deadlines)}")
    if tuple(state.running_by_class) != _running_by_class(state):
        problems.append(f"running per class recorded as {state.running_by_class}, "
                        f"expected {_running_by_class(state)}")
    waiting_counts = [0, 0, 0]
    for (_, cls, _), q in state.queues.items():
        waiting_counts[list(TaskClass).index(cls)] += len(q.items)
    if tuple(state.waiting_by_class) != tuple(waiting_counts):
        problems.append(f"waiting per class recorded as {state.waiting_by_class}, expected {tuple(waiting_counts)}")
    order = tuple(sorted(state.queues.keys(), key=lambda k: (k[0], list(TaskClass).index(k[1]), k[2])))
    if tuple(state.queue_order) != order:
        problems.append(f"queue order recorded as {state.queue_order}, expected {order}")
    return tuple(problems)


def probe_is_running(state: SchedulerState) -> tuple[str, ...]:
    """S15: a gate's probe, if any, is a RUNNING task of that provider, and only a half-open gate holds one."""
    problems: list[str] = []
    for p in state.config.providers:
        gate = state.gates.get(p.name)
        if gate is None or not gate.probe:
            continue
        if not gate.half_open:
            problems.append(f"provider {p.name!r} is closed but holds probe {gate.probe!r}")
        t = state.tasks.get(gate.probe)
        if t is None or t.phase is not Phase.RUNNING or t.provider != p.name:
            what = "unknown" if t is None else f"{t.phase.value} on {t.provider!r}"
            problems.append(f"provider {p.name!r} holds probe {gate.probe!r}, which is {what}")
    return tuple(problems)


# ---------------------------------------------------------------------------
# Transition invariants: (before, event, step)
# ---------------------------------------------------------------------------


def _started(step: SchedulerStep) -> tuple[StartTask, ...]:
    return tuple(e for e in step.effects if isinstance(e, StartTask))


def dispatch_respects_priority(before: SchedulerState, event: SchedulerEvent, step: SchedulerStep) -> tuple[str, ...]:
    """S9: dispatch never starts a task while a dispatchable task waits at a higher level, and starts them in level order.

    The moment of each start is reconstructed from the new state: dispatch only
    fills lanes and charges gates, so adding back the later starts' lanes and charges
    gives the lanes and buckets each choice saw.
    """
    after = step.state
    started = _started(step)
    problems: list[str] = []
    for a, b in zip(started, started[1:]):
        if b.level < a.level:
            problems.append(f"started {b.task_id!r} at level {b.level} after {a.task_id!r} at level {a.level}")
    for k, s in enumerate(started):
        later = started[k:]
        later_ids = {x.task_id for x in later}
        running = list(_running_by_class(after))
        extra: dict[str, tuple[int, int]] = {}
        later_queues = set()
        for x in later:
            t = after.tasks.get(x.task_id)
            if t is None:
                continue
            running[_CLASSES.index(t.task_class)] -= 1
            r, tok = extra.get(t.provider, (0, 0))
            extra[t.provider] = (r + SCALE, tok + t.charged_tokens * SCALE)
            later_queues.add((t.level, t.task_class, t.provider))
        counts = (running[0], running[1], running[2])
        for h in _heads(after):
            if h.level >= s.level or h.task_id in later_ids or (h.level, h.task_class, h.provider) in later_queues:
                continue
            if not class_may_take(_CLASSES.index(h.task_class), counts, _reserved(after.config), after.config.lanes):
                continue
            r, tok = extra.get(h.provider, (0, 0))
            if _admits(after, h.provider, h.demand_tokens, r, tok, frozenset(later_ids)):
                problems.append(f"started {s.task_id!r} at level {s.level} while {h.task_id!r} "
                                f"was dispatchable at level {h.level}")
    return tuple(problems)


def dispatch_exhaustive(before: SchedulerState, event: SchedulerEvent, step: SchedulerStep) -> tuple[str, ...]:
    """S10: after a step, no waiting task is dispatchable (dispatch ran until nothing more could start)."""
    after = step.state
    if after is before:
        return ()  # refused by the clock: nothing ran, nothing changed
    counts = _running_by_class(after)
    problems: list[str] = []
    for h in _heads(after):
        if (class_may_take(_CLASSES.index(h.task_class), counts, _reserved(after.config), after.config.lanes)
                and _admits(after, h.provider, h.demand_tokens)):
            problems.append(f"task {h.task_id!r} is dispatchable but was left waiting")
    return tuple(problems)


def starts_within_gate(before: SchedulerState, event: SchedulerEvent, step: SchedulerStep) -> tuple[str, ...]:
    """S11: no step starts while its provider is paused: neither a dispatch nor a step continued after StepFinished."""
    after = step.state
    problems: list[str] = []
    ids = [s.task_id for s in _started(step)]
    if isinstance(event, StepFinished):
        t = after.tasks.get(event.task_id)
        if t is not None and t.phase is Phase.RUNNING and not any(
                getattr(e, "task_id", None) == event.task_id for e in step.effects):
            ids.append(event.task_id)
    for tid in ids:
        t = after.tasks.get(tid)
        if t is None:
            problems.append(f"started unknown task {tid!r}")
            continue
        gate = after.gates[t.provider]
        if after.now_ms < gate.paused_until_ms:
            problems.append(f"task {tid!r} took a step on provider {t.provider!r} paused until "
                            f"{gate.paused_until_ms} (now {after.now_ms})")
    return tuple(problems)


def half_open_admits_one(before: SchedulerState, event: SchedulerEvent, step: SchedulerStep) -> tuple[str, ...]:
    """S16: while a gate is half-open after a step, that step started at most one step of its provider: the probe."""
    after = step.state
    if after is before:
        return ()
    ids = [s.task_id for s in _started(step)]
    if isinstance(event, StepFinished):
        t = after.tasks.get(event.task_id)
        if t is not None and t.phase is Phase.RUNNING and not any(
                getattr(e, "task_id", None) == event.task_id for e in step.effects):
            ids.append(event.task_id)  # its next step was admitted without an effect
    problems: list[str] = []
    for p in after.config.providers:
        gate = after.gates.get(p.name)
        if gate is None or not gate.half_open:
            continue
        mine = [tid for tid in ids if (t := after.tasks.get(tid)) is not None and t.provider == p.name]
        if len(mine) > 1:
            problems.append(f"half-open provider {p.name!r} started {len(mine)} steps: {mine}")
        elif mine and mine[0] != gate.probe:
            problems.append(f"half-open provider {p.name!r} started {mine[0]!r}, but its probe is {gate.probe!r}")
    return tuple(problems)


def boost_resets_levels(before: SchedulerState, event: SchedulerEvent, step: SchedulerStep) -> tuple[str, ...]:
    """S12: a step that crosses a boost instant leaves every live task (but the event's own) at its entry level with nothing used."""
    after = step.state
    if after is before or event.at_ms < before.next_boost_ms:
        return ()
    subject = None if isinstance(event, ClockAdvanced) else event.task_id
    problems: list[str] = []
    for t in _tasks(after):
        if t.phase not in _LIVE or t.task_id == subject:
            continue
        entry = after.config.class_config(t.task_class).entry_level
        if t.level != entry or t.used_ms != 0:
            problems.append(f"after the boost at {before.next_boost_ms}, task {t.task_id!r} is at level "
                            f"{t.level} with used_ms {t.used_ms} (entry level {entry})")
    if after.next_boost_ms <= after.now_ms or after.next_boost_ms % after.config.boost_period_ms:
        problems.append(f"next boost {after.next_boost_ms} is not the next multiple of the period after "
                        f"{after.now_ms}")
    return tuple(problems)


def terminal_is_final(before: SchedulerState, event: SchedulerEvent, step: SchedulerStep) -> tuple[str, ...]:
    """S13: a terminal task never changes again and is never started again; no task is forgotten; time never goes back."""
    after = step.state
    problems: list[str] = []
    if after.now_ms < before.now_ms:
        problems.append(f"clock went back from {before.now_ms} to {after.now_ms}")
    for t in _tasks(before):
        now = after.tasks.get(t.task_id)
        if now is None:
            problems.append(f"task {t.task_id!r} was forgotten")
        elif t.phase not in _LIVE and now != t:
            problems.append(f"terminal task {t.task_id!r} ({t.phase.value}) changed")
    for s in _started(step):
        old = before.tasks.get(s.task_id)
        if old is not None and old.phase not in _LIVE:
            problems.append(f"terminal task {s.task_id!r} ({old.phase.value}) was started again")
    return tuple(problems)


# ---------------------------------------------------------------------------
# Registry and entry points
# ---------------------------------------------------------------------------

StatePredicate = Callable[[SchedulerState], tuple[str, ...]]
TransitionPredicate = Callable[[SchedulerState, SchedulerEvent, SchedulerStep], tuple[str, ...]]

STATE_INVARIANTS: tuple[tuple[str, StatePredicate], ...] = (
    ("S1", every_task_placed),
    ("S2", lanes_within_limits),
    ("S3", levels_in_range),
    ("S4", queues_fifo),
    ("S5", buckets_within_capacity),
    ("S6", aimd_within_bounds),
    ("S7", no_overdue_running),
    ("S8", orphans_cancelled),
    ("S14", indexes_consistent),
    ("S15", probe_is_running),
)
"""Every state invariant, by SPEC.md id, in id order."""

TRANSITION_INVARIANTS: tuple[tuple[str, TransitionPredicate], ...] = (
    ("S9", dispatch_respects_priority),
    ("S10", dispatch_exhaustive),
    ("S11", starts_within_gate),
    ("S12", boost_resets_levels),
    ("S13", terminal_is_final),
    ("S16", half_open_admits_one),
)
"""Every transition invariant, by SPEC.md id, in id order."""


def check_scheduler(state: SchedulerState) -> tuple[Violation, ...]:
    """Every state invariant (S1-S8, S14, S15) on ``state``; empty when all hold."""
    return collect(STATE_INVARIANTS, state)


def check_scheduler_transition(before: SchedulerState, event: SchedulerEvent,
                               step: SchedulerStep) -> tuple[Violation, ...]:
    """The state invariants on ``step.state`` and every transition invariant (S9-S13, S16); empty when all hold."""
    return check_scheduler(step.state) + collect(TRANSITION_INVARIANTS, before, event, step)
