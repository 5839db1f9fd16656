"""Example tests of every context transition: each asserts the whole resulting state
and the exact effects (SPEC.md section 3)."""

from __future__ import annotations

import attrs
import immutables
import pytest

from agentrm.kernel.common import Step
from agentrm.kernel.context import (
    AgentContext,
    AgentSlot,
    Append,
    ArchiveEntries,
    Archived,
    Compact,
    Compaction,
    ContextConfig,
    ContextEvent,
    ContextOverflow,
    ContextRefusal,
    ContextRefusalReason,
    ContextState,
    ContextTick,
    Entry,
    Hibernate,
    Loaded,
    LoadContext,
    LoadFailed,
    PersistContext,
    Persisted,
    PersistFailed,
    Phase,
    Recall,
    RequestSummary,
    SearchArchive,
    SearchFound,
    Stub,
    Summarized,
    Summary,
    SummaryFailed,
    SummaryRequest,
    choose_victims,
    context_step,
    hibernate,
    next_hibernate_ms,
    recall,
    visible_context,
)
from agentrm.kernel.scheduler.config import ConfigError

R = ContextRefusalReason
CFG = ContextConfig(hot_budget_tokens=10, hot_target_tokens=4, warm_budget_tokens=6, window_tokens=100,
                    idle_ms_hibernate=1_000, max_resident_agents=0, recall_limit=2)


def E(i: int, tokens: int = 3, key: bool = False) -> Entry:
    """The entry the helpers append as number ``i``."""
    return Entry(f"e{i}", i, "user", f"t{i}", tokens, key)


def run(events: list[ContextEvent], config: ContextConfig = CFG) -> Step[ContextState, object]:
    """Fold ``events`` from the initial state; the last step (state and its effects)."""
    state = ContextState.initial(config)
    step: Step[ContextState, object] = Step(state)
    for ev in events:
        step = context_step(state, ev)  # type: ignore[assignment]
        state = step.state
    return step


def appends(agent: str, specs: list[tuple[int, bool]], at_ms: int = 0) -> list[ContextEvent]:
    """Append events for entries ``e0, e1, ...`` with the given (tokens, key)."""
    return [Append(at_ms, agent, f"e{i}", "user", f"t{i}", t, k) for i, (t, k) in enumerate(specs)]


def ids(*entries: Entry, archived: tuple[tuple[int, str], ...] = ()) -> immutables.Map[str, int]:
    """The id index of a context holding ``entries`` and ``archived``."""
    return immutables.Map([(e.entry_id, e.seq) for e in entries] + [(i, s) for s, i in archived])


def state_of(now_ms: int, **slots: AgentSlot) -> ContextState:
    """A whole expected state under CFG."""
    return ContextState(CFG, now_ms, immutables.Map(slots))


def test_append_creates_agent_with_entry_in_hot() -> None:
    """A first append creates the agent, resident, with the entry at seq 0 in hot."""
    step = run([Append(5, "a", "e0", "user", "t0", 3)])
    ctx = AgentContext("a", next_seq=1, hot=(E(0),))
    assert step == Step(state_of(5, a=AgentSlot(Phase.RESIDENT, 5, ctx, None, ids(E(0)))), ())


def test_append_over_budget_asks_to_archive_oldest_unmarked() -> None:
    """Crossing hot_budget_tokens archives the oldest unmarked entries needed to reach the
    target; key entries among them are not sent to storage and nothing leaves hot yet."""
    step = run(appends("a", [(3, False), (3, True), (3, False), (3, False)]))
    hot = (E(0), E(1, key=True), E(2), E(3))
    ctx = AgentContext("a", next_seq=4, hot=hot, compaction=Compaction(0, 3, ("e0", "e2")), next_request=1)
    assert step == Step(state_of(0, a=AgentSlot(Phase.RESIDENT, 0, ctx, None, ids(*hot))),
                        (ArchiveEntries("a", 0, (E(0), E(2))),))


