"""The context half of the kernel: hot / warm / cold tiers, hibernate and recall.

Start from :func:`context_step` (the reducer) or the verbs :func:`append`,
:func:`compact`, :func:`hibernate`, :func:`recall` and :func:`context_tick`; read what
an agent sees with :func:`visible_context`. SPEC.md sections 3 and 4 are normative.
"""

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
from .lifecycle import PHASE_TABLE, InputKind, outcome
from .state import AgentContext, AgentSlot, Compaction, ContextState, Phase, Stub, SummaryRequest
from .transitions import (
    ContextStep,
    VisibleItem,
    append,
    choose_victims,
    compact,
    context_step,
    context_tick,
    hibernate,
    idle_agents,
    next_hibernate_ms,
    recall,
    visible_context,
)
from .types import Entry, Summary

__all__ = [
    "evict_count", "fit_prefix", "overflow_tokens", "summaries_to_drop", "victims",
    "ContextConfig",
    "ArchiveEntries", "ContextEffect", "ContextOverflow", "ContextRefusal", "ContextRefusalReason",
    "LoadContext", "PersistContext", "RequestSummary", "SearchArchive",
    "Append", "Archived", "Compact", "ContextEvent", "ContextTick", "Hibernate", "Loaded",
    "LoadFailed", "Persisted", "PersistFailed", "Recall", "SearchFound", "Summarized", "SummaryFailed",
    "PHASE_TABLE", "InputKind", "outcome",
    "AgentContext", "AgentSlot", "Compaction", "ContextState", "Phase", "Stub", "SummaryRequest",
    "ContextStep", "VisibleItem", "append", "choose_victims", "compact", "context_step",
    "context_tick", "hibernate", "idle_agents", "next_hibernate_ms", "recall", "visible_context",
    "Entry", "Summary",
]
