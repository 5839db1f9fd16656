"""PNG figures of a benchmark run (``agentrm bench --plot DIR``).

Four figures, each a deterministic function of the :class:`~.bench.BenchResult`
(Agg backend, fixed size and DPI, no timestamp or software version in the PNG
metadata, so the same run writes byte-identical files):

* ``latency_cdf.png`` -- latency CDF per policy, one panel per task class;
* ``lane_occupancy.png`` -- when each lane was held, one panel per policy (first
  seed of the paper scenario): blue while its task made progress, red while it was
  held without progress (hung, silently finished, sleeping in a 429 backoff);
* ``context_session.png`` -- visible context tokens and key-fact retention over one
  long session, per context policy;
* ``robustness.png`` -- P95 latency and throughput across the robustness sweep.

matplotlib is an optional dependency (the ``plot`` extra); importing this module does
not need it, calling :func:`write_plots` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from agentrm.kernel.context import ContextConfig, visible_context
from agentrm.kernel.scheduler.config import TaskClass

from .bench import POLICIES, BenchResult, ScenarioRun, SweepPoint
from .context_sim import AgentrmContext, ContextPolicy, RollingSummary, SlidingWindow
from .scenarios import ScenarioParams, generate
from .simulator import Outcome, SimResult
from .store import Store
from .summarize import ExtractiveSummarizer
from .workload import Message, Probe, Workload

FILES: Final = ("latency_cdf.png", "lane_occupancy.png", "context_session.png", "robustness.png")
"""The files :func:`write_plots` writes, in order."""

_COLORS: Final = {"mlfq": "#1b7837", "fifo": "#b2182b", "rr": "#2166ac", "priority": "#e08214",
                  "sliding-window": "#b2182b", "rolling-summary": "#2166ac"}
_DPI: Final = 100
_PROGRESS: Final = "#6baed6"
_WASTE: Final = "#d7301f"
"""Lane plot colours: the same for every policy, so only the red (waste) draws the eye."""


class PlotError(RuntimeError):
    """Plots cannot be written (matplotlib missing, or the directory is not writable)."""


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise PlotError("--plot needs matplotlib: pip install 'agentrm[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9, "axes.titlesize": 10, "figure.dpi": _DPI})
    return plt


def _save(fig: Any, path: Path) -> None:
    # No Software/date keys in the PNG: the bytes depend on the data alone.
    fig.savefig(path, dpi=_DPI, metadata={"Software": None})


# --------------------------------------------------------------------------- latency CDF

def _latencies(result: SimResult, cls: TaskClass) -> list[float]:
    return sorted(t.latency_ms / 1000 for t in result.tasks
                  if t.latency_ms is not None and t.spec.task_class is cls)


def plot_latency_cdf(plt: Any, run: ScenarioRun, path: Path) -> None:
    """Latency CDF per policy, one panel per class, log time axis."""
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8), sharey=True)
    for ax, cls in zip(axes, TaskClass):
        drawn = 0
        for name, result in zip(POLICIES, run.pooled_results):
            xs = _latencies(result, cls)
            if not xs:
                continue
            drawn += 1
            n = len(xs)
            ax.step(xs, [(i + 1) / n for i in range(n)], where="post", color=_COLORS[name],
                    label=f"{name} (n={n})")
        ax.axhline(0.95, color="grey", lw=0.6, ls=":")
        ax.set_xscale("log")
        ax.set_title(f"{cls.value} tasks")
        ax.set_xlabel("latency, arrival to finish (s, log)")
        ax.grid(True, which="both", lw=0.3, alpha=0.5)
        if drawn:
            ax.legend(loc="lower right", fontsize=7)
        else:
            ax.text(0.5, 0.5, "no task of this class finished", ha="center", transform=ax.transAxes)
    axes[0].set_ylabel("fraction of finished tasks")
    fig.suptitle(f"Latency CDF, scenario '{run.scenario}', seeds {', '.join(map(str, run.seeds))} pooled "
                 "(dotted line: P95)")
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


# --------------------------------------------------------------------------- lane occupancy

def plot_lane_occupancy(plt: Any, run: ScenarioRun, path: Path) -> None:
    """Lane occupancy over time per policy: progress in blue, held without progress in red."""
    fig, axes = plt.subplots(len(POLICIES), 1, figsize=(12, 2.1 * len(POLICIES)), sharex=True)
    for ax, name, result in zip(axes, POLICIES, run.results):
        lanes = result.lanes
        good: list[list[tuple[float, float]]] = [[] for _ in range(lanes)]
        bad: list[list[tuple[float, float]]] = [[] for _ in range(lanes)]
        for i in result.lane_intervals:
            (good if i.progress else bad)[i.lane].append((i.start_ms / 1000, (i.end_ms - i.start_ms) / 1000))
        for lane in range(lanes):
            ax.broken_barh(good[lane], (lane - 0.4, 0.8), facecolors=_PROGRESS, edgecolor="none")
            ax.broken_barh(bad[lane], (lane - 0.4, 0.8), facecolors=_WASTE, edgecolor="none")
        waste = sum(i.end_ms - i.start_ms for i in result.lane_intervals if not i.progress)
        zombies = sum(t.zombie for t in result.tasks)
        finished = sum(t.outcome is Outcome.FINISHED for t in result.tasks)
        ax.set_title(f"{name}: {finished} finished, {waste / 1000:.0f} lane-s without progress (red), "
                     f"{zombies} zombie(s) holding a lane at the end", loc="left")
        ax.set_yticks(range(lanes))
        ax.set_ylim(-0.6, lanes - 0.4)
        ax.set_ylabel("lane")
        ax.set_xlim(0, result.end_ms / 1000)
    axes[-1].set_xlabel("virtual time (s)")
    fig.suptitle(f"Lane occupancy, scenario '{run.scenario}', seed {run.seeds[0]}")
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


# --------------------------------------------------------------------------- context session

def _recoverable(policy: ContextPolicy, config: ContextConfig, probe: Probe) -> bool:
    """Whether the probe's answer is visible or found by its recall query -- without recalling.

    A real recall would load entries into the context and change the rest of the run;
    for agentrm this asks the archive the same query read-only instead.
    """
    if isinstance(policy, AgentrmContext):
        if any(probe.answer in item.text for item in visible_context(policy.state, probe.agent)):
            return True
        found = policy.store.search(probe.agent, probe.query, limit=config.recall_limit)
        return any(probe.answer in e.text for e in found)
    return policy.answerable(probe) is not None


def context_series(workload: Workload, agent: str, policy: ContextPolicy,
                   config: ContextConfig) -> tuple[list[int], list[int], list[float]]:
    """Per message of ``agent``: (message number, visible tokens, share of planted facts recoverable)."""
    probes = {r.fact: r for r in workload.context if isinstance(r, Probe) and r.agent == agent}
    planted: list[Probe] = []
    xs: list[int] = []
    tokens: list[int] = []
    kept: list[float] = []
    for r in workload.context:
        if not isinstance(r, Message) or r.agent != agent:
            continue
        policy.append(r)
        if r.fact is not None and r.fact in probes:
            planted.append(probes[r.fact])
        xs.append(len(xs) + 1)
        tokens.append(policy.visible_tokens(agent))
        ok = sum(_recoverable(policy, config, p) for p in planted)
        kept.append(100.0 * ok / len(planted) if planted else 100.0)
    return xs, tokens, kept


def plot_context_session(plt: Any, seed: int, path: Path, scratch: Path, params: ScenarioParams) -> None:
    """Visible tokens and retention over one session (``session-0``) for each context policy."""
    workload = generate("context", seed, params)
    config = workload.header.context or ContextConfig()
    agent = "session-0"
    summarizer = ExtractiveSummarizer()
    store = Store.create(scratch / "plot-archive.db")
    try:
        policies: list[ContextPolicy] = [AgentrmContext(config, store, summarizer), SlidingWindow(config),
                                         RollingSummary(config, summarizer)]
        series = [(p.name, *context_series(workload, agent, p, config)) for p in policies]
    finally:
        store.close()
    fig, (ax_t, ax_r) = plt.subplots(1, 2, figsize=(12, 3.8))
    for name, xs, tokens, kept in series:
        label = "agentrm tiers" if name == "mlfq" else name
        color = _COLORS.get(name, "#1b7837")
        ax_t.plot(xs, tokens, color=color, lw=1, label=label)
        ax_r.plot(xs, kept, color=color, lw=1.4, label=label)
    ax_t.axhline(config.window_tokens, color="grey", lw=0.6, ls=":")
    ax_t.set_title(f"visible context tokens (dotted: {config.window_tokens:,}-token window)")
    ax_t.set_xlabel(f"message of {agent}")
    ax_t.set_ylabel("tokens")
    ax_r.set_title("planted facts still recoverable (visible, or by a recall query)")
    ax_r.set_xlabel(f"message of {agent}")
    ax_r.set_ylabel("% of facts planted so far")
    ax_r.set_ylim(-5, 105)
    for ax in (ax_t, ax_r):
        ax.grid(True, lw=0.3, alpha=0.5)
        ax.legend(loc="lower left", fontsize=7)
    fig.suptitle(f"One long session, scenario 'context', seed {seed}")
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


# --------------------------------------------------------------------------- robustness

def plot_robustness(plt: Any, points: Sequence[SweepPoint], path: Path) -> None:
    """P95 latency (top) and throughput as a share of the capacity bound (bottom) per sweep axis."""
    axes_names = ("load", "fault_rate", "tightness")
    titles = {"load": "offered load (x capacity bound)", "fault_rate": "hung sub-agent rate",
              "tightness": "provider tightness (limit divisor)"}
    fig, axes = plt.subplots(2, 3, figsize=(12, 6.5))
    for col, axis in enumerate(axes_names):
        pts = [p for p in points if p.axis == axis]
        xs = [p.value for p in pts]
        for name in POLICIES:
            p95 = [(p.run.metrics(name).latency.p95_ms or 0) / 1000 for p in pts]
            share = [p.run.metrics(name).throughput_per_min * 100 / p.run.capacity.per_min
                     if p.run.capacity.per_min else 0.0 for p in pts]
            axes[0][col].plot(xs, p95, marker="o", color=_COLORS[name], label=name)
            axes[1][col].plot(xs, share, marker="o", color=_COLORS[name], label=name)
        axes[0][col].set_title(titles[axis])
        axes[0][col].set_yscale("log")
        axes[1][col].set_xlabel(titles[axis])
        axes[1][col].axhline(95, color="grey", lw=0.6, ls=":")
        for row in (0, 1):
            axes[row][col].grid(True, which="both", lw=0.3, alpha=0.5)
            axes[row][col].set_xticks(xs)
    axes[0][0].set_ylabel("P95 latency (s, log)")
    axes[1][0].set_ylabel("throughput, % of capacity bound")
    axes[0][0].legend(fontsize=7)
    fig.suptitle("Robustness sweep of scenario 'paper' (dotted: 95 % of the bound)")
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


# --------------------------------------------------------------------------- entry point

def prepare(directory: str | Path) -> Path:
    """Check that plots can be written: matplotlib importable, ``directory`` created and writable.

    Called before a long benchmark run, so a bad ``--plot`` fails at once, not after a minute.
    """
    _pyplot()
    out = Path(directory)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".agentrm-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise PlotError(f"--plot: {out}: cannot write plots there: {exc.strerror}") from None
    return out


def write_plots(result: BenchResult, directory: str | Path) -> tuple[Path, ...]:
    """Write every figure of ``result`` into ``directory`` (created if missing); return the paths."""
    out = prepare(directory)
    plt = _pyplot()
    paths = tuple(out / name for name in FILES)
    paper = result.scenario("paper")
    plot_latency_cdf(plt, paper, paths[0])
    plot_lane_occupancy(plt, paper, paths[1])
    import tempfile

    with tempfile.TemporaryDirectory(prefix="agentrm-plot-") as tmp:
        params = ScenarioParams(load=0.3) if result.settings.quick else ScenarioParams()
        plot_context_session(plt, result.settings.seeds[0], paths[2], Path(tmp), params)
    plot_robustness(plt, result.sweep, paths[3])
    return paths
