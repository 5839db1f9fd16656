"""The scheduler's state: a tree of frozen attrs classes over persistent maps.

Per-event cost must not grow with the number of tasks (SPEC.md 1.7), so the state
keeps its own indexes: tasks by id in an ``immutables.Map`` (HAMT: one update is
O(log32 n), effectively constant), one FIFO queue per (level, class, provider) with a
head cursor, and the lanes as a short tuple (running tasks are at most ``lanes``).
All quantities are ints; nothing here is a float.
"""

from __future__ import annotations

from typing import TypeAlias

import attrs
import immutables

from .config import SchedulerConfig, TaskClass
from .lifecycle import Phase
from .records import fifo_push, fifo_remove, reap_deadline

QueueKey: TypeAlias = tuple[int, TaskClass, str]
"""A queue's key: (level, task class, provider name)."""

SCALE: int = 60_000
"""Bucket units per request or token: one minute in ms, so per-ms refill is exact (SPEC 1.5)."""


@attrs.frozen(slots=False)  # dict-backed: cheaper to construct on the hot path
class TaskRecord:
    """Everything the scheduler knows about one task (also its read-only view).

    Fields:

    * ``task_id``, ``agent``, ``task_class``, ``provider``, ``parent`` -- from the
      submission (``parent`` is None for a root task);
    * ``submit_seq`` -- submission order (0, 1, 2, ...), the order of cascades;
    * ``phase`` -- where it is in its life (:class:`Phase`);
    * ``level`` -- its MLFQ level, 0 highest;
    * ``used_ms`` -- service time used at this level, counted across yields;
    * ``last_progress_ms`` -- last heartbeat, finished step, submission or start;
    * ``demand_tokens`` -- token demand of its next step;
    * ``enqueue_seq`` -- global enqueue number, set each time it enters a queue
      (FIFO key within a queue); meaningful while WAITING;
    * ``queue_pos`` -- its slot in its queue's local order (internal index, so a
      waiting task can leave the middle of its queue in O(1)); meaningful while WAITING;
    * ``lane`` -- the lane it holds while RUNNING, else None;
    * ``started_ms`` -- first dispatch time (run limit clock), None before;
    * ``slice_start_ms`` -- when the current stretch of service began (dispatch or
      last finished step); meaningful while RUNNING;
    * ``charged_tokens`` -- tokens the gate took for its current step, so that the
      excess reported by ``StepFinished`` can be charged.
    """

    task_id: str
    agent: str
    task_class: TaskClass
    provider: str
    parent: str | None
    submit_seq: int
    phase: Phase
    level: int
    used_ms: int
    last_progress_ms: int
    demand_tokens: int
    enqueue_seq: int
    queue_pos: int
    lane: int | None
    started_ms: int | None
    slice_start_ms: int
    charged_tokens: int


@attrs.frozen(slots=False)  # dict-backed: cheaper to construct on the hot path
class FifoQueue:
    """A persistent FIFO of task ids with removal from the middle.

    ``items`` maps a local position to a task id; positions are handed out in
    increasing order (``tail`` is the next one), which is enqueue order. ``head`` is
    the smallest occupied position (``== tail`` when empty). Removing the head
    advances ``head`` over holes left by earlier middle removals; each hole is
    skipped once, so the cost is amortized O(1).
    """

    items: immutables.Map[int, str] = immutables.Map()
    head: int = 0
    tail: int = 0

    def __len__(self) -> int:
        return len(self.items)

    def peek(self) -> str | None:
        """The task id at the head, or None when empty."""
        return self.items.get(self.head) if self.items else None

    def push(self, task_id: str) -> tuple[FifoQueue, int]:
        """The queue with ``task_id`` appended, and the position it got."""
        return fifo_push(self, task_id)

    def remove(self, pos: int) -> FifoQueue:
        """The queue without the entry at ``pos`` (head or middle)."""
        return fifo_remove(self, pos)

    def task_ids(self) -> tuple[str, ...]:
        """All task ids in FIFO order (O(n): for views and tests, not for transitions)."""
        return tuple(self.items[p] for p in sorted(self.items.keys()))


@attrs.frozen(slots=False)  # dict-backed: cheaper to construct on the hot path
class GateState:
    """One provider's gate (SPEC.md 1.5).

    * ``limit_permille`` -- AIMD effective limit ``e`` in [floor_permille, 1000];
    * ``requests_scaled`` / ``tokens_scaled`` -- bucket contents in units of 1/60,000
      request or token, within [0, rate_e * 60,000];
    * ``refilled_ms`` -- the time the buckets were last refilled up to;
    * ``paused_until_ms`` -- no step is admitted before this (a 429's Retry-After);
    * ``streak`` -- consecutive successful steps since the last increase or 429;
    * ``half_open`` -- a 429 made the gate half-open: it admits one probe step at a
      time until a probe completes (SPEC.md 1.5);
    * ``probe`` -- the id of the running task holding the probe step, or ``""``.
    """

    limit_permille: int
    requests_scaled: int
    tokens_scaled: int
    refilled_ms: int
    paused_until_ms: int
    streak: int
    half_open: bool = False
    probe: str = ""

    @classmethod
    def initial(cls, requests_per_min: int, tokens_per_min: int) -> GateState:
        """A gate at full limit with full buckets."""
        return cls(1000, requests_per_min * SCALE, tokens_per_min * SCALE, 0, 0, 0)


