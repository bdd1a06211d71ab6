"""The crossover: capacity per (variant, upstream wait), the rules of its sentences, and the
report section it adds (only to runs with the wait dimension)."""

from __future__ import annotations

import json
import math
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from gatewaybench.analysis import crossover as cxm
from gatewaybench.analysis.summary import read_steps
from gatewaybench.report import figures
from gatewaybench.report.render import render_run

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
USERS = (10, 20, 40, 80)
FAIL_PCT, SLO_MS = 1.0, 1000.0


def cell_rows(
    variant: str,
    wait: int,
    held_upto: int,
    *,
    interface: str = "wsgi",
    repeat: int = 1,
    invalid_at: int | None = None,
) -> list[dict[str, Any]]:
    """Steps of one (variant, wait): held up to `held_upto` users, p95 over the SLO above."""
    rows = []
    for users in USERS:
        ok = users <= held_upto
        rows.append(
            {
                "server": f"{variant}@{wait}ms", "variant": variant, "upstream_ms": wait,
                "interface": interface, "repeat": repeat, "users": users, "status": "ok",
                "fail_pct": 0.0, "p95_ms": 100.0 if ok else 2500.0,
                "valid": users != invalid_at,
                "invalid_reason": "load generator saturated" if users == invalid_at else "",
            }
        )  # fmt: skip
    return rows


