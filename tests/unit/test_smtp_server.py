"""The sans-IO SMTP server engine, driven with byte strings (replies checked against
Exim 4.96's texts as observed with ``exim -bh``)."""
from __future__ import annotations

import pytest

from pymta.smtp.server import Reply, SmtpHandler, SmtpServer, format_reply, parse_path, size_param


class Recorder(SmtpHandler):
    def __init__(self, rcpt_reject=(), mail_reply=None, message_reply=None):
        self.messages: list[bytes] = []
        self.events = []
        self.rcpts: list[str] = []
        self.rcpt_reject = set(rcpt_reject)
        self.mail_reply = mail_reply
        self.message_reply = message_reply or Reply(250, "OK id=1")
        self.stop = False
        self.predata = None

    def on_mail(self, address, params):
        return self.mail_reply

    def on_rcpt(self, address, params):
        if address in self.rcpt_reject:
            return Reply(550, "bad domain")
        self.rcpts.append(address)
        return None

    def on_predata(self):
        return self.predata

    def on_message(self, data):
        self.messages.append(data)
        return self.message_reply

    def on_event(self, event):
        self.events.append(event)

    def should_stop(self):
        return self.stop


def make(**kw):
    h = kw.pop("handler", None) or Recorder()
    s = SmtpServer("test.example", h, host_address="127.0.0.1", **kw)
    assert s.greet("test.example ESMTP") == b"220 test.example ESMTP\r\n"
    return s, h


def lines(b: bytes) -> list[str]:
    return b.decode().split("\r\n")[:-1]


def ehlo(s):
    return lines(s.feed(b"EHLO client.example\r\n"))


def test_ehlo_advertises_size_8bitmime_pipelining_help():
    s, _ = make(size_limit=1000)
    assert ehlo(s) == ["250-test.example Hello client.example [127.0.0.1]", "250-SIZE 1000",
                       "250-8BITMIME", "250-PIPELINING", "250 HELP"]


def test_ehlo_extensions_are_extensible():
    s, _ = make(extensions=["DSN", "SMTPUTF8"])
    out = ehlo(s)
    assert "250-DSN" in out and "250-SMTPUTF8" in out and out[-1] == "250 HELP"


def test_helo_reply_and_no_pipelining():
    s, _ = make()
    assert lines(s.feed(b"HELO x.y\r\n")) == ["250 test.example Hello x.y [127.0.0.1]"]
    assert not s.pipelining_advertised


@pytest.mark.parametrize("cmd", [b"HELO\r\n", b"HELO a b\r\n", b"EHLO\r\n", b"EHLO a!b\r\n"])
def test_helo_syntax_errors(cmd):
    s, _ = make()
    verb = cmd[:4].decode()
    assert lines(s.feed(cmd)) == [f"501 Syntactically invalid {verb} argument(s)"]


def test_full_transaction_undoes_dot_stuffing_and_crlf():
    s, h = make()
    ehlo(s)
    out = s.feed(b"MAIL FROM:<a@b.c>\r\nRCPT TO:<x@y.z>\r\n")
    assert lines(out) == ["250 OK", "250 Accepted"]
    assert lines(s.feed(b"DATA\r\n")) == ['354 Enter message, ending with "." on a line by itself']
    out = s.feed(b"Subject: hi\r\n\r\n..leading dot\r\n.x\r\nend\r\n.\r\n")
    assert lines(out) == ["250 OK id=1"]
    assert h.messages == [b"Subject: hi\n\n.leading dot\nx\nend\n"]
    assert lines(s.feed(b"QUIT\r\n")) == ["221 test.example closing connection"]
    assert s.closed


def test_empty_message():
    s, h = make()
    ehlo(s)
    s.feed(b"MAIL FROM:<>\r\nRCPT TO:<x@y.z>\r\n")
    s.feed(b"DATA\r\n")
    assert lines(s.feed(b".\r\n")) == ["250 OK id=1"]
    assert h.messages == [b""]


