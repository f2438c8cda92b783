"""RFC 3461 delivery status notifications end to end, over real sockets: a pymta daemon
offering DSN to hosts in dsn_advertise_hosts, test SMTP sinks as next hops (one offering
DSN, one not), local deliveries to mbox files.

The replies, the -H lines and the reports' layout are the ones Exim 4.96 gave and wrote
for the same dialogue (exim4 -bh, and exim4 delivering queued messages); where the
Exim binary is here the replies are compared with it directly.
"""
from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.conftest import wait_for
from tests.support.daemon import PymtaDaemon
from tests.support.exim import EXIM, exim_or_skip
from tests.support.sink import SmtpSink

CONFIG = """\
primary_hostname = mx.test.example
qualify_domain = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
dsn_advertise_hosts = ADVERTISE
smtp_max_synprot_errors = 100
EXTRA
acl_smtp_rcpt = acl_rcpt
begin acl
acl_rcpt:
  accept
begin routers
slow:
  driver = redirect
  local_parts = ^slow
  data = :defer: not now
  allow_defer
bad:
  driver = redirect
  local_parts = ^bad
  data = :fail: no such user here
  allow_fail
alias:
  driver = redirect
  local_parts = list
  data = s2@test.example
dsn_hop:
  driver = manualroute
  domains = dsn.example
  route_list = * 127.0.0.1::DSN_PORT
  self = send
  transport = remote_smtp
plain_hop:
  driver = manualroute
  domains = plain.example
  route_list = * 127.0.0.1::PLAIN_PORT
  self = send
  transport = remote_smtp
local:
  driver = accept
  domains = test.example
  local_parts = lsearch;DIR/users
  transport = local
begin transports
remote_smtp:
  driver = smtp
local:
  driver = appendfile
  file = DIR/mbox-$local_part_data
begin retry
* * F,1h,1s
"""

USERS = ("s", "s2", "u", "v", "w", "f")
BODY = "Subject: hello\nMessage-Id: <m1@client.test>\n\nthe body text\n"


def _daemon(tmp_path: Path, *, advertise: str = "127.0.0.1", extra: str = "",
            dsn_port: int = 1, plain_port: int = 1, lasthop: bool = False,
            args: tuple[str, ...] = ()) -> PymtaDaemon:
    text = CONFIG.replace("ADVERTISE", advertise).replace("EXTRA", extra)
    if lasthop:
        text = text.replace("  transport = remote_smtp\n", "  transport = remote_smtp\n"
                            "  dsn_lasthop\n", 1)
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "users").write_text("".join(f"{u}: {u}\n" for u in USERS))
    d = PymtaDaemon(text, tmp_path, macros={"DSN_PORT": str(dsn_port),
                                            "PLAIN_PORT": str(plain_port)}, args=list(args))
    return d.start()


@pytest.fixture
def start(tmp_path, request):
    """Factory: a daemon on this test's configuration in its own directory (``sub``);
    all are stopped at teardown (with their logs printed when the test failed)."""
    started: list[PymtaDaemon] = []

    def _start(sub: str = "d", **kw) -> PymtaDaemon:
        d = _daemon(tmp_path / sub, **kw)
        started.append(d)
        return d

    yield _start
    failed = getattr(request.node, "rep_call", None)
    for d in started:
        d.stop()
        if failed is not None and failed.failed:
            print(d.diagnostics())


def _send(d: PymtaDaemon, mail: str, rcpts: list[str], body: str = BODY) -> str:
    """One message over SMTP with the given MAIL and RCPT arguments; its id."""
    with d.client() as c:
        c.banner()
        assert c.ehlo()[0] == 250
        assert c.cmd(f"MAIL FROM:{mail}") == (250, "OK")
        for r in rcpts:
            assert c.cmd(f"RCPT TO:{r}") == (250, "Accepted"), r
        code, text = c.data(body.encode())
        assert code == 250, text
        return text.split("id=")[1]


def _mbox(d: PymtaDaemon, user: str) -> str:
    path = d.dir / f"mbox-{user}"
    return path.read_text() if path.exists() else ""


def _reports(d: PymtaDaemon, subject: str, user: str = "s") -> list[str]:
    """The messages in a user's mbox whose Subject starts with ``subject``."""
    parts = re.split(r"(?m)^From MAILER-DAEMON ", _mbox(d, user))
    return [p for p in parts if re.search(rf"(?m)^Subject: {re.escape(subject)}", p)]


