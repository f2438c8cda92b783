"""pymta -bh (host checking) and -bs (local SMTP on stdin/stdout), run as subprocesses.

The -bh transcript in tests/data/cli_bh/ was produced by Exim 4.96 for the same
configuration and input; only the parts pymta knowingly does differently (version string,
date, message ids, EHLO extensions pymta does not offer) are normalised.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from pymta import __version__
from pymta.cli.args import parse_args
from pymta.message.received import DEFAULT_RECEIVED_HEADER_TEXT
from pymta.smtp.local import parse_host_argument
from tests.support.daemon import run_pymta
from tests.support.dns import DnsServer
from tests.support.wait import wait_until

DATA = Path(__file__).resolve().parent.parent / "data" / "cli_bh"
_ID = re.compile(r"\b[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}\b")
_UNOFFERED = {"STARTTLS"}
# Exim's default Received: text (pymta's names pymta), so that S= in the log is Exim's
_EXIM_RECEIVED = "received_header_text = " + DEFAULT_RECEIVED_HEADER_TEXT.replace(
    f"(pymta {__version__})", "(Exim $version_number)").replace(
    "\n", "\\n").replace("\t", "\\t") + "\n"


def _config(tmp_path, name="header_checks.conf", extra=""):
    spool = tmp_path / "spool"
    spool.mkdir(exist_ok=True)
    text = (DATA / name).read_text().replace("SPOOL", str(spool))
    path = tmp_path / "pymta.conf"
    path.write_text(extra + text)
    return path, spool


def _normal_stdout(text: str) -> list[str]:
    out = []
    for line in text.replace("\r\n", "\n").split("\n"):
        if line.startswith("220 "):
            # "Exim 4.96" there, "pymta <its release>" here
            line = re.sub(r"ESMTP (Exim 4\.96|pymta \d+\.\d+\.\d+) .*",
                          "ESMTP <version> <date>", line)
        if line.startswith("250-") and line[4:] in _UNOFFERED:
            continue
        out.append(_ID.sub("<id>", line))
    return out


def _log_lines(stderr: str) -> list[str]:
    return [_ID.sub("<id>", ln) for ln in stderr.splitlines() if ln.startswith("LOG:")]


def _rcpt_time_lines(stderr: str) -> list[str]:
    """:func:`_log_lines`, except that Exim still shows the previous message's id on the
    next message's MAIL/RCPT-time lines, where pymta has no message id yet."""
    return [re.sub(r"^LOG: <id> (?=RCPT |H=.* rejected (RCPT|MAIL) )", "LOG: ", ln)
            for ln in _log_lines(stderr)]


def test_bh_matches_exim_transcript(tmp_path):
    conf, spool = _config(tmp_path, extra=_EXIM_RECEIVED)
    proc = run_pymta(["-bh", "1.2.3.4"], conf,
                     input=(DATA / "header_checks.in").read_bytes())
    assert proc.returncode == 0, proc.stderr
    assert _normal_stdout(proc.stdout) == \
        _normal_stdout((DATA / "header_checks.exim.out").read_text())
    assert _log_lines(proc.stderr) == \
        _log_lines((DATA / "header_checks.exim.log").read_text())
    # Nothing was spooled, delivered or logged for real.
    assert not (spool / "mbox").exists()
    assert not list(spool.glob("input/*-H"))
    assert not (spool / "mainlog").exists()


def test_bh_banner_port_and_eof(tmp_path):
    conf, _ = _config(tmp_path, extra="acl_smtp_connect = acl_conn\n")
    conf.write_text(conf.read_text().replace(
        "begin acl\n", "begin acl\nacl_conn:\n  deny hosts = 10.0.0.0/8\n  accept\n"))
    proc = run_pymta(["-bh", "1.2.3.4.1234"], conf, input=b"HELO x.y\r\nMAIL FROM:<a@b.c>\r\n")
    lines = proc.stdout.replace("\r\n", "\n").split("\n")
    assert lines[:5] == ["", "**** SMTP testing session as if from host 1.2.3.4",
                         "**** but without any ident (RFC 1413) callback.",
                         "**** This is not for real!", ""]
    assert "421 test.example lost input connection" in lines
    assert _log_lines(proc.stderr) == [
        "LOG: unexpected disconnection while reading SMTP command from (x.y) [1.2.3.4] D=0s"]
    # The connect ACL sees the pretended client address.
    proc = run_pymta(["-bh", "10.1.2.3"], conf, input=b"QUIT\r\n")
    assert "550 Administrative prohibition" in proc.stdout
    assert "rejected connection in \"connect\" ACL" in proc.stderr