def frame(*cells: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame([row for cell in cells for row in cell])


def variant_rows(variant: str, caps: dict[int, int], **kw: Any) -> list[dict[str, Any]]:
    return [row for wait, cap in caps.items() for row in cell_rows(variant, wait, cap, **kw)]


def crossover_of(df: pd.DataFrame) -> cxm.Crossover:
    cx = cxm.crossover(df, FAIL_PCT, SLO_MS)
    assert cx is not None
    return cx


def test_absent_for_runs_without_the_wait_dimension() -> None:
    old = read_steps(FIXTURES / "run-small")  # before the dimension: no variant/upstream_ms
    assert cxm.crossover(old, FAIL_PCT, SLO_MS) is None
    empty = old.assign(variant=math.nan, upstream_ms=math.nan)  # the columns, left empty
    assert cxm.crossover(empty, FAIL_PCT, SLO_MS) is None
    one_wait = frame(variant_rows("gunicorn", {100: 40}), variant_rows("uvicorn", {100: 80}))
    assert cxm.crossover(one_wait, FAIL_PCT, SLO_MS) is None
    assert cxm.to_json(None) is None


def test_reference_is_the_first_wsgi_variant_else_the_first() -> None:
    asgi_first = frame(
        variant_rows("uvicorn", {0: 40, 20: 40}, interface="asgi"),
        variant_rows("gunicorn-gevent", {0: 40, 20: 40}),
        variant_rows("gunicorn", {0: 40, 20: 40}),
    )
    assert crossover_of(asgi_first).reference == "gunicorn-gevent"
    all_asgi = frame(
        variant_rows("hypercorn", {0: 40, 20: 40}, interface="asgi"),
        variant_rows("uvicorn", {0: 40, 20: 40}, interface="asgi"),
    )
    cx = crossover_of(all_asgi)
    assert cx.reference == "hypercorn" and [c.variant for c in cx.comparisons] == ["uvicorn"]
    assert "hypercorn, the first variant." in cxm.table(cx).note


def test_ahead_from_a_wait_on() -> None:
    cx = crossover_of(
        frame(
            variant_rows("gunicorn", {0: 40, 20: 20, 100: 10}),
            variant_rows("uvicorn+async+pool", {0: 20, 20: 40, 100: 40}, interface="asgi"),
        )
    )
    (c,) = cx.comparisons
    assert c.crossover_ms == 20
    assert c.status == {0: cxm.BEHIND, 20: cxm.AHEAD, 100: cxm.AHEAD}
    assert cxm.sentences(cx)[0] == (
        "uvicorn+async+pool held more users than gunicorn from 20 ms of upstream wait on "
        "(at 100 ms: 40 vs 10 users)."
    )


def test_ahead_at_every_wait() -> None:
    cx = crossover_of(
        frame(
            variant_rows("gunicorn", {0: 20, 20: 10, 100: 10}),
            variant_rows("uvicorn", {0: 40, 20: 40, 100: 40}, interface="asgi"),
        )
    )
    assert cx.comparisons[0].crossover_ms == 0
    assert cxm.sentences(cx)[0] == (
        "uvicorn held more users than gunicorn at every wait tested, from 0 ms "
        "(at 100 ms: 40 vs 10 users)."
    )


def test_never_ahead() -> None:
    cx = crossover_of(
        frame(
            variant_rows("gunicorn", {0: 40, 20: 40, 100: 20}),
            variant_rows("daphne", {0: 20, 20: 40, 100: 10}, interface="asgi"),
        )
    )
    assert cx.comparisons[0].crossover_ms is None
    assert cxm.sentences(cx)[0] == (
        "daphne held no more users than gunicorn at any wait tested (at 100 ms: 10 vs 20 users)."
    )


def test_ahead_only_at_some_waits_says_where() -> None:
    cx = crossover_of(
        frame(
            variant_rows("gunicorn", {0: 40, 20: 10, 100: 20, 300: 10}),
            variant_rows("uvicorn", {0: 20, 20: 40, 100: 40, 300: 10}, interface="asgi"),
        )
    )
    assert cx.comparisons[0].crossover_ms is None
    assert cxm.sentences(cx)[0] == (
        "uvicorn held more users than gunicorn only at 20 and 100 ms of upstream wait, not at "
        "the largest wait tested (at 100 ms: 40 vs 20 users; at 300 ms: 10 vs 10 users)."
    )


def test_earlier_isolated_lead_is_mentioned_after_the_crossover() -> None:
    cx = crossover_of(
        frame(
            variant_rows("gunicorn", {0: 10, 20: 40, 100: 10}),
            variant_rows("uvicorn", {0: 20, 20: 20, 100: 40}, interface="asgi"),
        )
    )
    assert cx.comparisons[0].crossover_ms == 100
    assert cxm.sentences(cx)[0] == (
        "uvicorn held more users than gunicorn from 100 ms of upstream wait on "
        "(at 100 ms: 40 vs 10 users); also at 0 ms."
    )


def test_a_lower_bound_is_said_and_never_out_claimed() -> None:
    # both hold the largest step at 0 ms: a tie of lower bounds, no lead either way
    cx = crossover_of(
        frame(
            variant_rows("gunicorn", {0: 80, 20: 80}),
            variant_rows("uvicorn", {0: 80, 20: 80}, interface="asgi"),
        )
    )
    (c,) = cx.comparisons
    assert c.status == {0: cxm.BOUND, 20: cxm.BOUND} and c.crossover_ms is None
    point = cx.point("uvicorn", 0)
    assert point is not None and point.lower_bound and point.largest_step == 80
    assert cxm.cell_text(point) == "≥ 80" and cxm.amount(point) == "at least 80"
    assert cxm.sentences(cx)[0] == (
        "uvicorn was not clearly ahead of gunicorn at any wait tested "
        "(at 20 ms: at least 80 vs at least 80 users); at 0 and 20 ms gunicorn held the largest "
        "step tested, a lower bound, so no lead is claimed there."
    )
    assert cxm.sentences(cx)[1] == (
        "The most users were held at 0 ms of upstream wait by gunicorn and uvicorn "
        "(at least 80 users each, the largest step tested), at 20 ms by gunicorn and uvicorn "
        "(at least 80 users each, the largest step tested)."
    )
    assert "≥ N: the largest step tested was held" in cxm.table(cx).note


def test_a_lower_bound_above_an_exact_capacity_is_a_lead() -> None:
    cx = crossover_of(
        frame(
            variant_rows("gunicorn", {0: 80, 20: 20}),
            variant_rows("uvicorn", {0: 40, 20: 80}, interface="asgi"),
        )
    )
    assert cx.comparisons[0].status == {0: cxm.BEHIND, 20: cxm.AHEAD}
    assert cxm.sentences(cx)[0] == (
        "uvicorn held more users than gunicorn from 20 ms of upstream wait on "
        "(at 20 ms: at least 80 vs 20 users)."
    )


def repeated(variant: str, wait: int, caps: list[int], interface: str) -> list[dict[str, Any]]:
    return [
        row
        for repeat, cap in enumerate(caps, start=1)
        for row in cell_rows(variant, wait, cap, interface=interface, repeat=repeat)
    ]


def test_repeats_claim_a_lead_only_beyond_the_confidence_intervals() -> None:
    cx = crossover_of(
        frame(
            repeated("gunicorn", 0, [20, 10, 20], "wsgi"),
            repeated("gunicorn", 100, [20, 10, 20], "wsgi"),
            repeated("uvicorn", 0, [40, 20, 40], "asgi"),  # mean 33, CI overlaps gunicorn's
            repeated("uvicorn", 100, [40, 40, 40], "asgi"),  # 40 ± 0 vs 17 ± 14
        )
    )
    (c,) = cx.comparisons
    assert c.status == {0: cxm.NOISE, 100: cxm.AHEAD} and c.crossover_ms == 100
    p = cx.point("gunicorn", 0)
    assert p is not None and p.capacity.n == 3 and p.capacity.half_width > 0
    assert cxm.sentences(cx)[0] == (
        "uvicorn held more users than gunicorn from 100 ms of upstream wait on "
        "(at 100 ms: 40 vs 17 ± 14 users); more at 0 ms but within noise "
        "(the 95 % CIs overlap)."
    )
    assert "within noise of gunicorn" in cxm.sentences(cx)[1]  # 0 ms: 33 ± 29 vs 17 ± 14
    table = cxm.table(cx)
    assert table.caption.endswith("mean of 3 repeats ± 95 % CI")
    assert table.rows[1] == ["uvicorn", "33 ± 29", "40"]


def test_an_invalid_step_is_not_held_and_is_marked() -> None:
    cx = crossover_of(
        frame(
            variant_rows("gunicorn", {0: 40, 20: 20}),
            # 20 ms: p95 would have held 80 users, but the 40-user step is invalid
            variant_rows("uvicorn", {0: 20}, interface="asgi"),
            cell_rows("uvicorn", 20, 80, interface="asgi", invalid_at=40),
        )
    )
    p = cx.point("uvicorn", 20)
    assert p is not None and p.capacity.mean == 20 and p.invalid and p.stopped_by_invalid
    assert not p.lower_bound  # the 80-user step held, but after an invalid one: not counted
    assert p.invalid_reasons == ("40 users: load generator saturated",)
    assert cxm.cell_text(p) == "20*"
    assert cxm.sentences(cx)[0] == (
        "uvicorn held no more users than gunicorn at any wait tested (at 20 ms: 20 vs 20 "
        "users); at 20 ms uvicorn's capacity stopped at an invalid step, so it may be higher."
    )
    assert "* the cell has an invalid or unfinished step" in cxm.table(cx).note


def test_an_invalid_step_above_a_failed_one_is_marked_but_did_not_decide() -> None:
    rows = cell_rows("uvicorn", 20, 20, interface="asgi", invalid_at=80)
    cx = crossover_of(frame(variant_rows("gunicorn", {0: 40, 20: 20}), cell_rows(
        "uvicorn", 0, 20, interface="asgi"), rows))  # fmt: skip
    p = cx.point("uvicorn", 20)
    assert p is not None and p.invalid and not p.stopped_by_invalid
    assert cxm.cell_text(p) == "20*"
    assert "invalid step, so it may" not in cxm.sentences(cx)[0]


def test_a_wait_a_variant_did_not_reach_is_not_measured() -> None:
    cx = crossover_of(
        frame(
            variant_rows("gunicorn", {0: 40, 20: 20, 100: 10}),
            variant_rows("uvicorn", {0: 20, 20: 40}, interface="asgi"),
        )
    )
    (c,) = cx.comparisons
    assert c.status[100] == cxm.MISSING and c.crossover_ms is None
    assert cxm.table(cx).rows[1] == ["uvicorn", "20", "40", "-"]
    assert cxm.sentences(cx)[0] == (
        "uvicorn held more users than gunicorn only at 20 ms of upstream wait, not at the "
        "largest wait tested (at 20 ms: 40 vs 20 users); not measured at 100 ms."
    )


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ({0: cxm.AHEAD, 20: cxm.AHEAD}, 0),
        ({0: cxm.BEHIND, 20: cxm.AHEAD, 100: cxm.AHEAD}, 20),
        ({0: cxm.AHEAD, 20: cxm.NOISE, 100: cxm.AHEAD}, 100),
        ({0: cxm.AHEAD, 20: cxm.AHEAD, 100: cxm.BOUND}, None),
        ({0: cxm.AHEAD, 20: cxm.MISSING}, None),
    ],
)
def test_crossover_wait(status: dict[int, str], expected: int | None) -> None:
    assert cxm.crossover_wait(status) == expected


