"""The simulator plays agents, faults and the provider exactly as the workload says."""

from __future__ import annotations

from agentrm.adapters.baselines import BASELINES
from agentrm.adapters.metrics import Capacity, capacity, compute, percentile
from agentrm.adapters.simulator import (
    LaneInterval,
    Outcome,
    SimResult,
    TaskResult,
    kernel_policy,
    simulate,
)
from agentrm.adapters.workload import Fault, ProviderModel, StepSpec, Storm, TaskSpec, Workload, WorkloadHeader
from agentrm.kernel.scheduler.config import ClassConfig, ProviderConfig, SchedulerConfig, TaskClass

# Two lanes, one reserved for interactive work: batch tasks share a single lane under
# the kernel, which makes the expected schedules short enough to write down.
CFG = SchedulerConfig(
    lanes=2, level_allotments_ms=(2_000, 8_000), boost_period_ms=600_000,
    interactive=ClassConfig(0, 1, 10_000), batch=ClassConfig(1, 0, 10_000), background=ClassConfig(1, 0, 10_000),
    providers=(ProviderConfig("p", 600, 600_000),),
)


def task(at: int, tid: str, steps: tuple[tuple[int, int], ...] = ((1_000, 10),), fault: Fault = Fault.NONE,
         fault_step: int = 0, cls: TaskClass = TaskClass.BATCH) -> TaskSpec:
    """A task of agent ``a-<tid>`` on provider ``p``."""
    return TaskSpec(at, tid, f"a-{tid}", cls, tuple(StepSpec(d, k) for d, k in steps), "p", None, fault, fault_step)


def run(policy: str, tasks: list[TaskSpec], providers: tuple[ProviderModel, ...] = (), horizon: int = 0) -> SimResult:
    """Simulate ``tasks`` under ``policy`` with a 3-second heartbeat."""
    workload = Workload(WorkloadHeader(CFG, providers, 3_000, horizon), tuple(tasks))
    return simulate(workload, kernel_policy(CFG) if policy == "mlfq" else BASELINES[policy](CFG))


def test_single_task_runs_its_steps_back_to_back() -> None:
    """A lone two-step task holds one lane for exactly its service time and finishes."""
    t1 = task(0, "t1", ((1_000, 10), (1_000, 10)))
    assert run("mlfq", [t1]) == SimResult(
        policy="mlfq", lanes=2, end_ms=2_000,
        tasks=(TaskResult(t1, Outcome.FINISHED, 2_000, 0, False, False),),
        lane_intervals=(LaneInterval(0, "t1", 0, 2_000, True),),
        provider_calls=2, rate_limited=0, retries=0, policy_steps=4,
    )


HUNG = [task(0, "h", ((1_000, 10), (5_000, 10)), Fault.HANG, 1), task(0, "ok", ((4_000, 10),)),
        task(100, "late")]


def test_kernel_reaps_a_hung_agent_after_its_idle_limit() -> None:
    """Under mlfq a hung agent holds its lane without progress for idle_ms_reap, then is reaped."""
    h, ok, late = HUNG
    assert run("mlfq", HUNG, horizon=400_000) == SimResult(
        policy="mlfq", lanes=2, end_ms=400_000,
        tasks=(TaskResult(h, Outcome.REAPED, 11_000, 0, False, False),
               TaskResult(ok, Outcome.FINISHED, 15_000, 11_000, False, False),
               TaskResult(late, Outcome.FINISHED, 16_000, 15_000, False, False)),
        lane_intervals=(LaneInterval(0, "h", 0, 1_000, True), LaneInterval(0, "h", 1_000, 11_000, False),
                        LaneInterval(0, "ok", 11_000, 15_000, True), LaneInterval(0, "late", 15_000, 16_000, True)),
        provider_calls=3, rate_limited=0, retries=0, policy_steps=9,
    )


def test_fifo_holds_a_hung_agent_until_its_timeout() -> None:
    """Under fifo a hung agent wastes its lane until the 5-minute timeout cancels it."""
    h, ok, late = HUNG
    assert run("fifo", HUNG, horizon=400_000) == SimResult(
        policy="fifo", lanes=2, end_ms=400_000,
        tasks=(TaskResult(h, Outcome.REAPED, 300_000, 0, False, False),
               TaskResult(ok, Outcome.FINISHED, 4_000, 0, False, False),
               TaskResult(late, Outcome.FINISHED, 5_000, 4_000, False, False)),
        lane_intervals=(LaneInterval(0, "h", 0, 1_000, True), LaneInterval(1, "ok", 0, 4_000, True),
                        LaneInterval(0, "h", 1_000, 300_000, False), LaneInterval(1, "late", 4_000, 5_000, True)),
        provider_calls=3, rate_limited=0, retries=0, policy_steps=7,
    )


