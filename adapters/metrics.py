"""Metrics of a simulated run: latency percentiles, throughput, lane waste, zombies, 429s.

All computed from a :class:`~.simulator.SimResult` (the simulator's ground truth), so
the kernel and the baselines are measured by the same code. Definitions:

* **latency** -- arrival to finish, of tasks that finished; percentiles by the
  nearest-rank method (``sorted[ceil(p * n) - 1]``), in integer ms;
* **slowdown** -- latency divided by the task's own service time (1.0 = no queueing);
* **throughput** -- finished tasks per minute of the run (horizon, or last event);
* **lane waste** -- lane-ms held by agents making no progress: hung, silently finished,
  or sleeping in a 429 backoff while holding the lane;
* **zombies** -- tasks still holding a lane without progress at the end;
* **healthy reaped** -- tasks cancelled for idleness or a timeout while still making
  progress (a false positive of reaping);
* **429s** -- answers of the provider; **retries** -- calls repeating a 429'd call.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

import attrs

from agentrm.kernel.scheduler.config import TaskClass

from .simulator import Outcome, SimResult
from .workload import Fault, Workload

PERCENTILES: Final = (50, 95, 99)


def percentile(sorted_values: Sequence[int], p: int) -> int | None:
    """The nearest-rank ``p``-th percentile of ascending ``sorted_values`` (None if empty)."""
    n = len(sorted_values)
    if n == 0:
        return None
    rank = -(-p * n // 100)  # ceil(p * n / 100) in integers
    return sorted_values[max(rank, 1) - 1]


@attrs.frozen
class Latency:
    """Latency percentiles (ms) and the p95 slowdown of one group of finished tasks."""

    count: int
    p50_ms: int | None
    p95_ms: int | None
    p99_ms: int | None
    max_ms: int | None
    p95_slowdown: float | None
    """95th percentile of latency / service time, rounded to 0.01."""


def _latency(latencies: list[int], slowdowns_permille: list[int]) -> Latency:
    latencies = sorted(latencies)
    slow = percentile(sorted(slowdowns_permille), 95)
    return Latency(len(latencies), percentile(latencies, 50), percentile(latencies, 95),
                   percentile(latencies, 99), latencies[-1] if latencies else None,
                   None if slow is None else round(slow / 1000, 2))


@attrs.frozen
class Metrics:
    """The numbers of one run of one policy."""

    policy: str
    duration_ms: int
    arrived: int
    finished: int
    failed: int
    reaped: int
    cancelled: int
    rejected: int
    unfinished: int
    latency: Latency
    latency_by_class: tuple[tuple[str, Latency], ...]
    throughput_per_min: float
    lane_busy_ms: int
    lane_waste_ms: int
    lane_waste_permille: int
    """Waste as thousandths of all lane-ms held."""
    zombies_at_end: int
    healthy_reaped: int
    rate_limited: int
    retries: int
    provider_calls: int
    policy_steps: int


def compute(result: SimResult) -> Metrics:
    """The metrics of one simulated run."""
    counts = {o: 0 for o in Outcome}
    by_class: dict[TaskClass, tuple[list[int], list[int]]] = {c: ([], []) for c in TaskClass}
    all_lat: list[int] = []
    all_slow: list[int] = []
    for t in result.tasks:
        counts[t.outcome] += 1
        lat = t.latency_ms
        if lat is not None:
            slow = lat * 1000 // max(1, t.spec.service_ms)
            all_lat.append(lat)
            all_slow.append(slow)
            by_class[t.spec.task_class][0].append(lat)
            by_class[t.spec.task_class][1].append(slow)
    busy = sum(i.end_ms - i.start_ms for i in result.lane_intervals)
    waste = sum(i.end_ms - i.start_ms for i in result.lane_intervals if not i.progress)
    duration = max(1, result.end_ms)
    return Metrics(
        policy=result.policy,
        duration_ms=result.end_ms,
        arrived=len(result.tasks) - counts[Outcome.NOT_ARRIVED],
        finished=counts[Outcome.FINISHED],
        failed=counts[Outcome.FAILED],
        reaped=counts[Outcome.REAPED],
        cancelled=counts[Outcome.CANCELLED],
        rejected=counts[Outcome.REJECTED],
        unfinished=counts[Outcome.UNFINISHED],
        latency=_latency(all_lat, all_slow),
        latency_by_class=tuple((c.value, _latency(*by_class[c])) for c in TaskClass),
        throughput_per_min=round(counts[Outcome.FINISHED] * 60_000 / duration, 3),
        lane_busy_ms=busy,
        lane_waste_ms=waste,
        lane_waste_permille=waste * 1000 // busy if busy else 0,
        zombies_at_end=sum(t.zombie for t in result.tasks),
        healthy_reaped=sum(t.healthy_reaped for t in result.tasks),
        rate_limited=result.rate_limited,
        retries=result.retries,
        provider_calls=result.provider_calls,
        policy_steps=result.policy_steps,
    )


def to_json(metrics: Metrics) -> dict[str, Any]:
    """Metrics as a JSON object with stable keys (classes as an object keyed by name)."""
    obj: dict[str, Any] = attrs.asdict(metrics, recurse=True)
    obj["latency_by_class"] = {name: attrs.asdict(lat) for name, lat in metrics.latency_by_class}
    return obj


def dumps(metrics: Sequence[Metrics], context: Sequence[dict[str, Any]] = (),
          bounds: Capacity | None = None) -> str:
    """A JSON document of several runs, sorted keys, indented.

    ``{"runs": [...]}`` holds scheduler runs; ``"capacity"`` (when given) the workload's
    throughput bounds; ``"context_runs"`` (when given) context runs, as JSON objects.
    """
    doc: dict[str, Any] = {"runs": [to_json(m) for m in metrics]}
    if bounds is not None:
        doc["capacity"] = attrs.asdict(bounds)
    if context:
        doc["context_runs"] = list(context)
    return json.dumps(doc, sort_keys=True, indent=2) + "\n"


def _ms(v: int | None) -> str:
    if v is None:
        return "-"
    return f"{v / 1000:.1f}s"


def format_table(metrics: Sequence[Metrics]) -> str:
    """A plain-text table, one column per run, for the terminal."""
    rows: list[tuple[str, list[str]]] = [
        ("finished / arrived", [f"{m.finished} / {m.arrived}" for m in metrics]),
        ("failed, reaped, cancelled", [f"{m.failed}, {m.reaped}, {m.cancelled}" for m in metrics]),
        ("rejected, unfinished", [f"{m.rejected}, {m.unfinished}" for m in metrics]),
        ("latency P50", [_ms(m.latency.p50_ms) for m in metrics]),
        ("latency P95", [_ms(m.latency.p95_ms) for m in metrics]),
        ("latency P99", [_ms(m.latency.p99_ms) for m in metrics]),
    ]
    for i, c in enumerate(TaskClass):
        rows.append((f"  {c.value} P95", [_ms(m.latency_by_class[i][1].p95_ms) for m in metrics]))
        rows.append((f"  {c.value} P95 slowdown",
                     ["-" if (s := m.latency_by_class[i][1].p95_slowdown) is None else f"{s:.2f}x" for m in metrics]))
    rows += [
        ("throughput (tasks/min)", [f"{m.throughput_per_min:.2f}" for m in metrics]),
        ("lane waste", [f"{m.lane_waste_ms / 1000:.0f}s ({m.lane_waste_permille / 10:.1f}%)" for m in metrics]),
        ("zombies at end", [str(m.zombies_at_end) for m in metrics]),
        ("healthy tasks reaped", [str(m.healthy_reaped) for m in metrics]),
        ("429s", [str(m.rate_limited) for m in metrics]),
        ("retries", [str(m.retries) for m in metrics]),
    ]
    head = ["metric"] + [m.policy for m in metrics]
    width0 = max(len(r[0]) for r in rows + [(head[0], [])])
    widths = [max(len(head[j + 1]), *(len(r[1][j]) for r in rows)) for j in range(len(metrics))]
    lines = ["  ".join([head[0].ljust(width0)] + [h.rjust(w) for h, w in zip(head[1:], widths)])]
    lines.append("  ".join(["-" * width0] + ["-" * w for w in widths]))
    for label, cells in rows:
        lines.append("  ".join([label.ljust(width0)] + [c.rjust(w) for c, w in zip(cells, widths)]))
    return "\n".join(lines) + "\n"


@attrs.frozen
class Capacity:
    """Upper bounds on the finished-task throughput of a workload (tasks per minute).

    ``offered`` is the arrival rate of healthy tasks (no fault) up to the horizon;
    ``lane_bound`` the rate the lanes could serve if never idle or wasted
    (``lanes * 60,000 * N / total service ms``); ``provider_bound`` the rate the real
    providers' per-minute limits allow (``limit * N / total demand``, the tightest of
    requests and tokens over every provider; None when no provider is limited).
    ``bound`` is the smallest. Storms, faulty tasks and queueing only lower what is
    reachable, so a policy's throughput over ``bound`` measures how close it gets.
    """

    offered: float
    lane_bound: float
    provider_bound: float | None
    bound: float


def capacity(workload: Workload) -> Capacity:
    """The throughput bounds of ``workload``'s task records (see :class:`Capacity`)."""
    header = workload.header
    horizon = header.horizon_ms or max((t.arrival_ms for t in workload.tasks), default=0)
    healthy = [t for t in workload.tasks if t.fault is Fault.NONE and (not header.horizon_ms or t.arrival_ms <= horizon)]
    n = len(healthy)
    if n == 0:
        return Capacity(0.0, 0.0, None, 0.0)
    offered = n * 60_000 / max(1, horizon)
    lane = header.config.lanes * 60_000 * n / max(1, sum(t.service_ms for t in healthy))
    provider: float | None = None
    for model in header.providers:
        mine = [t for t in healthy if t.provider == model.name]
        requests = sum(len(t.steps) for t in mine)
        tokens = sum(s.tokens for t in mine for s in t.steps)
        for limit, demand in ((model.requests_per_min, requests), (model.tokens_per_min, tokens)):
            if demand:
                bound = limit * n / demand
                provider = bound if provider is None else min(provider, bound)
    best = min(offered, lane, provider if provider is not None else lane)
    return Capacity(round(offered, 3), round(lane, 3), None if provider is None else round(provider, 3), round(best, 3))