def test_bh_verify_arc_outside_data_is_temporary_error(tmp_path):
    conf, _ = _config(tmp_path, extra="acl_smtp_mail = acl_mail\n")
    text = conf.read_text().replace("begin acl\n",
                                    "begin acl\nacl_mail:\n"
                                    "  deny !verify = ${if eq{1}{1}{arc}}\n  accept\n")
    conf.write_text(text)
    proc = run_pymta(["-bh", "1.2.3.4"], conf, input=b"HELO x.y\r\nMAIL FROM:<a@b.c>\r\n"
                     b"QUIT\r\n")
    assert "451 Temporary local problem - please try later" in proc.stdout
    assert "cannot verify arc in ACL for MAIL" in proc.stderr


def test_bh_argument_errors(tmp_path):
    conf, _ = _config(tmp_path)
    proc = run_pymta(["-bh", "not-an-ip"], conf, input=b"")
    assert proc.returncode == 1 and "not a valid IP address" in proc.stderr
    assert parse_host_argument("::1") == ("::1", 0)
    assert parse_host_argument("2001:db8::1.25") == ("2001:db8::1", 25)
    assert parse_host_argument("192.0.2.1.587") == ("192.0.2.1", 587)
    assert parse_args(["-bh", "1.2.3.4"]).host_check == "1.2.3.4"
    assert parse_args(["-bs"]).action == "bs"


BS_INPUT = (b"EHLO x.y\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<u@test.example>\r\nDATA\r\n"
            b"From: a@b.c\r\nTo: u@test.example\r\n\r\nbody\r\n.\r\nQUIT\r\n")


def test_bs_spools_and_delivers_immediately_with_odi(tmp_path):
    conf, spool = _config(tmp_path)
    proc = run_pymta(["-odi", "-bs"], conf, input=BS_INPUT)
    assert proc.returncode == 0, proc.stderr
    m = re.search(r"^250 OK id=(\S+)\r$", proc.stdout, re.M)
    assert m, proc.stdout
    msgid = m.group(1)
    # Exim names the calling user in the EHLO reply of a local session
    import pwd
    login = pwd.getpwuid(os.getuid()).pw_name
    assert re.search(rf"^250-\S+ Hello {login} at x\.y\r$", proc.stdout, re.M), proc.stdout
    log = (spool / "mainlog").read_text()
    # Local protocol, no H= field, the caller's login as U=.
    assert re.search(rf"{msgid} <= \S+ U=\S+ P=local-esmtp S=\d+", log), log
    assert f"{msgid} Completed" in log
    mbox = (spool / "mbox").read_text()
    assert "with local-esmtp" in mbox and "body" in mbox


def test_bs_odq_queues_only_and_helo_protocol(tmp_path):
    conf, spool = _config(tmp_path)
    proc = run_pymta(["-odq", "-bs"], conf, input=BS_INPUT.replace(b"EHLO", b"HELO"))
    msgid = re.search(r"^250 OK id=(\S+)\r$", proc.stdout, re.M).group(1)
    assert (spool / "input" / f"{msgid}-H").exists()
    assert not (spool / "mbox").exists()
    assert "P=local-smtp" in (spool / "mainlog").read_text()


def test_bs_background_delivery_by_default(tmp_path):
    conf, spool = _config(tmp_path)
    proc = run_pymta(["-bs"], conf, input=BS_INPUT)
    assert proc.returncode == 0 and "250 OK id=" in proc.stdout
    assert wait_until(lambda: (spool / "mbox").exists(), timeout=10)


def test_bs_data_acl_applies(tmp_path):
    conf, spool = _config(tmp_path)
    proc = run_pymta(["-odq", "-bs"], conf,
                     input=BS_INPUT.replace(b"To: u@test.example", b"To: other@test.example"))
    assert "550 Administrative prohibition" in proc.stdout
    assert "bcc recipient detected" in (spool / "rejectlog").read_text()


