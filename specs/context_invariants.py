"""The context invariants C1..C14 of SPEC.md section 4, as importable predicates.

State invariants take a :class:`~agentrm.kernel.context.state.ContextState`;
transition invariants take ``(before, event, step)`` where ``step`` is what
``context_step(before, event)`` returned. Each returns the problems it found as a
tuple of messages (empty: it holds), naming the agent, seq or request that is wrong.

Entry points:

* :func:`check_context` -- every state invariant, as :class:`Violation` values;
* :func:`check_context_transition` -- the state invariants on ``step.state`` plus
  every transition invariant;
* :func:`recall_restores` -- C12, hibernate followed by recall restores an equal
  context (it needs the context that was persisted, which the state no longer holds).

Agents are visited in agent-id order, entries in seq order: never hash order.
"""

from __future__ import annotations

from typing import Callable, assert_never

import attrs

from agentrm.kernel.common import Step
from agentrm.kernel.context.budget import overflow_tokens
from agentrm.kernel.context.effects import ContextEffect, ContextRefusal, ContextRefusalReason
from agentrm.kernel.context.events import (
    Append,
    Archived,
    Compact,
    ContextEvent,
    ContextTick,
    Hibernate,
    Loaded,
    LoadFailed,
    Persisted,
    PersistFailed,
    Recall,
    SearchFound,
    Summarized,
    SummaryFailed,
)
from agentrm.kernel.context.lifecycle import InputKind, outcome
from agentrm.kernel.context.state import AgentContext, AgentSlot, ContextState, Phase
from agentrm.kernel.context.transitions import visible_context
from agentrm.kernel.context.types import Summary

from .violation import Violation, collect

ContextStepResult = Step[ContextState, ContextEffect]
"""What the context reducer returns."""

StatePredicate = Callable[[ContextState], tuple[str, ...]]
"""A state invariant: the problems it finds in a state (empty: it holds)."""
TransitionPredicate = Callable[[ContextState, ContextEvent, ContextStepResult], tuple[str, ...]]
"""A transition invariant over ``(before, event, step)``."""


def _contexts(state: ContextState) -> tuple[tuple[str, AgentSlot, AgentContext], ...]:
    """Every agent whose context is in the state, by agent id."""
    return tuple((a, state.agents[a], c) for a in sorted(state.agents)
                 if (c := state.agents[a].context) is not None)


# ---------------------------------------------------------------------------
# State invariants
# ---------------------------------------------------------------------------


def no_entry_lost(state: ContextState) -> tuple[str, ...]:
    """C1: every seq ever appended (``0 .. next_seq-1``) is in exactly one of hot, warm
    (as a key entry) or the archive, and the id index names exactly those entries."""
    out: list[str] = []
    for agent, slot, ctx in _contexts(state):
        where: dict[int, list[str]] = {}
        for tier, pairs in (("hot", [(e.seq, e.entry_id) for e in ctx.hot]),
                            ("warm", [(e.seq, e.entry_id) for e in ctx.warm_keys]),
                            ("archive", list(ctx.archived))):
            for seq, _ in pairs:
                where.setdefault(seq, []).append(tier)
        for seq in range(ctx.next_seq):
            tiers = where.get(seq, [])
            if len(tiers) != 1:
                out.append(f"{agent}: seq {seq} is in {tiers or 'no tier'}, expected exactly one")
        extra = sorted(s for s in where if not 0 <= s < ctx.next_seq)
        if extra:
            out.append(f"{agent}: seqs {extra} were never appended (next_seq {ctx.next_seq})")
        pairs_all = sorted([(e.seq, e.entry_id) for e in (*ctx.hot, *ctx.warm_keys)] + list(ctx.archived))
        indexed = sorted((seq, eid) for eid, seq in slot.ids.items())
        if pairs_all != indexed:
            out.append(f"{agent}: id index {indexed[:5]}... differs from the tiers' entries {pairs_all[:5]}...")
    return tuple(out)