def test_waits_text() -> None:
    assert cxm.waits_text([0]) == "0 ms"
    assert cxm.waits_text([0, 20]) == "0 and 20 ms"
    assert cxm.waits_text([0, 20, 300]) == "0, 20 and 300 ms"


RUN_IO_SENTENCES = [
    "gunicorn-gevent held more users than gunicorn from 20 ms of upstream wait on "
    "(at 100 ms: at least 80 vs 10 users).",
    "uvicorn+async+pool held more users than gunicorn from 100 ms of upstream wait on "
    "(at 100 ms: at least 80 vs 10 users); at 20 ms uvicorn+async+pool's capacity stopped at "
    "an invalid step, so it may be higher.",
    "The most users were held at 0 ms of upstream wait by gunicorn (at least 80 users, the "
    "largest step tested), at 20 ms by gunicorn-gevent (at least 80 users, the largest step "
    "tested), at 100 ms by gunicorn-gevent and uvicorn+async+pool (at least 80 users each, "
    "the largest step tested).",
]


def test_run_io_fixture() -> None:
    cx = crossover_of(read_steps(FIXTURES / "run-io"))
    assert cx.variants == ("gunicorn", "gunicorn-gevent", "uvicorn+async+pool")
    assert cx.waits == (0, 20, 100) and cx.reference == "gunicorn"
    assert cxm.sentences(cx) == RUN_IO_SENTENCES
    assert cxm.table(cx).rows == [
        ["gunicorn", "≥ 80", "40", "10"],
        ["gunicorn-gevent", "40", "≥ 80", "≥ 80"],
        ["uvicorn+async+pool", "40", "40*", "≥ 80"],
    ]


