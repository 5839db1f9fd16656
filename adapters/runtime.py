"""The asyncio runtime: real agent coroutines scheduled by the pure kernel.

The runtime is a thin loop with no policy in it. It reads the loop's monotonic clock
(integer ms), feeds every fact to :func:`agentrm.kernel.step`, and performs the effects
in the order the kernel emitted them:

* ``StartTask`` -- start the agent's coroutine, or resume it if it yielded;
* ``YieldTask`` -- park the coroutine at its step boundary until the next ``StartTask``;
* ``CancelTask`` -- ``asyncio.Task.cancel()``; the handle reports the kernel's reason;
* ``WakeAt`` -- one ``loop.call_at`` timer (replacing the previous one): an idle runtime
  never polls.

Outcomes (a finished step, a heartbeat, an HTTP 429, a return, a raise) go back to the
kernel as events. Every kernel step is journaled: to SQLite through the store
(durable mode) and/or to a JSON Lines event log v1 that ``agentrm replay`` reads.

Durable mode (``store=`` a path or a store object): the journal is written in batches
by one dedicated writer thread (group commit); ``await rm.submit(...)`` returns only
after its Submit is on disk. Every ``snapshot_every`` records a snapshot of the kernel
state is dumped on a thread of its own, beside the group commit, so a durable wait
never waits for one. A new Runtime on the same file loads the latest snapshot,
folds the journal after it and so restores the kernel state exactly. Then tasks that
were waiting are queued again (their agent function is looked up by agent name in
``agents=``), and tasks that were running are failed in the kernel with
``"interrupted"`` and listed in :attr:`Runtime.interrupted` so the caller can resubmit.

Agent context (``ctx.append`` / ``ctx.context`` / ``ctx.recall`` / ``ctx.history``)
belongs to the agent name and is run by the context kernel (hot / warm / cold tiers,
compaction, hibernation and recall) through
:class:`~agentrm.adapters.context_driver.ContextService`: the kernel decides, the
service performs (store, summarizer). ``ctx.context()`` is the visible context, a pure
function of the kernel state. Each entry is written to the store's archive before its
``Append`` reaches the kernel and before ``append`` returns, so no entry whose append
returned is lost in a crash; after a restart an agent is rebuilt on first touch from its
checkpointed context plus the archived entries after it (see ``context_driver``). In
memory mode the store is a temporary file, removed at exit. Idle agents are hibernated
by the kernel's tick, on a timer set to the kernel's next idle deadline.

Shutdown policy on ``async with`` exit: ``"drain"`` (default) waits up to
``drain_timeout_s`` for every task to end, then cancels what is left; ``"cancel"``
cancels at once, as does leaving the block by an exception. Cancelled-at-shutdown tasks are failed in the kernel
(``"interrupted: runtime shutdown"``) and their handles raise :class:`TaskInterrupted`.
No asyncio task outlives the ``async with`` block.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import itertools
import json
import os
import pathlib
import tempfile
import typing
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, TypeVar

import attrs

from agentrm.kernel import step as _step
from agentrm.kernel.common import Step
from agentrm.kernel.context import ContextConfig, ContextState, VisibleItem
from agentrm.kernel.context.types import Entry
from agentrm.kernel.scheduler.config import SchedulerConfig, TaskClass
from agentrm.kernel.scheduler.effects import (
    CancelReason,
    CancelTask,
    Refusal,
    RefusalReason,
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
from agentrm.kernel.scheduler.lifecycle import Phase
from agentrm.kernel.scheduler.state import SchedulerState

from .eventlog import (
    EventLogReader,
    EventLogWriter,
    FormatError,
    effect_from_json,
    effects_line,
    event_from_json,
    event_line,
)
from .context_driver import DEFAULT_CHECKPOINT_EVERY, ContextService, run_inline
from .keymark import Marker
from .llm import ChatClient, ChatResult, RateLimitedError
from .snapshot import dump_scheduler_state, load_scheduler_state
from .store import JournalRecord, Store
from .summarize import Summarizer

__all__ = [
    "AgentFn",
    "JournalError",
    "RecoveredTask",
    "Runtime",
    "TaskContext",
    "TaskError",
    "TaskFailedError",
    "TaskHandle",
    "TaskInterrupted",
    "TaskReaped",
    "TaskRefused",
    "restore_state",
]

T = TypeVar("T")
AgentFn = Callable[["TaskContext"], Awaitable[Any]]
"""An agent: an async callable taking its :class:`TaskContext`."""
Observer = Callable[[int, SchedulerEvent, tuple[SchedulerEffect, ...]], None]
"""Called after every kernel step with (seq, event, effects); for tests and metrics."""

kernel_step: Callable[[SchedulerState, SchedulerEvent], Step[SchedulerState, SchedulerEffect]] = _step
"""The reducer every runtime calls: ``agentrm.kernel.step`` (a module variable so a benchmark can time it)."""
encode_event: Callable[[SchedulerEvent], str] = event_line
"""The journal's event encoder, ``eventlog.event_line`` (a module variable so a benchmark can time it)."""
encode_effects: Callable[[Iterable[SchedulerEffect]], str] = effects_line
"""The journal's effects encoder, ``eventlog.effects_line`` (a module variable so a benchmark can time it)."""

INTERRUPTED = "interrupted"
"""The ``TaskFailed.error`` of a task that was running when its runtime died."""
SHUTDOWN = "interrupted: runtime shutdown"
"""The ``TaskFailed.error`` of a task cancelled by the shutdown policy."""
CANCELLED_BY_CALLER = "cancelled by caller"
"""The ``TaskFailed.error`` of a task whose handle was cancelled."""


