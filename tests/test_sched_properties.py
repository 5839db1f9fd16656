"""Properties of each scheduler transition over random configs and event sequences."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import attrs
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from strategies_sched import TASK_IDS, configs, configs_and_events

from agentrm.kernel import (
    CancelTask,
    ClassConfig,
    ClockAdvanced,
    ConfigError,
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
    TaskFailed,
    TaskClass,
    TaskFinished,
    YieldTask,
    demote,
    gate_view,
    next_wake_ms,
    reap,
    step,
    tick,
)
from agentrm.adapters.snapshot import SnapshotError, dump_scheduler_state, load_scheduler_state
from agentrm.kernel.scheduler.gate import (
    admits,
    charge_gate,
    UNBOUNDED_DEMAND,
    charge_fields,
    earliest_admit_ms,
    effective_rate,
    fields_max_admitted_demand,
    gate_admits,
    gate_earliest_admit_ms,
    gate_max_admitted_demand,
    gate_probe_done,
    gate_of,
    gate_reopen_ms,
    gate_step_succeeded,
    gate_success,
    on_429,
    on_success,
    rates,
    refill,
    refill_gate,
    step_succeeded_fields,
)
from agentrm.kernel.scheduler.records import class_config, provider_config
from agentrm.kernel.scheduler.transitions import _busy_fast_path, _general_step, _with
from agentrm.kernel.scheduler.state import (
    SCALE,
    FifoQueue,
    GateState,
    TaskRecord,
    derive_lane_deadlines,
    derive_queue_order,
    derive_running_by_class,
    derive_waiting_by_class,
)


def fold(config: SchedulerConfig, events: list[SchedulerEvent]) -> Iterator[tuple[SchedulerState, SchedulerEvent, SchedulerState, tuple[object, ...]]]:
    """Yield (before, event, after, effects) for each event of the sequence."""
    s = SchedulerState.initial(config)
    for ev in events:
        r = step(s, ev)
        yield s, ev, r.state, r.effects
        s = r.state


def final(config: SchedulerConfig, events: list[SchedulerEvent]) -> SchedulerState:
    """The state after folding ``events``."""
    s = SchedulerState.initial(config)
    for ev in events:
        s = step(s, ev).state
    return s


def counters_consistent(s: SchedulerState) -> None:
    """The stored counters and derived indexes agree with the tasks, queues and lanes they summarize."""
    records = list(s.tasks.values())
    waiting = [t for t in records if t.phase is Phase.WAITING]
    running = [t for t in records if t.phase is Phase.RUNNING]
    assert s.waiting == len(waiting) == sum(len(q) for q in s.queues.values())
    assert s.live == len(waiting) + len(running)
    assert sorted(t.task_id for t in running) == sorted(x for x in s.lanes if x is not None)
    for t in running:
        assert t.lane is not None and s.lanes[t.lane] == t.task_id
    for t in waiting:
        q = s.queues[(t.level, t.task_class, t.provider)]
        assert q.items[t.queue_pos] == t.task_id
    assert s.lane_deadlines == derive_lane_deadlines(s)
    assert s.running_by_class == derive_running_by_class(s)
    assert s.queue_order == derive_queue_order(s)
    assert s.waiting_by_class == derive_waiting_by_class(s)


@given(configs_and_events())
def test_queue_cap_and_counters_hold_after_every_event(ce: tuple[SchedulerConfig, list[SchedulerEvent]]) -> None:
    """A submission is accepted only below queue_cap (so live tasks never exceed queue_cap + lanes), and every
    counter matches the tasks after each event."""
    config, events = ce
    for before, ev, after, _ in fold(config, events):
        if isinstance(ev, Submit) and ev.task_id in after.tasks and ev.task_id not in before.tasks:
            assert before.waiting < config.queue_cap
        assert after.live <= config.queue_cap + config.lanes
        counters_consistent(after)


@given(configs_and_events(), st.sampled_from(TASK_IDS))
def test_duplicate_submit_is_idempotent(ce: tuple[SchedulerConfig, list[SchedulerEvent]], tid: str) -> None:
    """Re-submitting an existing id is refused with DUPLICATE_TASK and otherwise equals time passing."""
    config, events = ce
    s = final(config, events)
    if tid not in s.tasks:
        s = step(s, Submit(s.now_ms, tid, "a", TaskClass.BATCH, config.providers[0].name)).state
    if tid not in s.tasks:  # refused for another reason (queue full): nothing to repeat
        return
    r = step(s, Submit(s.now_ms + 1, tid, "z", s.tasks[tid].task_class))
    t = tick(s, s.now_ms + 1)
    assert r.state == t.state
    cancels = tuple(e for e in t.effects if isinstance(e, CancelTask))
    assert r.effects == cancels + (Refusal(tid, RefusalReason.DUPLICATE_TASK),) + t.effects[len(cancels):]


@given(configs_and_events(), st.integers(0, 5_000))
def test_reap_leaves_no_overdue_running_task(ce: tuple[SchedulerConfig, list[SchedulerEvent]], dt: int) -> None:
    """After reap(now), no running task is at or past its idle or run limit, and every reaped one got a CancelTask."""
    config, events = ce
    s = final(config, events)
    r = reap(s, s.now_ms + dt)
    now = r.state.now_ms
    for tid in r.state.lanes:
        if tid is not None:
            t = r.state.tasks[tid]
            cc = config.class_config(t.task_class)
            assert now - t.last_progress_ms < cc.idle_ms_reap
            assert cc.run_ms_limit == 0 or t.started_ms is None or now - t.started_ms < cc.run_ms_limit
    cancelled = {e.task_id for e in r.effects if isinstance(e, CancelTask)}
    assert all(r.state.tasks[x].phase.terminal for x in cancelled)
    assert all(isinstance(e, CancelTask) for e in r.effects)


@given(configs_and_events(), st.data())
def test_late_events_from_terminal_tasks_are_refused(
    ce: tuple[SchedulerConfig, list[SchedulerEvent]], data: st.DataObject
) -> None:
    """Any event about a terminal task is refused with TASK_TERMINAL and never changes that task."""
    config, events = ce
    s = final(config, events)
    terminal = sorted(tid for tid, t in s.tasks.items() if t.phase.terminal)
    if not terminal:
        return
    tid = data.draw(st.sampled_from(terminal))
    at = s.now_ms + data.draw(st.integers(0, 100))
    for ev in (Heartbeat(at, tid), StepFinished(at, tid), TaskFinished(at, tid), TaskFailed(at, tid),
               RateLimited(at, tid, config.providers[0].name)):
        r = step(s, ev)
        assert Refusal(tid, RefusalReason.TASK_TERMINAL) in r.effects
        assert r.state.tasks[tid] == s.tasks[tid]
        assert not any(isinstance(e, (StartTask, YieldTask, CancelTask)) and e.task_id == tid for e in r.effects)


@given(configs_and_events())
def test_no_lane_taken_or_kept_while_gate_blocks(ce: tuple[SchedulerConfig, list[SchedulerEvent]]) -> None:
    """No task starts or continues on a paused provider, and no bucket ever goes negative or over capacity."""
    config, events = ce
    for _, ev, after, effects in fold(config, events):
        now = after.now_ms
        started = [e.task_id for e in effects if isinstance(e, StartTask)]
        kept = []
        if isinstance(ev, StepFinished) and not any(isinstance(e, Refusal) for e in effects):
            if YieldTask(ev.task_id) not in effects and after.tasks[ev.task_id].phase is Phase.RUNNING:
                kept.append(ev.task_id)
        for tid in started + kept:
            assert after.gates[after.tasks[tid].provider].paused_until_ms <= now
        for p in config.providers:
            g = gate_view(after, p.name)
            rpm_e, tpm_e = rates(g, p)
            assert 0 <= g.requests_scaled <= rpm_e * SCALE
            assert 0 <= g.tokens_scaled <= tpm_e * SCALE
            assert p.floor_permille <= g.limit_permille <= 1000


@given(configs_and_events())
def test_terminal_tasks_never_change(ce: tuple[SchedulerConfig, list[SchedulerEvent]]) -> None:
    """Once a task is terminal its record never changes again."""
    config, events = ce
    for before, _, after, _ in fold(config, events):
        for tid, t in before.tasks.items():
            if t.phase.terminal:
                assert after.tasks[tid] == t


@given(configs_and_events())
def test_step_leaves_nothing_pending_at_its_instant(ce: tuple[SchedulerConfig, list[SchedulerEvent]]) -> None:
    """After any event, a tick at the same instant changes nothing, and the announced wake-up is current."""
    config, events = ce
    for _, _, after, _ in fold(config, events):
        r = tick(after, after.now_ms)
        assert r.effects == () and r.state == after
        nxt = next_wake_ms(after)
        assert nxt is None or (nxt > after.now_ms and after.last_wake_ms == nxt)


@given(configs_and_events(), st.sampled_from(TASK_IDS))
def test_demote_drops_one_level_and_resets_used(ce: tuple[SchedulerConfig, list[SchedulerEvent]], tid: str) -> None:
    """demote moves a live task one level down (not past the last) with used_ms 0; terminal ones are refused."""
    config, events = ce
    s = tick(final(config, events), final(config, events).now_ms).state
    before = s.tasks.get(tid)
    r = demote(s, tid, s.now_ms)
    after = r.state.tasks.get(tid)
    if before is None:
        assert r.effects[0] == Refusal(tid, RefusalReason.UNKNOWN_TASK)
    elif before.phase.terminal:
        assert r.effects[0] == Refusal(tid, RefusalReason.TASK_TERMINAL) and after == before
    else:
        assert after is not None
        assert after.level == min(before.level + 1, config.levels - 1)
        assert after.used_ms == 0
        counters_consistent(r.state)


@given(configs_and_events())
def test_dispatch_prefers_lower_level(ce: tuple[SchedulerConfig, list[SchedulerEvent]]) -> None:
    """The StartTasks of one step come in non-decreasing level order and never restart a task still running."""
    config, events = ce
    for before, _, after, effects in fold(config, events):
        starts = [e for e in effects if isinstance(e, StartTask)]
        assert [e.level for e in starts] == sorted(e.level for e in starts)
        for e in starts:
            assert after.tasks[e.task_id].level == e.level
            assert before.tasks.get(e.task_id) is None or before.tasks[e.task_id].phase is not Phase.RUNNING \
                or any(isinstance(x, YieldTask) and x.task_id == e.task_id for x in effects)


BAD_FIELDS = [
    ({"lanes": 0}, "lanes"),
    ({"level_allotments_ms": ()}, "level_allotments_ms"),
    ({"level_allotments_ms": (10, 0)}, "level_allotments_ms[1]"),
    ({"boost_period_ms": 0}, "boost_period_ms"),
    ({"interactive": ClassConfig(entry_level=5, reserved_lanes=1, idle_ms_reap=1)}, "interactive.entry_level"),
    ({"batch": ClassConfig(entry_level=1, reserved_lanes=-1, idle_ms_reap=1)}, "batch.reserved_lanes"),
    ({"background": ClassConfig(entry_level=2, reserved_lanes=0, idle_ms_reap=0)}, "background.idle_ms_reap"),
    ({"background": ClassConfig(entry_level=2, reserved_lanes=0, idle_ms_reap=1, run_ms_limit=-1)},
     "background.run_ms_limit"),
    ({"background": ClassConfig(entry_level=2, reserved_lanes=9, idle_ms_reap=1)}, "reserved_lanes"),
    ({"lanes": 2, "interactive": ClassConfig(entry_level=0, reserved_lanes=1, idle_ms_reap=1),
      "background": ClassConfig(entry_level=2, reserved_lanes=1, idle_ms_reap=1)}, "reserved_lanes"),
    ({"admission_window_ms": 0}, "admission_window_ms"),
    ({"admission_rate_per_window": 0}, "admission_rate_per_window"),
    ({"queue_cap": 0}, "queue_cap"),
    ({"providers": ()}, "providers"),
    ({"providers": (ProviderConfig("", 1, 1),)}, "providers[0].name"),
    ({"providers": (ProviderConfig("x", 1, 1), ProviderConfig("x", 1, 1))}, "providers[1].name"),
    ({"providers": (ProviderConfig("x", 0, 1),)}, "providers[0].requests_per_min"),
    ({"providers": (ProviderConfig("x", 1, 0),)}, "providers[0].tokens_per_min"),
    ({"providers": (ProviderConfig("x", 1, 1, floor_permille=0),)}, "providers[0].floor_permille"),
    ({"providers": (ProviderConfig("x", 1, 1, decrease_permille=1000),)}, "providers[0].decrease_permille"),
    ({"providers": (ProviderConfig("x", 1, 1, increase_permille=-1),)}, "providers[0].increase_permille"),
    ({"providers": (ProviderConfig("x", 1, 1, success_streak=0),)}, "providers[0].success_streak"),
    ({"providers": (ProviderConfig("x", 1, 1, default_retry_after_ms=-1),)}, "providers[0].default_retry_after_ms"),
]


@pytest.mark.parametrize(("changes", "field"), BAD_FIELDS, ids=[f for _, f in BAD_FIELDS])
def test_config_validation_names_the_field(changes: dict[str, Any], field: str) -> None:
    """A config with one bad field raises ConfigError whose message starts with that field's name."""
    with pytest.raises(ConfigError, match="^" + re.escape(field) + ":"):
        attrs.evolve(SchedulerConfig(), **changes)


