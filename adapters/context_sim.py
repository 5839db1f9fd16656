"""Simulation of long context sessions: agentrm's three tiers against two baselines.

The workload's ``message`` records are appended to each agent's context in file order;
at each ``probe`` the agent needs a planted fact: is its ``answer`` still recoverable?
Policies:

* ``mlfq`` -- agentrm's context kernel (hot / warm / cold): every effect is performed
  at once by this shell -- entries archived in a real SQLite store
  (:class:`~.store.Store`, FTS5), summaries made by the summarizer, query recalls
  answered from the archive -- and reported back as events. A probe is answered from
  the visible context, or else by one recall query (the probe's ``query``) and the
  visible context after it.
* ``sliding-window`` -- keep the newest messages that fit in ``window_tokens``.
* ``rolling-summary`` -- when the context exceeds ``hot_budget_tokens``, fold the oldest
  messages (down to ``hot_target_tokens``) and the previous summary into one new
  summary, with the same summarizer and the same thresholds as agentrm's compaction.

Baselines have no archive: a probe is answered only from what they show. Metrics:
probe answerability (at the probe's time), key-fact retention at the end of the
session (every probed fact, asked again), summarization tokens (the summarizer's cost
model), peak context tokens (the largest visible context of any agent).
"""

from __future__ import annotations

import collections
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Final, Protocol

import attrs

from agentrm.kernel.context import (
    Append,
    ContextConfig,
    ContextEvent,
    ContextState,
    ContextTick,
    Entry,
    Recall,
    visible_context,
)
from agentrm.kernel.context.state import Phase

from .context_driver import ContextDriver, ContextRefused, run_sync
from .store import Store
from .summarize import ExtractiveSummarizer
from .workload import Message, Probe, Workload

CONTEXT_POLICIES: Final = ("mlfq", "sliding-window", "rolling-summary")


class ContextSimulationError(RuntimeError):
    """The context kernel refused an input the shell produced (a bug in one of them)."""


class ContextPolicy(Protocol):
    """A context manager under test: messages in, a visible context out."""

    name: str

    def append(self, m: Message) -> None:
        """Add one message to ``m.agent``'s context."""
        ...

    def answerable(self, p: Probe) -> str | None:
        """``"visible"`` or ``"recalled"`` if ``p.answer`` can be found now, else None."""
        ...

    def visible_tokens(self, agent: str) -> int:
        """Tokens of ``agent``'s visible context."""
        ...

    def summarization_tokens(self) -> int:
        """Tokens spent on summaries so far."""
        ...


def _entry(m: Message, seq: int) -> Entry:
    return Entry(m.entry_id, seq, m.role, m.text, m.tokens, m.key)


class AgentrmContext:
    """agentrm's context kernel, with this object as its shell (store, summarizer).

    The effects are performed by :class:`~.context_driver.ContextDriver` (shared with the
    asyncio runtime), inline: the store calls and the extractive summarizer never suspend.
    """

    name = "mlfq"

    def __init__(self, config: ContextConfig, store: Store, summarizer: ExtractiveSummarizer) -> None:
        self.now = 0
        self.driver = ContextDriver(config, store, summarizer, clock=lambda: self.now)
        self.store = store
        self.summarizer = summarizer
        # Ticks only matter when the config can hibernate agents (idleness or memory).
        self.ticks = config.idle_ms_hibernate > 0 or config.max_resident_agents > 0

    @property
    def state(self) -> ContextState:
        """The context kernel state."""
        return self.driver.state

    @property
    def spent(self) -> int:
        """Tokens the summarizer spent (its cost model)."""
        return self.driver.counters.summarization_tokens

    @property
    def summaries(self) -> int:
        """Summaries made."""
        return self.driver.counters.summaries

    @property
    def overflows(self) -> int:
        """Overflow reports (key entries alone above the warm budget)."""
        return self.driver.counters.overflows

    @property
    def hibernations(self) -> int:
        """Contexts persisted to storage."""
        return self.driver.counters.hibernations

    @property
    def wakeups(self) -> int:
        """Hibernated contexts loaded back."""
        return self.driver.counters.wakeups

    def _run(self, first: ContextEvent) -> None:
        """Feed ``first``, perform every effect, feed the outcomes, until nothing is left."""
        try:
            run_sync(self.driver.feed(first))
        except ContextRefused as exc:
            raise ContextSimulationError(str(exc)) from exc

    def _arrive(self, at_ms: int, agent: str) -> None:
        """Advance the clock (a tick may hibernate idle agents), then make ``agent`` resident."""
        self.now = max(self.now, at_ms)
        if self.ticks:
            self._run(ContextTick(self.now))
        slot = self.state.agents.get(agent)
        if slot is not None and slot.phase is Phase.HIBERNATED:
            self._run(Recall(self.now, agent))  # bring the whole context back from storage

    def append(self, m: Message) -> None:
        """Append one message through the kernel (recalling the agent first if it hibernated)."""
        self._arrive(m.at_ms, m.agent)
        self._run(Append(self.now, m.agent, m.entry_id, m.role, m.text, m.tokens, m.key))

    def _visible_has(self, agent: str, answer: str) -> bool:
        return any(answer in item.text for item in visible_context(self.state, agent))

    def answerable(self, p: Probe) -> str | None:
        """Visible now, or visible after one recall query for ``p.query``."""
        self._arrive(p.at_ms, p.agent)
        if self._visible_has(p.agent, p.answer):
            return "visible"
        self._run(Recall(self.now, p.agent, p.query))
        return "recalled" if self._visible_has(p.agent, p.answer) else None

    def visible_tokens(self, agent: str) -> int:
        """Tokens the agent sees now."""
        return sum(item.tokens for item in visible_context(self.state, agent))

    def summarization_tokens(self) -> int:
        """Tokens the summarizer spent."""
        return self.spent


