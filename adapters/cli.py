"""The ``agentrm`` command: workloads, simulation, replay and invariant checks of event logs.

Exit codes: 0 success; 1 a replay diverged or an invariant broke (the output names the
step); 2 bad input (``file:line: field: message``) or bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import IO, Any, Final, NoReturn

from agentrm.kernel.scheduler.config import ClassConfig, ProviderConfig, SchedulerConfig, TaskClass
from agentrm.kernel.scheduler.effects import SchedulerEffect
from agentrm.kernel.scheduler.events import (
    Heartbeat,
    SchedulerEvent,
    StepFinished,
    Submit,
    TaskFinished,
)

from . import metrics as metrics_mod
from .baselines import BASELINES
from .context_sim import CONTEXT_POLICIES, context_to_json, format_context_table, simulate_context
from .eventlog import FormatError, dumps_line, effect_to_json, event_to_json, read_eventlog
from .scenarios import SCENARIOS, ScenarioParams, generate
from .simulator import Policy, SimulationError, kernel_policy, kernel_reducer, simulate
from .workload import Workload, read_workload, write_workload

POLICIES: Final = ("mlfq", *BASELINES)
EXIT_DIVERGED: Final = 1
EXIT_BAD_INPUT: Final = 2


class _UsageError(Exception):
    """Bad arguments that argparse cannot catch (e.g. --log with a baseline)."""


# --------------------------------------------------------------------------- progress

class Progress:
    """A one-line progress bar on stderr, shown only on a terminal and only for slow runs.

    Nothing is drawn during the first ``delay_s`` seconds, so quick runs stay silent,
    and nothing at all when stderr is not a TTY (logs and pipes stay clean).
    """

    def __init__(self, total: int, label: str, stream: IO[str] | None = None, delay_s: float = 1.5) -> None:
        self.stream = sys.stderr if stream is None else stream
        self.enabled = self.stream.isatty() and total > 0
        self.total = total
        self.label = label
        self.start = time.monotonic()
        self.delay_s = delay_s
        self.drawn = False

    def update(self, done: int) -> None:
        """Redraw with ``done`` of ``total`` complete (rate-limited by the delay)."""
        if not self.enabled or time.monotonic() - self.start < self.delay_s:
            return
        frac = min(1.0, done / self.total)
        bar = "#" * int(frac * 30)
        self.stream.write(f"\r{self.label} [{bar:<30}] {frac * 100:5.1f}%")
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        """Erase the bar if one was drawn."""
        if self.drawn:
            self.stream.write("\r" + " " * (len(self.label) + 42) + "\r")
            self.stream.flush()


# --------------------------------------------------------------------------- commands

def _open_out(path: str | None) -> IO[str]:
    if path is None or path == "-":
        return sys.stdout
    try:
        return open(path, "w", encoding="utf-8", newline="\n")
    except OSError as exc:
        raise FormatError(path, 0, "", f"cannot write: {exc.strerror}") from None


def cmd_generate(args: argparse.Namespace) -> int:
    """``agentrm workload generate``: write a built-in scenario's workload."""
    try:
        params = ScenarioParams(load=args.load, fault_rate=args.fault_rate, tightness=args.tightness,
                                horizon_s=args.horizon_s, burst_s=args.burst_s)
    except ValueError as exc:
        raise _UsageError(str(exc)) from None
    workload = generate(args.scenario, args.seed, params)
    out = _open_out(args.output)
    try:
        write_workload(out, workload)
    finally:
        if out is not sys.stdout:
            out.close()
    return 0


class _Violated(Exception):
    """An invariant broke during ``simulate --check``."""

    def __init__(self, seq: int, violations: Sequence[object], event: SchedulerEvent) -> None:
        super().__init__(seq)
        self.seq = seq
        self.violations = violations
        self.event = event