def test_priority_leaves_a_zombie_at_the_end() -> None:
    """Without reaping, a hung agent still holds its lane at the horizon and counts as a zombie."""
    result = run("priority", HUNG, horizon=400_000)
    assert [(t.spec.task_id, t.outcome, t.end_ms, t.zombie) for t in result.tasks] == [
        ("h", Outcome.UNFINISHED, None, True), ("ok", Outcome.FINISHED, 4_000, False),
        ("late", Outcome.FINISHED, 5_000, False)]
    m = compute(result)
    assert (m.zombies_at_end, m.lane_waste_ms, m.lane_busy_ms) == (1, 399_000, 405_000)


def test_silent_finish_and_crash_are_played() -> None:
    """A silently finishing agent keeps its lane without progress; a crashing one reports a failure."""
    silent = task(0, "s", ((1_000, 10), (1_000, 10)), Fault.SILENT_FINISH, 0)
    crash = task(0, "c", ((500, 10),), Fault.CRASH, 0, cls=TaskClass.INTERACTIVE)
    result = run("fifo", [silent, crash], horizon=10_000)
    assert result.tasks == (TaskResult(silent, Outcome.UNFINISHED, None, 0, True, False),
                            TaskResult(crash, Outcome.FAILED, 500, 0, False, False))
    assert result.lane_intervals == (LaneInterval(0, "s", 0, 1_000, True), LaneInterval(1, "c", 0, 500, True),
                                     LaneInterval(0, "s", 1_000, 10_000, False))


TWO = [task(0, "x"), task(0, "y")]
ONE_RPM = (ProviderModel("p", 1, 1_000, retry_after_ms=5_000),)


def test_self_retrying_agent_gives_up_after_six_429s() -> None:
    """Under fifo an agent retries 429s with backoff while holding its lane, and fails after six."""
    x, y = TWO
    result = run("fifo", TWO, ONE_RPM)
    assert result.tasks == (TaskResult(x, Outcome.FINISHED, 1_000, 0, False, False),
                            TaskResult(y, Outcome.FAILED, 32_735, 0, False, False))
    assert (result.provider_calls, result.rate_limited, result.retries) == (7, 6, 5)
    assert result.lane_intervals == (LaneInterval(0, "x", 0, 1_000, True), LaneInterval(1, "y", 0, 32_735, False))


def test_kernel_agent_reports_429_and_gives_back_its_lane() -> None:
    """Under mlfq a 429 is reported to the kernel: the lane is never held while rate limited."""
    x, y = TWO
    result = run("mlfq", TWO, ONE_RPM)
    assert result.tasks == (TaskResult(x, Outcome.FINISHED, 1_000, 0, False, False),
                            TaskResult(y, Outcome.FINISHED, 62_000, 1_000, False, False))
    assert result.lane_intervals == (LaneInterval(0, "x", 0, 1_000, True), LaneInterval(0, "y", 61_000, 62_000, True))
    assert compute(result).lane_waste_ms == 0


def test_storm_answers_429_to_every_call() -> None:
    """During a storm the provider refuses every call, even with full buckets."""
    storm = (ProviderModel("p", 600, 600_000, retry_after_ms=1_000, storms=(Storm(0, 2_000),)),)
    result = run("fifo", [task(0, "x")], storm)
    assert (result.tasks[0].outcome, result.rate_limited, result.retries) == (Outcome.FINISHED, 2, 2)


def test_percentile_is_nearest_rank() -> None:
    """percentile() picks sorted[ceil(p*n/100)-1], and None for no data."""
    values = list(range(1, 101))
    assert [percentile(values, p) for p in (50, 95, 99, 100)] == [50, 95, 99, 100]
    assert percentile([7], 95) == 7
    assert percentile([], 50) is None


def test_capacity_bounds() -> None:
    """capacity() takes the smallest of offered load, lane time and provider limits, over healthy tasks."""
    tasks = (task(0, "a", ((30_000, 100), (30_000, 100))), task(0, "b", ((60_000, 100),)),
             task(0, "h", ((1_000, 10),), Fault.HANG))
    header = WorkloadHeader(CFG, (ProviderModel("p", 1, 1_000),), 3_000, 120_000)
    # 2 healthy tasks in 2 min: offered 1/min; lanes: 2 * 60 s * 2 / 120 s = 2/min;
    # provider: 1 request/min * 2 tasks / 3 requests = 0.667/min (tokens: 1000 * 2 / 300).
    assert capacity(Workload(header, tasks)) == Capacity(1.0, 2.0, 0.667, 0.667)
    assert capacity(Workload(WorkloadHeader(CFG), ())) == Capacity(0.0, 0.0, None, 0.0)
