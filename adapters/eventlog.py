"""Event log v1: the JSON Lines record of a scheduler run, and its JSON codecs.

A log is a header line, then one record per kernel step::

    {"config":{...},"format":"agentrm-eventlog","kernel_version":"0.1.0","version":1}
    {"effects":[{"lane":0,"level":0,"task_id":"t1","type":"start_task"}],"event":{...},"seq":1}

Every line is a JSON object with sorted keys and compact separators, so a log is
byte-for-byte reproducible; every quantity is an integer. Events and effects carry a
``"type"`` discriminator (``submit``, ``start_task``, ...) and all of their fields.
``seq`` starts at 1 and has no gaps, so record ``seq`` sits on line ``seq + 1``.

Replay folds the ``event`` of every record through :func:`agentrm.kernel.step` and
compares the effects (see ``agentrm replay``). The reader never skips anything: a bad
line, a gap in ``seq`` or a truncated last line raises :class:`FormatError` naming the
file, the line and the field.
"""

from __future__ import annotations

import enum
import json
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from json.encoder import encode_basestring_ascii as _json_str
from typing import IO, Any, Final, TypeVar

import attrs

from agentrm import __version__
from agentrm.kernel.scheduler.config import (
    ClassConfig,
    ConfigError,
    ProviderConfig,
    SchedulerConfig,
)
from agentrm.kernel.scheduler.effects import (
    CancelTask,
    Refusal,
    SchedulerEffect,
    StartTask,
    WakeAt,
    YieldTask,
)
from agentrm.kernel.scheduler.events import (
    ClockAdvanced,
    Heartbeat,
    RateLimited,
    SchedulerEvent,
    StepFinished,
    Submit,
    TaskFailed,
    TaskFinished,
)

EVENTLOG_FORMAT: Final = "agentrm-eventlog"
EVENTLOG_VERSION: Final = 1
KERNEL_VERSION: Final = __version__
"""Written into every header; replay of a log from another version may diverge."""

T = TypeVar("T")


class FormatError(ValueError):
    """Bad input in a workload or an event log.

    ``path`` is the file (or ``"<stream>"``), ``line`` the 1-based line number (0 when
    the problem is not on one line), ``field`` the dotted path of the offending field
    (``""`` for the whole line).
    """

    def __init__(self, path: str, line: int, field: str, message: str) -> None:
        self.path = path
        self.line = line
        self.field = field
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class _FieldError(Exception):
    """Raised inside decoding; the caller adds the file and line."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(field, message)
        self.field = field
        self.message = message


# The discriminators are part of the format, so they are spelled out here rather than
# derived from class names (renaming a class must not change the format).
EVENT_TYPES: Final[Mapping[str, type[Any]]] = {
    "submit": Submit,
    "heartbeat": Heartbeat,
    "step_finished": StepFinished,
    "task_finished": TaskFinished,
    "task_failed": TaskFailed,
    "rate_limited": RateLimited,
    "clock_advanced": ClockAdvanced,
}
EFFECT_TYPES: Final[Mapping[str, type[Any]]] = {
    "start_task": StartTask,
    "yield_task": YieldTask,
    "cancel_task": CancelTask,
    "wake_at": WakeAt,
    "refusal": Refusal,
}
_TYPE_NAME: Final[Mapping[type[Any], str]] = {
    cls: name for table in (EVENT_TYPES, EFFECT_TYPES) for name, cls in table.items()
}


# --------------------------------------------------------------------------- encoding

def dumps_line(obj: Mapping[str, Any]) -> str:
    """One canonical JSON line (sorted keys, compact, ASCII), without the newline."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def _encode_value(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple):
        return [_encode_value(v) for v in value]
    if attrs.has(type(value)):
        return {f.name: _encode_value(getattr(value, f.name)) for f in attrs.fields(type(value))}
    return value


def event_to_json(event: SchedulerEvent) -> dict[str, Any]:
    """The JSON object of one scheduler event: every field plus its ``"type"``."""
    obj: dict[str, Any] = _encode_value(event)
    obj["type"] = _TYPE_NAME[type(event)]
    return obj


