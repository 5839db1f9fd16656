"""Context-session simulation: agentrm's tiers keep planted facts recoverable, baselines lose them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentrm.adapters.cli import main
from agentrm.adapters.context_sim import ContextMetrics, simulate_context
from agentrm.adapters.scenarios import generate
from agentrm.adapters.workload import Message, Probe, Workload, WorkloadHeader
from agentrm.kernel.context.config import ContextConfig
from agentrm.kernel.scheduler.config import SchedulerConfig

# A tiny window: 100 tokens visible, compaction past 60 down to 30.
TINY = ContextConfig(hot_budget_tokens=60, hot_target_tokens=30, warm_budget_tokens=40, window_tokens=100,
                     idle_ms_hibernate=0, recall_limit=2)


def session() -> Workload:
    """One agent: a planted (unmarked) fact, twenty filler messages, then a probe for it."""
    records: list[Message | Probe] = [Message(0, "a", "m00", "user", "the vault code is QX-4471 .", 10, False, "f1")]
    for i in range(1, 21):
        records.append(Message(i * 10, "a", f"m{i:02d}", "assistant", f"filler words number {i} about nothing", 10))
    records.append(Probe(300, "a", "p1", "f1", "vault code", "QX-4471"))
    return Workload(WorkloadHeader(SchedulerConfig(), context=TINY), (), tuple(records))


def test_agentrm_recalls_what_the_baselines_forgot() -> None:
    """With a 100-token window, only agentrm still finds the fact 20 messages later (by a recall query)."""
    mlfq, window, rolling = simulate_context(session())
    assert (mlfq.probes_answered, mlfq.probes_visible, mlfq.probes_recalled) == (1, 0, 1)
    assert (mlfq.facts_retained_at_end, mlfq.retention_permille) == (1, 1000)
    assert mlfq.summarization_tokens > 0 and mlfq.peak_context_tokens <= TINY.window_tokens
    assert window == ContextMetrics(
        policy="sliding-window", agents=1, messages=21, probes=1, probes_answered=0, probes_visible=0,
        probes_recalled=0, probe_answerability_permille=0, facts=1, facts_retained_at_end=0, retention_permille=0,
        summarization_tokens=0, peak_context_tokens=100)
    assert (rolling.policy, rolling.probes_answered, rolling.facts_retained_at_end) == ("rolling-summary", 0, 0)
    assert rolling.summarization_tokens > 0


def test_key_fact_stays_visible() -> None:
    """A fact the application marked key is answered from the visible context, without a recall."""
    w = session()
    first = w.context[0]
    assert isinstance(first, Message)
    marked = Workload(w.header, (), (Message(0, "a", "m00", "user", first.text, 10, True, "f1"), *w.context[1:]))
    (mlfq,) = simulate_context(marked, ["mlfq"])
    assert (mlfq.probes_visible, mlfq.probes_recalled, mlfq.facts_retained_at_end) == (1, 0, 1)


def test_context_scenario_through_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """simulate on a context workload reports all three context policies, agentrm retaining every fact."""
    wl = tmp_path / "ctx.jsonl"
    assert main(["workload", "generate", "--scenario", "context", "--seed", "2", "--load", "0.4", "-o", str(wl)]) == 0
    capsys.readouterr()
    assert main(["simulate", str(wl), "--policy", "all", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["runs"] == []
    runs = {r["policy"]: r for r in doc["context_runs"]}
    assert list(runs) == ["mlfq", "sliding-window", "rolling-summary"]
    assert runs["mlfq"]["retention_permille"] == 1000
    assert runs["mlfq"]["probe_answerability_permille"] == 1000
    assert runs["sliding-window"]["retention_permille"] < 1000


def test_trace_has_one_sample_per_record() -> None:
    """run_context's trace records, per record, the agent's visible tokens and running totals."""
    from agentrm.adapters.context_sim import ContextSample, SlidingWindow, run_context

    trace: list[ContextSample] = []
    metrics = run_context(session(), SlidingWindow(TINY), trace)
    assert len(trace) == 22
    assert trace[0] == ContextSample(0, 0, "a", 10, 0, 0)
    assert trace[-1] == ContextSample(21, 300, "a", 100, 0, 0)
    assert max(s.visible_tokens for s in trace) == metrics.peak_context_tokens


def test_hibernation_round_trip_keeps_every_fact() -> None:
    """An agent idle past idle_ms_hibernate is persisted, recalled when it speaks again, and loses nothing."""
    import attrs

    w = session()
    late = tuple(attrs.evolve(r, at_ms=r.at_ms + 10_000) if r.at_ms >= 100 else r for r in w.context)
    sleepy = Workload(WorkloadHeader(SchedulerConfig(), context=attrs.evolve(TINY, idle_ms_hibernate=5_000)), (),
                      late)
    (awake,) = simulate_context(Workload(w.header, (), late), ["mlfq"])
    (slept,) = simulate_context(sleepy, ["mlfq"])
    assert (awake.hibernations, awake.wakeups) == (0, 0)
    assert (slept.hibernations, slept.wakeups) == (1, 1)
    assert attrs.evolve(slept, hibernations=0, wakeups=0) == awake


def test_context_seed_5_keeps_every_fact_to_the_end() -> None:
    """On the context scenario's seed 5, every planted fact is answerable when probed and again at the end (the best recall match is no longer cut from a full window)."""
    (m,) = simulate_context(generate("context", 5), ("mlfq",))
    # Before recalled entries kept the search's ranking, session-0's "budget code proj10"
    # (BM25's best match, but the oldest of the eight) was cut: 39 of 40 at the end.
    assert (m.facts, m.facts_retained_at_end, m.probes, m.probes_answered) == (40, 40, 40, 40)
