"""Presets, config files and flags: precedence, cells, and every bad value refused in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatewaybench import cli
from gatewaybench.errors import UsageError
from gatewaybench.matrix import Cell
from gatewaybench.presets import PRESETS, cross_cells
from gatewaybench.servers import REGISTRY
from gatewaybench.spec import SEED_CELLS, RunSpec, parse_cells, sized_max_connections


def spec_of(*argv: str, env: dict[str, str] | None = None) -> RunSpec:
    args = cli.build_parser(env or {}).parse_args(["run", *argv])
    return cli.spec_from_args(args)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "matrix.toml"
    path.write_text(text)
    return path


def test_the_default_is_the_seed_preset() -> None:
    spec = spec_of()
    assert spec.preset == "seed" and spec.cells == SEED_CELLS and spec.threads == 1
    assert spec.servers == ("gunicorn", "uvicorn", "daphne", "hypercorn")
    # ASGI with a connection per request is unbounded: PostgreSQL keeps its default 100.
    assert sized_max_connections(spec) == 100


def test_tuned_gives_each_server_what_suits_it() -> None:
    cells = PRESETS["tuned"].cells
    assert {c.server for c in cells} == set(REGISTRY)
    for cell in cells:
        if cell.server == "gunicorn-gevent":  # a connection per greenlet: persistent would leak
            assert (cell.views, cell.db) == ("sync", "close")
        elif cell.interface == "wsgi":
            assert (cell.views, cell.db) == ("sync", "persistent")
        else:
            assert (cell.views, cell.db, cell.resolved_driver) == ("async", "pool", "psycopg3")
    spec = spec_of("--preset", "tuned", "--workers", "2")
    assert spec.threads == 4
    # bounded everywhere but under gevent (a connection per request): PostgreSQL's default
    assert sized_max_connections(spec) == 100
    without_gevent = spec_of(
        "--preset",
        "tuned",
        "--workers",
        "2",
        "--cells",
        ",".join(c.label for c in cells if c.server != "gunicorn-gevent"),
    )
    assert sized_max_connections(without_gevent) == 2 * 4 + 10  # budget + reserve


def test_all_is_every_server_by_every_relevant_variant() -> None:
    cells = PRESETS["all"].cells
    wsgi = [s for s in REGISTRY.values() if s.interface == "wsgi"]
    asgi = [s for s in REGISTRY.values() if s.interface == "asgi"]
    assert len(cells) == 3 * (len(wsgi) - 1) + 1 + 4 * len(asgi)  # gevent: close only
    assert len({c.label for c in cells}) == len(cells)
    assert not any(c.views == "async" and c.interface == "wsgi" for c in cells)
    assert not any(c.db == "persistent" and c.interface == "asgi" for c in cells)


def test_servers_views_and_db_cross_into_relevant_cells() -> None:
    cells = cross_cells(("gunicorn", "uvicorn"), ("sync", "async"), ("close", "persistent"))
    assert [c.label for c in cells] == [
        "gunicorn",
        "gunicorn+persistent",
        "uvicorn",
        "uvicorn+async",
    ]
    spec = spec_of("--servers", "uvicorn", "--views", "async", "--db", "pool")
    assert spec.cells == (Cell("uvicorn", "async", "pool"),)


def test_cells_flag_names_exact_cells_even_leaky_ones() -> None:
    spec = spec_of("--cells", "uvicorn+persistent,gunicorn-gthread+pool")
    assert [c.label for c in spec.cells] == ["uvicorn+persistent", "gunicorn-gthread+pool"]


def test_precedence_preset_then_file_then_environment_then_flags(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'preset = "tuned"\nusers = [10, 20]\nwindow = 9\nthreads = 2\nlabel = "from-file"\n'
        'pg-max-connections = 50\n[[cells]]\nserver = "uvicorn"\nviews = "async"\ndb = "pool"\n',
    )
    spec = spec_of("--config", str(path), "--window", "7", env={"GATEWAYBENCH_LABEL": "env"})
    assert spec.preset == "tuned" and spec.threads == 2  # the file's threads beat the preset's
    assert spec.load.users == (10, 20) and spec.load.window_s == 7 and spec.run_label == "env"
    assert spec.cells == (Cell("uvicorn", "async", "pool"),)
    assert sized_max_connections(spec) == 50
    assert spec_of("--config", str(path), "--servers", "gunicorn").cells == (Cell("gunicorn"),)


def test_users_auto_means_calibrate() -> None:
    assert spec_of("--users", "auto").load.users == ()


def test_manifest_records_the_resolved_matrix() -> None:
    data = spec_of("--cells", "uvicorn+async+pool", "--threads", "3").to_json()
    assert data["cells"] == [
        {"label": "uvicorn+async+pool", "server": "uvicorn", "views": "async", "db": "pool",
         "driver": "", "upstream_ms": None, "request_buffering": True}
    ]  # fmt: skip
    assert data["threads"] == 3


BAD_CONFIGS = [
    ("users = [20, 10]\n", "strictly increasing"),
    ('window = "long"\n', "window must be a whole number"),
    ("window = 2.5\n", "window must be a whole number"),
    ("ramp = true\n", "ramp must be a number"),
    ("wrokers = 2\n", "unknown key 'wrokers'"),
    ("users = [10,\n", "not valid TOML"),
    ('preset = "fast"\n', "unknown preset 'fast'"),
    ('[[cells]]\nserver = "waitress"\n', "unknown server 'waitress'"),
    ('[[cells]]\nserver = "gunicorn"\nviews = "async"\n', "async views need an ASGI server"),
    ('[[cells]]\nserver = "uvicorn"\ndb = "pool"\ndriver = "psycopg2"\n', "needs psycopg 3"),
    ('[[cells]]\nserver = "uvicorn"\ncolour = "red"\n', "unknown cell keys"),
    ('cells = "uvicorn"\n', "cells must be a non-empty array"),
    ("pg-max-connections = -1\n", "--pg-max-connections must not be negative"),
]


@pytest.mark.parametrize(("text", "needle"), BAD_CONFIGS)
def test_bad_config_values_are_named(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(UsageError, match=needle):
        spec_of("--config", str(write(tmp_path, text)))


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        spec_of("--config", str(tmp_path / "nope.toml"))


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("uvicorn+fast", "'fast' is not a views, db or driver choice"),
        ("uvicorn+async+async", "repeats"),
        ("gunicorn+async", "async views need an ASGI server"),
        ("uvicorn,uvicorn", "repeats uvicorn"),
    ],
)
def test_bad_cells_are_named(text: str, needle: str) -> None:
    with pytest.raises(UsageError, match=needle):
        parse_cells(text)


def test_no_relevant_cell_is_refused() -> None:
    with pytest.raises(UsageError, match="no relevant cell"):
        spec_of("--servers", "gunicorn", "--views", "async")


def test_own_app_flags_need_the_app_dir() -> None:
    with pytest.raises(UsageError, match="only apply with --app-dir"):
        spec_of("--wsgi", "x:app")


def test_a_setup_list_is_one_command_per_item(tmp_path: Path) -> None:
    """A TOML list keeps its items whole: a comma or a ';' inside one is part of its command."""
    path = write(
        tmp_path,
        f'app-dir = "{tmp_path}"\nwsgi = "site.wsgi:application"\n'
        'setup = ["manage.py migrate", "manage.py loaddata a.json,b.json", "sh -c \'a; b\'"]\n',
    )
    assert spec_of("--config", str(path)).app.setup == (
        "manage.py migrate",
        "manage.py loaddata a.json,b.json",
        "sh -c 'a; b'",
    )


@pytest.mark.parametrize(
    "setup",
    [
        '"manage.py migrate; manage.py loaddata x"',
        '"""\nmanage.py migrate\nmanage.py loaddata x\n"""',
    ],
)
def test_a_setup_string_is_split_on_semicolons_and_lines(tmp_path: Path, setup: str) -> None:
    path = write(tmp_path, f'app-dir = "{tmp_path}"\nwsgi = "s.wsgi:app"\nsetup = {setup}\n')
    assert spec_of("--config", str(path)).app.setup == ("manage.py migrate", "manage.py loaddata x")


def test_the_setup_flag_splits_like_a_config_string(tmp_path: Path) -> None:
    spec = spec_of("--app-dir", str(tmp_path), "--wsgi", "s.wsgi:app", "--setup", "a b; c")
    assert spec.app.setup == ("a b", "c")


def test_a_setup_list_of_other_things_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, f'app-dir = "{tmp_path}"\nwsgi = "s.wsgi:app"\nsetup = ["a", 2]\n')
    with pytest.raises(UsageError, match="setup must be a list of strings"):
        spec_of("--config", str(path))
