from __future__ import annotations

import dataclasses
import json

import pytest

from gatewaybench.errors import UsageError
from gatewaybench.spec import (
    DjangoSettings,
    LoadSettings,
    NginxSettings,
    RunSpec,
    parse_servers,
    parse_steps,
    validate,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("100,200,300", (100, 200, 300)),
        ("100:700:100", (100, 200, 300, 400, 500, 600, 700)),
        (" 5 ", (5,)),
        ("10:25:10", (10, 20)),
    ],
)
def test_parse_steps_accepts_lists_and_ranges(text: str, expected: tuple[int, ...]) -> None:
    assert parse_steps(text) == expected


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("100,abc", "malformed"),
        ("200,100", "strictly increasing"),
        ("100,100", "strictly increasing"),
        ("0,10", "positive"),
        ("-5", "positive"),
        ("100:50:10", "empty"),
        ("1:10:0", "range step must be positive"),
        ("1:10", "malformed"),
        ("", "malformed"),
    ],
)
def test_parse_steps_rejects_bad_lists(text: str, needle: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_steps(text)
    assert needle in info.value.problem
    assert "100,200,300" in info.value.fix


def test_parse_servers_names_the_known_ones() -> None:
    assert parse_servers("gunicorn,daphne") == ("gunicorn", "daphne")
    with pytest.raises(UsageError) as info:
        parse_servers("gunicorn,waitress")
    assert "'waitress'" in info.value.problem
    assert "uvicorn" in info.value.fix
    with pytest.raises(UsageError, match="repeats"):
        parse_servers("uvicorn,uvicorn")


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"load": LoadSettings(window_s=0)}, "--window must be positive"),
        ({"load": LoadSettings(warmup_s=-1)}, "--warmup must not be negative"),
        ({"load": LoadSettings(client_timeout_s=0)}, "--client-timeout"),
        ({"load": LoadSettings(processes=-1)}, "--processes"),
        ({"workers": 0}, "--workers"),
        ({"django": DjangoSettings(questions=0)}, "--questions"),
        ({"run_label": "../escape"}, "label"),
        ({"app_port": 70000}, "not a port"),
        ({"nginx": NginxSettings(worker_processes="many")}, "--nginx-worker-processes"),
    ],
)
def test_validate_names_the_setting(change: dict[str, object], needle: str) -> None:
    spec = dataclasses.replace(RunSpec(), **change)  # type: ignore[arg-type]
    with pytest.raises(UsageError) as info:
        validate(spec)
    assert needle in info.value.problem


def test_defaults_are_the_seed_experiment() -> None:
    spec = validate(RunSpec())
    assert spec.servers == ("gunicorn", "uvicorn", "daphne", "hypercorn")
    assert spec.load.users == (100, 200, 300, 400, 500, 600, 700)
    assert spec.load.window_s >= 30
    assert spec.load.warmup_s > 0
    assert json.loads(json.dumps(spec.to_json()))["load"]["users"][-1] == 700


def test_the_run_label_is_recorded_under_its_flag_name() -> None:
    """RunSpec.run_label (--label) is `label` in manifest.json's spec, where it always was."""
    keys = list(RunSpec(run_label="nightly").to_json())
    assert RunSpec(run_label="nightly").to_json()["label"] == "nightly" and "run_label" not in keys
    assert keys.index("label") == keys.index("preset") + 1  # the field's place, not the end


def test_spawn_rate_follows_ramp() -> None:
    load = LoadSettings(ramp_s=4)
    assert load.spawn_rate(400) == 100
    assert load.spawn_rate(2) == 1  # never below one user per second