class SlidingWindow:
    """Keep the newest messages that fit in ``window_tokens``; forget the rest."""

    name = "sliding-window"

    def __init__(self, config: ContextConfig) -> None:
        self.window = config.window_tokens
        self.agents: dict[str, collections.deque[Message]] = {}
        self.tokens: dict[str, int] = {}

    def append(self, m: Message) -> None:
        """Append, then drop the oldest messages beyond the window."""
        q = self.agents.setdefault(m.agent, collections.deque())
        q.append(m)
        self.tokens[m.agent] = self.tokens.get(m.agent, 0) + m.tokens
        while self.tokens[m.agent] > self.window and len(q) > 1:
            self.tokens[m.agent] -= q.popleft().tokens

    def answerable(self, p: Probe) -> str | None:
        """Visible in the window, or lost."""
        return "visible" if any(p.answer in m.text for m in self.agents.get(p.agent, ())) else None

    def visible_tokens(self, agent: str) -> int:
        """Tokens in the window."""
        return self.tokens.get(agent, 0)

    def summarization_tokens(self) -> int:
        """A sliding window never summarizes."""
        return 0


class RollingSummary:
    """One running summary plus the newest messages; overflow is folded into the summary."""

    name = "rolling-summary"

    def __init__(self, config: ContextConfig, summarizer: ExtractiveSummarizer) -> None:
        self.budget = config.hot_budget_tokens
        self.target = config.hot_target_tokens
        self.summarizer = summarizer
        self.recent: dict[str, collections.deque[Message]] = {}
        self.tokens: dict[str, int] = {}
        self.summary: dict[str, tuple[str, int]] = {}
        self.spent = 0
        self.summaries = 0

    def append(self, m: Message) -> None:
        """Append; past the budget, fold the oldest messages and the old summary into a new one."""
        q = self.recent.setdefault(m.agent, collections.deque())
        q.append(m)
        self.tokens[m.agent] = self.tokens.get(m.agent, 0) + m.tokens
        text, size = self.summary.get(m.agent, ("", 0))
        if self.tokens[m.agent] + size <= self.budget:
            return
        folded: list[Entry] = []
        if text:
            folded.append(Entry(f"{m.agent}/summary", -1, "system", text, size))
        while self.tokens[m.agent] > self.target and len(q) > 1:
            old = q.popleft()
            self.tokens[m.agent] -= old.tokens
            folded.append(_entry(old, len(folded)))
        result = self.summarizer.summarize(folded)
        self.spent += result.tokens_spent
        self.summaries += 1
        self.summary[m.agent] = (result.text, result.tokens)

    def answerable(self, p: Probe) -> str | None:
        """Visible in the summary or the recent messages, or lost."""
        text, _ = self.summary.get(p.agent, ("", 0))
        if p.answer in text or any(p.answer in m.text for m in self.recent.get(p.agent, ())):
            return "visible"
        return None

    def visible_tokens(self, agent: str) -> int:
        """Summary plus recent messages."""
        return self.tokens.get(agent, 0) + self.summary.get(agent, ("", 0))[1]

    def summarization_tokens(self) -> int:
        """Tokens the summarizer spent."""
        return self.spent


@attrs.frozen
class ContextMetrics:
    """The numbers of one context run."""

    policy: str
    agents: int
    messages: int
    probes: int
    probes_answered: int
    probes_visible: int
    probes_recalled: int
    probe_answerability_permille: int
    facts: int
    facts_retained_at_end: int
    retention_permille: int
    """Probed facts still recoverable (visible or by recall) after the last message."""
    summarization_tokens: int
    peak_context_tokens: int
    hibernations: int = 0
    """Contexts persisted to storage (agentrm only; idle agents, or memory pressure)."""
    wakeups: int = 0
    """Hibernated contexts loaded back (an agent spoke again)."""