# --------------------------------------------------------------------------- errors

class TaskError(Exception):
    """Why a task did not produce a result; ``task_id`` names it."""

    def __init__(self, task_id: str, message: str) -> None:
        super().__init__(f"task {task_id!r}: {message}")
        self.task_id = task_id


class TaskRefused(TaskError):
    """The kernel refused the submission (``reason``: queue full, duplicate, unknown parent, ...)."""

    def __init__(self, task_id: str, reason: RefusalReason) -> None:
        super().__init__(task_id, f"refused: {reason.value}")
        self.reason = reason


class TaskReaped(TaskError):
    """The kernel cancelled the task: idle too long, past its run limit, or its parent was reaped."""

    def __init__(self, task_id: str, reason: CancelReason) -> None:
        super().__init__(task_id, f"reaped: {reason.value}")
        self.reason = reason


class TaskFailedError(TaskError):
    """The agent coroutine raised; the original exception is ``__cause__``."""


class TaskInterrupted(TaskError):
    """The runtime stopped (shutdown, or a crash found on restart) before the task ended."""


class JournalError(RuntimeError):
    """The durable store refused a journal write; the cause is ``__cause__``.

    From then on the runtime cannot promise durability: durable waits (``submit``,
    ``sync``) and the final flush raise this error.
    """


# --------------------------------------------------------------------------- handles

class TaskHandle(asyncio.Future[T]):
    """One submitted task: a future of its result, or of a :class:`TaskError` saying why not.

    Being a real ``asyncio.Future``, handles go straight into ``asyncio.gather`` /
    ``asyncio.wait`` without a wrapper task each. Like an ``asyncio.Task``, cancelling
    a handle -- directly, or by cancelling what awaits it (``asyncio.wait_for``'s
    timeout) -- cancels the task: the kernel records it failed ("cancelled by caller"),
    its sub-agents are cancelled too, and its coroutine is cancelled.
    """

    # Slots: no per-handle __dict__ (one handle per task, 10,000s of them at once).
    __slots__ = ("task_id", "agent", "_runtime")

    def __init__(self, task_id: str, agent: str, runtime: Runtime, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop=loop)
        self.task_id = task_id
        self.agent = agent
        self._runtime = runtime

    def _fail_with(self, exc: BaseException) -> None:
        self.set_exception(exc)
        # Mark it retrieved: a reaped sub-agent nobody awaits is not an error to log at exit.
        self.exception()

    def cancel(self, msg: Any | None = None) -> bool:
        """Cancel the task (see the class docstring); False if it already ended."""
        if self.done():
            return False
        self._runtime._cancel_task(self.task_id)
        return super().cancel(msg=msg)

    def __repr__(self) -> str:
        return f"TaskHandle({self.task_id!r}, agent={self.agent!r}, done={self.done()})"


@attrs.frozen
class RecoveredTask:
    """A task found running in the journal of a runtime that died; resubmit it if wanted."""

    task_id: str
    agent: str
    task_class: TaskClass
    provider: str
    parent: str | None


# --------------------------------------------------------------------------- context

