"""Arithmetic properties of the scheduler policy (AIMD, buckets, allotments), also for symbolic search.

These run as ordinary Hypothesis tests in every profile. They are marked
``crosshair_backend`` because they are meant to be searched symbolically as well,
where CrossHair finds "magic number" edge cases that random examples miss::

    HYPOTHESIS_PROFILE=crosshair .venv/bin/python -m pytest -m crosshair_backend \\
        tests/test_sched_crosshair_backend.py

(about 40x slower per example than random testing: a job for a slow lane, not for
``make test``). Each property also checks that the kernel's gate arithmetic
(:mod:`agentrm.kernel.scheduler.gate`) and the reference model's
(:mod:`agentrm.specs.sched_model`) compute the same numbers.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentrm.kernel.scheduler import gate
from agentrm.specs import sched_model as model

pytestmark = pytest.mark.crosshair_backend

PERMILLE = st.integers(1, 1000)
RATE = st.integers(1, 1_000_000)


@given(e=PERMILLE, floor=PERMILLE, decrease=st.integers(1, 999), increase=st.integers(0, 1000),
       streak_len=st.integers(1, 20), successes=st.integers(0, 40))
def test_aimd_stays_within_floor_and_ceiling(e: int, floor: int, decrease: int, increase: int,
                                             streak_len: int, successes: int) -> None:
    """A 429 cuts the limit (not below the floor); any run of successes raises it only in steps, never past 1000."""
    e = max(e, floor)
    cut = model.aimd_cut(e, floor, decrease)
    assert cut == gate.on_429(e, floor, decrease)
    assert floor <= cut <= e and (cut < e or e == floor)
    limit, streak = cut, 0
    for _ in range(successes):
        new_limit, new_streak = model.aimd_success(limit, streak, streak_len, increase)
        assert (new_limit, new_streak) == gate.on_success(limit, streak, streak_len, increase)
        assert limit <= new_limit <= 1000 and 0 <= new_streak < streak_len
        assert new_limit == limit or new_limit == min(1000, limit + increase)
        limit, streak = new_limit, new_streak
    assert limit == min(1000, cut + (successes // streak_len) * increase)


@given(rate=RATE, e=PERMILLE, fill=st.integers(0, 10**12), elapsed=st.integers(0, 200_000),
       demand=st.integers(0, 2_000_000))
def test_buckets_stay_within_capacity_and_charges_are_admitted(rate: int, e: int, fill: int, elapsed: int,
                                                              demand: int) -> None:
    """Refill never exceeds one minute of the effective rate; a charge is only ever taken when admitted and leaves >= 0."""
    rate_e = model.effective_rate(rate, e)
    assert rate_e == gate.effective_rate(rate, e) and 1 <= rate_e <= rate
    cap = rate_e * model.SCALE
    level = fill % (cap + 1)
    refilled = model.refill(level, rate_e, elapsed)
    assert refilled == gate.refill(level, rate_e, elapsed)
    assert level <= refilled <= cap
    req = refilled
    if model.admits(0, 0, req, refilled, rate_e, demand):
        req2, tok2, charged = model.charge(req, refilled, rate_e, demand)
        assert (req2, tok2) == gate.charge(req, refilled, rate_e, demand)
        assert req2 >= 0 and tok2 >= 0 and charged == min(demand, rate_e)
    else:
        assert req < model.SCALE or refilled < min(demand, rate_e) * model.SCALE


@given(now=st.integers(0, 10**9), pause=st.integers(0, 10**9), rpm=st.integers(1, 10_000),
       tpm=st.integers(1, 1_000_000), req_fill=st.integers(0, 10**12), tok_fill=st.integers(0, 10**12),
       demand=st.integers(0, 2_000_000))
def test_gate_ready_time_is_exact(now: int, pause: int, rpm: int, tpm: int, req_fill: int, tok_fill: int,
                                  demand: int) -> None:
    """The announced re-opening time is the first millisecond at which the gate admits the demand."""
    req = req_fill % (rpm * model.SCALE + 1)
    tok = tok_fill % (tpm * model.SCALE + 1)
    at = model.ready_at(now, pause, req, tok, rpm, tpm, demand)
    assert at == gate.earliest_admit_ms(req, tok, rpm, tpm, demand, pause, now)
    assert at >= now

    def admitted(t: int) -> bool:
        return model.admits(pause, t, model.refill(req, rpm, t - now), model.refill(tok, tpm, t - now), tpm, demand)

    assert admitted(at)
    assert at == now or not admitted(at - 1)


@given(levels=st.integers(1, 8), level=st.integers(0, 7), allotment=st.integers(1, 100_000),
       slices=st.lists(st.integers(0, 50_000), max_size=12))
def test_allotments_demote_one_level_at_a_time(levels: int, level: int, allotment: int, slices: list[int]) -> None:
    """Service counted across slices demotes exactly when the allotment is reached, one level, never past the last."""
    level = level % levels
    used = 0
    for s in slices:
        new_level, new_used, spent = model.after_service(level, used + s, allotment, levels)
        assert spent == (used + s >= allotment)
        assert new_level == (min(level + 1, levels - 1) if spent else level)
        assert new_used == (0 if spent else used + s)
        level, used = new_level, new_used
    assert 0 <= level < levels and 0 <= used < allotment
