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
    bg_res = draw(st.integers(0, lanes - fg_reserved))
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


def events_at(at_ms: int, providers: tuple[str, ...]) -> st.SearchStrategy[SchedulerEvent]:
    """One event of any kind at ``at_ms`` about a task from the small id pool."""
    tid = st.sampled_from(TASK_IDS)
    tokens = st.integers(0, 3_000)
    prov = st.sampled_from(providers + ("nope",)) if providers else st.just("default")
    return st.one_of(
        st.builds(Submit, st.just(at_ms), tid, st.sampled_from(AGENTS), st.sampled_from(list(TaskClass)),
                  prov, tokens, st.one_of(st.none(), tid)),
        st.builds(Heartbeat, st.just(at_ms), tid),
        st.builds(StepFinished, st.just(at_ms), tid, tokens, tokens),
        st.builds(TaskFinished, st.just(at_ms), tid),
        st.builds(TaskFailed, st.just(at_ms), tid, st.just("boom")),
        st.builds(RateLimited, st.just(at_ms), tid, st.sampled_from(providers),
                  st.one_of(st.none(), st.integers(0, 800))),
        st.builds(ClockAdvanced, st.just(at_ms)),
    )


@st.composite
def event_sequences(draw: st.DrawFn, config: SchedulerConfig, max_size: int = 40) -> list[SchedulerEvent]:
    """A sequence of events with a mostly non-decreasing clock (sometimes it goes back)."""
    providers = tuple(p.name for p in config.providers)
    now = 0
    out: list[SchedulerEvent] = []
    for _ in range(draw(st.integers(0, max_size))):
        delta = draw(st.one_of(st.just(0), st.integers(0, 150), st.integers(0, 2_500), st.integers(-50, -1)))
        at = max(0, now + delta)
        out.append(draw(events_at(at, providers)))
        now = max(now, at)
    return out


@st.composite
def configs_and_events(draw: st.DrawFn, max_size: int = 40) -> tuple[SchedulerConfig, list[SchedulerEvent]]:
    """A config together with an event sequence for it."""
    config = draw(configs())
    return config, draw(event_sequences(config, max_size))