@given(configs_and_events())
def test_busy_fast_path_equals_the_general_step(ce: tuple[SchedulerConfig, list[SchedulerEvent]]) -> None:
    """Wherever the busy fast path applies, it gives exactly the general path's state and effects."""
    config, events = ce
    s = SchedulerState.initial(config)
    for ev in events:
        if ev.at_ms >= s.now_ms:
            fast = _busy_fast_path(s, ev)
            if fast is not None:
                assert fast == _general_step(s, ev)
        s = step(s, ev).state


@given(configs_and_events(), st.lists(st.sampled_from(list(TaskClass)), min_size=1, max_size=12))
def test_busy_fast_path_equals_the_general_step_on_a_loaded_system(
    ce: tuple[SchedulerConfig, list[SchedulerEvent]], classes: list[TaskClass],
) -> None:
    """As above, after a burst of submissions that fills the lanes and leaves tasks waiting
    (where the fast path serves most ticks, heartbeats, finished steps and further
    submissions): the generated events about a task are about the burst's tasks, and
    heartbeats and finished steps about a running one when there is one."""
    config, events = ce
    s = SchedulerState.initial(config)
    burst = [Submit(0, f"b{i}", f"a{i % 3}", c, provider=config.providers[0].name)
             for i, c in enumerate(classes * (config.lanes // len(classes) + 2))]

    def about_the_burst(i: int, ev: SchedulerEvent) -> SchedulerEvent:
        if isinstance(ev, Submit):
            return Submit(ev.at_ms, f"x{i}", "late", ev.task_class, provider=config.providers[-1].name)
        if isinstance(ev, ClockAdvanced):
            return ev
        k = TASK_IDS.index(ev.task_id)
        running = [tid for tid in s.lanes if tid is not None]
        if running and isinstance(ev, (Heartbeat, StepFinished)):
            return attrs.evolve(ev, task_id=running[k % len(running)])
        return attrs.evolve(ev, task_id=f"b{k % len(burst)}")

    for i, ev in enumerate(burst + events):
        if i >= len(burst):
            ev = about_the_burst(i, ev)
        if ev.at_ms >= s.now_ms:
            fast = _busy_fast_path(s, ev)
            if fast is not None:
                assert fast == _general_step(s, ev)
        s = step(s, ev).state


def test_busy_fast_path_serves_heartbeats_ticks_submissions_and_steps_of_a_full_system() -> None:
    """With both lanes busy and nothing due, heartbeats, ticks, submissions and finished steps that keep
    their lane take the fast path, matching the general one."""
    s = SchedulerState.initial(SMALL)
    for ev in (Submit(0, "a", "x", TaskClass.INTERACTIVE), Submit(0, "b", "x", TaskClass.BATCH),
               Submit(0, "c", "x", TaskClass.BATCH)):
        s = step(s, ev).state
    assert s.lanes == ("a", "b") and s.waiting == 1
    for ev in (Heartbeat(10, "a"), ClockAdvanced(20)):
        fast = _busy_fast_path(s, ev)
        assert fast is not None and fast == _general_step(s, ev)
        s = fast.state
    assert s.tasks["a"].last_progress_ms == 10 and s.now_ms == 20
    assert _busy_fast_path(s, Heartbeat(30, "c")) is None  # a waiting task: refused by the general path
    assert _busy_fast_path(s, ClockAdvanced(10**9)) is None  # boost and reaps due
    for ev in (Submit(30, "d", "y", TaskClass.BACKGROUND, parent="a"), Submit(40, "e", "y", TaskClass.BATCH)):
        fast = _busy_fast_path(s, ev)  # a submission that waits for a lane
        assert fast is not None and fast == _general_step(s, ev)
        s = fast.state
    assert s.waiting == 3 and s.children["a"] == ("d",) and s.tasks["e"].phase is Phase.WAITING
    assert _busy_fast_path(s, Submit(50, "d", "y", TaskClass.BATCH)) is None  # a duplicate: refused
    done = StepFinished(60, "a", tokens_used=30, next_step_tokens=5)  # "a" keeps its lane: nothing waits above it
    fast = _busy_fast_path(s, done)
    assert fast is not None and fast == _general_step(s, done)
    s = fast.state
    assert s.lanes == ("a", "b") and s.tasks["a"].demand_tokens == 5 and s.tasks["a"].last_progress_ms == 60
    assert _busy_fast_path(s, StepFinished(70, "c")) is None  # a waiting task: refused by the general path
    assert _busy_fast_path(s, StepFinished(70, "a", tokens_used=-1)) is None  # invalid: refused
    for ev in (StepFinished(9_000, "b"),  # allotment spent and "c" waits at its level: it yields
               StepFinished(70, "a", next_step_tokens=10**6)):  # its gate is closed for its next step: it yields
        assert _busy_fast_path(s, ev) is None and YieldTask(ev.task_id) in _general_step(s, ev).effects


def _as_built_by_init(x: Any) -> None:
    """``x`` holds exactly its class's attrs fields, and equals the ``__init__``-built twin."""
    names = [f.name for f in attrs.fields(type(x))]
    assert sorted(vars(x)) == sorted(names), type(x).__name__
    twin = type(x)(**{n: getattr(x, n) for n in names})
    assert twin == x and hash(twin) == hash(x) and repr(twin) == repr(x)


@given(configs_and_events())
def test_hot_path_constructors_build_what_init_builds(ce: tuple[SchedulerConfig, list[SchedulerEvent]]) -> None:
    """Every Step, state, task record, queue and gate a step returns (built by ``from_fields``, not
    ``__init__``) has exactly its class's fields and equals its ``__init__``-built twin."""
    config, events = ce
    s = SchedulerState.initial(config)
    for ev in events:
        r = step(s, ev)
        _as_built_by_init(r)
        _as_built_by_init(r.state)
        for t in r.state.tasks.values():
            _as_built_by_init(t)
        for q in r.state.queues.values():
            _as_built_by_init(q)
        for g in r.state.gates.values():
            _as_built_by_init(g)
        s = r.state


@given(configs())
def test_compiled_config_lookups_mirror_the_config_methods(config: SchedulerConfig) -> None:
    """records.class_config / provider_config answer exactly what SchedulerConfig's methods answer."""
    for c in TaskClass:
        assert class_config(config, c) is config.class_config(c)
    for p in config.providers:
        assert provider_config(config, p.name) is config.provider(p.name)
    with pytest.raises(AssertionError, match="'nowhere'"):
        provider_config(config, "nowhere")


_RECORD_FIELDS = ("phase", "level", "used_ms", "last_progress_ms", "demand_tokens", "enqueue_seq", "queue_pos",
                  "lane", "started_ms", "slice_start_ms", "charged_tokens")


@given(st.dictionaries(st.sampled_from(_RECORD_FIELDS), st.integers(0, 10**6)), st.sampled_from(list(Phase)))
def test_with_is_evolve(changes: dict[str, Any], phase: Phase) -> None:
    """The hot path's ``_with`` gives exactly ``attrs.evolve``'s record, and leaves its input unchanged."""
    if "phase" in changes:
        changes["phase"] = phase
    t = TaskRecord("t", "a", TaskClass.BATCH, "p", None, 3, Phase.WAITING, 1, 2, 3, 4, 5, 6, None, None, 7, 8)
    before = repr(t)
    got = _with(t, **changes)
    _as_built_by_init(got)
    assert got == attrs.evolve(t, **changes)
    assert repr(t) == before
    assert _with(t) == t and _with(t) is not t
    q, pos = FifoQueue().push("x")
    _as_built_by_init(q)
    _as_built_by_init(q.remove(pos))


@given(configs_and_events())
def test_snapshot_round_trip_is_exact(ce: tuple[SchedulerConfig, list[SchedulerEvent]]) -> None:
    """load(dump(s)) == s for every reachable state, and the text is canonical (dump of the load is identical)."""
    config, events = ce
    s = final(config, events)
    text = dump_scheduler_state(s)
    loaded = load_scheduler_state(text)
    assert loaded == s
    assert dump_scheduler_state(loaded) == text
    assert step(loaded, ClockAdvanced(s.now_ms + 1_000)) == step(s, ClockAdvanced(s.now_ms + 1_000))


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ('"now_ms":', '"now_ms":"5","x":', "snapshot.now_ms"),
        ('"level":0', '"level":0.5', "snapshot.tasks[0].level"),
        ('"phase":"running"', '"phase":"zombie"', "snapshot.tasks[0].phase"),
        ('"lanes":2', '"lanes":0', "lanes: must be >= 1"),
        ('"version":1', '"version":2', "version"),
    ],
)
def test_snapshot_refuses_bad_text_naming_the_field(old: str, new: str, field: str) -> None:
    """A snapshot with one wrong field is refused with a SnapshotError that names that field."""
    s = step(SchedulerState.initial(SMALL), Submit(0, "t", "a", TaskClass.INTERACTIVE)).state
    text = dump_scheduler_state(s)
    assert old in text
    with pytest.raises(SnapshotError, match=re.escape(field)):
        load_scheduler_state(text.replace(old, new, 1))


SMALL = SchedulerConfig(lanes=2, providers=(ProviderConfig("default", 60, 6_000),))


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('"lanes":["t","u"]', '"lanes":["ghost","u"]', "snapshot.lanes[0]: unknown task 'ghost'"),
        ('"head":0,', '"head":5,', "S4 queues_fifo"),
        ('"phase":"running","provider":"default"', '"phase":"running","provider":"nope"', "S1 every_task_placed"),
    ],
)
def test_snapshot_refuses_dangling_references(old: str, new: str, message: str) -> None:
    """A lane naming an unknown task, a queue cursor past its first task or a task on an unknown provider is refused."""
    s = SchedulerState.initial(SMALL)
    for ev in (Submit(0, "t", "a", TaskClass.INTERACTIVE), Submit(0, "u", "a", TaskClass.BATCH),
               Submit(0, "w", "a", TaskClass.BATCH)):
        s = step(s, ev).state
    text = dump_scheduler_state(s)
    assert old in text
    with pytest.raises(SnapshotError, match=re.escape(message)):
        load_scheduler_state(text.replace(old, new, 1))


