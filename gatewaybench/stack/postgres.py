"""A private PostgreSQL cluster per run: initdb, a foreground postmaster, password auth on loopback.

PostgreSQL refuses to run as root. When the harness is root (CI), the cluster belongs to an
unprivileged system user and every postgres command runs as that user; otherwise it runs as us.
The postmaster runs in the foreground under our supervision (not daemonised by pg_ctl) so its
pid is ours to stop and its death is noticed.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from gatewaybench.errors import StackError, UsageError
from gatewaybench.results.stale import temp_prefix
from gatewaybench.spec import PostgresSettings
from gatewaybench.stack import process
from gatewaybench.stack.net import LOOPBACK

SUPERUSER = "gatewaybench"  # the harness's own role: counts votes, resets data
APP_ROLE = "polls"  # the app's role: not a superuser, so superuser_reserved_connections keep
# a few slots for the harness even when the app exhausts max_connections
DB_NAME = "polls"
MAX_NAME_BYTES = 63  # PostgreSQL's NAMEDATALEN - 1
UNPRIVILEGED_CANDIDATES = ("postgres", "nobody")
INITDB_TIMEOUT_S = 120
CONNECT_ATTEMPTS = 6
READY_TIMEOUT_S = 60


@dataclass(frozen=True)
class Binaries:
    bindir: Path

    @property
    def initdb(self) -> Path:
        return self.bindir / "initdb"

    @property
    def postgres(self) -> Path:
        return self.bindir / "postgres"


@dataclass(frozen=True)
class Dsn:
    host: str
    port: int
    user: str
    password: str
    dbname: str

    def connect(self, dbname: str | None = None) -> psycopg2.extensions.connection:
        # While the app storms a full server, even a reserved superuser slot can be briefly
        # taken by backends still authenticating: retry that one error a few times.
        for attempt in range(CONNECT_ATTEMPTS):
            try:
                conn = psycopg2.connect(
                    host=self.host,
                    port=self.port,
                    user=self.user,
                    password=self.password,
                    dbname=dbname or self.dbname,
                    connect_timeout=5,
                )
            except psycopg2.OperationalError as exc:
                if "too many clients" not in str(exc) or attempt == CONNECT_ATTEMPTS - 1:
                    raise
                time.sleep(0.5)
                continue
            conn.autocommit = True
            return conn
        raise AssertionError("unreachable")


def find_binaries() -> Binaries:
    """pg_config's bindir if it has a server, else the newest /usr/lib/postgresql/*/bin."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=False, timeout=10
        )
        if out.returncode == 0:
            candidates.append(Path(out.stdout.strip()))
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates += [Path(p) for p in versions]
    for bindir in candidates:
        bins = Binaries(bindir)
        if os.access(bins.postgres, os.X_OK) and os.access(bins.initdb, os.X_OK):
            return bins
    raise UsageError(
        "PostgreSQL server binaries (initdb, postgres) not found",
        "install them (Debian/Ubuntu: apt-get install postgresql) or put their bin dir on PATH",
    )


def server_version(bins: Binaries) -> str:
    out = subprocess.run(
        [str(bins.postgres), "--version"], capture_output=True, text=True, check=False, timeout=10
    )
    return out.stdout.strip()


def run_as_user() -> str | None:
    """The unprivileged user to run postgres as when we are root; None means 'as ourselves'."""
    if os.geteuid() != 0:
        return None
    for name in UNPRIVILEGED_CANDIDATES:
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise UsageError(
        "running as root and no unprivileged user for PostgreSQL exists",
        "create one (useradd --system postgres) or run the harness as a normal user",
    )


def traversable_by(path: Path, user: str) -> bool:
    """Can `user` reach `path` (execute permission on every ancestor)?"""
    entry = pwd.getpwnam(user)
    groups = {entry.pw_gid, *os.getgrouplist(user, entry.pw_gid)}
    for directory in [path, *path.parents]:
        st = directory.stat()
        if st.st_uid == entry.pw_uid:
            bit = stat.S_IXUSR
        elif st.st_gid in groups:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return False
    return True


def _private_dir(path: Path, owner: str | None) -> Path:
    path.mkdir(mode=0o700, parents=False, exist_ok=False)
    if owner is not None:
        entry = pwd.getpwnam(owner)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return path


@dataclass
class Cluster:
    dsn: Dsn  # superuser, for the harness
    app_dsn: Dsn  # the app's own role, owner of the database
    data_dir: Path
    socket_dir: Path
    user: str | None
    version: str
    proc: process.ManagedProcess

    def exit_problem(self) -> StackError | None:
        if self.proc.alive():
            return None
        return StackError(
            f"PostgreSQL exited with code {self.proc.popen.returncode}",
            f"see {self.proc.log_path}",
            self.proc.log_tail(),
        )


def _data_dir_location(run_dir: Path, user: str | None) -> Path:
    """Inside the run directory when the postgres user can reach it, else a private temp dir."""
    if user is None or traversable_by(run_dir, user):
        return run_dir / "pgdata"
    parent = Path(tempfile.mkdtemp(prefix=temp_prefix("pgdata")))
    parent.chmod(0o711)  # the postgres user may pass through, not list
    return parent / "pgdata"


