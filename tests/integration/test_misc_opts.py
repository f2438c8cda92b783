"""Exim 4.96 main options implemented late, each against a recording of real Exim
(tests/data/misc_opts/, see its README):

- acl_smtp_mailauth: the ACL run for AUTH= on MAIL, with $authenticated_sender set and
  $sender_address not yet; its deny ignores the value, its defer answers 451, drop and
  discard are errors; then server_mail_auth_condition.
- bounce_sender_authentication: bounces and delay warnings are spooled with it as their
  authenticated sender (tainted, as Exim's -H), and the smtp transport sends it as AUTH=
  to a server it has logged in to (a real Exim 4.96 receiving).
- slow_lookup_log: a slow host lookup is logged as Exim logs it.
- dns_cname_loops: CNAMEs a resolver did not follow are followed that many times.
- max_username_length: longer user names are unknown users.
"""
from __future__ import annotations

import pwd
import re
import socket
import ssl
import time
from pathlib import Path

import pytest

from tests.support.certs import make_ca, make_cert
from tests.support.daemon import PymtaDaemon
from tests.support.dns import DnsServer
from tests.support.exim import EximDaemon, exim_or_skip
from tests.support.wait import wait_until

DATA = Path(__file__).resolve().parents[1] / "data" / "misc_opts"
_STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? (?:\[\d+\] )?")


def _transcript(name: str) -> list[tuple[str, str]]:
    return [(line[:1], line[3:]) for line in (DATA / f"{name}.txt").read_text().splitlines()]


def _log_lines(d: PymtaDaemon, name: str = "main") -> list[str]:
    return [_STAMP.sub("", line) for line in d.log(name).splitlines()]


def _replay(d: PymtaDaemon, name: str) -> list[str]:
    """Send the client lines of a recording; check every reply except EHLO's (whose
    extension list is pymta's own); return the log lines Exim wrote, in order."""
    steps = _transcript(name)
    expected_logs = [text for kind, text in steps if kind == "L"]
    with d.client() as c:
        c.banner()
        i = 0
        while i < len(steps):
            kind, text = steps[i]
            i += 1
            if kind != "C":
                continue
            code, reply = c.cmd(text)
            want = []
            while i < len(steps) and steps[i][0] != "C":
                if steps[i][0] == "S":
                    want.append(steps[i][1])
                i += 1
            if text.startswith("EHLO"):
                assert code == 250
                continue
            assert f"{code} {reply}" == want[0], (text, want)
        c.quit()
    return expected_logs


def _in_order(expected: list[str], got: list[str]) -> None:
    pos = 0
    for line in expected:
        assert line in got[pos:], (line, got)
        pos = got.index(line, pos) + 1


@pytest.mark.parametrize("name", ["mailauth_unauthenticated", "mailauth_authenticated"])
def test_acl_smtp_mailauth_as_exim(pymta_daemon, name):
    d = pymta_daemon(config=(DATA / "mailauth.conf").read_text())
    expected = _replay(d, name)
    wait_until(lambda: expected[-1] in d.log(), timeout=10)
    _in_order(expected, _log_lines(d))
    if name == "mailauth_unauthenticated":
        panic = _log_lines(d, "panic")
        assert panic == ['"discard" verb not allowed in MAILAUTH ACL',
                         '"drop" verb not allowed in MAILAUTH ACL']
        # the 451s are rejections: the reject log has them too
        assert any("temporarily rejected MAILAUTH <a@b.example> SIZE=10 "
                   "AUTH=later@b.example: try later please" in line
                   for line in _log_lines(d, "reject"))


def test_acl_smtp_mailauth_sender_reaches_the_spool(pymta_daemon):
    """An AUTH= value the ACL accepted from an unauthenticated client is the message's
    authenticated sender (the -auth_sender line of -H, as Exim writes it)."""
    d = pymta_daemon(config="queue_only\n" + (DATA / "mailauth.conf").read_text())
    with d.client() as c:
        c.banner()
        c.ehlo("client.example")
        assert c.cmd("MAIL FROM:<a@b.example> AUTH=good+40b.example") == (250, "OK")
        assert c.cmd("RCPT TO:<r@mx.example.test>")[0] == 250
        assert c.data(b"Subject: x\r\n\r\nbody\r\n")[0] == 250
        c.quit()
    [msgid] = d.queue()
    header = (d.spool / "input" / f"{msgid}-H").read_text()
    assert "-auth_sender good@b.example\n" in header