def test_snapshot_refuses_a_well_typed_but_inconsistent_state() -> None:
    """A snapshot whose fields parse but disagree (a running task on no lane) is refused naming the invariant."""
    s = step(SchedulerState.initial(SMALL), Submit(0, "t", "a", TaskClass.INTERACTIVE)).state
    text = dump_scheduler_state(s)
    assert '"lanes":["t",null]' in text
    with pytest.raises(SnapshotError, match=r"snapshot: inconsistent state: S1 "):
        load_scheduler_state(text.replace('"lanes":["t",null]', '"lanes":[null,null]', 1))


# --- gate arithmetic (also run under HYPOTHESIS_PROFILE=crosshair -m crosshair_backend) ----------


@pytest.mark.crosshair_backend
@given(st.integers(1, 1000), st.integers(1, 999), st.integers(0, 1000), st.integers(1, 20),
       st.lists(st.booleans(), max_size=30))
def test_aimd_limit_stays_within_floor_and_ceiling(
    floor: int, decrease: int, increase: int, streak_len: int, outcomes: list[bool]
) -> None:
    """Any sequence of successes and 429s keeps the effective limit within [floor, 1000] and the streak below its length."""
    e, streak = 1000, 0
    for ok in outcomes:
        if ok:
            e, streak = on_success(e, streak, streak_len, increase)
        else:
            e, streak = on_429(e, floor, decrease), 0
        assert floor <= e <= 1000 and 0 <= streak < streak_len