def test_local_caller_sender_rules(tmp_path):
    from pymta.config import load_config
    from pymta.smtp.local import LocalCaller
    untrusted = LocalCaller("joe", 1000, 1000, "Joe", "test.example", trusted=False)
    assert untrusted.envelope_sender("boss@elsewhere.example") == "joe@test.example"
    assert untrusted.envelope_fields()["sender_set_by_caller"] is False
    assert untrusted.envelope_sender("") == ""        # <> is always allowed
    assert untrusted.envelope_fields()["sender_set_by_caller"] is False   # Sender: rules
    conf = tmp_path / "uss.conf"
    conf.write_text("untrusted_set_sender = ^$sender_ident- : list@test.example\n")
    allowed = LocalCaller("joe", 1000, 1000, "Joe", "test.example", trusted=False,
                          config=load_config(str(conf)))
    assert allowed.envelope_sender("joe-news@elsewhere.example") == \
        "joe-news@elsewhere.example"
    assert allowed.envelope_sender("list") == "list@test.example"
    assert allowed.envelope_sender("ann-news@elsewhere.example") == "joe@test.example"
    trusted = LocalCaller("root", 0, 0, "", "test.example", trusted=True)
    assert trusted.envelope_sender("boss@elsewhere.example") == "boss@elsewhere.example"
    assert trusted.envelope_sender("bare") == "bare@test.example"
    assert trusted.envelope_sender("") == ""


def test_bs_untrusted_sender_replaced_in_session(tmp_path):
    """In-process: an untrusted -bs caller's MAIL address is ignored for the envelope."""
    import io

    from pymta.config import load_config
    from pymta.smtp.local import LocalCaller, run_stdio_session
    conf, spool = _config(tmp_path)
    cfg = load_config(str(conf))
    ids = []

    class Log:
        lines = []

        def main(self, text, msgid=None, **kw):
            self.lines.append(text)
        reject = panic = main

        def msglog(self, *a, **k):
            pass

    out = io.BytesIO()
    caller = LocalCaller("joe", 1000, 1000, "Joe", "test.example", trusted=False)
    run_stdio_session(cfg, Log(), io.BytesIO(BS_INPUT), out, local_caller=caller,
                      notify=ids.append)
    assert b"250 OK id=" in out.getvalue() and len(ids) == 1
    from pymta.spool.files import read_header
    msg = read_header(str(spool), ids[0])
    assert msg.sender == "joe@test.example"
    assert any("<= joe@test.example U=joe P=local-esmtp" in ln for ln in Log.lines)


def test_bh_prdr_matches_exim_transcript(tmp_path):
    """PRDR (prdr_enable, acl_smtp_data_prdr): the 353, the per-recipient replies, the
    final "message accepted [for some recipients]", the DATA ACL's verdict after them,
    and the PRDR log lines, as Exim 4.96 gave them for the same input."""
    conf, _ = _config(tmp_path, name="prdr.conf", extra=_EXIM_RECEIVED)
    proc = run_pymta(["-bh", "1.2.3.4"], conf, input=(DATA / "prdr.in").read_bytes())
    assert proc.returncode == 0, proc.stderr
    assert _normal_stdout(proc.stdout) == \
        _normal_stdout((DATA / "prdr.exim.out").read_text())
    assert _rcpt_time_lines(proc.stderr) == \
        _rcpt_time_lines((DATA / "prdr.exim.log").read_text())


def test_bh_dialog_matches_exim_transcript(tmp_path):
    """A session through the everyday parts of the SMTP dialogue and the ACLs (HELP,
    HELO required, VRFY/EXPN ACLs, MAIL/RCPT/predata verdicts and messages, relay
    control with verify = recipient, drop), replies and log lines as Exim 4.96's."""
    conf, _ = _config(tmp_path, name="dialog.conf", extra=_EXIM_RECEIVED)
    proc = run_pymta(["-bh", "1.2.3.4"], conf, input=(DATA / "dialog.in").read_bytes())
    assert proc.returncode == 0, proc.stderr
    assert _normal_stdout(proc.stdout) == \
        _normal_stdout((DATA / "dialog.exim.out").read_text())
    assert _rcpt_time_lines(proc.stderr) == \
        _rcpt_time_lines((DATA / "dialog.exim.log").read_text())


def test_bh_bdat_matches_exim_transcript(tmp_path):
    """A CHUNKING dialogue (recorded with exim4 -bh and the same configuration): chunks
    with a NOOP between them, dots kept, DATA and BDAT after the message, BDAT 0 LAST,
    the DATA ACL refusing chunked messages, K on the <= line."""
    conf, spool = _config(tmp_path, extra=_EXIM_RECEIVED)
    proc = run_pymta(["-bh", "1.2.3.4"], conf, input=(DATA / "bdat.in").read_bytes())
    assert proc.returncode == 0, proc.stderr
    assert _normal_stdout(proc.stdout) == \
        _normal_stdout((DATA / "bdat.exim.out").read_text())
    assert _log_lines(proc.stderr) == _log_lines((DATA / "bdat.exim.log").read_text())
    assert not list(spool.glob("input/*-H"))