def summaries_cover_archived(state: ContextState) -> tuple[str, ...]:
    """C2: every summary (and every pending summary request) stands only for archived
    entries: its first and last seq are archived, and every seq between is archived or
    a warm key entry; summaries are in seq order and do not overlap."""
    out: list[str] = []
    for agent, _, ctx in _contexts(state):
        archived = {seq for seq, _ in ctx.archived}
        keys = {e.seq for e in ctx.warm_keys}
        ranges = [(s.first_seq, s.last_seq, f"summary {s.summary_id!r}") for s in ctx.summaries]
        ranges += [(r.first_seq, r.last_seq, f"pending summary {r.request}") for r in ctx.pending_summaries]
        for first, last, name in ranges:
            if first not in archived or last not in archived:
                out.append(f"{agent}: {name} {first}..{last} does not start and end at archived entries")
            stray = [s for s in range(first, last + 1) if s not in archived and s not in keys]
            if stray:
                out.append(f"{agent}: {name} {first}..{last} covers unarchived seqs {stray[:5]}")
        for a, b in zip(ctx.summaries, ctx.summaries[1:]):
            if a.last_seq >= b.first_seq:
                out.append(f"{agent}: summaries {a.summary_id!r} and {b.summary_id!r} overlap or are out of order")
    return tuple(out)


def key_entries_verbatim(state: ContextState) -> tuple[str, ...]:
    """C3: a key entry is never replaced by a summary: every warm entry is marked key
    (so, with C1, a key entry that left hot is in warm verbatim, never in the archive),
    and no summary request asks to summarize a key entry."""
    out: list[str] = []
    for agent, _, ctx in _contexts(state):
        unmarked = [e.seq for e in ctx.warm_keys if not e.key]
        if unmarked:
            out.append(f"{agent}: warm holds unmarked entries {unmarked[:5]}")
        if ctx.compaction is not None:
            sent = tuple(e.entry_id for e in ctx.hot[:ctx.compaction.count] if not e.key)
            if sent != ctx.compaction.entry_ids:
                out.append(f"{agent}: archive request {ctx.compaction.request} covers {ctx.compaction.entry_ids[:5]}, "
                           f"not the unmarked hot prefix {sent[:5]}")
    return tuple(out)


def hot_within_budget(state: ContextState) -> tuple[str, ...]:
    """C4: once no archive is in flight, the hot tier is within ``hot_budget_tokens``."""
    budget = state.config.hot_budget_tokens
    return tuple(f"{agent}: hot holds {ctx.hot_tokens} tokens > hot_budget_tokens {budget}, no compaction in flight"
                 for agent, _, ctx in _contexts(state)
                 if ctx.compaction is None and ctx.hot_tokens > budget)


def warm_within_budget_or_overflow(state: ContextState) -> tuple[str, ...]:
    """C5: warm is within ``warm_budget_tokens``, or key entries alone exceed it, in
    which case there are no summaries and the overflow is recorded exactly."""
    out: list[str] = []
    budget = state.config.warm_budget_tokens
    for agent, _, ctx in _contexts(state):
        expected = overflow_tokens(ctx.key_tokens, budget)
        if ctx.overflow_tokens != expected:
            out.append(f"{agent}: overflow_tokens {ctx.overflow_tokens}, key entries give {expected}")
        if ctx.warm_tokens > budget and (expected == 0 or ctx.summaries):
            out.append(f"{agent}: warm holds {ctx.warm_tokens} tokens > warm_budget_tokens {budget} "
                       f"with {len(ctx.summaries)} summaries and overflow {expected}")
    return tuple(out)


