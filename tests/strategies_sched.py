"""Hypothesis strategies for scheduler configs and event sequences.

Shared by the scheduler's own tests and the specification's lockstep machine. Sizes
are small on purpose (few lanes, levels, providers, task ids and short times) so that
collisions -- the interesting cases: duplicates, late events, full queues, 429s,
reaps, boosts -- happen often.
"""

from __future__ import annotations

from hypothesis import strategies as st

from agentrm.kernel.scheduler.config import ClassConfig, ProviderConfig, SchedulerConfig, TaskClass
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

TASK_IDS = tuple(f"t{i}" for i in range(8))
"""A small id pool, so that events often refer to existing (or reaped) tasks."""
AGENTS = ("a", "b", "c")


@st.composite
def provider_configs(draw: st.DrawFn, name: str) -> ProviderConfig:
    """A valid provider config with small rates, so buckets empty and 429s matter."""
    return ProviderConfig(
        name=name,
        requests_per_min=draw(st.integers(1, 600)),
        tokens_per_min=draw(st.integers(1, 20_000)),
        floor_permille=draw(st.integers(1, 1000)),
        decrease_permille=draw(st.integers(1, 999)),
        increase_permille=draw(st.integers(0, 1000)),
        success_streak=draw(st.integers(1, 5)),
        default_retry_after_ms=draw(st.integers(0, 500)),
    )


@st.composite
def configs(draw: st.DrawFn) -> SchedulerConfig:
    """A valid SchedulerConfig with 1-4 lanes, 1-3 levels and 1-2 providers."""
    lanes = draw(st.integers(2, 4))
    levels = draw(st.integers(1, 3))
    entries = sorted(draw(st.lists(st.integers(0, levels - 1), min_size=3, max_size=3)))
    fg_reserved = draw(st.integers(1, lanes - 1))
    inter_res = draw(st.integers(0, fg_reserved))
    # Reservations may take every lane only when every class has one (SchedulerConfig).
    some_fg_zero = inter_res == 0 or fg_reserved - inter_res == 0
    bg_res = draw(st.integers(0, lanes - fg_reserved - (1 if some_fg_zero else 0)))
    n_prov = draw(st.integers(1, 2))
    providers = tuple(draw(provider_configs(name)) for name in ("default", "p2")[:n_prov])

    def cc(entry: int, reserved: int) -> ClassConfig:
        return ClassConfig(
            entry_level=entry,
            reserved_lanes=reserved,
            idle_ms_reap=draw(st.integers(1, 400)),
            run_ms_limit=draw(st.sampled_from([0, 0, 300, 1_000])),
        )

    return SchedulerConfig(
        lanes=lanes,
        level_allotments_ms=tuple(draw(st.lists(st.integers(1, 200), min_size=levels, max_size=levels))),
        boost_period_ms=draw(st.integers(1, 2_000)),
        interactive=cc(entries[0], inter_res),
        batch=cc(entries[1], fg_reserved - inter_res),
        background=cc(entries[2], bg_res),
        admission_window_ms=draw(st.integers(1, 500)),
        admission_rate_per_window=draw(st.integers(1, 3)),
        queue_cap=draw(st.integers(1, 6)),
        providers=providers,
    )


TOKENS = (0, 1, 10, 100, 500, 1_000, 3_000, 20_000)
"""Token demands to draw from: zero, tiny, typical, and more than small buckets hold."""

_PAYLOAD_MAX = 3 * 3 * 3 * 8 * 8 * 9 * 4 * 2_501 - 1

_RAW_EVENT = st.tuples(st.integers(0, 7 * len(TASK_IDS) - 1), st.integers(0, _PAYLOAD_MAX))
"""One event as (kind * ids + task id, payload): two int draws, cheap to generate and to shrink.

The payload packs agent, class, provider, two token amounts, a parent / retry-after
selector and the clock step (see :func:`decode`). Drawing ten separate ints per event
made generation, not the kernel, dominate the test time.
"""

RawEvent = tuple[int, int]


def decode(payload: int) -> tuple[int, int, int, int, int, int, int, int]:
    """(agent, class, provider, tokens_a, tokens_b, selector -1..7, clock mode 0..3, magnitude 0..2500)."""
    out: list[int] = []
    for radix in (3, 3, 3, 8, 8, 9, 4):
        out.append(payload % radix)
        payload //= radix
    agent, cls, prov, tok_a, tok_b, sel, mode = out
    return agent, cls, prov, TOKENS[tok_a], TOKENS[tok_b], sel - 1, mode, payload % 2_501


def build_event(raw: RawEvent, at_ms: int, providers: tuple[str, ...]) -> SchedulerEvent:
    """The event that a raw tuple stands for, at ``at_ms``."""
    kind, tid_i = divmod(raw[0], len(TASK_IDS))
    agent_i, cls_i, prov_i, tok_a, tok_b, sel, _, _ = decode(raw[1])
    tid = TASK_IDS[tid_i]
    names = providers + ("nope",)
    if kind == 0:
        parent = None if sel < 0 else TASK_IDS[sel]
        return Submit(at_ms, tid, AGENTS[agent_i], list(TaskClass)[cls_i], names[prov_i % len(names)], tok_a, parent)
    if kind == 1:
        return Heartbeat(at_ms, tid)
    if kind == 2:
        return StepFinished(at_ms, tid, tok_a, tok_b)
    if kind == 3:
        return TaskFinished(at_ms, tid)
    if kind == 4:
        return TaskFailed(at_ms, tid, "boom")
    if kind == 5:
        return RateLimited(at_ms, tid, providers[prov_i % len(providers)], None if sel < 0 else 100 * sel)
    return ClockAdvanced(at_ms)


def _next_at(now: int, mode: int, magnitude: int) -> int:
    if mode == 0:
        return now
    if mode == 1:
        return now + magnitude % 151
    if mode == 2:
        return now + magnitude
    return max(0, now - 1 - magnitude % 50)  # a stale clock reading


def events_at(at_ms: int, providers: tuple[str, ...]) -> st.SearchStrategy[SchedulerEvent]:
    """One event of any kind at ``at_ms`` about a task from the small id pool."""
    return _RAW_EVENT.map(lambda raw: build_event(raw, at_ms, providers))


def _sequence(raws: list[RawEvent], providers: tuple[str, ...]) -> list[SchedulerEvent]:
    now = 0
    out: list[SchedulerEvent] = []
    for raw in raws:
        _, _, _, _, _, _, mode, magnitude = decode(raw[1])
        at = _next_at(now, mode, magnitude)
        out.append(build_event(raw, at, providers))
        now = max(now, at)
    return out


def event_sequences(config: SchedulerConfig, max_size: int = 40) -> st.SearchStrategy[list[SchedulerEvent]]:
    """A sequence of events with a mostly non-decreasing clock (sometimes it goes back)."""
    providers = tuple(p.name for p in config.providers)
    return st.lists(_RAW_EVENT, min_size=min(10, max_size), max_size=max_size).map(
        lambda raws: _sequence(raws, providers)
    )


@st.composite
def configs_and_events(draw: st.DrawFn, max_size: int = 40) -> tuple[SchedulerConfig, list[SchedulerEvent]]:
    """A config together with an event sequence for it."""
    config = draw(configs())
    return config, draw(event_sequences(config, max_size))
