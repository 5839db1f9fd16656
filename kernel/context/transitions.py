"""The context kernel's transitions: one reducer, public verbs, and pure queries.

``context_step(state, event)`` handles one event (SPEC.md section 3):

1. **Clock.** ``at_ms < now_ms`` is refused with ``CLOCK_WENT_BACKWARDS``;
   otherwise ``now_ms := at_ms`` (kept even if the event is then refused).
2. **Checks**, in the documented precedence: field-local ``INVALID``,
   ``UNKNOWN_AGENT``, the phase table (``lifecycle.PHASE_TABLE``), ``BUSY``,
   ``DUPLICATE_ENTRY``, ``UNEXPECTED_COMPLETION``, then ``INVALID`` for contents that
   contradict the state.
3. **The event**, whose effects come out in a fixed order.

Compaction never destroys: an entry leaves hot only when storage has confirmed it
archived (``Archived``); key entries go to warm verbatim and are never summarized.
"""

from __future__ import annotations

import bisect
from typing import assert_never

import attrs
import immutables

from ..common import Step
from .budget import evict_count, fit_prefix, overflow_tokens, summaries_to_drop, victims
from .config import ContextConfig
from .effects import (
    ArchiveEntries,
    ContextEffect,
    ContextOverflow,
    ContextRefusal,
    ContextRefusalReason,
    LoadContext,
    PersistContext,
    RequestSummary,
    SearchArchive,
)
from .events import (
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
from .lifecycle import InputKind, outcome
from .state import AgentContext, AgentSlot, Compaction, ContextState, Phase, Stub, SummaryRequest
from .types import Entry, Summary

ContextStep = Step[ContextState, ContextEffect]
"""What every context transition returns."""

_Effects = tuple[ContextEffect, ...]
_R = ContextRefusalReason


# ---------------------------------------------------------------------------
# The reducer
# ---------------------------------------------------------------------------


def context_step(state: ContextState, event: ContextEvent) -> ContextStep:
    """Apply one event to ``state``: the single entry point, so a log replays as a fold."""
    if event.at_ms < state.now_ms:
        agent = "" if isinstance(event, ContextTick) else event.agent
        return _refuse(state, agent, _R.CLOCK_WENT_BACKWARDS, f"at_ms {event.at_ms} < now_ms {state.now_ms}")
    if event.at_ms != state.now_ms:
        state = ContextState(state.config, event.at_ms, state.agents)
    match event:
        case Append():
            return _append(state, event)
        case Compact():
            return _compact(state, event)
        case Hibernate():
            return _hibernate(state, event)
        case Recall():
            return _recall(state, event)
        case ContextTick():
            return _tick(state)
        case Archived():
            return _archived(state, event)
        case Summarized():
            return _summarized(state, event)
        case SummaryFailed():
            return _summary_failed(state, event)
        case Persisted():
            return _persisted(state, event)
        case PersistFailed():
            return _persist_failed(state, event)
        case Loaded():
            return _loaded(state, event)
        case LoadFailed():
            return _load_failed(state, event)
        case SearchFound():
            return _search_found(state, event)
        case _:
            assert_never(event)


# ---------------------------------------------------------------------------
# Public verbs (each is one event through the reducer)
# ---------------------------------------------------------------------------


def append(state: ContextState, agent: str, entry_id: str, role: str, text: str, tokens: int,
           now_ms: int, *, key: bool = False) -> ContextStep:
    """Append one entry to ``agent``'s hot tier; compaction starts if hot is over budget."""
    return context_step(state, Append(now_ms, agent, entry_id, role, text, tokens, key))


def compact(state: ContextState, agent: str, now_ms: int) -> ContextStep:
    """Start compacting ``agent``'s hot tier down to ``hot_target_tokens`` (no-op if within)."""
    return context_step(state, Compact(now_ms, agent))


def hibernate(state: ContextState, agent: str, now_ms: int) -> ContextStep:
    """Persist ``agent``'s whole context; once ``Persisted``, only a stub stays."""
    return context_step(state, Hibernate(now_ms, agent))


def recall(state: ContextState, agent: str, now_ms: int, query: str | None = None) -> ContextStep:
    """Load a hibernated ``agent`` back; with a ``query``, also search its archive for
    matching entries (after the load if it was hibernated)."""
    return context_step(state, Recall(now_ms, agent, query))


def context_tick(state: ContextState, now_ms: int) -> ContextStep:
    """Hibernate idle agents, then least-recently-active ones above the resident limit."""
    return context_step(state, ContextTick(now_ms))


# ---------------------------------------------------------------------------
# Pure queries
# ---------------------------------------------------------------------------


VisibleItem = Entry | Summary
"""One item of the visible context: an entry verbatim or a summary."""


def visible_context(state: ContextState, agent: str) -> tuple[VisibleItem, ...]:
    """What ``agent`` sees now: key entries, summaries, recalled and hot entries, in seq order.

    If everything does not fit in ``window_tokens``, items are chosen by priority --
    key entries (warm or hot), then the other hot entries, then recalled entries (best
    match first, the search's order), then summaries (newest first; entries too) -- up
    to the first that does not fit
    (``budget.fit_prefix``), and shown in seq order (a summary sits at its
    ``first_seq``). Empty for an unknown or hibernated agent.
    """
    slot = state.agents.get(agent)
    if slot is None or slot.context is None:
        return ()
    ctx = slot.context
    hot_keys = tuple(e for e in ctx.hot if e.key)
    hot_rest = tuple(e for e in ctx.hot if not e.key)
    ranked: tuple[VisibleItem, ...] = (
        *reversed((*ctx.warm_keys, *hot_keys)), *reversed(hot_rest), *ctx.recalled,
        *reversed(ctx.summaries))
    k = fit_prefix(tuple(item.tokens for item in ranked), state.config.window_tokens)
    return tuple(sorted(ranked[:k], key=_position))


def _position(item: VisibleItem) -> tuple[int, int]:
    # A summary sorts before an entry with the same seq: it stands for what came first.
    if isinstance(item, Summary):
        return (item.first_seq, 0)
    return (item.seq, 1)


def next_hibernate_ms(state: ContextState) -> int | None:
    """When the next ``ContextTick`` would hibernate an idle agent (None: never, as things stand).

    The earliest ``last_active_ms + idle_ms_hibernate`` over resident agents with no
    archive in flight; the shell may sleep until then. An agent with an archive in
    flight gets its deadline once the archive completes.
    """
    limit = state.config.idle_ms_hibernate
    deadlines = [state.agents[a].last_active_ms + limit for a in _hibernatable(state)] if limit else []
    return min(deadlines) if deadlines else None


def idle_agents(state: ContextState) -> tuple[str, ...]:
    """Resident agents idle for at least ``idle_ms_hibernate``, by agent id."""
    limit = state.config.idle_ms_hibernate
    if limit == 0:
        return ()
    return tuple(a for a in _hibernatable(state) if state.now_ms - state.agents[a].last_active_ms >= limit)


def choose_victims(state: ContextState) -> tuple[str, ...]:
    """The agents to hibernate under memory pressure, in order: least recently active
    first, ties by agent id, as many as the resident count exceeds the limit.

    Resident and recalling agents count as resident; only resident agents with no
    archive in flight can be chosen.
    """
    cap = state.config.max_resident_agents
    if cap == 0:
        return ()
    resident = sum(1 for a in state.agents.values() if a.phase in (Phase.RESIDENT, Phase.RECALLING))
    excess = resident - cap
    if excess <= 0:
        return ()
    candidates = _hibernatable(state)
    chosen = victims(tuple(state.agents[a].last_active_ms for a in candidates), excess)
    return tuple(candidates[i] for i in chosen)


def _hibernatable(state: ContextState) -> tuple[str, ...]:
    """Resident agents with no archive in flight, sorted by id (never hash order)."""
    return tuple(sorted(
        agent for agent, slot in state.agents.items()
        if slot.phase is Phase.RESIDENT and slot.context is not None and slot.context.compaction is None))


# ---------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------


def _append(state: ContextState, ev: Append) -> ContextStep:
    if not ev.agent or not ev.entry_id or ev.tokens < 0:
        return _refuse(state, ev.agent, _R.INVALID, _append_problem(ev))
    slot = state.agents.get(ev.agent)
    if slot is None:
        slot = AgentSlot(Phase.RESIDENT, state.now_ms, context=AgentContext(ev.agent))
    refused = _phase_check(state, ev.agent, slot, InputKind.APPEND)
    if refused is not None:
        return refused
    if ev.entry_id in slot.ids:
        return _refuse(state, ev.agent, _R.DUPLICATE_ENTRY,
                       f"entry_id {ev.entry_id!r} is already seq {slot.ids[ev.entry_id]}")
    ctx = _ctx(slot)
    entry = Entry(ev.entry_id, ctx.next_seq, ev.role, ev.text, ev.tokens, ev.key)
    ctx = attrs.evolve(ctx, next_seq=ctx.next_seq + 1, hot=(*ctx.hot, entry))
    effects: _Effects = ()
    if ctx.hot_tokens > state.config.hot_budget_tokens:
        ctx, effects = _start_compaction(ctx, state.config)
    slot = AgentSlot(slot.phase, state.now_ms, ctx, slot.stub, slot.ids.set(ev.entry_id, entry.seq))
    return Step(_put(state, ev.agent, slot), effects)


def _append_problem(ev: Append) -> str:
    if not ev.agent:
        return "agent: must be non-empty"
    if not ev.entry_id:
        return "entry_id: must be non-empty"
    return f"tokens: must be >= 0, got {ev.tokens}"


def _compact(state: ContextState, ev: Compact) -> ContextStep:
    slot, refused = _resolve(state, ev.agent, InputKind.COMPACT)
    if refused is not None:
        return refused
    assert slot is not None
    ctx = _ctx(slot)
    if ctx.hot_tokens <= state.config.hot_target_tokens:
        return Step(state)
    ctx, effects = _start_compaction(ctx, state.config)
    return Step(_put(state, ev.agent, attrs.evolve(slot, context=ctx)), effects)


def _hibernate(state: ContextState, ev: Hibernate) -> ContextStep:
    slot, refused = _resolve(state, ev.agent, InputKind.HIBERNATE)
    if refused is not None:
        return refused
    assert slot is not None
    in_flight = _ctx(slot).compaction
    if in_flight is not None:
        return _refuse(state, ev.agent, _R.BUSY, f"archive request {in_flight.request} is in flight")
    return _begin_hibernation(state, ev.agent, slot)


def _begin_hibernation(state: ContextState, agent: str, slot: AgentSlot) -> ContextStep:
    ctx = _ctx(slot)
    return Step(_put(state, agent, attrs.evolve(slot, phase=Phase.HIBERNATING)), (PersistContext(agent, ctx),))


def _recall(state: ContextState, ev: Recall) -> ContextStep:
    if ev.query is not None and not ev.query.strip():
        return _refuse(state, ev.agent, _R.INVALID, "query: must be None or non-blank")
    kind = InputKind.RECALL if ev.query is None else InputKind.RECALL_QUERY
    slot, refused = _resolve(state, ev.agent, kind)
    if refused is not None:
        return refused
    assert slot is not None
    if slot.phase is Phase.HIBERNATED:
        # With a query, the search follows the load (the results belong in the context).
        assert slot.stub is not None
        slot = attrs.evolve(slot, phase=Phase.RECALLING, stub=attrs.evolve(slot.stub, query=ev.query))
        return Step(_put(state, ev.agent, slot), (LoadContext(ev.agent),))
    assert ev.query is not None
    ctx, search = _start_search(_ctx(slot), ev.query, state.config)
    slot = attrs.evolve(slot, context=ctx, last_active_ms=state.now_ms)
    return Step(_put(state, ev.agent, slot), (search,))


def _start_search(ctx: AgentContext, query: str, config: ContextConfig) -> tuple[AgentContext, SearchArchive]:
    request = ctx.next_request
    ctx = attrs.evolve(ctx, pending_search=request, next_request=request + 1)
    return ctx, SearchArchive(ctx.agent, request, query, config.recall_limit)


def _tick(state: ContextState) -> ContextStep:
    effects: list[ContextEffect] = []
    idle = idle_agents(state)
    for agent in idle:
        step = _begin_hibernation(state, agent, state.agents[agent])
        state, effects = step.state, [*effects, *step.effects]
    for agent in choose_victims(state):
        step = _begin_hibernation(state, agent, state.agents[agent])
        state, effects = step.state, [*effects, *step.effects]
    return Step(state, tuple(effects))


# ---------------------------------------------------------------------------
# Completions
# ---------------------------------------------------------------------------


def _archived(state: ContextState, ev: Archived) -> ContextStep:
    slot, refused = _resolve(state, ev.agent, InputKind.ARCHIVED)
    if refused is not None:
        return refused
    assert slot is not None
    ctx = _ctx(slot)
    if ctx.compaction is None or ctx.compaction.request != ev.request:
        expected = "none" if ctx.compaction is None else str(ctx.compaction.request)
        return _refuse(state, ev.agent, _R.UNEXPECTED_COMPLETION,
                       f"request {ev.request}: archive request in flight is {expected}")
    ctx, effects = _finish_compaction(ctx, state.config)
    return Step(_put(state, ev.agent, attrs.evolve(slot, context=ctx)), effects)


def _summarized(state: ContextState, ev: Summarized) -> ContextStep:
    s = ev.summary
    if s.tokens < 0 or s.first_seq > s.last_seq:
        detail = (f"summary.tokens: must be >= 0, got {s.tokens}" if s.tokens < 0
                  else f"summary: first_seq {s.first_seq} > last_seq {s.last_seq}")
        return _refuse(state, ev.agent, _R.INVALID, detail)
    slot, refused = _resolve(state, ev.agent, InputKind.SUMMARIZED)
    if refused is not None:
        return refused
    assert slot is not None
    ctx = _ctx(slot)
    match = [r for r in ctx.pending_summaries if r.request == ev.request]
    if not match:
        return _refuse(state, ev.agent, _R.UNEXPECTED_COMPLETION, f"request {ev.request}: no summary pending")
    req = match[0]
    if (s.first_seq, s.last_seq) != (req.first_seq, req.last_seq):
        return _refuse(state, ev.agent, _R.UNEXPECTED_COMPLETION,
                       f"request {ev.request}: asked for seqs {req.first_seq}..{req.last_seq}, "
                       f"summary covers {s.first_seq}..{s.last_seq}")
    starts = [x.first_seq for x in ctx.summaries]
    at = bisect.bisect_left(starts, s.first_seq)
    ctx = attrs.evolve(ctx, summaries=(*ctx.summaries[:at], s, *ctx.summaries[at:]),
                       pending_summaries=tuple(r for r in ctx.pending_summaries if r.request != ev.request))
    ctx, effects = _fit_warm(ctx, state.config)
    return Step(_put(state, ev.agent, attrs.evolve(slot, context=ctx)), effects)


def _summary_failed(state: ContextState, ev: SummaryFailed) -> ContextStep:
    slot, refused = _resolve(state, ev.agent, InputKind.SUMMARY_FAILED)
    if refused is not None:
        return refused
    assert slot is not None
    ctx = _ctx(slot)
    if not any(r.request == ev.request for r in ctx.pending_summaries):
        return _refuse(state, ev.agent, _R.UNEXPECTED_COMPLETION, f"request {ev.request}: no summary pending")
    ctx = attrs.evolve(ctx, pending_summaries=tuple(r for r in ctx.pending_summaries if r.request != ev.request))
    return Step(_put(state, ev.agent, attrs.evolve(slot, context=ctx)))


def _search_found(state: ContextState, ev: SearchFound) -> ContextStep:
    slot, refused = _resolve(state, ev.agent, InputKind.SEARCH_FOUND)
    if refused is not None:
        return refused
    assert slot is not None
    ctx = _ctx(slot)
    if ctx.pending_search != ev.request:
        return _refuse(state, ev.agent, _R.UNEXPECTED_COMPLETION,
                       f"request {ev.request}: query recall in flight is {ctx.pending_search}")
    if len(ev.entries) > state.config.recall_limit:
        return _refuse(state, ev.agent, _R.INVALID,
                       f"entries: {len(ev.entries)} exceed recall_limit {state.config.recall_limit}")
    seqs = [seq for seq, _ in ctx.archived]
    for i, e in enumerate(ev.entries):
        at = bisect.bisect_left(seqs, e.seq)
        if at == len(seqs) or ctx.archived[at] != (e.seq, e.entry_id):
            return _refuse(state, ev.agent, _R.INVALID,
                           f"entries[{i}]: ({e.seq}, {e.entry_id!r}) is not an archived entry of {ev.agent!r}")
    # The shell lists matches best first: that order is the relevance ranking
    # visible_context shows them by when the window is short, so it is kept (only a
    # repeated entry is dropped). Sorting by seq here lost it: the best match, if old,
    # was the first to be cut from a full window.
    by_seq: dict[int, Entry] = {}
    for e in ev.entries:
        by_seq.setdefault(e.seq, e)
    recalled = tuple(by_seq.values())
    ctx = attrs.evolve(ctx, recalled=recalled, pending_search=None)
    return Step(_put(state, ev.agent, attrs.evolve(slot, context=ctx)))


def _persisted(state: ContextState, ev: Persisted) -> ContextStep:
    slot, refused = _resolve(state, ev.agent, InputKind.PERSISTED)
    if refused is not None:
        return refused
    assert slot is not None
    stub = Stub.of(_ctx(slot), state.now_ms)
    slot = AgentSlot(Phase.HIBERNATED, slot.last_active_ms, context=None, stub=stub)
    return Step(_put(state, ev.agent, slot))


def _persist_failed(state: ContextState, ev: PersistFailed) -> ContextStep:
    slot, refused = _resolve(state, ev.agent, InputKind.PERSIST_FAILED)
    if refused is not None:
        return refused
    assert slot is not None
    return Step(_put(state, ev.agent, attrs.evolve(slot, phase=Phase.RESIDENT)))


def _loaded(state: ContextState, ev: Loaded) -> ContextStep:
    if ev.context.agent != ev.agent:
        return _refuse(state, ev.agent, _R.INVALID,
                       f"context.agent: {ev.context.agent!r} is not the recalled agent {ev.agent!r}")
    slot, refused = _resolve(state, ev.agent, InputKind.LOADED)
    if refused is not None:
        return refused
    assert slot is not None and slot.stub is not None
    mismatch = slot.stub.matches(ev.context)
    if mismatch:
        return _refuse(state, ev.agent, _R.INVALID, f"context.{mismatch}")
    ctx = ev.context
    effects: _Effects = ()
    if slot.stub.query is not None:
        ctx, search = _start_search(ctx, slot.stub.query, state.config)
        effects = (search,)
    slot = AgentSlot(Phase.RESIDENT, state.now_ms, context=ctx, stub=None, ids=_index(ctx))
    return Step(_put(state, ev.agent, slot), effects)


def _load_failed(state: ContextState, ev: LoadFailed) -> ContextStep:
    slot, refused = _resolve(state, ev.agent, InputKind.LOAD_FAILED)
    if refused is not None:
        return refused
    assert slot is not None and slot.stub is not None
    slot = attrs.evolve(slot, phase=Phase.HIBERNATED, stub=attrs.evolve(slot.stub, query=None))
    return Step(_put(state, ev.agent, slot))


# ---------------------------------------------------------------------------
# Compaction and the warm budget
# ---------------------------------------------------------------------------


def _start_compaction(ctx: AgentContext, config: ContextConfig) -> tuple[AgentContext, _Effects]:
    """Ask storage to archive the oldest unmarked hot entries that must leave.

    Nothing leaves hot yet. If the entries that must leave are all key entries, no
    storage is needed and they move to warm at once.
    """
    if ctx.compaction is not None:
        return ctx, ()
    k = evict_count(tuple(e.tokens for e in ctx.hot), config.hot_target_tokens)
    if k == 0:
        return ctx, ()
    unmarked = tuple(e for e in ctx.hot[:k] if not e.key)
    request = ctx.next_request
    ctx = attrs.evolve(ctx, compaction=Compaction(request, k, tuple(e.entry_id for e in unmarked)),
                       next_request=request + 1)
    if not unmarked:
        return _finish_compaction(ctx, config)
    return ctx, (ArchiveEntries(ctx.agent, request, unmarked),)


def _finish_compaction(ctx: AgentContext, config: ContextConfig) -> tuple[AgentContext, _Effects]:
    """Storage confirmed: the prefix leaves hot (key entries to warm, the rest to the
    archive), a summary of the archived range is requested, warm is fitted to its
    budget, and a new compaction starts if appends meanwhile overfilled hot."""
    c = ctx.compaction
    assert c is not None
    prefix = ctx.hot[:c.count]
    keys = tuple(e for e in prefix if e.key)
    unmarked = tuple(e for e in prefix if not e.key)
    ctx = attrs.evolve(ctx, hot=ctx.hot[c.count:], warm_keys=(*ctx.warm_keys, *keys),
                       archived=(*ctx.archived, *((e.seq, e.entry_id) for e in unmarked)), compaction=None)
    effects: _Effects = ()
    if unmarked:
        request = ctx.next_request
        first, last = unmarked[0].seq, unmarked[-1].seq
        ctx = attrs.evolve(ctx, next_request=request + 1,
                           pending_summaries=(*ctx.pending_summaries, SummaryRequest(request, first, last)))
        effects = (RequestSummary(ctx.agent, request, first, last, unmarked),)
    ctx, fitted = _fit_warm(ctx, config)
    effects = (*fitted, *effects)
    if ctx.hot_tokens > config.hot_budget_tokens:
        ctx, more = _start_compaction(ctx, config)
        effects = (*effects, *more)
    return ctx, effects


def _fit_warm(ctx: AgentContext, config: ContextConfig) -> tuple[AgentContext, _Effects]:
    """Drop the oldest summaries until warm fits; report a changed key-entry overflow."""
    budget = config.warm_budget_tokens
    key_tokens = ctx.key_tokens
    drop = summaries_to_drop(tuple(s.tokens for s in ctx.summaries), key_tokens, budget)
    over = overflow_tokens(key_tokens, budget)
    effects: _Effects = ()
    if over != ctx.overflow_tokens:
        effects = (ContextOverflow(ctx.agent, key_tokens, budget, over),)
    return attrs.evolve(ctx, summaries=ctx.summaries[drop:], overflow_tokens=over), effects


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def _refuse(state: ContextState, agent: str, reason: ContextRefusalReason, detail: str) -> ContextStep:
    return Step(state, (ContextRefusal(agent, reason, detail),))


def _resolve(state: ContextState, agent: str, kind: InputKind) -> tuple[AgentSlot | None, ContextStep | None]:
    """The agent's slot if ``kind`` is accepted in its phase, else the refusal."""
    if not agent:
        return None, _refuse(state, agent, _R.INVALID, "agent: must be non-empty")
    slot = state.agents.get(agent)
    if slot is None:
        return None, _refuse(state, agent, _R.UNKNOWN_AGENT, f"agent {agent!r} has no context")
    refused = _phase_check(state, agent, slot, kind)
    return (None, refused) if refused is not None else (slot, None)


def _phase_check(state: ContextState, agent: str, slot: AgentSlot, kind: InputKind) -> ContextStep | None:
    result = outcome(kind, slot.phase)
    if isinstance(result, ContextRefusalReason):
        return _refuse(state, agent, result, f"{kind.value} refused while agent is {slot.phase.value}")
    return None


def _ctx(slot: AgentSlot) -> AgentContext:
    assert slot.context is not None, f"agent in phase {slot.phase} has no context"
    return slot.context


def _put(state: ContextState, agent: str, slot: AgentSlot) -> ContextState:
    # Direct construction: attrs.evolve costs several microseconds per call on the hot path.
    return ContextState(state.config, state.now_ms, state.agents.set(agent, slot))


def _index(ctx: AgentContext) -> immutables.Map[str, int]:
    """Every entry id of ``ctx`` to its seq (hot, warm key entries, archive)."""
    pairs = [(e.entry_id, e.seq) for e in (*ctx.hot, *ctx.warm_keys)] + [(i, s) for s, i in ctx.archived]
    return immutables.Map(pairs)