def effect_to_json(effect: SchedulerEffect) -> dict[str, Any]:
    """The JSON object of one scheduler effect: every field plus its ``"type"``."""
    obj: dict[str, Any] = _encode_value(effect)
    obj["type"] = _TYPE_NAME[type(effect)]
    return obj


# --------------------------------------------------------------------------- fast encoding
#
# The runtime journals every kernel step, and the general path above (a dict built by
# reflection, then json.dumps) costs tens of microseconds a record. The functions below
# write the same bytes directly: for each event and effect class a generated function
# (attrs' own technique) writing its JSON keys in sorted order (the "type" discriminator
# among them) in one f-string, each field value by an encoder chosen by its exact
# type -- the same C string escaper json.dumps uses with
# ensure_ascii, int.__repr__ as json.dumps uses for ints, "null" for None, an enum's
# string value. A value of any other type (a bool, a float, a str subclass) takes the
# general path for the whole object, so the output is byte-identical for every input; a
# Hypothesis property in tests/test_eventlog_fast.py compares the two.

def _scalar_encoders() -> dict[Any, Callable[[Any], str]]:
    encoders: dict[Any, Callable[[Any], str]] = {
        str: _json_str, int: int.__repr__, type(None): lambda _: "null",
    }
    # Every enum a field of an event or effect is declared with, when its values are all
    # plain strings (the general path writes ``.value``, so any other value takes it):
    # its members' texts are computed once.
    for table in (EVENT_TYPES, EFFECT_TYPES):
        for cls in table.values():
            for hint in typing.get_type_hints(cls).values():
                for tp in typing.get_args(hint) or (hint,):
                    if (isinstance(tp, type) and issubclass(tp, enum.Enum)
                            and all(type(m.value) is str for m in tp)):
                        encoders[tp] = {m: _json_str(m.value) for m in tp}.__getitem__
    return encoders


_SCALARS: Final[Mapping[Any, Callable[[Any], str]]] = _scalar_encoders()


def _value_source(var: str, hint: Any, namespace: dict[str, Any]) -> str:
    """Source of an expression encoding ``var``, declared ``hint``: a test of the declared
    type(s) first, then the table lookup (which raises KeyError for an unknown type)."""
    branches: list[str] = []
    for tp in typing.get_args(hint) or (hint,):
        if tp is type(None):
            branches.append(f'"null" if {var} is None else ')
        elif tp in _SCALARS:
            name = f"_t{len(namespace)}"
            namespace[name], namespace[f"{name}_json"] = tp, _SCALARS[tp]
            branches.append(f"{name}_json({var}) if type({var}) is {name} else ")
    return "{(" + "".join(branches) + f"_S[type({var})]({var}))}}"


def _literal(text: str) -> str:
    """``text`` as literal f-string source (between triple single quotes)."""
    if "\\" in text or "'" in text:  # never for identifiers and JSON punctuation
        raise TypeError(f"cannot generate an encoder writing {text!r}")
    return text.replace("{", "{{").replace("}", "}}")


def _compile(cls: type[Any], type_name: str) -> Callable[[Any], str]:
    """Generate the encoder of one class: its keys in sorted order, each value encoded by its type.

    For ``TaskFinished`` the generated function is::

        def encode(obj):
            v0 = obj.at_ms
            v1 = obj.task_id
            return f'''{{"at_ms":{(_t1_json(v0) if type(v0) is _t1 else _S[type(v0)](v0))},"task_id":{(
                _t3_json(v1) if type(v1) is _t3 else _S[type(v1)](v1))},"type":"task_finished"}}'''

    with ``_t1`` = int, ``_t3`` = str and ``_S`` the table of encoders by type: one
    f-string (no intermediate strings), the declared type tested before any lookup. A
    value whose type has no entry in ``_S`` raises KeyError: the caller takes the general path.
    """
    names = [f.name for f in attrs.fields(cls)]
    if "type" in names:  # it would clash with the discriminator (event_to_json overwrites it)
        raise TypeError(f"{cls.__name__}: a field named 'type' cannot be encoded")
    hints = typing.get_type_hints(cls)
    namespace: dict[str, Any] = {"_S": _SCALARS}
    loads: list[str] = []
    pieces: list[str] = []
    for i, key in enumerate(sorted([*names, "type"])):
        head = ("{" if i == 0 else ",") + _json_str(key) + ":"
        if key == "type":
            pieces.append(_literal(head + _json_str(type_name)))
        else:
            loads.append(f"    v{i} = obj.{key}\n")
            pieces += [_literal(head), _value_source(f"v{i}", hints[key], namespace)]
    source = "def encode(obj):\n" + "".join(loads) + "    return f'''" + "".join(pieces) + "}}'''\n"
    exec(compile(source, f"<eventlog encoder for {type_name}>", "exec"), namespace)  # noqa: S102 - generated from attrs fields
    encode: Callable[[Any], str] = namespace["encode"]
    return encode