class TaskContext:
    """What an agent coroutine sees of the runtime: step boundaries, heartbeats, LLM, sub-agents,
    and its agent's context (append, context, recall, history)."""

    def __init__(self, runtime: Runtime, task_id: str, agent: str, provider: str, task_class: TaskClass) -> None:
        self.task_id = task_id
        self.agent = agent
        self.provider = provider
        self.task_class = task_class
        self._rt = runtime
        self._tokens_in_step = 0
        self._called_in_step = False
        self._last_call_tokens = 0

    async def step(self, *, tokens_used: int | None = None, next_step_tokens: int = 0) -> None:
        """Mark a step boundary; returns when the kernel lets the task take its next step.

        ``tokens_used`` defaults to the tokens of the LLM calls made through :meth:`llm`
        since the last boundary. If the kernel asks the task to yield, this waits (off
        its lane) until the kernel starts it again.
        """
        used = self._tokens_in_step if tokens_used is None else tokens_used
        self._tokens_in_step = 0
        self._called_in_step = False
        await self._rt._boundary(self, StepFinished(self._rt._now(), self.task_id, used, next_step_tokens))

    def heartbeat(self) -> None:
        """Report progress without a step boundary (resets the idle-reap clock)."""
        self._rt._apply(Heartbeat(self._rt._now(), self.task_id))

    async def llm(self, messages: Sequence[Mapping[str, Any]], *, next_step_tokens: int | None = None,
                  **params: Any) -> ChatResult:
        """One chat call through the provider gate.

        Each call is one step: a second call first marks a step boundary (demanding
        ``next_step_tokens``, by default what the previous call used), so every call is
        admitted by the gate. A 429 becomes the kernel's ``RateLimited`` event: the task
        waits off its lane until the kernel starts it again, and only then calls again.
        """
        client = self._rt._client_for(self.provider)
        if self._called_in_step:
            demand = self._last_call_tokens if next_step_tokens is None else next_step_tokens
            await self.step(next_step_tokens=demand)
        while True:
            try:
                result = await client.chat(messages, **params)
            except RateLimitedError as exc:
                event = RateLimited(self._rt._now(), self.task_id, self.provider, exc.retry_after_ms)
                await self._rt._boundary(self, event)
                continue
            self._called_in_step = True
            self._tokens_in_step += result.total_tokens
            self._last_call_tokens = result.total_tokens
            self.heartbeat()
            return result

    async def append(self, text: str, *, role: str = "assistant", key: bool | None = None,
                     tokens: int | None = None, entry_id: str | None = None) -> Entry:
        """Append an entry to this agent's context through the context kernel; returns it once stored.

        Contexts belong to the agent name (they outlive one task). The entry is written
        to the store before this returns, so a crash never loses it. ``key=None`` lets
        the runtime's marker decide (heuristic by default); ``tokens`` defaults to
        :func:`~agentrm.adapters.summarize.count_tokens`; ``entry_id`` to
        ``"<task id>:<seq>"``. A duplicate id raises ``ContextError``.
        """
        entry = await self._rt._context().append(
            self.agent, text, role=role, key=key, tokens=tokens,
            entry_id=(lambda seq: f"{self.task_id}:{seq}") if entry_id is None else (lambda seq: entry_id))
        self.heartbeat()  # writing context is progress
        return entry

    async def context(self) -> tuple[VisibleItem, ...]:
        """What this agent sees now: key entries, summaries, recalled and hot entries, in
        seq order, within the window (recalling the agent first if it hibernated)."""
        return await self._rt._context().visible(self.agent)

    async def history(self, first_seq: int | None = None, last_seq: int | None = None) -> tuple[Entry, ...]:
        """Every entry of this agent with ``first_seq <= seq <= last_seq``, verbatim, in order."""
        return await self._rt._context().history(self.agent, first_seq, last_seq)

    async def recall(self, query: str, *, limit: int = 10) -> tuple[Entry, ...]:
        """Recall by query through the kernel -- the archived matches join :meth:`context` --
        and return up to ``limit`` entries of this agent's history matching ``query``
        (plain words), best first by BM25, in seq order."""
        return await self._rt._context().recall(self.agent, query, limit=limit)

    async def spawn(self, fn: Callable[[TaskContext], Awaitable[T]], *, agent: str,
                    lane_class: TaskClass | str | None = None, provider: str | None = None,
                    step_tokens: int = 0, task_id: str | None = None) -> TaskHandle[T]:
        """Submit a sub-agent of this task (same class and provider unless given)."""
        return await self._rt.submit(
            fn, agent=agent, lane_class=self.task_class if lane_class is None else lane_class,
            provider=self.provider if provider is None else provider, parent=self.task_id,
            step_tokens=step_tokens, task_id=task_id)


# --------------------------------------------------------------------------- journal

@attrs.define
class _Rec:
    """The runtime's mutable bookkeeping for one live task (the kernel owns the policy state)."""

    task_id: str
    fn: AgentFn
    future: TaskHandle[Any]
    ctx: TaskContext
    atask: asyncio.Task[None] | None = None
    resume: asyncio.Future[None] | None = None
    cancel_reason: CancelReason | None = None


ShutdownPolicy = Literal["drain", "cancel"]


