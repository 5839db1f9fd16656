"""Event log v1: encoding round trips and every malformed-input case."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentrm.adapters.eventlog import (
    EventLog,
    EventLogReader,
    EventLogWriter,
    FormatError,
    LogHeader,
    LogRecord,
    config_from_json,
    config_to_json,
    decode_at,
    read_eventlog,
    write_eventlog,
)
from agentrm.kernel.scheduler.config import ClassConfig, ProviderConfig, SchedulerConfig, TaskClass
from agentrm.kernel.scheduler.effects import (
    CancelReason,
    CancelTask,
    Refusal,
    RefusalReason,
    StartTask,
    WakeAt,
    YieldTask,
)
from agentrm.kernel.scheduler.events import (
    ClockAdvanced,
    Heartbeat,
    RateLimited,
    StepFinished,
    Submit,
    TaskFailed,
    TaskFinished,
)

ids = st.text(min_size=0, max_size=6)
ints = st.integers(min_value=-(2**40), max_value=2**40)
events = st.one_of(
    st.builds(Submit, ints, ids, ids, st.sampled_from(TaskClass), ids, ints, st.none() | ids),
    st.builds(Heartbeat, ints, ids),
    st.builds(StepFinished, ints, ids, ints, ints),
    st.builds(TaskFinished, ints, ids),
    st.builds(TaskFailed, ints, ids, st.text(max_size=10)),
    st.builds(RateLimited, ints, ids, ids, st.none() | ints),
    st.builds(ClockAdvanced, ints),
)
effects = st.one_of(
    st.builds(StartTask, ids, ints, ints),
    st.builds(YieldTask, ids),
    st.builds(CancelTask, ids, st.sampled_from(CancelReason)),
    st.builds(WakeAt, ints),
    st.builds(Refusal, ids, st.sampled_from(RefusalReason)),
)


@st.composite
def configs(draw: st.DrawFn) -> SchedulerConfig:
    """Valid scheduler configurations with varied levels, classes and providers."""
    lanes = draw(st.integers(2, 16))
    levels = draw(st.integers(1, 4))
    allot = tuple(draw(st.lists(st.integers(1, 10**6), min_size=levels, max_size=levels)))
    e = sorted(draw(st.lists(st.integers(0, levels - 1), min_size=3, max_size=3)))
    r_int = draw(st.integers(1, lanes - 1))
    classes = [ClassConfig(e[i], r_int if i == 0 else 0, draw(st.integers(1, 10**6)), draw(st.integers(0, 10**6)))
               for i in range(3)]
    names = draw(st.lists(st.text(min_size=1, max_size=5), min_size=1, max_size=3, unique=True))
    providers = tuple(ProviderConfig(n, draw(st.integers(1, 10**4)), draw(st.integers(1, 10**7))) for n in names)
    return SchedulerConfig(lanes=lanes, level_allotments_ms=allot, interactive=classes[0], batch=classes[1],
                           background=classes[2], providers=providers)


@given(configs(), st.lists(st.tuples(events, st.lists(effects, max_size=4)), max_size=8))
def test_log_round_trips(config: SchedulerConfig, steps: list[tuple[object, list[object]]]) -> None:
    """Writing a log and reading it back yields exactly the same header and records."""
    buf = io.StringIO()
    writer = EventLogWriter(buf, config)
    for event, effs in steps:
        writer.write(event, tuple(effs))  # type: ignore[arg-type]
    buf.seek(0)
    reader = EventLogReader(buf)
    records = tuple(reader)
    assert reader.header == LogHeader(config)
    assert records == tuple(LogRecord(i + 1, ev, tuple(ef)) for i, (ev, ef) in enumerate(steps))  # type: ignore[misc]


@given(configs())
def test_config_round_trips(config: SchedulerConfig) -> None:
    """config_from_json inverts config_to_json."""
    assert decode_at("x", 1, lambda: config_from_json(config_to_json(config))) == config


def test_config_missing_fields_take_defaults() -> None:
    """A partial config object fills every missing field with its default."""
    got = decode_at("x", 1, lambda: config_from_json({"lanes": 4, "providers": [{"name": "p", "requests_per_min": 5,
                                                                                "tokens_per_min": 100}]}))
    assert got == SchedulerConfig(lanes=4, providers=(ProviderConfig("p", 5, 100),))


def test_write_is_canonical() -> None:
    """The writer emits the documented canonical bytes (sorted keys, compact, seq from 1)."""
    buf = io.StringIO()
    w = EventLogWriter(buf, SchedulerConfig())
    w.write(ClockAdvanced(7), (WakeAt(9),))
    lines = buf.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[1] == '{"effects":[{"at_ms":9,"type":"wake_at"}],"event":{"at_ms":7,"type":"clock_advanced"},"seq":1}'


GOOD_HEADER = io.StringIO()
write_eventlog(GOOD_HEADER, EventLog(LogHeader(SchedulerConfig()), ()))
HEADER = GOOD_HEADER.getvalue().rstrip("\n")
REC1 = '{"effects":[],"event":{"at_ms":1,"type":"clock_advanced"},"seq":1}'

BAD_LOGS = [
    ("", 1, "format", "empty file"),
    ("not json\n", 1, "", "not JSON"),
    ("[1]\n", 1, "", "expected a JSON object"),
    ('{"version":1}\n', 1, "format", "missing field"),
    ('{"format":"x","version":1}\n', 1, "format", 'expected "agentrm-eventlog"'),
    (HEADER.replace('"version":1', '"version":2') + "\n", 1, "version", "unsupported version 2"),
    (HEADER.replace('"lanes":8', '"lanes":"8"') + "\n", 1, "config.lanes", "expected an integer, got string"),
    (HEADER.replace('"lanes":8', '"lanes":0') + "\n", 1, "config.lanes", "must be >= 1"),
    (HEADER.replace('"lanes":8', '"lanes":8.5') + "\n", 1, "config.lanes", "only integers"),
    (HEADER.replace('"lanes":8', '"lanez":8') + "\n", 1, "config.lanez", "unknown config field"),
    (HEADER + "\n" + REC1, 2, "", "truncated last line"),
    (HEADER + "\n" + REC1.replace('"seq":1', '"seq":2') + "\n", 2, "seq", "expected 1"),
    (HEADER + "\n" + REC1 + "\n" + REC1 + "\n", 3, "seq", "expected 2"),
    (HEADER + "\n" + REC1.replace('"seq":1', '"seq":true') + "\n", 2, "seq", "expected an integer, got boolean"),
    (HEADER + "\n" + REC1.replace("clock_advanced", "explode") + "\n", 2, "event.type", 'unknown event type "explode"'),
    (HEADER + "\n" + REC1.replace('"at_ms":1,', "") + "\n", 2, "event.at_ms", "missing field"),
    (HEADER + "\n" + REC1.replace('"effects":[]', '"effects":[{"type":"wake_at"}]') + "\n", 2,
     "effects[0].at_ms", "missing field"),
    (HEADER + "\n" + REC1.replace('"effects":[]', '"effects":{}') + "\n", 2, "effects", "expected an array"),
    (HEADER + "\n" + REC1.replace('"effects":[],', "") + "\n", 2, "effects", "missing field"),
    (HEADER + "\n" + REC1.replace('"seq":1', '"seq":1,"seq":1') + "\n", 2, "seq", "duplicate key"),
    (HEADER + "\n\n", 2, "", "empty line"),
    (HEADER + "\n" + '{"effects":[{"reason":"bored","task_id":"t","type":"cancel_task"}],'
     '"event":{"at_ms":1,"type":"clock_advanced"},"seq":1}\n', 2, "effects[0].reason", "expected one of"),
]


@pytest.mark.parametrize(("text", "line", "field", "fragment"), BAD_LOGS)
def test_bad_log_is_reported_with_line_and_field(tmp_path: Path, text: str, line: int, field: str,
                                                 fragment: str) -> None:
    """Every malformed log raises FormatError naming the file, line and field."""
    path = tmp_path / "bad.jsonl"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(FormatError) as info:
        read_eventlog(str(path))
    err = info.value
    assert (err.path, err.line, err.field) == (str(path), line, field)
    assert fragment in err.message
    assert str(err).startswith(f"{path}:{line}: ")