def test_archived_moves_prefix_and_requests_summary() -> None:
    """On Archived the prefix leaves hot: unmarked entries into the archive, key entries to
    warm verbatim; a summary of the archived range is requested."""
    step = run([*appends("a", [(3, False), (3, True), (3, False), (3, False)]), Archived(7, "a", 0)])
    ctx = AgentContext("a", next_seq=4, hot=(E(3),), warm_keys=(E(1, key=True),),
                       archived=((0, "e0"), (2, "e2")), pending_summaries=(SummaryRequest(1, 0, 2),),
                       next_request=2)
    expected = state_of(7, a=AgentSlot(Phase.RESIDENT, 0, ctx, None,
                                       ids(E(3), E(1, key=True), archived=ctx.archived)))
    assert step == Step(expected, (RequestSummary("a", 1, 0, 2, (E(0), E(2))),))


def test_summarized_adds_summary_to_warm() -> None:
    """A summary for the pending request joins warm; the request is no longer pending."""
    summary = Summary("s", 0, 2, "gist", 2)
    step = run([*appends("a", [(3, False), (3, True), (3, False), (3, False)]), Archived(7, "a", 0),
                Summarized(8, "a", 1, summary)])
    ctx = AgentContext("a", next_seq=4, hot=(E(3),), warm_keys=(E(1, key=True),), summaries=(summary,),
                       archived=((0, "e0"), (2, "e2")), next_request=2)
    expected = state_of(8, a=AgentSlot(Phase.RESIDENT, 0, ctx, None,
                                       ids(E(3), E(1, key=True), archived=ctx.archived)))
    assert step == Step(expected, ())
    assert visible_context(step.state, "a") == (summary, E(1, key=True), E(3))


def test_summary_failed_forgets_the_request_and_keeps_the_archive() -> None:
    """A failed summary only ends the pending request: the entries stay archived, warm has no summary."""
    step = run([*appends("a", [(3, False), (3, True), (3, False), (3, False)]), Archived(7, "a", 0),
                SummaryFailed(8, "a", 1, "model down")])
    ctx = AgentContext("a", next_seq=4, hot=(E(3),), warm_keys=(E(1, key=True),),
                       archived=((0, "e0"), (2, "e2")), next_request=2)
    expected = state_of(8, a=AgentSlot(Phase.RESIDENT, 0, ctx, None,
                                       ids(E(3), E(1, key=True), archived=ctx.archived)))
    assert step == Step(expected, ())
    again = context_step(step.state, SummaryFailed(9, "a", 1))
    assert again == Step(ContextState(CFG, 9, step.state.agents),
                         (ContextRefusal("a", R.UNEXPECTED_COMPLETION, "request 1: no summary pending"),))


def test_summary_over_warm_budget_is_dropped_not_key_entries() -> None:
    """A summary that does not fit beside the key entries in the warm budget is dropped
    (its entries stay archived); the key entries stay."""
    summary = Summary("s", 0, 2, "gist", 4)  # 3 key tokens + 4 > warm budget 6
    step = run([*appends("a", [(3, False), (3, True), (3, False), (3, False)]), Archived(7, "a", 0),
                Summarized(8, "a", 1, summary)])
    ctx = AgentContext("a", next_seq=4, hot=(E(3),), warm_keys=(E(1, key=True),),
                       archived=((0, "e0"), (2, "e2")), next_request=2)
    expected = state_of(8, a=AgentSlot(Phase.RESIDENT, 0, ctx, None,
                                       ids(E(3), E(1, key=True), archived=ctx.archived)))
    assert step == Step(expected, ())


def test_key_entries_over_warm_budget_are_an_explicit_overflow() -> None:
    """Key entries alone above the warm budget are all kept and reported as overflow."""
    step = run(appends("a", [(4, True), (4, True), (4, True)]))
    keys = (E(0, 4, True), E(1, 4, True))
    ctx = AgentContext("a", next_seq=3, hot=(E(2, 4, True),), warm_keys=keys, next_request=1, overflow_tokens=2)
    expected = state_of(0, a=AgentSlot(Phase.RESIDENT, 0, ctx, None, ids(E(2, 4, True), *keys)))
    assert step == Step(expected, (ContextOverflow("a", 8, 6, 2),))