def _bounce_conf(option: bool) -> str:
    text = (DATA / "bounce_sender_authentication.conf").read_text()
    return text if option else text.replace("bounce_sender_authentication", "# ")


@pytest.mark.parametrize("option", [True, False])
def test_bounce_is_spooled_with_the_authenticated_sender(tmp_path, option):
    d = PymtaDaemon(_bounce_conf(option), tmp_path)
    d.submit_and_deliver("sender@elsewhere.example", "nobody@bounce.example",
                         b"Subject: x\n\nbody\n")
    [bounce] = d.queue()                 # undeliverable, so frozen like Exim's
    header = (d.spool / "input" / f"{bounce}-H").read_text().splitlines()
    exim = (DATA / "bounce_sender_authentication.exim-H").read_text().splitlines()
    [exim_line] = [x for x in exim if "auth_sender" in x]
    assert (exim_line in header) is option, header
    assert not any("auth_sender" in x for x in header) or option


EXIM_RECEIVER = """\
primary_hostname = receiver.test
spool_directory = @SPOOL@
log_file_path = @SPOOL@/log/%slog
auth_advertise_hosts = *
acl_smtp_rcpt = acl_rcpt

begin acl
acl_rcpt:
  accept  logwrite = from=<$sender_address> auth_sender=<$authenticated_sender> \\
                     id=<$authenticated_id>

begin routers
all:
  driver = accept
  transport = mbox

begin transports
mbox:
  driver = appendfile
  file = @DIR@/mbox
  user = Debian-exim

begin authenticators
plain:
  driver = plaintext
  public_name = PLAIN
  server_prompts = :
  server_condition = ${if and {{eq{$auth2}{relay}}{eq{$auth3}{s3cret}}}}
  server_set_id = $auth2
"""

RELAY = """\
smarthost:
  driver = manualroute
  route_list = * 127.0.0.1::{port}
  self = send
  transport = remote_smtp

begin transports
remote_smtp:
  driver = smtp
  allow_localhost
  hosts_avoid_tls = *
{auth_option}

begin authenticators
client_plain:
  driver = plaintext
  public_name = PLAIN
  client_send = ^relay^s3cret
"""


@pytest.mark.parametrize("login", [True, False])
def test_bounce_sender_authentication_goes_on_mail(tmp_path, login):
    """The bounce reaches a real Exim with AUTH=<the option's value> on MAIL, but only
    over a session that logged in (without a login there is no AUTH=)."""
    exim_or_skip()
    (tmp_path / "exim").mkdir()
    exim = EximDaemon(EXIM_RECEIVER, tmp_path / "exim").start()
    try:
        conf = _bounce_conf(True) + RELAY.format(
            port=exim.port, auth_option="  hosts_require_auth = *" if login else "")
        d = PymtaDaemon(conf, tmp_path / "pymta")
        d.submit_and_deliver("sender@elsewhere.example", "nobody@bounce.example",
                             b"Subject: x\n\nbody\n")
        assert wait_until(lambda: "from=<>" in exim.log(), timeout=15), \
            d.log() + exim.log()
        # Exim keeps the white space of the continuation line: collapse it
        line = " ".join(next(x for x in exim.log().splitlines() if "from=<>" in x).split())
        if login:
            assert line.endswith("auth_sender=<mailer-daemon@mx.test.example> id=<relay>")
        else:
            assert line.endswith("auth_sender=<> id=<>"), line
        assert d.queue() == []
    finally:
        exim.stop()


WARNING_CONF = """\
primary_hostname = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
delay_warning = 2s:1h
bounce_sender_authentication = mailer-daemon@test.example
begin routers
d:
  driver = redirect
  local_parts = slow
  data = :defer: not now
  allow_defer
r:
  driver = accept
  local_parts = s
  transport = local
begin transports
local:
  driver = appendfile
  file = DIR/mbox
  headers_add = X-Auth-Sender: <$authenticated_sender>
begin retry
* * F,1h,1s
"""


def test_delay_warning_carries_bounce_sender_authentication(tmp_path):
    d = PymtaDaemon(WARNING_CONF, tmp_path)
    started = time.monotonic()
    d.submit_and_deliver("s@test.example", "slow@test.example", b"Subject: hello\n\nbody\n")
    time.sleep(max(0.0, started + 2.3 - time.monotonic()))
    d.run("-qf")
    mbox = (tmp_path / "mbox").read_text()
    assert "Subject: Warning: message" in mbox, d.log()
    assert "X-Auth-Sender: <mailer-daemon@test.example>" in mbox