def test_bh_bdat_size_beyond_memory_is_read_in_pieces(tmp_path):
    """A BDAT size no machine could hold (the client's word only) is not read from
    standard input in one piece: the session reads on until the input ends (Exim's
    421 and log line), instead of failing with MemoryError; a chunk bigger than one
    read still arrives whole."""
    conf, _ = _config(tmp_path, extra=_EXIM_RECEIVED)
    head = b"EHLO x.y\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<u@test.example>\r\n"
    proc = run_pymta(["-bh", "1.2.3.4"], conf, input=head + b"BDAT 99999999999\r\nabc")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout.replace("\r\n", "\n").endswith("421 Lost incoming connection\n")
    assert _log_lines(proc.stderr) == [
        "LOG: SMTP connection from (x.y) [1.2.3.4] lost while reading message data (header)"]
    body = b"From: a@b.c\r\nTo: u@test.example\r\n\r\n" + (b"y" * 998 + b"\r\n") * 200
    proc = run_pymta(["-bh", "1.2.3.4"], conf,
                     input=head + b"BDAT %d LAST\r\n" % len(body) + body + b"QUIT\r\n")
    assert f"250- {len(body)} byte chunk, total {len(body)}" in proc.stdout, proc.stderr
    assert "221 " in proc.stdout


def test_bh_comments_on_acls_and_lists_as_exim(tmp_path):
    """Without -d, -bh says what the ACLs do on standard error (">>> " lines): each ACL
    and statement (at the line Exim names), each condition, each list match (named lists
    first, a remembered answer "cached"), a nested ACL indented, how the ACL ended.
    tests/data/cli_bh/comments.exim.err is Exim 4.96's output for the same file and
    input, the main options' host lists ("host in OPTION?") included."""
    conf, _ = _config(tmp_path, name="comments.conf")
    proc = run_pymta(["-bh", "192.0.2.1"], conf, input=(DATA / "comments.in").read_bytes())
    assert proc.returncode == 0, proc.stderr
    exim = (DATA / "comments.exim.err").read_text().splitlines()
    ours = [ln.replace(str(conf), "CONF") for ln in proc.stderr.splitlines()]
    assert ours == exim


def test_bh_with_d_traces_as_d_says(tmp_path):
    """-d chooses the trace: no ">>> " comments then."""
    conf, _ = _config(tmp_path, name="comments.conf")
    proc = run_pymta(["-d-all+acl", "-bh", "192.0.2.1"], conf,
                     input=(DATA / "comments.in").read_bytes())
    assert proc.returncode == 0, proc.stderr
    assert 'using ACL "acl_rcpt"' in proc.stderr
    assert ">>> " not in proc.stderr


def test_bh_comments_on_verification_routing_and_rewriting_as_exim(tmp_path):
    """-bh's comments while verifying recipients (each address routed, including one
    an alias generated, each router called and its answer, "no more routers"), on the
    client's host-name lookup, the main options' host lists and the rewriting rules
    tried when the data arrives: tests/data/cli_bh/verify.exim.err is Exim 4.96's for
    the same configuration and session.  The client's address has no name (the DNS is
    a loopback server whose reverse zone is empty: no PTR, so the system resolver is
    asked; a server that knew no zone would refuse, a temporary error)."""
    from tests.support.dns import DnsServer
    aliases = tmp_path / "aliases"
    aliases.write_text((DATA / "verify.aliases").read_text())
    conf = tmp_path / "verify.conf"
    conf.write_text((DATA / "verify.conf").read_text().replace("ALIASES", str(aliases)))
    with DnsServer({"2.0.192.in-addr.arpa": ""}) as dns_server:
        proc = run_pymta(["-bh", "192.0.2.1"], conf,
                         input=(DATA / "verify.in").read_bytes(),
                         env={"PYMTA_DNS_SERVER": f"127.0.0.1:{dns_server.port}"})
    assert proc.returncode == 0, proc.stderr
    ours = [_ID.sub("<id>", ln.replace(str(conf), "CONF")) for ln in proc.stderr.splitlines()]
    exim = [_ID.sub("<id>", ln) for ln in (DATA / "verify.exim.err").read_text().splitlines()]
    # the Received: header names pymta, two bytes longer than Exim's
    assert ours[-1] == exim[-1].replace("S=227", "S=229")
    assert ours[:-1] == exim[:-1]



