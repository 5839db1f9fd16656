"""Building the state's records on the hot path (compiled with the transitions by mypyc).

The scheduler's records are dict-backed frozen attrs classes (``state.py``). Every
event builds a few of them, so the transitions build them through :func:`from_fields`
instead of the generated ``__init__``; the FIFO queue operations and the reap deadline
live here as functions, where the compiled build turns them into C (``setup.py``).
``state.py`` re-exports them and the queue's methods delegate to them, so there is one
implementation of each.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, TypeVar

if TYPE_CHECKING:
    from .config import SchedulerConfig
    from .state import FifoQueue, TaskRecord

_T = TypeVar("_T")
_new: Final = object.__new__
_set_attr: Final = object.__setattr__


def from_fields(cls: type[_T], fields: dict[str, Any]) -> _T:
    """An instance of the dict-backed frozen attrs class ``cls`` whose fields are ``fields``.

    The hot path's constructor (about half the cost of the generated ``__init__`` on
    this kernel's 17- and 18-field records): it skips ``__init__``, which for these
    classes only stores each field (they have no validators, converters or hash cache),
    and installs ``fields`` as the instance's ``__dict__``. So ``fields`` must name every
    field exactly once, with a value of the annotated type, and must not be used again:
    the callers build it from a literal or from a copy of a complete instance's
    ``__dict__``, and tests hold the results equal to the ``__init__``-built ones.
    """
    inst = _new(cls)
    _set_attr(inst, "__dict__", fields)
    return inst


def fifo_push(q: FifoQueue, task_id: str) -> tuple[FifoQueue, int]:
    """``q`` with ``task_id`` appended, and the position it got."""
    tail = q.tail
    return from_fields(type(q), {"items": q.items.set(tail, task_id), "head": q.head, "tail": tail + 1}), tail


def fifo_remove(q: FifoQueue, pos: int) -> FifoQueue:
    """``q`` without the entry at ``pos`` (head or middle); the head skips the holes it meets."""
    items = q.items.delete(pos)
    head, tail = q.head, q.tail
    if pos == head:
        head += 1
        while head < tail and head not in items:
            head += 1
    return from_fields(type(q), {"items": items, "head": head, "tail": tail})


def reap_deadline(config: SchedulerConfig, task: TaskRecord) -> int:
    """When a running ``task`` becomes a zombie: idle limit, or run limit if earlier."""
    cc = config.class_config(task.task_class)
    deadline: int = task.last_progress_ms + cc.idle_ms_reap
    if cc.run_ms_limit > 0 and task.started_ms is not None:
        deadline = min(deadline, task.started_ms + cc.run_ms_limit)
    return deadline