def test_slow_lookup_log_as_exim(tmp_path):
    """A routing lookup slower than slow_lookup_log ms is logged in Exim's words
    (tests/data/misc_opts/slow_lookup_log.txt); the quick ones are not."""
    exim = [x for x in (DATA / "slow_lookup_log.txt").read_text().splitlines()
            if x.startswith("Long ")]
    assert len(exim) == 1
    pattern = re.escape(exim[0].rsplit(": ", 1)[0]) + r": (\d+) msec"
    zones = {"slow.example": "fast IN A 192.0.2.1\nsleepy IN MX 10 fast\n"}
    with DnsServer(zones, slow={"sleepy.slow.example": 0.3}) as srv:
        d = PymtaDaemon((DATA / "slow_lookup_log.conf").read_text(), tmp_path,
                        env={"PYMTA_DNS_SERVER": f"127.0.0.1:{srv.port}"}).start()
        try:
            with d.client() as c:
                c.banner()
                c.ehlo("client.example")
                assert c.cmd("MAIL FROM:<a@b.example>")[0] == 250
                assert c.cmd("RCPT TO:<user@sleepy.slow.example>")[0] == 250
                c.quit()
            [line] = d.wait_for_log(pattern)
            assert 300 <= int(re.search(pattern, line).group(1)) < 5000
            assert "Long A lookup" not in d.log() and "Long AAAA" not in d.log()
        finally:
            d.stop()


@pytest.mark.parametrize("loops", ["default", "0", "2"])
def test_dns_cname_loops_as_exim(tmp_path, loops):
    """-bt through a resolver that does not follow CNAMEs: the same routing results
    and "CNAME loop" log lines as Exim's (tests/data/misc_opts/cname_loops_<n>.txt)."""
    exim = (DATA / f"cname_loops_{loops}.txt").read_text().splitlines()
    exim_log = [x for x in exim if x.startswith("CNAME loop")]
    exim_out = [x for x in exim if x not in exim_log]
    conf = (DATA / "cname_loops.conf").read_text()
    if loops != "default":
        conf = f"dns_cname_loops = {loops}\n" + conf
    zones = {"cname.example": "one IN CNAME target\ntwo IN CNAME one\n"
                              "target IN MX 10 mailhost\nmailhost IN A 192.0.2.1\n"}
    with DnsServer(zones, follow_cname=False) as srv:
        d = PymtaDaemon(conf, tmp_path, env={"PYMTA_DNS_SERVER": f"127.0.0.1:{srv.port}"})
        d.prepare()
        out = d.run("-bt", "user@one.cname.example", "user@two.cname.example")
    lines = [x.strip() for x in out.stdout.splitlines() if x.strip()]
    assert lines == exim_out, out.stdout + out.stderr
    assert [x for x in _log_lines(d) if x.startswith("CNAME loop")] == exim_log


def _long_user() -> str:
    """A system user whose lowercase name is over 8 characters (the recording used
    "messagebus")."""
    names = sorted(p.pw_name for p in pwd.getpwall()
                   if len(p.pw_name) > 8 and p.pw_name == p.pw_name.lower())
    if not names:
        pytest.skip("no system user with a name over 8 characters")
    return "messagebus" if "messagebus" in names else names[0]


@pytest.mark.parametrize("limit", ["8", "0"])
def test_max_username_length_as_exim(pymta_daemon, limit):
    """check_local_user and the passwd lookup do not find a user whose name is longer
    than max_username_length (tests/data/misc_opts/max_username_length_<n>.txt)."""
    user = _long_user()
    exim = (DATA / f"max_username_length_{limit}.txt").read_text().splitlines()
    replies = [x for x in exim if x[:3].isdigit() and x[3] == " "]
    rcpt_replies = replies[2:4]                     # after EHLO's and MAIL's
    conf = (DATA / "max_username_length.conf").read_text().replace(
        "max_username_length = 8", f"max_username_length = {limit}")
    d = pymta_daemon(config=conf)
    with d.client() as c:
        c.banner()
        c.ehlo("c.example")
        assert c.cmd("MAIL FROM:<a@b.example>")[0] == 250
        got = [c.cmd(f"RCPT TO:<{user}@test.example>"), c.cmd("RCPT TO:<nobody@test.example>")]
        c.quit()
    assert [f"{code} {text}" for code, text in got] == rcpt_replies
    out = d.run("-be", f"${{lookup passwd{{{user}}}{{found}}{{not found}}}}")
    assert out.stdout.strip() == exim[-1]


