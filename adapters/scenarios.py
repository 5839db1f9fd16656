"""Built-in workload generators: deterministic functions of a name, a seed and a few knobs.

Each generator draws from ``random.Random`` streams seeded by a string of the seed and
the component (``"7:user-2"``): string seeds hash with SHA-512, not Python's per-process
``hash``, so a workload is byte-for-byte the same in every process, and changing one
component's parameters leaves the other components' draws untouched.

Scenarios:

* ``paper`` -- the multi-agent mix the AgentRM paper evaluates: bursts of short
  interactive requests, batch agents, long background agents that spawn sub-agents
  (some of which hang), all behind one tight provider limit;
* ``overload`` -- the same mix arriving at twice the rate, with a bounded queue;
* ``storm`` -- the mix at moderate load while the provider answers 429 to everything
  during two storms (an overloaded upstream), the case where independent retries cascade;
* ``context`` -- long sessions (240+ messages per agent) with planted key facts and
  later probes asking for them.

The knobs (:class:`ScenarioParams`) scale arrival rates (``load``), the share of faulty
sub-agents (``fault_rate``) and the provider limit (``tightness``: 2.0 halves it), for
sweeps that show a result is not tuned to one point.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Final

import attrs

from agentrm.kernel.context.config import ContextConfig
from agentrm.kernel.scheduler.config import ClassConfig, ProviderConfig, SchedulerConfig, TaskClass

from .workload import (
    ContextRecord,
    Fault,
    Message,
    Probe,
    ProviderModel,
    StepSpec,
    Storm,
    TaskSpec,
    Workload,
    WorkloadHeader,
)

PROVIDER: Final = "llm"


@attrs.frozen
class ScenarioParams:
    """Knobs shared by the scenarios; the defaults are the published scenario.

    ``load`` multiplies every arrival rate; ``fault_rate`` is the probability that a
    sub-agent is faulty (None: the scenario's default); ``tightness`` divides the
    provider's limits; ``horizon_s`` is the run length in virtual seconds; ``burst_s``
    is how many seconds of its rate the real provider lets through at once (60: a plain
    per-minute limit, which is also what agentrm's gate assumes; less: a provider that
    enforces its limit over shorter periods, so the gate's view is optimistic).
    """

    load: float = 1.0
    fault_rate: float | None = None
    tightness: float = 1.0
    horizon_s: int = 600
    burst_s: int = 60

    def __attrs_post_init__(self) -> None:
        if not self.load > 0:
            raise ValueError(f"load: must be > 0, got {self.load}")
        if self.fault_rate is not None and not 0 <= self.fault_rate <= 1:
            raise ValueError(f"fault_rate: must be in [0, 1], got {self.fault_rate}")
        if not self.tightness > 0:
            raise ValueError(f"tightness: must be > 0, got {self.tightness}")
        if self.horizon_s < 10:
            raise ValueError(f"horizon_s: must be >= 10, got {self.horizon_s}")
        if not 1 <= self.burst_s <= 60:
            raise ValueError(f"burst_s: must be in [1, 60], got {self.burst_s}")

    def label(self, name: str) -> str:
        """The scenario name with every non-default knob, as recorded in the header."""
        parts = [f"{f.name}={getattr(self, f.name)}" for f in attrs.fields(ScenarioParams)
                 if getattr(self, f.name) != f.default]
        return name if not parts else f"{name}?{'&'.join(parts)}"


def _rng(seed: int, component: str) -> random.Random:
    return random.Random(f"{seed}:{component}")


def _mix_config(lanes: int, rpm: int, tpm: int, queue_cap: int = 100_000) -> SchedulerConfig:
    """The scheduler configuration agentrm runs the mixed scenarios with.

    Two lanes are reserved for interactive work (a burst never waits behind long
    agents); idle limits are a few heartbeats (5 s) long per class, so a hung agent
    is reaped within a minute instead of the five-minute framework timeout. The gate
    is configured with the provider's published limits.

    Levels and allotments follow the task classes (OSTEP: a level's allotment should
    let the jobs that belong there finish without demotion):

    * level 0, 5 s -- an interactive request is one or two steps of 0.8-2.5 s, so it
      finishes at the top level instead of dropping behind batch work mid-answer;
    * level 1, 16 s -- a typical batch job (3-6 steps of 2-5 s) finishes at its entry;
    * level 2, 32 s -- batch jobs that overran;
    * level 3, 128 s -- background agents enter here: they run for minutes by
      definition, so a newly arrived one must not queue level with a batch job that
      overran (with three levels it did, and overall P95 was set by batch jobs
      waiting FIFO behind background agents: 50 s against 24 s with four).

    The gate's AIMD never goes below half the published limit and adds 10 % back
    every 5 successful steps (defaults: a 10 % floor, 5 % per 10 steps). The limit
    is published, so a 429 storm (an upstream outage) is not evidence that it has
    dropped tenfold; with the defaults the gate sat near 10 % for minutes after the
    storm scenario's two 20-second storms and agentrm finished 359 of 607 tasks
    against fifo's 537 (seeds 1-3); with these, 576.
    """
    return SchedulerConfig(
        lanes=lanes,
        level_allotments_ms=(5_000, 16_000, 32_000, 128_000),
        boost_period_ms=60_000,
        interactive=ClassConfig(entry_level=0, reserved_lanes=2, idle_ms_reap=15_000),
        batch=ClassConfig(entry_level=1, reserved_lanes=0, idle_ms_reap=15_000),
        background=ClassConfig(entry_level=3, reserved_lanes=0, idle_ms_reap=15_000),
        queue_cap=queue_cap,
        providers=(ProviderConfig(PROVIDER, rpm, tpm, floor_permille=500, increase_permille=100,
                                  success_streak=5),),
    )


def _steps(rng: random.Random, count: int, dur: tuple[int, int], tokens: tuple[int, int]) -> tuple[StepSpec, ...]:
    return tuple(StepSpec(rng.randint(*dur), rng.randint(*tokens)) for _ in range(count))


def _fault(rng: random.Random, rate: float, steps: int) -> tuple[Fault, int]:
    """Faulty with probability ``rate``: mostly hangs, some lost finishes and crashes."""
    if rng.random() >= rate:
        return Fault.NONE, 0
    kind = rng.choices([Fault.HANG, Fault.SILENT_FINISH, Fault.CRASH], weights=[6, 3, 1])[0]
    return kind, rng.randrange(steps)


def _mix_tasks(seed: int, p: ScenarioParams, default_fault_rate: float) -> list[TaskSpec]:
    """Interactive bursts, batch agents, background agents with sub-agents."""
    horizon = p.horizon_s * 1000
    arrive_until = horizon * 9 // 10  # the last tenth lets queued work drain
    fault_rate = default_fault_rate if p.fault_rate is None else p.fault_rate
    tasks: list[TaskSpec] = []

    # Interactive users: bursts of 2-4 short requests, a burst every 30-90 s.
    for u in range(6):
        rng = _rng(seed, f"user-{u}")
        t = rng.randint(0, 20_000)
        n = 0
        while t < arrive_until:
            for _ in range(rng.randint(2, 4)):
                steps = _steps(rng, rng.randint(1, 2), (800, 2_500), (800, 2_000))
                tasks.append(TaskSpec(t, f"user-{u}/{n:04d}", f"user-{u}", TaskClass.INTERACTIVE, steps, PROVIDER))
                n += 1
                t += rng.randint(200, 3_000)
            t += int(rng.randint(30_000, 90_000) / p.load)

    # Batch agents: a multi-step job every 20-40 s.
    for b in range(3):
        rng = _rng(seed, f"batch-{b}")
        t = rng.randint(0, 30_000)
        n = 0
        while t < arrive_until:
            steps = _steps(rng, rng.randint(3, 6), (2_000, 5_000), (1_500, 4_000))
            tasks.append(TaskSpec(t, f"batch-{b}/{n:04d}", f"batch-{b}", TaskClass.BATCH, steps, PROVIDER))
            n += 1
            t += int(rng.randint(20_000, 40_000) / p.load)

    # Background agents: long runs that spawn sub-agents every 15-40 s of their life.
    for g in range(2):
        rng = _rng(seed, f"background-{g}")
        t = rng.randint(0, 10_000)
        n = 0
        while t < arrive_until:
            steps = _steps(rng, rng.randint(30, 60), (3_000, 8_000), (2_000, 4_000))
            parent = f"background-{g}/{n:04d}"
            tasks.append(TaskSpec(t, parent, f"background-{g}", TaskClass.BACKGROUND, steps, PROVIDER))
            life = sum(s.duration_ms for s in steps)
            s_t = t + int(rng.randint(15_000, 40_000) / p.load)
            k = 0
            while s_t < min(t + life, arrive_until):
                sub_steps = _steps(rng, rng.randint(3, 8), (1_500, 4_000), (1_000, 3_000))
                fault, at = _fault(rng, fault_rate, len(sub_steps))
                tasks.append(TaskSpec(s_t, f"{parent}/sub-{k:03d}", f"background-{g}-sub", TaskClass.BATCH,
                                      sub_steps, PROVIDER, parent, fault, at))
                k += 1
                s_t += int(rng.randint(15_000, 40_000) / p.load)
            n += 1
            t += life // 2 + rng.randint(5_000, 20_000)
    # Time order; ties by id. A sub-agent always arrives after its parent.
    tasks.sort(key=lambda task: (task.arrival_ms, task.task_id))
    return tasks


def _mix_header(name: str, seed: int, p: ScenarioParams, config: SchedulerConfig,
                storms: tuple[Storm, ...] = ()) -> WorkloadHeader:
    prov = config.providers[0]
    model = ProviderModel(PROVIDER, prov.requests_per_min, prov.tokens_per_min, retry_after_ms=2_000, storms=storms,
                          burst_ms=p.burst_s * 1000)
    return WorkloadHeader(config, (model,), heartbeat_ms=5_000, horizon_ms=p.horizon_s * 1000,
                          scenario=p.label(name), seed=seed)


def _limits(p: ScenarioParams) -> tuple[int, int]:
    """The provider's limits: 120 requests and 300k tokens a minute, divided by tightness."""
    return max(1, int(120 / p.tightness)), max(1, int(300_000 / p.tightness))


def paper(seed: int, p: ScenarioParams = ScenarioParams()) -> Workload:
    """The paper-style multi-agent mix on 8 lanes behind a tight provider limit."""
    rpm, tpm = _limits(p)
    config = _mix_config(8, rpm, tpm)
    return Workload(_mix_header("paper", seed, p, config), tuple(_mix_tasks(seed, p, 0.15)))


def overload(seed: int, p: ScenarioParams = ScenarioParams()) -> Workload:
    """The mix at twice the arrival rate, with a queue bound of 200 waiting tasks."""
    q = attrs.evolve(p, load=p.load * 2)
    rpm, tpm = _limits(p)
    config = _mix_config(8, rpm, tpm, queue_cap=200)
    return Workload(_mix_header("overload", seed, p, config), tuple(_mix_tasks(seed, q, 0.15)))


def storm(seed: int, p: ScenarioParams = ScenarioParams()) -> Workload:
    """The mix at 0.7x load while the provider rejects every call in two 20-second storms."""
    q = attrs.evolve(p, load=p.load * 0.7)
    rpm, tpm = _limits(p)
    config = _mix_config(8, rpm, tpm)
    h = p.horizon_s * 1000
    storms = (Storm(h // 4, h // 4 + 20_000), Storm(h // 2, h // 2 + 20_000))
    return Workload(_mix_header("storm", seed, p, config, storms), tuple(_mix_tasks(seed, q, 0.15)))


CONTEXT_CONFIG: Final = ContextConfig(
    hot_budget_tokens=3_000, hot_target_tokens=1_500, warm_budget_tokens=1_500, window_tokens=4_000,
    idle_ms_hibernate=0, recall_limit=8,
)
"""A 4k-token window: small next to a 25k-token session, as a real window is next to a long one."""

_WORDS: Final = (
    "plan check result file test build deploy review user request data model query cache "
    "error retry branch commit patch report table index schema metric latency budget"
).split()
_THINGS: Final = ("api key name", "deadline", "budget code", "database host", "release tag", "owner",
                  "region", "ticket number", "feature flag", "port")


def context(seed: int, p: ScenarioParams = ScenarioParams()) -> Workload:
    """Long sessions: 4 agents x 240-300 messages, 10 planted facts each, probes later.

    Half the planted facts are marked ``key`` by the application (what a developer
    would flag); the other half are plain messages, so retention cannot rely on the
    key flag alone. Each probe comes 10 to 150 messages after its fact (after the last
    message if that is past the end), so some facts are still in a short window and most
    are not. The context config gives a 4k-token window over sessions of about 25k tokens.
    """
    rpm, tpm = _limits(p)
    config = _mix_config(8, rpm, tpm)
    records: list[tuple[int, int, ContextRecord]] = []
    order = 0
    for a in range(4):
        rng = _rng(seed, f"session-{a}")
        agent = f"session-{a}"
        count = max(20, int(rng.randint(240, 300) * p.load))
        fact_at = sorted(rng.sample(range(5, max(15, count - 80)), 10))
        facts: dict[int, tuple[str, str, str]] = {}
        for i, at in enumerate(fact_at):
            thing = _THINGS[i]
            project = f"proj{rng.randint(10, 99)}"
            code = f"{rng.choice('ABCDEFGHJKLMNPQRSTUVWXYZ')}{rng.randint(100, 999)}-{rng.randint(1000, 9999)}"
            facts[at] = (f"{agent}-fact-{i}", f"{thing} {project}", code)
        probes: list[tuple[int, str, str, str]] = []
        t = rng.randint(0, 5_000)
        for m in range(count):
            role = "user" if m % 2 == 0 else "assistant"
            words = [rng.choice(_WORDS) for _ in range(rng.randint(20, 120))]
            fact = facts.get(m)
            key = False
            label: str | None = None
            if fact is not None:
                label, topic, code = fact
                words[:0] = f"note: the {topic} is {code} .".split()
                key = rng.random() < 0.5
                probes.append((m + rng.randint(10, 150), label, topic, code))
            text = " ".join(words)
            tokens = len(words) * 4 // 3 + 1
            records.append((t, order, Message(t, agent, f"m{m:04d}", role, text, tokens, key, label)))
            order += 1
            for when, plabel, topic, code in probes:
                if when == m:
                    records.append((t, order, Probe(t, agent, f"{plabel}-probe", plabel, topic, code)))
                    order += 1
            t += rng.randint(2_000, 10_000)
        for when, plabel, topic, code in probes:
            if when >= count:  # a probe past the end is asked after the last message
                records.append((t, order, Probe(t, agent, f"{plabel}-probe", plabel, topic, code)))
                order += 1
    records.sort(key=lambda r: (r[0], r[1]))
    header = WorkloadHeader(config, (), heartbeat_ms=5_000, horizon_ms=0, scenario=p.label("context"), seed=seed,
                            context=CONTEXT_CONFIG)
    return Workload(header, (), tuple(r[2] for r in records))


SCENARIOS: Final[dict[str, Callable[[int, ScenarioParams], Workload]]] = {
    "paper": paper,
    "overload": overload,
    "storm": storm,
    "context": context,
}
"""Every built-in scenario by name (in the order ``agentrm workload generate`` lists them)."""


def generate(name: str, seed: int, params: ScenarioParams = ScenarioParams()) -> Workload:
    """The workload of scenario ``name`` with ``seed``; raises KeyError for an unknown name."""
    return SCENARIOS[name](seed, params)