def _matches_exim_transcript(tmp_path, name: str, env: dict[str, str] | None = None,
                             host: str = "1.2.3.4", conf_name: str | None = None) -> None:
    """pymta -bh on tests/data/cli_bh/NAME.conf and NAME.in gives Exim 4.96's replies
    (NAME.exim.out) and standard error (NAME.exim.err: log lines and ">>>" comments).
    Lines 1 and 2 of the configuration held keep_environment and exim_user when Exim
    recorded it; here line 1 gets Exim's Received: text, so that lines and S= agree.
    ``conf_name``: the configuration is CONF_NAME.conf (shared by several inputs)."""
    text = (DATA / f"{conf_name or name}.conf").read_text().split("\n", 1)[1]
    spool = tmp_path / "spool"
    spool.mkdir()
    conf = tmp_path / f"{name}.conf"
    conf.write_text(_EXIM_RECEIVED + text.replace("SPOOL", str(spool)))
    proc = run_pymta(["-bh", host], conf, input=(DATA / f"{name}.in").read_bytes(), env=env)
    assert proc.returncode == 0, proc.stderr
    assert _normal_stdout(proc.stdout) == \
        _normal_stdout((DATA / f"{name}.exim.out").read_text())
    ours = [_ID.sub("<id>", ln.replace(str(conf), "CONF")) for ln in proc.stderr.splitlines()]
    exim = [_ID.sub("<id>", ln)
            for ln in (DATA / f"{name}.exim.err").read_text().splitlines()]
    assert ours == exim


@pytest.mark.parametrize("name", [
    "lost_data_header", "lost_data_after_header", "lost_data_crlf_then_lf",
    "lost_data_bdat_header", "lost_data_bdat_between_chunks", "lost_data_bdat_body"])
def test_bh_lost_in_message_data_says_where_as_exim(tmp_path, name):
    """The client goes away in the middle of a message: Exim's log line says how far
    the header section had come, " (header)" in a header line, " (after header)" just
    after a complete one (a bare LF after a CRLF first line does not complete one), and
    nothing in the body.  Between two BDAT chunks of a message the message is still
    being read: "421 Lost incoming connection" and the message-data line, not the
    command-reading ones."""
    _matches_exim_transcript(tmp_path, name, conf_name="lost_data")


def test_bh_rcpt_option_scan_matches_exim_transcript(tmp_path):
    """RCPT after EHLO as Exim 4.96 reads its options off the end: a last word without
    "=" is joined on with "=" ("<a b@...>" is taken as "<a=b@...>", "<x@y> FOO" is
    refused as "<x@y>=FOO"), DSN options it took off are not quoted in the reply, the
    white space before the junk is quoted as sent.  After HELO nothing of this."""
    _matches_exim_transcript(tmp_path, "rcpt_options")


def test_bh_local_parts_match_exim_transcript(tmp_path):
    """MAIL and RCPT local parts read as Exim 4.96 reads them: an RFC 822 special
    (":", ",", ";", "[", "]", a quote inside a word) ends an unquoted local part and
    gets '"@" or "." expected' (a bare address: Exim's phrase error, ";" its group
    end), a backslash takes the next character in ("a\\@b", "a\\ b"), white space
    round the dots is dropped, a domain ends at a special before an "@"."""
    _matches_exim_transcript(tmp_path, "local_parts")


def test_bh_command_white_space_matches_exim_transcript(tmp_path):
    """Only a space ends a command's name ("EHLO<tab>x" and "NOOP<tab>x" are unknown
    commands to Exim 4.96); all white space at the end of a line is dropped ("NOOP<tab>"
    is NOOP, $smtp_command has none)."""
    _matches_exim_transcript(tmp_path, "whitespace")


def test_bh_invalid_helo_too_many_errors_matches_exim_transcript(tmp_path):
    """A HELO/EHLO refused for its argument counts towards smtp_max_synprot_errors, but
    Exim 4.96 gives its own 501: the one too many gets no "Too many syntax or protocol
    errors" line (the session just ends, with the log line), and none of them is an
    "SMTP syntax error" log line."""
    _matches_exim_transcript(tmp_path, "helo_errors")