ALPN_SERVER = """\
primary_hostname = mx.test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
tls_certificate = DIR/mx.test.example.pem
tls_privatekey = DIR/mx.test.example.key
hosts_require_alpn = *
acl_smtp_rcpt = accept
"""


def _starttls_with_alpn(port: int, alpn: list[str] | None) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"EHLO c.example\r\n")
        while f.readline()[3:4] != b" ":
            pass
        s.sendall(b"STARTTLS\r\n")
        f.readline()
        c = ssl.create_default_context()
        c.check_hostname = False
        c.verify_mode = ssl.CERT_NONE
        if alpn:
            c.set_alpn_protocols(alpn)
        try:
            t = c.wrap_socket(s)
            t.sendall(b"EHLO c.example\r\n")
            reply = t.recv(100).split(b"\r\n")[0].decode()
            if not reply:
                return "failed (closed)"
            return f"ok alpn={t.selected_alpn_protocol()} ehlo={reply!r}"
        except (ssl.SSLError, OSError) as exc:
            return f"failed ({type(exc).__name__})"


def test_hosts_require_alpn_server_as_exim(pymta_daemon, tmp_path):
    """A client that negotiates no ALPN is refused after the handshake with Exim's log
    line; one that offers "smtp" goes on (tests/data/misc_opts/alpn_server.txt)."""
    make_cert(tmp_path, "mx.test.example", make_ca(tmp_path))
    exim = (DATA / "alpn_server.txt").read_text().splitlines()
    d = pymta_daemon(config=ALPN_SERVER)
    assert _starttls_with_alpn(d.port, None).startswith("failed")
    ok = _starttls_with_alpn(d.port, ["smtp"])
    assert f"client: offer=['smtp'] {ok}" in exim
    refused = next(x for x in exim if "ALPN required" in x)
    d.wait_for_log(re.escape(refused))


ALPN_TLS_SERVER = """\
primary_hostname = mx.test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
tls_certificate = DIR/mx.test.example.pem
tls_privatekey = DIR/mx.test.example.key
acl_smtp_rcpt = accept
queue_only
"""

ALPN_CLIENT = """\
primary_hostname = client.test
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
begin routers
r:
  driver = manualroute
  route_list = * 127.0.0.1::{port}
  self = send
  transport = t
begin transports
t:
  driver = smtp
  allow_localhost
  tls_alpn = smtp
{require}begin retry
* * F,1h,10m
"""


@pytest.mark.parametrize("server_alpn", ["default", "none"])
@pytest.mark.parametrize("require", [False, True])
def test_smtp_transport_tls_alpn_as_exim(tmp_path, server_alpn, require):
    """tls_alpn and hosts_require_alpn of the smtp transport: TLS without an agreed
    ALPN fails where it is required, and the message goes in clear with Exim's log line
    (tests/data/misc_opts/alpn_client.txt)."""
    exim = (DATA / "alpn_client.txt").read_text().split("== ")
    [block] = [b for b in exim if b.startswith(
        f"server alpn {server_alpn}, hosts_require_alpn {require}\n")]
    expected = block.splitlines()[1:]
    sdir, cdir = tmp_path / "server", tmp_path / "client"
    sdir.mkdir()
    make_cert(sdir, "mx.test.example", make_ca(sdir))
    server = PymtaDaemon(ALPN_TLS_SERVER + ("tls_alpn =\n" if server_alpn == "none" else ""),
                         sdir).start()
    try:
        client = PymtaDaemon(ALPN_CLIENT.format(
            port=server.port, require="  hosts_require_alpn = *\n" if require else ""), cdir)
        client.submit_and_deliver("s@client.test", "u@remote.example", b"Subject: x\n\nb\n")
        got = [_STAMP.sub("", x) for x in client.log().splitlines()]
        got = [x.split(" ", 1)[1] for x in got if not x.split(" ", 1)[1].startswith(
            ("<=", "Completed"))]
        assert len(got) == len(expected), got
        for mine, theirs in zip(got, expected):
            if theirs.startswith("=>"):
                # the cipher names are GnuTLS's in Exim's line: compare the shape
                assert mine.startswith("=> u@remote.example R=r T=t H=127.0.0.1 [127.0.0.1]")
                assert (" X=TLS1.3:" in mine) == (" X=TLS1.3:" in theirs), mine
            else:
                assert mine == theirs
        assert len(server.queue()) == 1
    finally:
        server.stop()
