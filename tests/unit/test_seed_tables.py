"""The seed tables' one pivot (analysis.summary.pivot): the terminal table and the report's table
mark the same cells invalid, FAIL or not run."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import pytest

from gatewaybench.analysis.summary import pivot, pivot_text, seed_tables_text
from gatewaybench.report.tables import seed_table


def _step(server: str, users: int, repeat: int = 1, **kw: Any) -> dict[str, Any]:
    row = {"server": server, "users": users, "repeat": repeat, "status": "ok", "valid": True,
           "invalid_reason": math.nan, "fail_pct": 0.0, "rps": users / 2}  # fmt: skip
    return row | kw


FAILED = {"status": "failed", "valid": False, "invalid_reason": "no records", "rps": math.nan}
STEPS = pd.DataFrame(
    [
        _step("a", 10),  # valid
        _step("a", 20, valid=False, invalid_reason="generator saturated"),  # invalid
        _step("b", 10, **FAILED),  # failed
        # b at 20 users never ran
    ]
)


def _terminal_cells(text: str) -> dict[tuple[str, int], str]:
    _title, header, *rows = text.splitlines()
    users = [int(u) for u in header.split()[1:]]
    return {
        (server, u): cell for server, *cells in map(str.split, rows)
        for u, cell in zip(users, cells, strict=True)
    }  # fmt: skip


def _html_cells(steps: pd.DataFrame) -> dict[tuple[str, int], str]:
    table = seed_table(steps, "rps", "Requests/sec", ".1f", coloured=True)
    users = [int(u) for u in table.header[1:]]
    return {
        (row[0].text, u): cell.text for row in table.rows
        for u, cell in zip(users, row[1:], strict=True)
    }  # fmt: skip


def test_terminal_and_html_mark_the_same_cells() -> None:
    expected = {("a", 10): "5.0", ("a", 20): "10.0*", ("b", 10): "FAIL", ("b", 20): "-"}
    assert _terminal_cells(pivot_text(STEPS, "rps", "Requests/sec", ".1f")) == expected
    assert _html_cells(STEPS) == expected


def test_html_cells_carry_the_reasons_and_the_legend_names_only_the_marks_shown() -> None:
    table = seed_table(STEPS, "fail_pct", "Failure %", ".1f", coloured=True)
    (_, valid, invalid), (_, failed, not_run) = table.rows
    assert (valid.css, valid.title) == ("s0", "")
    assert (invalid.css, invalid.title) == ("s0 invalid", "generator saturated")
    assert (failed.css, failed.title) == ("failed", "no records")
    assert not_run.text == "-"
    assert table.note.startswith("* invalid step") and "FAIL: the step did not run" in table.note
    clean = seed_table(STEPS.iloc[:1], "rps", "Requests/sec", ".1f")
    assert clean.note == ""
    text = seed_tables_text(STEPS)
    assert text.endswith(table.note.replace(" FAIL:", "\nFAIL:"))


def test_repeats_are_averaged_and_a_failed_repeat_marks_the_cell() -> None:
    steps = pd.DataFrame(
        [
            _step("a", 10, 1, rps=4.0),
            _step("a", 10, 2, rps=6.0),
            _step("a", 20, 1, rps=9.0),
            _step("a", 20, 2, **FAILED),
        ]
    )
    p = pivot(steps, "rps")
    full, partial = p.cell("a", 10), p.cell("a", 20)
    assert full is not None and partial is not None
    assert (full.value.mean, full.value.n, full.invalid) == (5.0, 2, False)
    assert full.value.half_width == pytest.approx(12.706, rel=1e-4)  # sd/sqrt(n) = 1
    assert (partial.value.mean, partial.value.n, partial.invalid) == (9.0, 1, True)
    assert partial.reasons == "repeat 2: no records"
    terminal = pivot_text(steps, "rps", "Requests/sec", ".1f", with_ci=True)
    assert terminal.splitlines()[0] == "Requests/sec (mean of 2 repeats ± 95% CI)"
    assert _terminal_cells(terminal.replace(" ± ", "±")) == {
        ("a", 10): "5.0±12.7",
        ("a", 20): "9.0*",
    }
    assert (
        seed_table(steps, "rps", "Requests/sec", ".1f").caption
        == "Requests/sec (mean of 2 repeats)"
    )
    assert _html_cells(steps) == {("a", 10): "5.0", ("a", 20): "9.0*"}
