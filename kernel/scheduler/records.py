"""Building the state's records on the hot path (compiled with the transitions by mypyc).

The scheduler's records are dict-backed frozen attrs classes (``state.py``). Every
event builds a few of them, so the transitions build them through :func:`from_fields`
instead of the generated ``__init__``; the FIFO queue operations, the reap deadline and
the config lookups live here as functions, where the compiled build turns them into C
(``setup.py``): a call from compiled code into an interpreted method costs more than
the lookup itself. ``state.py`` re-exports them and the queue's methods delegate to
them; the two config lookups mirror ``SchedulerConfig``'s methods, and a test holds
them equal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, TypeVar

from .config import ClassConfig, ProviderConfig, SchedulerConfig, TaskClass

if TYPE_CHECKING:
    from .state import FifoQueue, TaskRecord

_T = TypeVar("_T")
_INTERACTIVE: Final = TaskClass.INTERACTIVE
_BATCH: Final = TaskClass.BATCH
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
    cc = class_config(config, task.task_class)
    deadline: int = task.last_progress_ms + cc.idle_ms_reap
    if cc.run_ms_limit > 0 and task.started_ms is not None:
        deadline = min(deadline, task.started_ms + cc.run_ms_limit)
    return deadline


def class_config(config: SchedulerConfig, task_class: TaskClass) -> ClassConfig:
    """``config.class_config(task_class)``: the policy of one task class."""
    if task_class is _INTERACTIVE:
        return config.interactive
    return config.batch if task_class is _BATCH else config.background


def provider_config(config: SchedulerConfig, name: str) -> ProviderConfig:
    """``config.provider(name)`` for a provider the kernel validated on submission."""
    for p in config.providers:
        if p.name == name:
            return p
    raise AssertionError(f"provider {name!r} was validated on submission")
