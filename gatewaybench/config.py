"""TOML config files and the layering that turns flags into a RunSpec.

Precedence, lowest first: built-in defaults < preset < config file < GATEWAYBENCH_* environment
< command-line flags. A config file's keys are the `run` flags' names (dashes or underscores),
plus `cells` as an array of tables; values are checked against the flag's type.
"""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path
from typing import Any

from gatewaybench.errors import UsageError
from gatewaybench.flags import FLAGS_BY_DEST, Flag
from gatewaybench.matrix import Cell, check_cell, with_buffering, with_waits
from gatewaybench.presets import Preset, cross_cells, preset
from gatewaybench.spec import (
    AppSource,
    DjangoSettings,
    LoadSettings,
    NginxSettings,
    PostgresSettings,
    RunSpec,
    Thresholds,
    validate,
)


def load_config(path: Path) -> dict[str, Any]:
    """The file's settings keyed by flag dest (e.g. `pg_max_connections`), cells parsed."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"config file {path} does not exist", "check the path") from None
    except (PermissionError, IsADirectoryError, UnicodeDecodeError) as exc:
        raise UsageError(f"config file {path} is unreadable ({exc})", "check the path") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"config file {path} is not valid TOML: {exc}", "fix the syntax") from None
    out = {key.replace("-", "_"): value for key, value in data.items()}
    if "cells" in out:
        out["cells"] = _cells(path, out["cells"])
    return out


def _cells(path: Path, raw: object) -> tuple[Cell, ...]:
    fix = 'write cells as [[cells]] tables: server = "uvicorn", views = "async", db = "pool"'
    if not isinstance(raw, list) or not raw:
        raise UsageError(f"config file {path}: cells must be a non-empty array of tables", fix)
    cells = []
    for entry in raw:
        if not isinstance(entry, dict) or not isinstance(entry.get("server"), str):
            raise UsageError(f"config file {path}: each cell needs a server name", fix)
        unknown = set(entry) - {"server", "views", "db", "driver"}
        if unknown:
            raise UsageError(f"config file {path}: unknown cell keys {sorted(unknown)}", fix)
        if not all(isinstance(v, str) for v in entry.values()):
            raise UsageError(f"config file {path}: cell values must be strings", fix)
        cell = Cell(**entry)
        try:
            check_cell(cell)
        except UsageError as exc:
            raise UsageError(f"config file {path}: {exc.problem}", exc.fix) from None
        cells.append(cell)
    return tuple(cells)


def to_flag_text(path: Path, key: str, value: object, kind: str) -> str:
    """A config value as the text its flag would take, after checking its TOML type."""
    flag = "--" + key.replace("_", "-")
    expected = {
        "int": (int,),
        "float": (int, float),
        "str": (str,),
        "bool": (bool,),
        "list": (list, str),
        "commands": (list, str),
        "int_or_auto": (int, str),
    }[kind]
    ok = isinstance(value, expected) and not (kind != "bool" and isinstance(value, bool))
    if not ok:
        raise UsageError(
            f"config file {path}: {key} must be {_kind_text(kind)}, got {value!r}",
            f"see `gatewaybench run --help` for {flag}",
        )
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def _kind_text(kind: str) -> str:
    return {
        "int": "a whole number",
        "float": "a number",
        "str": "a string",
        "bool": "true or false",
        "list": "a list (or a comma-separated string)",
        "commands": "a list of commands (or one string, commands separated by ';')",
        "int_or_auto": 'a whole number or "auto"',
    }[kind]


def build_spec(given: dict[str, Any]) -> RunSpec:
    """The RunSpec from flag values (already converted), a config file and a preset."""
    file_values: dict[str, Any] = {}
    if "config" in given:
        path = given["config"]
        for key, value in load_config(path).items():
            if key == "cells":
                file_values["cells"] = value
            elif key in FLAGS_BY_DEST and key != "config":
                file_values[key] = _file_value(path, key, value, FLAGS_BY_DEST[key])
            else:
                raise UsageError(
                    f"config file {path}: unknown key {key!r}",
                    "keys are `gatewaybench run` flag names, e.g. users, workers, servers, cells",
                )
    values = {**file_values, **given}
    _check_model_steps(values)  # what was given, before a preset's defaults join it
    chosen = preset(values.get("preset", "seed"))
    for key, value in chosen.defaults.items():  # the preset's settings, below file and flags
        values.setdefault(key, value)
    waits = values.get("upstream_ms", ())
    cells = with_buffering(
        _choose_cells(given, file_values, chosen), values.get("request_buffering")
    )
    values["cells"] = with_waits(cells, waits)
    values.setdefault("threads", chosen.threads)
    return validate(_spec(values))


def _check_model_steps(values: dict[str, Any]) -> None:
    """--users steps the closed model and --rate the open one: each needs its model."""
    models = values.get("model", ("closed",))
    if "rate" in values and "open" not in models:
        raise UsageError("--rate applies to the open model", "add --model open (or closed,open)")
    if "open" not in models:
        return
    if "users" in values and "closed" not in models:
        raise UsageError(
            "--users applies to the closed model",
            "give --rate for --model open, or leave --users out",
        )
    if "rate" not in values:
        raise UsageError(
            "--model open needs arrival rates", "give --rate, e.g. --rate 10,20,40, or --rate auto"
        )


def _file_value(path: Path, key: str, value: object, flag: Flag) -> Any:
    """A config value as the spec holds it, checked against its flag's type."""
    if flag.convert is None:
        return to_flag_text(path, key, value, "bool") == "True"
    if flag.kind == "commands" and isinstance(value, list):
        return _command_list(path, key, value)  # one command per item, never re-split
    return _convert(path, key, flag.convert, to_flag_text(path, key, value, flag.kind))


