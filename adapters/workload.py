"""Workload v1: the JSON Lines input of the simulator.

A header line (format, version, the scheduler config, the real providers' limits,
the agents' heartbeat period), then one record per line, each with a ``"type"``:

* ``task`` -- one task submission: arrival, id, agent, class, provider, parent, its
  steps (``duration_ms``, ``tokens``) and an injected fault (``hang``, ``crash`` or
  ``silent_finish`` at step ``fault_step``);
* ``message`` -- one context entry appended to an agent's session; ``fact`` labels a
  planted key fact and is used only for scoring (no policy sees it);
* ``probe`` -- a later question about a fact: is ``answer`` still recoverable?

Records are in time order (``arrival_ms`` / ``at_ms`` never decrease), task ids are
unique and a parent is listed before its sub-agents, so a workload is checked line by
line and an error names its line and field. Writing is canonical (sorted keys,
compact separators), so a generated workload is byte-for-byte reproducible.
"""

from __future__ import annotations

import enum
import io
from collections.abc import Iterator
from typing import IO, Any, Final

import attrs

from agentrm.kernel.context.config import ContextConfig
from agentrm.kernel.scheduler.config import SchedulerConfig, TaskClass

from .eventlog import (
    FormatError,
    _decode_attrs,
    _encode_value,
    _FieldError,
    _loads_line,
    check_header,
    config_from_json,
    config_to_json,
    decode_at,
    dumps_line,
    iter_lines,
)

WORKLOAD_FORMAT: Final = "agentrm-workload"
WORKLOAD_VERSION: Final = 1


class Fault(enum.Enum):
    """A fault injected into a task at step ``fault_step``."""

    NONE = "none"
    HANG = "hang"
    """The agent starts the step and never progresses again (no heartbeat, no finish)."""
    CRASH = "crash"
    """The agent runs the step, then fails (``TaskFailed``) instead of finishing it."""
    SILENT_FINISH = "silent_finish"
    """The agent completes the step, then never reports anything again (lost finish)."""


@attrs.frozen
class StepSpec:
    """One step of a task: an LLM call plus its tool calls."""

    duration_ms: int
    tokens: int


@attrs.frozen
class TaskSpec:
    """One task submission."""

    arrival_ms: int
    task_id: str
    agent: str
    task_class: TaskClass
    steps: tuple[StepSpec, ...]
    provider: str = "default"
    parent: str | None = None
    fault: Fault = Fault.NONE
    fault_step: int = 0

    @property
    def service_ms(self) -> int:
        """Total step time: the latency of this task on an idle system."""
        return sum(s.duration_ms for s in self.steps)


@attrs.frozen
class Storm:
    """From ``start_ms`` (inclusive) to ``end_ms`` (exclusive) the provider answers 429 to every call."""

    start_ms: int
    end_ms: int


@attrs.frozen
class ProviderModel:
    """The real provider's limit: what it answers 429 to, whatever the scheduler thinks.

    Its own token buckets hold one minute of ``requests_per_min`` / ``tokens_per_min``
    and refill continuously; a call it cannot pay for gets a 429 with ``retry_after_ms``.
    During a :class:`Storm` every call gets a 429 (an overloaded upstream).
    """

    name: str
    requests_per_min: int
    tokens_per_min: int
    retry_after_ms: int = 1_000
    storms: tuple[Storm, ...] = ()
    burst_ms: int = 60_000
    """The buckets hold ``burst_ms`` worth of the rate: 60 s is a plain per-minute limit;
    less models a provider that enforces its limit over shorter periods (OpenAI documents
    that a per-minute limit may be enforced per second), so bursts get 429s sooner."""


@attrs.frozen
class Message:
    """One context entry appended to ``agent``'s session at ``at_ms``.

    ``key`` is what the application marks as key information (the policy sees it);
    ``fact`` is the planted fact's label, used only for scoring.
    """

    at_ms: int
    agent: str
    entry_id: str
    role: str
    text: str
    tokens: int
    key: bool = False
    fact: str | None = None