def test_bh_etrn_matches_exim_transcript(tmp_path):
    """ETRN under -bh: an ETRN the ACL accepts gets "250 OK" and nothing is run (no
    "458 Internal failure" for want of a queue runner), a refused one 458, one
    without "#" (and no smtp_etrn_command) 501, as Exim 4.96 answered."""
    _matches_exim_transcript(tmp_path, "etrn")


def test_bh_domain_comments_match_exim_transcript(tmp_path):
    """Comments before, between and after the labels of a MAIL or RCPT domain are
    passed over, as Exim 4.96 passes over them (pymta refused "<u@(c)mx.example>" as
    "domain missing or malformed")."""
    _matches_exim_transcript(tmp_path, "domain_comments")


def _matches_exim_transcript_with_dns(tmp_path, name: str, zones: dict[str, str],
                                      host: str = "1.2.3.4", servfail: tuple[str, ...] = ()
                                      ) -> None:
    """:func:`_matches_exim_transcript` with ``zones`` served by a DNS server on a
    loopback port (exim4 asked the same zones when it recorded NAME)."""
    with DnsServer(zones, servfail=servfail) as dns_server:
        _matches_exim_transcript(tmp_path, name,
                                 env={"PYMTA_DNS_SERVER": f"127.0.0.1:{dns_server.port}"},
                                 host=host)


def test_bh_fromline_and_8bitmime_off_match_exim_transcript(tmp_path):
    """ignore_fromline_hosts: a UUCP "From " line before the headers is taken off and
    its sender (uucp_from_sender, qualified) replaces the envelope sender; a "From "
    line that does not match uucp_from_pattern starts the body.  Also what Exim does
    with the header block: white-space-only lines that end a header are dropped
    ($message_size leaves them out), a body with no blank line before it counts one
    in $message_linecount, a folded header logs its newline as "\\n".  With
    accept_8bitmime = false neither 8BITMIME nor SMTPUTF8 is offered, BODY= is
    ignored whatever its value, SMTPUTF8 is refused as not advertised."""
    _matches_exim_transcript(tmp_path, "fromline")


def test_bh_long_messages_and_refused_mail_match_exim_transcript(tmp_path):
    """Long ACL messages broken into reply lines where Exim breaks them (an extended
    code repeated on each line, the log keeping the first line of a message that has
    several), RCPTs after a refused MAIL not counted as protocol errors when
    PIPELINING was offered, the EHLO keywords in Exim's order, an address list's
    domain part traced as a domain list, smtp_accept_max_nonmail_hosts asked at the
    first command that counts."""
    _matches_exim_transcript(tmp_path, "replies")


def test_bh_smtp_return_error_details_match_exim_transcript(tmp_path):
    """smtp_return_error_details: the header checks tell the client why ("Rejected
    after DATA: ...", for header_sender the address that did not verify), unless the
    ACL gives its own message; header_sender tries Sender:, then Reply-To:, then From:
    lines ("verifying From: header address ..." in the comments)."""
    _matches_exim_transcript(tmp_path, "details")


def test_bs_from_line_with_ignore_fromline_local(tmp_path):
    """-bs: a "From " line before the headers is taken (its sender used, the caller
    being trusted here) only with ignore_fromline_local."""
    session = (b"EHLO x.y\r\nMAIL FROM:<s@test.example>\r\nRCPT TO:<u@test.example>\r\n"
               b"DATA\r\nFrom uucp@far.example Sat Dec  5 10:00:00 2026\r\n"
               b"To: u@test.example\r\n\r\nbody\r\n.\r\nQUIT\r\n")
    for extra, sender in (("ignore_fromline_local = true\n", "uucp@far.example"),
                          ("", "s@test.example")):
        conf, spool = _config(tmp_path, name="prdr.conf", extra=extra)
        proc = run_pymta(["-odq", "-bs"], conf, input=session)
        msgid = re.search(r"^250 OK id=(\S+)\r$", proc.stdout, re.M).group(1)
        header = (spool / "input" / f"{msgid}-H").read_text()
        assert f"\n<{sender}>\n" in header
        data = (spool / "input" / f"{msgid}-D").read_text()
        assert ("From uucp" in data) == (not extra)


def test_bh_client_text_in_log_lines_matches_exim_transcript(tmp_path):
    """What a client sent, in the protocol-error and dropped-call lines: tabs kept,
    control and 8-bit characters escaped as Exim escapes them."""
    _matches_exim_transcript(tmp_path, "printing")


