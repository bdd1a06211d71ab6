"""Figures as inline SVG strings (no I/O). Deterministic: the same data gives the same bytes.

One series per server with the same colour in every figure; invalid steps are drawn with an
'x' so a reader sees which points are not trustworthy.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure as MplFigure
from matplotlib.lines import Line2D

from gatewaybench.analysis.capacity import LEVELS
from gatewaybench.analysis.crossover import Crossover, Point
from gatewaybench.analysis.summary import of_model, pivot
from gatewaybench.servers import REGISTRY

matplotlib.rcParams.update(
    {
        "svg.hashsalt": "gatewaybench",  # stable element ids
        "svg.fonttype": "none",  # text stays text: smaller, selectable
        "font.size": 9,
        "axes.grid": True,
        "grid.alpha": 0.3,
    }
)
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
COMPONENTS = ("app", "postgres", "nginx", "locust")
LINESTYLES = ("-", "--", ":", "-.")


@dataclass(frozen=True)
class Figure:
    key: str
    title: str
    alt: str
    svg: str
    wide: bool = False  # several panels: give it the page's full width


def color_of(server: str) -> str:
    """Registry order first, so a server keeps its colour across runs and reports."""
    names = list(REGISTRY)
    # unknown names get a colour from their characters: stable across processes, unlike hash()
    index = names.index(server) if server in names else len(names) + sum(map(ord, server))
    return PALETTE[index % len(PALETTE)]


def to_svg(fig: MplFigure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None}, bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg") :]  # drop the XML prolog: it is inlined in HTML


def _mean_by_level(df: pd.DataFrame, column: str, model: str = "closed") -> pd.DataFrame:
    """One point per step level (users, or arrivals/s): the seed table's cell (mean of the
    finished repeats), flagged invalid by the seed tables' one rule (any invalid or failed
    repeat)."""
    p = pivot(df, column, model)
    points = [
        (level, cell.value.mean, not cell.invalid)
        for (_, level), cell in sorted(p.cells.items(), key=lambda item: item[0][1])
        if cell.value.n > 0
    ]
    return pd.DataFrame(points, columns=["level", "value", "valid"])


def _plot_servers(
    ax: Axes,
    steps: pd.DataFrame,
    column: str,
    linestyle: str = "-",
    label_suffix: str = "",
    *,
    model: str = "closed",
) -> None:
    for server in dict.fromkeys(steps["server"]):
        data = _mean_by_level(steps[steps["server"] == server], column, model)
        if data.empty:
            continue
        color = color_of(str(server))
        ax.plot(
            data["level"],
            data["value"],
            linestyle=linestyle,
            marker="o",
            markersize=3,
            color=color,
            label=f"{server}{label_suffix}",
        )
        bad = data[~data["valid"]]
        ax.plot(bad["level"], bad["value"], linestyle="none", marker="x", markersize=8, color=color)


def metric_figure(
    steps: pd.DataFrame,
    column: str,
    title: str,
    ylabel: str,
    log: bool = False,
    *,
    model: str = "closed",
) -> Figure:
    """One metric against the model's level (users, or arrivals/s), one line per server."""
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    _plot_servers(ax, steps, column, model=model)
    ax.set(title=title, xlabel=LEVELS[model][1], ylabel=ylabel)
    if log:
        ax.set_yscale("log")
    else:
        ax.set_ylim(bottom=0)  # counts and percentages: a zero baseline, never below
    ax.legend(fontsize=8)
    alt = f"{title} ({ylabel}), one line per server; an x marks an invalid step"
    key = column if model == "closed" else f"open_{column}"
    return Figure(key, title, alt, to_svg(fig))


def latency_figure(steps: pd.DataFrame) -> Figure:
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for style, column in zip(LINESTYLES, ("p50_ms", "p95_ms", "p99_ms"), strict=False):
        _plot_servers(ax, steps, column, style, f" {column.split('_')[0]}")
    ax.set(title="Latency percentiles vs users", xlabel="users", ylabel="ms (log scale)")
    ax.set_yscale("log")
    ax.legend(fontsize=7, ncol=2)
    alt = "p50 (solid), p95 (dashed) and p99 (dotted) latency in ms per server, log scale"
    return Figure("latency", "Latency percentiles vs users", alt, to_svg(fig))


def open_latency_figure(steps: pd.DataFrame) -> Figure:
    """The open model's p95: from each request's intended start (what a visitor waits,
    solid) and from the actual send (the service latency, dashed), against arrivals/s."""
    title = "p95 latency vs arrivals/s"
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    _plot_servers(ax, steps, "intended_p95_ms", "-", " p95 intended", model="open")
    _plot_servers(ax, steps, "p95_ms", "--", " p95 service", model="open")
    ax.set(title=title, xlabel="arrivals/s", ylabel="ms (log scale)")
    ax.set_yscale("log")
    ax.legend(fontsize=7, ncol=2, handlelength=3)  # long enough to show dashes
    alt = (
        "p95 latency in ms per server against the arrival rate, log scale: from each request's "
        "intended start (solid: what a visitor waits) and from the actual send (dashed: the "
        "service latency); an x marks an invalid step"
    )
    return Figure("open_latency", title, alt, to_svg(fig))


