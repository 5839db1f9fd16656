"""The reference model of the scheduling policy (SPEC.md section 1), as plainly as possible.

This is the *specification* the fast kernel (:mod:`agentrm.kernel.scheduler`) must
refine: the same policy over plain tuples and ints, with no indexes, no persistent maps
and no cleverness. Every per-event operation here is a linear scan; that is the point.
Hypothesis drives the kernel and this model in lockstep and asserts they emit identical
effects (``tests/test_sched_lockstep.py``).

The quantitative rules are small pure functions with PEP 316 ``pre:``/``post:``
contracts that CrossHair checks (``tests/run_crosshair.py``): effective rates, bucket
refill and charging, AIMD, allotment and demotion, lane availability, the dispatch
choice and the gate's ready time. They use only ints, bools and tuples so CrossHair
can explore them.

Public entry points: :meth:`ModelState.initial` and :func:`model_step`.
"""

from __future__ import annotations

import enum

import attrs

from agentrm.kernel.scheduler.config import SchedulerConfig, TaskClass
from agentrm.kernel.scheduler.effects import (
    CancelReason,
    CancelTask,
    Refusal,
    RefusalReason,
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
    TaskFinished,
)

SCALE = 60_000
"""Buckets are kept in units of 1/60,000 so a per-minute rate refills exactly per ms (SPEC 1.5)."""

# ---------------------------------------------------------------------------
# Int-level policy helpers with contracts (checked by CrossHair)
# ---------------------------------------------------------------------------