def test_bh_addresses_are_read_as_exim_reads_them(tmp_path):
    """MAIL and RCPT addresses: which are refused and in what words (white space in a
    local part, labels of a domain, a domain that ends early, an unclosed bracket or
    quote, 8-bit domains without SMTPUTF8), as Exim 4.96 answered the same session."""
    _matches_exim_transcript(tmp_path, "addresses")


def test_bh_vrfy_and_expn_match_exim_transcript(tmp_path):
    """VRFY reads its address before the ACL runs (and says what is wrong with it as
    Exim does), logs a failure with the address as given; EXPN qualifies a bare local
    part, expands one level, skips routers with expn = false, and answers 553 for what
    it cannot expand.  $local_part of a quoted local part is without the quotes."""
    _matches_exim_transcript(tmp_path, "vrfy_expn")


def test_bh_mail_parameters_and_source_routes_match_exim_transcript(tmp_path):
    """MAIL's AUTH= is read whether AUTH was offered or not (ignored, and logged, from
    a client that did not authenticate; bad xtext refused); SIZE= is read as an
    unsigned number capped at 2147483647 (so "-1" is too big, logged "size>="), and
    $message_size is -1 when it is not a number; an obsolete source route is checked
    label by label before it is dropped; a bare address whose local part has white
    space in it is a phrase without "<"."""
    _matches_exim_transcript(tmp_path, "mailparams")


def test_bh_acl_trace_and_errors_match_exim_transcript(tmp_path):
    """The -bh trace shows a condition's or modifier's expanded argument under its
    "check" line when the text had something to expand (not for lists and acl, which
    expand it later); an ACL error (bad arguments, a failed expansion, a control or
    verify where it cannot be used, an unknown verb in an inline ACL) is "condition
    test error" with no "end of ACL" line, a 451 even from warn, and no paniclog
    line; logwrite drops leading white space."""
    _matches_exim_transcript(tmp_path, "acltrace")


def test_bh_client_text_with_print_topbitchars_matches_exim_transcript(tmp_path):
    """print_topbitchars: top-bit bytes in what a client sent are logged as they are;
    control characters are still escaped."""
    _matches_exim_transcript(tmp_path, "printing_topbit")


def test_bh_redirection_errors_match_exim_transcript(tmp_path):
    """A redirection with bad data (a :fail: or :defer: not allowed, a forbidden
    :blackhole:, an unclosed quote) is an error: VRFY cannot resolve the address,
    verify = recipient is an ACL error (451, the router's text in the log); an
    allowed ":defer: text" gives the client its text, for VRFY and for RCPT."""
    _matches_exim_transcript(tmp_path, "redirect_errors")


#: The zones behind tests/data/cli_bh/dnslists.* (Exim asked the same server, on port
#: 53 through a resolv.conf mounted over /etc/resolv.conf; 4.3.2.1.broken.test got
#: SERVFAIL).
DNSLIST_ZONES = {
    "bl.test": """
        4.3.2.1   IN A   127.0.0.2
        4.3.2.1   IN TXT "see http://bl.test/1.2.3.4"
    """,
    "dbl.test": """
        spam.example IN A 127.0.1.2
    """,
    "clean.test": "",
    "broken.test": "",
}


def test_bh_dnslists_trace_matches_exim_transcript(tmp_path):
    """The dnslists trace: each item checked, new lookups and cached answers (a
    deferral is kept too, with dns_again_means_nonexist asked), the negative answer
    kept for the zone's SOA minimum, a restriction that excludes the answer, what
    the answer means; an identical warn log_message is logged once per message."""
    _matches_exim_transcript_with_dns(tmp_path, "dnslists", DNSLIST_ZONES,
                                      servfail=("4.3.2.1.broken.test",))


def test_bh_ratelimit_trace_matches_exim_transcript(tmp_path):
    """The ratelimit trace: the condition's count and key, a new key or one found in
    the database, the unique= event set, readonly and noupdate, a leaky limit that is
    over (not stored), a rate computed before in the same message, and the rates
    themselves (the commands come within a second, so each event counts whole)."""
    _matches_exim_transcript(tmp_path, "ratelimit")


def test_bh_seen_trace_matches_exim_transcript(tmp_path):
    """The seen trace: readonly tests write nothing, a new key is created, a key
    found is updated (or left alone within its refresh time)."""
    _matches_exim_transcript(tmp_path, "seen")


