"""Inputs to the context kernel.

Every event carries ``at_ms`` (the shell's clock, never decreasing). Commands are
imperative (``Append``, ``Hibernate``); the shell's reports of completed effects are
past tense (``Archived``, ``Summarized``, ``Persisted``, ``Loaded``, ``SearchFound``).
:func:`agentrm.kernel.context.context_step` accepts any :data:`ContextEvent`, so a log
of them replays as a fold.
"""

from __future__ import annotations

import attrs

from .state import AgentContext
from .types import Entry, Summary


@attrs.frozen
class Append:
    """Add one entry to ``agent``'s context (creating the agent on its first entry).

    The kernel gives it the next seq. ``key`` marks key information: it is never
    summarized and never dropped.
    """

    at_ms: int
    agent: str
    entry_id: str
    role: str
    text: str
    tokens: int
    key: bool = False


@attrs.frozen
class Compact:
    """Compact ``agent`` now: move hot entries out until hot is within the target."""

    at_ms: int
    agent: str


@attrs.frozen
class Hibernate:
    """Persist ``agent``'s whole context and keep only a stub."""

    at_ms: int
    agent: str


@attrs.frozen
class Recall:
    """Bring ``agent`` back from hibernation (``query is None``), or bring back the
    archived entries that match ``query`` (a hibernated agent is loaded first)."""

    at_ms: int
    agent: str
    query: str | None = None


@attrs.frozen
class ContextTick:
    """Time passed: hibernate idle agents and, above ``max_resident_agents``, victims."""

    at_ms: int


@attrs.frozen
class Archived:
    """Storage confirmed the ``ArchiveEntries`` numbered ``request``."""

    at_ms: int
    agent: str
    request: int


@attrs.frozen
class Summarized:
    """The summary asked for by ``RequestSummary`` number ``request`` arrived."""

    at_ms: int
    agent: str
    request: int
    summary: Summary


@attrs.frozen
class SummaryFailed:
    """The summary asked for by ``RequestSummary`` number ``request`` will not come
    (the summarizer failed). The entries stay archived; warm simply has no summary of
    them. ``error`` is for humans."""

    at_ms: int
    agent: str
    request: int
    error: str = ""


@attrs.frozen
class Persisted:
    """Storage confirmed the ``PersistContext`` of ``agent``."""

    at_ms: int
    agent: str


@attrs.frozen
class PersistFailed:
    """Storage could not persist ``agent``; it stays resident. ``error`` is for humans."""

    at_ms: int
    agent: str
    error: str = ""


@attrs.frozen
class Loaded:
    """The hibernated context of ``agent`` came back from storage."""

    at_ms: int
    agent: str
    context: AgentContext


@attrs.frozen
class LoadFailed:
    """Storage could not load ``agent``'s context; it stays hibernated. ``error`` is for humans."""

    at_ms: int
    agent: str
    error: str = ""


@attrs.frozen
class SearchFound:
    """The archived entries matching the query of ``SearchArchive`` number ``request``,
    best match first: the kernel shows them in that priority when the window is short."""

    at_ms: int
    agent: str
    request: int
    entries: tuple[Entry, ...]


ContextEvent = (Append | Compact | Hibernate | Recall | ContextTick | Archived | Summarized | SummaryFailed
                | Persisted | PersistFailed | Loaded | LoadFailed | SearchFound)
"""Any input the context reducer accepts."""
