"""The mysql and pgsql lookups against real servers (tests/support/sqlservers.py), the
readsock lookup, and ${quote_mysql:}/${quote_pgsql:}.  Expected values are what
Exim 4.96 (exim4 -be, Debian) gave for the same queries on the same data.

The virtual-domain test runs the configuration and schema of docs/virtual-domains.md
through the real daemon."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from pymta.expand import ExpandDefer
from pymta.expand.operators import apply_operator
from pymta.lookups import do_lookup
from pymta.taint import Tainted
from tests.support.daemon import PymtaDaemon, run_pymta
from tests.support.ports import free_port
from tests.support.sqlservers import Postgres, mariadb, postgres  # noqa: F401 (fixtures)
from tests.support.wait import wait_until

REPO = Path(__file__).resolve().parents[2]

ROWS = [("kr", "'/home/kr'", "'King Rat'", 1), ("ab", "NULL", "''", 2),
        ("q", "'a\"b\\\\c'", "'x y'", 3)]


def _fill(server, table: str) -> None:
    pg = isinstance(server, Postgres)
    server.sql(f"DROP TABLE IF EXISTS {table}",
               f"CREATE TABLE {table} (login VARCHAR(64), home VARCHAR(200), "
               "name VARCHAR(200), n INT)")
    if pg:                          # the administrator made it: let exim use it
        server.sql(f"GRANT ALL ON {table} TO exim")
    for login, home, name, n in ROWS:
        if pg:                      # standard strings: no backslash escapes
            home = home.replace("\\\\", "\\")
        server.sql(f"INSERT INTO {table} VALUES ('{login}', {home}, {name}, {n})")


def _servers_conf(tmp_path: Path, mysql: str = "", pgsql: str = "",
                  name: str = "be") -> Path:
    conf = tmp_path / f"{name}.conf"
    lines = [f"spool_directory = {tmp_path}/spool"]
    if mysql:
        lines.append(f"hide mysql_servers = {mysql}")
    if pgsql:
        lines.append(f"hide pgsql_servers = {pgsql}")
    conf.write_text("\n".join(lines) + "\n")
    return conf


def _be(conf: Path, *expressions: str) -> list[str]:
    out = run_pymta(["-be", *expressions], conf)
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def _be_one(conf: Path, expression: str) -> str:
    out = run_pymta(["-be", expression], conf)
    assert out.returncode == 0, out.stderr
    return out.stdout.rstrip("\n")


@pytest.fixture
def mysql_conf(mariadb, tmp_path):  # noqa: F811
    _fill(mariadb, "people")
    return _servers_conf(tmp_path, mysql=f"127.0.0.1::{mariadb.port}/mail/exim/secret",
                         name="mysql")


@pytest.fixture
def pgsql_conf(postgres, tmp_path):  # noqa: F811
    _fill(postgres, "people")
    return _servers_conf(tmp_path, pgsql=f"({postgres.socket})/mail/exim/secret",
                         name="pgsql")


# -- result formats (as exim4 -be printed them) ---------------------------------------

MULTI = ('login=kr home=/home/kr name="King Rat" n=1 \n'
         'login=ab home="" name="" n=2 \n'
         'login=q home=a"b\\c name="x y" n=3 ')


@pytest.mark.parametrize("kind", ["mysql", "pgsql"])
def test_rows_and_columns(kind, request):
    conf = request.getfixturevalue(f"{kind}_conf")
    q = "${lookup " + kind + "{%s}{[$value]}{none}}"
    assert _be_one(conf, q % "SELECT login FROM people ORDER BY n") == "[kr\nab\nq]"
    assert _be_one(conf, q % "SELECT login, home, name, n FROM people ORDER BY n") == \
        f"[{MULTI}]"
    assert _be_one(conf, q % "SELECT login FROM people WHERE login = 'zz'") == "none"
    # a statement without a result set gives the number of rows it changed
    assert _be_one(conf, q % "UPDATE people SET n = n + 10 WHERE n > 1") == "[2]"
    assert _be_one(conf, q % "DELETE FROM people WHERE n > 100") == "[0]"
    assert _be_one(conf, q % "SELECT 1 AS \"with space\", 2 AS \"x=y\"") == \
        "[with space=1 x=y=2 ]"


def test_null_values_differ_between_mysql_and_pgsql(mysql_conf, pgsql_conf):
    # Exim's mysql lookup adds nothing for a one-column NULL (not even the newline
    # while nothing was collected), its pgsql lookup an empty line
    q = "${lookup %s{SELECT home FROM people ORDER BY n = 2 DESC, n}{[$value]}{none}}"
    assert _be_one(mysql_conf, q % "mysql") == '[/home/kr\na"b\\c]'
    assert _be_one(pgsql_conf, q % "pgsql") == '[\n/home/kr\na"b\\c]'
    q = "${lookup %s{SELECT home FROM people WHERE login = 'ab'}{[$value]}{none}}"
    assert _be_one(mysql_conf, q % "mysql") == "none"
    assert _be_one(pgsql_conf, q % "pgsql") == "[]"


def test_pgsql_commands(pgsql_conf):
    q = "${lookup pgsql{%s}{[$value]}{none}}"
    assert _be_one(pgsql_conf, q % "BEGIN") == "none"         # counts no rows
    assert _be_one(pgsql_conf, q % "SELECT 1; SELECT 2") == "[2]"   # the last result


@pytest.mark.parametrize("kind", ["mysql", "pgsql"])
def test_query_error_defers(kind, request):
    conf = request.getfixturevalue(f"{kind}_conf")
    out = run_pymta(["-be", "${lookup " + kind + "{SELECT nosuch FROM people}}"], conf)
    assert "gave DEFER" in out.stdout + out.stderr
    assert "nosuch" in out.stdout + out.stderr


def test_no_servers_defined_defers(tmp_path):
    conf = _servers_conf(tmp_path)
    out = run_pymta(["-be", "${lookup mysql{SELECT 1}}"], conf)
    assert "no MySQL servers defined (mysql_servers option)" in out.stdout + out.stderr
    # pymta reads no MySQL option files: an option group is refused, not ignored
    out = run_pymta(["-be", "${lookup mysql,servers=localhost[grp]/d/u/p{SELECT 1}}"], conf)
    assert "gave DEFER" in out.stdout and "not supported" in out.stdout
    out = run_pymta(["-be", "${lookup mysql,servers=a/b{SELECT 1}}"], conf)
    assert "incomplete MySQL server data: a" in out.stdout


# -- server lists ------------------------------------------------------------------------

def test_failover_to_the_next_server(mariadb, postgres, tmp_path):  # noqa: F811
    down = free_port()        # nothing listens there
    conf = _servers_conf(
        tmp_path,
        mysql=f"127.0.0.1::{down}/mail/exim/secret : 127.0.0.1::{mariadb.port}/mail/exim/secret",
        pgsql=f"127.0.0.1::{down}/mail/exim/secret : 127.0.0.1::{postgres.port}/mail/exim/secret")
    assert _be_one(conf, "${lookup mysql{SELECT 6*7}}") == "42"
    assert _be_one(conf, "${lookup pgsql{SELECT 6*7}}") == "42"
    # servers= picks items of the main option by their host part
    assert _be_one(conf, "${lookup mysql,servers=127.0.0.1::%d{SELECT 5}}" % mariadb.port) \
        == "5"
    out = run_pymta(["-be", "${lookup mysql,servers=127.0.0.1::%d{SELECT 5}}" % down], conf)
    assert "gave DEFER" in out.stdout and "connection failed" in out.stdout
    out = run_pymta(["-be", "${lookup pgsql,servers=nohost{SELECT 5}}"], conf)
    assert 'PostgreSQL server "nohost" not found in pgsql_servers' in out.stdout
    # a full specification in the query, in the older "servers=...;" form too
    full = f"127.0.0.1::{mariadb.port}/mail/exim/secret"
    assert _be_one(conf, "${lookup mysql{servers=%s; SELECT 8}}" % full) == "8"
    # a wrong password is a server that cannot be used
    out = run_pymta(["-be", "${lookup mysql,servers=127.0.0.1::%d/mail/exim/wrong{SELECT 5}}"
                     % mariadb.port], conf)
    assert "Access denied" in out.stdout


def test_all_servers_down_defers(tmp_path):
    down1, down2 = free_port(), free_port()
    conf = _servers_conf(tmp_path, mysql=f"127.0.0.1::{down1}/d/u/p : 127.0.0.1::{down2}/d/u/p",
                         pgsql=f"127.0.0.1::{down1}/d/u/p")
    for kind in ("mysql", "pgsql"):
        out = run_pymta(["-be", "${lookup %s{SELECT 1}{found}{not found}}" % kind], conf)
        assert "gave DEFER" in out.stdout and "connection failed" in out.stdout, out.stdout
        assert "not found" not in out.stdout


# -- connections -------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["mysql", "pgsql"])
def test_one_connection_per_process(kind, mariadb, postgres, tmp_path):  # noqa: F811
    server = mariadb if kind == "mysql" else postgres
    conf = _servers_conf(tmp_path, mysql=f"127.0.0.1::{mariadb.port}/mail/exim/secret",
                         pgsql=f"127.0.0.1::{postgres.port}/mail/exim/secret")
    ident = "CONNECTION_ID()" if kind == "mysql" else "pg_backend_pid()"
    before = server.connections() if kind == "mysql" else None
    lookups = [f"${{lookup {kind}{{SELECT {ident}, {i}}}}}" for i in range(5)]
    out = _be(conf, *lookups)
    ids = {re.search(r"=(\d+) ", line).group(1) for line in out}   # type: ignore[union-attr]
    assert len(out) == 5 and len(ids) == 1
    if before is not None:
        # pymta's one connection, and the one connections() itself made
        assert server.connections() - before == 2


class _Ctx:
    def __init__(self, servers: str):
        class Main:
            mysql_servers = servers
            pgsql_servers = servers
        self.config = type("Config", (), {"main": Main})()


@pytest.mark.parametrize("kind", ["mysql", "pgsql"])
def test_forked_child_opens_its_own_connection(kind, mariadb, postgres):  # noqa: F811
    port = mariadb.port if kind == "mysql" else postgres.port
    ctx = _Ctx(f"127.0.0.1::{port}/mail/exim/secret")
    query = "SELECT CONNECTION_ID()" if kind == "mysql" else "SELECT pg_backend_pid()"
    parent = do_lookup(kind, query, None, ctx)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:                 # the child: a lookup, then exit without cleanup
        try:
            os.write(w, (do_lookup(kind, query, None, ctx) or "").encode())
        finally:
            os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    child = os.read(r, 100).decode()
    os.close(r)
    assert child and child != parent
    assert do_lookup(kind, query, None, ctx) == parent    # the parent's still works


def test_dead_connection_is_replaced(mariadb):  # noqa: F811
    ctx = _Ctx(f"127.0.0.1::{mariadb.port}/mail/exim/secret")
    first = do_lookup("mysql", "SELECT CONNECTION_ID()", None, ctx)
    mariadb.sql(f"KILL {first}")
    second = do_lookup("mysql", "SELECT CONNECTION_ID()", None, ctx)
    assert second and second != first


def test_query_error_is_not_tried_on_the_next_server(mariadb):  # noqa: F811
    good = f"127.0.0.1::{mariadb.port}/mail/exim/secret"
    ctx = _Ctx(f"{good} : {good}")
    before = mariadb.connections()      # counts its own connection, as below
    with pytest.raises(ExpandDefer, match="query failed"):
        do_lookup("mysql", "SELEKT 1", None, ctx)
    with pytest.raises(ExpandDefer, match="query failed"):
        do_lookup("mysql", "SELEKT 2", None, ctx)
    assert mariadb.connections() - before <= 2


# -- quoting and readsock ----------------------------------------------------------------

NASTY = "a'b\"c\\d\ne\tf\rg\bh%_"


def test_quote_operators(tmp_path):
    conf = _servers_conf(tmp_path)
    expr = "${quote_%s:a'b\"c\\\\d\ne\tf\\rg\\bh%%_}"
    # as exim4 -be printed them
    assert _be_one(conf, expr % "mysql") == "a\\'b\\\"c\\\\d\\ne\\tf\\rg\\bh%_"
    assert _be_one(conf, expr % "pgsql") == "a''b\\\"c\\\\d\\ne\\tf\\rg\\bh%_"
    assert _be_one(conf, "${quote_readsock:a b'}") == "a b'"


@pytest.mark.parametrize("kind", ["mysql", "pgsql"])
def test_quoted_value_round_trips(kind, mariadb, postgres):  # noqa: F811
    # the nasty string goes into the query through the quote operator and comes back
    # unchanged: it stayed one string literal
    port = mariadb.port if kind == "mysql" else postgres.port
    ctx = _Ctx(f"127.0.0.1::{port}/mail/exim/secret")
    quoted = apply_operator(f"quote_{kind}", NASTY, ctx)
    # PostgreSQL reads backslash escapes in E'' strings only
    literal = f"'{quoted}'" if kind == "mysql" else f"E'{quoted}'"
    assert do_lookup(kind, f"SELECT {literal}", None, ctx) == NASTY


def test_readsock_lookup_fails_as_in_exim(tmp_path):
    # Exim 4.96's readsock lookup is query-style: no socket can be named, so it fails
    conf = _servers_conf(tmp_path)
    assert _be_one(conf, "${lookup readsock{hello}{yes}{no}}") == "no"
    assert _be_one(conf, "${lookup readsock,timeout=2s{hello}{yes}{no}}") == "no"
    out = run_pymta(["-be", "${lookup{hello}readsock{/tmp/sock}}"], conf)
    assert "not a single-key lookup type" in out.stdout + out.stderr


# -- the virtual-domain setup of docs/virtual-domains.md through the daemon ------------

def _doc_block(lang: str) -> str:
    text = (REPO / "docs" / "virtual-domains.md").read_text()
    m = re.search(r"```" + lang + r"\n(.*?)```", text, re.S)
    assert m, lang
    return m.group(1)


def _virtual_daemon(server, tmp_path, servers: str) -> PymtaDaemon:
    """The daemon running docs/virtual-domains.md's configuration on ``server``'s
    tables; for PostgreSQL the same with pgsql lookups and E'' strings."""
    pg = isinstance(server, Postgres)
    for table in ("domains", "users", "aliases"):
        server.sql(f"DROP TABLE IF EXISTS {table}")
    server.sql(*[s for s in _doc_block("sql").split(";") if s.strip()])
    if pg:
        server.sql("GRANT ALL ON domains, users, aliases TO exim")
    server.sql("INSERT INTO domains VALUES ('example.org'), ('example.net')",
               "INSERT INTO users VALUES ('alice', 'example.org'), ('bob', 'example.net'),"
               " ('o''brien', 'example.org')",
               "INSERT INTO aliases VALUES ('team', 'example.org', 'alice@example.org'),"
               " ('team', 'example.org', 'bob@example.net')")
    conf = ("log_file_path = SPOOL/log/%slog\nspool_directory = SPOOL\n"
            "primary_hostname = mx.test.example\n" + _doc_block("exim"))
    conf = conf.replace("SQL_SERVER/mail/exim/secret", servers)
    if pg:
        conf = (conf.replace("mysql_servers", "pgsql_servers").replace("mysql;", "pgsql;")
                .replace("lookup mysql", "lookup pgsql")
                .replace("'${quote_mysql:", "E'${quote_pgsql:"))
        assert "mysql" not in conf
    return PymtaDaemon(conf, tmp_path, macros={"MAIL_STORE": str(tmp_path / "mail")},
                       args=["-odi"])


@pytest.mark.parametrize("kind", ["mysql", "pgsql"])
def test_virtual_domains_deliver(kind, mariadb, postgres, tmp_path):  # noqa: F811
    server = mariadb if kind == "mysql" else postgres
    # the first server in the list is down: the lookups fail over to the second
    down = free_port()
    servers = (f"127.0.0.1::{down}/mail/exim/secret : "
               f"127.0.0.1::{server.port}/mail/exim/secret")
    with _virtual_daemon(server, tmp_path, servers) as d:
        with d.client() as c:
            c.ehlo()
            assert c.cmd("MAIL FROM:<sender@remote.example>")[0] == 250
            assert c.cmd("RCPT TO:<team@example.org>")[0] == 250
            assert c.cmd("RCPT TO:<o'brien@example.org>")[0] == 250
            # SQL in the envelope stays a string value: unknown user, not a match
            assert c.cmd("RCPT TO:<x'or'1'='1@example.org>")[0] == 550
            assert c.cmd("RCPT TO:<\"x\\\\' OR 1=1 -- \"@example.org>")[0] == 550
            assert c.cmd("RCPT TO:<alice@example.com>")[0] == 550      # not our domain
            code, _ = c.data(b"Subject: hi\r\n\r\nbody\r\n")
            assert code == 250
        mail = tmp_path / "mail"

        def delivered() -> bool:
            return all((mail / p).exists() for p in
                       ("example.org/alice", "example.net/bob", "example.org/o'brien"))
        wait_until(delivered, 20)
    assert b"body" in (mail / "example.org" / "alice").read_bytes()
    assert b"Envelope-to: team@example.org" in (mail / "example.net" / "bob").read_bytes()
    # every tainted value went through the quote operator: no warning
    assert "not properly quoted" not in d.log("main")


def test_virtual_domains_database_down_defers_rcpt(mariadb, tmp_path):  # noqa: F811
    down = free_port()
    servers = f"127.0.0.1::{down}/mail/exim/secret"
    with _virtual_daemon(mariadb, tmp_path, servers) as d:
        with d.client() as c:
            c.ehlo()
            assert c.cmd("MAIL FROM:<sender@remote.example>")[0] == 250
            code, _ = c.cmd("RCPT TO:<alice@example.org>")
            assert code // 100 == 4


def test_servers_in_a_tainted_query_are_refused(mariadb):  # noqa: F811
    # the older "servers=...;" form in a query built from message data: Exim 4.96
    # defers ("MySQL server ... is tainted"); a server named by its host part comes
    # from the configuration and is fine
    full = f"127.0.0.1::{mariadb.port}/mail/exim/secret"
    ctx = _Ctx(full)
    with pytest.raises(ExpandDefer, match=r'MySQL server ".*" is tainted'):
        do_lookup("mysql", Tainted(f"servers={full}; SELECT 1"), None, ctx)
    assert do_lookup("mysql", f"servers={full}; SELECT 1", None, ctx) == "1"
    assert do_lookup("mysql", Tainted(f"servers=127.0.0.1::{mariadb.port}; SELECT 2"),
                     None, ctx) == "2"


SEL = "SELECT login FROM people WHERE login = "
LP, QM, QP = "'$local_part'", "'${quote_mysql:$local_part}'", "'${quote_pgsql:$local_part}'"
UNQUOTED = [("A", "mysql", SEL + LP), ("B", "mysql", SEL + QM),
            ("D", "mysql", f"{SEL}{QM} OR login = {LP}"),
            ("E", "mysql", f"{SEL}{LP} OR login = {QM}"),
            ("F", "pgsql", SEL + "'${lc:${quote_pgsql:$local_part}}'"),
            ("G", "pgsql", SEL + LP), ("H", "pgsql", SEL + QP)]
UNQUOTED_ACL = "acl_smtp_rcpt = r\nbegin acl\nr:\n" + "".join(
    f"  warn logwrite = {n} ${{lookup {kind}{{{q}}}{{found $value}}{{nf}}}}\n"
    for n, kind, q in UNQUOTED) + "  accept\n"


def test_unquoted_tainted_query_is_logged(mariadb, postgres, tmp_path):  # noqa: F811
    # Exim 4.96 runs the query but logs (main and panic log) when tainted data in it
    # did not come through a quote operator; a string is "quoted" when the last
    # tainted piece appended to it was (exim4 -bh printed these LOG: lines)
    _fill(mariadb, "people")
    _fill(postgres, "people")
    conf = _servers_conf(tmp_path, mysql=f"127.0.0.1::{mariadb.port}/mail/exim/secret",
                         pgsql=f"127.0.0.1::{postgres.port}/mail/exim/secret")
    conf.write_text(conf.read_text() + UNQUOTED_ACL)
    session = b"HELO x\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<kr@x.example>\r\nQUIT\r\n"
    out = run_pymta(["-bh", "192.0.2.1"], conf, input=session)
    logs = [line[5:] for line in out.stdout.splitlines() + out.stderr.splitlines()
            if line.startswith("LOG: ") and not line.startswith("LOG: TLS")]
    text = conf.read_text().splitlines()
    line = {n: text.index(next(t for t in text if f"logwrite = {n} " in t)) + 1
            for n, _, _ in UNQUOTED}
    warn = "tainted search query is not properly quoted (ACL warn, %s %d): %s"
    assert logs == [
        warn % (conf, line["A"], "SELECT login FROM people WHERE login = 'kr'"),
        "A found kr", "B found kr",
        warn % (conf, line["D"], "SELECT login FROM people WHERE login = 'kr' OR login = 'kr'"),
        "D found kr", "E found kr", "F found kr",
        warn % (conf, line["G"], "SELECT login FROM people WHERE login = 'kr'"),
        "G found kr", "H found kr"]