def _checker() -> Callable[[Any, SchedulerEvent, Any, tuple[SchedulerEffect, ...]], None]:
    """An ``on_step`` hook running every scheduler invariant, raising at the first violation."""
    from agentrm.kernel.common import Step
    from agentrm.specs import check_scheduler_transition

    seq = 0

    def check(before: Any, event: SchedulerEvent, after: Any, effects: tuple[SchedulerEffect, ...]) -> None:
        nonlocal seq
        seq += 1
        violations = check_scheduler_transition(before, event, Step(after, effects))
        if violations:
            raise _Violated(seq, violations, event)

    return check


def _policy(name: str, workload: Workload, log: IO[str] | None, check: bool = False) -> Policy:
    if name == "mlfq":
        return kernel_policy(workload.header.config, log, _checker() if check else None)
    return BASELINES[name](workload.header.config)


def _choose(requested: Sequence[str] | None) -> list[str]:
    """Expand ``--policy`` values (repeated, comma-separated, ``all``) into names, in order."""
    names: list[str] = []
    for item in requested or ["mlfq"]:
        for name in item.split(","):
            expanded = [*POLICIES, *CONTEXT_POLICIES[1:]] if name == "all" else [name]
            for n in expanded:
                if n not in POLICIES and n not in CONTEXT_POLICIES:
                    raise _UsageError(f"--policy: unknown policy {n!r}; choose from "
                                      f"{', '.join(POLICIES + CONTEXT_POLICIES[1:])} or all")
                if n not in names:
                    names.append(n)
    return names


def cmd_simulate(args: argparse.Namespace) -> int:
    """``agentrm simulate``: run a workload under one or more policies and print metrics.

    Task records run under the scheduling policies (mlfq, fifo, rr, priority); context
    records under the context policies (mlfq, sliding-window, rolling-summary).
    """
    names = _choose(args.policy)
    if args.log is not None and names != ["mlfq"]:
        raise _UsageError("--log: only the mlfq policy (the kernel) writes an event log; use --policy mlfq")
    workload = read_workload(args.workload)
    sched_names = [n for n in names if n in POLICIES] if workload.tasks else []
    ctx_names = [n for n in names if n in CONTEXT_POLICIES] if workload.context else []
    if not sched_names and not ctx_names:
        kinds = "task" if workload.tasks else "context" if workload.context else "no"
        raise _UsageError(f"--policy: none of {', '.join(names)} applies to this workload ({kinds} records)")
    results: list[metrics_mod.Metrics] = []
    horizon = workload.header.horizon_ms or max((t.arrival_ms for t in workload.tasks), default=0)
    for name in sched_names:
        log = _open_out(args.log) if args.log is not None else None
        bar = Progress(horizon, f"simulating {name}")
        try:
            result = simulate(workload, _policy(name, workload, log, args.check), progress=bar.update)
        except _Violated as exc:
            bar.close()
            for v in exc.violations:
                print(f"{args.workload}: mlfq step {exc.seq}: invariant {v}")
            print(f"  event: {dumps_line(event_to_json(exc.event))}")
            return EXIT_DIVERGED
        finally:
            bar.close()
            if log is not None and log is not sys.stdout:
                log.close()
        results.append(metrics_mod.compute(result))
    ctx_results = simulate_context(workload, ctx_names) if ctx_names else ()
    bounds = metrics_mod.capacity(workload) if results else None
    if args.json:
        sys.stdout.write(metrics_mod.dumps(results, [context_to_json(m) for m in ctx_results], bounds))
        return 0
    sys.stdout.write(f"workload: {args.workload} ({workload.header.scenario or 'custom'}, "
                     f"seed {workload.header.seed}, {len(workload.tasks)} tasks, "
                     f"{len(workload.context)} context records)\n")
    if bounds is not None:
        provider = "unlimited" if bounds.provider_bound is None else f"{bounds.provider_bound:.2f}"
        sys.stdout.write(f"throughput bound: {bounds.bound:.2f} tasks/min (offered {bounds.offered:.2f}, "
                         f"lanes {bounds.lane_bound:.2f}, provider {provider})\n")
    if results:
        sys.stdout.write(metrics_mod.format_table(results))
    if ctx_results:
        sys.stdout.write(format_context_table(ctx_results))
    return 0