def _wait_report(d: PymtaDaemon, subject: str, count: int = 1, user: str = "s") -> list[str]:
    assert wait_for(lambda: len(_reports(d, subject, user)) >= count, 15), d.diagnostics()
    return _reports(d, subject, user)


# --------------------------------------------------------------------- the dialogue

DIALOGUE = [
    "MAIL FROM:<a@b.c> RET=FOO", "MAIL FROM:<a@b.c> RET", "MAIL FROM:<a@b.c> RET=HDRS RET=FULL",
    "MAIL FROM:<a@b.c> ENVID=a ENVID=b", "MAIL FROM:<a@b.c> RET= ENVID=",
    "MAIL FROM:<a@b.c> ENVID=x RET=", "MAIL FROM:<a@b.c> RET=FULL ENVID=a=b",
    "MAIL FROM:<a@b.c> RET=FULL FOO=1", "MAIL FROM:<a@b.c> RET=", "RSET",
    "MAIL FROM:<a@b.c> ret=hdrs envid=Q+2B",
    "RCPT TO:<u@test.example> NOTIFY=FOO", "RCPT TO:<u@test.example> NOTIFY",
    "RCPT TO:<u@test.example> NOTIFY=NEVER,SUCCESS",
    "RCPT TO:<u@test.example> NOTIFY=success,,delay",
    "RCPT TO:<u@test.example> NOTIFY=SUCCESS NOTIFY=DELAY",
    "RCPT TO:<u@test.example> ORCPT=a ORCPT=b", "RCPT TO:<u@test.example> RET=HDRS",
    "RCPT TO:<u@test.example> NOTIFY= ORCPT=", "RCPT TO:<u@test.example> NOTIFY=SUCCESS,",
    "RCPT TO:<u@test.example> NOTIFY=SUCCESS,FAILURE,DELAY ORCPT=rfc822;u+40test.example",
    "RCPT TO:<v@test.example> NOTIFY=NEVER ORCPT",
]

NOT_OFFERED = [
    "MAIL FROM:<a@b.c> RET=bogus ENVID=x", "RCPT TO:<u@test.example> NOTIFY=SUCCESS",
    "RCPT TO:<u@test.example> ORCPT=rfc822;u@test.example", "RSET", "HELO c",
    "MAIL FROM:<a@b.c> RET=HDRS",
]


def _replies(d: PymtaDaemon, commands: list[str]) -> list[str]:
    """The EHLO keywords (first word of each, as one string) and the replies."""
    with d.client() as c:
        c.banner()
        out = ["EHLO: " + " ".join(k.split()[0] for k in c.ehlo()[1].split("\n")[1:])]
        for line in commands:
            code, text = c.cmd(line)
            out.append(f"{code} {text}".rstrip())
    return out


def test_dsn_is_offered_to_dsn_advertise_hosts_only(start, tmp_path):
    d = start("a")
    with d.client() as c:
        c.banner()
        keywords = [k.split()[0] for k in c.ehlo()[1].split("\n")[1:]]
        assert keywords[:3] == ["SIZE", "8BITMIME", "DSN"]      # where Exim puts it
        assert c.cmd("HELO c")[0] == 250
    other = start("b", advertise="192.0.2.1")
    with other.client() as c:
        c.banner()
        assert "DSN" not in c.ehlo()[1].split("\n")


def test_parameter_replies_are_exims(start, tmp_path):
    d = start()
    got = _replies(d, DIALOGUE)
    assert got[1:11] == [
        "501 Value for RET is invalid", "501 Value for RET is invalid",
        "501 RET can be specified once only", "501 ENVID can be specified once only",
        "501 <a@b.c> RET=: malformed address: RET= may not follow <a@b.c>",
        "501 <a@b.c> ENVID=x: malformed address: ENVID=x may not follow <a@b.c>",
        "501 <a@b.c> RET=FULL ENVID=a=b: malformed address: RET=FULL ENVID=a=b may not "
        "follow <a@b.c>",
        "501 <a@b.c> RET=FULL FOO=1: malformed address: RET=FULL FOO=1 may not follow <a@b.c>",
        "250 OK", "250 Reset OK"]
    assert got[11:] == [
        "250 OK",
        "501 Invalid value for NOTIFY parameter", "501 Invalid value for NOTIFY parameter",
        "501 Invalid value for NOTIFY parameter", "501 Invalid value for NOTIFY parameter",
        "501 NOTIFY can be specified once only", "501 ORCPT can be specified once only",
        "501 <u@test.example> RET=HDRS: malformed address: RET=HDRS may not follow "
        "<u@test.example>",
        "250 Accepted", "250 Accepted", "250 Accepted", "250 Accepted"]


