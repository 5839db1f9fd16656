"""Refinement: the context kernel and the reference model (specs/context_model.py) agree,
step for step, on tiers, requests, overflow, effects and the visible context."""

from __future__ import annotations

import hypothesis
from hypothesis import given
from hypothesis import strategies as st

from agentrm.kernel.context import (
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
    RequestSummary,
    Summarized,
    Summary,
    context_step,
    visible_context,
)
from agentrm.specs import context_model as M

Command = tuple[str, int, int, bool]
commands = st.lists(st.tuples(st.sampled_from(["append", "append", "compact", "archived", "summarized", "summarized"]),
                              st.integers(0, 6), st.integers(0, 20), st.integers(0, 3).map(lambda x: x == 0)), min_size=20, max_size=80)
configs = st.builds(lambda hot, gap, warm, window: ContextConfig(
    hot_budget_tokens=hot, hot_target_tokens=max(0, hot - gap), warm_budget_tokens=warm, window_tokens=window),
    st.integers(1, 14), st.integers(0, 14), st.integers(0, 12), st.integers(1, 30))


def project_kernel(state: ContextState) -> tuple[object, ...]:
    """The kernel's agent "a" in the model's terms."""
    ctx = state.agents["a"].context
    assert ctx is not None
    tiers = sorted([(e.seq, e.entry_id, "hot") for e in ctx.hot] + [(e.seq, e.entry_id, "warm") for e in ctx.warm_keys]
                   + [(s, i, "archived") for s, i in ctx.archived])
    archiving = None if ctx.compaction is None else (
        ctx.compaction.request, tuple(e.seq for e in ctx.hot[:ctx.compaction.count]))
    return (tuple(tiers), tuple((s.first_seq, s.last_seq, s.tokens) for s in ctx.summaries), archiving,
            tuple((r.request, r.first_seq, r.last_seq) for r in ctx.pending_summaries), ctx.next_request,
            ctx.overflow_tokens)


def project_model(m: M.Model) -> tuple[object, ...]:
    """The model's state in the same shape."""
    return (tuple((s, i, tier) for s, i, _, _, tier in m.records), m.summaries, m.archiving, m.asked,
            m.next_request, m.overflow)


def project_effects(effects: tuple[ContextEffect, ...]) -> list[M.Effect]:
    """Kernel effects in the model's terms (refusals of stale completions dropped)."""
    out: list[M.Effect] = []
    for e in effects:
        if isinstance(e, ArchiveEntries):
            out.append(("archive", e.request, tuple(x.entry_id for x in e.entries)))
        elif isinstance(e, RequestSummary):
            out.append(("summarize", e.request, tuple(x.entry_id for x in e.entries)))
        elif isinstance(e, ContextOverflow):
            out.append(("overflow", e.overflow_tokens))
        else:
            assert isinstance(e, ContextRefusal), e
    return out


@given(configs, commands)
def test_kernel_refines_reference_model(config: ContextConfig, program: list[Command]) -> None:
    """For any program of appends, compactions and (possibly stale) completions, the
    kernel and the reference model agree after every step."""
    b = M.Budgets(config.hot_budget_tokens, config.hot_target_tokens, config.warm_budget_tokens, config.window_tokens)
    state = ContextState.initial(config)
    model = M.Model()
    outstanding: list[tuple[str, int]] = []
    for n, (kind, tokens, pick, key) in enumerate(program):
        event: ContextEvent
        if kind == "append" or "a" not in state.agents:
            event = Append(0, "a", f"e{n}", "user", "x", tokens, key)
            model, expected = M.append(model, b, f"e{n}", tokens, key)
        elif kind == "compact":
            event = Compact(0, "a")
            model, expected = M.compact(model, b)
        else:
            wanted = [o for o in outstanding if o[0] == kind]
            if wanted and pick < 18:
                request = wanted[pick % len(wanted)][1]
                outstanding.remove((kind, request))
            else:
                request = pick  # most likely stale: neither side may change
            if kind == "archived":
                event = Archived(0, "a", request)
                model, expected = M.archived(model, b, request)
            else:
                asked = [a for a in model.asked if a[0] == request]
                first, last = (asked[0][1], asked[0][2]) if asked else (0, 0)
                event = Summarized(0, "a", request, Summary(f"s{request}", first, last, "gist", tokens))
                model, expected = M.summarized(model, b, request, tokens)
        step = context_step(state, event)
        state = step.state
        got = project_effects(step.effects)
        assert got == expected, (n, event)
        for eff in got:
            if eff[0] in ("archive", "summarize"):
                outstanding.append(("archived" if eff[0] == "archive" else "summarized", eff[1]))
        assert project_kernel(state) == project_model(model), (n, event)
        seen = [("summary", i.first_seq) if isinstance(i, Summary) else ("entry", i.seq)
                for i in visible_context(state, "a")]
        assert seen == M.visible(model, b), (n, event)
    hypothesis.event(f"summaries at the end: {min(len(model.summaries), 3)}")