def _effects_json(effects: Sequence[SchedulerEffect]) -> list[str]:
    return [dumps_line(effect_to_json(e)) for e in effects]


def _diff(expected: Sequence[SchedulerEffect], got: Sequence[SchedulerEffect]) -> str:
    """A line diff of two effect lists, one effect per line (``-`` logged, ``+`` replayed)."""
    import difflib

    lines = difflib.unified_diff(_effects_json(expected), _effects_json(got), "logged", "replayed", lineterm="", n=2)
    return "\n".join(lines)


Reducer = tuple[Callable[[SchedulerConfig], Any], Callable[[Any, SchedulerEvent], tuple[Any, tuple[SchedulerEffect, ...]]]]
"""``(initial, reduce)``: how to build a state from a config and fold one event."""


def cmd_replay(args: argparse.Namespace, reducer: Reducer | None = None) -> int:
    """``agentrm replay``: re-fold the logged events; every effect must match.

    ``reducer`` defaults to the kernel; tests pass another to see a divergence reported.
    """
    log = read_eventlog(args.log)
    initial, reduce = reducer or kernel_reducer()
    state = initial(log.header.config)
    bar = Progress(len(log.records), "replaying")
    try:
        for i, record in enumerate(log.records):
            bar.update(i)
            state, effects = reduce(state, record.event)
            if effects != record.effects:
                bar.close()
                print(f"{args.log}:{record.seq + 1}: seq {record.seq}: effects diverge")
                print(f"  event: {dumps_line(event_to_json(record.event))}")
                print(_diff(record.effects, effects))
                return EXIT_DIVERGED
    finally:
        bar.close()
    print(f"{args.log}: {len(log.records)} steps replayed, every effect matches "
          f"(logged by kernel {log.header.kernel_version})")
    return 0


def cmd_check(args: argparse.Namespace, reducer: Reducer | None = None) -> int:
    """``agentrm check``: fold the log through the kernel, checking every invariant at every step.

    ``reducer`` defaults to the kernel; tests pass a broken one to see a violation reported.
    """
    from agentrm.kernel.common import Step
    from agentrm.specs import check_scheduler, check_scheduler_transition

    log = read_eventlog(args.log)
    initial, reduce = reducer or kernel_reducer()
    state = initial(log.header.config)
    first = check_scheduler(state)
    if first:
        for v in first:
            print(f"{args.log}: initial state: {v}")
        return EXIT_DIVERGED
    bar = Progress(len(log.records), "checking")
    try:
        for i, record in enumerate(log.records):
            bar.update(i)
            before = state
            state, effects = reduce(state, record.event)
            violations = check_scheduler_transition(before, record.event, Step(state, effects))
            if violations:
                bar.close()
                for v in violations:
                    print(f"{args.log}:{record.seq + 1}: seq {record.seq}: invariant {v}")
                print(f"  event: {dumps_line(event_to_json(record.event))}")
                return EXIT_DIVERGED
    finally:
        bar.close()
    print(f"{args.log}: {len(log.records)} steps, every invariant holds at every step")
    return 0


def _demo_config() -> SchedulerConfig:
    return SchedulerConfig(
        lanes=3,
        level_allotments_ms=(2_000, 8_000),
        boost_period_ms=60_000,
        interactive=ClassConfig(entry_level=0, reserved_lanes=1, idle_ms_reap=10_000),
        batch=ClassConfig(entry_level=1, reserved_lanes=0, idle_ms_reap=10_000),
        background=ClassConfig(entry_level=1, reserved_lanes=0, idle_ms_reap=10_000),
        providers=(ProviderConfig("default", 600, 600_000),),
    )


