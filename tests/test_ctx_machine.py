"""Stateful test of the context kernel: random appends, compactions, completions
(in any order, including stale and failed ones), hibernations, recalls and ticks,
with every invariant of SPEC.md section 4 checked after every step."""

from __future__ import annotations

import attrs
import hypothesis
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from agentrm.kernel.context import (
    AgentContext,
    Append,
    ArchiveEntries,
    Archived,
    Compact,
    ContextConfig,
    ContextEffect,
    ContextEvent,
    ContextOverflow,
    ContextRefusal,
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
    Summarized,
    Summary,
    SummaryFailed,
    context_step,
)
from agentrm.kernel.common import Step
from agentrm.specs.context_invariants import (
    archive_only_on_confirmation,
    check_context,
    check_context_transition,
    recall_restores,
)

AGENTS = ("a", "b")


class ContextMachine(RuleBasedStateMachine):
    """The kernel plus a fake shell: storage that archives and persists, a summarizer,
    and a queue of effects not yet answered (answered in any order)."""

    def __init__(self) -> None:
        super().__init__()
        self.state = ContextState.initial(ContextConfig(
            hot_budget_tokens=10, hot_target_tokens=5, warm_budget_tokens=10, window_tokens=20,
            idle_ms_hibernate=60, max_resident_agents=1, recall_limit=3))
        self.outstanding: list[ContextEffect] = []
        self.archive: dict[str, dict[int, Entry]] = {a: {} for a in AGENTS}
        self.persisted: dict[str, AgentContext] = {}
        self.appended: dict[str, list[tuple[str, int, str]]] = {a: [] for a in AGENTS}
        self.counter = 0

    def _do(self, event: ContextEvent) -> tuple[ContextEffect, ...]:
        before = self.state
        step = context_step(before, event)
        problems = check_context_transition(before, event, step)
        assert not problems, "\n".join(map(str, problems))
        self.state = step.state
        refused = [e.reason.value for e in step.effects if isinstance(e, ContextRefusal)]
        # Coverage labels: `pytest --hypothesis-show-statistics` shows which outcomes were reached.
        hypothesis.event(f"{type(event).__name__}: {refused[0] if refused else 'accepted'}")
        for kind in sorted({type(e).__name__ for e in step.effects if not isinstance(e, ContextRefusal)}):
            hypothesis.event(f"{type(event).__name__} -> {kind}")
        for effect in step.effects:
            if isinstance(effect, ArchiveEntries):
                # Storage writes first, then confirms (the kernel's precondition for moving on).
                for e in effect.entries:
                    self.archive[effect.agent][e.seq] = e
            if isinstance(effect, PersistContext):
                self.persisted[effect.agent] = effect.context
            if not isinstance(effect, (ContextRefusal, ContextOverflow)):
                self.outstanding.append(effect)
        return step.effects

    def _now(self, advance: int) -> int:
        return self.state.now_ms + advance

    @rule(agent=st.sampled_from(AGENTS), dt=st.integers(0, 20),
          entries=st.lists(st.tuples(st.integers(0, 7), st.booleans()), min_size=1, max_size=4))
    def append(self, agent: str, dt: int, entries: list[tuple[int, bool]]) -> None:
        """Append a few fresh entries (refused unless the agent is resident)."""
        for tokens, key in entries:
            self.counter += 1
            eid = f"e{self.counter}"
            slot = self.state.agents.get(agent)
            effects = self._do(Append(self._now(dt), agent, eid, "user", f"text of {eid}", tokens, key))
            if not any(isinstance(e, ContextRefusal) for e in effects):
                assert slot is None or slot.phase is Phase.RESIDENT
                self.appended[agent].append((eid, len(self.appended[agent]), f"text of {eid}"))

    @rule(agent=st.sampled_from(AGENTS))
    def append_duplicate(self, agent: str) -> None:
        """Re-appending an existing id is refused and changes nothing (C10 checks that)."""
        if self.appended[agent]:
            eid = self.appended[agent][0][0]
            effects = self._do(Append(self.state.now_ms, agent, eid, "user", "again", 1))
            assert len(effects) == 1 and isinstance(effects[0], ContextRefusal)

    @rule(agent=st.sampled_from(AGENTS))
    def compact(self, agent: str) -> None:
        """Ask for a compaction."""
        self._do(Compact(self.state.now_ms, agent))

    @rule(agent=st.sampled_from(AGENTS))
    def hibernate(self, agent: str) -> None:
        """Ask for a hibernation."""
        self._do(Hibernate(self.state.now_ms, agent))

    @rule(agent=st.sampled_from(AGENTS), query=st.sampled_from([None, "text"]))
    def recall(self, agent: str, query: str | None) -> None:
        """Recall a hibernated agent, or query a resident agent's archive."""
        self._do(Recall(self.state.now_ms, agent, query))

    @rule(dt=st.integers(0, 40))
    def tick(self, dt: int) -> None:
        """Let time pass: idle agents and pressure victims get hibernated."""
        self._do(ContextTick(self._now(dt)))

    @precondition(lambda self: bool(self.outstanding))
    @rule(pick=st.integers(0, 1_000), ok=st.booleans(), summary_tokens=st.integers(0, 5))
    def complete(self, pick: int, ok: bool, summary_tokens: int) -> None:
        """Answer one outstanding effect (any of them, so completions arrive out of order);
        summaries, persists and loads fail when ``ok`` is false."""
        effect = self.outstanding.pop(pick % len(self.outstanding))
        now = self.state.now_ms
        match effect:
            case ArchiveEntries():
                self._do(Archived(now, effect.agent, effect.request))
            case RequestSummary():
                if not ok:
                    self._do(SummaryFailed(now, effect.agent, effect.request, "model down"))
                    return
                summary = Summary(f"s{effect.request}", effect.first_seq, effect.last_seq, "summary", summary_tokens)
                self._do(Summarized(now, effect.agent, effect.request, summary))
            case PersistContext():
                self._do(Persisted(now, effect.agent) if ok else PersistFailed(now, effect.agent, "disk full"))
            case LoadContext():
                if not ok:
                    self._do(LoadFailed(now, effect.agent, "gone"))
                    return
                self._load(effect.agent)
            case SearchArchive():
                found = tuple(self.archive[effect.agent][s] for s in sorted(self.archive[effect.agent]))
                # Relevance order is the store's business: newest first or oldest first.
                best = found[-effect.limit:] if ok else found[:effect.limit]
                self._do(SearchFound(now, effect.agent, effect.request, best if pick % 2 else best[::-1]))
            case _:
                raise AssertionError(f"unexpected outstanding effect {effect}")

    @precondition(lambda self: any(isinstance(e, LoadContext) for e in self.outstanding))
    @rule()
    def finish_recall(self) -> None:
        """Storage returns the oldest requested context (recall is otherwise rare: it
        needs a hibernate, a persist, a recall and a load to line up)."""
        effect = next(e for e in self.outstanding if isinstance(e, LoadContext))
        self.outstanding.remove(effect)
        self._load(effect.agent)

    def _load(self, agent: str) -> None:
        """Answer a load with the context persisted last, and check C12: the agent gets
        exactly that context back (plus the search request, for a query recall)."""
        persisted = self.persisted[agent]
        effects = self._do(Loaded(self.state.now_ms, agent, persisted))
        assert not any(isinstance(e, ContextRefusal) for e in effects), effects
        expected = persisted
        for e in effects:
            if isinstance(e, SearchArchive):
                expected = attrs.evolve(persisted, pending_search=e.request, next_request=e.request + 1)
        problems = recall_restores(expected, self.state, agent)
        assert not problems, problems

    @rule(agent=st.sampled_from(AGENTS), request=st.integers(0, 30))
    def stale_completion(self, agent: str, request: int) -> None:
        """A completion nobody asked for is refused (or, if it happens to match a request
        in flight, accepted exactly like the real one would be)."""
        now = self.state.now_ms
        self._do(Archived(now, agent, request))
        self._do(Persisted(now, agent))

    @invariant()
    def invariants_hold(self) -> None:
        """Every state invariant C1-C9."""
        problems = check_context(self.state)
        assert not problems, "\n".join(map(str, problems))

    @invariant()
    def every_entry_recoverable(self) -> None:
        """Every entry ever appended is readable verbatim: in hot or warm, or in the
        archive the kernel confirmed (for a hibernated agent: in its persisted context)."""
        for agent in AGENTS:
            slot = self.state.agents.get(agent)
            if slot is None:
                assert not self.appended[agent]
                continue
            ctx = slot.context if slot.context is not None else self.persisted[agent]
            verbatim = {e.seq: e for e in (*ctx.hot, *ctx.warm_keys)}
            for eid, seq, text in self.appended[agent]:
                entry = verbatim.get(seq)
                if entry is None:
                    assert (seq, eid) in ctx.archived, (agent, seq, eid)
                    entry = self.archive[agent][seq]
                assert (entry.entry_id, entry.text) == (eid, text), (agent, seq)


