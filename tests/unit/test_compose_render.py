"""docker-compose.yml is generated from the spec: the committed files must be what it renders,
and the rendered topology must be the local backend's (same argv, same nginx config)."""

from __future__ import annotations

import argparse
import io
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from gatewaybench.compose import cli, render, services, yamlsubset
from gatewaybench.compose.model import SECRETS
from gatewaybench.load import locust_runner
from gatewaybench.matrix import Cell
from gatewaybench.servers import REGISTRY, ServerArgs
from gatewaybench.spec import SEED_SERVERS, RunSpec
from gatewaybench.stack import nginx, postgres, upstream

REPO = Path(__file__).resolve().parents[2]
COMMITTED_SPEC = RunSpec(workers=services.COMPOSE_WORKERS)
APPS = [f"app-{s}" for s in SEED_SERVERS]
WAIT_VARIABLES = {
    "GB_UPSTREAM_URL": "http://upstream:8081",
    "GB_UPSTREAM_MS": "${GB_UPSTREAM_MS:-0}",
    "GB_UPSTREAM_CALLS": "${GB_UPSTREAM_CALLS:-1}",
    "GB_DB_WAIT_MS": "${GB_DB_WAIT_MS:-0}",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gatewaybench")
    cli.add_subcommand(parser.add_subparsers(dest="command", required=True))
    return parser


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The committed file as a YAML 1.1 reader reads it (PyYAML, as compose's own users might)."""
    doc: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return doc


def test_a_yaml_reader_reads_back_exactly_what_was_rendered(compose: dict[str, Any]) -> None:
    assert compose == render.to_compose(services.build_project(COMMITTED_SPEC))


def test_committed_files_are_what_the_spec_renders() -> None:
    assert render.stale_files(COMMITTED_SPEC, REPO) == [], (
        "run `gatewaybench compose render --write` and commit the result"
    )


def test_compose_render_prints_the_committed_file_byte_for_byte() -> None:
    out = io.StringIO()
    assert cli.dispatch(_parser().parse_args(["compose", "render"]), out) == 0
    assert out.getvalue() == (REPO / "docker-compose.yml").read_text()


def test_compose_render_check_reports_drift(tmp_path: Path) -> None:
    render.write_files(COMMITTED_SPEC, tmp_path)
    assert render.stale_files(COMMITTED_SPEC, tmp_path) == []
    (tmp_path / "docker" / "nginx.conf").write_text("changed\n")
    assert render.stale_files(COMMITTED_SPEC, tmp_path) == ["docker/nginx.conf"]


def test_service_graph(compose: dict[str, Any]) -> None:
    svc = compose["services"]
    apps = APPS
    assert list(svc) == [
        "postgres", "upstream", "migrate", *apps, "nginx", "locust-master", "locust-worker",
    ]  # fmt: skip
    assert svc["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert "depends_on" not in svc["upstream"] and "profiles" not in svc["upstream"]
    for app in apps:
        assert svc[app]["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"},
            "upstream": {"condition": "service_healthy"},
        }
        assert svc[app]["profiles"] == [app.removeprefix("app-")]
        assert svc[app]["networks"] == {"default": {"aliases": ["app"]}}
    assert svc["nginx"]["depends_on"] == {
        a: {"condition": "service_healthy", "required": False} for a in apps
    }
    assert svc["locust-master"]["depends_on"] == {"nginx": {"condition": "service_healthy"}}
    assert svc["locust-worker"]["depends_on"] == {"locust-master": {"condition": "service_started"}}
    assert svc["locust-worker"]["profiles"] == ["load"]
    assert "deploy" not in svc["locust-worker"]  # scaled with --scale, not fixed here
    assert compose["volumes"] == {"pgdata": {}, "locust-results": {}}


def test_health_checks(compose: dict[str, Any]) -> None:
    svc = compose["services"]
    assert svc["postgres"]["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    assert "127.0.0.1" in svc["postgres"]["healthcheck"]["test"]  # TCP: not the init server
    for name in ["nginx", "upstream"]:
        test = svc[name]["healthcheck"]["test"]
        assert test[0] == "CMD" and any("/healthz" in part for part in test), name
    for name in APPS:  # a script probing /healthz (sample_app/healthcheck.py)
        assert svc[name]["healthcheck"]["test"] == [
            "CMD", "/opt/venv/bin/python", "/app/sample_app/healthcheck.py", "8000",
        ]  # fmt: skip
    for name, service in svc.items():
        # Podman's API splits an exec-form argument at its spaces: none may have any.
        test = service.get("healthcheck", {}).get("test", [])
        assert all(" " not in part for part in test), name
    assert "http://127.0.0.1:8081/healthz" in svc["upstream"]["healthcheck"]["test"]


def _from_lines(dockerfile: str) -> list[str]:
    text = (REPO / dockerfile).read_text()
    return [line.split()[1] for line in text.splitlines() if line.startswith("FROM ")]


def test_images_are_pinned(compose: dict[str, Any]) -> None:
    # The app's base is a build argument too (a local equivalent stands in without a registry).
    assert _from_lines(services.DOCKERFILE) == ["${PYTHON_IMAGE}"]
    app_dockerfile = (REPO / services.DOCKERFILE).read_text()
    assert f"ARG PYTHON_IMAGE={services.PYTHON_IMAGE}\n" in app_dockerfile
    # The upstream's base is a build argument (a local mirror's base may stand in), pinned too.
    assert _from_lines(services.UPSTREAM_DOCKERFILE) == ["${DEBIAN_IMAGE}"]
    upstream_dockerfile = (REPO / services.UPSTREAM_DOCKERFILE).read_text()
    assert f"ARG DEBIAN_IMAGE={services.DEBIAN_IMAGE}\n" in upstream_dockerfile
    images = [s["image"] for s in compose["services"].values()]
    images = [re.sub(r"^\$\{[A-Z_]+:-(.+)\}$", r"\1", i) for i in images]  # ${VAR:-default}
    for image in [*images, services.PYTHON_IMAGE, services.DEBIAN_IMAGE]:
        _name, _, tag = image.partition(":")
        assert re.match(r"^\d+\.\d+(\.\d+)?(-[a-z]+)*$", tag), image


def test_only_nginx_is_published_and_only_on_loopback(compose: dict[str, Any]) -> None:
    published = {n: s["ports"] for n, s in compose["services"].items() if "ports" in s}
    assert published == {"nginx": ["127.0.0.1:${GB_NGINX_PORT:-8080}:80"]}
    assert "network_mode" not in str(compose)
    assert not {"ports", "expose", "network_mode"} & set(compose["services"]["upstream"])


def test_upstream_service_is_built_from_its_dockerfile(compose: dict[str, Any]) -> None:
    upstream_svc = compose["services"]["upstream"]
    assert upstream_svc["image"] == "${GB_UPSTREAM_IMAGE:-" + services.UPSTREAM_IMAGE + "}"
    build = upstream_svc["build"]
    assert REPO / build["context"] / build["dockerfile"] == REPO / services.UPSTREAM_DOCKERFILE
    dockerfile = (REPO / services.UPSTREAM_DOCKERFILE).read_text()
    assert "libnginx-mod-http-echo" in dockerfile and "curl" in dockerfile  # echo; health check
    assert upstream_svc["command"] == ["nginx", "-c", "/etc/nginx/nginx.conf"]
    assert upstream_svc["volumes"] == ["./docker/upstream.conf:/etc/nginx/nginx.conf:ro"]
    # The app image's build is as before: the repository as context.
    assert compose["services"]["migrate"]["build"] == {
        "context": ".",
        "dockerfile": "docker/app.Dockerfile",
    }


def test_upstream_config_is_the_one_template_rendered() -> None:
    expected = upstream.render_config(
        echo_module="/usr/lib/nginx/modules/ngx_http_echo_module.so",
        listen="0.0.0.0:8081",
        files=upstream.UpstreamFiles(
            conf=Path("/etc/nginx/nginx.conf"),
            pid=Path("/run/nginx.pid"),
            error_log=Path("/dev/stderr"),
            access_log=Path("/dev/stdout"),
            temp_dir=Path("/var/lib/nginx"),
        ),
        user=("www-data", "www-data"),
    )
    text = (REPO / services.UPSTREAM_CONF_FILE).read_text()
    assert text == expected
    assert text.startswith("# Rendered by gatewaybench from nginx/upstream.conf.j2")
    assert "load_module /usr/lib/nginx/modules/ngx_http_echo_module.so;\n" in text
    assert "echo_sleep $arg_s;" in text
    assert "listen 0.0.0.0:8081 " in text
    assert "access_log /dev/stdout gatewaybench_upstream;" in text


def test_app_services_reach_the_upstream(compose: dict[str, Any]) -> None:
    svc = compose["services"]
    for app in APPS:
        env = svc[app]["environment"]
        assert {k: env[k] for k in WAIT_VARIABLES} == WAIT_VARIABLES, app
        assert env["GB_UPSTREAM_TIMEOUT_S"] == f"{COMMITTED_SPEC.load.client_timeout_s:g}"
        assert list(env) == sorted(env), app
    assert "GB_UPSTREAM_URL" not in svc["migrate"]["environment"]


def test_a_cells_wait_is_the_default_the_sdk_backend_runs() -> None:
    """The SDK backend sets none of the wait variables: each cell runs its own wait."""
    spec = RunSpec(
        workers=2,
        cells=(Cell("gunicorn", upstream_ms=0), Cell("gunicorn", upstream_ms=100)),
    )
    project = services.build_project(spec)
    names = [s.name for s in project.services]
    assert names.count("upstream") == 1
    no_wait, wait = (project.service(services.service_name(c)) for c in spec.cells)
    assert render.fill_values(wait.environment["GB_UPSTREAM_MS"], {}) == "100"
    assert render.fill_values(no_wait.environment["GB_UPSTREAM_MS"], {}) == "0"
    assert render.fill_values(wait.environment["GB_UPSTREAM_MS"], {"GB_UPSTREAM_MS": "7"}) == "7"
    assert (
        render.to_compose(project)["services"][wait.name]["environment"]["GB_UPSTREAM_MS"]
        == "${GB_UPSTREAM_MS:-100}"
    )


def test_no_secret_is_committed(compose: dict[str, Any]) -> None:
    text = (REPO / "docker-compose.yml").read_text()
    for name in SECRETS:
        assert f"${{{name}:?" in text
    for service in compose["services"].values():
        for key, value in service.get("environment", {}).items():
            if re.search(r"PASSWORD|SECRET", key):
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", value), (key, value)
    ignored = (REPO / ".gitignore").read_text().splitlines()
    assert render.ENV_FILE in ignored
    assert "{{secret:" not in text


def test_app_commands_come_from_the_server_registry(compose: dict[str, Any]) -> None:
    for name in SEED_SERVERS:
        server = REGISTRY[name]
        workers = COMMITTED_SPEC.workers if server.multi_process else 1
        argv = server.build_argv(
            ServerArgs(services.BIN, services.ANY_ADDRESS, services.APP_PORT, workers, 1)
        )
        assert compose["services"][f"app-{name}"]["command"] == argv


def test_daphne_gets_the_process_budget_as_replicas(compose: dict[str, Any]) -> None:
    daphne = compose["services"]["app-daphne"]
    assert daphne["deploy"] == {"replicas": COMMITTED_SPEC.workers}
    assert "deploy" not in compose["services"]["app-gunicorn"]


def test_nginx_config_is_the_one_template_rendered() -> None:
    expected = nginx.render_config(
        COMMITTED_SPEC.nginx,
        listen="0.0.0.0:80",
        upstreams=["app:8000"],
        files=nginx.NginxFiles(
            conf=Path("/etc/nginx/nginx.conf"),
            pid=Path("/var/run/nginx.pid"),
            error_log=Path("/var/log/nginx/error.log"),
            access_log=Path("/var/log/nginx/access.log"),
            temp_dir=Path("/var/cache/nginx"),
        ),
        user=("nginx", "nginx"),
    )
    assert (REPO / services.NGINX_CONF_FILE).read_text() == expected


def test_postgres_keeps_every_local_setting() -> None:
    local = postgres.postgres_argv(
        postgres.Binaries(Path("/x")), Path("/d"), Path("/s"), 5432, COMMITTED_SPEC.postgres
    )
    local_keys = {
        v.split("=")[0] for f, v in zip(local[1::2], local[2::2], strict=True) if f == "-c"
    }
    command = services.postgres_command(COMMITTED_SPEC)
    keys = {v.split("=")[0] for v in command[2::2]}
    assert command[0] == "postgres"
    assert keys == local_keys
    assert "listen_addresses=*" in command
    assert "max_connections=100" in command  # sized_max_connections for the seed cells


def test_cells_with_variants_get_valid_names_and_container_paths() -> None:
    spec = RunSpec(workers=2, threads=4, cells=(Cell("uvicorn", "async", "pool"),))
    project = services.build_project(spec)
    app = project.service("app-uvicorn-async-pool")
    assert app.profiles == ("uvicorn-async-pool",)
    assert app.environment["PYTHONPATH"] == str(services.PSYCOPG3_DIR)
    assert app.environment["GB_VIEWS"] == "async"
    assert app.environment["GB_DB_POOL_MAX"] == "4"


def test_step_master_uses_the_local_locust_flags() -> None:
    spec = COMMITTED_SPEC
    master = services.step_master(spec, 300, (1, 2, 3), generators=4)
    plan = locust_runner.StepPlan(300, 80, Path("/records"), Path("/records/locust"), (1, 2, 3))
    local = locust_runner.locust_argv(services.BIN, spec.load, plan, 5557)
    shared = [a for a in local if not a.startswith(("--locustfile=", "--host="))]
    assert [a for a in master.command if a in shared] == shared
    assert "--host=http://nginx:80" in master.command
    assert "--expect-workers=4" in master.command
    assert master.environment["GB_RECORD_DIR"] == "/records"


def test_bring_your_own_app_is_refused_clearly() -> None:
    from gatewaybench.errors import UsageError
    from gatewaybench.spec import AppSource

    with pytest.raises(UsageError, match="sample app only"):
        services.build_project(RunSpec(workers=2, app=AppSource(app_dir=Path("/srv/app"))))


def test_env_file_is_generated_private_and_kept(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    out = io.StringIO()
    assert cli.write_env(path, force=False, out=out) == 0
    first = path.read_text()
    assert path.stat().st_mode & 0o777 == 0o600
    assert {line.split("=")[0] for line in first.splitlines()[1:]} == set(SECRETS)
    cli.write_env(path, force=False, out=out)
    assert path.read_text() == first  # never silently replaced


def test_the_writer_survives_a_yaml_1_1_reader() -> None:
    """Keys and values YAML 1.1 would read as booleans, numbers or null stay strings."""
    tricky = ["on", "off", "y", "n", "yes", "No", "true", "null", "1", "1.0", "0x1F", "1e3",
              "2026-01-01", "~", "12:30", "$x", 'q"uote', "a b", ""]  # fmt: skip
    doc = {
        "keys": {k: k for k in tricky if re.match(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$", k)},
        "values": tricky,
        "nested": {"n": 3, "t": True, "e": {}, "l": []},
    }
    assert yaml.safe_load(yamlsubset.dump(doc, "header")) == doc
    for bad in ({"a b": "x"}, {"k": [{"nested": "mapping"}]}):
        with pytest.raises(yamlsubset.YamlSubsetError):
            yamlsubset.dump(bad)


@pytest.mark.parametrize("command", [["compose", "render"], ["run", "--backend", "compose"]])
def test_the_open_model_is_refused_by_the_compose_backend(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gatewaybench import cli as main_cli

    argv = [*command, "--model", "open", "--rate", "5"]
    if command[0] == "run":
        argv += ["--reports-dir", str(tmp_path / "reports")]
    assert main_cli.main(argv, environ={}) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "gatewaybench: the open model runs on the local backend only; leave out --backend "
        "compose, or use --model closed"
    )
    assert not (tmp_path / "reports").exists()
