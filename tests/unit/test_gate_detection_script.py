"""scripts/gate_detection.py reads the gate's markdown table to record how large each change
was. It once read it with a fixed-column pattern, and a new column emptied every record without
an error; this test ties the script to the table the gate writes today."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from types import ModuleType

from gatewaybench.gate.outputs import markdown_summary
from gatewaybench.gate.verdict import MetricResult, Verdict

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gate_detection.py"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gate_detection", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _result(metric: str, verdict: Verdict, change: float, bound: float) -> MetricResult:
    return MetricResult("gunicorn", metric, verdict, change, change - 3, change + 4, 0.004, 8,
                        6.1, "", bound)  # fmt: skip


def test_the_script_reads_every_judged_metric_from_the_gates_table() -> None:
    nan = math.nan
    results = [
        _result("cpu_ms_per_req", Verdict.REGRESSION, 17.8, 20.9),
        _result("plateau_rps", Verdict.NO_CHANGE, -1.5, 4.2),
        MetricResult("gunicorn", "guard", Verdict.NO_CHANGE, nan, nan, nan, nan, 0, nan, ""),
    ]
    changes = _script().metric_changes(markdown_summary(results))
    assert changes == {
        "cpu_ms_per_req": {"change_pct": 17.8, "bound_pct": 20.9, "noise_pct": 6.1,
                           "verdict": "❌ regression"},
        "plateau_rps": {"change_pct": -1.5, "bound_pct": 4.2, "noise_pct": 6.1,
                        "verdict": "✅ no change"},
    }  # fmt: skip


def test_gates_are_counted_per_slowdown_and_older_records_were_10_percent() -> None:
    script = _script()
    records = [
        {"kind": "same", "exit": 0, "minutes": 7.0},
        {"kind": "same", "exit": 3, "minutes": 11.5},
        {"kind": "slower", "exit": 1, "minutes": 7.1},  # before slowdowns were recorded
        {"kind": "slower", "slowdown_pct": 10.0, "exit": 1, "minutes": 7.2},
        {"kind": "slower", "slowdown_pct": 5.0, "exit": 0, "minutes": 7.3},
    ]
    summary = script.summarise(records)
    assert set(summary) == {"same", "slower 10 %", "slower 5 %"}
    assert (summary["same"]["pass"], summary["same"]["inconclusive"]) == (1, 1)
    assert summary["slower 10 %"]["regression"] == 2 and summary["slower 10 %"]["gates"] == 2
    assert (summary["slower 5 %"]["regression"], summary["slower 5 %"]["pass"]) == (0, 1)
    assert summary["same"]["max_minutes"] == 11.5