class Runtime:
    """Runs agent coroutines under the scheduler kernel; an async context manager.

    ``store``: None (in memory) or the path of a SQLite store (opened or created);
    ``journal_jsonl``: a path to append an event log v1 to.
    ``llm``: the chat client, or one per provider name. ``agents``: agent name ->
    function, used to run tasks recovered from a previous run's journal.
    ``shutdown``/``drain_timeout_s``: see the module docstring.
    ``snapshot_every``: journal records between durable snapshots.
    ``context_config``: the context kernel's policy (default ``ContextConfig()``);
    ``summarizer``: an async summarizer (default the deterministic extractive one);
    ``marker``: decides ``key`` when an append does not (default the heuristic one);
    ``context_checkpoint_every``: appends per agent between context checkpoints.
    """

    def __init__(
        self,
        config: SchedulerConfig,
        *,
        store: str | os.PathLike[str] | None = None,
        journal_jsonl: str | os.PathLike[str] | None = None,
        llm: ChatClient | Mapping[str, ChatClient] | None = None,
        agents: Mapping[str, AgentFn] | None = None,
        shutdown: ShutdownPolicy = "drain",
        drain_timeout_s: float = 30.0,
        snapshot_every: int = 10_000,
        observer: Observer | None = None,
        context_config: ContextConfig | None = None,
        summarizer: Summarizer | None = None,
        marker: Marker | None = None,
        context_checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
    ) -> None:
        if shutdown not in ("drain", "cancel"):
            raise ValueError(f"shutdown: expected 'drain' or 'cancel', got {shutdown!r}")
        if drain_timeout_s < 0:
            raise ValueError(f"drain_timeout_s: must be >= 0, got {drain_timeout_s}")
        if snapshot_every < 1:
            raise ValueError(f"snapshot_every: must be >= 1, got {snapshot_every}")
        self.config = config
        self._store_path = None if store is None else pathlib.Path(store)
        self._jsonl_path = journal_jsonl
        self._llm = llm
        self._agents = dict(agents or {})
        self._shutdown = shutdown
        self._drain_timeout_s = drain_timeout_s
        self._snapshot_every = snapshot_every
        self._observer = observer
        self._state = SchedulerState.initial(config)
        self._seq = 0
        self._recs: dict[str, _Rec] = {}
        self._ids = itertools.count()
        self._id_prefix = ""
        self._open = False
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._t0 = 0.0
        self._base_ms = 0
        self._last_ms = 0
        self._clock: Callable[[], float] = _no_clock
        self._timer: asyncio.TimerHandle | None = None
        # The kernel's latest wake-up deadline, and when the armed timer fires (at or before
        # it: a deadline that moves later keeps the timer, which re-arms when it fires).
        self._timer_at: int | None = None
        self._timer_fires_ms = 0
        self._store: Store | None = None
        self._writer: concurrent.futures.ThreadPoolExecutor | None = None
        self._pending: list[JournalRecord] = []
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._flush_task: asyncio.Future[None] | None = None
        self._snapshot_task: asyncio.Future[None] | None = None
        self._dumper: concurrent.futures.ThreadPoolExecutor | None = None
        self._flushed_seq = 0
        self._journal_error: JournalError | None = None
        self._since_snapshot = 0
        self._jsonl: io.TextIOBase | None = None
        self._jsonl_writer: EventLogWriter | None = None
        if context_checkpoint_every < 1:
            raise ValueError(f"context_checkpoint_every: must be >= 1, got {context_checkpoint_every}")
        self.context_config = ContextConfig() if context_config is None else context_config
        self._summarizer = summarizer
        self._marker = marker
        self._context_checkpoint_every = context_checkpoint_every
        self._contexts: ContextService | None = None
        self._memory_dir: tempfile.TemporaryDirectory[str] | None = None
        self._memory_store: Store | None = None
        self.interrupted: tuple[RecoveredTask, ...] = ()
        """Tasks that were running when the previous runtime on this store died."""
        self.restored: dict[str, TaskHandle[Any]] = {}
        """Handles of tasks recovered waiting from the journal and queued again, by id."""

    # ------------------------------------------------------------------ lifecycle

    @property
    def state(self) -> SchedulerState:
        """The kernel state as of the last step (read-only view for metrics and tests)."""
        return self._state

    @property
    def contexts(self) -> ContextService:
        """The agents' contexts (``visible``, ``recall``, ``hibernate``, ``tick``, ``state``)."""
        return self._context()

    @property
    def context_state(self) -> ContextState:
        """The context kernel state as of the last context operation."""
        return self._context().state

    async def __aenter__(self) -> Runtime:
        self._loop = asyncio.get_running_loop()
        self._clock = self._loop.time
        try:
            await self._open_store()
            self._base_ms = self._state.now_ms
            self._last_ms = self._base_ms
            self._t0 = self._loop.time()
            await self._open_jsonl()
            self._open_contexts()
        except BaseException:
            await self._close_io()
            raise
        self._open = True
        if self._store is not None:
            self._recover()
            await self._flush()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        try:
            # Leaving the block by an exception cancels at once (as asyncio.TaskGroup does):
            # draining would hold the error back for up to drain_timeout_s.
            await self._stop_tasks(drain=self._shutdown == "drain" and exc_type is None)
            if self._contexts is not None:
                await self._contexts.close()  # checkpoints resident contexts (the store is still open)
        finally:
            self._open = False
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            try:
                await self._flush()
                if self._snapshot_task is not None:
                    await asyncio.shield(self._snapshot_task)  # it reports its own failure
                if self._journal_error is not None:
                    raise self._journal_error
                if self._store is not None and self._since_snapshot:
                    await self._snapshot()
            finally:
                await self._close_io()

    async def _stop_tasks(self, drain: bool) -> None:
        if drain:
            assert self._loop is not None
            deadline = self._loop.time() + self._drain_timeout_s
            # Loop: tasks may spawn sub-agents while draining.
            while self._recs and (left := deadline - self._loop.time()) > 0:
                await asyncio.wait([r.future for r in self._recs.values()], timeout=left)
        self._closing = True
        # Fail what is left in the kernel in submission order (deterministic journal).
        for rec in sorted(self._recs.values(), key=lambda r: self._state.tasks[r.task_id].submit_seq):
            record = self._state.tasks.get(rec.task_id)
            if record is not None and not record.phase.terminal:
                self._apply(TaskFailed(self._now(), rec.task_id, SHUTDOWN))
        atasks = [r.atask for r in self._recs.values() if r.atask is not None and not r.atask.done()]
        for t in atasks:
            t.cancel()
        if atasks:
            await asyncio.gather(*atasks, return_exceptions=True)
        for rec in list(self._recs.values()):
            self._settle(rec, exc=TaskInterrupted(rec.task_id, SHUTDOWN))

    # ------------------------------------------------------------------ public API

    async def submit(self, fn: Callable[[TaskContext], Awaitable[T]], *, agent: str,
                     lane_class: TaskClass | str = TaskClass.INTERACTIVE, parent: str | None = None,
                     provider: str = "default", step_tokens: int = 0,
                     task_id: str | None = None, wait_durable: bool = True) -> TaskHandle[T]:
        """Submit one agent run; the kernel decides when it starts.

        Returns a handle whose await gives the result, or raises :class:`TaskRefused`,
        :class:`TaskReaped`, :class:`TaskFailedError` or :class:`TaskInterrupted`.
        In durable mode this returns once the submission is on disk; a bulk submitter
        may pass ``wait_durable=False`` and call :meth:`sync` once after the batch.
        """
        if not self._open or self._closing:
            raise RuntimeError("submit: the runtime is not running (use 'async with Runtime(...)')")
        task_class = _task_class(lane_class)
        tid = task_id if task_id is not None else self._new_id()
        handle, seq = self._submit(fn, tid, agent, task_class, provider, step_tokens, parent)
        if self._store is not None and wait_durable:
            await self._durable(seq)
        return handle

    async def resubmit(self, task: RecoveredTask, fn: AgentFn | None = None, *,
                       task_id: str | None = None) -> TaskHandle[Any]:
        """Submit an interrupted task again, as a new task (default id: ``<old id>-retry``).

        ``fn`` defaults to the function registered for its agent in ``agents=``. It keeps
        its class and provider; it keeps its parent only while that parent is still live
        (a sub-agent of a parent that ended runs as a root task).
        """
        if fn is None:
            if task.agent not in self._agents:
                raise LookupError(f"agents: no function registered for agent {task.agent!r}; pass fn=")
            fn = self._agents[task.agent]
        parent = task.parent
        if parent is not None:
            record = self._state.tasks.get(parent)
            if record is None or record.phase.terminal:
                parent = None
        return await self.submit(fn, agent=task.agent, lane_class=task.task_class, provider=task.provider,
                                 parent=parent, task_id=task.task_id + "-retry" if task_id is None else task_id)

    async def sync(self) -> None:
        """Return once every kernel step so far is committed to the store (no-op in memory)."""
        if self._store is not None:
            await self._durable(self._seq)

    # ------------------------------------------------------------------ internals: kernel

    def _now(self) -> int:
        ms = self._base_ms + int((self._clock() - self._t0) * 1000)
        if ms < self._last_ms:  # a timer fired early by float rounding: never go backwards
            ms = self._last_ms
        self._last_ms = ms
        return ms

    def _new_id(self) -> str:
        return f"{self._id_prefix}t{next(self._ids)}"

    def _submit(self, fn: AgentFn, tid: str, agent: str, task_class: TaskClass, provider: str,
                step_tokens: int, parent: str | None) -> tuple[TaskHandle[Any], int]:
        assert self._loop is not None
        handle: TaskHandle[Any] = TaskHandle(tid, agent, self, self._loop)
        existing = self._recs.get(tid)
        if existing is None:
            ctx = TaskContext(self, tid, agent, provider, task_class)
            self._recs[tid] = _Rec(tid, fn, handle, ctx)
        effects = self._apply(Submit(self._now(), tid, agent, task_class, provider, step_tokens, parent))
        for eff in effects:
            if type(eff) is Refusal and eff.task_id == tid:
                if existing is None:
                    del self._recs[tid]
                handle._fail_with(TaskRefused(tid, eff.reason))
                break
        return handle, self._seq

    def _apply(self, event: SchedulerEvent) -> tuple[SchedulerEffect, ...]:
        """One kernel step: fold the event, journal it, perform its effects in order."""
        result = kernel_step(self._state, event)
        self._state = result.state
        self._seq += 1
        effects = result.effects
        if self._store is not None or self._jsonl_writer is not None:
            self._journal(event, effects)
        if self._observer is not None:
            self._observer(self._seq, event, effects)
        for eff in effects:
            self._perform(eff)
        state = self._state
        if state.live == 0:
            if self._timer is not None:
                # SPEC 1.6: an idle kernel needs no tick (it withdraws nothing): drop the stale timer.
                self._timer.cancel()
                self._timer = None
        elif self._timer is None and state.last_wake_ms is not None and state.last_wake_ms > state.now_ms:
            # Work arrived after that drop and the kernel's next deadline is the one it already
            # announced, so it sends no new WakeAt: re-arm for the announced deadline.
            self._set_timer(state.last_wake_ms)
        return effects

    def _perform(self, eff: SchedulerEffect) -> None:
        match eff:
            case StartTask(task_id=tid):
                rec = self._recs.get(tid)
                if rec is None:
                    raise RuntimeError(f"kernel started task {tid!r}, which this runtime has no coroutine for")
                if rec.atask is None:
                    assert self._loop is not None
                    rec.atask = self._loop.create_task(self._run(rec), name=f"agentrm:{tid}")
                elif rec.resume is not None:
                    rec.resume.set_result(None)
                    rec.resume = None
            case YieldTask(task_id=tid):
                rec = self._recs.get(tid)
                if rec is not None and rec.resume is None:
                    assert self._loop is not None
                    rec.resume = self._loop.create_future()
            case CancelTask(task_id=tid, reason=reason):
                rec = self._recs.get(tid)
                if rec is None:
                    return
                rec.cancel_reason = reason
                if rec.atask is None:
                    self._settle(rec, exc=self._cancelled_error(rec))
                elif not rec.atask.done():
                    rec.atask.cancel()
            case WakeAt(at_ms=at_ms):
                self._set_timer(at_ms)
            case Refusal():
                pass  # the caller of _apply reads refusals about its own event
            case _:
                typing.assert_never(eff)

    def _set_timer(self, at_ms: int) -> None:
        self._timer_at = at_ms
        if self._timer is not None:
            if self._timer_fires_ms <= at_ms:
                # The armed timer fires first and re-arms for at_ms then: a deadline that
                # moves later (every step of the earliest task) costs no cancel + call_at.
                return
            self._timer.cancel()
        assert self._loop is not None
        self._timer_fires_ms = at_ms
        self._timer = self._loop.call_at(self._t0 + (at_ms - self._base_ms) / 1000, self._on_wake)

    def _on_wake(self) -> None:
        self._timer = None
        at = self._timer_at if self._timer_at is not None else 0
        if at > self._timer_fires_ms:
            self._set_timer(at)  # the deadline moved later since this timer was armed
            return
        if self._last_ms < at:
            self._last_ms = at  # the deadline has come; float rounding must not make it miss
        self._apply(ClockAdvanced(self._now()))

    async def _boundary(self, ctx: TaskContext, event: StepFinished | RateLimited) -> None:
        """Report a step boundary (or a 429) and wait if the kernel parks the task."""
        effects = self._apply(event)
        for eff in effects:
            if type(eff) is Refusal and eff.task_id == ctx.task_id:
                # The kernel already ended this task (reaped); its cancellation is pending.
                await asyncio.sleep(0)
                raise asyncio.CancelledError
        rec = self._recs.get(ctx.task_id)
        if rec is not None and rec.resume is not None:
            await rec.resume

    async def _run(self, rec: _Rec) -> None:
        tid = rec.task_id
        try:
            result = await rec.fn(rec.ctx)
        except asyncio.CancelledError:
            if rec.cancel_reason is not None or self._closing:
                self._settle(rec, exc=self._cancelled_error(rec))
            else:  # cancelled from inside the agent: the agent ended without a result
                self._fail(rec, "cancelled", TaskInterrupted(tid, "cancelled"))
        except Exception as exc:  # noqa: BLE001 - any agent error is a failed task, not ours
            error = TaskFailedError(tid, f"failed: {type(exc).__name__}: {exc}")
            error.__cause__ = exc
            self._fail(rec, f"{type(exc).__name__}: {exc}", error)
        else:
            effects = self._apply(TaskFinished(self._now(), tid))
            if rec.cancel_reason is not None and any(type(e) is Refusal for e in effects):
                self._settle(rec, exc=TaskReaped(tid, rec.cancel_reason))
            else:
                self._settle(rec, result=result)

    def _cancel_task(self, task_id: str) -> None:
        """A caller cancelled the task's handle: fail it in the kernel and cancel its coroutine."""
        rec = self._recs.get(task_id)
        if rec is None:
            return
        record = self._state.tasks.get(task_id)
        if record is not None and not record.phase.terminal and self._open:
            self._apply(TaskFailed(self._now(), task_id, CANCELLED_BY_CALLER))
        if rec.atask is not None and not rec.atask.done():
            rec.atask.cancel()
        else:
            self._recs.pop(task_id, None)

    def _cancelled_error(self, rec: _Rec) -> TaskError:
        """Why a cancelled task ended: the kernel's reason, except a cascade caused by shutdown."""
        reason = rec.cancel_reason
        if reason is None or (self._closing and reason is CancelReason.PARENT_REAPED):
            return TaskInterrupted(rec.task_id, SHUTDOWN)
        return TaskReaped(rec.task_id, reason)

    def _fail(self, rec: _Rec, error: str, exc: TaskError) -> None:
        record = self._state.tasks.get(rec.task_id)
        if record is not None and not record.phase.terminal:
            self._apply(TaskFailed(self._now(), rec.task_id, error))
        if rec.cancel_reason is not None:
            exc = TaskReaped(rec.task_id, rec.cancel_reason)
        self._settle(rec, exc=exc)

    def _settle(self, rec: _Rec, *, result: Any = None, exc: BaseException | None = None) -> None:
        self._recs.pop(rec.task_id, None)
        if rec.future.done():
            return
        if exc is not None:
            rec.future._fail_with(exc)
        else:
            rec.future.set_result(result)

    def _context(self) -> ContextService:
        if self._contexts is None:
            raise RuntimeError("the runtime's context is used outside 'async with Runtime(...)'")
        return self._contexts

    def _open_contexts(self) -> None:
        """Start the context service on the durable store, or on a temporary store in memory mode."""
        assert self._loop is not None
        if self._store is not None:
            store, io = self._store, self._in_writer
        else:
            self._memory_dir = tempfile.TemporaryDirectory(prefix="agentrm-ctx-")
            # Used only from the loop's thread (the store is private to this runtime).
            self._memory_store = store = Store.create(pathlib.Path(self._memory_dir.name) / "context.db")
            io = run_inline
        self._contexts = ContextService(
            self.context_config, store, clock=self._now, io=io, summarizer=self._summarizer,
            marker=self._marker, checkpoint_every=self._context_checkpoint_every,
            to_loop_time=lambda at_ms: self._t0 + (at_ms - self._base_ms) / 1000,
            checkpoint_on_close=self._store is not None)

    def _client_for(self, provider: str) -> ChatClient:
        llm = self._llm
        if isinstance(llm, ChatClient):
            return llm
        if llm is not None and provider in llm:
            return llm[provider]
        raise RuntimeError(f"llm: no chat client configured for provider {provider!r}")

    # ------------------------------------------------------------------ internals: durability

    async def _open_store(self) -> None:
        """Open the store on the writer thread and restore the kernel: snapshot, then the journal after it."""
        if self._store_path is None:
            return
        # A sqlite3 connection belongs to its thread: every store call runs on this one thread.
        self._writer = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="agentrm-store")
        path = self._store_path
        self._store = store = await self._in_writer(lambda: Store.open(path, create=True))
        self._state, seq = await self._in_writer(lambda: restore_state(store, self.config))
        if seq == 0 and await self._in_writer(store.latest_snapshot) is None:
            # A snapshot at seq 0 records the config, so a later run with another config is refused.
            text = dump_scheduler_state(self._state)
            await self._in_writer(lambda: store.save_snapshot(0, text))
        self._seq = self._flushed_seq = seq
        # A fresh id prefix per incarnation, so generated ids never collide with journaled ones.
        self._id_prefix = f"r{seq}-" if seq else ""

    def _recover(self) -> None:
        """Queue recovered waiting tasks again; fail (and list) those that were running.

        Every waiting task gets its coroutine record *before* any kernel step, since
        any step may dispatch it. One whose agent has no function in ``agents=`` gets
        a stand-in that fails at once, and is listed in :attr:`interrupted` too.
        """
        assert self._loop is not None
        tasks = sorted((t for t in self._state.tasks.values() if not t.phase.terminal),
                       key=lambda t: t.submit_seq)
        interrupted: list[RecoveredTask] = []
        for t in tasks:
            recovered = RecoveredTask(t.task_id, t.agent, t.task_class, t.provider, t.parent)
            if t.phase is Phase.RUNNING:
                interrupted.append(recovered)
                continue
            fn = self._agents.get(t.agent)
            if fn is None:
                fn = _missing_agent(t.agent)
                interrupted.append(recovered)
            handle: TaskHandle[Any] = TaskHandle(t.task_id, t.agent, self, self._loop)
            ctx = TaskContext(self, t.task_id, t.agent, t.provider, t.task_class)
            self._recs[t.task_id] = _Rec(t.task_id, fn, handle, ctx)
            self.restored[t.task_id] = handle
        self.interrupted = tuple(interrupted)
        for t in tasks:
            if t.phase is Phase.RUNNING and not self._state.tasks[t.task_id].phase.terminal:
                self._apply(TaskFailed(self._now(), t.task_id, INTERRUPTED))
        # Lanes may be free and time has passed: let the kernel dispatch.
        self._apply(ClockAdvanced(self._now()))

    async def _in_writer(self, fn: Callable[[], T]) -> T:
        assert self._loop is not None and self._writer is not None
        return await self._loop.run_in_executor(self._writer, fn)

    async def _open_jsonl(self) -> None:
        """Open the JSON Lines event log, bringing it up to date from the store's journal.

        The SQLite journal is authoritative: the JSONL file is buffered, so after a
        crash it may lag (or end in a torn line, which is cut off). Records it lacks are
        copied from the store; a fresh file next to an existing store gets the whole
        history, which makes ``journal_jsonl`` also the way to export a store's log.
        """
        if self._jsonl_path is None:
            return
        path = os.fspath(self._jsonl_path)
        have = 0
        if os.path.exists(path):
            _cut_torn_line(path)
        if os.path.exists(path) and os.path.getsize(path) > 0:
            if self._store is None:
                raise ValueError(f"journal_jsonl: {path} already holds an event log; "
                                 "continuing it needs the durable store that produced it")
            have = _jsonl_records(path)
            if have > self._seq:
                raise ValueError(f"journal_jsonl: {path} has {have} records but the store has {self._seq}; "
                                 "it is not this store's log")
            fresh = False
        else:
            fresh = True
        stream = open(path, "a", encoding="utf-8", newline="")  # noqa: SIM115 - closed in _close_io
        self._jsonl = typing.cast(io.TextIOBase, stream)
        writer = EventLogWriter(stream, self.config, write_header=fresh, next_seq=have + 1)
        self._jsonl_writer = writer
        if have < self._seq:
            store = _require(self._store)
            missing = await self._in_writer(lambda: list(store.journal_after(have)))
            for r in missing:
                writer.write(event_from_json(json.loads(r.event), f"journal seq {r.seq} event"),
                             tuple(effect_from_json(e, f"journal seq {r.seq} effects")
                                   for e in json.loads(r.effects)))

    def _journal(self, event: SchedulerEvent, effects: tuple[SchedulerEffect, ...]) -> None:
        if self._jsonl_writer is not None:
            self._jsonl_writer.write(event, effects)
        if self._store is not None and self._journal_error is None:
            # The eventlog's fast encoder: the same bytes as its general one, at a fraction of the cost.
            self._pending.append(JournalRecord(self._seq, encode_event(event), encode_effects(effects)))
            self._since_snapshot += 1
            if self._flush_task is None and self._open:
                self._flush_task = asyncio.ensure_future(self._flush_loop())

    async def _flush_loop(self) -> None:
        """Group commit: while records are pending, write them as one transaction on the writer thread."""
        try:
            while self._pending and self._journal_error is None:
                await self._flush_once()
                if self._since_snapshot >= self._snapshot_every and self._open and self._snapshot_task is None:
                    # Beside the group commit, not in its way: a durable wait never waits for a snapshot.
                    self._snapshot_task = asyncio.ensure_future(self._background_snapshot())
        except Exception as exc:  # noqa: BLE001 - reported to every waiter, not lost in a task
            self._journal_failed(exc)
        finally:
            self._flush_task = None

    def _journal_failed(self, exc: Exception) -> None:
        """The store refused a write: durability is gone, so every waiter (and later call) gets the error."""
        error = JournalError(f"durable journal write failed, the runtime can no longer promise durability: {exc}")
        error.__cause__ = exc
        self._journal_error = error
        self._pending = []
        for _, waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(error)
        self._waiters = []

    async def _flush_once(self) -> None:
        batch, self._pending = self._pending, []
        if not batch:
            return
        store = _require(self._store)
        # Trusted: the records were just encoded here from kernel values, so the store
        # checks their seqs but does not parse every one again (files read back are
        # still validated by the decoder).
        await self._in_writer(lambda: store.append_journal(batch, trusted=True))
        self._flushed_seq = batch[-1].seq
        ready = [f for s, f in self._waiters if s <= self._flushed_seq]
        self._waiters = [(s, f) for s, f in self._waiters if s > self._flushed_seq]
        for waiter in ready:
            if not waiter.done():
                waiter.set_result(None)

    async def _flush(self) -> None:
        """Write everything pending now (and wait for a running group commit)."""
        if self._flush_task is not None:
            await asyncio.shield(self._flush_task)
        if self._journal_error is None:
            try:
                while self._pending:
                    await self._flush_once()
            except Exception as exc:  # noqa: BLE001 - same report as the group commit's
                self._journal_failed(exc)
        if self._journal_error is not None:
            raise self._journal_error

    async def _durable(self, seq: int) -> None:
        """Return once journal record ``seq`` is committed (raise :class:`JournalError` if it cannot be)."""
        if self._journal_error is not None:
            raise self._journal_error
        if self._flushed_seq >= seq:
            return
        assert self._loop is not None
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._waiters.append((seq, waiter))
        if self._flush_task is None:
            self._flush_task = asyncio.ensure_future(self._flush_loop())
        await asyncio.shield(waiter)

    async def _background_snapshot(self) -> None:
        try:
            await self._snapshot()
        except Exception as exc:  # noqa: BLE001 - reported to every waiter, like a failed flush
            self._journal_failed(exc)
        finally:
            self._snapshot_task = None

    async def _snapshot(self) -> None:
        """Save the kernel state after the last journaled step, once the journal up to it is committed."""
        state, seq = self._state, self._seq
        # Dumped on a thread of its own (the state is immutable): a state of 10,000s of tasks
        # takes a while, and meanwhile the loop runs tasks and the writer commits the journal.
        if self._dumper is None:
            self._dumper = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="agentrm-dump")
        assert self._loop is not None
        text = await self._loop.run_in_executor(self._dumper, lambda: dump_scheduler_state(state))
        await self._durable(seq)  # a snapshot may not be ahead of the journal
        store = _require(self._store)

        def write() -> None:
            store.save_snapshot(seq, text)
            # Keep two: the newest, and one before it in case the newest is ever unreadable.
            store.prune_snapshots(keep=2)

        await self._in_writer(write)
        self._since_snapshot = self._seq - seq  # steps journaled while it was written count

    async def _close_io(self) -> None:
        if self._snapshot_task is not None:  # left running only when the exit itself failed
            self._snapshot_task.cancel()
            await asyncio.gather(self._snapshot_task, return_exceptions=True)
        try:
            if self._jsonl is not None:
                self._jsonl.close()
        finally:
            self._jsonl = None
            self._jsonl_writer = None
            self._contexts = None
            if self._memory_store is not None:
                self._memory_store.close()
                self._memory_store = None
            if self._memory_dir is not None:
                self._memory_dir.cleanup()
                self._memory_dir = None
            if self._store is not None:
                store, self._store = self._store, None
                await self._in_writer(store.close)
            if self._writer is not None:
                self._writer.shutdown(wait=True)
                self._writer = None
            if self._dumper is not None:
                self._dumper.shutdown(wait=True)
                self._dumper = None


