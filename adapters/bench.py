"""``agentrm bench``: the built-in scenarios under every policy, beside the paper's numbers.

One run of the benchmark simulates, for fixed seeds,

* the scheduler scenarios (``paper``, ``overload``, ``storm``) under ``mlfq`` (the
  kernel) and the three baselines (``fifo``, ``rr``, ``priority``);
* the ``context`` scenario under agentrm's tiers, ``sliding-window`` and
  ``rolling-summary``;
* a robustness sweep of the ``paper`` scenario over offered load, hung-task rate and
  provider tightness;

and scores agentrm against the targets of the benchmark issue, against ``fifo`` and
against the strongest baseline (per metric: whichever baseline is best on it).

Runs of one scenario over several seeds are **pooled**: latency percentiles over all
finished tasks of all seeds, throughput over the summed run time, lane waste and
zombies summed. Pooling gives the percentiles several hundred samples per class
instead of averaging noisy per-seed percentiles.

The **capacity bound** of a run is an upper bound on how many tasks any scheduler
could finish in it: a task counts only if it is healthy (no injected fault) and its
own service time fits between its arrival and the horizon; then, separately for each
resource -- lane-time (``lanes x horizon``), provider requests and provider tokens
(the per-minute rate over the horizon, plus one burst allowance) -- the most such
tasks whose summed demand fits, taking the cheapest first. The bound is the smallest
of those counts. Each resource's count is the optimum for that resource alone, so no
schedule can beat their minimum; it ignores precedence and the fact that work cannot
be moved in time, so it is optimistic, never pessimistic.

Everything here is a deterministic function of the scenario code, the seeds and the
policies: ``to_json`` output is byte-identical across runs and ``PYTHONHASHSEED``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

import attrs

from . import metrics as metrics_mod
from .baselines import BASELINES
from .context_sim import ContextMetrics, context_to_json, format_context_table, simulate_context
from .metrics import Metrics
from .scenarios import ScenarioParams, generate
from .simulator import SimResult, kernel_policy, simulate
from .workload import Fault, Workload

BENCH_VERSION: Final = 1
POLICIES: Final = ("mlfq", "fifo", "rr", "priority")
BASELINE_NAMES: Final = ("fifo", "rr", "priority")
SCHED_SCENARIOS: Final = ("paper", "overload", "storm")
CONTEXT_NAMES: Final = ("mlfq", "sliding-window", "rolling-summary")

DEFAULT_SEEDS: Final = (1, 2, 3)
"""Three seeds: enough that no headline number rests on one draw, and the default run
stays around a minute on two cores."""
QUICK_SEEDS: Final = (1,)
QUICK_HORIZON_S: Final = 120
"""``--quick``: one seed and two-minute runs -- the same keys, for tests, in seconds."""

SWEEP_LOAD: Final = (0.5, 0.75, 1.0, 1.2)
"""Offered load as a multiple of capacity: the largest of lane-time, request and token
demand over what the lanes and the provider can serve in the horizon (calibrated to
the scenario's arrival-rate knob by :func:`load_knob`)."""
SWEEP_CALIBRATION_STEPS: Final = 6
"""Fixed-point steps from arrival knob to offered load (see :func:`load_knob`)."""
SWEEP_FAULT: Final = (0.0, 0.05, 0.10)
"""Share of hung sub-agents (all faults are hangs in the sweep, the worst kind)."""
SWEEP_TIGHTNESS: Final = (1.0, 1.5, 2.0)
"""Provider limit divisor: 2.0 halves the requests and tokens per minute."""


# --------------------------------------------------------------------------- the paper

@attrs.frozen
class PaperClaim:
    """One published headline of the AgentRM paper (arXiv:2603.13110), as DESIGN.md lists it."""

    metric: str
    baseline: str
    agentrm: str


PAPER: Final = {
    "p95_latency": PaperClaim("P95 task latency", "-", "-86 %"),
    "lane_waste": PaperClaim("lane waste", "-", "-96 %"),
    "throughput": PaperClaim("throughput", "-", "+168 %"),
    "zombies": PaperClaim("zombie agents at end of run", "29", "0"),
    "retention": PaperClaim("key-information retention", "65.1 % (sliding window)", "100 %"),
    "compaction_tokens": PaperClaim("compaction cost (LLM tokens)", "17,212", "34,330"),
}


# --------------------------------------------------------------------------- running

@attrs.frozen
class BenchSettings:
    """What to run: seeds, run length, and whether to include the sweep."""

    seeds: tuple[int, ...] = DEFAULT_SEEDS
    horizon_s: int = 600
    sweep: bool = True
    quick: bool = False

    @classmethod
    def make(cls, *, quick: bool = False, seeds: Sequence[int] | None = None) -> BenchSettings:
        """The default settings, or the ``--quick`` ones; ``seeds`` overrides either."""
        chosen = tuple(seeds) if seeds else (QUICK_SEEDS if quick else DEFAULT_SEEDS)
        if len(set(chosen)) != len(chosen):
            raise ValueError(f"--seeds: duplicate seed in {list(chosen)}")
        return cls(seeds=chosen, horizon_s=QUICK_HORIZON_S if quick else 600, sweep=True, quick=quick)


def _policy(name: str, workload: Workload) -> Any:
    config = workload.header.config
    if name == "mlfq":
        return kernel_policy(config)
    return BASELINES[name](config)


def pool(results: Sequence[SimResult]) -> SimResult:
    """Several runs of one policy as one: tasks and lane intervals concatenated, times summed.

    :func:`~.metrics.compute` on the pooled result gives percentiles over every task,
    throughput over the summed run time and summed waste, zombies and counters.
    """
    first = results[0]
    return SimResult(
        first.policy, first.lanes, sum(r.end_ms for r in results),
        tuple(t for r in results for t in r.tasks),
        tuple(i for r in results for i in r.lane_intervals),
        sum(r.provider_calls for r in results), sum(r.rate_limited for r in results),
        sum(r.retries for r in results), sum(r.policy_steps for r in results),
    )


@attrs.frozen
class CapacityBound:
    """The capacity bound of a set of runs (see the module docstring), as a task count.

    Unlike :class:`~.metrics.Capacity` (rates from the workload's averages: every
    healthy arrival, total service time over the lanes), this one is a strict upper
    bound: it drops tasks that cannot finish before the horizon and counts the
    cheapest tasks first, which is what a scheduler chasing throughput would do.
    """

    completable: int
    """Healthy tasks whose service time fits between arrival and horizon."""
    by_lanes: int
    by_requests: int
    by_tokens: int
    bound: int
    duration_ms: int
    offered_load_permille: int
    """The largest of lane, request and token demand of all arrived tasks over capacity."""

    @property
    def per_min(self) -> float:
        """The bound as finished tasks per minute."""
        return round(self.bound * 60_000 / max(1, self.duration_ms), 3)


def _fit(costs: Iterable[int], budget: int) -> int:
    """How many of ``costs`` fit in ``budget``, cheapest first (the optimum count)."""
    n = total = 0
    for c in sorted(costs):
        total += c
        if total > budget:
            break
        n += 1
    return n


def capacity_bound(workload: Workload) -> CapacityBound:
    """The capacity bound of one workload (one provider, a fixed horizon)."""
    h = workload.header
    horizon = h.horizon_ms
    model = h.providers[0]
    arrived = [t for t in workload.tasks if t.arrival_ms <= horizon]
    ok = [t for t in arrived if t.fault is Fault.NONE and t.arrival_ms + t.service_ms <= horizon]
    lane_ms = h.config.lanes * horizon
    # Per-minute rate over the horizon, plus the bucket the provider starts with (one burst).
    reqs = model.requests_per_min * (horizon + model.burst_ms) // 60_000
    toks = model.tokens_per_min * (horizon + model.burst_ms) // 60_000
    by_lanes = _fit((t.service_ms for t in ok), lane_ms)
    by_requests = _fit((len(t.steps) for t in ok), reqs)
    by_tokens = _fit((sum(s.tokens for s in t.steps) for t in ok), toks)
    # Offered load: what arrived, clipped to the part of each task that could run before
    # the horizon (a background agent arriving late cannot load the system past it).
    lane_d = req_d = tok_d = 0
    for t in arrived:
        service = max(1, t.service_ms)
        run = min(service, horizon - t.arrival_ms)
        lane_d += run
        req_d += len(t.steps) * run // service
        tok_d += sum(s.tokens for s in t.steps) * run // service
    demand = max(lane_d * 1000 // max(1, lane_ms), req_d * 1000 // max(1, reqs), tok_d * 1000 // max(1, toks))
    return CapacityBound(len(ok), by_lanes, by_requests, by_tokens, min(len(ok), by_lanes, by_requests, by_tokens),
                    horizon, demand)


def _sum_capacity_bound(caps: Sequence[CapacityBound]) -> CapacityBound:
    return CapacityBound(
        sum(c.completable for c in caps), sum(c.by_lanes for c in caps), sum(c.by_requests for c in caps),
        sum(c.by_tokens for c in caps), sum(c.bound for c in caps), sum(c.duration_ms for c in caps),
        sum(c.offered_load_permille for c in caps) // len(caps),
    )


@attrs.frozen
class ScenarioRun:
    """One scenario over every seed: pooled metrics per policy, per-seed metrics, the bound."""

    scenario: str
    params: ScenarioParams
    seeds: tuple[int, ...]
    pooled: tuple[Metrics, ...]
    per_seed: tuple[tuple[Metrics, ...], ...]
    """``per_seed[i][j]``: seed ``seeds[i]``, the j-th policy run (``POLICIES`` order by default)."""
    capacity: CapacityBound
    results: tuple[SimResult, ...]
    """Seed ``seeds[0]``'s raw results, per policy (for the lane-occupancy plot)."""
    pooled_results: tuple[SimResult, ...]

    def metrics(self, policy: str) -> Metrics:
        """The pooled metrics of ``policy``; KeyError if it was not run."""
        for m in self.pooled:
            if m.policy == policy:
                return m
        raise KeyError(policy)


def run_scenario(name: str, params: ScenarioParams, seeds: Sequence[int],
                 policies: Sequence[str] = POLICIES) -> ScenarioRun:
    """Simulate scenario ``name`` with ``params`` for every seed and policy."""
    per_policy: list[list[SimResult]] = [[] for _ in policies]
    per_seed: list[tuple[Metrics, ...]] = []
    caps: list[CapacityBound] = []
    for seed in seeds:
        workload = generate(name, seed, params)
        caps.append(capacity_bound(workload))
        row: list[Metrics] = []
        for j, policy in enumerate(policies):
            result = simulate(workload, _policy(policy, workload))
            per_policy[j].append(result)
            row.append(metrics_mod.compute(result))
        per_seed.append(tuple(row))
    pooled_results = tuple(pool(rs) for rs in per_policy)
    return ScenarioRun(name, params, tuple(seeds), tuple(metrics_mod.compute(r) for r in pooled_results),
                       tuple(per_seed), _sum_capacity_bound(caps), tuple(rs[0] for rs in per_policy), pooled_results)


# --------------------------------------------------------------------------- targets

@attrs.frozen
class Target:
    """One row of the scorecard: agentrm's value, the comparison value, and the verdict."""

    key: str
    label: str
    target: str
    against: str
    """The policy compared with (``fifo``, the best baseline's name, or ``bound``)."""
    agentrm: float
    other: float
    change: str
    met: bool
    shortfall: str
    """Empty when met; otherwise by how much it was missed."""
    paper: str


def _pct(new: float, old: float) -> float:
    """Relative change in percent, one decimal (0 when the old value is 0)."""
    return round((new - old) * 100 / old, 1) if old else 0.0


def _reduction(key: str, label: str, need_pct: float, mine: float, other: float, against: str,
               paper: str, unit: Callable[[float], str]) -> Target:
    """A "lower is better by at least ``need_pct`` %" row."""
    change = _pct(mine, other)
    met = change <= -need_pct if other else mine <= 0
    short = "" if met else f"by {change + need_pct:.1f} pts"
    return Target(key, label, f"<= -{need_pct:g} %", against, mine, other,
                  f"{change:+.1f} % ({unit(mine)} vs {unit(other)})", met, short, paper)


def _increase(key: str, label: str, need_pct: float, mine: float, other: float, against: str,
              paper: str, unit: Callable[[float], str]) -> Target:
    """A "higher is better by at least ``need_pct`` %" row."""
    change = _pct(mine, other)
    met = change >= need_pct
    short = "" if met else f"by {need_pct - change:.1f} pts"
    return Target(key, label, f">= +{need_pct:g} %", against, mine, other,
                  f"{change:+.1f} % ({unit(mine)} vs {unit(other)})", met, short, paper)


def _sec(ms: float) -> str:
    return f"{ms / 1000:.1f}s"


def _rate(v: float) -> str:
    return f"{v:.2f}/min"


def _best(run: ScenarioRun, value: Callable[[Metrics], float], lower: bool) -> tuple[str, float]:
    """The baseline with the best value (ties: the first in BASELINE_NAMES)."""
    best_name, best_val = BASELINE_NAMES[0], value(run.metrics(BASELINE_NAMES[0]))
    for name in BASELINE_NAMES[1:]:
        v = value(run.metrics(name))
        if (v < best_val) if lower else (v > best_val):
            best_name, best_val = name, v
    return best_name, best_val


def _p95(m: Metrics) -> float:
    return float(m.latency.p95_ms or 0)


def _thr(m: Metrics) -> float:
    return m.throughput_per_min


def _waste(m: Metrics) -> float:
    return float(m.lane_waste_ms)


def _zombies(m: Metrics) -> float:
    return float(m.zombies_at_end)


def scheduler_targets(run: ScenarioRun) -> tuple[Target, ...]:
    """The scheduler scorecard of one scenario run, against fifo and the strongest baseline."""
    me = run.metrics("mlfq")
    rows: list[Target] = []
    specs: tuple[tuple[str, str, Callable[[Metrics], float], bool, float, Callable[[float], str]], ...] = (
        ("p95_latency", "P95 latency", _p95, True, 86.0, _sec),
        ("throughput", "throughput", _thr, False, 168.0, _rate),
        ("lane_waste", "lane waste", _waste, True, 96.0, _sec),
    )
    for key, label, value, lower, need, unit in specs:
        paper = PAPER[key].agentrm
        for against, other in (("fifo", value(run.metrics("fifo"))), _best(run, value, lower)):
            make = _reduction if lower else _increase
            rows.append(make(key, label, need, value(me), other, against, paper, unit))
    for against, other in (("fifo", _zombies(run.metrics("fifo"))), _best(run, _zombies, True)):
        mine = _zombies(me)
        rows.append(Target("zombies", "zombies at end", "0", against, mine, other,
                           f"{mine:.0f} vs {other:.0f}", mine == 0, "" if mine == 0 else f"by {mine:.0f}",
                           "0 vs 29"))
    inter = me.latency_by_class[0][1]
    slow = inter.p95_slowdown if inter.p95_slowdown is not None else 0.0
    rows.append(Target("interactive_slowdown", "interactive P95 / own service time", "<= 1.5x", "service time",
                       slow, 1.0, f"{slow:.2f}x", slow <= 1.5, "" if slow <= 1.5 else f"by {slow - 1.5:.2f}x", "-"))
    bound = run.capacity.per_min
    share = round(me.throughput_per_min * 100 / bound, 1) if bound else 0.0
    rows.append(Target("capacity_share", "throughput / capacity bound", ">= 95 %", "bound", me.throughput_per_min,
                       bound, f"{share:.1f} % ({_rate(me.throughput_per_min)} of {_rate(bound)})", share >= 95.0,
                       "" if share >= 95.0 else f"by {95.0 - share:.1f} pts", "-"))
    return tuple(rows)


def context_targets(ctx: Sequence[ContextMetrics]) -> tuple[Target, ...]:
    """The context scorecard: retention against both baselines, tokens against rolling-summary."""
    by = {m.policy: m for m in ctx}
    me = by["mlfq"]
    rows: list[Target] = []
    for against in ("sliding-window", "rolling-summary"):
        other = by[against]
        mine, theirs = me.retention_permille / 10, other.retention_permille / 10
        rows.append(Target("retention", "key-fact retention", "100 %", against, mine, theirs,
                           f"{mine:.1f} % vs {theirs:.1f} %", me.facts_retained_at_end == me.facts,
                           "" if me.facts_retained_at_end == me.facts else f"by {100 - mine:.1f} pts",
                           "100 % vs 65.1 %"))
    rs = by["rolling-summary"]
    mine_t, theirs_t = float(me.summarization_tokens), float(rs.summarization_tokens)
    met = mine_t <= theirs_t
    rows.append(Target("compaction_tokens", "summarization tokens", "<= rolling-summary", "rolling-summary",
                       mine_t, theirs_t, f"{_pct(mine_t, theirs_t):+.1f} % ({mine_t:,.0f} vs {theirs_t:,.0f})",
                       met, "" if met else f"by {mine_t - theirs_t:,.0f} tokens", "34,330 vs 17,212 (+99.5 %)"))
    return tuple(rows)


# --------------------------------------------------------------------------- context

def run_context(seeds: Sequence[int], params: ScenarioParams) -> tuple[ContextMetrics, ...]:
    """The context scenario under every context policy, pooled over seeds (counts summed)."""
    per_seed = [simulate_context(generate("context", seed, params), CONTEXT_NAMES) for seed in seeds]
    pooled: list[ContextMetrics] = []
    for j, name in enumerate(CONTEXT_NAMES):
        ms = [row[j] for row in per_seed]

        def total(field: str) -> int:
            return sum(int(getattr(m, field)) for m in ms)

        probes, answered, facts, kept = total("probes"), total("probes_answered"), total("facts"), \
            total("facts_retained_at_end")
        pooled.append(ContextMetrics(
            policy=name, agents=total("agents"), messages=total("messages"), probes=probes,
            probes_answered=answered, probes_visible=total("probes_visible"),
            probes_recalled=total("probes_recalled"),
            probe_answerability_permille=answered * 1000 // probes if probes else 0, facts=facts,
            facts_retained_at_end=kept, retention_permille=kept * 1000 // facts if facts else 0,
            summarization_tokens=total("summarization_tokens"),
            peak_context_tokens=max(m.peak_context_tokens for m in ms),
        ))
    return tuple(pooled)


# --------------------------------------------------------------------------- sweep

@attrs.frozen
class SweepPoint:
    """One point of the robustness sweep: the pooled metrics of every policy there."""

    axis: str
    value: float
    params: ScenarioParams
    run: ScenarioRun


def offered_load(seeds: Sequence[int], params: ScenarioParams) -> float:
    """The paper scenario's mean offered load over ``seeds``, as a fraction of capacity."""
    loads = [capacity_bound(generate("paper", seed, params)).offered_load_permille for seed in seeds]
    return sum(loads) / len(loads) / 1000


def load_knob(target: float, seeds: Sequence[int], base: ScenarioParams) -> float:
    """The arrival-rate knob at which the paper scenario's offered load is ``target`` x capacity.

    The knob scales the gaps between bursts and jobs but not every delay in the
    scenario (gaps within a burst, background agents' life times), so offered load
    is not proportional to it: a few fixed-point steps ``knob *= target / measured``
    land within a few per cent (the measured load of each point is reported with it).
    """
    knob = 1.0
    for _ in range(SWEEP_CALIBRATION_STEPS):
        measured = offered_load(seeds, attrs.evolve(base, load=knob))
        if not measured:
            break
        knob = round(knob * target / measured, 3)
    return knob


def sweep_points(settings: BenchSettings) -> list[tuple[str, float, ScenarioParams]]:
    """Every (axis, value, params) of the sweep, in a fixed order; other knobs at default."""
    base = ScenarioParams(horizon_s=settings.horizon_s)
    points: list[tuple[str, float, ScenarioParams]] = []
    for x in SWEEP_LOAD:
        points.append(("load", x, attrs.evolve(base, load=load_knob(x, settings.seeds, base))))
    for x in SWEEP_FAULT:
        points.append(("fault_rate", x, attrs.evolve(base, fault_rate=x)))
    for x in SWEEP_TIGHTNESS:
        points.append(("tightness", x, attrs.evolve(base, tightness=x)))
    return points


def run_sweep(settings: BenchSettings) -> tuple[SweepPoint, ...]:
    """The robustness sweep of the paper scenario (every policy, every seed, every point)."""
    return tuple(SweepPoint(axis, value, params, run_scenario("paper", params, settings.seeds))
                 for axis, value, params in sweep_points(settings))


# --------------------------------------------------------------------------- the whole bench

@attrs.frozen
class BenchResult:
    """Everything one ``agentrm bench`` produced."""

    settings: BenchSettings
    scenarios: tuple[ScenarioRun, ...]
    targets: tuple[Target, ...]
    """Scored on the ``paper`` scenario."""
    context: tuple[ContextMetrics, ...]
    context_targets: tuple[Target, ...]
    sweep: tuple[SweepPoint, ...]

    def scenario(self, name: str) -> ScenarioRun:
        """The run of scenario ``name``."""
        for s in self.scenarios:
            if s.scenario == name:
                return s
        raise KeyError(name)


def run_bench(settings: BenchSettings, progress: Callable[[str], None] | None = None) -> BenchResult:
    """Run the whole benchmark; ``progress(label)`` is told what starts next."""
    def say(label: str) -> None:
        if progress is not None:
            progress(label)

    params = ScenarioParams(horizon_s=settings.horizon_s)
    runs: list[ScenarioRun] = []
    for name in SCHED_SCENARIOS:
        say(f"scenario {name}")
        runs.append(run_scenario(name, params, settings.seeds))
    say("context sessions")
    ctx = run_context(settings.seeds, ScenarioParams(load=0.3) if settings.quick else ScenarioParams())
    sweep: tuple[SweepPoint, ...] = ()
    if settings.sweep:
        say("robustness sweep")
        sweep = run_sweep(settings)
    return BenchResult(settings, tuple(runs), scheduler_targets(runs[0]), ctx, context_targets(ctx), sweep)


# --------------------------------------------------------------------------- output

def _target_json(t: Target) -> dict[str, Any]:
    return attrs.asdict(t)


def _sweep_row(p: SweepPoint) -> dict[str, Any]:
    run = p.run
    row: dict[str, Any] = {"axis": p.axis, "value": p.value, "scenario": p.params.label("paper"),
                           "capacity_per_min": run.capacity.per_min,
                           "offered_load_permille": run.capacity.offered_load_permille}
    for name in POLICIES:
        m = run.metrics(name)
        row[name] = {"p95_ms": m.latency.p95_ms, "interactive_p95_slowdown": m.latency_by_class[0][1].p95_slowdown,
                     "throughput_per_min": m.throughput_per_min, "lane_waste_permille": m.lane_waste_permille,
                     "zombies_at_end": m.zombies_at_end, "finished": m.finished}
    return row


def to_json(result: BenchResult) -> dict[str, Any]:
    """The whole benchmark as a JSON object (stable keys; dump with ``sort_keys``)."""
    s = result.settings
    scen: dict[str, Any] = {}
    for run in result.scenarios:
        scen[run.scenario] = {
            "capacity": {**attrs.asdict(run.capacity), "per_min": run.capacity.per_min},
            "targets": [_target_json(t) for t in scheduler_targets(run)],
            "policies": {m.policy: metrics_mod.to_json(m) for m in run.pooled},
            "per_seed": {str(seed): {m.policy: metrics_mod.to_json(m) for m in row}
                         for seed, row in zip(run.seeds, run.per_seed)},
        }
    return {
        "bench_version": BENCH_VERSION,
        "settings": {"seeds": list(s.seeds), "horizon_s": s.horizon_s, "quick": s.quick,
                     "sweep": {"load_x_capacity": list(SWEEP_LOAD), "fault_rate": list(SWEEP_FAULT),
                               "tightness": list(SWEEP_TIGHTNESS)}},
        "paper": {k: attrs.asdict(v) for k, v in PAPER.items()},
        "scheduler": scen,
        "targets": [_target_json(t) for t in result.targets],
        "context": {"policies": {m.policy: context_to_json(m) for m in result.context},
                    "targets": [_target_json(t) for t in result.context_targets]},
        "sweep": [_sweep_row(p) for p in result.sweep],
    }


def dumps(result: BenchResult) -> str:
    """The benchmark as canonical JSON text: sorted keys, two-space indent, trailing newline."""
    return json.dumps(to_json(result), sort_keys=True, indent=2) + "\n"


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(head[j]), *(len(r[j]) for r in rows)) if rows else len(head[j]) for j in range(len(head))]
    line = "  ".join(h.ljust(w) for h, w in zip(head, widths))
    out = [line.rstrip(), "  ".join("-" * w for w in widths)]
    for r in rows:
        out.append("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return "\n".join(out) + "\n"


def format_targets(targets: Sequence[Target]) -> str:
    """The scorecard: one row per (metric, comparison) with MET / MISSED and the shortfall.

    When the strongest baseline on a metric is the one just compared against (fifo),
    its row would repeat the previous one word for word, so the table shows it once
    (the JSON keeps both rows, so its shape does not depend on the results).
    """
    rows: list[list[str]] = []
    for t in targets:
        row = [t.label, t.paper, t.target, t.against, t.change, "MET" if t.met else f"MISSED {t.shortfall}"]
        if not rows or rows[-1] != row:
            rows.append(row)
    return _table(["target", "paper", "need", "vs", "agentrm", "status"], rows)


def format_capacity(run: ScenarioRun) -> str:
    """How the capacity bound of a scenario run was reached."""
    c = run.capacity
    return (f"capacity bound ({run.scenario}, {len(run.seeds)} runs): {c.bound} tasks = {c.per_min:.2f}/min "
            f"(healthy tasks that fit the horizon {c.completable}; by lane-time {c.by_lanes}, "
            f"by requests {c.by_requests}, by tokens {c.by_tokens}); offered load "
            f"{c.offered_load_permille / 10:.0f} % of the tightest resource\n")


def ceiling_note(run: ScenarioRun) -> str:
    """How far any scheduler could beat fifo's throughput here: the capacity bound over fifo's."""
    fifo = run.metrics("fifo").throughput_per_min
    if not fifo:
        return ""
    return (f"(throughput ceiling: the capacity bound is {run.capacity.per_min:.2f}/min, so no scheduler can beat "
            f"fifo by more than {_pct(run.capacity.per_min, fifo):+.1f} % in '{run.scenario}')\n")


def format_sweep(points: Sequence[SweepPoint]) -> str:
    """The robustness sweep as one table: a row per point, agentrm next to fifo and the best baseline."""
    rows: list[list[str]] = []
    for p in points:
        run = p.run
        me, ff = run.metrics("mlfq"), run.metrics("fifo")
        best, best_p95 = _best(run, _p95, True)
        share = me.throughput_per_min * 100 / run.capacity.per_min if run.capacity.per_min else 0.0
        measured = f" ({run.capacity.offered_load_permille / 1000:.2f})" if p.axis == "load" else ""
        rows.append([
            f"{p.axis}={p.value:g}{measured}",
            f"{_sec(_p95(me))} / {_sec(_p95(ff))} / {_sec(best_p95)} {best}",
            f"{me.latency_by_class[0][1].p95_slowdown or 0:.2f}x",
            f"{me.throughput_per_min:.1f} / {ff.throughput_per_min:.1f} ({share:.0f} % of bound)",
            f"{me.lane_waste_permille / 10:.1f} % / {ff.lane_waste_permille / 10:.1f} %",
            f"{me.zombies_at_end} / {ff.zombies_at_end}",
        ])
    return _table(["point", "P95 mlfq / fifo / best baseline", "inter. slowdown", "tasks/min mlfq / fifo",
                   "waste mlfq / fifo", "zombies"], rows)


def format_report(result: BenchResult) -> str:
    """The human-readable benchmark report: both tables beside the paper, scorecards, the sweep."""
    s = result.settings
    seeds = ", ".join(str(x) for x in s.seeds)
    paper = result.scenario("paper")
    cfg = generate("paper", s.seeds[0], ScenarioParams(horizon_s=s.horizon_s)).header
    prov = cfg.providers[0]
    out = [
        f"agentrm bench -- seeds {seeds}, {s.horizon_s} s of virtual time per run"
        f"{' (quick)' if s.quick else ''}\n\n",
        f"== Scheduler: scenario 'paper' ({cfg.config.lanes} lanes, provider {prov.requests_per_min} req/min and "
        f"{prov.tokens_per_min:,} tokens/min), pooled over {len(s.seeds)} seed(s)\n",
        metrics_mod.format_table(paper.pooled), format_capacity(paper), "\n",
        "Targets on 'paper' (vs fifo, then vs the strongest baseline on that metric, if not fifo):\n",
        format_targets(result.targets), ceiling_note(paper), "\n",
    ]
    for run in result.scenarios[1:]:
        out += [f"== Scheduler: scenario '{run.scenario}', pooled over {len(s.seeds)} seed(s)\n",
                metrics_mod.format_table(run.pooled), format_capacity(run), "\n",
                f"Targets on '{run.scenario}':\n", format_targets(scheduler_targets(run)), ceiling_note(run), "\n"]
    out += [f"== Context: scenario 'context' (240-300 messages per session, 10 planted facts each), "
            f"pooled over {len(s.seeds)} seed(s)\n",
            format_context_table(result.context), "\n", format_targets(result.context_targets), "\n"]
    if result.sweep:
        out += ["== Robustness sweep of 'paper' (load: offered load as a multiple of capacity, measured in "
                "parentheses;\n   other knobs at their defaults; P95 and throughput count finished tasks only)\n",
                format_sweep(result.sweep)]
    return "".join(out)
