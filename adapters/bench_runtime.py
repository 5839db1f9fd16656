"""Benchmark: scheduling overhead per task of the asyncio runtime vs a bare semaphore.

``python -m agentrm.adapters.bench_runtime [--tasks N] [--lanes L] [--repeat R]``

Runs N no-op agents (each returns at once) three ways in one process, alternating,
and reports the median wall time per task of R repetitions:

* ``semaphore`` -- ``asyncio.create_task`` per agent, gated by ``asyncio.Semaphore(L)``:
  the least a bounded-concurrency runner can do;
* ``runtime`` -- ``Runtime.submit`` per agent, in memory: every submission, start and
  finish is a kernel step (MLFQ queues, provider gate, reaper deadlines);
* ``runtime+sqlite`` -- the same with the durable SQLite journal (group commit on a
  writer thread; submissions made with ``wait_durable=False`` then one ``sync()``;
  the clock stops once every step is committed), when ``--durable`` is given.

Limits are set out of the way (no rate limit, no reaping) so only overhead is measured.
The target is ``runtime`` within 1.5x of ``semaphore``. The last lines split each
runtime's time into time inside ``kernel.step`` (including freeing the state each step
replaces), encoding journal records (durable mode), and the rest: the shell's own
(asyncio tasks, futures, effect dispatch) and, durable, the group commit's share of
the loop -- so a miss can be attributed. A "shell alone" line per runtime mode times
the same run with the kernel's steps recorded once and replayed: the shell's own cost,
free of the kernel's effects on it (freed states, garbage collection, caches).
The clocks add about a microsecond a step to the rows they measure.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import statistics
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from agentrm.kernel.common import Step
from agentrm.kernel.scheduler.config import ClassConfig, ProviderConfig, SchedulerConfig
from agentrm.kernel.scheduler.effects import SchedulerEffect
from agentrm.kernel.scheduler.events import SchedulerEvent
from agentrm.kernel.scheduler.state import SchedulerState

from . import runtime as runtime_module
from .bench_kernel import kernel_build
from .runtime import Runtime, TaskContext


async def _noop_ctx(ctx: TaskContext) -> None:
    return None


async def _noop() -> None:
    return None


def bench_config(tasks: int, lanes: int) -> SchedulerConfig:
    """A config whose limits never bind: huge rates, queue and idle limits, one admission level."""
    big = 10**12
    return SchedulerConfig(
        lanes=lanes,
        interactive=ClassConfig(entry_level=0, reserved_lanes=1, idle_ms_reap=big),
        batch=ClassConfig(entry_level=1, reserved_lanes=0, idle_ms_reap=big),
        background=ClassConfig(entry_level=2, reserved_lanes=0, idle_ms_reap=big),
        admission_rate_per_window=big,
        queue_cap=tasks,
        providers=(ProviderConfig("default", big, big),),
    )


async def run_semaphore(tasks: int, lanes: int) -> float:
    """Seconds to run ``tasks`` no-op coroutines gated by a semaphore of ``lanes``."""
    sem = asyncio.Semaphore(lanes)

    async def gated() -> None:
        async with sem:
            await _noop()

    start = time.perf_counter()
    await asyncio.gather(*[asyncio.create_task(gated()) for _ in range(tasks)])
    return time.perf_counter() - start


class _KernelClock:
    """Wraps the kernel's step to add up the time spent inside it (the rest is the runtime's own).

    It holds on to the state each step was given until the next step, so the old state's
    deallocation (the nodes the kernel's path copying replaced) happens, and is counted,
    inside the kernel's time rather than in the runtime's assignment of the new state.
    """

    def __init__(self) -> None:
        self.seconds = 0.0
        self._step = runtime_module.kernel_step
        self._held: SchedulerState | None = None

    def __call__(self, state: SchedulerState, event: SchedulerEvent) -> Step[SchedulerState, SchedulerEffect]:
        start = time.perf_counter()
        self._held = state  # frees the state before it, here
        result = self._step(state, event)
        self.seconds += time.perf_counter() - start
        return result


class _KernelReplay:
    """Records the kernel's steps in one run, then hands them back in order in later runs.

    A replayed run costs the shell alone: the kernel's time becomes a list index, and
    with it the kernel's side effects on the shell (freeing states, garbage collection
    of its allocations, evicted caches). The benchmark's runs are deterministic -- every
    submission first, then tasks in dispatch order -- and each replayed event is checked
    against the recorded one (type and task id), so a run that went another way fails
    instead of measuring nonsense. The recorded states are frozen out of the garbage
    collector's sight while replaying, so keeping them costs the replayed run nothing.
    """

    def __init__(self) -> None:
        self._step = runtime_module.kernel_step
        self._steps: list[Step[SchedulerState, SchedulerEffect]] = []
        self._keys: list[tuple[type[Any], str | None]] = []
        self._next = 0

    def record(self, state: SchedulerState, event: SchedulerEvent) -> Step[SchedulerState, SchedulerEffect]:
        result = self._step(state, event)
        self._steps.append(result)
        self._keys.append((type(event), getattr(event, "task_id", None)))
        return result

    def replay(self, state: SchedulerState, event: SchedulerEvent) -> Step[SchedulerState, SchedulerEffect]:
        i = self._next
        if i >= len(self._steps) or self._keys[i] != (type(event), getattr(event, "task_id", None)):
            raise RuntimeError(f"bench_runtime: replayed step {i + 1} is {event!r}, not the recorded one")
        self._next = i + 1
        return self._steps[i]

    def rewind(self) -> None:
        """Start handing back from the first recorded step again."""
        self._next = 0


async def run_replayed(tasks: int, lanes: int, replay: _KernelReplay, *, record: bool,
                       store: Path | None = None) -> float:
    """Seconds of one run with the kernel's steps recorded into (or replayed from) ``replay``."""
    runtime_module.kernel_step = replay.record if record else replay.replay
    if not record:
        replay.rewind()
        gc.collect()
        gc.freeze()
    try:
        return await _run_runtime(bench_config(tasks, lanes), tasks, store)
    finally:
        runtime_module.kernel_step = replay._step
        if not record:
            gc.unfreeze()


