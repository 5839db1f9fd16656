"""The agentrm policy kernel: immutable state and pure, deterministic transitions.

Nothing here performs I/O, reads a clock, or draws randomness: time and ids are
inputs, effects are outputs. Import it as ``agentrm.kernel``.
"""

if __name__ != "agentrm.kernel":  # pragma: no cover - guard against a second copy
    raise ImportError(
        f"agentrm's kernel was imported as {__name__!r}; import it as 'agentrm.kernel' "
        "(a second import path would create a second, incompatible copy of every class)"
    )

# --- scheduler -------------------------------------------------------------------------
from .common import Step
from .scheduler.config import ClassConfig, ConfigError, ProviderConfig, SchedulerConfig, TaskClass
from .scheduler.effects import (
    CancelReason,
    CancelTask,
    Refusal,
    RefusalReason,
    SchedulerEffect,
    StartTask,
    WakeAt,
    YieldTask,
)
from .scheduler.events import (
    ClockAdvanced,
    Heartbeat,
    RateLimited,
    SchedulerEvent,
    StepFinished,
    Submit,
    TaskFailed,
    TaskFinished,
)
from .scheduler.lifecycle import Phase
from .scheduler.queries import gate_view, live_count, queued, running_tasks, task_view, waiting_count
from .scheduler.state import GateState, SchedulerState, TaskRecord
from .scheduler.transitions import admit, demote, next_wake_ms, reap, step, tick

# --- context ---------------------------------------------------------------------------
from .context import (
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
    ContextRefusalReason,
    ContextState,
    ContextTick,
    Entry,
    Hibernate,
    LoadContext,
    Loaded,
    LoadFailed,
    PersistContext,
    Persisted,
    PersistFailed,
    Recall,
    RequestSummary,
    SearchArchive,
    SearchFound,
    Summarized,
    Summary,
    SummaryFailed,
    append,
    choose_victims,
    compact,
    context_step,
    context_tick,
    hibernate,
    next_hibernate_ms,
    recall,
    visible_context,
)
from .context import Phase as ContextPhase

__all__ = [
    # scheduler
    "Step", "ClassConfig", "ConfigError", "ProviderConfig", "SchedulerConfig", "TaskClass",
    "CancelReason", "CancelTask", "Refusal", "RefusalReason", "SchedulerEffect", "StartTask",
    "WakeAt", "YieldTask", "ClockAdvanced", "Heartbeat", "RateLimited", "SchedulerEvent",
    "StepFinished", "Submit", "TaskFailed", "TaskFinished", "Phase", "GateState",
    "SchedulerState", "TaskRecord", "admit", "demote", "next_wake_ms", "reap", "step", "tick",
    "task_view", "running_tasks", "waiting_count", "live_count", "queued", "gate_view",
    # context
    "AgentContext", "Append", "ArchiveEntries", "Archived", "Compact", "ContextConfig",
    "ContextEffect", "ContextEvent", "ContextOverflow", "ContextRefusal", "ContextRefusalReason",
    "ContextState", "ContextTick", "Entry", "Hibernate", "LoadContext", "Loaded", "LoadFailed",
    "PersistContext", "Persisted", "PersistFailed", "Recall", "RequestSummary", "SearchArchive",
    "SearchFound", "Summarized", "Summary", "SummaryFailed", "append", "choose_victims", "compact", "context_step",
    "context_tick", "hibernate", "next_hibernate_ms", "recall", "visible_context", "ContextPhase",
]