@attrs.frozen
class Probe:
    """At ``at_ms``, ``agent`` needs fact ``fact``: can ``answer`` still be found with ``query``?"""

    at_ms: int
    agent: str
    probe_id: str
    fact: str
    query: str
    answer: str


ContextRecord = Message | Probe
"""A record of a context session."""


@attrs.frozen
class WorkloadHeader:
    """The first line of a workload.

    ``config`` is the scheduler configuration the mlfq policy runs with (baselines use
    its lane count); ``providers`` are the real providers' limits (a provider without a
    model never answers 429); agents send a heartbeat every ``heartbeat_ms`` while a
    step runs. The run stops at ``horizon_ms`` (0: when nothing more can happen), and
    every metric is taken there. ``scenario`` and ``seed`` record where the workload came from.
    ``context`` is the context-lifecycle config for the workload's sessions (None: the defaults).
    """

    config: SchedulerConfig
    providers: tuple[ProviderModel, ...] = ()
    heartbeat_ms: int = 5_000
    horizon_ms: int = 0
    scenario: str = ""
    seed: int = 0
    context: ContextConfig | None = None

    def provider_model(self, name: str) -> ProviderModel | None:
        """The model of provider ``name``, or None when it is unlimited."""
        for p in self.providers:
            if p.name == name:
                return p
        return None


@attrs.frozen
class Workload:
    """A whole workload: header, task submissions, context session records."""

    header: WorkloadHeader
    tasks: tuple[TaskSpec, ...] = ()
    context: tuple[ContextRecord, ...] = ()


_RECORD_TYPES: Final[dict[str, type[Any]]] = {"task": TaskSpec, "message": Message, "probe": Probe}
_RECORD_NAMES: Final[dict[type[Any], str]] = {v: k for k, v in _RECORD_TYPES.items()}


# --------------------------------------------------------------------------- writing

def header_to_json(header: WorkloadHeader) -> dict[str, Any]:
    """The JSON object of a workload header."""
    return {
        "format": WORKLOAD_FORMAT,
        "version": WORKLOAD_VERSION,
        "config": config_to_json(header.config),
        "providers": [_encode_value(p) for p in header.providers],
        "heartbeat_ms": header.heartbeat_ms,
        "horizon_ms": header.horizon_ms,
        "scenario": header.scenario,
        "seed": header.seed,
        "context": None if header.context is None else _encode_value(header.context),
    }


def record_to_json(record: TaskSpec | ContextRecord) -> dict[str, Any]:
    """The JSON object of one workload record, with its ``"type"``."""
    obj: dict[str, Any] = _encode_value(record)
    obj["type"] = _RECORD_NAMES[type(record)]
    return obj


def write_workload(stream: IO[str], workload: Workload) -> None:
    """Write ``workload`` canonically: header, tasks and context records merged by time.

    Tasks and context records are merged by time (tasks first on a tie) so the file
    reads as one timeline; reading it back gives the same :class:`Workload`.
    """
    stream.write(dumps_line(header_to_json(workload.header)) + "\n")
    i = j = 0
    tasks, ctx = workload.tasks, workload.context
    while i < len(tasks) or j < len(ctx):
        if j >= len(ctx) or (i < len(tasks) and tasks[i].arrival_ms <= ctx[j].at_ms):
            stream.write(dumps_line(record_to_json(tasks[i])) + "\n")
            i += 1
        else:
            stream.write(dumps_line(record_to_json(ctx[j])) + "\n")
            j += 1


def dumps_workload(workload: Workload) -> str:
    """The canonical text of ``workload``."""
    buf = io.StringIO()
    write_workload(buf, workload)
    return buf.getvalue()


# --------------------------------------------------------------------------- reading

