"""pymta.logevents: the SMTP session and daemon lines in Exim's wording, written to the
log Exim writes them to and only when their log_selector item is on."""
from __future__ import annotations

from types import SimpleNamespace

from pymta.logevents import (
    CallDropped,
    CommandError,
    DaemonStarted,
    ExcessRecipients,
    InvalidHelo,
    LostConnection,
    QueueRun,
    Rejection,
    SizeRejection,
    SyncError,
    write_event,
)


class Recorder:
    """A LogWriter that keeps (log, text, msgid)."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str, str | None]] = []

    def main(self, text: str, msgid: str | None = None) -> None:
        self.lines.append(("main", text, msgid))

    def reject(self, text: str, msgid: str | None = None) -> None:
        self.lines.append(("reject", text, msgid))


def _config(selector: str = "") -> SimpleNamespace:
    return SimpleNamespace(main=SimpleNamespace(log_selector=selector))


H = "H=(helo.example) [192.0.2.1]"


def test_rejection_forms():
    assert Rejection(H, "RCPT <u@x.example>", "relay not permitted", "s@y.example").text() == \
        f"{H} F=<s@y.example> rejected RCPT <u@x.example>: relay not permitted"
    assert Rejection(H, "RCPT <u@x.example>", "try later", "", temporary=True).text() == \
        f"{H} F=<> temporarily rejected RCPT <u@x.example>: try later"
    assert Rejection(H, 'connection in "connect" ACL').text() == \
        f'{H} rejected connection in "connect" ACL'


def test_rejection_goes_to_the_rejectlog_with_its_message_id():
    log = Recorder()
    write_event(log, _config(), Rejection(H, "after DATA", "spam", "s@y"), "1abcde-000000-AB")
    assert log.lines == [("reject", f"{H} F=<s@y> rejected after DATA: spam",
                          "1abcde-000000-AB")]


def test_sync_errors_show_input_escaped():
    before = SyncError("input sent without waiting for greeting", H, b"EHLO x\r\n\x01")
    assert before.text() == ("SMTP protocol synchronization error (input sent without waiting "
                             f"for greeting): rejected connection from {H} "
                             'input="EHLO x\\r\\n\\x01"')
    after = SyncError("next input sent too soon: pipelining was not advertised", H,
                      b"RCPT TO:<a@b>\r\n", "MAIL FROM:<s@y>")
    assert after.text().endswith(f'rejected "MAIL FROM:<s@y>" {H} '
                                 'next input="RCPT TO:<a@b>\\r\\n"')


def test_dropped_calls_and_their_logs():
    log = Recorder()
    cfg = _config()
    write_event(log, cfg, CallDropped("[192.0.2.1]", "synprot", "xyz", ("EHLO", "MAIL")))
    # Exim: the verb only, in the main and the reject log (LOG_MAIN|LOG_REJECT)
    write_event(log, cfg, CallDropped("[192.0.2.1]", "nonmail", "VRFY postmaster"))
    write_event(log, cfg, CallDropped("[192.0.2.1]", "unknown", "FOO"))
    assert log.lines == [
        ("reject", "SMTP call from [192.0.2.1] dropped: too many syntax or protocol errors "
                   '(last command was "xyz",  C=EHLO,MAIL)', None),
        ("reject", 'SMTP call from [192.0.2.1] dropped: too many nonmail commands '
                   '(last was "VRFY")', None),
        ("reject", 'SMTP call from [192.0.2.1] dropped: too many unrecognized commands '
                   '(last was "FOO")', None)]


def test_selector_items_decide():
    cfg_off = _config("-size_reject -lost_incoming_connection -smtp_syntax_error -queue_run")
    log = Recorder()
    for event in (SizeRejection(H, "s@y", 200, 100, at_mail=True),
                  LostConnection("lost", "[192.0.2.1]", 3),
                  CommandError("MAIL FROM:<bad", H, "501 bad address", protocol=False),
                  QueueRun(1)):
        write_event(log, cfg_off, event)
    assert log.lines == []
    cfg_on = _config("+smtp_protocol_error +smtp_syntax_error")
    write_event(log, cfg_on, CommandError("DATA", H, "503 valid RCPT command must precede DATA",
                                          protocol=True))
    write_event(log, cfg_on, QueueRun(7, "-qf"))
    write_event(log, cfg_on, QueueRun(7, end=True))
    assert [text for _, text, _ in log.lines] == [
        f'SMTP protocol error in "DATA" {H} 503 valid RCPT command must precede DATA',
        "Start queue run: pid=7 -qf", "End queue run: pid=7"]


def test_other_session_lines():
    assert InvalidHelo("EHLO", "[192.0.2.1]", "").text() == (
        "rejected EHLO from [192.0.2.1]: syntactically invalid argument(s): "
        "(no argument given)")
    assert SizeRejection(H, "s@y", 5000, 1000, at_mail=False).text() == (
        f"rejected from <s@y> {H}: message too big: read=5000 max=1000")
    assert ExcessRecipients(H, "s@y", refused=False).text() == (
        f"too many recipients: excess temporarily rejected: sender=<s@y> {H}")
    # D= in Exim's time format: units that are zero are left out.
    assert LostConnection("command_timeout", "[192.0.2.1]", 3603).text() == (
        "SMTP command timeout on connection from [192.0.2.1] D=1h3s")
    assert LostConnection("data_timeout", "[192.0.2.1]", 65, "s@y").text() == (
        "SMTP data timeout (message abandoned) on connection from [192.0.2.1] F=<s@y> D=1m5s")
    assert LostConnection("lost_data", "[192.0.2.1]", 1).text() == (
        "SMTP connection from [192.0.2.1] lost while reading message data")


def test_daemon_started():
    assert DaemonStarted("0.1.0", 42, "", 1800, ("[127.0.0.1]:25",)).text() == (
        "pymta 0.1.0 daemon started: pid=42, -q30m, listening for SMTP on [127.0.0.1]:25")
    assert DaemonStarted("0.1.0", 42).text() == (
        "pymta 0.1.0 daemon started: pid=42, no queue runs, not listening for SMTP")


def test_client_text_is_escaped_as_exim_escapes_it():
    from pymta.logevents import client_text
    assert client_text("plain text\twith a tab") == "plain text\twith a tab"
    assert client_text("h\u00e9lo\x01\x7f\x0b\n") == "h\\303\\251lo\\001\\177\\v\\n"
    assert client_text("c\udcff") == "c\\377"          # a byte that was not UTF-8
    # exim4 4.96: rejected EHLO from [1.2.3.4]: syntactically invalid argument(s): h\303\251lo
    assert InvalidHelo("EHLO", "[1.2.3.4]", "h\u00e9lo").text() == \
        "rejected EHLO from [1.2.3.4]: syntactically invalid argument(s): h\\303\\251lo"
