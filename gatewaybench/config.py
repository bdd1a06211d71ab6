"""Presets and TOML config files: where a matrix comes from before flags override it.

Precedence, lowest first: built-in defaults < preset < config file < GATEWAYBENCH_* environment
< command-line flags. A config file's keys are the `run` flags' names (dashes or underscores),
plus `cells` as an array of tables; values are checked against the flag's type.
"""

from __future__ import annotations

import argparse
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gatewaybench.errors import UsageError
from gatewaybench.matrix import Cell, check_cell
from gatewaybench.servers import REGISTRY
from gatewaybench.spec import (
    SEED_CELLS,
    AppSource,
    DjangoSettings,
    LoadSettings,
    NginxSettings,
    PostgresSettings,
    RunSpec,
    Thresholds,
    validate,
)

TUNED_THREADS = 4


def _tuned() -> tuple[Cell, ...]:
    """Each server with what suits it: WSGI keeps connections per thread; ASGI uses async
    views over a bounded psycopg 3 pool (persistent connections leak under asgiref)."""
    return tuple(
        Cell(name, "sync", "persistent") if s.interface == "wsgi" else Cell(name, "async", "pool")
        for name, s in REGISTRY.items()
    )


def _all() -> tuple[Cell, ...]:
    """Every server x every relevant variant: WSGI x {close, persistent, pool}; ASGI x
    {sync, async} x {close, pool} (persistent under ASGI only by asking for it)."""
    cells: list[Cell] = []
    for name, s in REGISTRY.items():
        if s.interface == "wsgi":
            cells += [Cell(name, "sync", db) for db in ("close", "persistent", "pool")]
        else:
            cells += [Cell(name, v, db) for v in ("sync", "async") for db in ("close", "pool")]
    return tuple(cells)


@dataclass(frozen=True)
class Preset:
    cells: tuple[Cell, ...]
    threads: int
    description: str


PRESETS: dict[str, Preset] = {
    "seed": Preset(
        SEED_CELLS, 1, "the article: gunicorn, uvicorn, daphne, hypercorn; sync views, defaults"
    ),
    "tuned": Preset(_tuned(), TUNED_THREADS, "each server with the views and pool that suit it"),
    "all": Preset(_all(), TUNED_THREADS, "every server x every relevant variant"),
}


def preset(name: str) -> Preset:
    if name not in PRESETS:
        raise UsageError(f"unknown preset {name!r}", f"choose from: {', '.join(PRESETS)}")
    return PRESETS[name]


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
        "int_or_auto": 'a whole number or "auto"',
    }[kind]


def build_spec(given: dict[str, Any]) -> RunSpec:
    """The RunSpec from flag values (already converted), a config file and a preset."""
    from gatewaybench.flags import FLAGS_BY_DEST  # flags.py converts; it does not import us

    file_values: dict[str, Any] = {}
    if "config" in given:
        path = given["config"]
        for key, value in load_config(path).items():
            if key == "cells":
                file_values["cells"] = value
            elif key in FLAGS_BY_DEST and key != "config":
                flag = FLAGS_BY_DEST[key]
                if flag.convert is None:
                    file_values[key] = to_flag_text(path, key, value, "bool") == "True"
                else:
                    file_values[key] = _convert(
                        path, key, flag.convert, to_flag_text(path, key, value, flag.kind)
                    )
            else:
                raise UsageError(
                    f"config file {path}: unknown key {key!r}",
                    "keys are `gatewaybench run` flag names, e.g. users, workers, servers, cells",
                )
    values = {**file_values, **given}
    chosen = preset(values.get("preset", "seed"))
    values["cells"] = _choose_cells(given, file_values, chosen)
    values.setdefault("threads", chosen.threads)
    return validate(_spec(values))


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


def cross_cells(
    servers: tuple[str, ...], views: tuple[str, ...], dbs: tuple[str, ...]
) -> tuple[Cell, ...]:
    """Every relevant combination: async views only on ASGI, persistent connections only on
    WSGI (under ASGI they leak; ask for that cell explicitly with --cells)."""
    cells = []
    for name in servers:
        wsgi = REGISTRY[name].interface == "wsgi"
        for v in views:
            for db in dbs:
                if (v == "async" and wsgi) or (db == "persistent" and not wsgi):
                    continue
                cells.append(Cell(name, v, db))
    if not cells:
        raise UsageError(
            "no relevant cell in servers x views x db (async views need ASGI servers, "
            "persistent connections WSGI ones)",
            "widen the lists, or name cells with --cells",
        )
    return tuple(cells)


def _spec(v: dict[str, Any]) -> RunSpec:
    d, ld, nd = RunSpec(), LoadSettings(), NginxSettings()
    pd, dd, td = PostgresSettings(), DjangoSettings(), Thresholds()
    return RunSpec(
        cells=v["cells"],
        workers=v.get("workers", d.workers),
        threads=v["threads"],
        preset=v.get("preset", d.preset),
        label=v.get("label", d.label),
        reports_dir=v.get("reports_dir", d.reports_dir),
        load=LoadSettings(
            users=v.get("users", ld.users),
            ramp_s=v.get("ramp", ld.ramp_s),
            warmup_s=v.get("warmup", ld.warmup_s),
            window_s=v.get("window", ld.window_s),
            client_timeout_s=v.get("client_timeout", ld.client_timeout_s),
            stop_timeout_s=v.get("stop_timeout", ld.stop_timeout_s),
            processes=v.get("processes", ld.processes),
        ),
        nginx=NginxSettings(
            worker_processes=v.get("nginx_worker_processes", nd.worker_processes),
            worker_connections=v.get("nginx_worker_connections", nd.worker_connections),
            listen_backlog=v.get("nginx_backlog", nd.listen_backlog),
            port=v.get("nginx_port", nd.port),
            access_log=not v.get("no_access_log", False),
        ),
        postgres=PostgresSettings(
            max_connections=v.get("pg_max_connections", pd.max_connections),
            port=v.get("pg_port", pd.port),
        ),
        django=DjangoSettings(
            conn_max_age=v.get("conn_max_age", dd.conn_max_age),
            cpu_work_ms=v.get("cpu_work_ms", dd.cpu_work_ms),
            questions=v.get("questions", dd.questions),
            choices=v.get("choices", dd.choices),
        ),
        app_port=v.get("app_port", d.app_port),
        thresholds=Thresholds(
            slo_ms=v.get("slo_ms", td.slo_ms), fail_pct=v.get("capacity_fail_pct", td.fail_pct)
        ),
        repeat=v.get("repeat", d.repeat),
        app=_app_source(v),
    )


def _app_source(v: dict[str, Any]) -> AppSource:
    byo = ("app_dir", "wsgi", "asgi", "locustfile", "setup")
    if "app_dir" not in v:
        stray = [k for k in byo if k in v]
        if stray:
            flags = ", ".join("--" + k.replace("_", "-") for k in stray)
            raise UsageError(f"{flags} only apply with --app-dir", "add --app-dir PATH")
        return AppSource(health_path=v.get("health_path", "/healthz"))
    setup = v.get("setup", "")
    return AppSource(
        app_dir=Path(v["app_dir"]).absolute(),
        wsgi=v.get("wsgi", ""),
        asgi=v.get("asgi", ""),
        locustfile=Path(v["locustfile"]).absolute() if "locustfile" in v else None,
        # ';' separates commands: `--setup "manage.py migrate; manage.py loaddata x"`.
        setup=tuple(c.strip() for c in setup.replace("\n", ";").split(";") if c.strip()),
        health_path=v.get("health_path", "/healthz"),
    )