def _header_from_json(obj: dict[str, Any], path: str, line: int) -> WorkloadHeader:
    check_header(obj, path, line, WORKLOAD_FORMAT, WORKLOAD_VERSION)
    if "config" not in obj:
        raise FormatError(path, line, "config", "missing field")
    config = decode_at(path, line, lambda: config_from_json(obj["config"]))
    rest = {k: v for k, v in obj.items() if k not in ("format", "version", "config")}
    body = decode_at(path, line, lambda: _decode_attrs(_HeaderBody, rest, "", require_all=False))
    header = WorkloadHeader(config, body.providers, body.heartbeat_ms, body.horizon_ms, body.scenario, body.seed,
                            body.context)
    if header.heartbeat_ms < 1:
        raise FormatError(path, line, "heartbeat_ms", f"must be >= 1, got {header.heartbeat_ms}")
    if header.horizon_ms < 0:
        raise FormatError(path, line, "horizon_ms", f"must be >= 0 (0 = run until quiescent), got {header.horizon_ms}")
    seen: set[str] = set()
    for i, p in enumerate(header.providers):
        where = f"providers[{i}]"
        if config.provider(p.name) is None:
            raise FormatError(path, line, f"{where}.name", f"provider {p.name!r} is not in config.providers")
        if p.name in seen:
            raise FormatError(path, line, f"{where}.name", f"duplicate provider {p.name!r}")
        seen.add(p.name)
        for fname in ("requests_per_min", "tokens_per_min"):
            if getattr(p, fname) < 1:
                raise FormatError(path, line, f"{where}.{fname}", f"must be >= 1, got {getattr(p, fname)}")
        if p.retry_after_ms < 0:
            raise FormatError(path, line, f"{where}.retry_after_ms", f"must be >= 0, got {p.retry_after_ms}")
        if not 1 <= p.burst_ms <= 60_000:
            raise FormatError(path, line, f"{where}.burst_ms", f"must be in [1, 60000], got {p.burst_ms}")
        for j, storm in enumerate(p.storms):
            if not 0 <= storm.start_ms < storm.end_ms:
                raise FormatError(path, line, f"{where}.storms[{j}]",
                                  f"needs 0 <= start_ms < end_ms, got {storm.start_ms}..{storm.end_ms}")
    return header


@attrs.frozen
class _HeaderBody:
    """The header fields after ``config``, decoded generically (same order as the header)."""

    providers: tuple[ProviderModel, ...] = ()
    heartbeat_ms: int = 5_000
    horizon_ms: int = 0
    scenario: str = ""
    seed: int = 0
    context: ContextConfig | None = None


class _Checker:
    """Cross-record validation: ids unique, parents known, time never decreasing."""

    def __init__(self, header: WorkloadHeader, path: str) -> None:
        self.header = header
        self.path = path
        self.task_ids: set[str] = set()
        self.entry_ids: set[tuple[str, str]] = set()
        self.probe_ids: set[str] = set()
        self.facts: set[str] = set()
        self.last_time = 0

    def fail(self, line: int, field: str, message: str) -> None:
        """Raise the FormatError for ``line``/``field``."""
        raise FormatError(self.path, line, field, message)

    def time(self, line: int, field: str, at: int) -> None:
        """Check that ``at`` is not negative and not earlier than the previous record."""
        if at < 0:
            self.fail(line, field, f"must be >= 0, got {at}")
        if at < self.last_time:
            self.fail(line, field, f"goes back in time ({at} < {self.last_time}); records must be in time order")
        self.last_time = at

    def task(self, t: TaskSpec, line: int) -> None:
        """Check a task record against the header and the records before it."""
        self.time(line, "arrival_ms", t.arrival_ms)
        if not t.task_id:
            self.fail(line, "task_id", "must be non-empty")
        if t.task_id in self.task_ids:
            self.fail(line, "task_id", f"duplicate task id {t.task_id!r}")
        if not t.agent:
            self.fail(line, "agent", "must be non-empty")
        if self.header.config.provider(t.provider) is None:
            self.fail(line, "provider", f"unknown provider {t.provider!r} (not in the header's config.providers)")
        if t.parent is not None and t.parent not in self.task_ids:
            self.fail(line, "parent", f"unknown task {t.parent!r} (a parent must be listed before its sub-agents)")
        if not t.steps:
            self.fail(line, "steps", "needs at least one step")
        for i, s in enumerate(t.steps):
            if s.duration_ms < 1:
                self.fail(line, f"steps[{i}].duration_ms", f"must be >= 1, got {s.duration_ms}")
            if s.tokens < 0:
                self.fail(line, f"steps[{i}].tokens", f"must be >= 0, got {s.tokens}")
        if not 0 <= t.fault_step < len(t.steps):
            self.fail(line, "fault_step", f"must be in [0, {len(t.steps) - 1}], got {t.fault_step}")
        self.task_ids.add(t.task_id)

    def message(self, m: Message, line: int) -> None:
        """Check a message record (unique entry id per agent) and note its planted fact."""
        self.time(line, "at_ms", m.at_ms)
        if not m.agent:
            self.fail(line, "agent", "must be non-empty")
        if not m.entry_id:
            self.fail(line, "entry_id", "must be non-empty")
        if (m.agent, m.entry_id) in self.entry_ids:
            self.fail(line, "entry_id", f"duplicate entry id {m.entry_id!r} for agent {m.agent!r}")
        if m.tokens < 0:
            self.fail(line, "tokens", f"must be >= 0, got {m.tokens}")
        self.entry_ids.add((m.agent, m.entry_id))
        if m.fact is not None:
            self.facts.add(m.fact)

    def probe(self, p: Probe, line: int) -> None:
        """Check a probe record: unique id, a fact some earlier message planted."""
        self.time(line, "at_ms", p.at_ms)
        if p.probe_id in self.probe_ids:
            self.fail(line, "probe_id", f"duplicate probe id {p.probe_id!r}")
        if p.fact not in self.facts:
            self.fail(line, "fact", f"unknown fact {p.fact!r} (no earlier message plants it)")
        if not p.answer:
            self.fail(line, "answer", "must be non-empty")
        self.probe_ids.add(p.probe_id)