@attrs.frozen
class ContextSample:
    """The state of a run after one record, for plots of a session over time."""

    index: int
    """Position of the record in the workload's context records."""
    at_ms: int
    agent: str
    visible_tokens: int
    """Tokens ``agent`` sees after this record."""
    summarization_tokens: int
    """Tokens spent on summaries so far (all agents)."""
    probes_answered: int
    """Probes answered so far (all agents)."""


def _permille(part: int, whole: int) -> int:
    return part * 1000 // whole if whole else 0


def run_context(workload: Workload, policy: ContextPolicy,
                trace: list[ContextSample] | None = None) -> ContextMetrics:
    """Play the workload's context records under ``policy`` and measure it.

    With ``trace``, one :class:`ContextSample` per record is appended to it.
    """
    agents: set[str] = set()
    messages = probes = answered = visible = recalled = peak = 0
    last_probe: dict[str, Probe] = {}
    for index, r in enumerate(workload.context):
        if isinstance(r, Message):
            policy.append(r)
            messages += 1
            agents.add(r.agent)
        else:
            probes += 1
            how = policy.answerable(r)
            answered += how is not None
            visible += how == "visible"
            recalled += how == "recalled"
            last_probe[r.fact] = r
        seen = policy.visible_tokens(r.agent)
        peak = max(peak, seen)
        if trace is not None:
            trace.append(ContextSample(index, r.at_ms, r.agent, seen, policy.summarization_tokens(), answered))
    retained = sum(policy.answerable(p) is not None for _, p in sorted(last_probe.items()))
    hibernations = policy.hibernations if isinstance(policy, AgentrmContext) else 0
    wakeups = policy.wakeups if isinstance(policy, AgentrmContext) else 0
    return ContextMetrics(
        policy=policy.name, agents=len(agents), messages=messages, probes=probes, probes_answered=answered,
        probes_visible=visible, probes_recalled=recalled,
        probe_answerability_permille=_permille(answered, probes), facts=len(last_probe),
        facts_retained_at_end=retained, retention_permille=_permille(retained, len(last_probe)),
        summarization_tokens=policy.summarization_tokens(), peak_context_tokens=peak,
        hibernations=hibernations, wakeups=wakeups,
    )


def simulate_context(workload: Workload, names: Sequence[str] = CONTEXT_POLICIES) -> tuple[ContextMetrics, ...]:
    """Run every named context policy over the workload (agentrm's store in a temporary directory)."""
    config = workload.header.context or ContextConfig()
    summarizer = ExtractiveSummarizer()
    out: list[ContextMetrics] = []
    for name in names:
        if name == "mlfq":
            with tempfile.TemporaryDirectory(prefix="agentrm-ctx-") as tmp:
                store = Store.create(Path(tmp) / "archive.db")
                try:
                    out.append(run_context(workload, AgentrmContext(config, store, summarizer)))
                finally:
                    store.close()
        elif name == "sliding-window":
            out.append(run_context(workload, SlidingWindow(config)))
        elif name == "rolling-summary":
            out.append(run_context(workload, RollingSummary(config, summarizer)))
        else:
            raise ValueError(f"unknown context policy {name!r}; choose from {', '.join(CONTEXT_POLICIES)}")
    return tuple(out)


def context_to_json(m: ContextMetrics) -> dict[str, object]:
    """Context metrics as a JSON object with stable keys."""
    return attrs.asdict(m)


def format_context_table(metrics: Sequence[ContextMetrics]) -> str:
    """A plain-text table of context runs, one column per policy."""
    rows = [
        ("messages / agents", [f"{m.messages} / {m.agents}" for m in metrics]),
        ("probes answerable", [f"{m.probes_answered}/{m.probes} ({m.probe_answerability_permille / 10:.1f}%)"
                               for m in metrics]),
        ("  from visible context", [str(m.probes_visible) for m in metrics]),
        ("  by a recall query", [str(m.probes_recalled) for m in metrics]),
        ("key facts retained at end", [f"{m.facts_retained_at_end}/{m.facts} ({m.retention_permille / 10:.1f}%)"
                                       for m in metrics]),
        ("summarization tokens", [f"{m.summarization_tokens:,}" for m in metrics]),
        ("peak context tokens", [f"{m.peak_context_tokens:,}" for m in metrics]),
    ]
    head = ["metric"] + [m.policy for m in metrics]
    width0 = max(len(r[0]) for r in rows)
    widths = [max(len(head[j + 1]), *(len(r[1][j]) for r in rows)) for j in range(len(metrics))]
    lines = ["  ".join([head[0].ljust(width0)] + [h.rjust(w) for h, w in zip(head[1:], widths)]),
             "  ".join(["-" * width0] + ["-" * w for w in widths])]
    for label, cells in rows:
        lines.append("  ".join([label.ljust(width0)] + [c.rjust(w) for c, w in zip(cells, widths)]))
    return "\n".join(lines) + "\n"