def test_compact_within_target_does_nothing() -> None:
    """Compact when hot is within hot_target_tokens has no effect and changes nothing but the clock."""
    first = run(appends("a", [(2, False), (2, False)]))
    step = context_step(first.state, Compact(3, "a"))
    assert step == Step(ContextState(CFG, 3, first.state.agents), ())


def test_compact_above_target_archives_down_to_target() -> None:
    """Compact when hot is above the target (but within budget) archives the oldest entries down to it."""
    first = run(appends("a", [(2, False), (2, False), (2, False)]))
    step = context_step(first.state, Compact(3, "a"))
    hot = (E(0, 2), E(1, 2), E(2, 2))
    ctx = AgentContext("a", next_seq=3, hot=hot, compaction=Compaction(0, 1, ("e0",)), next_request=1)
    assert step == Step(state_of(3, a=AgentSlot(Phase.RESIDENT, 0, ctx, None, ids(*hot))),
                        (ArchiveEntries("a", 0, (E(0, 2),)),))


def test_hibernated_agent_refuses_append() -> None:
    """A hibernated agent refuses appends with AGENT_HIBERNATED: recall it first."""
    state, _ = _hibernated()
    assert context_step(state, Append(20, "a", "e9", "user", "t", 1)) == Step(ContextState(CFG, 20, state.agents), (
        ContextRefusal("a", R.AGENT_HIBERNATED, "append refused while agent is hibernated"),))


def test_query_recall_of_hibernated_agent_loads_then_searches() -> None:
    """A query recall of a hibernated agent loads it, then asks storage for the matching entries."""
    state, ctx = _hibernated()
    step = recall(state, "a", 20, "t0")
    stub = Stub(1, 1, 0, 0, 0, 11, query="t0")
    assert step == Step(state_of(20, a=AgentSlot(Phase.RECALLING, 0, None, stub)), (LoadContext("a"),))
    step = context_step(step.state, Loaded(21, "a", ctx))
    searching = AgentContext("a", next_seq=1, hot=(E(0),), pending_search=0, next_request=1)
    assert step == Step(state_of(21, a=AgentSlot(Phase.RESIDENT, 21, searching, None, ids(E(0)))),
                        (SearchArchive("a", 0, "t0", 2),))


def test_duplicate_append_is_refused_and_changes_nothing() -> None:
    """Appending an id already appended is a DUPLICATE_ENTRY refusal; the state keeps only the clock."""
    first = run([Append(0, "a", "e0", "user", "t0", 3)])
    step = context_step(first.state, Append(4, "a", "e0", "user", "other", 1))
    assert step == Step(ContextState(CFG, 4, first.state.agents),
                        (ContextRefusal("a", R.DUPLICATE_ENTRY, "entry_id 'e0' is already seq 0"),))


@pytest.mark.parametrize(("event", "reason", "detail"), [
    (Append(0, "", "e", "user", "t", 1), R.INVALID, "agent: must be non-empty"),
    (Append(0, "a", "", "user", "t", 1), R.INVALID, "entry_id: must be non-empty"),
    (Append(0, "a", "e", "user", "t", -1), R.INVALID, "tokens: must be >= 0, got -1"),
    (Hibernate(0, "zz"), R.UNKNOWN_AGENT, "agent 'zz' has no context"),
    (Recall(0, "a"), R.NOT_HIBERNATED, "recall refused while agent is resident"),
    (Recall(0, "a", "  "), R.INVALID, "query: must be None or non-blank"),
    (Archived(0, "a", 9), R.UNEXPECTED_COMPLETION, "request 9: archive request in flight is none"),
    (Persisted(0, "a"), R.UNEXPECTED_COMPLETION, "persisted refused while agent is resident"),
    (Summarized(0, "a", 0, Summary("s", 2, 1, "x", 1)), R.INVALID, "summary: first_seq 2 > last_seq 1"),
])
def test_refusals_name_what_was_wrong(event: ContextEvent, reason: ContextRefusalReason, detail: str) -> None:
    """Each refusal has its documented reason and a detail naming the field, and changes nothing."""
    first = run([Append(0, "a", "e0", "user", "t0", 3)])
    step = context_step(first.state, event)
    assert step == Step(first.state, (ContextRefusal(event.agent, reason, detail),))