ContextMachine.TestCase.settings = settings(ContextMachine.TestCase.settings, stateful_step_count=60, max_examples=150)
TestContextMachine = ContextMachine.TestCase


def test_machine_catches_a_lost_entry() -> None:
    """The C1 check the machine relies on fails when an entry vanishes from every tier."""
    state = ContextState.initial(ContextConfig())
    state = context_step(state, Append(0, "a", "e0", "user", "x", 1)).state
    slot = state.agents["a"]
    assert slot.context is not None
    broken = attrs.evolve(state, agents=state.agents.set("a", attrs.evolve(slot, context=attrs.evolve(slot.context, hot=()))))
    assert [v.invariant for v in check_context(broken)] == ["C1", "C1"]


def test_c14_flags_archiving_without_confirmation() -> None:
    """C14 fails when an entry reaches the archive on anything but its confirmation."""
    state = ContextState.initial(ContextConfig())
    state = context_step(state, Append(0, "a", "e0", "user", "x", 1)).state
    slot = state.agents["a"]
    assert slot.context is not None
    moved = attrs.evolve(slot.context, hot=(), archived=((0, "e0"),))
    after = attrs.evolve(state, agents=state.agents.set("a", attrs.evolve(slot, context=moved)))
    problems = archive_only_on_confirmation(state, Compact(0, "a"), Step(after))
    assert problems == ("a: [(0, 'e0')] entered the archive on Compact, not on the confirmation of the request that sent them",)