_DEMO_SCRIPT: Final[tuple[tuple[str, SchedulerEvent], ...]] = (
    ("a long background agent arrives", Submit(0, "crawler", "crawler", TaskClass.BACKGROUND)),
    ("it spawns a sub-agent", Submit(100, "crawler/sub", "crawler", TaskClass.BATCH, parent="crawler")),
    ("the sub-agent finishes a step (then hangs, silently)", StepFinished(1_500, "crawler/sub")),
    ("the crawler finishes a step", StepFinished(3_000, "crawler")),
    ("a user asks something", Submit(3_200, "chat-1", "user", TaskClass.INTERACTIVE)),
    ("a second user asks something", Submit(3_300, "chat-2", "user-2", TaskClass.INTERACTIVE)),
    ("the crawler finishes a step", StepFinished(4_000, "crawler")),
    ("the first answer is done", TaskFinished(4_700, "chat-1")),
    ("the second answer is done", TaskFinished(5_200, "chat-2")),
    ("the crawler heartbeats", Heartbeat(9_000, "crawler")),
    ("the crawler finishes a step", StepFinished(14_000, "crawler")),
    ("the crawler is done", TaskFinished(16_000, "crawler")),
)


def cmd_bench(args: argparse.Namespace) -> int:
    """``agentrm bench``: every scenario under every policy, beside the paper's numbers."""
    from .bench import BenchSettings, dumps, format_report, run_bench

    try:
        settings = BenchSettings.make(quick=args.quick, seeds=args.seeds)
    except ValueError as exc:
        raise _UsageError(str(exc)) from None
    if args.plot is not None:
        from .plots import PlotError, prepare

        try:
            prepare(args.plot)  # fail now, not after the whole run
        except PlotError as exc:
            raise _UsageError(str(exc)) from None
    started = time.monotonic()
    tty = sys.stderr.isatty()

    def say(label: str) -> None:
        if tty:  # stage names on a terminal only; pipes and logs stay clean
            print(f"agentrm bench: {label} ({time.monotonic() - started:.0f}s)", file=sys.stderr)

    result = run_bench(settings, progress=say)
    if args.json:
        sys.stdout.write(dumps(result))
    else:
        sys.stdout.write(format_report(result))
    if args.plot is not None:
        from .plots import PlotError, write_plots

        say("plots")
        try:
            paths = write_plots(result, args.plot)
        except PlotError as exc:
            raise _UsageError(str(exc)) from None
        print(f"plots: {', '.join(str(p) for p in paths)}", file=sys.stderr if args.json else sys.stdout)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """``agentrm demo``: a short scripted scenario, printing what the kernel decided."""
    del args
    initial, reduce = kernel_reducer()
    state = initial(_demo_config())
    print("agentrm demo: 3 lanes (1 reserved for interactive work); a task silent for 10 s is reaped.\n"
          "Each line is an event fed to the kernel; arrows are the effects it returned.\n")
    wake: int | None = None
    for what, event in _DEMO_SCRIPT:
        # Deliver the wake-up the kernel asked for, if it falls before this event, as a shell would.
        while wake is not None and wake <= event.at_ms:
            at = wake
            state, effects = reduce(state, _clock(at))
            _demo_print(f"t={at / 1000:4.1f}s  (wake-up)", effects)
            wake = _next_wake(effects, None)
        state, effects = reduce(state, event)
        _demo_print(f"t={event.at_ms / 1000:4.1f}s  {what}", effects)
        wake = _next_wake(effects, wake)
    print("\nThe interactive requests never waited for the crawler (reserved lane, then a yield at its\n"
          "step boundary); the hung sub-agent was reaped and its lane freed after 10 s of silence.")
    return 0


def _clock(at: int) -> SchedulerEvent:
    from agentrm.kernel.scheduler.events import ClockAdvanced

    return ClockAdvanced(at)


def _next_wake(effects: Sequence[SchedulerEffect], current: int | None) -> int | None:
    from agentrm.kernel.scheduler.effects import WakeAt

    for e in effects:
        if isinstance(e, WakeAt):
            current = e.at_ms
    return current