def test_clock_going_backwards_is_refused() -> None:
    """An event older than the kernel's clock is refused with CLOCK_WENT_BACKWARDS."""
    first = run([Append(10, "a", "e0", "user", "t0", 3)])
    step = context_step(first.state, ContextTick(9))
    assert step == Step(first.state, (ContextRefusal("", R.CLOCK_WENT_BACKWARDS, "at_ms 9 < now_ms 10"),))


def _hibernated() -> tuple[ContextState, AgentContext]:
    first = run([Append(0, "a", "e0", "user", "t0", 3)])
    ctx = first.state.agents["a"].context
    assert ctx is not None
    state = hibernate(first.state, "a", 10).state
    return context_step(state, Persisted(11, "a")).state, ctx


def test_hibernate_persists_whole_context() -> None:
    """Hibernate emits PersistContext with the whole context; it stays until confirmed."""
    first = run([Append(0, "a", "e0", "user", "t0", 3)])
    ctx = AgentContext("a", next_seq=1, hot=(E(0),))
    step = hibernate(first.state, "a", 10)
    assert step == Step(state_of(10, a=AgentSlot(Phase.HIBERNATING, 0, ctx, None, ids(E(0)))),
                        (PersistContext("a", ctx),))


def test_persisted_leaves_a_stub() -> None:
    """Once storage confirms, only a stub stays in the state."""
    state, _ = _hibernated()
    assert state == state_of(11, a=AgentSlot(Phase.HIBERNATED, 0, None, Stub(1, 1, 0, 0, 0, 11)))


def test_persist_failed_returns_to_resident() -> None:
    """A failed persist leaves the agent resident with its context untouched."""
    first = run([Append(0, "a", "e0", "user", "t0", 3)])
    state = hibernate(first.state, "a", 10).state
    step = context_step(state, PersistFailed(12, "a", "disk full"))
    assert step == Step(ContextState(CFG, 12, first.state.agents), ())


def test_hibernate_of_hibernated_agent_is_refused() -> None:
    """Hibernating a hibernated agent is an ALREADY_HIBERNATED refusal."""
    state, _ = _hibernated()
    step = hibernate(state, "a", 20)
    assert step == Step(ContextState(CFG, 20, state.agents),
                        (ContextRefusal("a", R.ALREADY_HIBERNATED, "hibernate refused while agent is hibernated"),))


def test_recall_then_loaded_restores_equal_context() -> None:
    """Recall asks storage to load; Loaded with the persisted context restores it exactly."""
    state, ctx = _hibernated()
    step = recall(state, "a", 20)
    assert step == Step(state_of(20, a=AgentSlot(Phase.RECALLING, 0, None, Stub(1, 1, 0, 0, 0, 11))),
                        (LoadContext("a"),))
    step = context_step(step.state, Loaded(21, "a", ctx))
    assert step == Step(state_of(21, a=AgentSlot(Phase.RESIDENT, 21, ctx, None, ids(E(0)))), ())


def test_loaded_context_not_matching_stub_is_refused() -> None:
    """A loaded context whose counts differ from the stub is INVALID, naming the field."""
    state, ctx = _hibernated()
    state = recall(state, "a", 20).state
    step = context_step(state, Loaded(21, "a", AgentContext("a")))
    assert step == Step(ContextState(CFG, 21, state.agents), (ContextRefusal(
        "a", R.INVALID, "context.next_seq: stub has 1, loaded context has 0"),))


