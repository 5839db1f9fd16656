"""The shell of the context kernel: perform its effects against a store and a summarizer.

Two layers, both thin (the kernel decides, these only perform):

* :class:`ContextDriver` -- feeds one event to :func:`~agentrm.kernel.context.context_step`,
  performs every effect (archive, summarize, persist, load, search) and feeds the outcome
  back, until nothing is left. The simulator (``context_sim``) and the asyncio runtime
  both use it. It is written once, as coroutines: the simulator's store calls and the
  extractive summarizer never suspend, so :func:`run_sync` drives it without a loop.
* :class:`ContextService` -- the runtime's per-runtime context: one lock around the
  kernel state, entries written ahead to the store, lazy recovery after a restart,
  checkpoints, and the idle-hibernation timer.

Durability (the runtime, ``write_ahead=True``). Every entry is written to the store's
archive table (verbatim, FTS-indexed) *before* the kernel sees its ``Append``, and
``append`` returns only after that write, so an entry whose append returned is never
lost. The archive table is therefore the agent's whole history, a superset of what the
kernel counts as archived (cold); the kernel's later ``ArchiveEntries`` rewrites the same
rows, which the store treats as a no-op, and query results are filtered to the entries
the kernel knows as archived. Each agent's :class:`AgentContext` is checkpointed in the
store's ``contexts`` table: on hibernation (that is the ``PersistContext`` itself), every
``checkpoint_every`` appends, and at clean shutdown. After a crash, the first touch of an
agent rebuilds it: its checkpoint is installed as a hibernated stub and recalled through
the kernel (``Recall`` -> ``LoadContext`` -> ``Loaded``), then every archived entry after
the checkpoint is appended again through the kernel in seq order. The rebuilt state
satisfies every kernel invariant and holds every entry; it equals the lost one up to what
depended on wall-clock time (idle hibernations, the entries a query recall brought into
view), and, with a non-deterministic summarizer, up to the wording of re-made summaries.
"""

from __future__ import annotations

import asyncio
import collections
import typing
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Final, Protocol, TypeVar

import attrs

from agentrm.kernel.context import (
    Append,
    ArchiveEntries,
    Archived,
    ContextConfig,
    ContextEffect,
    ContextEvent,
    ContextOverflow,
    ContextRefusal,
    ContextState,
    ContextTick,
    Entry,
    Hibernate,
    LoadContext,
    Loaded,
    LoadFailed,
    PersistContext,
    Persisted,
    PersistFailed,
    Recall,
    RequestSummary,
    SearchArchive,
    SearchFound,
    Summarized,
    Summary,
    SummaryFailed,
    VisibleItem,
    context_step,
    next_hibernate_ms,
    visible_context,
)
from agentrm.kernel.context.state import AgentContext, AgentSlot, Phase, Stub

from .keymark import HeuristicMarker, Marker
from .store import Store, StoreError
from .summarize import ExtractiveSummarizer, Summarizer, count_tokens

__all__ = [
    "ContextDriver",
    "ContextError",
    "ContextRefused",
    "ContextService",
    "Io",
    "run_inline",
    "run_sync",
    "with_hibernated",
]

T = TypeVar("T")


class Io(Protocol):
    """Runs one blocking store call where the store may be used (e.g. its writer thread)."""

    def __call__(self, fn: Callable[[], T], /) -> Awaitable[T]:
        """Run ``fn`` and give its result."""
        ...

DEFAULT_CHECKPOINT_EVERY: Final = 256
"""Appends per agent between context checkpoints: bounds the replay after a crash."""


class ContextError(RuntimeError):
    """A context operation could not be completed (names the agent and why)."""


class ContextRefused(ContextError):
    """The context kernel refused an event the shell produced; ``refusal`` says why."""

    def __init__(self, message: str, refusal: ContextRefusal) -> None:
        super().__init__(message)
        self.refusal = refusal