@attrs.frozen(slots=False)  # dict-backed: cheaper to construct on the hot path
class SchedulerState:
    """The whole scheduler state (immutable; every transition returns a new one).

    * ``config`` -- the validated policy;
    * ``now_ms`` -- the kernel's clock: the latest ``at_ms`` it accepted;
    * ``tasks`` -- every task ever submitted, by id (terminal ones too, so that a
      repeat submission or a late event gets its defined answer);
    * ``children`` -- task id -> ids of its sub-agent tasks, in submission order;
    * ``queues`` -- (level, class, provider) -> FIFO of WAITING task ids; empty queues
      are absent;
    * ``lanes`` -- ``lanes[i]`` is the id of the task on lane ``i``, or None;
    * ``gates`` -- provider name -> its gate state (one per configured provider), its
      buckets as of its ``refilled_ms`` (refilled when a step reads it; ``gate_view``
      gives it as of ``now_ms``);
    * ``admission_window`` -- index ``now // admission_window_ms`` of the window that
      ``admissions`` counts;
    * ``admissions`` -- agent -> submissions accepted in that window;
    * ``waiting`` -- number of WAITING tasks (the queue-cap counter);
    * ``live`` -- number of non-terminal tasks (WAITING or RUNNING);
    * ``next_submit_seq`` / ``next_enqueue_seq`` -- the next submission / enqueue number;
    * ``next_boost_ms`` -- the next boost instant (a multiple of ``boost_period_ms``);
    * ``last_wake_ms`` -- the last deadline announced with ``WakeAt`` (None before any);
    * ``lane_deadlines`` -- derived index: ``lane_deadlines[i]`` is the reap deadline of
      the task on lane ``i`` (the earlier of ``last_progress_ms + idle_ms_reap`` and,
      when limited, ``started_ms + run_ms_limit``), or None for a free lane, so reaping
      and the wake-up compare ints instead of looking tasks up;
    * ``running_by_class`` -- derived index: running tasks per class, in ``TaskClass``
      order (the lane-reservation check);
    * ``queue_order`` -- derived index: the keys of ``queues`` sorted by
      :func:`queue_sort_key` (level first), so dispatch visits queues best level
      first and stops at the first level that has a dispatchable head;
    * ``waiting_by_class`` -- derived index: waiting tasks per class, in ``TaskClass``
      order, so "does a class that may take a free lane have a waiting task?" (asked
      by dispatch and the wake-up on every event) is answered without a queue scan.

    The four derived fields are computed from the others when not given, so a state
    built by hand (or loaded from a snapshot, which omits them) is always consistent.
    """

    config: SchedulerConfig
    now_ms: int
    tasks: immutables.Map[str, TaskRecord]
    children: immutables.Map[str, tuple[str, ...]]
    queues: immutables.Map[QueueKey, FifoQueue]
    lanes: tuple[str | None, ...]
    gates: immutables.Map[str, GateState]
    admission_window: int
    admissions: immutables.Map[str, int]
    waiting: int
    live: int
    next_submit_seq: int
    next_enqueue_seq: int
    next_boost_ms: int
    last_wake_ms: int | None
    lane_deadlines: tuple[int | None, ...] = attrs.field(
        default=attrs.Factory(lambda self: derive_lane_deadlines(self), takes_self=True)
    )
    running_by_class: tuple[int, int, int] = attrs.field(
        default=attrs.Factory(lambda self: derive_running_by_class(self), takes_self=True)
    )
    queue_order: tuple[QueueKey, ...] = attrs.field(
        default=attrs.Factory(lambda self: derive_queue_order(self), takes_self=True)
    )
    waiting_by_class: tuple[int, int, int] = attrs.field(
        default=attrs.Factory(lambda self: derive_waiting_by_class(self), takes_self=True)
    )

    @classmethod
    def initial(cls, config: SchedulerConfig) -> SchedulerState:
        """The empty scheduler at time 0: no tasks, free lanes, full buckets."""
        gates: immutables.Map[str, GateState] = immutables.Map()
        for p in config.providers:
            gates = gates.set(p.name, GateState.initial(p.requests_per_min, p.tokens_per_min))
        return cls(
            config=config,
            now_ms=0,
            tasks=immutables.Map(),
            children=immutables.Map(),
            queues=immutables.Map(),
            lanes=(None,) * config.lanes,
            gates=gates,
            admission_window=0,
            admissions=immutables.Map(),
            waiting=0,
            live=0,
            next_submit_seq=0,
            next_enqueue_seq=0,
            next_boost_ms=config.boost_period_ms,
            last_wake_ms=None,
        )


def derive_lane_deadlines(state: SchedulerState) -> tuple[int | None, ...]:
    """``lane_deadlines`` recomputed from the lanes and the tasks on them."""
    return tuple(None if tid is None else reap_deadline(state.config, state.tasks[tid]) for tid in state.lanes)


_CLASS_RANK: dict[TaskClass, int] = {c: i for i, c in enumerate(TaskClass)}


def queue_sort_key(key: QueueKey) -> tuple[int, int, str]:
    """A queue key's place in ``queue_order``: level, then class (definition order), then provider."""
    return key[0], _CLASS_RANK[key[1]], key[2]


def derive_queue_order(state: SchedulerState) -> tuple[QueueKey, ...]:
    """``queue_order`` recomputed from the queues."""
    return tuple(sorted(state.queues.keys(), key=queue_sort_key))


def derive_running_by_class(state: SchedulerState) -> tuple[int, int, int]:
    """``running_by_class`` recomputed from the lanes."""
    classes = [state.tasks[tid].task_class for tid in state.lanes if tid is not None]
    return (classes.count(TaskClass.INTERACTIVE), classes.count(TaskClass.BATCH), classes.count(TaskClass.BACKGROUND))


def derive_waiting_by_class(state: SchedulerState) -> tuple[int, int, int]:
    """``waiting_by_class`` recomputed from the queues."""
    counts = [0, 0, 0]
    for (_, cls, _), q in state.queues.items():
        counts[_CLASS_RANK[cls]] += len(q)
    return counts[0], counts[1], counts[2]