def _demo_print(title: str, effects: Sequence[SchedulerEffect]) -> None:
    print(title)
    for e in effects:
        obj = effect_to_json(e)
        kind = obj.pop("type")
        fields = " ".join(f"{k}={json.dumps(v)}" for k, v in sorted(obj.items()))
        print(f"    -> {kind} {fields}")
    if not effects:
        print("    -> (nothing to do)")


# --------------------------------------------------------------------------- parser

class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on usage errors already; keep its message, just to stderr."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``agentrm`` argument parser."""
    p = _Parser(prog="agentrm", description="A resource manager for LLM agent systems: "
                "simulate workloads, replay and check event logs.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    wl = sub.add_parser("workload", help="workload files")
    wsub = wl.add_subparsers(dest="workload_command", required=True, parser_class=_Parser)
    gen = wsub.add_parser("generate", help="write a built-in scenario as a workload (JSON Lines)")
    gen.add_argument("--scenario", required=True, choices=list(SCENARIOS))
    gen.add_argument("--seed", type=int, required=True)
    gen.add_argument("-o", "--output", help="output file (default: stdout)")
    gen.add_argument("--load", type=float, default=1.0, help="arrival-rate multiplier (default 1.0)")
    gen.add_argument("--fault-rate", type=float, default=None, help="share of faulty sub-agents (0..1)")
    gen.add_argument("--tightness", type=float, default=1.0, help="provider-limit divisor (default 1.0)")
    gen.add_argument("--horizon-s", type=int, default=600, help="run length in virtual seconds (default 600)")
    gen.add_argument("--burst-s", type=int, default=60,
                     help="seconds of its rate the provider lets through at once (default 60: per-minute)")
    gen.set_defaults(func=cmd_generate)

    sim = sub.add_parser("simulate", help="run a workload under a policy and print metrics")
    sim.add_argument("workload")
    sim.add_argument("--policy", action="append",
                     help=f"{'|'.join(POLICIES + CONTEXT_POLICIES[1:])}|all; repeat or comma-separate "
                     "for several (default mlfq)")
    sim.add_argument("--log", help="write the kernel's event log here (mlfq only)")
    sim.add_argument("--json", action="store_true", help="metrics as JSON with stable keys")
    sim.add_argument("--check", action="store_true",
                     help="check every scheduler invariant at every mlfq step; exit 1 at the first violation")
    sim.set_defaults(func=cmd_simulate)

    rep = sub.add_parser("replay", help="re-fold a log's events through the kernel; exit 1 on divergence")
    rep.add_argument("log")
    rep.set_defaults(func=cmd_replay)

    chk = sub.add_parser("check", help="check every invariant at every step of a log; exit 1 on violation")
    chk.add_argument("log")
    chk.set_defaults(func=cmd_check)

    bench = sub.add_parser("bench", help="every built-in scenario under every policy, beside the paper's numbers")
    bench.add_argument("--json", action="store_true", help="results as JSON with stable, sorted keys")
    bench.add_argument("--plot", metavar="DIR", help="write PNG figures into DIR (needs matplotlib)")
    bench.add_argument("--quick", action="store_true", help="one seed, two-minute runs: seconds, for tests")
    bench.add_argument("--seeds", type=int, nargs="+", metavar="N", help="seeds to run (default 1 2 3)")
    bench.set_defaults(func=cmd_bench)

    demo = sub.add_parser("demo", help="a short scripted scenario showing the kernel's decisions")
    demo.set_defaults(func=cmd_demo)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``agentrm`` command; returns the exit code."""
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except FormatError as exc:
        print(f"agentrm: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except _UsageError as exc:
        print(f"agentrm: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except SimulationError as exc:
        print(f"agentrm: simulation error: {exc}", file=sys.stderr)
        return EXIT_DIVERGED
    except BrokenPipeError:  # pragma: no cover - e.g. `agentrm simulate ... | head`
        return 0
    except OSError as exc:
        name = exc.filename if exc.filename is not None else "?"
        print(f"agentrm: {name}: {exc.strerror}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
