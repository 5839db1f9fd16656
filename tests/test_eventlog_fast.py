"""The event log's fast encoder writes the same bytes as its general encoder, for every event and effect."""

from __future__ import annotations

import enum
import json
import typing
from typing import Any

import attrs
from hypothesis import given
from hypothesis import strategies as st

from agentrm.adapters.eventlog import (
    EFFECT_TYPES,
    EVENT_TYPES,
    LogRecord,
    dumps_line,
    effect_from_json,
    effect_to_json,
    effects_line,
    event_from_json,
    event_line,
    event_to_json,
    record_line,
    record_to_json,
)
from agentrm.kernel.scheduler.effects import SchedulerEffect
from agentrm.kernel.scheduler.events import SchedulerEvent

# Any code point, lone surrogates and control characters included: the escaping is the hard part.
TEXT = st.text(alphabet=st.characters(blacklist_categories=()), max_size=12)
INTS = st.integers() | st.integers(min_value=-(2**70), max_value=2**70)


class _Str(str):
    """A str subclass: json.dumps writes it as a string, the fast path must hand it over."""


# Values of the wrong type for any field: the fast path must give them to the general
# encoder, which writes them (bools, floats, str subclasses) or raises (nan, objects).
ODD = st.one_of(
    st.booleans(), st.floats(allow_nan=True, allow_infinity=True), TEXT.map(_Str),
    st.tuples(st.integers()), st.just(object()),
)


def _values(hint: Any) -> st.SearchStrategy[Any]:
    """Well-typed values for a field declared as ``hint``."""
    args = typing.get_args(hint)
    if args:  # X | None
        return st.one_of(*[_values(a) for a in args])
    if hint is type(None):
        return st.none()
    if hint is str:
        return TEXT
    if hint is int:
        return INTS
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return st.sampled_from(list(hint))
    raise TypeError(f"no strategy for {hint!r}")  # a new field type: extend this test


def _objects(classes: typing.Iterable[type[Any]], odd: bool) -> st.SearchStrategy[Any]:
    def build(cls: type[Any]) -> st.SearchStrategy[Any]:
        hints = typing.get_type_hints(cls)
        fields = {f.name: (_values(hints[f.name]) | ODD if odd else _values(hints[f.name]))
                  for f in attrs.fields(cls)}
        return st.builds(cls, **fields)
    return st.one_of(*[build(c) for c in classes])


EVENTS = _objects(EVENT_TYPES.values(), odd=False)
EFFECTS = _objects(EFFECT_TYPES.values(), odd=False)


def _outcome(fn: typing.Callable[[], str]) -> str | type[BaseException]:
    try:
        return fn()
    except (TypeError, ValueError) as exc:
        return type(exc)


@given(EVENTS, st.lists(EFFECTS, max_size=4), st.integers(min_value=1))
def test_fast_lines_equal_the_general_encoder(event: SchedulerEvent, effects: list[SchedulerEffect],
                                              seq: int) -> None:
    """For well-typed events and effects, the event, effects and record lines are byte-identical to the general encoder's."""
    general = (
        dumps_line(event_to_json(event)),
        json.dumps([effect_to_json(e) for e in effects], sort_keys=True, separators=(",", ":"),
                   ensure_ascii=True, allow_nan=False),
        dumps_line(record_to_json(LogRecord(seq, event, tuple(effects)))),
    )
    assert (event_line(event), effects_line(effects), record_line(seq, event, effects)) == general


@given(EVENTS, EFFECTS)
def test_fast_lines_decode_to_what_was_encoded(event: SchedulerEvent, effect: SchedulerEffect) -> None:
    """Decoding a fast-encoded event or effect gives back an equal value."""
    decoded = (event_from_json(json.loads(event_line(event))),
               effect_from_json(json.loads(effects_line([effect]))[0]))
    assert decoded == (event, effect)


@given(_objects([*EVENT_TYPES.values(), *EFFECT_TYPES.values()], odd=True))
def test_odd_values_take_the_general_path(obj: Any) -> None:
    """With a field of an unexpected type the fast path writes exactly what the general encoder writes, or raises as it does."""
    to_json = event_to_json if type(obj) in EVENT_TYPES.values() else effect_to_json
    assert _outcome(lambda: event_line(obj)) == _outcome(lambda: dumps_line(to_json(obj)))