def test_without_dsn_mail_parameters_are_dropped_and_rcpt_ones_refused(start, tmp_path):
    d = start("d", advertise="192.0.2.1")
    assert _replies(d, NOT_OFFERED)[1:] == [
        "250 OK",
        "501 <u@test.example> NOTIFY=SUCCESS: malformed address: NOTIFY=SUCCESS may not "
        "follow <u@test.example>",
        "501 <u@test.example> ORCPT=rfc822;u@test.example: malformed address: "
        "ORCPT=rfc822;u@test.example may not follow <u@test.example>",
        "250 Reset OK", "250 mx.test.example Hello c [127.0.0.1]",
        "501 <a@b.c> RET=HDRS: malformed address: RET=HDRS may not follow <a@b.c>"]


def _exim_bh(tmp_path: Path, advertise: str, commands: list[str]) -> list[str]:
    """The same dialogue through exim4 -bh 127.0.0.1, in the form of :func:`_replies`."""
    conf = tmp_path / "exim.conf"
    conf.write_text("keep_environment =\nexim_user = Debian-exim\nprimary_hostname = "
                    f"mx.test.example\ndsn_advertise_hosts = {advertise}\n"
                    "smtp_max_synprot_errors = 100\nacl_smtp_rcpt = accept\n")
    conf.chmod(0o644)
    script = "EHLO client.test\r\n" + "".join(c + "\r\n" for c in commands) + "QUIT\r\n"
    out = subprocess.run([EXIM, "-C", str(conf), "-bh", "127.0.0.1"], input=script.encode(),
                         capture_output=True, timeout=30).stdout.decode()
    replies: list[tuple[str, list[str]]] = []
    current: list[str] = []
    for line in out.splitlines():
        if not re.match(r"\d\d\d[ -]", line) or line.startswith(("220", "221")):
            continue
        current.append(line[4:].rstrip())
        if line[3] == " ":
            replies.append((line[:3], current))
            current = []
    (_, ehlo), rest = replies[0], replies[1:]
    return (["EHLO: " + " ".join(k.split()[0] for k in ehlo[1:])]
            + [f"{code} " + "\n".join(texts) for code, texts in rest])


@pytest.mark.parametrize("advertise, commands", [("127.0.0.1", DIALOGUE),
                                                  ("192.0.2.1", NOT_OFFERED)])
def test_replies_match_exim4(start, tmp_path, advertise, commands):
    exim_or_skip()
    exim = _exim_bh(tmp_path, advertise, commands)
    ours = _replies(start("p", advertise=advertise), commands)
    # Exim offers extensions pymta does not (PIPECONNECT, CHUNKING, STARTTLS, ...):
    # compare DSN's place among those both offer, then every reply
    common = {"SIZE", "8BITMIME", "DSN", "PIPELINING", "HELP"}
    assert [k for k in exim[0][6:].split() if k in common] == \
        [k for k in ours[0][6:].split() if k in common]
    assert ours[1:] == exim[1:]


# --------------------------------------------------------------------- the spool

def test_spool_holds_the_dsn_fields_as_exim_writes_them(start, tmp_path):
    d = start("d", extra="queue_only")
    msgid = _send(d, "<s@test.example> RET=HDRS ENVID=abc+2Bd", [
        "<u@test.example> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;u+40test.example",
        "<v@test.example> NOTIFY=NEVER", "<w@test.example>",
        "<f@test.example> NOTIFY=FAILURE"])
    header = (d.spool / "input" / f"{msgid}-H").read_text()
    lines = header.split("\n")
    # the -dsn_ lines come last among the variables, ENVID first (as Exim 4.96)
    variables = [ln for ln in lines if ln.startswith("-")]
    assert variables[-2:] == ["-dsn_envid abc+2Bd", "-dsn_ret 2"]
    assert "\n4\nu@test.example rfc822;u+40test.example 23,20  0,-1#3\n" \
        "v@test.example  0,2  0,-1#3\nw@test.example\nf@test.example  0,8  0,-1#3\n\n" \
        in header
    assert f"{msgid} <= s@test.example " in d.log()