class _EncodeClock:
    """Wraps the runtime's journal encoders (event and effects lines) to add up their time."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._event_line = runtime_module.encode_event
        self._effects_line = runtime_module.encode_effects

    def event_line(self, event: SchedulerEvent) -> str:
        start = time.perf_counter()
        text = self._event_line(event)
        self.seconds += time.perf_counter() - start
        return text

    def effects_line(self, effects: Iterable[SchedulerEffect]) -> str:
        start = time.perf_counter()
        text = self._effects_line(effects)
        self.seconds += time.perf_counter() - start
        return text


async def run_runtime(tasks: int, lanes: int, store: Path | None = None,
                      kernel_clock: _KernelClock | None = None,
                      encode_clock: _EncodeClock | None = None) -> float:
    """Seconds to submit and complete ``tasks`` no-op agents under the Runtime."""
    config = bench_config(tasks, lanes)
    if kernel_clock is not None:
        runtime_module.kernel_step = kernel_clock
    if encode_clock is not None:
        runtime_module.encode_event = encode_clock.event_line
        runtime_module.encode_effects = encode_clock.effects_line
    try:
        return await _run_runtime(config, tasks, store)
    finally:
        if kernel_clock is not None:
            runtime_module.kernel_step = kernel_clock._step
        if encode_clock is not None:
            runtime_module.encode_event = encode_clock._event_line
            runtime_module.encode_effects = encode_clock._effects_line


async def _run_runtime(config: SchedulerConfig, tasks: int, store: Path | None) -> float:
    async with Runtime(config, store=store) as rm:
        start = time.perf_counter()
        # Durable mode: one group commit for the whole batch, not one per submission.
        handles = [await rm.submit(_noop_ctx, agent="bench", lane_class="batch", wait_durable=False)
                   for _ in range(tasks)]
        await rm.sync()
        await asyncio.gather(*handles)
        # Durable mode: the clock stops once every step (the finishes too) is committed,
        # not with a backlog left for the exit to write.
        await rm.sync()
        elapsed = time.perf_counter() - start
    return elapsed


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print one line per mode."""
    parser = argparse.ArgumentParser(prog="python -m agentrm.adapters.bench_runtime", description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000, help="no-op agents per run (default 10000)")
    parser.add_argument("--lanes", type=int, default=8, help="concurrency (default 8)")
    parser.add_argument("--repeat", type=int, default=5, help="repetitions; the median is reported (default 5)")
    parser.add_argument("--durable", action="store_true", help="also measure the SQLite-journaled runtime")
    args = parser.parse_args(argv)
    for name in ("tasks", "lanes", "repeat"):
        if getattr(args, name) < 1:
            parser.error(f"--{name}: must be >= 1")
    times: dict[str, list[float]] = {"semaphore": [], "runtime": []}
    # Per mode and run: seconds inside kernel.step, and encoding journal records.
    kernel: dict[str, list[float]] = {"runtime": [], "runtime+sqlite": []}
    encode: list[float] = []
    if args.durable:
        times["runtime+sqlite"] = []
    # The shell alone, per mode: the same runs with the kernel's recorded steps replayed.
    alone: dict[str, list[float]] = {mode: [] for mode in kernel}
    with tempfile.TemporaryDirectory() as tmp:
        dbs = (Path(tmp) / f"bench{i}.db" for i in itertools.count())
        # One recording run per mode (a warm-up, too), replayed in every repetition.
        replays = {"runtime": _KernelReplay()}
        asyncio.run(run_replayed(args.tasks, args.lanes, replays["runtime"], record=True))
        if args.durable:
            replays["runtime+sqlite"] = _KernelReplay()
            asyncio.run(run_replayed(args.tasks, args.lanes, replays["runtime+sqlite"], record=True,
                                     store=next(dbs)))
        for _ in range(args.repeat):
            times["semaphore"].append(asyncio.run(run_semaphore(args.tasks, args.lanes)))
            clock = _KernelClock()
            times["runtime"].append(asyncio.run(run_runtime(args.tasks, args.lanes, kernel_clock=clock)))
            kernel["runtime"].append(clock.seconds)
            alone["runtime"].append(asyncio.run(run_replayed(args.tasks, args.lanes, replays["runtime"], record=False)))
            if args.durable:
                clock, enc = _KernelClock(), _EncodeClock()
                times["runtime+sqlite"].append(asyncio.run(
                    run_runtime(args.tasks, args.lanes, next(dbs), kernel_clock=clock, encode_clock=enc)))
                kernel["runtime+sqlite"].append(clock.seconds)
                encode.append(enc.seconds)
                alone["runtime+sqlite"].append(asyncio.run(run_replayed(
                    args.tasks, args.lanes, replays["runtime+sqlite"], record=False, store=next(dbs))))
        del replays
    base = statistics.median(times["semaphore"])
    per_task = 1e6 / args.tasks
    print(f"kernel build: {kernel_build()}")
    print(f"{args.tasks} no-op agents, {args.lanes} lanes, median of {args.repeat}")
    print(f"{'mode':<16}{'total ms':>10}{'us/task':>10}{'vs semaphore':>14}")
    for mode, samples in times.items():
        med = statistics.median(samples)
        print(f"{mode:<16}{med * 1000:>10.1f}{med * per_task:>10.1f}{med / base:>13.2f}x")
    # Where the runtime's time goes: inside kernel.step (two or more steps per task) vs the shell.
    in_kernel = statistics.median(kernel["runtime"])
    shell = statistics.median([t - k for t, k in zip(times["runtime"], kernel["runtime"])])
    print(f"runtime split: kernel.step {in_kernel * per_task:.1f} us/task, "
          f"shell {shell * per_task:.1f} us/task ({shell / base:.2f}x semaphore)")
    solo = statistics.median(alone["runtime"])
    print(f"runtime shell alone (kernel replayed): {solo * per_task:.1f} us/task ({solo / base:.2f}x semaphore)")
    if args.durable:
        durable = list(zip(times["runtime+sqlite"], kernel["runtime+sqlite"], encode))
        rest = statistics.median([t - k - e for t, k, e in durable])
        print(f"runtime+sqlite split: kernel.step {statistics.median(kernel['runtime+sqlite']) * per_task:.1f} us/task, "
              f"journal encoding {statistics.median(encode) * per_task:.1f} us/task, "
              f"shell and group commit {rest * per_task:.1f} us/task")
        solo = statistics.median(alone["runtime+sqlite"])
        print(f"runtime+sqlite shell alone (kernel replayed): {solo * per_task:.1f} us/task "
              f"({solo / base:.2f}x semaphore)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