@given(st.integers(1, 10**9), st.integers(1, 10**12), st.integers(1, 1000))
def test_rates_equals_effective_rate(rpm: int, tpm: int, e: int) -> None:
    """The gate's inlined rate arithmetic gives exactly effective_rate for both buckets at every limit."""
    gate = attrs.evolve(GateState.initial(rpm, tpm), limit_permille=e)
    assert rates(gate, ProviderConfig("p", rpm, tpm)) == (effective_rate(rpm, e), effective_rate(tpm, e))


@given(st.integers(1, 10_000), st.integers(1, 10**7), st.integers(1, 1000), st.integers(0, 10**12),
       st.integers(0, 10**15), st.integers(0, 2_000), st.booleans(), st.sampled_from(["", "t1"]),
       st.integers(0, 2 * 10**7), st.integers(0, 2_000))
def test_gate_threshold_agrees_with_admission(rpm: int, tpm: int, e: int, req: int, tok: int, paused: int,
                                             half_open: bool, probe: str, demand: int, now: int) -> None:
    """A head is admitted exactly when its demand is within gate_max_admitted_demand (the dispatch scan's test),
    which refills a gate last refilled earlier up to now itself."""
    p = ProviderConfig("p", rpm, tpm)
    rpm_e, tpm_e = rates(GateState(e, 0, 0, 0, 0, 0), p)
    gate = GateState(e, min(req, rpm_e * SCALE), min(tok, tpm_e * SCALE), now // 2, paused, 0, half_open,
                     probe if half_open else "")
    assert (demand <= gate_max_admitted_demand(gate, p, now)) == gate_admits(refill_gate(gate, p, now), p, demand, now)