def _initdb(
    bins: Binaries,
    data_dir: Path,
    secret_dir: Path,
    *,
    password: str,
    user: str | None,
    log: Path,
    env: Mapping[str, str] | None,
) -> None:
    pwfile = secret_dir / "pwfile"
    pwfile.write_text(password + "\n")
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(pwfile, entry.pw_uid, entry.pw_gid)
    pwfile.chmod(0o600)
    try:
        process.run_to_completion(
            "initdb",
            [
                str(bins.initdb),
                "-D",
                str(data_dir),
                "-U",
                SUPERUSER,
                "--pwfile",
                str(pwfile),
                "--auth=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
            log_path=log,
            timeout_s=INITDB_TIMEOUT_S,
            env=env,
            user=user,
            finish_on_interrupt=True,
        )
    finally:
        pwfile.unlink(missing_ok=True)


def postgres_argv(
    bins: Binaries, data_dir: Path, socket_dir: Path, port: int, settings: PostgresSettings
) -> list[str]:
    return [
        str(bins.postgres), "-D", str(data_dir),
        "-c", f"listen_addresses={LOOPBACK}",
        "-c", f"port={port}",
        "-c", f"unix_socket_directories={socket_dir}",
        "-c", "unix_socket_permissions=0700",
        "-c", f"max_connections={settings.max_connections}",
        "-c", "logging_collector=off",
        "-c", "log_line_prefix=%m [%p] ",
    ]  # fmt: skip


@contextmanager
def running_cluster(
    bins: Binaries,
    run_dir: Path,
    logs: Path,
    port: int,
    settings: PostgresSettings,
    *,
    env: Mapping[str, str] | None = None,
) -> Iterator[Cluster]:
    """Create, start and finally stop and delete a private cluster (its log stays in logs/).
    `env` is the run's child environment (Context.child_env: it carries the run marker that
    finds leftovers by environment); None: this process's."""
    user = run_as_user()
    data_dir = _data_dir_location(run_dir, user)
    socket_dir = Path(tempfile.mkdtemp(prefix=temp_prefix("pg")))
    password = secrets.token_urlsafe(24)
    proc: process.ManagedProcess | None = None
    try:
        if user is not None:
            entry = pwd.getpwnam(user)
            os.chown(socket_dir, entry.pw_uid, entry.pw_gid)
        _private_dir(data_dir, user)
        _initdb(
            bins, data_dir, socket_dir, password=password, user=user, log=logs / "initdb.log",
            env=env,
        )  # fmt: skip
        proc = process.start(
            "postgres",
            postgres_argv(bins, data_dir, socket_dir, port, settings),
            log_path=logs / "postgres.log",
            env=env,
            user=user,
            stop_signal=signal.SIGINT,  # "fast" shutdown; SIGTERM would wait for clients
        )
        dsn = Dsn(LOOPBACK, port, SUPERUSER, password, DB_NAME)
        process.wait_until(
            proc, f"connections on {LOOPBACK}:{port}", lambda: _accepts(dsn), READY_TIMEOUT_S
        )
        app_dsn = Dsn(LOOPBACK, port, APP_ROLE, secrets.token_urlsafe(24), DB_NAME)
        _create_database(dsn, app_dsn)
        yield Cluster(dsn, app_dsn, data_dir, socket_dir, user, server_version(bins), proc)
    finally:
        if proc is not None:
            proc.stop(timeout_s=30)
        shutil.rmtree(data_dir, ignore_errors=True)
        if data_dir.parent.name.startswith("gatewaybench-pgdata-"):
            shutil.rmtree(data_dir.parent, ignore_errors=True)
        shutil.rmtree(socket_dir, ignore_errors=True)


def _accepts(dsn: Dsn) -> bool:
    try:
        dsn.connect("postgres").close()
    except psycopg2.OperationalError:
        return False
    return True


def _create_database(dsn: Dsn, app: Dsn) -> None:
    conn = dsn.connect("postgres")
    try:
        with conn.cursor() as cur:
            # A utility statement takes no bound parameters: the password goes as a literal.
            cur.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(app.user), sql.Literal(app.password)
                )
            )
            cur.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    _database_name(DB_NAME), sql.Identifier(app.user)
                )
            )
    except psycopg2.Error as exc:
        raise StackError(f"could not create database {DB_NAME}: {exc}".strip()) from None
    finally:
        conn.close()


def create_app_database(dsn: Dsn, owner: str, name: str) -> None:
    """Another database owned by the app role (the gate gives each side its own)."""
    _admin(
        dsn,
        name,
        sql.SQL("CREATE DATABASE {} OWNER {}").format(_database_name(name), sql.Identifier(owner)),
    )


def fresh_copy(dsn: Dsn, owner: str, template: str, name: str) -> None:
    """`name` created anew as a copy of `template`; an earlier `name` is dropped first, with any
    connection still open to it (a server's backend can outlive its client by a moment)."""
    _admin(
        dsn,
        name,
        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(_database_name(name)),
        sql.SQL("CREATE DATABASE {} TEMPLATE {} OWNER {}").format(
            _database_name(name), _database_name(template), sql.Identifier(owner)
        ),
    )


def _database_name(name: str) -> sql.Identifier:
    """`name` quoted, so upper case, dashes or quotes are kept as given. Refused when PostgreSQL
    could not hold it: a name over 63 bytes is cut with only a notice, and a connection by the
    full name would then find no database."""
    if not 0 < len(name.encode()) <= MAX_NAME_BYTES or "\0" in name:
        raise StackError(f"database name {name!r} is not 1 to {MAX_NAME_BYTES} bytes without NUL")
    return sql.Identifier(name)


def _admin(dsn: Dsn, name: str, *statements: sql.Composable) -> None:
    conn = dsn.connect("postgres")
    conn.autocommit = True  # CREATE DATABASE cannot run inside a transaction
    try:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
    except psycopg2.Error as exc:
        raise StackError(f"could not create database {name}: {exc}".strip()) from None
    finally:
        conn.close()
