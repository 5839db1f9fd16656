"""Properties of the context kernel: the phase table is total, the budget arithmetic
meets its contracts on random inputs, compaction never hands a key entry to storage
or a summarizer, hibernate-then-recall is the identity, and replay is deterministic
across processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentrm.kernel.context import (
    PHASE_TABLE,
    Append,
    ArchiveEntries,
    Archived,
    ContextConfig,
    ContextEffect,
    ContextEvent,
    ContextRefusalReason,
    ContextState,
    Entry,
    InputKind,
    Loaded,
    LoadContext,
    PersistContext,
    Persisted,
    Phase,
    RequestSummary,
    Summarized,
    Summary,
    context_step,
    evict_count,
    fit_prefix,
    hibernate,
    overflow_tokens,
    recall,
    summaries_to_drop,
    victims,
    visible_context,
)
from agentrm.specs.context_invariants import check_context

ROOT = Path(__file__).resolve().parent.parent
small = st.integers(0, 50)
costs = st.lists(small, max_size=12).map(tuple)


def test_phase_table_is_total() -> None:
    """Every input kind has an outcome for every phase: an accepted phase or a refusal reason."""
    assert set(PHASE_TABLE) == set(InputKind)
    for kind, row in PHASE_TABLE.items():
        assert len(row) == len(Phase), kind
        assert all(isinstance(o, (Phase, ContextRefusalReason)) for o in row), kind


@pytest.mark.crosshair_backend
@given(costs, small)
def test_evict_count_is_the_smallest_sufficient_prefix(tokens: tuple[int, ...], target: int) -> None:
    """evict_count moves the fewest oldest entries that bring the rest within the target."""
    k = evict_count(tokens, target)
    assert sum(tokens[k:]) <= target
    assert k == 0 or sum(tokens[k - 1:]) > target


@pytest.mark.crosshair_backend
@given(costs, small)
def test_fit_prefix_is_the_longest_fitting_prefix(items: tuple[int, ...], budget: int) -> None:
    """fit_prefix returns the longest priority prefix within the budget."""
    k = fit_prefix(items, budget)
    assert sum(items[:k]) <= budget
    assert k == len(items) or sum(items[:k + 1]) > budget


@pytest.mark.crosshair_backend
@given(costs, small, small)
def test_summaries_to_drop_keeps_keys_and_drops_fewest(summary: tuple[int, ...], keys: int, budget: int) -> None:
    """summaries_to_drop drops the fewest oldest summaries; overflow is exactly the keys' excess."""
    d = summaries_to_drop(summary, keys, budget)
    over = overflow_tokens(keys, budget)
    assert keys + sum(summary[d:]) <= budget or d == len(summary)
    assert d == 0 or keys + sum(summary[d - 1:]) > budget
    assert over == max(0, keys - budget)


@given(st.lists(st.integers(0, 5), max_size=8).map(tuple), st.integers(0, 10))
def test_victims_are_least_recently_active(last_active: tuple[int, ...], excess: int) -> None:
    """victims picks the least recently active candidates, ties to the earlier (smaller id) one."""
    chosen = victims(last_active, excess)
    expected = sorted(range(len(last_active)), key=lambda i: (last_active[i], i))[:excess]
    assert list(chosen) == expected


appends_strategy = st.lists(st.tuples(st.integers(0, 6), st.booleans()), min_size=1, max_size=40)
CONFIG = ContextConfig(hot_budget_tokens=10, hot_target_tokens=4, warm_budget_tokens=8, window_tokens=30)