@given(st.integers(1, 10_000), st.integers(1, 10**7), st.integers(1, 1000), st.integers(0, 2), st.integers(0, 2),
       st.integers(0, 1_000), st.integers(0, 1_000), st.booleans(), st.integers(0, 2 * 10**7))
def test_charge_refills_then_pays_one_step(rpm: int, tpm: int, e: int, req_frac: int, tok_frac: int,
                                           refilled: int, dt: int, half_open: bool, demand: int) -> None:
    """charge_gate at now is the gate refilled up to now, less one request and the step's capped tokens."""
    p = ProviderConfig("p", rpm, tpm)
    rpm_e, tpm_e = rates(GateState(e, 0, 0, 0, 0, 0), p)
    gate = GateState(e, req_frac * rpm_e * SCALE // 2, tok_frac * tpm_e * SCALE // 2, refilled, 0, 0, half_open, "")
    now = refilled + dt
    r = refill_gate(gate, p, now)
    if not gate_admits(r, p, demand, now):
        return  # only an admitted step is charged
    charged, tokens = charge_gate(gate, p, demand, "t", now)
    assert tokens == min(demand, tpm_e)
    assert charged == attrs.evolve(r, requests_scaled=r.requests_scaled - SCALE,
                                   tokens_scaled=r.tokens_scaled - tokens * SCALE, probe="t" if half_open else "")


@given(st.integers(1, 10_000), st.integers(1, 10**7), st.integers(1, 1000), st.integers(0, 2), st.integers(0, 2),
       st.integers(0, 50), st.integers(0, 9), st.booleans(), st.sampled_from(["", "t1", "t2"]),
       st.integers(0, 10**6), st.sampled_from(["t1", "t2"]), st.integers(0, 100))
def test_step_succeeded_is_refill_then_success_then_probe_done(
    rpm: int, tpm: int, e: int, req_frac: int, tok_frac: int, refilled: int, streak: int, half_open: bool,
    probe: str, excess: int, task_id: str, dt: int,
) -> None:
    """The one-construction success update equals refill, then gate_success, then gate_probe_done."""
    p = ProviderConfig("p", rpm, tpm)
    gate = GateState(e, req_frac * (rpm * e // 1000) * SCALE // 2, tok_frac * (tpm * e // 1000) * SCALE // 2,
                     refilled, 0, streak, half_open, probe if half_open else "")
    now = refilled + dt
    expected = gate_probe_done(gate_success(refill_gate(gate, p, now), p, excess), task_id, completed=True)
    assert gate_step_succeeded(gate, p, excess, task_id, now) == expected


@given(st.integers(1, 10_000), st.integers(1, 10**7), st.integers(1, 1000), st.integers(0, 2), st.integers(0, 2),
       st.integers(0, 50), st.integers(0, 9), st.booleans(), st.sampled_from(["", "t1", "t2"]),
       st.integers(0, 10**6), st.sampled_from(["t1", "t2"]), st.integers(0, 100), st.integers(0, 200),
       st.one_of(st.integers(0, 2 * 10**7), st.just(2**70)))
# A half-open gate without a probe admits the step, and its charge makes the step the probe.
@example(600, 600_000, 1000, 2, 2, 0, 0, True, "", 0, "t1", 0, 0, 1)
def test_finished_step_gate_fields_agree_with_the_built_gate(
    rpm: int, tpm: int, e: int, req_frac: int, tok_frac: int, refilled: int, streak: int, half_open: bool,
    probe: str, excess: int, task_id: str, dt: int, paused: int, demand: int,
) -> None:
    """A finished step's gate handled as fields (the transition builds it once) agrees with the gate built
    by gate_step_succeeded: same gate, same admission of the next step (a full bucket admits any demand),
    same threshold for the dispatch scan, and the same charge."""
    p = ProviderConfig("p", rpm, tpm)
    gate = GateState(e, req_frac * (rpm * e // 1000) * SCALE // 2, tok_frac * (tpm * e // 1000) * SCALE // 2,
                     refilled, paused, streak, half_open, probe if half_open else "")
    now = refilled + dt
    fields = step_succeeded_fields(gate, p, excess, task_id, now)
    built = gate_step_succeeded(gate, p, excess, task_id, now)
    assert gate_of(fields) == built and attrs.astuple(built) == fields
    ceiling = fields_max_admitted_demand(fields, p, now)
    assert ceiling == gate_max_admitted_demand(built, p, now)
    admitted = demand <= ceiling or ceiling == UNBOUNDED_DEMAND
    assert admitted == gate_admits(built, p, demand, now)
    if admitted:
        assert charge_fields(fields, p, demand, task_id) == charge_gate(built, p, demand, task_id, now)


@given(st.integers(1, 10_000), st.integers(1, 10**7), st.integers(1, 1000), st.integers(0, 2), st.integers(0, 2),
       st.integers(0, 1_000), st.integers(0, 2_000), st.integers(0, 2_000), st.integers(0, 2 * 10**7))
def test_reopen_is_earliest_admit_of_the_refilled_gate(rpm: int, tpm: int, e: int, req_frac: int, tok_frac: int,
                                                      refilled: int, dt: int, paused: int, demand: int) -> None:
    """The wake-up's re-open time, computed without building a gate, equals gate_earliest_admit_ms of the
    gate refilled up to now (whether or not it was refilled at now already)."""
    p = ProviderConfig("p", rpm, tpm)
    rpm_e, tpm_e = rates(GateState(e, 0, 0, 0, 0, 0), p)
    gate = GateState(e, req_frac * rpm_e * SCALE // 2, tok_frac * tpm_e * SCALE // 2, refilled, paused, 0)
    now = refilled + dt
    assert gate_reopen_ms(gate, p, demand, now) == gate_earliest_admit_ms(refill_gate(gate, p, now), p, demand, now)


@pytest.mark.crosshair_backend
@given(st.integers(1, 10_000), st.integers(0, 10_000 * SCALE), st.integers(0, 10**6), st.integers(0, 10**6))
def test_refill_is_monotone_capped_and_additive(rate: int, level: int, a: int, b: int) -> None:
    """Refill never lowers a bucket, never exceeds capacity, and refilling a then b ms equals refilling a + b ms."""
    level = min(level, rate * SCALE)
    once = refill(level, rate, a)
    assert level <= once <= rate * SCALE
    assert refill(once, rate, b) == refill(level, rate, a + b)


@pytest.mark.crosshair_backend
@given(st.integers(1, 600), st.integers(1, 100_000), st.integers(0, 600 * SCALE), st.integers(0, 100_000 * SCALE),
       st.integers(0, 200_000), st.integers(0, 5_000), st.integers(0, 5_000))
def test_earliest_admit_is_the_first_admitting_millisecond(
    rpm: int, tpm: int, req: int, tok: int, demand: int, paused: int, now: int
) -> None:
    """earliest_admit_ms is a time at which the refilled gate admits the demand, and the millisecond before it does not."""
    req, tok = min(req, rpm * SCALE), min(tok, tpm * SCALE)
    t = earliest_admit_ms(req, tok, rpm, tpm, demand, paused, now)
    assert t >= now
    assert admits(refill(req, rpm, t - now), refill(tok, tpm, t - now), tpm, demand, paused, t)
    if t > now:
        assert not admits(refill(req, rpm, t - 1 - now), refill(tok, tpm, t - 1 - now), tpm, demand, paused, t - 1)
