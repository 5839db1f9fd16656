"""Outputs of the scheduler kernel: instructions to the shell, executed in order.

The kernel never performs them. The shell reports the outcome back as events.
"""

from __future__ import annotations

import enum

import attrs


class CancelReason(enum.Enum):
    """Why the kernel cancels a task."""

    IDLE = "idle"
    """No progress signal for longer than its class's ``idle_ms_reap``."""
    RUN_LIMIT = "run_limit"
    """Ran longer in total than its class's ``run_ms_limit``."""
    PARENT_REAPED = "parent_reaped"
    """An ancestor was reaped, failed, or was cancelled; sub-agents go with it."""


class RefusalReason(enum.Enum):
    """Why an event was refused. The state is unchanged by a refused event.

    When several apply, the first in this order is reported: a stale clock, then an
    unknown id, then a terminal task, then the more specific reasons.
    """

    CLOCK_WENT_BACKWARDS = "clock_went_backwards"
    """``at_ms`` is earlier than the kernel's clock."""
    DUPLICATE_TASK = "duplicate_task"
    """A task with this id was already submitted; the repeat changes nothing."""
    UNKNOWN_TASK = "unknown_task"
    """No task with this id was ever submitted."""
    TASK_TERMINAL = "task_terminal"
    """The task already finished, failed or was reaped: a late event never resurrects it."""
    NOT_RUNNING = "not_running"
    """A step or heartbeat from a task that does not hold a lane."""
    UNKNOWN_PROVIDER = "unknown_provider"
    """The provider is not configured."""
    UNKNOWN_PARENT = "unknown_parent"
    """The parent task was never submitted."""
    PARENT_TERMINAL = "parent_terminal"
    """The parent task already ended; a sub-agent of it cannot start."""
    QUEUE_FULL = "queue_full"
    """Backpressure: ``queue_cap`` tasks are already waiting."""
    INVALID = "invalid"
    """A field is out of range (negative tokens, empty id)."""


@attrs.frozen(slots=False)  # dict-backed: cheaper to construct on the hot path
class StartTask:
    """Start (or resume, after a yield) ``task_id`` on ``lane``; its next step is admitted."""

    task_id: str
    lane: int
    level: int


@attrs.frozen(slots=False)  # dict-backed: cheaper to construct on the hot path
class YieldTask:
    """``task_id`` must give up its lane at this step boundary; it waits in its queue."""

    task_id: str


@attrs.frozen(slots=False)  # dict-backed: cheaper to construct on the hot path
class CancelTask:
    """Cancel ``task_id`` (it was reaped, or its parent was); its lane is already free."""

    task_id: str
    reason: CancelReason


@attrs.frozen(slots=False)  # dict-backed: cheaper to construct on the hot path
class WakeAt:
    """Call the kernel again (``ClockAdvanced``) at ``at_ms`` unless another event comes first."""

    at_ms: int


@attrs.frozen(slots=False)  # dict-backed: cheaper to construct on the hot path
class Refusal:
    """The event about ``task_id`` was refused for ``reason``; nothing changed."""

    task_id: str
    reason: RefusalReason


SchedulerEffect = StartTask | YieldTask | CancelTask | WakeAt | Refusal
"""Any instruction the scheduler emits."""