def drive(specs: list[tuple[int, bool]], summary_tokens: int = 1) -> tuple[ContextState, list[ContextEffect]]:
    """Append ``specs`` to agent "a", answering every archive and summary request at once."""
    state = ContextState.initial(CONFIG)
    emitted: list[ContextEffect] = []
    pending: list[ContextEvent] = [Append(0, "a", f"e{i}", "user", f"t{i}", t, k) for i, (t, k) in enumerate(specs)]
    while pending:
        step = context_step(state, pending.pop(0))
        state = step.state
        emitted.extend(step.effects)
        for eff in step.effects:
            if isinstance(eff, ArchiveEntries):
                pending.insert(0, Archived(0, "a", eff.request))
            elif isinstance(eff, RequestSummary):
                summary = Summary(f"s{eff.request}", eff.first_seq, eff.last_seq, "gist", summary_tokens)
                pending.insert(0, Summarized(0, "a", eff.request, summary))
    assert check_context(state) == ()
    return state, emitted


@given(appends_strategy, st.integers(0, 4))
def test_key_entries_never_reach_storage_or_summarizer(specs: list[tuple[int, bool]], summary_tokens: int) -> None:
    """No ArchiveEntries or RequestSummary ever carries a key entry, and every key entry
    stays verbatim in hot or warm."""
    state, emitted = drive(specs, summary_tokens)
    sent = [e for eff in emitted if isinstance(eff, (ArchiveEntries, RequestSummary)) for e in eff.entries]
    assert not any(e.key for e in sent)
    ctx = state.agents["a"].context
    assert ctx is not None
    kept = {e.seq for e in (*ctx.hot, *ctx.warm_keys) if e.key}
    assert kept == {i for i, (_, key) in enumerate(specs) if key}


@given(appends_strategy)
def test_key_entries_are_visible_while_they_fit_the_window(specs: list[tuple[int, bool]]) -> None:
    """Key-information retention: when all key entries fit in the window, all are visible."""
    state, _ = drive(specs)
    key_entries = [Entry(f"e{i}", i, "user", f"t{i}", t, True) for i, (t, k) in enumerate(specs) if k]
    if sum(e.tokens for e in key_entries) <= CONFIG.window_tokens:
        seen = [item for item in visible_context(state, "a") if isinstance(item, Entry) and item.key]
        assert seen == key_entries


@given(appends_strategy, st.integers(0, 4))
def test_hibernate_then_recall_is_identity(specs: list[tuple[int, bool]], summary_tokens: int) -> None:
    """Hibernate, persist, recall and load give back an equal context and visible context."""
    state, _ = drive(specs, summary_tokens)
    before = state.agents["a"].context
    seen = visible_context(state, "a")
    step = hibernate(state, "a", 5)
    (persist,) = step.effects
    assert isinstance(persist, PersistContext)
    state = context_step(step.state, Persisted(6, "a")).state
    assert visible_context(state, "a") == ()
    step = recall(state, "a", 7)
    assert step.effects == (LoadContext("a"),)
    state = context_step(step.state, Loaded(8, "a", persist.context)).state
    assert state.agents["a"].context == before
    assert visible_context(state, "a") == seen
    assert check_context(state) == ()


_REPLAY = """
from agentrm.kernel.context import Append, ContextConfig, ContextState, ContextTick, context_step
config = ContextConfig(hot_budget_tokens=6, hot_target_tokens=2, idle_ms_hibernate=10, max_resident_agents=2)
state = ContextState.initial(config)
out = []
for i, agent in enumerate(["zeta", "alpha", "mu", "beta", "omega", "kappa", "delta", "gamma"] * 3):
    step = context_step(state, Append(i, agent, f"e{i}", "user", "x", 2, i % 3 == 0))
    state = step.state
    out.append(repr(step.effects))
step = context_step(state, ContextTick(30))
out.append(repr(step.effects))
print("\\n".join(out))
"""


def test_replay_is_identical_across_hash_seeds() -> None:
    """The same event log yields byte-identical effects in processes with different string hashing."""
    outputs = []
    for seed in ("1", "2"):
        proc = subprocess.run([sys.executable, "-c", _REPLAY], capture_output=True, text=True, cwd=ROOT,
                              env={"PYTHONHASHSEED": seed, "PATH": ""}, check=True)
        outputs.append(proc.stdout)
    assert outputs[0] == outputs[1]
    assert "PersistContext" in outputs[0]
