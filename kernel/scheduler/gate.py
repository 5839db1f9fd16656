"""The provider gate: token buckets and AIMD as small pure integer functions (SPEC.md 1.5).

The int-level functions carry PEP 316 contracts that CrossHair checks
(``python tests/run_crosshair.py``); the ``GateState`` wrappers at the bottom only
plumb fields through them. Buckets are kept in units of 1/60,000 request or token
(:data:`~.state.SCALE`), so a per-minute rate refills by exactly ``rate`` units per
millisecond, with no rounding and no floats.
"""

from __future__ import annotations

from .config import ProviderConfig
from .records import from_fields
from .state import SCALE, GateState

CEILING_PERMILLE = 1000
"""The effective limit never exceeds the configured rate (1000 permille)."""


def effective_rate(rate_per_min: int, limit_permille: int) -> int:
    """The per-minute rate after AIMD scaling; at least 1 so a bucket always refills.

    pre: rate_per_min >= 1
    pre: 1 <= limit_permille <= 1000
    post: 1 <= __return__ <= rate_per_min
    """
    return max(1, rate_per_min * limit_permille // CEILING_PERMILLE)


def refill(level: int, rate_e: int, elapsed_ms: int) -> int:
    """A bucket of capacity ``rate_e * SCALE`` after ``elapsed_ms`` of refill.

    pre: rate_e >= 1
    pre: 0 <= level <= rate_e * 60_000
    pre: elapsed_ms >= 0
    post: level <= __return__ <= rate_e * 60_000
    post: elapsed_ms > 0 or __return__ == level
    """
    return min(rate_e * SCALE, level + rate_e * elapsed_ms)


def step_tokens(demand: int, tpm_e: int) -> int:
    """Tokens a step of ``demand`` must find in the bucket: never more than it can hold.

    pre: demand >= 0
    pre: tpm_e >= 1
    post: 0 <= __return__ <= tpm_e
    """
    return min(demand, tpm_e)


def admits(requests: int, tokens: int, tpm_e: int, demand: int, paused_until_ms: int, now_ms: int) -> bool:
    """Whether a step of ``demand`` tokens may start now.

    Not paused, one whole request in the request bucket, and the (capped) demand in
    the token bucket.

    pre: tpm_e >= 1
    pre: demand >= 0
    post: __return__ == (now_ms >= paused_until_ms and requests >= 60_000 and tokens >= min(demand, tpm_e) * 60_000)
    """
    return now_ms >= paused_until_ms and requests >= SCALE and tokens >= step_tokens(demand, tpm_e) * SCALE


UNBOUNDED_DEMAND = 2**62
"""Stands for "any demand": a full token bucket admits a step of any size (demand is capped)."""


def max_admitted_demand(requests: int, tokens: int, tpm_e: int, paused_until_ms: int, now_ms: int) -> int:
    """The largest demand the gate admits now (-1: none), so a scan can test heads with one compare.

    pre: tpm_e >= 1
    pre: tokens >= 0
    post: __return__ >= -1
    """
    if now_ms < paused_until_ms or requests < SCALE:
        return -1
    if tokens >= tpm_e * SCALE:
        return UNBOUNDED_DEMAND
    return tokens // SCALE


def admits_by_threshold(requests: int, tokens: int, tpm_e: int, demand: int, paused_until_ms: int, now_ms: int) -> bool:
    """:func:`admits` through :func:`max_admitted_demand`; the contract proves them equal.

    pre: tpm_e >= 1
    pre: tokens >= 0
    pre: 0 <= demand < 2**62
    post: __return__ == admits(requests, tokens, tpm_e, demand, paused_until_ms, now_ms)
    """
    return demand <= max_admitted_demand(requests, tokens, tpm_e, paused_until_ms, now_ms)


def charge(requests: int, tokens: int, tpm_e: int, demand: int) -> tuple[int, int]:
    """Both buckets after paying one request and the step's tokens (only when admitted).

    pre: tpm_e >= 1
    pre: demand >= 0
    pre: requests >= 60_000
    pre: tokens >= min(demand, tpm_e) * 60_000
    post: __return__[0] == requests - 60_000
    post: 0 <= __return__[1] <= tokens
    """
    return requests - SCALE, tokens - step_tokens(demand, tpm_e) * SCALE


def charge_excess(tokens: int, excess_tokens: int) -> int:
    """The token bucket after taking a step's unreported excess, never below 0.

    pre: tokens >= 0
    pre: excess_tokens >= 0
    post: 0 <= __return__ <= tokens
    """
    return max(0, tokens - excess_tokens * SCALE)


def on_429(limit_permille: int, floor_permille: int, decrease_permille: int) -> int:
    """The effective limit after a 429: multiplicative decrease, not below the floor.

    pre: 1 <= floor_permille <= limit_permille <= 1000
    pre: 1 <= decrease_permille < 1000
    post: floor_permille <= __return__ <= limit_permille
    post: __return__ < limit_permille or limit_permille == floor_permille
    """
    return max(floor_permille, limit_permille * decrease_permille // CEILING_PERMILLE)


def on_success(limit_permille: int, streak: int, success_streak: int, increase_permille: int) -> tuple[int, int]:
    """(limit, streak) after a successful step: additive increase every ``success_streak``.

    pre: 1 <= limit_permille <= 1000
    pre: 1 <= success_streak
    pre: 0 <= streak < success_streak
    pre: 0 <= increase_permille <= 1000
    post: limit_permille <= __return__[0] <= 1000
    post: 0 <= __return__[1] < success_streak
    post: __return__[1] == (streak + 1) % success_streak
    """
    streak += 1
    if streak >= success_streak:
        return min(CEILING_PERMILLE, limit_permille + increase_permille), 0
    return limit_permille, streak


def clamp(level: int, rate_e: int) -> int:
    """A bucket clamped to the capacity of a (possibly lowered) rate.

    pre: level >= 0
    pre: rate_e >= 1
    post: 0 <= __return__ <= rate_e * 60_000
    post: __return__ <= level
    """
    return min(level, rate_e * SCALE)


def _wait_ms(shortfall: int, rate_e: int) -> int:
    """Whole milliseconds until a refill of ``rate_e`` units/ms covers ``shortfall``.

    pre: rate_e >= 1
    post: __return__ >= 0
    post: __return__ * rate_e >= shortfall
    post: shortfall <= 0 or (__return__ - 1) * rate_e < shortfall
    """
    return max(0, -(-shortfall // rate_e))


def earliest_admit_ms(
    requests: int, tokens: int, rpm_e: int, tpm_e: int, demand: int, paused_until_ms: int, now_ms: int
) -> int:
    """The first time >= ``now_ms`` at which a step of ``demand`` tokens is admitted.

    The pause must end, and then each bucket must have refilled its shortfall; the
    later of the two refills decides (they refill in parallel).

    pre: rpm_e >= 1 and tpm_e >= 1
    pre: 0 <= requests <= rpm_e * 60_000
    pre: 0 <= tokens <= tpm_e * 60_000
    pre: demand >= 0
    post: __return__ >= now_ms
    post: admits(refill(requests, rpm_e, __return__ - now_ms), refill(tokens, tpm_e, __return__ - now_ms), tpm_e, demand, paused_until_ms, __return__)
    post: __return__ == now_ms or not admits(refill(requests, rpm_e, __return__ - 1 - now_ms), refill(tokens, tpm_e, __return__ - 1 - now_ms), tpm_e, demand, paused_until_ms, __return__ - 1)
    """
    start = max(now_ms, paused_until_ms)
    req = refill(requests, rpm_e, start - now_ms)
    tok = refill(tokens, tpm_e, start - now_ms)
    wait = max(_wait_ms(SCALE - req, rpm_e), _wait_ms(step_tokens(demand, tpm_e) * SCALE - tok, tpm_e))
    return start + wait


def circuit_admits(half_open: bool, probe_held: bool) -> bool:
    """Whether the circuit lets a step through: always when closed, one probe at a time when half-open.

    post: __return__ == (not half_open or not probe_held)
    post: __return__ or half_open
    """
    return not (half_open and probe_held)


def admits_step(
    requests: int, tokens: int, tpm_e: int, demand: int, paused_until_ms: int, now_ms: int,
    half_open: bool, probe_held: bool,
) -> bool:
    """The full admission rule of SPEC 1.5: buckets and pause (:func:`admits`), then the circuit.

    pre: tpm_e >= 1
    pre: demand >= 0
    post: __return__ == (admits(requests, tokens, tpm_e, demand, paused_until_ms, now_ms) and circuit_admits(half_open, probe_held))
    post: not (half_open and probe_held) or not __return__
    """
    return circuit_admits(half_open, probe_held) and admits(requests, tokens, tpm_e, demand, paused_until_ms, now_ms)


def cuts_on_429(half_open: bool, is_probe: bool) -> bool:
    """Whether a 429 cuts the limit: it is the first of a pause (gate closed) or the probe's own.

    A 429 for any other step while half-open answers a step admitted before the
    current pause began: the pause already cut the limit once for it.

    post: __return__ == (not half_open or is_probe)
    """
    return not half_open or is_probe


def probe_after_charge(half_open: bool, probe_held: bool) -> bool:
    """Whether a step just charged becomes the probe: exactly when the gate is half-open.

    pre: not (half_open and probe_held)
    post: __return__ == half_open
    post: circuit_admits(half_open, probe_held) and (not __return__ or not circuit_admits(half_open, __return__))
    """
    return half_open


# --- GateState plumbing: one provider's gate, in terms of the functions above -------------


def rates(gate: GateState, provider: ProviderConfig) -> tuple[int, int]:
    """The gate's effective (requests/min, tokens/min)."""
    e = gate.limit_permille
    if e == CEILING_PERMILLE:  # the usual case, and on every event's hot path
        return provider.requests_per_min, provider.tokens_per_min
    # effective_rate inlined (this runs several times per event); a property test holds
    # the two equal for every rate and limit (tests/test_sched_properties.py).
    return (max(1, provider.requests_per_min * e // CEILING_PERMILLE),
            max(1, provider.tokens_per_min * e // CEILING_PERMILLE))


def _tpm_e(provider: ProviderConfig, e: int) -> int:
    """The effective tokens/min at limit ``e`` (``rates``' second half, for callers that have ``e``)."""
    return provider.tokens_per_min if e == CEILING_PERMILLE else max(1, provider.tokens_per_min * e // CEILING_PERMILLE)


def _gate_state(limit_permille: int, requests_scaled: int, tokens_scaled: int, refilled_ms: int,
                paused_until_ms: int, streak: int, half_open: bool, probe: str) -> GateState:
    """``GateState(...)`` through :func:`~.records.from_fields` (most events build one or two)."""
    return from_fields(GateState, {
        "limit_permille": limit_permille, "requests_scaled": requests_scaled, "tokens_scaled": tokens_scaled,
        "refilled_ms": refilled_ms, "paused_until_ms": paused_until_ms, "streak": streak, "half_open": half_open,
        "probe": probe,
    })


def refilled_buckets(gate: GateState, provider: ProviderConfig, now_ms: int) -> tuple[int, int, int]:
    """(requests, tokens, refilled_ms) of the gate refilled up to ``now_ms``, without building a gate."""
    elapsed = now_ms - gate.refilled_ms
    if elapsed <= 0:
        return gate.requests_scaled, gate.tokens_scaled, gate.refilled_ms
    rpm_e, tpm_e = rates(gate, provider)
    return refill(gate.requests_scaled, rpm_e, elapsed), refill(gate.tokens_scaled, tpm_e, elapsed), now_ms


def refill_gate(gate: GateState, provider: ProviderConfig, now_ms: int) -> GateState:
    """The gate with both buckets refilled up to ``now_ms`` (unchanged if already there)."""
    if now_ms <= gate.refilled_ms:
        return gate
    req, tok, at = refilled_buckets(gate, provider, now_ms)
    return _gate_state(gate.limit_permille, req, tok, at, gate.paused_until_ms, gate.streak, gate.half_open, gate.probe)


def gate_admits(gate: GateState, provider: ProviderConfig, demand: int, now_ms: int) -> bool:
    """Whether a refilled gate admits a step of ``demand`` tokens at ``now_ms`` (buckets, pause, circuit)."""
    _, tpm_e = rates(gate, provider)
    return admits_step(gate.requests_scaled, gate.tokens_scaled, tpm_e, demand, gate.paused_until_ms, now_ms,
                       gate.half_open, gate.probe != "")


def gate_max_admitted_demand(gate: GateState, provider: ProviderConfig, now_ms: int) -> int:
    """The largest step demand the gate admits at ``now_ms``, refilled up to then (-1: none, e.g. a probe is out)."""
    # Hot path (every dispatch decision): circuit_admits and rates inlined, no gate built.
    if gate.half_open and gate.probe:
        return -1
    if now_ms < gate.paused_until_ms:
        return -1
    e = gate.limit_permille
    tpm_e = _tpm_e(provider, e)
    req, tok, _ = refilled_buckets(gate, provider, now_ms)
    return max_admitted_demand(req, tok, tpm_e, gate.paused_until_ms, now_ms)


def charge_gate(gate: GateState, provider: ProviderConfig, demand: int, task_id: str,
                now_ms: int) -> tuple[GateState, int]:
    """The gate, refilled up to ``now_ms``, after paying for one admitted step of ``task_id``; and the tokens it took.

    On a half-open gate the step becomes the probe.
    """
    _, tpm_e = rates(gate, provider)
    req, tok, at = refilled_buckets(gate, provider, now_ms)
    req, tok = charge(req, tok, tpm_e, demand)
    probe = task_id if probe_after_charge(gate.half_open, gate.probe != "") else gate.probe
    return (
        _gate_state(gate.limit_permille, req, tok, at, gate.paused_until_ms, gate.streak, gate.half_open, probe),
        step_tokens(demand, tpm_e),
    )


def gate_success(gate: GateState, provider: ProviderConfig, excess_tokens: int) -> GateState:
    """The gate after a successful step that used ``excess_tokens`` more than it paid."""
    e, streak = on_success(gate.limit_permille, gate.streak, provider.success_streak, provider.increase_permille)
    tok = charge_excess(gate.tokens_scaled, excess_tokens)
    return _gate_state(e, gate.requests_scaled, tok, gate.refilled_ms, gate.paused_until_ms, streak,
                       gate.half_open, gate.probe)


GateFields = tuple[int, int, int, int, int, int, bool, str]
"""A gate's fields in :class:`GateState` order (limit, requests, tokens, refilled, paused,
streak, half_open, probe), for a gate a finished step changes twice: the compiled build
passes such a tuple as a C struct, and the gate is built once, at the end."""


def gate_step_succeeded(gate: GateState, provider: ProviderConfig, excess_tokens: int, task_id: str,
                        now_ms: int) -> GateState:
    """``gate_probe_done(gate_success(refill_gate(gate, provider, now_ms), provider, excess_tokens), task_id, True)``
    in one construction: the gate after ``task_id``'s step succeeded at ``now_ms`` (a property test holds them equal)."""
    return gate_of(step_succeeded_fields(gate, provider, excess_tokens, task_id, now_ms))


def step_succeeded_fields(gate: GateState, provider: ProviderConfig, excess_tokens: int, task_id: str,
                          now_ms: int) -> GateFields:
    """The fields of :func:`gate_step_succeeded`, without building the gate."""
    e = gate.limit_permille
    req, tok = gate.requests_scaled, gate.tokens_scaled
    refilled = gate.refilled_ms
    elapsed = now_ms - refilled
    if elapsed > 0:  # refill first, at the rates before this success changes them
        rpm_e, tpm_e = rates(gate, provider)
        req, tok, refilled = refill(req, rpm_e, elapsed), refill(tok, tpm_e, elapsed), now_ms
    e, streak = on_success(e, gate.streak, provider.success_streak, provider.increase_permille)
    half_open, probe = gate.half_open, gate.probe
    if task_id and probe == task_id:  # the probe succeeded: the circuit closes
        half_open, probe = False, ""
    return e, req, charge_excess(tok, excess_tokens), refilled, gate.paused_until_ms, streak, half_open, probe


def gate_of(f: GateFields) -> GateState:
    """The gate whose fields are ``f``."""
    return _gate_state(f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7])


def fields_max_admitted_demand(f: GateFields, provider: ProviderConfig, now_ms: int) -> int:
    """``gate_max_admitted_demand(gate_of(f), provider, now_ms)`` for a gate refilled up to
    ``now_ms`` (a property test holds them equal)."""
    e, req, tok, _, paused, _, half_open, probe = f
    if half_open and probe:
        return -1
    tpm_e = _tpm_e(provider, e)
    return max_admitted_demand(req, tok, tpm_e, paused, now_ms)


def charge_fields(f: GateFields, provider: ProviderConfig, demand: int, task_id: str) -> tuple[GateState, int]:
    """``charge_gate(gate_of(f), provider, demand, task_id, now_ms)`` for a gate refilled up to
    ``now_ms``, built once (a property test holds them equal)."""
    e, req, tok, refilled, paused, streak, half_open, probe = f
    tpm_e = _tpm_e(provider, e)
    req, tok = charge(req, tok, tpm_e, demand)
    if probe_after_charge(half_open, probe != ""):
        probe = task_id
    return _gate_state(e, req, tok, refilled, paused, streak, half_open, probe), step_tokens(demand, tpm_e)


def gate_probe_done(gate: GateState, task_id: str, completed: bool) -> GateState:
    """The gate after ``task_id`` stopped running: if it held the probe, a completed step
    closes the circuit, anything else (failed, reaped, cancelled, 429) only frees the probe."""
    if not task_id or gate.probe != task_id:
        return gate
    return _gate_state(gate.limit_permille, gate.requests_scaled, gate.tokens_scaled, gate.refilled_ms,
                       gate.paused_until_ms, gate.streak, gate.half_open and not completed, "")


def gate_429(gate: GateState, provider: ProviderConfig, pause_ms: int, now_ms: int, task_id: str) -> GateState:
    """The gate after a 429 for ``task_id``'s step: paused (never shortening a pause) and half-open.

    The limit is cut, the buckets clamped and the streak reset only for the first 429
    of a pause or the probe's own (:func:`cuts_on_429`); a 429 on the probe frees it.
    """
    is_probe = task_id != "" and gate.probe == task_id
    paused = max(gate.paused_until_ms, now_ms + pause_ms)
    probe = "" if is_probe else gate.probe
    if not cuts_on_429(gate.half_open, is_probe):
        return _gate_state(gate.limit_permille, gate.requests_scaled, gate.tokens_scaled, gate.refilled_ms,
                           paused, gate.streak, True, probe)
    e = on_429(gate.limit_permille, provider.floor_permille, provider.decrease_permille)
    rpm_e, tpm_e = effective_rate(provider.requests_per_min, e), effective_rate(provider.tokens_per_min, e)
    return _gate_state(
        e,
        clamp(gate.requests_scaled, rpm_e),
        clamp(gate.tokens_scaled, tpm_e),
        gate.refilled_ms,
        paused,
        0,
        True,
        probe,
    )


def gate_earliest_admit_ms(gate: GateState, provider: ProviderConfig, demand: int, now_ms: int) -> int:
    """When a gate refilled up to ``now_ms`` will first admit a step of ``demand`` tokens."""
    rpm_e, tpm_e = rates(gate, provider)
    return earliest_admit_ms(
        gate.requests_scaled, gate.tokens_scaled, rpm_e, tpm_e, demand, gate.paused_until_ms, now_ms
    )


def gate_reopen_ms(gate: GateState, provider: ProviderConfig, demand: int, now_ms: int) -> int:
    """``gate_earliest_admit_ms(refill_gate(gate, provider, now_ms), provider, demand, now_ms)``
    without building the refilled gate (the wake-up asks it on every event with a blocked
    head; a property test holds the two equal)."""
    rpm_e, tpm_e = rates(gate, provider)  # refilling never changes the rates
    req, tok, _ = refilled_buckets(gate, provider, now_ms)
    return earliest_admit_ms(req, tok, rpm_e, tpm_e, demand, gate.paused_until_ms, now_ms)