def test_load_failed_returns_to_hibernated() -> None:
    """A failed load leaves the agent hibernated, to be recalled again."""
    state, _ = _hibernated()
    step = context_step(recall(state, "a", 20).state, LoadFailed(22, "a"))
    assert step == Step(ContextState(CFG, 22, state.agents), ())


def test_query_recall_brings_back_archived_entries() -> None:
    """A query recall asks storage to search; the matching archived entries become visible."""
    first = run([*appends("a", [(3, False), (3, True), (3, False), (3, False)]), Archived(7, "a", 0)])
    step = recall(first.state, "a", 9, "t2")
    assert step.effects == (SearchArchive("a", 2, "t2", 2),)
    step = context_step(step.state, SearchFound(10, "a", 2, (E(2),)))
    before = first.state.agents["a"]
    assert before.context is not None
    ctx = AgentContext("a", next_seq=4, hot=(E(3),), warm_keys=(E(1, key=True),),
                       archived=((0, "e0"), (2, "e2")), pending_summaries=(SummaryRequest(1, 0, 2),),
                       recalled=(E(2),), next_request=3)
    assert step == Step(state_of(10, a=AgentSlot(Phase.RESIDENT, 9, ctx, None, before.ids)), ())
    assert visible_context(step.state, "a") == (E(1, key=True), E(2), E(3))


def test_short_window_shows_the_best_recalled_match_not_the_newest() -> None:
    """Recalled entries keep the search's relevance order, so a window with room for one shows the best match even when it is the oldest."""
    config = attrs.evolve(CFG, window_tokens=9)  # key e1 + hot e3 + one recalled entry
    first = run([*appends("a", [(3, False), (3, True), (3, False), (3, False)]), Archived(7, "a", 0)], config)
    step = recall(first.state, "a", 9, "t0")
    step = context_step(step.state, SearchFound(10, "a", 2, (E(0), E(2))))  # best match first
    before = first.state.agents["a"]
    ctx = AgentContext("a", next_seq=4, hot=(E(3),), warm_keys=(E(1, key=True),),
                       archived=((0, "e0"), (2, "e2")), pending_summaries=(SummaryRequest(1, 0, 2),),
                       recalled=(E(0), E(2)), next_request=3)
    assert step == Step(ContextState(config, 10, immutables.Map(a=AgentSlot(Phase.RESIDENT, 9, ctx, None, before.ids))))
    assert visible_context(step.state, "a") == (E(0), E(1, key=True), E(3))
    step = context_step(step.state, Recall(11, "a", "t2"))
    step = context_step(step.state, SearchFound(12, "a", 3, (E(2), E(0))))
    assert visible_context(step.state, "a") == (E(1, key=True), E(2), E(3))


def test_search_result_that_is_not_archived_is_refused() -> None:
    """Search results must be archived entries of the agent; anything else is INVALID."""
    first = run([*appends("a", [(3, False), (3, False), (3, False), (3, False)]), Archived(7, "a", 0)])
    state = recall(first.state, "a", 9, "x").state
    step = context_step(state, SearchFound(10, "a", 2, (E(3),)))
    assert step == Step(ContextState(CFG, 10, state.agents),
                        (ContextRefusal("a", R.INVALID, "entries[0]: (3, 'e3') is not an archived entry of 'a'"),))


def test_tick_hibernates_idle_agents_by_id() -> None:
    """A tick hibernates every resident agent idle for idle_ms_hibernate, in agent-id order."""
    first = run([Append(0, "b", "e0", "user", "t0", 3), Append(500, "a", "e0", "user", "t0", 3),
                 Append(900, "c", "e0", "user", "t0", 3)])
    step = context_step(first.state, ContextTick(1_500))
    ctx = AgentContext("a", next_seq=1, hot=(E(0),))
    assert step.effects == (PersistContext("a", ctx), PersistContext("b", as_agent(ctx, "b")))
    assert step.state == state_of(1_500,
                                  a=AgentSlot(Phase.HIBERNATING, 500, ctx, None, ids(E(0))),
                                  b=AgentSlot(Phase.HIBERNATING, 0, as_agent(ctx, "b"), None, ids(E(0))),
                                  c=AgentSlot(Phase.RESIDENT, 900, as_agent(ctx, "c"), None, ids(E(0))))