@dataclass(frozen=True)
class RenderedIo:
    run_dir: Path
    raw: dict[str, bytes]  # the run directory's files before the report was rendered
    files: dict[str, bytes]  # what the render wrote


@pytest.fixture(scope="module")
def rendered_io(tmp_path_factory: pytest.TempPathFactory) -> RenderedIo:
    """The run-io fixture rendered once, for the tests that only read its report."""
    run_dir = tmp_path_factory.mktemp("rendered-io") / "20261122T101500Z-io"
    shutil.copytree(FIXTURES / "run-io", run_dir)
    raw = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    files = {p.name: p.read_bytes() for p in render_run(run_dir)}
    return RenderedIo(run_dir, raw, files)


def test_report_of_a_run_with_waits_leads_with_the_crossover(rendered_io: RenderedIo) -> None:
    run_io = rendered_io.run_dir
    html = (run_io / "report.html").read_text()
    section = html.index('<section id="crossover">')
    assert html.index('<h2 id="findings">') < section < html.index('<h2 id="tables">')
    assert "Crossover: when does waiting change the answer?" in html
    assert html.index(RUN_IO_SENTENCES[0]) < html.index("gunicorn@0ms held 80 users")
    assert html.count(RUN_IO_SENTENCES[0]) == 1  # in the crossover block, not repeated below
    assert '<td class="invalid" title="80 users: load generator saturated' in html
    alts = re.findall(r'<img src="[^"]+" alt="([^"]+)"', html)
    assert alts[0].startswith("Users held within the SLO") and len(alts) == 5
    assert "<td>2 x 1 = 2</td>" in html and "<td>event loop</td>" in html  # in flight
    summary = (run_io / "summary.md").read_text()
    assert summary.index("## Crossover: when does waiting change the answer?") < summary.index(
        "## Each cell"
    )
    assert "| variant | 0 ms | 20 ms | 100 ms |" in summary
    assert "| uvicorn+async+pool | 40 | 40* | ≥ 80 |" in summary
    assert all(f"- {s}" in summary for s in RUN_IO_SENTENCES)
    results = json.loads((run_io / "results.json").read_text())
    cx = results["crossover"]
    assert cx["reference"] == "gunicorn" and cx["waits_ms"] == [0, 20, 100]
    assert [c["crossover_ms"] for c in cx["comparisons"]] == [20, 100]
    assert cx["sentences"] == RUN_IO_SENTENCES and len(cx["points"]) == 9


def test_report_of_a_run_with_waits_is_deterministic_and_leaves_raw_data(
    rendered_io: RenderedIo, tmp_path: Path
) -> None:
    raw = rendered_io.raw
    assert {name: (rendered_io.run_dir / name).read_bytes() for name in raw} == raw
    run_io = tmp_path / rendered_io.run_dir.name  # a copy, report included: rebuilt over it
    shutil.copytree(rendered_io.run_dir, run_io)
    second = {p.name: p.read_bytes() for p in render_run(run_io)}
    assert rendered_io.files == second
    assert {name: (run_io / name).read_bytes() for name in raw} == raw


def test_figure_with_repeats_is_deterministic() -> None:
    cx = crossover_of(
        frame(
            repeated("gunicorn", 0, [20, 10, 20], "wsgi"),
            repeated("gunicorn", 100, [20, 10, 20], "wsgi"),
            repeated("gunicorn+persistent", 0, [40, 40, 20], "wsgi"),
            repeated("gunicorn+persistent", 100, [20, 10, 10], "wsgi"),
            repeated("uvicorn", 0, [40, 20, 40], "asgi"),
            repeated("uvicorn", 100, [80, 80, 80], "asgi"),
        )
    )
    first, second = figures.crossover_figure(cx), figures.crossover_figure(cx)
    assert first.svg == second.svg and first.svg.startswith("<svg")
    assert "evenly spaced" in first.alt and "error bars" in first.alt
    # two variants of one server share its colour, so they differ in line style
    styles = figures._variant_styles(cx.variants)
    assert styles["gunicorn"][0] == styles["gunicorn+persistent"][0]
    assert styles["gunicorn"][1] != styles["gunicorn+persistent"][1]
