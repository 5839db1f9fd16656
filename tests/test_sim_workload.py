"""Workload v1 round trips, and the built-in scenarios are valid and deterministic."""

from __future__ import annotations

import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentrm.adapters.scenarios import SCENARIOS, ScenarioParams, generate
from agentrm.adapters.workload import (
    Fault,
    Message,
    Probe,
    ProviderModel,
    StepSpec,
    Storm,
    TaskSpec,
    Workload,
    WorkloadHeader,
    dumps_workload,
    read_workload_stream,
)
from agentrm.kernel.scheduler.config import ProviderConfig, SchedulerConfig, TaskClass

CONFIG = SchedulerConfig(providers=(ProviderConfig("default", 60, 6_000), ProviderConfig("b", 5, 50)))


@st.composite
def workloads(draw: st.DrawFn) -> Workload:
    """Valid workloads: tasks with parents earlier in the file, context records with planted facts."""
    n = draw(st.integers(0, 6))
    t = 0
    tasks: list[TaskSpec] = []
    for i in range(n):
        t += draw(st.integers(0, 1_000))
        steps = tuple(StepSpec(draw(st.integers(1, 10**6)), draw(st.integers(0, 10**6)))
                      for _ in range(draw(st.integers(1, 4))))
        parent = draw(st.sampled_from([None] + [x.task_id for x in tasks]))
        tasks.append(TaskSpec(t, f"t{i}", draw(st.text(min_size=1, max_size=4)), draw(st.sampled_from(TaskClass)),
                              steps, draw(st.sampled_from(["default", "b"])), parent, draw(st.sampled_from(Fault)),
                              draw(st.integers(0, len(steps) - 1))))
    ctx: list[Message | Probe] = []
    c = 0
    for i in range(draw(st.integers(0, 4))):
        c += draw(st.integers(0, 1_000))
        ctx.append(Message(c, "a", f"m{i}", "user", draw(st.text(max_size=20)), draw(st.integers(0, 500)),
                           draw(st.booleans()), f"f{i}"))
        if draw(st.booleans()):
            ctx.append(Probe(c, "a", f"p{i}", f"f{i}", "q", draw(st.text(min_size=1, max_size=5))))
    storms = tuple(Storm(s, s + draw(st.integers(1, 100))) for s in draw(st.lists(st.integers(0, 10**5), max_size=2)))
    header = WorkloadHeader(CONFIG, (ProviderModel("b", 5, 50, draw(st.integers(0, 10**4)), storms),),
                            draw(st.integers(1, 10**4)), draw(st.integers(0, 10**6)), draw(st.text(max_size=8)),
                            draw(st.integers(0, 2**31)))
    # The writer merges by time; keep the context after the tasks so the read order is the written order.
    shift = t
    ctx = [Message(r.at_ms + shift, *[getattr(r, f) for f in ("agent", "entry_id", "role", "text", "tokens", "key",
                                                                "fact")]) if isinstance(r, Message)
           else Probe(r.at_ms + shift, r.agent, r.probe_id, r.fact, r.query, r.answer) for r in ctx]
    return Workload(header, tuple(tasks), tuple(ctx))


@given(workloads())
def test_workload_round_trips(workload: Workload) -> None:
    """Reading a written workload yields the same workload, and writing it again the same bytes."""
    text = dumps_workload(workload)
    again = read_workload_stream(io.StringIO(text))
    assert again == workload
    assert dumps_workload(again) == text


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenarios_are_valid_and_deterministic(name: str) -> None:
    """Every built-in scenario reads back unchanged and regenerates to the same bytes."""
    params = ScenarioParams(horizon_s=120)
    text = dumps_workload(generate(name, 5, params))
    assert read_workload_stream(io.StringIO(text), name) == generate(name, 5, params)
    assert dumps_workload(generate(name, 5, params)) == text
    assert dumps_workload(generate(name, 6, params)) != text


def test_context_scenario_has_long_sessions_and_probes() -> None:
    """The context scenario gives every agent 240+ messages and probes each planted fact after it."""
    w = generate("context", 1)
    per_agent: dict[str, int] = {}
    planted: dict[str, int] = {}
    probes: list[Probe] = []
    for index, r in enumerate(w.context):
        if isinstance(r, Message):
            per_agent[r.agent] = per_agent.get(r.agent, 0) + 1
            if r.fact is not None:
                planted[r.fact] = index
                assert r.text.count(next(p.answer for p in w.context if isinstance(p, Probe) and p.fact == r.fact))
        else:
            probes.append(r)
    assert sorted(per_agent) == ["session-0", "session-1", "session-2", "session-3"]
    assert min(per_agent.values()) >= 240
    assert len(planted) == 40 and sorted(p.fact for p in probes) == sorted(planted)


def test_params_are_validated_and_labelled() -> None:
    """Out-of-range knobs are refused by name; non-default knobs are recorded in the header."""
    with pytest.raises(ValueError, match="fault_rate"):
        ScenarioParams(fault_rate=2.0)
    assert ScenarioParams(load=1.5, tightness=2.0).label("paper") == "paper?load=1.5&tightness=2.0"
    assert generate("paper", 1, ScenarioParams(horizon_s=60)).header.scenario == "paper?horizon_s=60"
