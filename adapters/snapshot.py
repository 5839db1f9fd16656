"""Scheduler state snapshots as JSON text (never pickle).

``dump_scheduler_state`` writes every field of a :class:`SchedulerState`, with sorted
keys and every map as a sorted list, so equal states give identical text.
``load_scheduler_state`` reads it back exactly (``load(dump(s)) == s``) and refuses
anything else with a :class:`SnapshotError` naming the offending field, e.g.
``tasks[3].level: expected an integer, got '2'``, or, for a well-typed snapshot whose
parts disagree, the broken invariant of SPEC.md (``check_scheduler``).

The runtime's durable mode stores these snapshots; recovery is the latest snapshot
followed by a fold of the journal after it.
"""

from __future__ import annotations

import json
from typing import Any, Final

import attrs
import cattrs
import immutables
from cattrs.preconf.json import make_converter
from cattrs.v import format_exception

from agentrm.kernel.scheduler.config import SchedulerConfig, TaskClass
from agentrm.kernel.scheduler.state import FifoQueue, GateState, SchedulerState, TaskRecord
from agentrm.specs.scheduler_invariants import check_scheduler

FORMAT: Final = "agentrm.scheduler_state"
VERSION: Final = 1


class SnapshotError(ValueError):
    """Snapshot text that is not a valid scheduler state; the message names the field."""


@attrs.frozen
class _Queue:
    level: int
    task_class: TaskClass
    provider: str
    head: int
    tail: int
    items: tuple[tuple[int, str], ...]


@attrs.frozen
class _Doc:
    """The JSON document: the state's fields with persistent maps as plain sorted containers."""

    format: str
    version: int
    config: SchedulerConfig
    now_ms: int
    tasks: tuple[TaskRecord, ...]
    children: dict[str, tuple[str, ...]]
    queues: tuple[_Queue, ...]
    lanes: tuple[str | None, ...]
    gates: dict[str, GateState]
    admission_window: int
    admissions: dict[str, int]
    waiting: int
    live: int
    next_submit_seq: int
    next_enqueue_seq: int
    next_boost_ms: int
    last_wake_ms: int | None


def _strict(kind: type[Any], name: str) -> Any:
    # cattrs' default int/str hooks coerce ("2" -> 2, 2.7 -> 2); a snapshot must not.
    def hook(value: Any, _: Any) -> Any:
        if type(value) is not kind:
            raise TypeError(f"expected {name}, got {value!r}")
        return value

    return hook


_conv = make_converter(forbid_extra_keys=True)
_conv.register_structure_hook(int, _strict(int, "an integer"))
_conv.register_structure_hook(str, _strict(str, "a string"))
_conv.register_structure_hook(bool, _strict(bool, "a boolean"))  # else bool (an int subclass) meets the int hook


def _describe(exc: BaseException, type_: Any) -> str:
    # Our own messages (strict hooks, ConfigError naming its field) say more than cattrs' default.
    if isinstance(exc, (TypeError, ValueError)) and not isinstance(exc, cattrs.BaseValidationError):
        if str(exc):
            return str(exc)
    return format_exception(exc, type_)


def dump_scheduler_state(state: SchedulerState) -> str:
    """The state as canonical JSON text (sorted keys, sorted maps): equal states, equal text."""
    queues = tuple(
        _Queue(level, cls, provider, q.head, q.tail, tuple(sorted(q.items.items())))
        for (level, cls, provider), q in sorted(state.queues.items(), key=lambda kv: (kv[0][0], kv[0][1].value, kv[0][2]))
    )
    doc = _Doc(
        format=FORMAT,
        version=VERSION,
        config=state.config,
        now_ms=state.now_ms,
        tasks=tuple(state.tasks[k] for k in sorted(state.tasks.keys())),
        children=dict(state.children.items()),
        queues=queues,
        lanes=state.lanes,
        gates=dict(state.gates.items()),
        admission_window=state.admission_window,
        admissions=dict(state.admissions.items()),
        waiting=state.waiting,
        live=state.live,
        next_submit_seq=state.next_submit_seq,
        next_enqueue_seq=state.next_enqueue_seq,
        next_boost_ms=state.next_boost_ms,
        last_wake_ms=state.last_wake_ms,
    )
    return json.dumps(_conv.unstructure(doc), sort_keys=True, separators=(",", ":"))


def load_scheduler_state(text: str) -> SchedulerState:
    """The state that :func:`dump_scheduler_state` wrote; :class:`SnapshotError` for anything else."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise SnapshotError(f"snapshot: not JSON: {e}") from None
    if not isinstance(raw, dict):
        raise SnapshotError("snapshot: expected a JSON object")
    if raw.get("format") != FORMAT:
        raise SnapshotError(f"format: expected {FORMAT!r}, got {raw.get('format')!r}")
    if raw.get("version") != VERSION:
        raise SnapshotError(f"version: expected {VERSION}, got {raw.get('version')!r}")
    try:
        doc = _conv.structure(raw, _Doc)
    except cattrs.BaseValidationError as e:
        raise SnapshotError("; ".join(cattrs.transform_error(e, path="snapshot", format_exception=_describe))) from None
    except (ValueError, TypeError) as e:  # e.g. ConfigError raised while building the config
        raise SnapshotError(f"snapshot: {e}") from None
    state = _state_from(doc)
    # Well-typed is not enough: a queue naming an unknown task, or a lane held by a
    # waiting one, would break the kernel later and far from the cause.
    problems = check_scheduler(state)
    if problems:
        shown = "; ".join(str(v) for v in problems[:3])
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise SnapshotError(f"snapshot: inconsistent state: {shown}{more}")
    return state


def _state_from(doc: _Doc) -> SchedulerState:
    ids = {t.task_id for t in doc.tasks}
    if len(ids) != len(doc.tasks):
        raise SnapshotError("snapshot.tasks: duplicate task id")
    if len(doc.lanes) != doc.config.lanes:
        raise SnapshotError(f"snapshot.lanes: expected {doc.config.lanes} lanes, got {len(doc.lanes)}")
    for i, held in enumerate(doc.lanes):  # the derived indexes look these up while the state is built
        if held is not None and held not in ids:
            raise SnapshotError(f"snapshot.lanes[{i}]: unknown task {held!r}")
    queues: immutables.Map[tuple[int, TaskClass, str], FifoQueue] = immutables.Map()
    for i, q in enumerate(doc.queues):
        items = immutables.Map({pos: tid for pos, tid in q.items})
        if len(items) != len(q.items):
            raise SnapshotError(f"snapshot.queues[{i}].items: duplicate position")
        queues = queues.set((q.level, q.task_class, q.provider), FifoQueue(items, q.head, q.tail))
    return SchedulerState(
        config=doc.config,
        now_ms=doc.now_ms,
        tasks=immutables.Map({t.task_id: t for t in doc.tasks}),
        children=immutables.Map(doc.children),
        queues=queues,
        lanes=doc.lanes,
        gates=immutables.Map(doc.gates),
        admission_window=doc.admission_window,
        admissions=immutables.Map(doc.admissions),
        waiting=doc.waiting,
        live=doc.live,
        next_submit_seq=doc.next_submit_seq,
        next_enqueue_seq=doc.next_enqueue_seq,
        next_boost_ms=doc.next_boost_ms,
        last_wake_ms=doc.last_wake_ms,
    )