def open_figures(steps: pd.DataFrame) -> Sequence[Figure]:
    """The open-model steps' figures, against the arrival rate offered."""
    if steps.empty:
        return []
    return [
        metric_figure(steps, "fail_pct", "Failure % vs arrivals/s", "failed requests (%)",
                      model="open"),
        metric_figure(steps, "drop_pct", "Dropped arrivals % vs arrivals/s",
                      "arrivals dropped at --max-inflight (%)", model="open"),
        metric_figure(steps, "rps", "Requests/sec vs arrivals/s", "requests per second",
                      model="open"),
        open_latency_figure(steps),
    ]  # fmt: skip


def _throughput_points(steps: pd.DataFrame, column: str, model: str) -> pd.DataFrame:
    """Per step level: mean achieved req/s (x) and mean `column` (y), in level order."""
    rps = _mean_by_level(steps, "rps", model)
    value = _mean_by_level(steps, column, model)
    return rps.merge(value, on="level", suffixes=("_rps", "")).drop(columns="valid_rps")


def both_models_servers(steps: pd.DataFrame) -> list[str]:
    """Servers (cells) with closed and open steps both, in run order."""
    closed = set(of_model(steps, "closed")["server"])
    opened = set(of_model(steps, "open")["server"])
    return [str(s) for s in dict.fromkeys(steps["server"]) if s in closed and s in opened]


def _plot_throughput(ax: Axes, data: pd.DataFrame, color: str, style: str, *, marker: str,
                     label: str) -> None:  # fmt: skip
    ax.plot(data["value_rps"], data["value"], linestyle=style, marker=marker, markersize=4,
            color=color, label=label)  # fmt: skip
    bad = data[~data["valid"]]
    ax.plot(bad["value_rps"], bad["value"], linestyle="none", marker="x", markersize=8,
            color=color)  # fmt: skip


def closed_vs_open_figure(steps: pd.DataFrame) -> Figure | None:
    """p95 against achieved req/s for each server that ran both models: what the closed
    model reports (its p95) beside what arriving visitors wait (the open model's p95 from
    the intended start). None when no server ran both."""
    servers = both_models_servers(steps)
    if not servers:
        return None
    title = "Closed vs open at equal throughput"
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for server in servers:
        mine = steps[steps["server"] == server]
        color = color_of(server)
        closed = _throughput_points(of_model(mine, "closed"), "p95_ms", "closed")
        opened = _throughput_points(of_model(mine, "open"), "intended_p95_ms", "open")
        _plot_throughput(ax, closed, color, "-", marker="o", label=f"{server} closed: p95")
        _plot_throughput(
            ax, opened, color, "--", marker="s", label=f"{server} open: p95 from intended start"
        )
    ax.set(title=title, xlabel="achieved requests per second", ylabel="p95 ms (log scale)")
    ax.set_yscale("log")
    ax.legend(fontsize=7, handlelength=3)
    alt = (
        "p95 latency in ms (log scale) against the requests/sec achieved, per server that ran "
        "both load models: the closed model's p95 (solid, circles) and the open model's p95 "
        "from each request's intended start (dashed, squares); an x marks an invalid step"
    )
    return Figure("closed_vs_open", title, alt, to_svg(fig))


def component_figure(resources: pd.DataFrame, column: str, title: str, ylabel: str) -> Figure:
    components = [c for c in COMPONENTS if c in set(resources["component"])]
    fig, axes = plt.subplots(
        1, len(components), figsize=(3.0 * len(components), 3.0), squeeze=False, sharey=False
    )
    for ax, component in zip(axes[0], components, strict=True):
        part = resources[resources["component"] == component]
        for server in dict.fromkeys(part["server"]):
            data = part[part["server"] == server].groupby("users")[column].mean()
            ax.plot(
                data.index,
                data.values,
                marker="o",
                markersize=3,
                color=color_of(str(server)),
                label=str(server),
            )
        ax.set(title=component, xlabel="users", ylabel=ylabel)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(title)
    alt = f"{title}, one panel per component ({', '.join(components)}), one line per server"
    return Figure(column, title, alt, to_svg(fig), wide=True)


def _server_of(variant: str) -> str:
    # a variant label is the registry name, then "+"-joined options (matrix.Cell.label)
    return variant.split("+", 1)[0]


