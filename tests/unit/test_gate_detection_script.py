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
