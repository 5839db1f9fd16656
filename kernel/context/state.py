"""Context-lifecycle state: per-agent tiers, in-flight requests, hibernation stubs.

Everything is frozen. The archive (the cold tier) lives in storage; the state keeps
only what storage has *confirmed* archived, as ``(seq, entry_id)`` pairs, so the
kernel can prove that no entry was ever lost without holding the text.
"""

from __future__ import annotations

import enum

import attrs
import immutables

from .config import ContextConfig
from .types import Entry, Summary


class Phase(enum.Enum):
    """Where an agent's context is. Allowed moves are in ``transitions.PHASE_MOVES``."""

    RESIDENT = "resident"
    """The context is in the state; appends and compactions happen."""
    HIBERNATING = "hibernating"
    """``PersistContext`` was emitted; the context stays until storage confirms."""
    HIBERNATED = "hibernated"
    """Only a stub is in the state; the context is in storage."""
    RECALLING = "recalling"
    """``LoadContext`` was emitted; waiting for the context to come back."""


@attrs.frozen
class Compaction:
    """An archive request in flight.

    On confirmation the first ``count`` hot entries leave hot: the unmarked ones
    (``entry_ids``, the ones sent to storage) into the archive, key ones into warm.
    """

    request: int
    count: int
    entry_ids: tuple[str, ...]


@attrs.frozen
class SummaryRequest:
    """A summary asked for: it will stand for the archived entries in ``first_seq..last_seq``."""

    request: int
    first_seq: int
    last_seq: int


@attrs.frozen
class AgentContext:
    """One agent's whole context: what ``PersistContext`` stores and ``Loaded`` returns.

    * ``next_seq`` -- entries ``0 .. next_seq-1`` were appended;
    * ``hot`` -- the newest entries, verbatim, a gapless seq suffix;
    * ``warm_keys`` -- key entries that left hot, verbatim, in seq order;
    * ``summaries`` -- in seq order, non-overlapping, each over archived entries;
    * ``archived`` -- ``(seq, entry_id)`` of every entry storage confirmed, in seq order;
    * ``compaction`` -- the archive request in flight, if any;
    * ``pending_summaries`` -- summary requests not yet answered, in request order;
    * ``recalled`` -- archived entries brought back by the last query recall, best
      match first (the order ``SearchFound`` listed them in);
    * ``pending_search`` -- the request number of the query recall in flight, if any;
    * ``next_request`` -- the counter numbering this agent's requests to the shell;
    * ``overflow_tokens`` -- how far key entries alone exceed the warm budget (0 = none).
    """

    agent: str
    next_seq: int = 0
    hot: tuple[Entry, ...] = ()
    warm_keys: tuple[Entry, ...] = ()
    summaries: tuple[Summary, ...] = ()
    archived: tuple[tuple[int, str], ...] = ()
    compaction: Compaction | None = None
    pending_summaries: tuple[SummaryRequest, ...] = ()
    recalled: tuple[Entry, ...] = ()
    pending_search: int | None = None
    next_request: int = 0
    overflow_tokens: int = 0

    @property
    def hot_tokens(self) -> int:
        """Tokens held by the hot tier."""
        return sum(e.tokens for e in self.hot)

    @property
    def key_tokens(self) -> int:
        """Tokens held by warm key entries."""
        return sum(e.tokens for e in self.warm_keys)

    @property
    def warm_tokens(self) -> int:
        """Tokens held by the warm tier (key entries plus summaries)."""
        return self.key_tokens + sum(s.tokens for s in self.summaries)


@attrs.frozen
class Stub:
    """What stays in the state of a hibernated agent: enough to check what comes back.

    ``Loaded`` is accepted only if the context's counts match the stub's. ``query`` is
    the query of a recall in flight that asked for a search after the load.
    """

    next_seq: int
    hot_count: int
    warm_key_count: int
    archived_count: int
    summary_count: int
    hibernated_ms: int
    query: str | None = None

    @classmethod
    def of(cls, context: AgentContext, now_ms: int) -> Stub:
        """The stub that stands for ``context`` hibernated at ``now_ms``."""
        return cls(context.next_seq, len(context.hot), len(context.warm_keys),
                   len(context.archived), len(context.summaries), now_ms)

    def matches(self, context: AgentContext) -> str:
        """The first field in which ``context`` differs from this stub, or ``""``."""
        got = Stub.of(context, self.hibernated_ms)
        for name in ("next_seq", "hot_count", "warm_key_count", "archived_count", "summary_count"):
            if getattr(got, name) != getattr(self, name):
                return f"{name}: stub has {getattr(self, name)}, loaded context has {getattr(got, name)}"
        return ""


@attrs.frozen
class AgentSlot:
    """One agent as the kernel tracks it.

    ``context`` is present in RESIDENT and HIBERNATING, ``stub`` in HIBERNATED and
    RECALLING. ``ids`` indexes every entry id ever appended (to its seq) while the
    context is in the state, so a duplicate append is refused in O(log n); it is
    rebuilt from the context on load. ``last_active_ms`` is the last append or recall.
    """

    phase: Phase
    last_active_ms: int
    context: AgentContext | None = None
    stub: Stub | None = None
    ids: immutables.Map[str, int] = immutables.Map()


@attrs.frozen
class ContextState:
    """The context kernel's whole state: the config, the clock, and every agent."""

    config: ContextConfig
    now_ms: int = 0
    agents: immutables.Map[str, AgentSlot] = immutables.Map()

    @classmethod
    def initial(cls, config: ContextConfig, now_ms: int = 0) -> ContextState:
        """An empty state under ``config`` with the clock at ``now_ms``."""
        return cls(config=config, now_ms=now_ms)