_ENCODERS: Final[Mapping[type[Any], Callable[[Any], str]]] = {
    cls: _compile(cls, name) for table in (EVENT_TYPES, EFFECT_TYPES) for name, cls in table.items()
}


def event_line(event: SchedulerEvent) -> str:
    """``dumps_line(event_to_json(event))``, byte for byte, without building the dict."""
    encode = _ENCODERS.get(type(event))
    if encode is not None:
        try:
            return encode(event)
        except KeyError:  # a value of a type without a fast encoder
            pass
    return dumps_line(event_to_json(event))


def effects_line(effects: Iterable[SchedulerEffect]) -> str:
    """The canonical JSON array of ``[effect_to_json(e) for e in effects]``, byte for byte."""
    if effects == ():  # most kernel steps emit nothing
        return "[]"
    parts: list[str] = []
    for effect in effects:
        encode = _ENCODERS.get(type(effect))
        if encode is not None:
            try:
                parts.append(encode(effect))
                continue
            except KeyError:  # a value of a type without a fast encoder
                pass
        parts.append(dumps_line(effect_to_json(effect)))
    return f"[{','.join(parts)}]"


def record_line(seq: int, event: SchedulerEvent, effects: Iterable[SchedulerEffect]) -> str:
    """``dumps_line(record_to_json(LogRecord(seq, event, effects)))``, byte for byte."""
    if type(seq) is not int:
        return dumps_line(record_to_json(LogRecord(seq, event, tuple(effects))))
    return f'{{"effects":{effects_line(effects)},"event":{event_line(event)},"seq":{seq!r}}}'


def config_to_json(config: SchedulerConfig) -> dict[str, Any]:
    """The JSON object of a scheduler configuration (every field, tuples as arrays)."""
    result: dict[str, Any] = _encode_value(config)
    return result


# --------------------------------------------------------------------------- decoding

def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number (only integers are allowed)"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


_HINTS: dict[type[Any], dict[str, Any]] = {}


def _hints(cls: type[Any]) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = typing.get_type_hints(cls)
        _HINTS[cls] = hints
    return hints