def order_kept(state: ContextState) -> tuple[str, ...]:
    """C6: entries keep their append order across tiers: hot is the gapless newest
    suffix of seqs, warm key entries and the archive are in increasing seq order,
    everything that left hot is older than everything in it, and recalled entries
    (kept in the search's relevance order) are distinct."""
    out: list[str] = []
    for agent, _, ctx in _contexts(state):
        hot = [e.seq for e in ctx.hot]
        if hot != list(range(ctx.next_seq - len(hot), ctx.next_seq)):
            out.append(f"{agent}: hot seqs {hot[:5]}... are not the newest gapless suffix before {ctx.next_seq}")
        recalled = [e.seq for e in ctx.recalled]
        if len(set(recalled)) != len(recalled):
            out.append(f"{agent}: recalled seqs {recalled[:8]} repeat an entry")
        for tier, seqs in (("warm", [e.seq for e in ctx.warm_keys]), ("archive", [s for s, _ in ctx.archived])):
            if any(a >= b for a, b in zip(seqs, seqs[1:])):
                out.append(f"{agent}: {tier} seqs are not strictly increasing")
            if hot and seqs and seqs[-1] >= hot[0]:
                out.append(f"{agent}: {tier} seq {seqs[-1]} is not older than the oldest hot seq {hot[0]}")
    return tuple(out)


def requests_consistent(state: ContextState) -> tuple[str, ...]:
    """C7: requests in flight are numbered below ``next_request`` and distinct; an archive
    request covers a hot prefix; recalled entries are archived entries."""
    out: list[str] = []
    for agent, _, ctx in _contexts(state):
        numbers = [r.request for r in ctx.pending_summaries]
        if ctx.compaction is not None:
            numbers.append(ctx.compaction.request)
            if not 1 <= ctx.compaction.count <= len(ctx.hot):
                out.append(f"{agent}: archive request covers {ctx.compaction.count} of {len(ctx.hot)} hot entries")
        if ctx.pending_search is not None:
            numbers.append(ctx.pending_search)
        if len(set(numbers)) != len(numbers) or any(not 0 <= n < ctx.next_request for n in numbers):
            out.append(f"{agent}: requests in flight {sorted(numbers)} not distinct or not below {ctx.next_request}")
        archived = set(ctx.archived)
        stray = [e.seq for e in ctx.recalled if (e.seq, e.entry_id) not in archived]
        if stray:
            out.append(f"{agent}: recalled seqs {stray[:5]} are not archived entries")
    return tuple(out)


def phase_shape(state: ContextState) -> tuple[str, ...]:
    """C8: resident and hibernating agents hold their context and no stub; hibernated
    and recalling agents hold only a stub; a context belongs to its agent."""
    out: list[str] = []
    for agent in sorted(state.agents):
        slot = state.agents[agent]
        holds = slot.phase in (Phase.RESIDENT, Phase.HIBERNATING)
        if holds and (slot.context is None or slot.stub is not None):
            out.append(f"{agent}: {slot.phase.value} needs a context and no stub")
        if not holds and (slot.context is not None or slot.stub is None or len(slot.ids) != 0):
            out.append(f"{agent}: {slot.phase.value} needs a stub only")
        if slot.context is not None and slot.context.agent != agent:
            out.append(f"{agent}: holds the context of {slot.context.agent!r}")
        if slot.last_active_ms > state.now_ms:
            out.append(f"{agent}: last_active_ms {slot.last_active_ms} is after now_ms {state.now_ms}")
    return tuple(out)


def visible_within_window(state: ContextState) -> tuple[str, ...]:
    """C9: the visible context fits ``window_tokens``, is in seq order, and is complete
    (every key entry, summary, recalled and hot entry) whenever all of it fits."""
    out: list[str] = []
    window = state.config.window_tokens
    for agent, _, ctx in _contexts(state):
        seen = visible_context(state, agent)
        used = sum(i.tokens for i in seen)
        if used > window:
            out.append(f"{agent}: visible context holds {used} tokens > window_tokens {window}")
        pos = [(i.first_seq, 0) if isinstance(i, Summary) else (i.seq, 1) for i in seen]
        if pos != sorted(pos):
            out.append(f"{agent}: visible context is not in seq order")
        everything = len(ctx.warm_keys) + len(ctx.summaries) + len(ctx.recalled) + len(ctx.hot)
        total = ctx.warm_tokens + sum(e.tokens for e in (*ctx.recalled, *ctx.hot))
        if total <= window and len(seen) != everything:
            out.append(f"{agent}: everything fits ({total} tokens) but only {len(seen)} of {everything} items are visible")
    return tuple(out)


