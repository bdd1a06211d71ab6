from __future__ import annotations

import dataclasses
import json
from pathlib import Path

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


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "open"], "--model open needs arrival rates"),
        (["--model", "open", "--rate", ""], "rate list '' is empty"),
        (["--model", "open", "--rate", "10,5"], "must be strictly increasing"),
        (["--model", "open", "--rate", "0,5"], "arrival rates must be positive"),
        (["--model", "open", "--rate=-5:10:5"], "arrival rates must be positive"),
        (["--model", "open", "--rate", "abc"], "is malformed"),
        (["--rate", "5"], "--rate applies to the open model"),
        (["--model", "closed", "--rate", "5"], "--rate applies to the open model"),
        (["--model", "open", "--rate", "5", "--users", "10"], "--users applies to the closed"),
        (["--model", "open", "--rate", "5", "--max-inflight", "0"], "--max-inflight must be at"),
        (["--model", "open", "--rate", "5", "--arrival", "visit"], "--arrival 'visit'"),
        (["--model", "open,sideways", "--rate", "5"], "--model 'open,sideways' is not valid"),
    ],
)
def test_open_model_bad_input_is_one_line_and_exit_2(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gatewaybench import cli

    code = cli.main(["run", "--reports-dir", str(tmp_path / "reports"), *args], environ={})
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "reports").exists()  # nothing started, nothing written


def test_both_models_take_their_own_steps() -> None:
    from gatewaybench.config import build_spec
    from gatewaybench.spec import parse_rates

    given = {"model": ("closed", "open"), "users": (10, 20), "rate": parse_rates("5:15:5")}
    spec = build_spec(given)
    assert spec.load.models == ("closed", "open")
    assert spec.load.users == (10, 20) and spec.load.rates == (5.0, 10.0, 15.0)
    assert spec.to_json()["load"]["max_inflight"] == 1000  # recorded in the manifest
