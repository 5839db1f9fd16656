"""Tests of the heuristic key-information marker, with examples both ways."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentrm.adapters.keymark import SIGNAL_NAMES, SIGNALS, HeuristicMarker, Marker

KEY = [
    ("See https://example.com/docs for the spec", "assistant", ("url", "path")),
    ("email me at dana@example.org", "user", ("email",)),
    ("The API key lives in config/prod/secrets.yaml", "user", ("path",)),
    ("Logs are under /var/log/agentrm", "tool", ("path",)),
    ("Set max_retries in the client", "user", ("identifier",)),
    ("Call getUserProfile first", "assistant", ("identifier",)),
    ("commit 3f9a2c1 fixed it", "tool", ("identifier",)),
    ("Ticket JIRA-4521 is blocking", "user", ("identifier", "number")),
    ("The invoice total is $1,250.50", "tool", ("number",)),
    ("meet at 14:30", "user", ("number",)),
    ("We decided to use Postgres instead of MySQL.", "user", ("decision",)),
    ("Let's go with the second option.", "user", ("decision",)),
    ("You must finish before Friday.", "user", ("constraint",)),
    ("Do not push to main", "user", ("constraint",)),
    ("Keep the reply to at most three lines.", "user", ("constraint",)),
    ("I prefer short answers in bullet points.", "user", ("preference",)),
    ("I'm allergic to peanuts.", "user", ("preference",)),
    ("My name is Dana.", "user", ("preference",)),
    ("Please never use emojis.", "user", ("constraint", "preference")),
    ("You are a helpful assistant.", "system", ("role",)),
]

NOT_KEY = [
    ("Thanks, that sounds good!", "user"),
    ("Hello there, how are you today?", "user"),
    ("ok", "user"),
    ("Let me think about it for a moment.", "assistant"),
    ("Sure, here you go.", "assistant"),
    ("Don't worry about it.", "user"),
    ("Could you explain that again in simpler words?", "user"),
    ("That is a fair point, I see what you mean.", "assistant"),
    ("Step 2 is next.", "assistant"),
    ("Review the budget and the rate limit report.", "user"),
    ("", "tool"),
]


@pytest.mark.parametrize(("text", "role", "reasons"), KEY)
def test_key_information_is_marked_with_its_reasons(text: str, role: str, reasons: tuple[str, ...]) -> None:
    """Each kind of key information is flagged, and exactly the expected signals fire."""
    marker = HeuristicMarker()
    assert (marker.reasons(text, role), marker(text, role)) == (reasons, True)


@pytest.mark.parametrize(("text", "role"), NOT_KEY)
def test_small_talk_is_not_marked(text: str, role: str) -> None:
    """Pleasantries, filler and lone small numbers are not key information."""
    marker = HeuristicMarker()
    assert (marker.reasons(text, role), marker(text, role)) == ((), False)


def test_signals_can_be_selected_and_unknown_ones_are_refused() -> None:
    """A marker counts only its selected signals; an unknown signal name is a ValueError."""
    numbers_off = HeuristicMarker(signals=frozenset({"url", "decision"}), always_key_roles=frozenset())
    assert [numbers_off(t, r) for t, r in [
        ("order 4417 shipped", "tool"),
        ("We decided on plan B", "user"),
        ("You are a helpful assistant.", "system"),
    ]] == [False, True, False]
    with pytest.raises(ValueError, match=r"unknown signals \['numbers'\]"):
        HeuristicMarker(signals=frozenset({"numbers"}))


def test_the_marker_satisfies_the_protocol() -> None:
    """HeuristicMarker and a plain function are both usable as a Marker."""

    def everything(text: str, role: str) -> bool:
        return True

    markers: list[Marker] = [HeuristicMarker(), everything]
    assert [m("My name is Dana.", "user") for m in markers] == [True, True]
    assert list(SIGNAL_NAMES) == [
        "url", "email", "path", "identifier", "number", "decision", "constraint", "preference",
    ]


@given(st.text(), st.sampled_from(["user", "assistant", "tool", "system"]))
def test_marking_is_total_and_agrees_with_its_reasons(text: str, role: str) -> None:
    """Any text is classified without error, and marked exactly when some reason fires."""
    marker = HeuristicMarker()
    reasons = marker.reasons(text, role)
    assert marker(text, role) == bool(reasons)
    order = ["role", *SIGNAL_NAMES]
    assert list(reasons) == [name for name in order if name in reasons]


@given(st.text(alphabet=st.sampled_from("abdeiklmnoprstuwy '’/._-:\\@1Ak\u212aſDO\n")) | st.text())
def test_hints_never_change_a_signals_answer(text: str) -> None:
    """Every signal's cheap pre-check only skips texts its pattern cannot match."""
    text = text.replace("\u2019", "'")
    for signal in SIGNALS:
        assert signal.search(text, text.lower()) == (signal.pattern.search(text) is not None)