STATE_INVARIANTS: tuple[tuple[str, StatePredicate], ...] = (
    ("C1", no_entry_lost),
    ("C2", summaries_cover_archived),
    ("C3", key_entries_verbatim),
    ("C4", hot_within_budget),
    ("C5", warm_within_budget_or_overflow),
    ("C6", order_kept),
    ("C7", requests_consistent),
    ("C8", phase_shape),
    ("C9", visible_within_window),
)
"""Every context state invariant, by SPEC.md id, in id order."""


# ---------------------------------------------------------------------------
# Transition invariants
# ---------------------------------------------------------------------------


def _refusal(step: ContextStepResult) -> ContextRefusal | None:
    for e in step.effects:
        if isinstance(e, ContextRefusal):
            return e
    return None


def refusal_changes_nothing(before: ContextState, event: ContextEvent, step: ContextStepResult) -> tuple[str, ...]:
    """C10: a refused event leaves the state as it was, except that the clock moved to
    ``at_ms`` (time passing is a fact), and the refusal is its only effect."""
    refusal = _refusal(step)
    if refusal is None:
        return ()
    expected = attrs.evolve(before, now_ms=max(before.now_ms, event.at_ms))
    out: list[str] = []
    if step.state != expected:
        out.append(f"refused {type(event).__name__} ({refusal.reason.value}) changed the state")
    if len(step.effects) != 1:
        out.append(f"refused {type(event).__name__} has other effects: {step.effects}")
    return tuple(out)


def entries_survive(before: ContextState, event: ContextEvent, step: ContextStepResult) -> tuple[str, ...]:
    """C11: no transition loses an entry: every (seq, id) of an agent's context before is
    still there after, and a hibernated agent's stub keeps its ``next_seq``."""
    out: list[str] = []
    after = step.state
    for agent in sorted(before.agents):
        b = before.agents[agent]
        a = after.agents.get(agent)
        if a is None:
            out.append(f"{agent}: disappeared")
            continue
        n_before = b.context.next_seq if b.context is not None else (b.stub.next_seq if b.stub else -1)
        n_after = a.context.next_seq if a.context is not None else (a.stub.next_seq if a.stub else -1)
        if n_after < n_before:
            out.append(f"{agent}: next_seq went from {n_before} to {n_after}")
        if b.context is not None and a.context is not None:
            lost = [(s, i) for i, s in sorted(b.ids.items(), key=lambda kv: kv[1]) if a.ids.get(i) != s]
            if lost:
                out.append(f"{agent}: entries {lost[:5]} were lost")
    return tuple(out)


def _kind(event: ContextEvent) -> InputKind | None:
    match event:
        case Append():
            return InputKind.APPEND
        case Compact():
            return InputKind.COMPACT
        case Hibernate():
            return InputKind.HIBERNATE
        case Recall():
            return InputKind.RECALL if event.query is None else InputKind.RECALL_QUERY
        case Archived():
            return InputKind.ARCHIVED
        case Summarized():
            return InputKind.SUMMARIZED
        case SummaryFailed():
            return InputKind.SUMMARY_FAILED
        case SearchFound():
            return InputKind.SEARCH_FOUND
        case Persisted():
            return InputKind.PERSISTED
        case PersistFailed():
            return InputKind.PERSIST_FAILED
        case Loaded():
            return InputKind.LOADED
        case LoadFailed():
            return InputKind.LOAD_FAILED
        case ContextTick():
            return None
        case _:
            assert_never(event)