def test_bh_debian_default_configuration_matches_exim_transcript(tmp_path):
    """A session against Debian's default configuration: a sender that does not
    verify (its domain has no MX or address records), so every RCPT is refused the
    same way and DATA's 503 repeats the reason; the trace of the routers ("more" is
    false), a sender verification reused, and the unknown commands that end the
    session (the last one logged as a syntax error too)."""
    _matches_exim_transcript_with_dns(
        tmp_path, "debian", {"example.org": "", "2.0.192.in-addr.arpa": ""}, "192.0.2.10")


#: The zones behind tests/data/cli_bh/debian_relay.*: the sender's domain has an MX,
#: the client's address a name that points back to it.
DEBIAN_RELAY_ZONES = {
    "example.org": "@ IN MX 10 mx\nmx IN A 192.0.2.25\n",
    "2.0.192.in-addr.arpa": "10 IN PTR client.example.org.\n",
    "client.example.org": "@ IN A 192.0.2.10\n",
}


def test_bh_debian_relay_session_matches_exim_transcript(tmp_path):
    """Debian's default configuration with a client whose name is known and a sender
    that verifies: a recipient accepted, one refused as a relay, one unknown, then a
    message; named lists remembered per recipient (not disturbed by the sender's
    verification) and per connection, ignore_target_hosts matched against each MX
    host's address, the HELO name not matched against helo_lookup_domains once the
    client's name is known."""
    _matches_exim_transcript_with_dns(tmp_path, "debian_relay", DEBIAN_RELAY_ZONES,
                                      "192.0.2.10")


#: The zones behind tests/data/cli_bh/helo_verify.*.
HELO_ZONES = {
    "example.org": "client IN A 192.0.2.10\nalias IN A 192.0.2.10\n",
    "2.0.192.in-addr.arpa": "10 IN PTR client.example.org.\n",
}


def test_bh_helo_verification_trace_matches_exim_transcript(tmp_path):
    """verify = helo traced as exim4 traces it: the client's host name, an address
    literal, a forward lookup of the HELO name that finds the client's address (with
    the DNSSEC lists Exim matches for it), and one that does not."""
    _matches_exim_transcript_with_dns(tmp_path, "helo_verify", HELO_ZONES, "192.0.2.10")


HOST_LOOKUP_ZONES = {
    "example.org": "client IN A 192.0.2.10\nbroken IN A 192.0.2.11\n",
    "2.0.192.in-addr.arpa": "10 IN PTR client.example.org.\n11 IN PTR broken.example.org.\n",
}


def test_bh_host_name_lookup_with_ptr_servfail_matches_exim_transcript(tmp_path):
    """A PTR lookup that meets a temporary DNS error: $host_lookup_deferred is 1 and no
    name is known (it is asked again at each need, as Exim does), a host list's name
    item does not match, verify = reverse_host_lookup defers."""
    _matches_exim_transcript_with_dns(tmp_path, "host_lookup_defer", HOST_LOOKUP_ZONES,
                                      "192.0.2.12", servfail=("12.2.0.192.in-addr.arpa",))


def test_bh_host_name_lookup_with_forward_servfail_matches_exim_transcript(tmp_path):
    """The PTR answers but the forward lookup of the name it gives meets a temporary
    error: the lookup defers as a whole ("temporary error for host name lookup")."""
    _matches_exim_transcript_with_dns(tmp_path, "host_lookup_defer_forward",
                                      HOST_LOOKUP_ZONES, "192.0.2.11",
                                      servfail=("broken.example.org",))


def test_bh_vrfy_addresses_and_comments_match_exim_transcript(tmp_path):
    """VRFY reads its address as MAIL and RCPT do (a phrase, quoted or not, before
    <address>), but what follows it is junk ("malformed address: X may not follow Y",
    at most 32 characters of X), "<>" names nobody, postmaster is qualified; comments
    in parentheses before and after an address are passed over; a quoted word that
    never closes is "unmatched doublequote"; MAIL's reply quotes the command without
    the parameters taken off its end."""
    _matches_exim_transcript(tmp_path, "vrfy_phrases")


def test_bh_verify_defers_match_exim_transcript(tmp_path):
    """Sender and recipient verification that routing defers (no callout): the
    recipient's rejection is logged with the router's text, a sender's with "Could not
    complete sender verify" after a line of its own ("sender verify defer for"), told
    once per message (the result is reused, "using cached sender verify result"); the
    client gets Exim's default 451 either way; defer_ok accepts, saying so in the
    trace; a warn statement logs that it was skipped."""
    _matches_exim_transcript(tmp_path, "verify_defer")