def test_data_split_across_many_reads():
    s, h = make()
    ehlo(s)
    s.feed(b"MAIL FROM:<a@b.c>\r\nRCPT TO:<x@y.z>\r\n")
    s.feed(b"DATA\r\n")
    payload = b"line one\r\nline two\r\n.\r\n"
    out = b"".join(s.feed(payload[i:i + 1]) for i in range(len(payload)))
    assert lines(out) == ["250 OK id=1"]
    assert h.messages == [b"line one\nline two\n"]


@pytest.mark.parametrize("fake_end", [b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n"])
def test_smuggling_only_crlf_dot_crlf_ends_data(fake_end):
    s, h = make()
    ehlo(s)
    s.feed(b"MAIL FROM:<a@b.c>\r\nRCPT TO:<x@y.z>\r\n")
    s.feed(b"DATA\r\n")
    smuggled = b"body" + fake_end + b"MAIL FROM:<evil@x.y>\r\nRCPT TO:<v@y.z>\r\nDATA\r\n"
    out = s.feed(smuggled)
    assert out == b""           # still inside the first message
    assert lines(s.feed(b"tail\r\n.\r\n")) == ["250 OK id=1"]
    assert len(h.messages) == 1 and b"MAIL FROM:<evil@x.y>" in h.messages[0]


def test_pipelined_group_replies_together():
    s, h = make()
    ehlo(s)
    out = s.feed(b"MAIL FROM:<a@b.c>\r\nRCPT TO:<x@y.z>\r\nRCPT TO:<w@y.z>\r\nDATA\r\n")
    assert lines(out) == ["250 OK", "250 Accepted", "250 Accepted",
                          '354 Enter message, ending with "." on a line by itself']


def test_sync_error_input_after_data_before_354():
    s, h = make()
    ehlo(s)
    out = s.feed(b"MAIL FROM:<a@b.c>\r\nRCPT TO:<x@y.z>\r\nDATA\r\nSubject: x\r\n")
    assert lines(out)[-1] == "554 SMTP synchronization error"
    assert s.closed and h.messages == []
    assert any(e.name == "sync_error" for e in h.events)


def test_sync_error_pipelining_after_helo():
    s, h = make()
    out = s.feed(b"HELO x.y\r\nMAIL FROM:<a@b.c>\r\n")
    assert lines(out) == ["554 SMTP synchronization error"]
    assert s.closed


def test_sync_error_when_pipelining_not_advertised():
    s, h = make()
    s.feed(b"HELO x.y\r\n")
    out = s.feed(b"MAIL FROM:<a@b.c>\r\nRCPT TO:<x@y.z>\r\n")
    assert lines(out) == ["554 SMTP synchronization error"]
    ev = [e for e in h.events if e.name == "sync_error"][0]
    assert "not advertised" in ev.info["reason"]


def test_no_sync_check_when_disabled():
    s, h = make(enforce_sync=False)
    out = s.feed(b"HELO x.y\r\nMAIL FROM:<a@b.c>\r\n")
    assert lines(out) == ["250 test.example Hello x.y [127.0.0.1]", "250 OK"]


def test_input_before_banner_is_sync_error():
    h = Recorder()
    s = SmtpServer("test.example", h)
    s.feed(b"EHLO early\r\n")
    assert s.greet("hi") == b"554 SMTP synchronization error\r\n"
    assert s.closed
    assert "greeting" in h.events[0].info["reason"]


def test_mail_sequence_and_syntax_errors():
    s, _ = make()
    assert lines(s.feed(b"MAIL FROM:<a@b.c>\r\n")) == ["503 HELO or EHLO required"]
    ehlo(s)
    assert lines(s.feed(b"RCPT TO:<a@b>\r\n")) == ["503 sender not yet given"]
    s.feed(b"MAIL FROM:<a@b.c>\r\n")
    assert lines(s.feed(b"MAIL FROM:<a@b.c>\r\n")) == ["503 sender already given"]


def test_mail_before_helo_is_not_a_counted_protocol_error():
    # exim4 4.96 answers any number of them and still takes the EHLO after
    s, _ = make()
    for _ in range(5):
        assert lines(s.feed(b"MAIL FROM:<a@b.c>\r\n")) == ["503 HELO or EHLO required"]
    assert not s.closed
    ehlo(s)
    assert lines(s.feed(b"MAIL FROM:<a@b.c>\r\n")) == ["250 OK"]


def test_rcpts_after_a_refused_mail_are_not_counted_when_pipelining():
    s, h = make()
    ehlo(s)
    s.feed(b"MAIL FROM:<a@b.c> FOO=bar\r\n")          # refused: 501
    for _ in range(5):
        assert lines(s.feed(b"RCPT TO:<x@y.z>\r\n")) == ["503 sender not yet given"]
    assert not s.closed
    assert lines(s.feed(b"NOOP\r\n")) == ["250 OK"]
    # counted again after NOOP: with the MAIL's 501, the third is one too many
    s.feed(b"RCPT TO:<x@y.z>\r\nRCPT TO:<x@y.z>\r\n")
    assert not s.closed
    s.feed(b"RCPT TO:<x@y.z>\r\n")
    assert s.closed


def test_mail_unknown_parameter_is_malformed_address_like_exim():
    s, _ = make()
    ehlo(s)
    assert lines(s.feed(b"MAIL FROM:<a@b.c> FOO=bar\r\n")) == [
        "501 <a@b.c> FOO=bar: malformed address: FOO=bar may not follow <a@b.c> "]
    assert s.synprot_errors == 1       # Exim 4.96 counts it (tests/data/smtp_limits)


def test_mail_size_and_body_parameters():
    s, _ = make(size_limit=1000)
    ehlo(s)
    assert lines(s.feed(b"MAIL FROM:<a@b.c> SIZE=5000\r\n")) == [
        "552 Message size exceeds maximum permitted"]
    assert lines(s.feed(b"MAIL FROM:<a@b.c> BODY=foo\r\n")) == ["501 invalid data for BODY"]
    assert lines(s.feed(b"MAIL FROM:<a@b.c> BODY=8BITMIME SIZE=10\r\n")) == ["250 OK"]
    assert s.mail_params == {"BODY": "8BITMIME", "SIZE": "10"}



def test_mail_size_counts_only_ascii_digits():
    # int() would read Arabic-Indic or full-width digits, "1_000" and " 5000" as numbers
    for size in ("\u0665\u0660\u0660\u0660", "\uff15\uff10\uff10\uff10", "5_000", "5000x"):
        s, _ = make(size_limit=1000)
        ehlo(s)
        assert lines(s.feed(f"MAIL FROM:<a@b.c> SIZE={size}\r\n".encode())) == ["250 OK"]
    assert size_param({"SIZE": "5000"}) == 5000 and size_param({}) == 0

def test_rcpt_syntax_errors():
    s, _ = make()
    ehlo(s)
    s.feed(b"MAIL FROM:<a@b.c>\r\n")
    assert lines(s.feed(b"RCPT TO:<>\r\n")) == ["501 <>: missing or malformed local part"]
    assert lines(s.feed(b"RCPT TO:x\r\n")) == ["501 x: recipient address must contain a domain"]
    assert lines(s.feed(b"RCPT TO:<a@b> NOTIFY=NEVER\r\n")) == [
        "501 <a@b> NOTIFY=NEVER: malformed address: NOTIFY=NEVER may not follow <a@b> "]


def test_data_without_valid_rcpt_pipelined():
    s, _ = make(handler=Recorder(rcpt_reject={"x@bad.example"}))
    ehlo(s)
    out = s.feed(b"MAIL FROM:<a@b.c>\r\nRCPT TO:<x@bad.example>\r\nDATA\r\n")
    assert lines(out) == ["250 OK", "550 bad domain",
                          "503-All RCPT commands were rejected with this error:",
                          "503-bad domain", "503 Valid RCPT command must precede DATA"]
    assert s.synprot_errors == 0


def test_data_without_rcpt_not_after_rcpt():
    s, _ = make()
    ehlo(s)
    s.feed(b"MAIL FROM:<a@b.c>\r\n")
    assert lines(s.feed(b"DATA\r\n")) == ["503 valid RCPT command must precede DATA"]
    assert s.synprot_errors == 1


def test_too_many_synprot_errors_drops():
    s, _ = make()
    ehlo(s)
    s.feed(b"RCPT TO:<a@b>\r\n")
    s.feed(b"RCPT TO:<a@b>\r\n")
    s.feed(b"RCPT TO:<a@b>\r\n")
    assert lines(s.feed(b"RCPT TO:<a@b>\r\n")) == [
        "503-sender not yet given", "503 Too many syntax or protocol errors"]
    assert s.closed


def test_too_many_unknown_commands():
    s, h = make(max_synprot_errors=10)
    ehlo(s)
    for _ in range(3):
        assert lines(s.feed(b"FOO\r\n")) == ["500 unrecognized command"]
    assert lines(s.feed(b"FOO\r\n")) == ["500 Too many unrecognized commands"]
    assert s.closed and h.events[-1].name == "too_many_unknown"


def test_recipients_max():
    s, _ = make(recipients_max=2)
    ehlo(s)
    s.feed(b"MAIL FROM:<a@b.c>\r\n")
    assert lines(s.feed(b"RCPT TO:<a@b.c>\r\n")) == ["250 Accepted"]
    assert lines(s.feed(b"RCPT TO:<b@b.c>\r\n")) == ["250 Accepted"]
    assert lines(s.feed(b"RCPT TO:<c@b.c>\r\n")) == ["452 too many recipients"]
    assert s.recipients == ["a@b.c", "b@b.c"]


def test_message_size_limit_on_data():
    s, h = make(size_limit=100)
    ehlo(s)
    s.feed(b"MAIL FROM:<a@b.c>\r\nRCPT TO:<x@y.z>\r\n")
    s.feed(b"DATA\r\n")
    out = s.feed(b"x" * 200 + b"\r\n.\r\n")
    assert lines(out) == ["552 Message size exceeds maximum permitted"]
    assert h.messages == []
    # The transaction is over; a new one can start.
    assert lines(s.feed(b"MAIL FROM:<a@b.c>\r\n")) == ["250 OK"]


def test_huge_message_over_limit_is_not_kept_in_memory():
    s, h = make(size_limit=1000)
    ehlo(s)
    s.feed(b"MAIL FROM:<a@b.c>\r\nRCPT TO:<x@y.z>\r\n")
    s.feed(b"DATA\r\n")
    for _ in range(50):
        assert s.feed(b"y" * 9999 + b"\r\n") == b""
    assert len(s._data) < 20000
    assert lines(s.feed(b".\r\n")) == ["552 Message size exceeds maximum permitted"]


def test_misc_commands():
    s, _ = make()
    ehlo(s)
    assert lines(s.feed(b"NOOP\r\n")) == ["250 OK"]
    assert lines(s.feed(b"RSET\r\n")) == ["250 Reset OK"]
    assert lines(s.feed(b"VRFY a@b\r\n")) == ["252 Administrative prohibition"]
    assert lines(s.feed(b"EXPN a\r\n")) == ["550 Administrative prohibition"]
    assert lines(s.feed(b"ETRN x\r\n")) == ["458 Administrative prohibition"]
    assert lines(s.feed(b"HELP\r\n")) == [
        "214-Commands supported:", "214 AUTH HELO EHLO MAIL RCPT DATA NOOP QUIT RSET HELP"]


def test_rset_clears_transaction():
    s, _ = make()
    ehlo(s)
    s.feed(b"MAIL FROM:<a@b.c>\r\nRCPT TO:<x@y.z>\r\n")
    s.feed(b"RSET\r\n")
    assert s.sender is None and s.recipients == []
    assert lines(s.feed(b"MAIL FROM:<a@b.c>\r\n")) == ["250 OK"]


def test_mail_without_from_is_unrecognized():
    s, _ = make()
    ehlo(s)
    assert lines(s.feed(b"MAIL\r\n")) == ["500 unrecognized command"]
    assert lines(s.feed(b"MAIL TO:<a@b>\r\n")) == ["500 unrecognized command"]


def test_nul_and_non_utf8_and_long_lines():
    s, _ = make(max_synprot_errors=20, max_unknown_commands=20)
    ehlo(s)
    assert lines(s.feed(b"NO\x00OP\r\n")) == ["501 NUL characters are not allowed in SMTP commands"]
    assert lines(s.feed(b"N\xc3\xa9OP\r\n")) == ["500 unrecognized command"]
    # 8-bit bytes that are not UTF-8 are taken as they come, as Exim takes them
    assert lines(s.feed(b"MAIL FROM:<\xff@b.c>\r\n")) == ["250 OK"]
    assert lines(s.feed(b"RSET\r\n")) == ["250 Reset OK"]
    assert lines(s.feed(b"NOOP " + b"a" * 20000 + b"\r\n")) == ["500 line too long"]
    assert lines(s.feed(b"NOOP\r\n")) == ["250 OK"]


def test_long_line_arriving_in_pieces():
    s, _ = make(max_synprot_errors=20)
    ehlo(s)
    out = s.feed(b"NOOP " + b"a" * 17000)
    assert lines(out) == ["500 line too long"]
    assert s.feed(b"bbbb\r\nNOOP\r\n") == b"250 OK\r\n"


def test_bare_lf_command_terminator_accepted():
    s, _ = make()
    assert lines(s.feed(b"EHLO x\n"))[0].startswith("250-")


def test_stop_gives_421():
    s, h = make()
    ehlo(s)
    h.stop = True
    assert lines(s.feed(b"NOOP\r\n")) == [
        "421 test.example Service not available - closing connection"]
    assert s.closed


def test_handler_rejections_and_predata():
    h = Recorder(mail_reply=Reply(550, "no bad"))
    s, _ = make(handler=h)
    ehlo(s)
    assert lines(s.feed(b"MAIL FROM:<bad@b.c>\r\n")) == ["550 no bad"]
    assert s.sender is None
    h.mail_reply = None
    h.predata = Reply(550, "Administrative prohibition")
    s.feed(b"MAIL FROM:<a@b.c>\r\nRCPT TO:<x@y.z>\r\n")
    assert lines(s.feed(b"DATA\r\n")) == ["550 Administrative prohibition"]
    assert not s.in_data


def test_drop_reply_closes():
    h = Recorder(mail_reply=Reply(550, "go away", close=True))
    s, _ = make(handler=h)
    ehlo(s)
    s.feed(b"MAIL FROM:<a@b.c>\r\n")
    assert s.closed


def test_multiline_reply_format():
    assert format_reply(550, "a\nb") == b"550-a\r\n550 b\r\n"


def test_timeout_and_lost():
    s, h = make()
    assert s.timeout_reply() == b"421 test.example SMTP command timeout - closing connection\r\n"
    s2, h2 = make()
    s2.connection_lost()
    assert h2.events[-1].name == "lost"


@pytest.mark.parametrize("arg,role,address,error", [
    ("<a@b> SIZE=1", "sender", "a@b", None),
    ("a@b", "sender", "a@b", None),
    ("<>", "sender", "", None),
    ("<a@b.c", "sender", None, "'>' missing at end of address"),
    ("<a>", "sender", None, "sender address must contain a domain"),
    ("<a>", "recipient", None, "recipient address must contain a domain"),
    ("<Postmaster>", "recipient", "Postmaster@test.example", None),
    ("<@r1,@r2:z@a.b>", "recipient", "z@a.b", None),
    ('<"a b"@a.b>', "recipient", '"a b"@a.b', None),
    ("<a@[1.2.3.4]>", "recipient", None, "domain literals not allowed"),
    ("<a@b@c>", "recipient", None, "malformed address: @c> may not follow <a@b"),
    ("<a@b..c>", "recipient", None, "domain missing or malformed"),
    ("<a@>", "recipient", None, "domain missing or malformed"),
    ("<@a.b>", "recipient", None, "no local part"),
])
def test_parse_path_like_exim(arg, role, address, error):
    p = parse_path(arg, role, qualify_domain="test.example")
    assert (p.address, p.error) == (address, error)


def test_rcpt_address_errors_in_dialogue():
    s, h = make(max_synprot_errors=20)
    ehlo(s)
    assert lines(s.feed(b"MAIL FROM:<a>\r\n")) == ["501 <a>: sender address must contain a domain"]
    assert lines(s.feed(b"MAIL FROM:<a@b.c\r\n")) == [
        "501 <a@b.c: '>' missing at end of address"]
    s.feed(b"MAIL FROM: <a@b.c>\r\n")
    assert lines(s.feed(b"RCPT TO:<a@b@c>\r\n")) == [
        "501 <a@b@c>: malformed address: @c> may not follow <a@b"]
    assert lines(s.feed(b"RCPT TO:<postmaster>\r\n")) == ["250 Accepted"]
    assert h.rcpts == ["postmaster@test.example"]


def test_second_message_on_same_connection():
    s, h = make()
    ehlo(s)
    for i in range(2):
        s.feed(b"MAIL FROM:<a@b.c>\r\nRCPT TO:<x@y.z>\r\n")
        s.feed(b"DATA\r\n")
        assert lines(s.feed(b"m%d\r\n.\r\n" % i)) == ["250 OK id=1"]
    assert h.messages == [b"m0\n", b"m1\n"]


@pytest.mark.parametrize("name,ok", [
    ("a_b", False), ("[1.2.3.4]", True), ("a..b", True), ("-x", True), ("[IPv6:::1]", True),
    ("foo.bar.", True), ("1.2.3.4", True), ("é", False), ("[foo]", False),
    ("[1.2.3.400]", False), ("[1.2.3.4", False), ("x]", False), ("x/y", False)])
def test_helo_syntax_like_exim(name, ok):
    s, h = make()
    out = lines(s.feed(f"HELO {name}\r\n".encode()))
    if ok:
        assert out == [f"250 test.example Hello {name} [127.0.0.1]"]
    else:
        assert out == ["501 Syntactically invalid HELO argument(s)"]
        assert h.events[0].name == "helo_invalid"


def test_helo_allow_chars_and_junk_hosts():
    s, _ = make()
    s.helo_allow_chars = "_"
    assert lines(s.feed(b"HELO a_b\r\n"))[0].startswith("250 ")
    s, _ = make()
    s.helo_accept_junk = True
    assert lines(s.feed(b"HELO x/y\r\n"))[0].startswith("250 ")
    assert lines(s.feed(b"HELO\r\n")) == ["501 Syntactically invalid HELO argument(s)"]


def test_recipients_max_reject_gives_552():
    s, _ = make(recipients_max=1)
    s.recipients_max_reject = True
    ehlo(s)
    s.feed(b"MAIL FROM:<a@b.c>\r\nRCPT TO:<a@b.c>\r\n")
    assert lines(s.feed(b"RCPT TO:<b@b.c>\r\n")) == ["552 too many recipients"]


def test_helo_resets_transaction():
    s, _ = make()
    ehlo(s)
    s.feed(b"MAIL FROM:<a@b.c>\r\n")
    ehlo(s)
    assert s.sender is None
    assert lines(s.feed(b"MAIL FROM:<a@b.c>\r\n")) == ["250 OK"]


def test_pipelined_quit_after_data_end():
    s, h = make()
    ehlo(s)
    s.feed(b"MAIL FROM:<a@b.c>\r\nRCPT TO:<x@y.z>\r\nDATA\r\n")
    out = s.feed(b"body\r\n.\r\nQUIT\r\n")
    assert lines(out) == ["250 OK id=1", "221 test.example closing connection"]


@pytest.mark.parametrize("cmd,allowed", [(b"NOOP", 10), (b"RSET", 11), (b"HELP", 10)])
def test_too_many_nonmail_commands(cmd, allowed):
    s, h = make()
    ehlo(s)
    for _ in range(allowed):
        assert not lines(s.feed(cmd + b"\r\n"))[-1].startswith("554")
    assert lines(s.feed(cmd + b"\r\n")) == ["554 Too many nonmail commands"]
    assert s.closed and h.events[-1].name == "too_many_nonmail"


def test_nonmail_ehlo_has_one_free():
    s, _ = make()
    for _ in range(11):
        assert lines(s.feed(b"EHLO x\r\n"))[-1] == "250 HELP"
    assert lines(s.feed(b"EHLO x\r\n")) == ["554 Too many nonmail commands"]


def test_nonmail_check_can_be_off():
    s, _ = make(max_nonmail=0)
    ehlo(s)
    for _ in range(30):
        assert lines(s.feed(b"NOOP\r\n")) == ["250 OK"]


def test_extension_commands_plug_in():
    s, _ = make(extensions=["STARTTLS"])
    ehlo(s)
    assert lines(s.feed(b"STARTTLS\r\n")) == ["500 unrecognized command"]
    seen = []

    def starttls(server, arg):
        seen.append(arg)
        server.send_reply(Reply(220, "TLS go ahead"))
    s.extra_commands["STARTTLS"] = starttls
    assert lines(s.feed(b"STARTTLS\r\n")) == ["220 TLS go ahead"]
    assert seen == [""]


def test_rcpt_errors_before_mail_do_not_leak_into_data_reply():
    s, _ = make(handler=Recorder(rcpt_reject={"x@bad.example"}))
    ehlo(s)
    s.feed(b"RCPT TO:<a@b.c>\r\n")
    s.feed(b"MAIL FROM:<a@b.c>\r\nRCPT TO:<x@bad.example>\r\n")
    assert lines(s.feed(b"DATA\r\n"))[:2] == [
        "503-All RCPT commands were rejected with this error:", "503-bad domain"]


def test_unexpected_arguments():
    s, _ = make()
    ehlo(s)
    assert lines(s.feed(b"RSET x\r\n")) == ["501 unexpected argument data"]
    assert lines(s.feed(b"NOOP x\r\n")) == ["250 OK"]
    assert lines(s.feed(b"DATA x\r\n")) == ["501 unexpected argument data"]
    assert lines(s.feed(b"QUIT x\r\n")) == ["501 unexpected argument data"]
    assert not s.closed


def test_angle_brackets_end_the_domain_as_in_exim():
    """Found by the Hypothesis property of parse_path ("0@>" parsed to an address that
    did not parse again); exim4 -bh gave these replies."""
    s, _ = make()
    ehlo(s)
    assert lines(s.feed(b"MAIL FROM:0@>\r\n")) == ["501 0@>: domain missing or malformed"]
    assert lines(s.feed(b"MAIL FROM:a@b>c\r\n")) == [
        "501 a@b>c: malformed address: >c may not follow a@b"]
    assert lines(s.feed(b"MAIL FROM:a@<b\r\n")) == ["501 a@<b: domain missing or malformed"]


def test_white_space_round_an_address_is_not_part_of_it():
    from pymta.smtp.server import parse_path
    for text in ("<a@b.example >", "< a @ b.example>", "<a@ b.example>"):
        assert parse_path(text, "sender").address == "a@b.example"


def test_phrase_before_the_address_is_passed_over():
    """As exim4 -bh answers: "MAIL FROM:Name <a@b>" (and "Name <>", a quoted phrase,
    parameters after) is the address in brackets; a phrase inside the brackets is a
    local part without its "@"."""
    s, h = make()
    ehlo(s)
    assert lines(s.feed(b'MAIL FROM:"John Doe" <a@b.example> SIZE=10\r\n')) == ["250 OK"]
    assert s.sender == "a@b.example"
    assert lines(s.feed(b"RCPT TO:John <c@d.example>\r\n"))[0].startswith("250")
    assert lines(s.feed(b"RSET\r\n")) == ["250 Reset OK"]
    assert lines(s.feed(b"MAIL FROM:Name <>\r\n")) == ["250 OK"]
    assert s.sender == ""
    assert lines(s.feed(b"RSET\r\n")) == ["250 Reset OK"]
    assert lines(s.feed(b"MAIL FROM:<Name <a@b.example>>\r\n")) == [
        '501 <Name <a@b.example>>: "@" or "." expected after "Name"']
    assert lines(s.feed(b"MAIL FROM:Name <a@b.example>junk\r\n")) == [
        "501 Name <a@b.example>junk: malformed address: junk may not follow "
        "Name <a@b.example>"]


def test_phrase_reading_is_linear():
    """A long command with no "<" or with many words costs no more than its length
    (a backtracking pattern took minutes on a 600-character address)."""
    import time
    s, h = make()
    ehlo(s)
    start = time.process_time()
    for arg in (b"a" * 900 + b"@x.example", b"a " * 450 + b"<b@x.example>",
                b"a" * 900 + b" <"):
        s.feed(b"MAIL FROM:" + arg + b"\r\n")
        s.feed(b"RSET\r\n")
    assert time.process_time() - start < 1.0
