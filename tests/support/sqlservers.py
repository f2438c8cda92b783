"""Real SQL servers for tests: MariaDB (Debian's mariadb-server) and PostgreSQL
(Debian's postgresql, binaries in /usr/lib/postgresql/<version>/bin), each started
privately in a temporary directory, listening on an ephemeral loopback port and a
Unix socket there.  The fixtures are session-scoped: the suite starts each server
once.

Each server has a database ``mail`` and a user ``exim`` with password ``secret``
that owns it; :meth:`SqlServer.sql` runs statements as the administrator (tests set
up their own tables).  A server whose binaries are missing or that does not start
makes the test skip with the reason (in CI .ci/run installs the packages).
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.ports import free_port

_START_TIMEOUT = 60.0
DATABASE, USER, PASSWORD = "mail", "exim", "secret"


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _wait_socket(proc: subprocess.Popen, path: str, what: str, log: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline and proc.poll() is None:
        if os.path.exists(path):
            return
        time.sleep(0.1)
    _stop(proc)
    output = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    pytest.skip(f"{what} could not be started: {output or 'no output'}")


class SqlServer:
    """A running server: TCP ``port`` on 127.0.0.1, Unix ``socket`` path."""

    def __init__(self, proc: subprocess.Popen, directory: str, port: int, socket: str):
        self.proc, self.directory, self.port, self.socket = proc, directory, port, socket

    def stop(self) -> None:
        _stop(self.proc)
        shutil.rmtree(self.directory, ignore_errors=True)

    def sql(self, *statements: str) -> list:
        """Run statements in ``mail`` as the administrator; the last one's rows."""
        raise NotImplementedError

    def connections(self) -> int:
        """How many client connections the server has accepted so far (MariaDB: this
        call's own included; PostgreSQL: the exim user's open ones)."""
        raise NotImplementedError


class MariaDB(SqlServer):
    """mariadbd with a ``mail`` database and an ``exim`` user (TCP and socket)."""

    def _admin(self, database: str | None = DATABASE):
        import pymysql
        return pymysql.connect(unix_socket=self.socket, user="root", database=database,
                               autocommit=True)

    def sql(self, *statements: str) -> list:
        conn = self._admin()
        try:
            with conn.cursor() as cur:
                for s in statements:
                    cur.execute(s)
                return list(cur.fetchall())
        finally:
            conn.close()

    def connections(self) -> int:
        rows = self.sql("SHOW GLOBAL STATUS LIKE 'Connections'")
        return int(rows[0][1])          # this call's own connection included


class Postgres(SqlServer):
    """postgres with a ``mail`` database owned by ``exim`` (password on TCP)."""

    def _admin(self):
        import psycopg
        return psycopg.connect(host=os.path.dirname(self.socket), port=self.port,
                               dbname=DATABASE, user="pgadmin", autocommit=True)

    def sql(self, *statements: str) -> list:
        with self._admin() as conn:
            cur = conn.cursor()
            for s in statements:
                cur.execute(s)
            return list(cur.fetchall()) if cur.description else []

    def connections(self) -> int:
        # backends of the exim user (the admin's own connection is not counted)
        rows = self.sql("SELECT count(*) FROM pg_stat_activity WHERE usename = 'exim'")
        return int(rows[0][0])