def restore_state(store: Store, config: SchedulerConfig) -> tuple[SchedulerState, int]:
    """The kernel state recorded in ``store``: its latest snapshot with the journal after it folded in.

    Returns the state and the last journal seq. A store with no snapshot starts from
    ``SchedulerState.initial(config)``; a snapshot taken under another config, or a gap
    in the journal, raises ``ValueError`` naming the file. Call it on the thread that
    opened ``store``.
    """
    snapshot = store.latest_snapshot()
    seq = 0
    state = SchedulerState.initial(config)
    if snapshot is not None:
        seq, text = snapshot
        state = load_scheduler_state(text)
        if state.config != config:
            raise ValueError(f"{store.path}: config differs from the one in its snapshot at seq {seq}")
    for record in store.journal_after(seq):
        if record.seq != seq + 1:
            raise ValueError(f"{store.path}: journal record {record.seq} follows {seq}; expected {seq + 1}")
        event = event_from_json(json.loads(record.event), f"journal seq {record.seq} event")
        state = kernel_step(state, event).state
        seq = record.seq
    return state, seq


def _cut_torn_line(path: str) -> None:
    """Cut off a last line that a crash left without its newline (its record is in the store)."""
    with open(path, "rb+") as raw:
        data = raw.read()
        end = data.rfind(b"\n") + 1
        if end < len(data):
            raw.truncate(end)