def effective_rate(rate_per_min: int, e_permille: int) -> int:
    """The AIMD-adjusted rate: ``max(1, rate * e // 1000)`` (SPEC 1.5).

    pre: rate_per_min >= 1
    pre: 1 <= e_permille <= 1000
    post: 1 <= __return__ <= rate_per_min
    post: e_permille < 1000 or __return__ == rate_per_min
    """
    return max(1, rate_per_min * e_permille // 1000)


def refill(level: int, rate_e: int, elapsed_ms: int) -> int:
    """A bucket of ``level`` scaled units after ``elapsed_ms`` at ``rate_e`` per minute.

    Each millisecond adds ``rate_e`` scaled units, capped at one minute of the rate.

    pre: rate_e >= 1
    pre: 0 <= level <= rate_e * 60000
    pre: elapsed_ms >= 0
    post: level <= __return__ <= rate_e * 60000
    post: elapsed_ms < 60000 or __return__ == rate_e * 60000
    """
    return min(rate_e * SCALE, level + rate_e * elapsed_ms)


def admits(paused_until_ms: int, now_ms: int, req: int, tok: int, tpm_e: int, demand: int) -> bool:
    """Whether the gate admits a step of ``demand`` tokens now (SPEC 1.5).

    pre: tpm_e >= 1
    pre: demand >= 0
    post: __return__ == (now_ms >= paused_until_ms and req >= 60000 and tok >= min(demand, tpm_e) * 60000)
    """
    if now_ms < paused_until_ms:
        return False
    return req >= SCALE and tok >= min(demand, tpm_e) * SCALE


def charge(req: int, tok: int, tpm_e: int, demand: int) -> tuple[int, int, int]:
    """Charge one request and ``min(demand, tpm_e)`` tokens: ``(req, tok, tokens_charged)``.

    pre: tpm_e >= 1
    pre: demand >= 0
    pre: req >= 60000
    pre: tok >= min(demand, tpm_e) * 60000
    post: __return__[0] == req - 60000
    post: __return__[0] >= 0 and __return__[1] >= 0
    post: 0 <= __return__[2] <= tpm_e
    post: __return__[1] == tok - __return__[2] * 60000
    """
    charged = min(demand, tpm_e)
    return req - SCALE, tok - charged * SCALE, charged


def charge_excess(tok: int, excess_tokens: int) -> int:
    """Take a step's unplanned token use from the token bucket, never below 0.

    pre: tok >= 0
    post: 0 <= __return__ <= tok
    post: excess_tokens > 0 or __return__ == tok
    """
    if excess_tokens <= 0:
        return tok
    return max(0, tok - excess_tokens * SCALE)


def aimd_cut(e_permille: int, floor_permille: int, decrease_permille: int) -> int:
    """A 429: the effective limit shrinks multiplicatively, never below the floor.

    pre: 1 <= floor_permille <= 1000
    pre: floor_permille <= e_permille <= 1000
    pre: 1 <= decrease_permille < 1000
    post: floor_permille <= __return__ <= e_permille
    post: __return__ < e_permille or e_permille == floor_permille
    """
    return max(floor_permille, e_permille * decrease_permille // 1000)


def aimd_success(e_permille: int, streak: int, streak_len: int, increase_permille: int) -> tuple[int, int]:
    """One successful step: ``(e, streak)`` after it; a full streak adds ``increase_permille``.

    pre: 1 <= e_permille <= 1000
    pre: 1 <= streak_len
    pre: 0 <= streak < streak_len
    pre: 0 <= increase_permille <= 1000
    post: e_permille <= __return__[0] <= 1000
    post: 0 <= __return__[1] < streak_len
    post: __return__[0] == e_permille or __return__[1] == 0
    """
    streak += 1
    if streak >= streak_len:
        return min(1000, e_permille + increase_permille), 0
    return e_permille, streak


def after_service(level: int, used_ms: int, allotment_ms: int, levels: int) -> tuple[int, int, bool]:
    """Allotment accounting at a step boundary: ``(level, used_ms, spent)`` (SPEC 1.3).

    A task whose service at its level reaches the allotment drops one level (the last
    level keeps it) and starts the new level with nothing used.

    pre: 1 <= levels
    pre: 0 <= level < levels
    pre: used_ms >= 0
    pre: allotment_ms >= 1
    post: 0 <= __return__[0] < levels
    post: __return__[0] in (level, min(level + 1, levels - 1))
    post: __return__[2] == (used_ms >= allotment_ms)
    post: (__return__[1] == 0) if __return__[2] else (__return__[1] == used_ms and __return__[0] == level)
    """
    if used_ms >= allotment_ms:
        return min(level + 1, levels - 1), 0, True
    return level, used_ms, False


def class_may_take(cls: int, running: tuple[int, int, int], reserved: tuple[int, int, int], lanes: int) -> bool:
    """Whether class ``cls`` may take a free lane (SPEC 1.4).

    ``running[c]`` tasks of class ``c`` run; ``reserved[c]`` lanes are reserved for it;
    the ``lanes - sum(reserved)`` others are shared. A class may use its own reserved
    lanes, or a shared one if the other classes' overflow has not taken them all.

    pre: 0 <= cls <= 2
    pre: all(r >= 0 for r in running) and all(r >= 0 for r in reserved)
    pre: sum(reserved) <= lanes
    pre: sum(max(0, running[d] - reserved[d]) for d in range(3)) <= lanes - sum(reserved)
    post: not __return__ or sum(running) < lanes
    post: not __return__ or sum(max(0, r - v) for r, v in zip(running[:cls] + (running[cls] + 1,) + running[cls + 1:], reserved)) <= lanes - sum(reserved)
    """
    shared = lanes - sum(reserved)
    overflow = sum(max(0, r - v) for r, v in zip(running, reserved))
    return running[cls] < reserved[cls] or overflow < shared


def pick(candidates: tuple[tuple[int, int], ...]) -> int:
    """Index of the candidate ``(level, enqueue_number)`` to dispatch first, or -1 if none.

    The lowest level wins (level 0 is the highest priority); within a level, FIFO.

    post: (__return__ == -1) == (len(candidates) == 0)
    post: __return__ == -1 or all(candidates[__return__] <= c for c in candidates)
    """
    best = -1
    for i, c in enumerate(candidates):
        if best == -1 or c < candidates[best]:
            best = i
    return best


def ceil_div(a: int, b: int) -> int:
    """``ceil(a / b)`` for ints.

    pre: b >= 1
    post: __return__ * b >= a
    post: (__return__ - 1) * b < a
    """
    return -((-a) // b)


def ready_at(now_ms: int, paused_until_ms: int, req: int, tok: int, rpm_e: int, tpm_e: int, demand: int) -> int:
    """The earliest time >= ``now_ms`` at which the gate admits ``demand`` with no other event.

    Buckets keep refilling while the provider is paused (SPEC 1.5, 1.6).

    pre: rpm_e >= 1 and tpm_e >= 1
    pre: 0 <= req <= rpm_e * 60000
    pre: 0 <= tok <= tpm_e * 60000
    pre: demand >= 0
    post: __return__ >= now_ms
    post: admits(paused_until_ms, __return__, refill(req, rpm_e, __return__ - now_ms), refill(tok, tpm_e, __return__ - now_ms), tpm_e, demand)
    post: __return__ == now_ms or not admits(paused_until_ms, __return__ - 1, refill(req, rpm_e, __return__ - 1 - now_ms), refill(tok, tpm_e, __return__ - 1 - now_ms), tpm_e, demand)
    """
    wait_req = ceil_div(max(0, SCALE - req), rpm_e)
    wait_tok = ceil_div(max(0, min(demand, tpm_e) * SCALE - tok), tpm_e)
    return max(now_ms, paused_until_ms, now_ms + wait_req, now_ms + wait_tok)


# ---------------------------------------------------------------------------
# Model state
# ---------------------------------------------------------------------------


class MPhase(enum.Enum):
    """The model's task phases (SPEC 1.1)."""

    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    REAPED = "reaped"
    CANCELLED = "cancelled"


LIVE = (MPhase.WAITING, MPhase.RUNNING)
CLASSES = (TaskClass.INTERACTIVE, TaskClass.BATCH, TaskClass.BACKGROUND)


@attrs.frozen
class MTask:
    """One task in the model. ``lane`` is -1 unless running; ``started_ms`` -1 until first start."""

    task_id: str
    seq: int
    agent: str
    cls: int
    provider: int
    parent: str | None
    phase: MPhase
    level: int
    used_ms: int
    enq: int
    lane: int
    started_ms: int
    slice_start_ms: int
    last_progress_ms: int
    demand: int
    charged: int


@attrs.frozen
class MProvider:
    """One provider's gate: effective limit, success streak, buckets (scaled), pause, circuit.

    ``half_open`` after a 429 until a probe completes; ``probe`` the task holding the
    probe step, or ``""`` (SPEC 1.5).
    """

    e: int
    streak: int
    req: int
    tok: int
    paused_until_ms: int
    half_open: bool = False
    probe: str = ""


@attrs.frozen
class ModelState:
    """The whole model state: tasks in submission order, providers in config order."""

    config: SchedulerConfig
    now_ms: int
    tasks: tuple[MTask, ...]
    providers: tuple[MProvider, ...]
    next_enq: int
    next_boost_ms: int
    last_wake_ms: int | None
    admissions: tuple[tuple[str, int, int], ...]
    """(agent, window, accepted submissions in that window), sorted by agent."""

    @classmethod
    def initial(cls, config: SchedulerConfig, now_ms: int = 0) -> ModelState:
        """An empty scheduler at ``now_ms``: full buckets, limit 1000 permille."""
        providers = tuple(
            MProvider(1000, 0, p.requests_per_min * SCALE, p.tokens_per_min * SCALE, 0)
            for p in config.providers
        )
        period = config.boost_period_ms
        return cls(config, now_ms, (), providers, 0, (now_ms // period + 1) * period, None, ())


# ---------------------------------------------------------------------------
# Small state helpers (linear scans on purpose)
# ---------------------------------------------------------------------------


def _find(s: ModelState, task_id: str) -> int:
    for i, t in enumerate(s.tasks):
        if t.task_id == task_id:
            return i
    return -1


def _put(s: ModelState, i: int, t: MTask) -> ModelState:
    return attrs.evolve(s, tasks=s.tasks[:i] + (t,) + s.tasks[i + 1:])


def _put_provider(s: ModelState, i: int, p: MProvider) -> ModelState:
    return attrs.evolve(s, providers=s.providers[:i] + (p,) + s.providers[i + 1:])


def _rates(s: ModelState, pi: int) -> tuple[int, int]:
    cfg = s.config.providers[pi]
    e = s.providers[pi].e
    return effective_rate(cfg.requests_per_min, e), effective_rate(cfg.tokens_per_min, e)


def _gate_admits(s: ModelState, pi: int, demand: int) -> bool:
    p = s.providers[pi]
    if p.half_open and p.probe:
        return False  # one probe at a time while half-open
    return admits(p.paused_until_ms, s.now_ms, p.req, p.tok, _rates(s, pi)[1], demand)


def _gate_charge(s: ModelState, pi: int, demand: int, task_id: str) -> tuple[ModelState, int]:
    p = s.providers[pi]
    req, tok, charged = charge(p.req, p.tok, _rates(s, pi)[1], demand)
    probe = task_id if p.half_open else p.probe  # a half-open gate's admitted step is the probe
    return _put_provider(s, pi, attrs.evolve(p, req=req, tok=tok, probe=probe)), charged


def _close_if_probe(s: ModelState, t: MTask) -> ModelState:
    """``t`` completed a step: if it held its provider's probe, the circuit closes."""
    p = s.providers[t.provider]
    if p.probe == t.task_id:
        return _put_provider(s, t.provider, attrs.evolve(p, half_open=False, probe=""))
    return s


def _free_stale_probes(s: ModelState) -> ModelState:
    """A probe whose task is no longer RUNNING (and did not complete its step) is freed."""
    for pi, p in enumerate(s.providers):
        if p.probe:
            i = _find(s, p.probe)
            if i < 0 or s.tasks[i].phase is not MPhase.RUNNING:
                s = _put_provider(s, pi, attrs.evolve(p, probe=""))
    return s


def _running_by_class(s: ModelState) -> tuple[int, int, int]:
    counts = [0, 0, 0]
    for t in s.tasks:
        if t.phase is MPhase.RUNNING:
            counts[t.cls] += 1
    return counts[0], counts[1], counts[2]


def _reserved(s: ModelState) -> tuple[int, int, int]:
    c = s.config
    return c.interactive.reserved_lanes, c.batch.reserved_lanes, c.background.reserved_lanes


def _heads(s: ModelState) -> tuple[MTask, ...]:
    """The head (lowest enqueue number) of every non-empty (level, class, provider) queue."""
    best: dict[tuple[int, int, int], MTask] = {}
    for t in s.tasks:
        if t.phase is MPhase.WAITING:
            key = (t.level, t.cls, t.provider)
            if key not in best or t.enq < best[key].enq:
                best[key] = t
    return tuple(sorted(best.values(), key=lambda t: (t.level, t.enq)))


def _dispatchable(s: ModelState, running: tuple[int, int, int]) -> tuple[MTask, ...]:
    """Heads whose class may take a free lane (given ``running``) and whose gate admits them."""
    return tuple(
        h for h in _heads(s)
        if class_may_take(h.cls, running, _reserved(s), s.config.lanes) and _gate_admits(s, h.provider, h.demand)
    )


def _descendants(s: ModelState, roots: tuple[str, ...]) -> tuple[int, ...]:
    """Indexes of every non-terminal task descending from ``roots``, in submission order."""
    inside = set(roots)
    out: list[int] = []
    # Tasks are in submission order and a parent is always submitted before its child,
    # so one forward pass sees every ancestor before its descendants.
    for i, t in enumerate(s.tasks):
        if t.parent is not None and t.parent in inside:
            inside.add(t.task_id)
            if t.phase in LIVE:
                out.append(i)
    return tuple(out)


def _cancel_descendants(s: ModelState, roots: tuple[str, ...]) -> tuple[ModelState, tuple[SchedulerEffect, ...]]:
    effects: list[SchedulerEffect] = []
    for i in _descendants(s, roots):
        t = s.tasks[i]
        s = _put(s, i, attrs.evolve(t, phase=MPhase.CANCELLED, lane=-1))
        effects.append(CancelTask(t.task_id, CancelReason.PARENT_REAPED))
    return s, tuple(effects)


def _requeue(s: ModelState, i: int, t: MTask) -> ModelState:
    """Back to WAITING at its level with a fresh enqueue number; lane freed."""
    s = _put(s, i, attrs.evolve(t, phase=MPhase.WAITING, lane=-1, enq=s.next_enq))
    return attrs.evolve(s, next_enq=s.next_enq + 1)


def _entry_level(s: ModelState, cls: int) -> int:
    return s.config.class_config(CLASSES[cls]).entry_level


# ---------------------------------------------------------------------------
# The advance (SPEC 1.2 step 2)
# ---------------------------------------------------------------------------


def _advance(s: ModelState, now_ms: int) -> tuple[ModelState, tuple[SchedulerEffect, ...]]:
    elapsed = now_ms - s.now_ms
    s = attrs.evolve(s, now_ms=now_ms)
    # Boost.
    if s.next_boost_ms <= now_ms:
        period = s.config.boost_period_ms
        tasks = tuple(
            attrs.evolve(t, level=_entry_level(s, t.cls), used_ms=0,
                         slice_start_ms=now_ms if t.phase is MPhase.RUNNING else t.slice_start_ms)
            if t.phase in LIVE else t
            for t in s.tasks
        )
        s = attrs.evolve(s, tasks=tasks, next_boost_ms=(now_ms // period + 1) * period)
    # Refill.
    provs = []
    for pi, p in enumerate(s.providers):
        rpm_e, tpm_e = _rates(s, pi)
        provs.append(attrs.evolve(p, req=refill(p.req, rpm_e, elapsed), tok=refill(p.tok, tpm_e, elapsed)))
    s = attrs.evolve(s, providers=tuple(provs))
    # Reap, in lane order.
    effects: list[SchedulerEffect] = []
    reaped: list[str] = []
    for lane in range(s.config.lanes):
        for i, t in enumerate(s.tasks):
            if t.phase is MPhase.RUNNING and t.lane == lane:
                cc = s.config.class_config(CLASSES[t.cls])
                reason: CancelReason | None = None
                if now_ms - t.last_progress_ms >= cc.idle_ms_reap:
                    reason = CancelReason.IDLE
                elif cc.run_ms_limit > 0 and now_ms - t.started_ms >= cc.run_ms_limit:
                    reason = CancelReason.RUN_LIMIT
                if reason is not None:
                    s = _put(s, i, attrs.evolve(t, phase=MPhase.REAPED, lane=-1))
                    effects.append(CancelTask(t.task_id, reason))
                    reaped.append(t.task_id)
    s, cascade = _cancel_descendants(s, tuple(reaped))
    return s, tuple(effects) + cascade


# ---------------------------------------------------------------------------
# Events (SPEC 1.3)
# ---------------------------------------------------------------------------


def _refuse(task_id: str, reason: RefusalReason) -> tuple[SchedulerEffect, ...]:
    return (Refusal(task_id, reason),)


def _task_check(s: ModelState, task_id: str, running_only: bool) -> tuple[int, RefusalReason | None]:
    i = _find(s, task_id)
    if i < 0:
        return i, RefusalReason.UNKNOWN_TASK
    t = s.tasks[i]
    if t.phase not in LIVE:
        return i, RefusalReason.TASK_TERMINAL
    if running_only and t.phase is not MPhase.RUNNING:
        return i, RefusalReason.NOT_RUNNING
    return i, None


def _submit(s: ModelState, ev: Submit) -> tuple[ModelState, tuple[SchedulerEffect, ...]]:
    if not ev.task_id or not ev.agent or ev.step_tokens < 0:
        return s, _refuse(ev.task_id, RefusalReason.INVALID)
    if _find(s, ev.task_id) >= 0:
        return s, _refuse(ev.task_id, RefusalReason.DUPLICATE_TASK)
    pi = -1
    for j, p in enumerate(s.config.providers):
        if p.name == ev.provider:
            pi = j
    if pi < 0:
        return s, _refuse(ev.task_id, RefusalReason.UNKNOWN_PROVIDER)
    if ev.parent is not None:
        k = _find(s, ev.parent)
        if k < 0:
            return s, _refuse(ev.task_id, RefusalReason.UNKNOWN_PARENT)
        if s.tasks[k].phase not in LIVE:
            return s, _refuse(ev.task_id, RefusalReason.PARENT_TERMINAL)
    if sum(1 for t in s.tasks if t.phase is MPhase.WAITING) >= s.config.queue_cap:
        return s, _refuse(ev.task_id, RefusalReason.QUEUE_FULL)
    cls = CLASSES.index(ev.task_class)
    window = s.now_ms // s.config.admission_window_ms
    count = 0
    for agent, w, n in s.admissions:
        if agent == ev.agent and w == window:
            count = n
    level = _entry_level(s, cls)
    if count >= s.config.admission_rate_per_window:
        level = min(level + 1, s.config.levels - 1)
    admissions = tuple(sorted(
        tuple(a for a in s.admissions if a[0] != ev.agent) + ((ev.agent, window, count + 1),)
    ))
    task = MTask(ev.task_id, len(s.tasks), ev.agent, cls, pi, ev.parent, MPhase.WAITING, level, 0,
                 s.next_enq, -1, -1, s.now_ms, s.now_ms, ev.step_tokens, 0)
    s = attrs.evolve(s, tasks=s.tasks + (task,), next_enq=s.next_enq + 1, admissions=admissions)
    return s, ()


def _step_finished(s: ModelState, ev: StepFinished) -> tuple[ModelState, tuple[SchedulerEffect, ...]]:
    if not ev.task_id or ev.tokens_used < 0 or ev.next_step_tokens < 0:
        return s, _refuse(ev.task_id, RefusalReason.INVALID)
    i, why = _task_check(s, ev.task_id, running_only=True)
    if why is not None:
        return s, _refuse(ev.task_id, why)
    t = s.tasks[i]
    now = s.now_ms
    # Provider: success streak, then any excess token use.
    pcfg = s.config.providers[t.provider]
    p = s.providers[t.provider]
    e, streak = aimd_success(p.e, p.streak, pcfg.success_streak, pcfg.increase_permille)
    p = attrs.evolve(p, e=e, streak=streak, tok=charge_excess(p.tok, ev.tokens_used - t.charged))
    s = _close_if_probe(_put_provider(s, t.provider, p), t)
    # Allotment.
    level, used, spent = after_service(
        t.level, t.used_ms + now - t.slice_start_ms, s.config.level_allotments_ms[t.level], s.config.levels)
    t = attrs.evolve(t, last_progress_ms=now, used_ms=used, level=level, slice_start_ms=now,
                     demand=ev.next_step_tokens)
    s = _put(s, i, t)
    # Yield or continue.
    must_yield = not _gate_admits(s, t.provider, t.demand)
    if not must_yield:
        running = list(_running_by_class(s))
        running[t.cls] -= 1
        for h in _dispatchable(s, (running[0], running[1], running[2])):
            if h.level < t.level or (spent and h.level == t.level):
                must_yield = True
    if must_yield:
        return _requeue(s, i, t), (YieldTask(t.task_id),)
    s, charged = _gate_charge(s, t.provider, t.demand, t.task_id)
    return _put(s, i, attrs.evolve(t, charged=charged)), ()


def _rate_limited(s: ModelState, ev: RateLimited) -> tuple[ModelState, tuple[SchedulerEffect, ...]]:
    if not ev.task_id or (ev.retry_after_ms is not None and ev.retry_after_ms < 0):
        return s, _refuse(ev.task_id, RefusalReason.INVALID)
    i, why = _task_check(s, ev.task_id, running_only=True)
    if why is not None:
        return s, _refuse(ev.task_id, why)
    # The provider named by the event is the one that answered 429 (SPEC 1.3).
    pi = -1
    for j, pc in enumerate(s.config.providers):
        if pc.name == ev.provider:
            pi = j
    if pi < 0:
        return s, _refuse(ev.task_id, RefusalReason.UNKNOWN_PROVIDER)
    t = s.tasks[i]
    t = attrs.evolve(t, used_ms=t.used_ms + s.now_ms - t.slice_start_ms, slice_start_ms=s.now_ms)
    s = _requeue(s, i, t)
    pcfg = s.config.providers[pi]
    p = s.providers[pi]
    retry = ev.retry_after_ms if ev.retry_after_ms is not None else pcfg.default_retry_after_ms
    paused = max(p.paused_until_ms, s.now_ms + retry)
    is_probe = p.probe == t.task_id
    probe = "" if is_probe else p.probe
    if p.half_open and not is_probe:
        # A step admitted before this pause began: the pause already cut the limit.
        return _put_provider(s, pi, attrs.evolve(p, paused_until_ms=paused, probe=probe)), (YieldTask(t.task_id),)
    e = aimd_cut(p.e, pcfg.floor_permille, pcfg.decrease_permille)
    rpm_e, tpm_e = effective_rate(pcfg.requests_per_min, e), effective_rate(pcfg.tokens_per_min, e)
    p = MProvider(e, 0, min(p.req, rpm_e * SCALE), min(p.tok, tpm_e * SCALE), paused, True, probe)
    return _put_provider(s, pi, p), (YieldTask(t.task_id),)


def _event(s: ModelState, ev: SchedulerEvent) -> tuple[ModelState, tuple[SchedulerEffect, ...]]:
    if isinstance(ev, Submit):
        return _submit(s, ev)
    if isinstance(ev, StepFinished):
        return _step_finished(s, ev)
    if isinstance(ev, RateLimited):
        return _rate_limited(s, ev)
    if isinstance(ev, ClockAdvanced):
        return s, ()
    if not ev.task_id:
        return s, _refuse(ev.task_id, RefusalReason.INVALID)
    if isinstance(ev, Heartbeat):
        i, why = _task_check(s, ev.task_id, running_only=True)
        if why is not None:
            return s, _refuse(ev.task_id, why)
        return _put(s, i, attrs.evolve(s.tasks[i], last_progress_ms=s.now_ms)), ()
    if isinstance(ev, TaskFinished):
        i, why = _task_check(s, ev.task_id, running_only=True)
        if why is not None:
            return s, _refuse(ev.task_id, why)
        s = _close_if_probe(s, s.tasks[i])  # its last step completed
        return _put(s, i, attrs.evolve(s.tasks[i], phase=MPhase.FINISHED, lane=-1)), ()
    # TaskFailed: running or waiting.
    i, why = _task_check(s, ev.task_id, running_only=False)
    if why is not None:
        return s, _refuse(ev.task_id, why)
    s = _put(s, i, attrs.evolve(s.tasks[i], phase=MPhase.FAILED, lane=-1))
    return _cancel_descendants(s, (ev.task_id,))


# ---------------------------------------------------------------------------
# Dispatch and wake-up (SPEC 1.4, 1.6)
# ---------------------------------------------------------------------------


def _dispatch(s: ModelState) -> tuple[ModelState, tuple[SchedulerEffect, ...]]:
    effects: list[SchedulerEffect] = []
    while True:
        cands = _dispatchable(s, _running_by_class(s))
        k = pick(tuple((h.level, h.enq) for h in cands))
        if k < 0:
            return s, tuple(effects)
        h = cands[k]
        limit = s.config.class_config(CLASSES[h.cls]).run_ms_limit
        if limit > 0 and h.started_ms >= 0 and s.now_ms - h.started_ms >= limit:
            # Its run limit ran out while it waited: reaped instead of started (SPEC 1.4).
            s = _put(s, _find(s, h.task_id), attrs.evolve(h, phase=MPhase.REAPED, lane=-1))
            s, cascade = _cancel_descendants(s, (h.task_id,))
            effects.append(CancelTask(h.task_id, CancelReason.RUN_LIMIT))
            effects.extend(cascade)
            continue
        busy = {t.lane for t in s.tasks if t.phase is MPhase.RUNNING}
        lane = min(x for x in range(s.config.lanes) if x not in busy)
        s, charged = _gate_charge(s, h.provider, h.demand, h.task_id)
        i = _find(s, h.task_id)
        now = s.now_ms
        s = _put(s, i, attrs.evolve(
            h, phase=MPhase.RUNNING, lane=lane, started_ms=now if h.started_ms < 0 else h.started_ms,
            slice_start_ms=now, last_progress_ms=now, charged=charged))
        effects.append(StartTask(h.task_id, lane, h.level))


def next_deadline(s: ModelState) -> int | None:
    """The next time the model needs a tick (SPEC 1.6), or None when idle."""
    now = s.now_ms
    deadlines: list[int] = []
    if any(t.phase in LIVE for t in s.tasks):
        deadlines.append(s.next_boost_ms)
    for t in s.tasks:
        if t.phase is MPhase.RUNNING:
            cc = s.config.class_config(CLASSES[t.cls])
            deadlines.append(t.last_progress_ms + cc.idle_ms_reap)
            if cc.run_ms_limit > 0:
                deadlines.append(t.started_ms + cc.run_ms_limit)
    running = _running_by_class(s)
    # Gate deadlines only for the heads whose class may take a free lane.
    heads = tuple(h for h in _heads(s) if class_may_take(h.cls, running, _reserved(s), s.config.lanes))
    for pi, p in enumerate(s.providers):
        demands = [h.demand for h in heads if h.provider == pi]
        if demands and not (p.half_open and p.probe):  # a held probe re-opens on an event
            rpm_e, tpm_e = _rates(s, pi)
            deadlines.append(ready_at(now, p.paused_until_ms, p.req, p.tok, rpm_e, tpm_e, min(demands)))
    later = [d for d in deadlines if d > now]
    return min(later) if later else None


def _wake(s: ModelState) -> tuple[ModelState, tuple[SchedulerEffect, ...]]:
    nxt = next_deadline(s)
    if nxt is None or nxt == s.last_wake_ms:
        return s, ()
    return attrs.evolve(s, last_wake_ms=nxt), (WakeAt(nxt),)


# ---------------------------------------------------------------------------
# The reducer (SPEC 1.2)
# ---------------------------------------------------------------------------


def model_step(s: ModelState, ev: SchedulerEvent) -> tuple[ModelState, tuple[SchedulerEffect, ...]]:
    """Apply one event to the model: ``(new state, effects)`` in SPEC 1.2 order."""
    if ev.at_ms < s.now_ms:
        task_id = "" if isinstance(ev, ClockAdvanced) else ev.task_id
        return s, (Refusal(task_id, RefusalReason.CLOCK_WENT_BACKWARDS),)
    s, reaped = _advance(s, ev.at_ms)
    s = _free_stale_probes(s)
    s, own = _event(s, ev)
    s = _free_stale_probes(s)
    s, started = _dispatch(s)
    s, wake = _wake(s)
    return s, reaped + own + started + wake


def model_tick(s: ModelState, now_ms: int) -> tuple[ModelState, tuple[SchedulerEffect, ...]]:
    """``tick``: advance to ``now_ms``, dispatch, announce the wake-up."""
    return model_step(s, ClockAdvanced(now_ms))