async def run_inline(fn: Callable[[], T]) -> T:
    """Run ``fn`` on the calling thread (a store used only by this thread)."""
    return fn()


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Finish a coroutine that never suspends (inline store calls, extractive summarizer)."""
    try:
        coro.send(None)
    except StopIteration as done:
        return typing.cast(T, done.value)
    coro.close()
    raise ContextError("run_sync: the coroutine suspended; use an event loop for an async summarizer")


def with_hibernated(state: ContextState, context: AgentContext, hibernated_ms: int) -> ContextState:
    """``state`` with ``context.agent`` added as hibernated with ``context`` in storage.

    This is the state the kernel itself reaches by ``Hibernate`` then ``Persisted``
    (same phase and stub); recovery uses it to bring a checkpointed agent back through
    an ordinary ``Recall``. The agent must be unknown to ``state``.
    """
    if context.agent in state.agents:
        raise ContextError(f"agent {context.agent!r} is already in the context state")
    slot = AgentSlot(Phase.HIBERNATED, hibernated_ms, stub=Stub.of(context, hibernated_ms))
    return attrs.evolve(state, agents=state.agents.set(context.agent, slot))


@attrs.define
class DriverCounters:
    """What the driver performed so far (for metrics)."""

    summarization_tokens: int = 0
    summaries: int = 0
    overflows: int = 0
    hibernations: int = 0
    wakeups: int = 0


class ContextDriver:
    """Feeds the context kernel and performs its effects against ``store`` and ``summarizer``.

    ``clock()`` gives the ms stamped on outcome events (never below the kernel's clock).
    ``io`` runs each store call (default: inline). With ``write_ahead`` the store's
    archive may hold entries the kernel has not archived yet, so query results are
    filtered to the kernel's archived entries.
    """

    def __init__(self, config: ContextConfig, store: Store, summarizer: Summarizer, *,
                 clock: Callable[[], int], io: Io = run_inline, write_ahead: bool = False,
                 state: ContextState | None = None) -> None:
        self.state = ContextState.initial(config, clock()) if state is None else state
        self.store = store
        self.summarizer = summarizer
        self.clock = clock
        self.io = io
        self.write_ahead = write_ahead
        self.counters = DriverCounters()

    def now(self) -> int:
        """The time for the next event: the clock, never behind the kernel's."""
        return max(self.clock(), self.state.now_ms)

    async def feed(self, first: ContextEvent) -> None:
        """Feed ``first``, perform every effect, feed the outcomes, until nothing is left.

        A refusal raises :class:`ContextRefused` after the step (the state already holds
        the refused step, which changes nothing but the clock).
        """
        todo: collections.deque[ContextEvent] = collections.deque([first])
        while todo:
            event = todo.popleft()
            step = context_step(self.state, event)
            self.state = step.state
            for effect in step.effects:
                outcome = await self._perform(effect, event)
                if outcome is not None:
                    todo.append(outcome)

    async def _perform(self, effect: ContextEffect, cause: ContextEvent) -> ContextEvent | None:
        store = self.store
        if isinstance(effect, ArchiveEntries):
            # A store failure here propagates: the kernel has no "archive failed" event,
            # and the entries stay in hot, so nothing is lost.
            await self.io(lambda: store.archive(effect.agent, effect.entries))
            return Archived(self.now(), effect.agent, effect.request)
        if isinstance(effect, RequestSummary):
            try:
                result = await self.summarizer(effect.entries)
            except Exception as exc:  # a summary is optional: the entries stay archived
                return SummaryFailed(self.now(), effect.agent, effect.request, f"{type(exc).__name__}: {exc}")
            self.counters.summarization_tokens += result.tokens_spent
            self.counters.summaries += 1
            summary = Summary(f"{effect.agent}/s{effect.request}", effect.first_seq, effect.last_seq,
                              result.text, result.tokens)
            return Summarized(self.now(), effect.agent, effect.request, summary)
        if isinstance(effect, SearchArchive):
            return SearchFound(self.now(), effect.agent, effect.request, await self._search(effect))
        if isinstance(effect, PersistContext):
            try:
                await self.io(lambda: store.save_context(effect.agent, effect.context))
            except StoreError as exc:
                return PersistFailed(self.now(), effect.agent, str(exc))
            self.counters.hibernations += 1
            return Persisted(self.now(), effect.agent)
        if isinstance(effect, LoadContext):
            try:
                ctx = await self.io(lambda: store.load_context(effect.agent, AgentContext))
            except StoreError as exc:
                return LoadFailed(self.now(), effect.agent, str(exc))
            if ctx is None:
                return LoadFailed(self.now(), effect.agent, f"{store.path}: no stored context")
            self.counters.wakeups += 1
            return Loaded(self.now(), effect.agent, ctx)
        if isinstance(effect, ContextOverflow):
            self.counters.overflows += 1
            return None
        if isinstance(effect, ContextRefusal):
            raise ContextRefused(f"t={self.state.now_ms}: context kernel refused {cause!r}: "
                                 f"{effect.reason.value} {effect.detail}", effect)
        raise ContextError(f"unknown context effect {effect!r}")  # pragma: no cover

    async def _search(self, effect: SearchArchive) -> tuple[Entry, ...]:
        store, agent, query, limit = self.store, effect.agent, effect.query, effect.limit
        if not self.write_ahead:
            return await self.io(lambda: store.search(agent, query, limit=limit, ranked=True))
        slot = self.state.agents[agent]
        assert slot.context is not None  # a search is only started for a resident agent
        archived = frozenset(slot.context.archived)

        async def best_archived(k: int) -> tuple[Entry, ...]:
            """The kernel-archived entries among the store's ``k`` best matches, best first."""
            found = await self.io(lambda: store.search(agent, query, limit=k, ranked=True))
            return tuple(e for e in found if (e.seq, e.entry_id) in archived)

        # Entries written ahead but not archived by the kernel (hot, warm keys) may take
        # places among the store's best matches: at most ``extra`` of them.
        extra = slot.context.next_seq - len(archived)
        found = await best_archived(limit + extra)
        if len(found) <= limit:
            return found
        # More than ``limit`` archived matches: find the smallest k whose k best hold
        # exactly ``limit`` archived ones (the count grows by at most one per k), so the
        # answer is the ``limit`` best archived matches by rank, as without write-ahead.
        lo, hi = limit, limit + extra
        while lo < hi:
            mid = (lo + hi) // 2
            if len(await best_archived(mid)) >= limit:
                hi = mid
            else:
                lo = mid + 1
        return await best_archived(lo)

    def visible(self, agent: str) -> tuple[VisibleItem, ...]:
        """What ``agent`` sees now (a pure function of the kernel state)."""
        return visible_context(self.state, agent)


class ContextService:
    """The asyncio runtime's context: every agent's tiers, through one :class:`ContextDriver`.

    ``clock`` gives the runtime's ms; ``io`` runs store calls on the store's thread;
    ``to_loop_time`` maps those ms to the loop's clock for the idle timer (None: no
    timer, ticks only by :meth:`tick`); ``checkpoint_every`` appends per agent between
    checkpoints.

    All operations on the kernel state run one at a time (an ``asyncio.Lock``), each as
    its own task shielded from the caller's cancellation, so a reaped agent never leaves
    an effect half performed. See the module docstring for durability.
    """

    def __init__(self, config: ContextConfig, store: Store, *, clock: Callable[[], int], io: Io,
                 summarizer: Summarizer | None = None, marker: Marker | None = None,
                 checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
                 to_loop_time: Callable[[int], float] | None = None, checkpoint_on_close: bool = True) -> None:
        if checkpoint_every < 1:
            raise ValueError(f"context_checkpoint_every: must be >= 1, got {checkpoint_every}")
        self.driver = ContextDriver(config, store, summarizer or ExtractiveSummarizer(), clock=clock, io=io,
                                    write_ahead=True)
        self.marker: Marker = marker or HeuristicMarker()
        self.checkpoint_every = checkpoint_every
        self._to_loop_time = to_loop_time
        self._lock = asyncio.Lock()
        self._checked: set[str] = set()
        self._since_checkpoint: dict[str, int] = {}
        self._ops: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: int | None = None
        self._closed = False
        self._checkpoint_on_close = checkpoint_on_close

    @property
    def state(self) -> ContextState:
        """The context kernel state as of the last operation."""
        return self.driver.state

    # ------------------------------------------------------------------ public operations

    async def append(self, agent: str, text: str, *, role: str, key: bool | None, tokens: int | None,
                     entry_id: Callable[[int], str]) -> Entry:
        """Write the entry to the store, then append it through the kernel; return it.

        ``key=None`` asks the marker; ``tokens=None`` counts them; ``entry_id(seq)``
        names the entry when the caller gave no id. Raises :class:`ContextError` for a
        duplicate id or a bad field, before anything is written.
        """
        return await self._exclusive(lambda: self._append(agent, text, role, key, tokens, entry_id))

    async def visible(self, agent: str) -> tuple[VisibleItem, ...]:
        """What ``agent`` sees now: key entries, summaries, recalled and hot entries, in order,
        within the window (a hibernated agent is recalled first)."""
        async def op() -> tuple[VisibleItem, ...]:
            await self._resident(agent)
            return self.driver.visible(agent)
        return await self._exclusive(op)

    async def recall(self, agent: str, query: str, *, limit: int) -> tuple[Entry, ...]:
        """Recall through the kernel (the archived matches join the visible context), then
        return up to ``limit`` entries of the agent's whole history that match ``query``."""
        async def op() -> tuple[Entry, ...]:
            if not query.strip():
                raise ContextError(f"recall: query must be non-blank, got {query!r}")
            await self._resident(agent)
            if agent in self.driver.state.agents:
                await self.driver.feed(Recall(self.driver.now(), agent, query))
            store = self.driver.store
            return tuple(await self.driver.io(lambda: store.search(agent, query, limit=limit)))
        return await self._exclusive(op)

    async def history(self, agent: str, first_seq: int | None, last_seq: int | None) -> tuple[Entry, ...]:
        """Every entry of ``agent`` with ``first_seq <= seq <= last_seq``, verbatim, in order."""
        store = self.driver.store
        return await self._exclusive(lambda: self.driver.io(lambda: store.archived(agent, first_seq, last_seq)))

    async def hibernate(self, agent: str) -> None:
        """Hibernate ``agent`` now through the kernel.

        The kernel's refusals raise :class:`ContextRefused`: an agent never appended to
        (``unknown_agent``), or one already hibernated (``already_hibernated``).
        """
        async def op() -> None:
            await self._known(agent)
            await self.driver.feed(Hibernate(self.driver.now(), agent))
        await self._exclusive(op)

    async def tick(self) -> None:
        """Let the kernel hibernate idle agents (and victims of memory pressure) now."""
        await self._exclusive(self._tick)

    async def close(self) -> None:
        """Stop the timer, finish operations in flight, checkpoint every resident agent
        (unless ``checkpoint_on_close`` is off: a store that dies with the runtime)."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._ops:
            await asyncio.gather(*list(self._ops), return_exceptions=True)
        if not self._checkpoint_on_close:
            return
        async with self._lock:
            for agent in sorted(self.driver.state.agents):
                await self._checkpoint(agent)

    # ------------------------------------------------------------------ internals

    async def _exclusive(self, fn: Callable[[], Awaitable[T]]) -> T:
        if self._closed:
            raise ContextError("the runtime's context is closed")

        async def locked() -> T:
            async with self._lock:
                result = await fn()
                self._arm()
                return result

        task = asyncio.ensure_future(locked())
        self._ops.add(task)
        task.add_done_callback(self._ops.discard)
        return await asyncio.shield(task)

    async def _tick(self) -> None:
        config = self.driver.state.config
        # Ticks only matter when the config can hibernate agents (idleness or memory).
        if config.idle_ms_hibernate > 0 or config.max_resident_agents > 0:
            await self.driver.feed(ContextTick(self.driver.now()))

    async def _make_room(self, agent: str) -> None:
        """Under a resident-agent cap, tick before ``agent`` is brought in (created or recalled).

        Idleness needs no tick here: the timer fires at the kernel's next idle deadline.
        Memory pressure only grows when an agent comes in, so that is when it is checked:
        before (as the simulator does) and, for an append, after; ticking on every
        operation would cost O(agents) each. A read (``visible``, ``recall``) that
        brings an agent in can leave one agent over the cap until the next append.
        """
        slot = self.driver.state.agents.get(agent)
        if self.driver.state.config.max_resident_agents > 0 and (slot is None or slot.phase is not Phase.RESIDENT):
            await self.driver.feed(ContextTick(self.driver.now()))

    async def _append(self, agent: str, text: str, role: str, key: bool | None, tokens: int | None,
                      entry_id: Callable[[int], str]) -> Entry:
        if not agent:
            raise ContextError("append: agent must be non-empty")
        came_in = await self._resident(agent)
        slot = self.driver.state.agents.get(agent)
        seq = 0 if slot is None or slot.context is None else slot.context.next_seq
        eid = entry_id(seq)
        if not eid:
            raise ContextError(f"append to {agent!r}: entry_id must be non-empty")
        if slot is not None and eid in slot.ids:
            raise ContextError(f"append to {agent!r}: entry_id {eid!r} is already seq {slot.ids[eid]}")
        n = count_tokens(text) if tokens is None else tokens
        if n < 0:
            raise ContextError(f"append to {agent!r}: tokens must be >= 0, got {n}")
        entry = Entry(eid, seq, role, text, n, self.marker(text, role) if key is None else key)
        store = self.driver.store
        await self.driver.io(lambda: store.archive(agent, [entry]))  # written ahead: never lost
        await self.driver.feed(Append(self.driver.now(), agent, eid, role, text, n, entry.key))
        if (came_in or slot is None) and self.driver.state.config.max_resident_agents > 0:
            # One more resident agent: the kernel picks the victims (possibly this one; it is stored).
            await self.driver.feed(ContextTick(self.driver.now()))
        self._since_checkpoint[agent] = self._since_checkpoint.get(agent, 0) + 1
        if self._since_checkpoint[agent] >= self.checkpoint_every:
            await self._checkpoint(agent)
        return entry

    async def _resident(self, agent: str) -> bool:
        """Make ``agent`` resident: recover it from the store on first touch, recall it if hibernated.

        Returns whether it was brought in (it was in the state but not resident, or
        came back from a checkpoint); an agent never seen stays absent until appended to.
        """
        before = self.driver.state.agents.get(agent)
        await self._make_room(agent)
        await self._known(agent)
        slot = self.driver.state.agents.get(agent)
        if slot is not None and slot.phase is Phase.HIBERNATED:
            await self.driver.feed(Recall(self.driver.now(), agent))
            slot = self.driver.state.agents[agent]
            if slot.phase is not Phase.RESIDENT:
                raise ContextError(f"agent {agent!r}: its hibernated context could not be loaded")
        after = self.driver.state.agents.get(agent)
        return after is not None and (before is None or before.phase is not Phase.RESIDENT)

    async def _known(self, agent: str) -> None:
        """On the first touch of ``agent`` in this runtime, rebuild it from the store if it is there."""
        if agent not in self._checked:
            self._checked.add(agent)
            if agent not in self.driver.state.agents:
                await self._recover(agent)

    async def _recover(self, agent: str) -> None:
        """Rebuild ``agent`` from its checkpoint and the archived entries after it (see module doc)."""
        store, driver = self.driver.store, self.driver
        ctx = await driver.io(lambda: store.load_context(agent, AgentContext))
        first = 0
        if ctx is not None:
            driver.state = with_hibernated(driver.state, ctx, driver.now())
            await driver.feed(Recall(driver.now(), agent))
            if driver.state.agents[agent].phase is not Phase.RESIDENT:
                raise ContextError(f"agent {agent!r}: its checkpoint in {store.path} could not be loaded")
            first = ctx.next_seq
        tail = await driver.io(lambda: store.archived(agent, first))
        for e in tail:
            await driver.feed(Append(driver.now(), agent, e.entry_id, e.role, e.text, e.tokens, e.key))
            got = driver.state.agents[agent].ids.get(e.entry_id)
            if got != e.seq:
                raise ContextError(f"{store.path}: agent {agent!r} entry {e.entry_id!r} is archived at seq "
                                   f"{e.seq} but replays at seq {got}")

    async def _checkpoint(self, agent: str) -> None:
        slot = self.driver.state.agents.get(agent)
        self._since_checkpoint[agent] = 0
        if slot is None or slot.phase is not Phase.RESIDENT or slot.context is None:
            return  # hibernated agents are already stored by their PersistContext
        ctx, store = slot.context, self.driver.store
        await self.driver.io(lambda: store.save_context(agent, ctx))

    def _arm(self) -> None:
        """Set the one timer for the kernel's next idle-hibernation deadline (none: no timer).

        A pending timer is left alone: activity only moves deadlines later, so the pending
        one is never late; when it fires, the tick re-arms for the deadline then current.
        This keeps the O(agents) deadline query off the per-append path.
        """
        if self._to_loop_time is None or self._closed or self._timer is not None:
            return
        at = next_hibernate_ms(self.driver.state)
        self._timer_at = at
        if at is not None:
            self._timer = asyncio.get_running_loop().call_at(self._to_loop_time(at), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        if not self._closed:
            task = asyncio.ensure_future(self.tick())
            # The tick's own errors are kept on the task (retrieved here) rather than lost.
            task.add_done_callback(lambda t: t.cancelled() or t.exception())