def _variant_styles(variants: Sequence[str]) -> dict[str, tuple[str, str]]:
    """(colour, linestyle) per variant: the server's colour, and a new linestyle for each
    further variant sharing that colour, so no two lines look alike."""
    styles: dict[str, tuple[str, str]] = {}
    for variant in variants:
        color = color_of(_server_of(variant))
        same = sum(1 for c, _ in styles.values() if c == color)
        styles[variant] = (color, LINESTYLES[same % len(LINESTYLES)])
    return styles


def _plot_variant(
    ax: Axes, pts: list[tuple[float, Point]], color: str, style: str, label: str
) -> None:
    xs = [x for x, _ in pts]
    ys = [p.capacity.mean for _, p in pts]
    errs = [0.0 if p.capacity.n < 2 else p.capacity.half_width for _, p in pts]
    ax.errorbar(xs, ys, yerr=errs if any(errs) else None, color=color, linestyle=style,
                marker="o", markersize=4, capsize=3, label=label)  # fmt: skip
    bound = [(x, p.capacity.mean) for x, p in pts if p.lower_bound]
    if bound:  # hollow up-triangles: "at least this many"
        ax.plot(*zip(*bound, strict=True), linestyle="none", marker="^", markersize=10,
                markerfacecolor="none", markeredgecolor=color)  # fmt: skip
    bad = [(x, p.capacity.mean) for x, p in pts if p.invalid]
    if bad:
        ax.plot(*zip(*bad, strict=True), linestyle="none", marker="x", markersize=8, color=color)


def _marker_legend(ax: Axes, cx: Crossover) -> None:
    """Variants, then what the special markers mean (only those the figure uses)."""
    handles, labels = ax.get_legend_handles_labels()
    if any(p.lower_bound for p in cx.points.values()):
        handles.append(Line2D([], [], linestyle="none", marker="^", markersize=8,
                              markerfacecolor="none", markeredgecolor="#555"))  # fmt: skip
        labels.append("at least: largest step held")
    if any(p.invalid for p in cx.points.values()):
        handles.append(Line2D([], [], linestyle="none", marker="x", markersize=7, color="#555"))
        labels.append("cell with an invalid step")
    ax.legend(handles, labels, fontsize=7, handlelength=3)  # long enough to show dashes


def crossover_figure(cx: Crossover) -> Figure:
    """Users held against upstream wait, one line per variant; the waits tested are categories
    (0 ms has no place on a log axis, and 0/20/100/300 crowd a linear one)."""
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    styles = _variant_styles(cx.variants)
    for i, (variant, (color, style)) in enumerate(styles.items()):
        dodge = (i - (len(styles) - 1) / 2) * 0.04  # equal values stay visible side by side
        pts = [
            (x + dodge, p)
            for x, w in enumerate(cx.waits)
            if (p := cx.point(variant, w)) is not None
        ]
        _plot_variant(ax, pts, color, style, variant)
    ax.set_xticks(range(len(cx.waits)), [f"{w}" for w in cx.waits])
    ax.set(title="Users held vs upstream wait", xlabel="upstream wait per request (ms)",
           ylabel="users held within the SLO")  # fmt: skip
    top = max(p.largest_step for p in cx.points.values())
    ax.set_ylim(bottom=0, top=top * 1.12)  # room for the lower-bound markers at the top step
    _marker_legend(ax, cx)
    alt = (
        "Users held within the SLO (the largest step held) against the upstream wait per "
        "request, one line per variant; the waits tested are evenly spaced on the x axis, not "
        "to scale, and lines are nudged sideways so equal values stay visible; error bars: 95 % "
        "CI over repeats; a hollow triangle marks a lower bound (the largest step tested was "
        "held); an x marks a cell with an invalid step"
    )
    return Figure("crossover", "Users held vs upstream wait", alt, to_svg(fig))


def run_figures(steps: pd.DataFrame, resources: pd.DataFrame) -> Sequence[Figure]:
    if steps.empty:
        return []
    figures = [
        metric_figure(steps, "fail_pct", "Failure % vs users", "failed requests (%)"),
        metric_figure(steps, "rps", "Requests/sec vs users", "requests per second"),
        latency_figure(steps),
    ]
    if steps["slow_pct"].notna().any():  # absent from runs made before it was measured
        figures.append(
            metric_figure(steps, "slow_pct", "Slow responses vs users", "slower than SLO (%)")
        )
    if not resources.empty:
        figures += [
            component_figure(resources, "cpu_pct", "CPU per component vs users", "% of one core"),
            component_figure(
                resources, "peak_rss_mb", "Memory per component vs users", "peak RSS (MiB)"
            ),
            metric_figure(
                steps, "pg_clients_peak", "PostgreSQL connections vs users", "peak app connections"
            ),
        ]
    return figures
