"""A reference model of one agent's context tiers (SPEC.md 3.3, 3.4, 3.6), over plain tuples.

The simplest implementation of the compaction policy we could write: one tuple of
records ``(seq, entry_id, tokens, key, tier)`` where ``tier`` is ``"hot"``, ``"warm"``
or ``"archived"``, instead of the kernel's separate tiers, request objects and
indexes. ``tests/test_ctx_model.py`` drives the kernel and this model in lockstep and
asserts they agree on every tier, every request, the overflow, the effects and the
visible context (refinement). It covers appends, compactions and their completions
for one resident agent; hibernation is covered by the invariants instead.
"""

from __future__ import annotations

from typing import NamedTuple

Record = tuple[int, str, int, bool, str]
"""``(seq, entry_id, tokens, key, tier)``."""

SummaryRec = tuple[int, int, int]
"""``(first_seq, last_seq, tokens)``."""


class Model(NamedTuple):
    """One agent's context in the model."""

    records: tuple[Record, ...] = ()
    summaries: tuple[SummaryRec, ...] = ()
    archiving: tuple[int, tuple[int, ...]] | None = None
    """``(request, seqs leaving hot)`` of the archive request in flight."""
    asked: tuple[tuple[int, int, int], ...] = ()
    """``(request, first_seq, last_seq)`` of the summaries asked for."""
    next_request: int = 0
    overflow: int = 0


Effect = tuple[str, int, tuple[str, ...]] | tuple[str, int]
"""``("archive", request, ids)``, ``("summarize", request, ids)``, ``("overflow", tokens)``."""


class Budgets(NamedTuple):
    """The config numbers the model needs."""

    hot: int
    target: int
    warm: int
    window: int


def _hot(m: Model) -> list[Record]:
    return [r for r in m.records if r[4] == "hot"]


def _tokens(records: list[Record]) -> int:
    return sum(r[2] for r in records)


def append(m: Model, b: Budgets, entry_id: str, tokens: int, key: bool) -> tuple[Model, list[Effect]]:
    """Append an entry; start compaction if hot went over its budget."""
    m = m._replace(records=m.records + ((len(m.records), entry_id, tokens, key, "hot"),))
    if m.archiving is None and _tokens(_hot(m)) > b.hot:
        return _start(m, b)
    return m, []


def compact(m: Model, b: Budgets) -> tuple[Model, list[Effect]]:
    """Start compaction if hot is above the target and none is in flight."""
    if m.archiving is None and _tokens(_hot(m)) > b.target:
        return _start(m, b)
    return m, []


def _start(m: Model, b: Budgets) -> tuple[Model, list[Effect]]:
    hot = _hot(m)
    leaving: list[Record] = []
    while _tokens(hot) > b.target:
        leaving.append(hot.pop(0))
    if not leaving:
        return m, []
    m = m._replace(archiving=(m.next_request, tuple(r[0] for r in leaving)), next_request=m.next_request + 1)
    unmarked = tuple(r[1] for r in leaving if not r[3])
    if not unmarked:
        return _finish(m, b)
    assert m.archiving is not None
    return m, [("archive", m.archiving[0], unmarked)]


def archived(m: Model, b: Budgets, request: int) -> tuple[Model, list[Effect]]:
    """Storage confirmed ``request``; a wrong number changes nothing."""
    if m.archiving is None or m.archiving[0] != request:
        return m, []
    return _finish(m, b)


def _finish(m: Model, b: Budgets) -> tuple[Model, list[Effect]]:
    assert m.archiving is not None
    leaving = set(m.archiving[1])
    records = tuple((s, i, t, k, ("warm" if k else "archived") if s in leaving else tier)
                    for s, i, t, k, tier in m.records)
    m = m._replace(records=records, archiving=None)
    gone = [r for r in records if r[0] in leaving and not r[3]]
    effects: list[Effect] = []
    if gone:
        m = m._replace(asked=m.asked + ((m.next_request, gone[0][0], gone[-1][0]),), next_request=m.next_request + 1)
        effects.append(("summarize", m.next_request - 1, tuple(r[1] for r in gone)))
    m, fitted = _fit(m, b)
    effects = fitted + effects
    if _tokens(_hot(m)) > b.hot:
        m, more = _start(m, b)
        effects += more
    return m, effects


def summarized(m: Model, b: Budgets, request: int, tokens: int) -> tuple[Model, list[Effect]]:
    """The summary for ``request`` arrived; a wrong number changes nothing."""
    match = [a for a in m.asked if a[0] == request]
    if not match:
        return m, []
    _, first, last = match[0]
    m = m._replace(summaries=tuple(sorted(m.summaries + ((first, last, tokens),))),
                   asked=tuple(a for a in m.asked if a[0] != request))
    return _fit(m, b)


def _fit(m: Model, b: Budgets) -> tuple[Model, list[Effect]]:
    keys = _tokens([r for r in m.records if r[4] == "warm"])
    summaries = list(m.summaries)
    while summaries and keys + sum(s[2] for s in summaries) > b.warm:
        summaries.pop(0)
    over = keys - b.warm if keys > b.warm else 0
    effects: list[Effect] = [("overflow", over)] if over != m.overflow else []
    return m._replace(summaries=tuple(summaries), overflow=over), effects


def visible(m: Model, b: Budgets) -> list[tuple[str, int]]:
    """What the agent sees: ``("entry", seq)`` / ``("summary", first_seq)`` in order."""
    keys = [r for r in m.records if r[3] and r[4] != "archived"]
    rest = [r for r in _hot(m) if not r[3]]
    ranked = ([("entry", r[0], r[2]) for r in reversed(keys)] + [("entry", r[0], r[2]) for r in reversed(rest)]
              + [("summary", s[0], s[2]) for s in reversed(m.summaries)])
    shown: list[tuple[str, int]] = []
    used = 0
    for kind, pos, tokens in ranked:
        if used + tokens > b.window:
            break
        used += tokens
        shown.append((kind, pos))
    return sorted(shown, key=lambda x: (x[1], 0 if x[0] == "summary" else 1))