# --------------------------------------------------------------------- the smtp transport

def test_dsn_requests_are_passed_to_a_host_that_offers_dsn(start, tmp_path):
    with SmtpSink(dsn=True) as dsn_sink, SmtpSink() as plain_sink:
        d = start("d", dsn_port=dsn_sink.port, plain_port=plain_sink.port)
        msgid = _send(d, "<s@test.example> RET=HDRS ENVID=QQ+2Bid", [
            "<u@dsn.example> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;u@dsn.example",
            "<v@dsn.example> NOTIFY=NEVER", "<z@dsn.example>",
            "<p@plain.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;P+2Bx@plain.example",
            "<q@plain.example> NOTIFY=FAILURE"])
        assert dsn_sink.wait_for(1) and plain_sink.wait_for(1), d.diagnostics()
        d.wait_for_log(rf"{msgid} Completed")
        dsn_cmds = [c for c in dsn_sink.commands if c.startswith(("MAIL", "RCPT"))]
        assert re.fullmatch(r"MAIL FROM:<s@test\.example> SIZE=\d+ RET=HDRS ENVID=QQ\+2Bid",
                            dsn_cmds[0]), dsn_cmds
        assert dsn_cmds[1:] == [
            "RCPT TO:<u@dsn.example> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;u@dsn.example",
            "RCPT TO:<v@dsn.example> NOTIFY=NEVER", "RCPT TO:<z@dsn.example>"]
        plain_cmds = [c for c in plain_sink.commands if c.startswith(("MAIL", "RCPT"))]
        assert re.fullmatch(r"MAIL FROM:<s@test\.example> SIZE=\d+", plain_cmds[0])
        assert plain_cmds[1:] == ["RCPT TO:<p@plain.example>", "RCPT TO:<q@plain.example>"]
        # the host without DSN could not pass the request on: this MTA reports success,
        # for p only (q did not ask; u's request went on to the next hop)
        (report,) = _wait_report(d, "Delivery Status Notification")
    assert "\n<p@plain.example> (relayed to non-DSN-aware mailer)\n\n" in report
    assert "Reporting-MTA: dns; mx.test.example\nOriginal-Envelope-ID: QQ+id\n\n" \
        "Original-Recipient: rfc822;P+x@plain.example\nAction: delivered\n" \
        "Final-Recipient: rfc822;p@plain.example\nStatus: 2.0.0\n" \
        "Remote-MTA: dns; 127.0.0.1\nDiagnostic-Code: smtp; 250 Ok\n\n" in report
    assert "u@dsn.example" not in report and "q@plain.example" not in report


def test_success_report_for_a_local_delivery(start, tmp_path):
    d = start()
    msgid = _send(d, "<s@test.example> ENVID=E1", [
        "<u@test.example> NOTIFY=SUCCESS ORCPT=rfc822;U+2Bx@test.example",
        "<w@test.example> NOTIFY=FAILURE,DELAY", "<list@test.example> NOTIFY=SUCCESS"])
    (report,) = _wait_report(d, "Delivery Status Notification")
    head, _, body = report.partition("\n\n")
    for line in ("From: Mail Delivery System <Mailer-Daemon@test.example>",
                 "Auto-Submitted: auto-generated", "To: s@test.example",
                 "References: <m1@client.test>"):
        assert f"\n{line}\n" in head + "\n", line
    boundary = re.search(r"boundary=(\S+)", head).group(1)
    assert body.startswith(
        f"--{boundary}\nContent-type: text/plain; charset=us-ascii\n\n"
        "This message was created automatically by mail delivery software.\n"
        " ----- The following addresses had successful delivery notifications -----\n"
        '<list@test.example> (relayed via non "Remote SMTP" router)\n\n'
        '<u@test.example> (relayed via non "Remote SMTP" router)\n\n'
        f"--{boundary}\nContent-type: message/delivery-status\n\n"
        "Reporting-MTA: dns; mx.test.example\nOriginal-Envelope-ID: E1\n\n"
        "Action: delivered\nFinal-Recipient: rfc822;list@test.example\nStatus: 2.0.0\n"
        "Diagnostic-Code: X-Exim; relayed via non SMTP router\n\n"
        "Original-Recipient: rfc822;U+x@test.example\nAction: delivered\n"
        "Final-Recipient: rfc822;u@test.example\nStatus: 2.0.0\n"
        "Diagnostic-Code: X-Exim; relayed via non SMTP router\n\n"
        f"--{boundary}\nContent-type: text/rfc822-headers\n\n"
        "Return-path: <s@test.example>\n"), body
    assert "Subject: hello\n" in body and "the body text" not in body
    assert f"Message-Id: <m1@client.test>\n\n\n--{boundary}--\n" in body
    assert re.search(rf"\w{{6}}-\w{{6}}-\w{{2}} <= <> R={msgid} ", d.log())
    # the redirected address was delivered (to s2) and reported once, as the original
    assert "hello" in _mbox(d, "s2") and "w@test.example" not in report