def _command_list(path: Path, key: str, value: list[object]) -> tuple[str, ...]:
    if not all(isinstance(c, str) for c in value):
        raise UsageError(
            f"config file {path}: {key} must be a list of strings (one command each), "
            f"got {value!r}",
            f'write e.g. {key} = ["manage.py migrate", "manage.py loaddata x"]',
        )
    return tuple(c.strip() for c in value if isinstance(c, str) and c.strip())


def _convert(path: Path, key: str, convert: Any, text: str) -> Any:
    try:
        return convert(text)
    except argparse.ArgumentTypeError as exc:
        raise UsageError(f"config file {path}: {key}: {exc}", "fix the value") from None


def _choose_cells(
    given: dict[str, Any], file_values: dict[str, Any], chosen: Preset
) -> tuple[Cell, ...]:
    """Explicit cells win; then servers x views x db; each from flags before the file."""
    for source in (given, file_values):
        if "cells" in source:
            return tuple(source["cells"])
        if any(k in source for k in ("servers", "views", "db")):
            merged = {**file_values, **given}
            return cross_cells(
                merged.get("servers", tuple(dict.fromkeys(c.server for c in chosen.cells))),
                merged.get("views", ("sync",)),
                merged.get("db", ("close",)),
            )
    return chosen.cells


# flag dest -> field, per section of the spec; a flag not given leaves the dataclass default.
LOAD_FIELDS = {"users": "users", "ramp": "ramp_s", "warmup": "warmup_s", "window": "window_s",
               "client_timeout": "client_timeout_s", "stop_timeout": "stop_timeout_s",
               "processes": "processes", "auto_steps": "auto_steps",
               "slow_upload_pct": "slow_upload_pct", "slow_upload_kb": "slow_upload_kb",
               "slow_upload_kbps": "slow_upload_kbps", "model": "models", "rate": "rates",
               "max_inflight": "max_inflight", "arrival": "arrival",
               "arrival_path": "arrival_path", "arrival_seed": "arrival_seed"}  # fmt: skip
NGINX_FIELDS = {"nginx_worker_processes": "worker_processes", "nginx_port": "port",
                "nginx_worker_connections": "worker_connections",
                "nginx_backlog": "listen_backlog"}  # fmt: skip
POSTGRES_FIELDS = {"pg_max_connections": "max_connections", "pg_port": "port"}
DJANGO_FIELDS = {"conn_max_age": "conn_max_age", "cpu_work_ms": "cpu_work_ms",
                 "questions": "questions", "choices": "choices",
                 "upstream_calls": "upstream_calls", "db_wait_ms": "db_wait_ms"}  # fmt: skip
THRESHOLD_FIELDS = {"slo_ms": "slo_ms", "capacity_fail_pct": "fail_pct"}
TOP_FIELDS = {"workers": "workers", "preset": "preset", "label": "run_label",
              "reports_dir": "reports_dir", "app_port": "app_port", "repeat": "repeat",
              "upstream_ms": "upstream_ms"}  # fmt: skip


def _pick(v: dict[str, Any], fields: dict[str, str]) -> dict[str, Any]:
    return {field: v[dest] for dest, field in fields.items() if dest in v}


def _spec(v: dict[str, Any]) -> RunSpec:
    nginx = _pick(v, NGINX_FIELDS)
    if v.get("no_access_log"):
        nginx["access_log"] = False
    return RunSpec(
        cells=v["cells"],
        threads=v["threads"],
        load=LoadSettings(**_pick(v, LOAD_FIELDS)),
        nginx=NginxSettings(**nginx),
        postgres=PostgresSettings(**_pick(v, POSTGRES_FIELDS)),
        django=DjangoSettings(**_pick(v, DJANGO_FIELDS)),
        thresholds=Thresholds(**_pick(v, THRESHOLD_FIELDS)),
        app=_app_source(v),
        **_pick(v, TOP_FIELDS),
    )


def _app_source(v: dict[str, Any]) -> AppSource:
    byo = ("app_dir", "wsgi", "asgi", "locustfile", "setup")
    if "app_dir" not in v:
        stray = [k for k in byo if k in v]
        if stray:
            flags = ", ".join("--" + k.replace("_", "-") for k in stray)
            raise UsageError(f"{flags} only apply with --app-dir", "add --app-dir PATH")
        return AppSource(health_path=v.get("health_path", "/healthz"))
    return AppSource(
        app_dir=Path(v["app_dir"]).absolute(),
        wsgi=v.get("wsgi", ""),
        asgi=v.get("asgi", ""),
        locustfile=Path(v["locustfile"]).absolute() if "locustfile" in v else None,
        setup=tuple(v.get("setup", ())),  # commands, already split (flags.py, _command_list)
        health_path=v.get("health_path", "/healthz"),
    )
