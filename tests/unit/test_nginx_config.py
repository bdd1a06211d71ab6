from __future__ import annotations

from pathlib import Path

from gatewaybench.spec import NginxSettings
from gatewaybench.stack import nginx, upstream


def _render(tmp_path: Path, **overrides: object) -> tuple[str, nginx.NginxFiles]:
    files = nginx.local_files(tmp_path, tmp_path, tmp_path, "gunicorn", access_log=True)
    settings = NginxSettings(worker_connections=333, listen_backlog=77, **overrides)  # type: ignore[arg-type]
    text = nginx.render_config(
        settings,
        listen="127.0.0.1:8081",
        upstreams=["127.0.0.1:9001"],
        files=files,
        user=nginx.worker_user(),
    )
    return text, files


def test_config_carries_the_settings(tmp_path: Path) -> None:
    text, files = _render(tmp_path)
    assert "listen 127.0.0.1:8081 backlog=77;" in text
    assert "worker_connections 333;" in text
    assert "server 127.0.0.1:9001;" in text
    assert "keepalive 64;" in text
    assert 'proxy_set_header Connection "";' in text  # upstream keepalive needs HTTP/1.1
    assert "$request_time" in text and "$status" in text
    assert f"access_log {files.access_log} gatewaybench;" in text
    assert "0.0.0.0" not in text


def test_access_log_can_be_turned_off(tmp_path: Path) -> None:
    files = nginx.local_files(tmp_path, tmp_path, tmp_path, "x", access_log=False)
    text = nginx.render_config(
        NginxSettings(access_log=False),
        listen="127.0.0.1:1",
        upstreams=["127.0.0.1:2"],
        files=files,
        user=None,
    )
    assert "access_log off;" in text


def test_real_nginx_accepts_the_rendered_config(tmp_path: Path) -> None:
    """`nginx -t` with the binary the project's setup installed."""
    text, files = _render(tmp_path)
    files.conf.write_text(text)
    nginx.check_config(nginx.find_nginx(), files.conf, tmp_path, files.error_log)


def test_request_buffering_is_on_unless_a_cell_turns_it_off(tmp_path: Path) -> None:
    assert "proxy_request_buffering on;" in _render(tmp_path)[0]
    files = nginx.local_files(tmp_path, tmp_path, tmp_path, "x", access_log=True)
    text = nginx.render_config(
        NginxSettings(), listen="127.0.0.1:1", upstreams=["127.0.0.1:2"], files=files,
        user=None, request_buffering=False,
    )  # fmt: skip
    assert "proxy_request_buffering off;" in text


def test_real_nginx_accepts_the_upstream_config(tmp_path: Path) -> None:
    """The delayed upstream's config loads the echo module the project's setup installed."""
    files = upstream.local_files(tmp_path, tmp_path, tmp_path, "gunicorn@100ms")
    text = upstream.render_config(
        echo_module=str(upstream.find_echo_module()),
        listen="127.0.0.1:8082",
        files=files,
        user=nginx.worker_user(),
    )
    assert "echo_sleep $arg_s;" in text and "listen 127.0.0.1:8082" in text
    assert "0.0.0.0" not in text
    files.conf.write_text(text)
    nginx.check_config(nginx.find_nginx(), files.conf, tmp_path, files.error_log)