def _decode_value(tp: Any, value: Any, field: str) -> Any:
    """Decode ``value`` as type ``tp`` (int, str, enum, Optional, tuple[X, ...], attrs)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _decode_value(inner, value, field)
    if origin is tuple:
        if not isinstance(value, list):
            raise _FieldError(field, f"expected an array, got {_type_name(value)}")
        (item_tp, _ellipsis) = typing.get_args(tp)
        return tuple(_decode_value(item_tp, v, f"{field}[{i}]") for i, v in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise _FieldError(field, f"expected a boolean, got {_type_name(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _FieldError(field, f"expected an integer, got {_type_name(value)}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise _FieldError(field, f"expected a string, got {_type_name(value)}")
        return value
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        allowed = [m.value for m in tp]
        if not isinstance(value, str) or value not in allowed:
            raise _FieldError(field, f"expected one of {', '.join(map(str, allowed))}; got {json.dumps(value)}")
        return tp(value)
    if isinstance(tp, type) and attrs.has(tp):
        return _decode_attrs(tp, value, field, require_all=True)
    raise TypeError(f"no JSON decoder for {tp!r}")  # a bug in this module, not bad input


def _decode_attrs(cls: type[T], value: Any, field: str, *, require_all: bool,
                  ignore: frozenset[str] = frozenset()) -> T:
    """Decode a JSON object into attrs class ``cls``.

    Unknown keys are refused (a typo must not silently fall back to a default). With
    ``require_all`` every field must be present; otherwise missing ones take defaults.
    """
    prefix = f"{field}." if field else ""
    if not isinstance(value, dict):
        raise _FieldError(field, f"expected an object, got {_type_name(value)}")
    hints = _hints(cls)
    fields: tuple[attrs.Attribute[Any], ...] = attrs.fields(typing.cast(Any, cls))
    names = [f.name for f in fields]
    for key in sorted(value):
        if key not in names and key not in ignore:
            raise _FieldError(f"{prefix}{key}", f"unknown field for {_TYPE_NAME.get(cls, cls.__name__)}")
    kwargs: dict[str, Any] = {}
    for f in fields:
        if f.name not in value:
            if require_all or f.default is attrs.NOTHING:
                raise _FieldError(f"{prefix}{f.name}", "missing field")
            continue
        kwargs[f.name] = _decode_value(hints[f.name], value[f.name], f"{prefix}{f.name}")
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        # ConfigError messages start with the field name: "window_tokens: must be >= 1".
        sub, _, message = str(exc).partition(": ")
        raise _FieldError(f"{prefix}{sub}", message) from None


def _decode_tagged(table: Mapping[str, type[Any]], value: Any, field: str, what: str) -> Any:
    if not isinstance(value, dict):
        raise _FieldError(field, f"expected an object, got {_type_name(value)}")
    tag = value.get("type")
    prefix = f"{field}." if field else ""
    if tag is None:
        raise _FieldError(f"{prefix}type", "missing field")
    if not isinstance(tag, str) or tag not in table:
        raise _FieldError(f"{prefix}type", f"unknown {what} type {json.dumps(tag)}; expected one of {', '.join(table)}")
    return _decode_attrs(table[tag], value, field, require_all=True, ignore=frozenset({"type"}))


def event_from_json(value: Any, field: str = "event") -> SchedulerEvent:
    """Decode one event object; raises ``_FieldError`` (wrapped by readers) when bad."""
    event: SchedulerEvent = _decode_tagged(EVENT_TYPES, value, field, "event")
    return event


def effect_from_json(value: Any, field: str = "effect") -> SchedulerEffect:
    """Decode one effect object; raises ``_FieldError`` (wrapped by readers) when bad."""
    effect: SchedulerEffect = _decode_tagged(EFFECT_TYPES, value, field, "effect")
    return effect


def config_from_json(value: Any, field: str = "config") -> SchedulerConfig:
    """Decode a configuration; missing fields take the defaults, unknown ones are refused.

    Class configs and providers are decoded the same way (missing fields default),
    which lets a hand-written workload header name only what it changes.
    """
    if not isinstance(value, dict):
        raise _FieldError(field, f"expected an object, got {_type_name(value)}")
    prefix = f"{field}." if field else ""
    raw = dict(value)
    for cls_name in ("interactive", "batch", "background"):
        if cls_name in raw:
            raw[cls_name] = _decode_attrs(ClassConfig, raw[cls_name], f"{prefix}{cls_name}", require_all=False)
    if "providers" in raw:
        providers = raw["providers"]
        if not isinstance(providers, list):
            raise _FieldError(f"{prefix}providers", f"expected an array, got {_type_name(providers)}")
        raw["providers"] = tuple(
            _decode_attrs(ProviderConfig, p, f"{prefix}providers[{i}]", require_all=False)
            for i, p in enumerate(providers)
        )
    # The nested values were decoded above (with defaults); the rest are scalars.
    hints = _hints(SchedulerConfig)
    names = [f.name for f in attrs.fields(SchedulerConfig)]
    for key in sorted(raw):
        if key not in names:
            raise _FieldError(f"{prefix}{key}", "unknown config field")
    kwargs: dict[str, Any] = {}
    for name in names:
        if name not in raw:
            continue
        if name in ("interactive", "batch", "background", "providers"):
            kwargs[name] = raw[name]
        else:
            kwargs[name] = _decode_value(hints[name], raw[name], f"{prefix}{name}")
    try:
        return SchedulerConfig(**kwargs)
    except ConfigError as exc:
        # ConfigError messages start with the field name: "lanes: must be >= 1".
        sub, _, message = str(exc).partition(": ")
        raise _FieldError(f"{prefix}{sub}", message) from None


def _loads_line(text: str, path: str, line: int) -> dict[str, Any]:
    """Parse one JSON line into an object; duplicate keys and non-objects are errors."""

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj: dict[str, Any] = {}
        for k, v in pairs:
            if k in obj:
                raise FormatError(path, line, k, "duplicate key")
            obj[k] = v
        return obj

    def no_constants(name: str) -> Any:
        raise FormatError(path, line, "", f"not JSON: {name} is not allowed")

    try:
        value = json.loads(text, object_pairs_hook=no_duplicates, parse_constant=no_constants)
    except json.JSONDecodeError as exc:
        raise FormatError(path, line, "", f"not JSON: {exc.msg} at column {exc.colno}") from None
    if not isinstance(value, dict):
        raise FormatError(path, line, "", f"expected a JSON object, got {_type_name(value)}")
    return value


def iter_lines(stream: IO[str], path: str) -> Iterator[tuple[int, str]]:
    """(line number, text) of every line; a last line without a newline is an error.

    Writers always end a line with a newline, so a missing one means the writer died
    mid-line: the record is reported, never silently dropped or half-applied.
    """
    number = 0
    for number, text in enumerate(stream, start=1):
        if not text.endswith("\n"):
            raise FormatError(path, number, "", "truncated last line (no newline at end of file)")
        if text.strip() == "":
            raise FormatError(path, number, "", "empty line")
        yield number, text


def check_header(obj: Mapping[str, Any], path: str, line: int, fmt: str, version: int) -> None:
    """Raise unless ``obj`` names format ``fmt`` at ``version``."""
    if "format" not in obj:
        raise FormatError(path, line, "format", f"missing field (expected {json.dumps(fmt)})")
    if obj["format"] != fmt:
        raise FormatError(path, line, "format", f"expected {json.dumps(fmt)}, got {json.dumps(obj['format'])}")
    if "version" not in obj:
        raise FormatError(path, line, "version", "missing field")
    if obj["version"] != version or isinstance(obj["version"], bool):
        raise FormatError(path, line, "version",
                          f"unsupported version {json.dumps(obj['version'])}; this agentrm reads version {version}")


def decode_at(path: str, line: int, fn: typing.Callable[[], T]) -> T:
    """Run a decoder, turning its field errors into a :class:`FormatError` at ``line``."""
    try:
        return fn()
    except _FieldError as exc:
        raise FormatError(path, line, exc.field, exc.message) from None


# --------------------------------------------------------------------------- the log

@attrs.frozen
class LogHeader:
    """The first line of an event log: the configuration the kernel ran with."""

    config: SchedulerConfig
    kernel_version: str = KERNEL_VERSION


@attrs.frozen
class LogRecord:
    """One kernel step: its gapless sequence number, input event and output effects."""

    seq: int
    event: SchedulerEvent
    effects: tuple[SchedulerEffect, ...]


@attrs.frozen
class EventLog:
    """A whole event log held in memory."""

    header: LogHeader
    records: tuple[LogRecord, ...]


def header_to_json(header: LogHeader) -> dict[str, Any]:
    """The JSON object of a log header."""
    return {
        "format": EVENTLOG_FORMAT,
        "version": EVENTLOG_VERSION,
        "kernel_version": header.kernel_version,
        "config": config_to_json(header.config),
    }


def record_to_json(record: LogRecord) -> dict[str, Any]:
    """The JSON object of a log record."""
    return {
        "seq": record.seq,
        "event": event_to_json(record.event),
        "effects": [effect_to_json(e) for e in record.effects],
    }


class EventLogWriter:
    """Writes an event log to a text stream: the header now, then one line per step.

    ``next_seq`` lets a writer continue an existing log after a restart. Each call
    writes one whole line (and flushes when ``flush`` is set), so a crash leaves at
    most one truncated last line, which the reader reports.
    """

    def __init__(self, stream: IO[str], config: SchedulerConfig, *, write_header: bool = True,
                 next_seq: int = 1, flush: bool = False) -> None:
        self._stream = stream
        self._flush = flush
        self.next_seq = next_seq
        if write_header:
            self._write(header_to_json(LogHeader(config)))

    def _write(self, obj: Mapping[str, Any]) -> None:
        self._stream.write(dumps_line(obj) + "\n")
        if self._flush:
            self._stream.flush()

    def write(self, event: SchedulerEvent, effects: tuple[SchedulerEffect, ...]) -> int:
        """Append the record of one kernel step; returns its ``seq``."""
        seq = self.next_seq
        self._stream.write(record_line(seq, event, effects) + "\n")
        if self._flush:
            self._stream.flush()
        self.next_seq = seq + 1
        return seq


def _header_from_json(obj: dict[str, Any], path: str, line: int) -> LogHeader:
    check_header(obj, path, line, EVENTLOG_FORMAT, EVENTLOG_VERSION)
    for key in sorted(obj):
        if key not in ("format", "version", "config", "kernel_version"):
            raise FormatError(path, line, key, "unknown header field")
    for key in ("kernel_version", "config"):
        if key not in obj:
            raise FormatError(path, line, key, "missing field")
    kv = obj["kernel_version"]
    if not isinstance(kv, str):
        raise FormatError(path, line, "kernel_version", f"expected a string, got {_type_name(kv)}")
    config = decode_at(path, line, lambda: config_from_json(obj["config"]))
    return LogHeader(config, kv)


def _record_from_json(obj: dict[str, Any], path: str, line: int, expected_seq: int) -> LogRecord:
    for key in sorted(obj):
        if key not in ("seq", "event", "effects"):
            raise FormatError(path, line, key, "unknown record field")
    for key in ("seq", "event", "effects"):
        if key not in obj:
            raise FormatError(path, line, key, "missing field")
    seq = obj["seq"]
    if isinstance(seq, bool) or not isinstance(seq, int):
        raise FormatError(path, line, "seq", f"expected an integer, got {_type_name(seq)}")
    if seq != expected_seq:
        raise FormatError(path, line, "seq", f"expected {expected_seq} (sequence numbers have no gaps), got {seq}")
    event = decode_at(path, line, lambda: event_from_json(obj["event"]))
    effects_raw = obj["effects"]
    if not isinstance(effects_raw, list):
        raise FormatError(path, line, "effects", f"expected an array, got {_type_name(effects_raw)}")
    effects: list[SchedulerEffect] = []
    for i, raw in enumerate(effects_raw):
        try:
            effects.append(effect_from_json(raw, f"effects[{i}]"))
        except _FieldError as exc:
            raise FormatError(path, line, exc.field, exc.message) from None
    return LogRecord(seq, event, tuple(effects))


class EventLogReader:
    """Reads an event log from a text stream: the header at once, records as iterated.

    Raises :class:`FormatError` on the first bad line. ``first_seq`` is the sequence
    number the first record must carry (1 for a whole log).
    """

    def __init__(self, stream: IO[str], path: str = "<stream>", *, first_seq: int = 1) -> None:
        self.path = path
        self._lines = iter_lines(stream, path)
        self._first_seq = first_seq
        first = next(self._lines, None)
        if first is None:
            raise FormatError(path, 1, "format", "empty file: expected an event log header")
        line, text = first
        self.header = _header_from_json(_loads_line(text, path, line), path, line)
        self.last_line = line

    def __iter__(self) -> Iterator[LogRecord]:
        expected = self._first_seq
        for line, text in self._lines:
            self.last_line = line
            yield _record_from_json(_loads_line(text, path=self.path, line=line), self.path, line, expected)
            expected += 1


def read_eventlog(path: str) -> EventLog:
    """Read and validate a whole event log file."""
    try:
        with open(path, encoding="utf-8", newline="") as stream:
            reader = EventLogReader(stream, path)
            return EventLog(reader.header, tuple(reader))
    except UnicodeDecodeError as exc:
        raise FormatError(path, 0, "", f"not UTF-8 text: {exc.reason}") from None


def write_eventlog(stream: IO[str], log: EventLog) -> None:
    """Write a whole event log (header and records) to ``stream``."""
    stream.write(dumps_line(header_to_json(log.header)) + "\n")
    for record in log.records:
        stream.write(dumps_line(record_to_json(record)) + "\n")
