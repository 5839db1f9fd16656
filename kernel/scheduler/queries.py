"""Read-only queries over a scheduler state, for adapters, views and tests."""

from __future__ import annotations

from .config import TaskClass
from .gate import refill_gate
from .state import GateState, SchedulerState, TaskRecord


def task_view(state: SchedulerState, task_id: str) -> TaskRecord | None:
    """The record of ``task_id`` (phase, level, lane, class, agent, parent, used_ms, ...), or None."""
    return state.tasks.get(task_id)


def running_tasks(state: SchedulerState) -> tuple[TaskRecord, ...]:
    """The running tasks, in lane order."""
    return tuple(state.tasks[tid] for tid in state.lanes if tid is not None)


def waiting_count(state: SchedulerState) -> int:
    """How many tasks are waiting in a queue."""
    return state.waiting


def live_count(state: SchedulerState) -> int:
    """How many tasks are not terminal (waiting or running)."""
    return state.live


def queued(state: SchedulerState, level: int, task_class: TaskClass, provider: str) -> tuple[str, ...]:
    """The ids waiting in one (level, class, provider) queue, head first (O(queue length))."""
    q = state.queues.get((level, task_class, provider))
    return () if q is None else q.task_ids()


def gate_view(state: SchedulerState, provider: str) -> GateState:
    """``provider``'s gate as of ``state.now_ms`` (buckets refilled up to now; SPEC.md 1.2).

    The state stores each gate as of its last refill (``refilled_ms``), which may be
    earlier than ``now_ms``; this is the gate every decision at ``now_ms`` sees.
    Raises KeyError for a provider that is not configured.
    """
    gate = state.gates[provider]
    p = state.config.provider(provider)
    if p is None:
        raise KeyError(provider)
    return refill_gate(gate, p, state.now_ms)