def start_mariadb() -> MariaDB:
    """A private mariadbd; skips when it is not installed or does not start."""
    server = shutil.which("mariadbd") or shutil.which("mariadbd", path="/usr/sbin")
    install = shutil.which("mariadb-install-db")
    if server is None or install is None:
        pytest.skip("mariadbd is not installed (Debian package mariadb-server)")
    try:
        import pymysql  # noqa: F401
    except ImportError:
        pytest.skip("PyMySQL is not installed")
    directory = tempfile.mkdtemp(prefix="pymta-mariadb-")
    os.chmod(directory, 0o755)          # the daemon's exim_user reaches the socket
    data, sock, log = f"{directory}/data", f"{directory}/sock", Path(directory, "log")
    user = ["--user=root"] if os.geteuid() == 0 else []
    done = subprocess.run([install, "--no-defaults", f"--datadir={data}", *user,
                           "--auth-root-authentication-method=normal", "--skip-test-db"],
                          capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        shutil.rmtree(directory, ignore_errors=True)
        pytest.skip(f"mariadb-install-db failed: {done.stdout[-1000:]}{done.stderr[-1000:]}")
    port = free_port()
    proc = subprocess.Popen(
        [server, "--no-defaults", f"--datadir={data}", f"--socket={sock}", f"--port={port}",
         "--bind-address=127.0.0.1", *user, f"--pid-file={directory}/pid",
         f"--log-error={log}", "--skip-name-resolve", "--innodb-buffer-pool-size=16M",
         "--skip-log-bin"],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    _wait_socket(proc, sock, "mariadbd", log)
    db = MariaDB(proc, directory, port, sock)
    conn = db._admin(database=None)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {DATABASE}")
            for host in ("%", "localhost"):
                cur.execute(f"CREATE USER '{USER}'@'{host}' IDENTIFIED BY '{PASSWORD}'")
                cur.execute(f"GRANT ALL ON {DATABASE}.* TO '{USER}'@'{host}'")
    finally:
        conn.close()
    return db


def _pg_bindir() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    return os.path.dirname(found[-1]) if found else None


def start_postgres() -> Postgres:
    """A private postgres; skips when it is not installed or does not start.

    PostgreSQL refuses to run as root: as root the server runs as the ``postgres``
    user (Debian's package makes it), else as ``nobody``.
    """
    bindir = _pg_bindir()
    if bindir is None:
        pytest.skip("postgres is not installed (Debian package postgresql)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed")
    directory = tempfile.mkdtemp(prefix="pymta-postgres-")
    os.chmod(directory, 0o755)
    run_as: list[str] = []
    if os.geteuid() == 0:
        name = "postgres"
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            name, pw = "nobody", pwd.getpwnam("nobody")
        os.chown(directory, pw.pw_uid, pw.pw_gid)
        run_as = ["runuser", "-u", name, "--"]
    data, log = f"{directory}/data", Path(directory, "log")
    pwfile = f"{directory}/pw"
    with open(pwfile, "w") as f:
        f.write("adminsecret\n")
    if run_as:
        shutil.chown(pwfile, user=run_as[2])
    done = subprocess.run([*run_as, f"{bindir}/initdb", "-D", data, "-U", "pgadmin",
                           "--auth-local=trust", "--auth-host=scram-sha-256",
                           f"--pwfile={pwfile}", "-E", "UTF8", "--no-locale"],
                          capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        shutil.rmtree(directory, ignore_errors=True)
        pytest.skip(f"initdb failed: {done.stdout[-1000:]}{done.stderr[-1000:]}")
    port = free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*run_as, f"{bindir}/postgres", "-D", data, "-k", directory, "-p", str(port),
             "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
             "-c", "shared_buffers=8MB", "-c", "max_connections=40"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    sock = f"{directory}/.s.PGSQL.{port}"
    _wait_socket(proc, sock, "postgres", log)
    db = Postgres(proc, directory, port, sock)
    import psycopg
    deadline = time.monotonic() + _START_TIMEOUT
    while True:                 # the socket appears a moment before logins work
        try:
            conn = psycopg.connect(host=directory, port=port, dbname="postgres",
                                   user="pgadmin", autocommit=True)
            break
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                db.stop()
                pytest.skip(f"postgres does not accept logins: {log.read_text()[-2000:]}")
            time.sleep(0.2)
    with conn:
        conn.execute(f"CREATE USER {USER} PASSWORD '{PASSWORD}'")
        conn.execute(f"CREATE DATABASE {DATABASE} OWNER {USER}")
    return db


@pytest.fixture(scope="session")
def mariadb() -> Iterator[MariaDB]:
    """The session's MariaDB server."""
    db = start_mariadb()
    yield db
    db.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """The session's PostgreSQL server."""
    db = start_postgres()
    yield db
    db.stop()
