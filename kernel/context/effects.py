"""Outputs of the context kernel: instructions to the shell, executed in order.

The kernel never performs them; the shell reports each outcome back as an event
(``ArchiveEntries`` -> ``Archived``, ``RequestSummary`` -> ``Summarized``/``SummaryFailed``,
``PersistContext`` -> ``Persisted``/``PersistFailed``, ``LoadContext`` -> ``Loaded``/``LoadFailed``,
``SearchArchive`` -> ``SearchFound``).
"""

from __future__ import annotations

import enum

import attrs

from .state import AgentContext
from .types import Entry


class ContextRefusalReason(enum.Enum):
    """Why a context event was refused. A refused event changes nothing but the clock.

    Precedence when several apply (the first is reported): ``CLOCK_WENT_BACKWARDS``,
    ``INVALID`` (a field on its own), ``UNKNOWN_AGENT``, the reason the phase table
    gives (``lifecycle.PHASE_TABLE``), ``BUSY`` (archive in flight), ``DUPLICATE_ENTRY``,
    ``UNEXPECTED_COMPLETION``, and last ``INVALID`` for contents that contradict the
    state (see SPEC.md 3.2).
    """

    CLOCK_WENT_BACKWARDS = "clock_went_backwards"
    """``at_ms`` is earlier than the kernel's clock."""
    INVALID = "invalid"
    """A field is out of range or inconsistent (empty id, negative tokens, wrong range)."""
    UNKNOWN_AGENT = "unknown_agent"
    """No entry was ever appended for this agent."""
    ALREADY_HIBERNATED = "already_hibernated"
    """Hibernate of an agent that is hibernated or being hibernated."""
    NOT_HIBERNATED = "not_hibernated"
    """Recall (without a query) of an agent that is resident."""
    AGENT_HIBERNATED = "agent_hibernated"
    """Append, compaction, query recall or a completion for an agent that is not resident."""
    BUSY = "busy"
    """A transition is in flight (archive, persist or load) that this event would race."""
    DUPLICATE_ENTRY = "duplicate_entry"
    """The entry id was already appended to this agent; the repeat changes nothing."""
    UNEXPECTED_COMPLETION = "unexpected_completion"
    """A completion that answers no request in flight (stale, repeated or unknown)."""


@attrs.frozen
class ArchiveEntries:
    """Store ``entries`` of ``agent`` verbatim (and searchable); answer ``Archived(request)``."""

    agent: str
    request: int
    entries: tuple[Entry, ...]


@attrs.frozen
class RequestSummary:
    """Summarize the archived ``entries`` (seqs ``first_seq..last_seq``, key entries
    excluded); answer ``Summarized(request, Summary(first_seq, last_seq, ...))``."""

    agent: str
    request: int
    first_seq: int
    last_seq: int
    entries: tuple[Entry, ...]


@attrs.frozen
class PersistContext:
    """Store ``context`` as ``agent``'s hibernated context; answer ``Persisted``."""

    agent: str
    context: AgentContext


@attrs.frozen
class LoadContext:
    """Load ``agent``'s hibernated context; answer ``Loaded``."""

    agent: str


@attrs.frozen
class SearchArchive:
    """Find at most ``limit`` archived entries of ``agent`` matching ``query``;
    answer ``SearchFound(request, entries)`` with the entries best match first."""

    agent: str
    request: int
    query: str
    limit: int


@attrs.frozen
class ContextOverflow:
    """``agent``'s key entries alone hold ``key_tokens``, ``overflow_tokens`` over the
    warm budget. Emitted whenever the overflow changes; nothing is dropped."""

    agent: str
    key_tokens: int
    warm_budget_tokens: int
    overflow_tokens: int


@attrs.frozen
class ContextRefusal:
    """The event about ``agent`` was refused for ``reason``; ``detail`` names what was wrong.

    ``agent`` is ``""`` for a refused ``ContextTick`` (only the clock can refuse it).
    """

    agent: str
    reason: ContextRefusalReason
    detail: str = ""


ContextEffect = (ArchiveEntries | RequestSummary | PersistContext | LoadContext | SearchArchive
                 | ContextOverflow | ContextRefusal)
"""Any instruction the context kernel emits."""