def _jsonl_records(path: str) -> int:
    """The number of records in an existing, complete event log (validated on the way)."""
    count = 0
    try:
        with open(path, encoding="utf-8", newline="") as stream:
            for _ in EventLogReader(stream, path):
                count += 1
    except FormatError as exc:
        raise ValueError(f"journal_jsonl: {exc}") from None
    return count


def _missing_agent(agent: str) -> AgentFn:
    async def missing(ctx: TaskContext) -> None:
        raise LookupError(f"agents: no function registered for agent {agent!r}; resubmit task {ctx.task_id!r}")
    return missing


def _require(store: Store | None) -> Store:
    if store is None:
        raise RuntimeError("durable mode is off (no store)")
    return store


_TASK_CLASSES: typing.Final[Mapping[object, TaskClass]] = {
    **{c: c for c in TaskClass}, **{c.value: c for c in TaskClass}}


def _no_clock() -> float:
    raise RuntimeError("the runtime's clock is read outside 'async with Runtime(...)'")


def _task_class(value: TaskClass | str) -> TaskClass:
    # One dict lookup: TaskClass(value) costs a microsecond per submission.
    try:
        task_class = _TASK_CLASSES.get(value)
    except TypeError:  # unhashable: not a class name either
        task_class = None
    if task_class is None:
        names = ", ".join(c.value for c in TaskClass)
        raise ValueError(f"lane_class: expected one of {names}, got {value!r}")
    return task_class
