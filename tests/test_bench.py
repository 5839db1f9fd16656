"""Tests of ``agentrm bench``: its JSON keys, determinism across processes, its plots, the bound.

One in-process ``bench --quick --json --plot`` run is shared by the key and plot tests
(about 12 s, most of it matplotlib); the determinism test runs two more processes.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agentrm.adapters.bench import CapacityBound, capacity_bound
from agentrm.adapters.cli import main
from agentrm.adapters.plots import FILES
from agentrm.adapters.scenarios import PROVIDER
from agentrm.adapters.workload import Fault, ProviderModel, StepSpec, TaskSpec, Workload, WorkloadHeader
from agentrm.kernel.scheduler.config import ClassConfig, ProviderConfig, SchedulerConfig, TaskClass

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
METRIC_KEYS = {
    "arrived", "cancelled", "duration_ms", "failed", "finished", "healthy_reaped", "lane_busy_ms", "lane_waste_ms",
    "lane_waste_permille", "latency", "latency_by_class", "policy", "policy_steps", "provider_calls",
    "rate_limited", "reaped", "rejected", "retries", "throughput_per_min", "unfinished", "zombies_at_end",
}
TARGET_KEYS = {"key", "label", "target", "against", "agentrm", "other", "change", "met", "shortfall", "paper"}
SWEEP_POLICY_KEYS = {"p95_ms", "interactive_p95_slowdown", "throughput_per_min", "lane_waste_permille",
                     "zombies_at_end", "finished"}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str, Path]:
    """One ``bench --quick --json --plot DIR`` run: (parsed JSON, raw JSON text, plot directory)."""
    plot_dir = tmp_path_factory.mktemp("plots")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["bench", "--quick", "--json", "--plot", str(plot_dir)])
    assert code == 0, err.getvalue()
    text = out.getvalue()
    return json.loads(text), text, plot_dir


def test_quick_json_has_every_key(quick_run: tuple[dict[str, Any], str, Path]) -> None:
    """``bench --quick --json`` reports every scenario, policy, target, context policy and sweep point."""
    doc, _, _ = quick_run
    assert set(doc) == {"bench_version", "settings", "paper", "scheduler", "targets", "context", "sweep"}
    assert doc["settings"]["quick"] is True and doc["settings"]["seeds"] == [1]
    assert set(doc["paper"]) == {"p95_latency", "lane_waste", "throughput", "zombies", "retention",
                                 "compaction_tokens"}
    assert set(doc["scheduler"]) == {"paper", "overload", "storm"}
    for scen in doc["scheduler"].values():
        assert set(scen) == {"capacity", "policies", "per_seed", "targets"}
        assert [t["key"] for t in scen["targets"]] == [t["key"] for t in doc["targets"]]
        assert set(scen["policies"]) == {"mlfq", "fifo", "rr", "priority"}
        for m in scen["policies"].values():
            assert set(m) == METRIC_KEYS
            assert set(m["latency_by_class"]) == {"interactive", "batch", "background"}
        assert set(scen["per_seed"]) == {"1"}
        assert set(scen["capacity"]) == {"completable", "by_lanes", "by_requests", "by_tokens", "bound",
                                         "duration_ms", "offered_load_permille", "per_min"}
    assert [(t["key"], t["against"] in ("fifo", "rr", "priority")) for t in doc["targets"]] == [
        ("p95_latency", True), ("p95_latency", True), ("throughput", True), ("throughput", True),
        ("lane_waste", True), ("lane_waste", True), ("zombies", True), ("zombies", True),
        ("interactive_slowdown", False), ("capacity_share", False)]
    assert all(set(t) == TARGET_KEYS for t in doc["targets"] + doc["context"]["targets"])
    assert set(doc["context"]["policies"]) == {"mlfq", "sliding-window", "rolling-summary"}
    assert [t["key"] for t in doc["context"]["targets"]] == ["retention", "retention", "compaction_tokens"]
    assert [(row["axis"], row["value"]) for row in doc["sweep"]] == [
        ("load", 0.5), ("load", 0.75), ("load", 1.0), ("load", 1.2), ("fault_rate", 0.0), ("fault_rate", 0.05),
        ("fault_rate", 0.1), ("tightness", 1.0), ("tightness", 1.5), ("tightness", 2.0)]
    for row in doc["sweep"]:
        for name in ("mlfq", "fifo", "rr", "priority"):
            assert set(row[name]) == SWEEP_POLICY_KEYS


def test_json_is_identical_across_processes(quick_run: tuple[dict[str, Any], str, Path]) -> None:
    """Two processes with different PYTHONHASHSEED print byte-identical JSON, equal to the in-process run."""
    _, text, _ = quick_run
    procs = [subprocess.Popen([sys.executable, "-m", "agentrm.adapters.cli", "bench", "--quick", "--json"],
                              env={**os.environ, "PYTHONHASHSEED": hashseed}, stdout=subprocess.PIPE, text=True)
             for hashseed in ("1", "4242")]  # both at once: CI has two cores
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert outputs[0] == outputs[1] == text


def test_plot_writes_every_png(quick_run: tuple[dict[str, Any], str, Path]) -> None:
    """``--plot DIR`` writes exactly the four figures, each a non-trivial PNG."""
    _, _, plot_dir = quick_run
    assert sorted(p.name for p in plot_dir.iterdir()) == sorted(FILES)
    for name in FILES:
        data = (plot_dir / name).read_bytes()
        assert data[:8] == PNG_SIGNATURE and len(data) > 10_000, name


def _task(task_id: str, arrival_ms: int, durations: tuple[int, ...], tokens: int = 1_000,
          fault: Fault = Fault.NONE) -> TaskSpec:
    steps = tuple(StepSpec(d, tokens) for d in durations)
    return TaskSpec(arrival_ms, task_id, "a", TaskClass.BATCH, steps, PROVIDER, None, fault, 0)


def test_capacity_bound_takes_the_tightest_resource() -> None:
    """The bound drops faulty and too-late tasks, then takes the smallest per-resource count."""
    config = SchedulerConfig(
        lanes=2, level_allotments_ms=(1_000,), boost_period_ms=60_000,
        interactive=ClassConfig(0, 1, 5_000), batch=ClassConfig(0, 0, 5_000), background=ClassConfig(0, 0, 5_000),
        providers=(ProviderConfig(PROVIDER, 6, 1_000_000),),
    )
    # Horizon 60 s, 2 lanes: 120 lane-s. 6 requests/min with a 10 s burst: 6 * 70 / 60 = 7 requests.
    header = WorkloadHeader(config, (ProviderModel(PROVIDER, 6, 1_000_000, burst_ms=10_000),),
                            horizon_ms=60_000, scenario="unit", seed=0)
    tasks = (
        _task("ok-1", 0, (10_000, 10_000)),          # 20 lane-s, 2 requests
        _task("ok-2", 0, (5_000,)),                   # 5 lane-s, 1 request
        _task("ok-3", 1_000, (5_000, 5_000, 5_000)),  # 15 lane-s, 3 requests
        _task("ok-4", 2_000, (1_000, 1_000)),         # 2 lane-s, 2 requests
        _task("late", 55_000, (10_000,)),             # cannot finish before the horizon
        _task("hung", 0, (1_000,), fault=Fault.HANG),
        _task("after", 61_000, (1_000,)),             # arrives after the horizon
    )
    cap = capacity_bound(Workload(header, tasks))
    # Offered: lane demand 20+5+15+2+5(late, clipped)+1 = 48 s of 120 -> 400; requests 2+1+3+2+0(late: 5/10 of 1,
    # floored)+1 = 9 of 7 -> 1285; tokens far below the limit.
    assert cap == CapacityBound(completable=4, by_lanes=4, by_requests=3, by_tokens=4, bound=3, duration_ms=60_000,
                           offered_load_permille=1285)
    assert cap.per_min == 3.0


@pytest.mark.parametrize(("argv", "message"), [
    (["bench", "--quick", "--seeds", "3", "3"], "agentrm: --seeds: duplicate seed in [3, 3]\n"),
    (["bench", "--quick", "--plot", "{file}"], "agentrm: --plot: {file}: cannot write plots there: File exists\n"),
])
def test_bad_arguments_exit_2_before_running(argv: list[str], message: str, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Duplicate seeds or an unusable plot directory exit 2 with a message naming the option, printing nothing else."""
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    code = main([a.replace("{file}", str(blocker)) for a in argv])
    out, err = capsys.readouterr()
    assert (code, out, err) == (2, "", message.replace("{file}", str(blocker)))