def test_no_success_report_to_the_null_sender(start, tmp_path):
    d = start()
    msgid = _send(d, "<>", ["<u@test.example> NOTIFY=SUCCESS"])
    d.wait_for_log(rf"{msgid} Completed")
    assert "<= <>" not in d.log().replace(f"{msgid} <= <>", "")


# --------------------------------------------------------------------- failures

def test_failure_reports_follow_notify_and_ret(start, tmp_path):
    d = start()
    msgid = _send(d, "<s@test.example> RET=HDRS ENVID=E+2B1", [
        "<bad1@test.example> NOTIFY=NEVER", "<bad2@test.example> NOTIFY=SUCCESS",
        "<bad3@test.example> NOTIFY=DELAY", "<bad4@test.example>",
        "<bad5@test.example> NOTIFY=FAILURE ORCPT=rfc822;Bad5+40test.example"])
    d.wait_for_log(rf"{msgid} Completed")
    log = d.log()
    for n in (1, 2, 3):
        assert f"{msgid} bad{n}@test.example: error ignored: RFC 3461 DSN, failure " \
            "notify not requested" in log
    (bounce,) = _wait_report(d, "Mail delivery failed")
    # routed last-first, the latest failure named first (as exim4 4.96 writes it)
    assert "X-Failed-Recipients: bad4@test.example,\n  bad5@test.example\n" in bounce
    for n in (1, 2, 3):
        assert f"bad{n}@" not in bounce
    assert "Reporting-MTA: dns; mx.test.example\nOriginal-Envelope-ID: E+1\n\n" in bounce
    assert "\nOriginal-Recipient: rfc822;Bad5@test.example\nAction: failed\n" \
        "Final-Recipient: rfc822;bad5@test.example\nStatus: 5.0.0\n" in bounce
    assert "\nAction: failed\nFinal-Recipient: rfc822;bad4@test.example\n" in bounce
    # RET=HDRS: the headers come back, not the body (as Exim: text/rfc822-headers)
    assert "Content-type: text/rfc822-headers\n\nReturn-path: <s@test.example>\n" in bounce
    assert "Subject: hello\n" in bounce and "the body text" not in bounce


def test_ret_full_returns_the_body(start, tmp_path):
    d = start()
    _send(d, "<s@test.example> RET=FULL", ["<bad@test.example> NOTIFY=FAILURE"])
    (bounce,) = _wait_report(d, "Mail delivery failed")
    assert "Content-type: message/rfc822\n" in bounce and "the body text" in bounce


def test_dsn_from_sets_the_from_of_reports(start, tmp_path):
    d = start("d", extra="dsn_from = Postmaster of $primary_hostname "
                "<postmaster@$qualify_domain>")
    _send(d, "<s@test.example>", ["<bad@test.example>", "<u@test.example> NOTIFY=SUCCESS"])
    (bounce,) = _wait_report(d, "Mail delivery failed")
    (report,) = _wait_report(d, "Delivery Status Notification")
    for text in (bounce, report):
        assert "\nFrom: Postmaster of mx.test.example <postmaster@test.example>\n" in text


def test_dsn_from_that_fails_to_expand_uses_the_default(start, tmp_path):
    d = start("d", extra="dsn_from = ${lookup{x}lsearch{DIR/missing}}")
    _send(d, "<s@test.example>", ["<bad@test.example>"])
    (bounce,) = _wait_report(d, "Mail delivery failed")
    assert "\nFrom: Mail Delivery System <Mailer-Daemon@test.example>\n" in bounce
    assert "Failed to expand dsn_from (using default): " in d.log("panic")