def phase_refusals_defined(before: ContextState, event: ContextEvent, step: ContextStepResult) -> tuple[str, ...]:
    """C13: an event the phase table refuses for the agent's phase (e.g. recall of a
    resident agent, hibernate of a hibernated one) is refused with the table's reason
    (or an earlier one by precedence: the clock or an invalid field), and an event the
    table accepts moves the agent to the table's phase unless refused for a later reason."""
    kind = _kind(event)
    if kind is None or isinstance(event, ContextTick):
        return ()
    slot = before.agents.get(event.agent)
    if slot is None:
        return ()
    expected = outcome(kind, slot.phase)
    refusal = _refusal(step)
    earlier = (ContextRefusalReason.CLOCK_WENT_BACKWARDS, ContextRefusalReason.INVALID)
    if isinstance(expected, ContextRefusalReason):
        if refusal is None or (refusal.reason is not expected and refusal.reason not in earlier):
            got = "acceptance" if refusal is None else refusal.reason.value
            return (f"{kind.value} of a {slot.phase.value} agent gave {got}, the table says {expected.value}",)
        return ()
    if refusal is None:
        phase = step.state.agents[event.agent].phase
        if phase is not expected:
            return (f"{kind.value} moved a {slot.phase.value} agent to {phase.value}, the table says {expected.value}",)
    return ()


def archive_only_on_confirmation(before: ContextState, event: ContextEvent,
                                 step: ContextStepResult) -> tuple[str, ...]:
    """C14: an entry joins an agent's archive only on the ``Archived`` that confirms the
    request which sent it, and exactly the entries that request sent join."""
    out: list[str] = []
    for agent in sorted(step.state.agents):
        b, a = before.agents.get(agent), step.state.agents[agent]
        if b is None or b.context is None or a.context is None:
            continue  # a new agent has no archive; a loaded context is C12's business
        known = set(b.context.archived)
        new = [pair for pair in a.context.archived if pair not in known]
        if not new:
            continue
        request = b.context.compaction
        confirmed = (isinstance(event, Archived) and event.agent == agent and request is not None
                     and event.request == request.request
                     and tuple(i for _, i in new) == request.entry_ids)
        if not confirmed:
            out.append(f"{agent}: {new[:5]} entered the archive on {type(event).__name__}, "
                       "not on the confirmation of the request that sent them")
    return tuple(out)


TRANSITION_INVARIANTS: tuple[tuple[str, TransitionPredicate], ...] = (
    ("C10", refusal_changes_nothing),
    ("C11", entries_survive),
    ("C13", phase_refusals_defined),
    ("C14", archive_only_on_confirmation),
)
"""Every context transition invariant, by SPEC.md id, in id order."""


def recall_restores(persisted: AgentContext, state: ContextState, agent: str) -> tuple[str, ...]:
    """C12: after hibernate then recall, ``agent``'s context equals the one persisted
    (``PersistContext.context``), field for field."""
    slot = state.agents.get(agent)
    if slot is None or slot.context is None:
        return (f"{agent}: not resident after recall",)
    if slot.context != persisted:
        diff = [f.name for f in attrs.fields(AgentContext) if getattr(slot.context, f.name) != getattr(persisted, f.name)]
        return (f"{agent}: recalled context differs from the persisted one in {diff}",)
    return ()


def check_context(state: ContextState) -> tuple[Violation, ...]:
    """Every context state invariant (C1-C9) on ``state``; empty when all hold."""
    return collect(STATE_INVARIANTS, state)


def check_context_transition(before: ContextState, event: ContextEvent,
                             step: ContextStepResult) -> tuple[Violation, ...]:
    """The state invariants on ``step.state`` and every transition invariant (C10, C11, C13, C14)."""
    return check_context(step.state) + collect(TRANSITION_INVARIANTS, before, event, step)
