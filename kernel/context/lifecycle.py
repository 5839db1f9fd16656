"""The agent-phase table of the context kernel: which input each phase accepts.

One table, read by the transitions and covered by a totality test (every input kind
times every phase). An entry is either ``ACCEPT`` with the phase the agent moves to,
or the refusal reason. Phase moves, for reading: RESIDENT -hibernate-> HIBERNATING
-persisted-> HIBERNATED -recall-> RECALLING -loaded-> RESIDENT; a failed persist
returns to RESIDENT, a failed load to HIBERNATED.
"""

from __future__ import annotations

import enum

from .effects import ContextRefusalReason as R
from .state import Phase


class InputKind(enum.Enum):
    """An input about one agent, as far as its phase is concerned."""

    APPEND = "append"
    COMPACT = "compact"
    HIBERNATE = "hibernate"
    RECALL = "recall"
    """A recall without a query: bring the hibernated context back."""
    RECALL_QUERY = "recall_query"
    """A recall with a query: bring back matching archived entries (loading the agent first
    if it is hibernated)."""
    ARCHIVED = "archived"
    SUMMARIZED = "summarized"
    SUMMARY_FAILED = "summary_failed"
    SEARCH_FOUND = "search_found"
    PERSISTED = "persisted"
    PERSIST_FAILED = "persist_failed"
    LOADED = "loaded"
    LOAD_FAILED = "load_failed"


Outcome = Phase | R
"""The phase an accepted input moves the agent to, or why it is refused."""

_RES, _HIBING, _HIBED, _RECING = Phase.RESIDENT, Phase.HIBERNATING, Phase.HIBERNATED, Phase.RECALLING
_ASLEEP = R.AGENT_HIBERNATED
_STALE = R.UNEXPECTED_COMPLETION

# Columns: RESIDENT, HIBERNATING, HIBERNATED, RECALLING.
# While a persist is in flight the context was already sent to storage, so nothing
# may change it (a change would be lost on recall): everything but the persist's own
# outcome is refused.
PHASE_TABLE: dict[InputKind, tuple[Outcome, Outcome, Outcome, Outcome]] = {
    InputKind.APPEND: (_RES, _ASLEEP, _ASLEEP, _ASLEEP),
    InputKind.COMPACT: (_RES, _ASLEEP, _ASLEEP, _ASLEEP),
    InputKind.HIBERNATE: (_HIBING, R.ALREADY_HIBERNATED, R.ALREADY_HIBERNATED, R.BUSY),
    InputKind.RECALL: (R.NOT_HIBERNATED, R.BUSY, _RECING, R.BUSY),
    InputKind.RECALL_QUERY: (_RES, R.BUSY, _RECING, R.BUSY),
    InputKind.ARCHIVED: (_RES, _ASLEEP, _ASLEEP, _ASLEEP),
    InputKind.SUMMARIZED: (_RES, _ASLEEP, _ASLEEP, _ASLEEP),
    InputKind.SUMMARY_FAILED: (_RES, _ASLEEP, _ASLEEP, _ASLEEP),
    InputKind.SEARCH_FOUND: (_RES, _ASLEEP, _ASLEEP, _ASLEEP),
    InputKind.PERSISTED: (_STALE, _HIBED, _STALE, _STALE),
    InputKind.PERSIST_FAILED: (_STALE, _RES, _STALE, _STALE),
    InputKind.LOADED: (_STALE, _STALE, _STALE, _RES),
    InputKind.LOAD_FAILED: (_STALE, _STALE, _STALE, _HIBED),
}
"""For each input kind, its outcome in each phase (columns in ``Phase`` declaration order)."""

_COLUMN = {Phase.RESIDENT: 0, Phase.HIBERNATING: 1, Phase.HIBERNATED: 2, Phase.RECALLING: 3}


def outcome(kind: InputKind, phase: Phase) -> Outcome:
    """The phase ``kind`` moves an agent in ``phase`` to, or the refusal reason."""
    return PHASE_TABLE[kind][_COLUMN[phase]]