# --------------------------------------------------------------------- delays

def test_delay_warnings_follow_notify(start, tmp_path):
    d = start("d", extra="delay_warning = 2s:1h")
    started = time.monotonic()
    told = _send(d, "<s@test.example> ENVID=W1", [
        "<slow1@test.example> NOTIFY=NEVER", "<slow2@test.example> NOTIFY=SUCCESS,FAILURE",
        "<slow3@test.example> NOTIFY=DELAY ORCPT=rfc822;Slow3@test.example",
        "<slow4@test.example>"])
    silent = _send(d, "<s@test.example>", ["<slow5@test.example> NOTIFY=NEVER",
                                           "<slow6@test.example> NOTIFY=FAILURE"])
    d.wait_for_log(rf"{told} == slow\d@test\.example .*not now", count=4)
    d.wait_for_log(rf"{silent} == slow\d@test\.example .*not now", count=2)
    time.sleep(max(0.0, started + 2.3 - time.monotonic()))
    assert d.run("-qf").returncode == 0
    (warning,) = _wait_report(d, "Warning:")
    assert f"Subject: Warning: message {told} delayed" in warning
    shown = re.findall(r"(?m)^  (slow\d)@test\.example$", warning)
    assert sorted(shown) == ["slow3", "slow4"]
    assert "Reporting-MTA: dns; mx.test.example\nOriginal-Envelope-ID: W1\n\n" in warning
    assert "\n\nOriginal-Recipient: rfc822;Slow3@test.example\nAction: delayed\n" \
        "Final-Recipient: rfc822;slow3@test.example\nStatus: 4.0.0\n" in warning
    # the message nobody wants to hear about was not counted as warned either
    assert (d.spool / "input" / f"{silent}-H").read_text().split("\n")[3].endswith(" 0")
    header = (d.spool / "input" / f"{told}-H").read_text()
    assert header.split("\n")[3].endswith(" 1")
    # the rewritten -H keeps the requests
    assert "\n-dsn_envid W1\n" in header
    assert "\nslow3@test.example rfc822;Slow3@test.example 25,16  0,-1#3\n" in header


def test_dsn_lasthop_keeps_the_requests_here(start, tmp_path):
    with SmtpSink(dsn=True) as dsn_sink:
        d = start("d", dsn_port=dsn_sink.port, lasthop=True)
        msgid = _send(d, "<s@test.example> ENVID=L1", [
            "<u@dsn.example> NOTIFY=SUCCESS ORCPT=rfc822;u@dsn.example"])
        assert dsn_sink.wait_for(1), d.diagnostics()
        d.wait_for_log(rf"{msgid} Completed")
        cmds = [c for c in dsn_sink.commands if c.startswith(("MAIL", "RCPT"))]
        assert re.fullmatch(r"MAIL FROM:<s@test\.example> SIZE=\d+", cmds[0]), cmds
        assert cmds[1:] == ["RCPT TO:<u@dsn.example>"]
        (report,) = _wait_report(d, "Delivery Status Notification")
    assert "\n<u@dsn.example> (relayed via non DSN router)\n" in report
    assert "Final-Recipient: rfc822;u@dsn.example\nStatus: 2.0.0\n" \
        "Remote-MTA: dns; 127.0.0.1\n" in report


def test_delay_warning_names_the_remote_host(start):
    with SmtpSink(mode="rcpt", code=451, text="try later") as sink:
        d = start("d", plain_port=sink.port, extra="delay_warning = 2s:1h")
        started = time.monotonic()
        msgid = _send(d, "<s@test.example>", [
            "<p@plain.example> NOTIFY=DELAY ORCPT=rfc822;p@plain.example"])
        d.wait_for_log(rf"{msgid} == p@plain\.example ")
        time.sleep(max(0.0, started + 2.3 - time.monotonic()))
        assert d.run("-qf").returncode == 0
        (warning,) = _wait_report(d, "Warning:")
    assert "\n\nOriginal-Recipient: rfc822;p@plain.example\nAction: delayed\n" \
        "Final-Recipient: rfc822;p@plain.example\nStatus: 4.0.0\n" \
        "Remote-MTA: dns; 127.0.0.1\nDiagnostic-Code: smtp; 451 try later\n" in warning