def _record_from_json(obj: dict[str, Any]) -> TaskSpec | ContextRecord:
    tag = obj.get("type")
    if tag is None:
        raise _FieldError("type", "missing field")
    if not isinstance(tag, str) or tag not in _RECORD_TYPES:
        raise _FieldError("type", f"unknown record type {tag!r}; expected one of task, message, probe")
    cls = _RECORD_TYPES[tag]
    record: TaskSpec | ContextRecord = _decode_attrs(cls, obj, "", require_all=False, ignore=frozenset({"type"}))
    return record


def iter_workload(stream: IO[str], path: str = "<stream>") -> Iterator[WorkloadHeader | TaskSpec | ContextRecord]:
    """The header, then every record, validated line by line."""
    lines = iter_lines(stream, path)
    first = next(lines, None)
    if first is None:
        raise FormatError(path, 1, "format", "empty file: expected a workload header")
    line, text = first
    header = _header_from_json(_loads_line(text, path, line), path, line)
    yield header
    checker = _Checker(header, path)
    for line, text in lines:
        obj = _loads_line(text, path, line)
        record = decode_at(path, line, lambda: _record_from_json(obj))
        if isinstance(record, TaskSpec):
            checker.task(record, line)
        elif isinstance(record, Message):
            checker.message(record, line)
        else:
            checker.probe(record, line)
        yield record


def read_workload_stream(stream: IO[str], path: str = "<stream>") -> Workload:
    """Read and validate a whole workload from a text stream."""
    items = iter_workload(stream, path)
    header = next(items)
    assert isinstance(header, WorkloadHeader)
    tasks: list[TaskSpec] = []
    context: list[ContextRecord] = []
    for item in items:
        if isinstance(item, TaskSpec):
            tasks.append(item)
        elif isinstance(item, (Message, Probe)):
            context.append(item)
    return Workload(header, tuple(tasks), tuple(context))


def read_workload(path: str) -> Workload:
    """Read and validate a workload file; raises :class:`FormatError` on bad input."""
    try:
        with open(path, encoding="utf-8", newline="") as stream:
            return read_workload_stream(stream, path)
    except UnicodeDecodeError as exc:
        raise FormatError(path, 0, "", f"not UTF-8 text: {exc.reason}") from None