def test_next_hibernate_ms_is_the_earliest_idle_deadline() -> None:
    """next_hibernate_ms is the earliest last activity plus idle_ms_hibernate, and the
    tick at that instant hibernates exactly that agent."""
    first = run([Append(0, "b", "e0", "user", "t0", 3), Append(500, "a", "e0", "user", "t0", 3)])
    assert next_hibernate_ms(first.state) == 1_000
    assert [type(e).__name__ for e in context_step(first.state, ContextTick(999)).effects] == []
    assert context_step(first.state, ContextTick(1_000)).effects == (
        PersistContext("b", AgentContext("b", next_seq=1, hot=(E(0),))),)
    assert next_hibernate_ms(ContextState.initial(CFG)) is None


def as_agent(ctx: AgentContext, agent: str) -> AgentContext:
    """``ctx`` as another agent's context."""
    return AgentContext(agent, ctx.next_seq, ctx.hot)


def test_memory_pressure_hibernates_least_recently_active() -> None:
    """Above max_resident_agents a tick hibernates the least recently active agents, ties by id."""
    config = ContextConfig(hot_budget_tokens=10, hot_target_tokens=4, warm_budget_tokens=6, window_tokens=100,
                           idle_ms_hibernate=0, max_resident_agents=1)
    first = run([Append(5, "c", "e0", "user", "t0", 3), Append(5, "b", "e0", "user", "t0", 3),
                 Append(7, "a", "e0", "user", "t0", 3)], config)
    assert choose_victims(first.state) == ("b", "c")
    step = context_step(first.state, ContextTick(8))
    ctx = AgentContext("a", next_seq=1, hot=(E(0),))
    assert step.effects == (PersistContext("b", as_agent(ctx, "b")),
                            PersistContext("c", as_agent(ctx, "c")))
    assert step.state == ContextState(config, 8, immutables.Map(
        a=AgentSlot(Phase.RESIDENT, 7, ctx, None, ids(E(0))),
        b=AgentSlot(Phase.HIBERNATING, 5, as_agent(ctx, "b"), None, ids(E(0))),
        c=AgentSlot(Phase.HIBERNATING, 5, as_agent(ctx, "c"), None, ids(E(0)))))


def test_hibernate_during_archive_is_busy() -> None:
    """An agent with an archive request in flight cannot hibernate (BUSY) until it completes."""
    first = run(appends("a", [(6, False), (6, False)]))
    step = hibernate(first.state, "a", 1)
    assert step == Step(ContextState(CFG, 1, first.state.agents),
                        (ContextRefusal("a", R.BUSY, "archive request 0 is in flight"),))


def test_visible_context_respects_window_by_priority() -> None:
    """When everything does not fit, key entries then the newest hot entries are shown, in seq order."""
    config = ContextConfig(hot_budget_tokens=100, hot_target_tokens=50, warm_budget_tokens=6, window_tokens=7)
    step = run(appends("a", [(3, False), (3, True), (3, False), (3, False)]), config)
    assert visible_context(step.state, "a") == (E(1, key=True), E(3))


@pytest.mark.parametrize(("field", "kwargs"), [
    ("hot_budget_tokens", {"hot_budget_tokens": 0}),
    ("hot_target_tokens", {"hot_target_tokens": 9_000}),
    ("warm_budget_tokens", {"warm_budget_tokens": -1}),
    ("window_tokens", {"window_tokens": 0}),
    ("idle_ms_hibernate", {"idle_ms_hibernate": -5}),
    ("max_resident_agents", {"max_resident_agents": -1}),
    ("recall_limit", {"recall_limit": 0}),
])
def test_config_errors_name_the_field(field: str, kwargs: dict[str, int]) -> None:
    """Every invalid config value raises ConfigError whose message starts with the field name."""
    with pytest.raises(ConfigError, match=f"^{field}: "):
        ContextConfig(**kwargs)
