"""RFC 3461 DSN pieces: xtext, NOTIFY/RET encodings, the MAIL/RCPT parameter scan (replies
as Exim 4.96 gives them under ``exim -bh``) and the spool's recipient encoding (lines as
Exim 4.96 wrote them in a -H file)."""
from __future__ import annotations

import pytest

from pymta import dsn
from pymta.delivery.bounce import envelope_id_lines, headers_only
from pymta.smtp.dsn_params import (
    DsnSyntaxError,
    extract_option,
    split_mail_dsn,
    split_rcpt_dsn,
)
from pymta.smtp.server import SmtpServer
from pymta.spool import files
from pymta.spool.model import SpoolMessage, SpoolRecipient
from pymta.xtext import xtext_decode, xtext_encode
from tests.unit.test_smtp_server import Recorder, lines


@pytest.mark.parametrize("plain, coded", [
    ("abc", "abc"), ("a+b", "a+2Bb"), ("a=b", "a+3Db"), ("a b", "a+20b"),
    ("rfc822;u@x.test", "rfc822;u@x.test"), ("é", "+C3+A9"), ("\r\n", "+0D+0A"),
    ("~!", "~!"), ("", "")])
def test_xtext_round_trip(plain, coded):
    assert xtext_encode(plain) == coded
    assert xtext_decode(coded) == plain


@pytest.mark.parametrize("bad", ["a=b", "a b", "+", "+4", "+4G", "é", "\x7f\x00"])
def test_xtext_decode_refuses_what_is_not_xtext(bad):
    assert xtext_decode(bad) is None


def test_xtext_decode_takes_lower_case_hex():
    assert xtext_decode("a+2bb") == "a+b"


@pytest.mark.parametrize("value, bits", [
    ("NEVER", dsn.NOTIFY_NEVER), ("never", dsn.NOTIFY_NEVER),
    ("SUCCESS", dsn.NOTIFY_SUCCESS), ("success,Delay", dsn.NOTIFY_SUCCESS | dsn.NOTIFY_DELAY),
    ("SUCCESS,FAILURE,DELAY", dsn.NOTIFY_SUCCESS | dsn.NOTIFY_FAILURE | dsn.NOTIFY_DELAY),
    ("", 0), ("SUCCESS,", dsn.NOTIFY_SUCCESS),
    ("NEVER,SUCCESS", None), ("SUCCESS,NEVER", None), ("SUCCESS,,DELAY", None),
    (",SUCCESS", None), ("NEVER,", None), ("FOO", None)])
def test_parse_notify_as_exim(value, bits):
    assert dsn.parse_notify(value) == bits


def test_exim_numbers():
    # as in the -H files Exim 4.96 wrote: SUCCESS,DELAY = 20, NEVER = 2, FAILURE = 8;
    # RET=HDRS is -dsn_ret 2
    assert dsn.parse_notify("SUCCESS,DELAY") == 20
    assert dsn.NOTIFY_NEVER == 2 and dsn.NOTIFY_FAILURE == 8
    assert dsn.parse_ret("hdrs") == 2 and dsn.parse_ret("Full") == 1
    assert dsn.parse_ret("") is None and dsn.parse_ret("BOTH") is None
    assert dsn.notify_text(dsn.parse_notify("delay,success,failure") or 0) == \
        "SUCCESS,FAILURE,DELAY"
    assert dsn.ret_text(2) == "HDRS" and dsn.ret_text(0) == ""


def test_wanted_reports():
    assert dsn.wants_failure(0) and dsn.wants_delay(0) and not dsn.wants_success(0)
    never = dsn.NOTIFY_NEVER
    assert not dsn.wants_failure(never) and not dsn.wants_delay(never)
    assert not dsn.wants_failure(dsn.NOTIFY_SUCCESS) and not dsn.wants_delay(dsn.NOTIFY_SUCCESS)
    assert dsn.wants_delay(dsn.NOTIFY_DELAY) and dsn.wants_failure(dsn.NOTIFY_FAILURE)
    assert dsn.wants_success(dsn.NOTIFY_SUCCESS | dsn.DSN_LASTHOP)


def test_report_fields_are_decoded_but_never_carry_line_breaks():
    assert dsn.original_recipient("rfc822;U+2Bx@x.test") == "rfc822;U+x@x.test"
    assert dsn.original_recipient("rfc822;a+0D+0AX-Evil:+20y") == "rfc822;a+0D+0AX-Evil:+20y"
    assert dsn.original_recipient("noseparator") == "noseparator"
    assert dsn.report_text("QQ+2Bid") == "QQ+id"
    assert dsn.report_text("a+0Ab") is None and dsn.report_text("a=b") is None
    assert dsn.report_text("+C3+A9") is None           # 8-bit stays encoded
    assert dsn.original_recipient("rfc822;+C3+A9@x") == "rfc822;+C3+A9@x"


@pytest.mark.parametrize("word, parsed", [
    ("RET=HDRS", ("RET", "HDRS")), ("ENVID", ("ENVID", "ENVID")), ("RET=", ("RET", "")),
    ("ENVID=a=b", None), ("X-Y=1", None), ("=x", None)])
def test_extract_option_as_exim(word, parsed):
    assert extract_option(word) == parsed


KNOWN = {"SIZE", "BODY"}


def test_mail_dsn_scan():
    rest, d = split_mail_dsn(["SIZE=10", "RET=hdrs", "ENVID=QQ+2Bid"], True, KNOWN)
    assert rest == ["SIZE=10"] and d.ret == dsn.RET_HDRS and d.envid == "QQ+2Bid"
    # not advertised: accepted and dropped, as Exim does
    rest, d = split_mail_dsn(["RET=bogus", "ENVID=x"], False, KNOWN)
    assert rest == [] and d.ret == 0 and d.envid is None
    # an empty value ends the scan; what is left of it stays for "may not follow"
    assert split_mail_dsn(["RET="], True, KNOWN)[0] == []
    assert split_mail_dsn(["ENVID=x", "RET="], True, KNOWN)[0] == ["ENVID=x"]
    rest, d = split_mail_dsn(["RET=", "ENVID="], True, KNOWN)
    assert rest == ["RET="] and d.dropped == 1
    rest, d = split_mail_dsn(["ENVID=", "RET=FULL", "SIZE=1"], True, KNOWN)
    assert rest == ["SIZE=1"] and d.dropped == 3 and d.ret == dsn.RET_FULL
    # an unknown word stops the scan
    assert split_mail_dsn(["RET=FULL", "FOO=1"], True, KNOWN)[0] == ["RET=FULL", "FOO=1"]
    assert split_mail_dsn(["RET=FULL", "ENVID=a=b"], True, KNOWN)[0] == \
        ["RET=FULL", "ENVID=a=b"]
    assert split_mail_dsn(["ENVID"], True, KNOWN)[1].envid == "ENVID"


@pytest.mark.parametrize("words, error", [
    (["RET=FOO"], "Value for RET is invalid"), (["RET"], "Value for RET is invalid"),
    (["RET=HDRS", "RET=FULL"], "RET can be specified once only"),
    (["ENVID=a", "ENVID=b"], "ENVID can be specified once only")])
def test_mail_dsn_errors(words, error):
    with pytest.raises(DsnSyntaxError, match=error):
        split_mail_dsn(words, True, KNOWN)


def test_rcpt_dsn_scan():
    rest, d = split_rcpt_dsn(["NOTIFY=SUCCESS,DELAY", "ORCPT=rfc822;u+40x.test"], True)
    assert rest == [] and d.flags == 20 and d.orcpt == "rfc822;u+40x.test"
    rest, d = split_rcpt_dsn(["NOTIFY="], True)
    assert rest == [] and d.flags == 0 and d.notify_given
    assert split_rcpt_dsn(["ORCPT"], True)[1].orcpt == "ORCPT"
    # not advertised, or not a DSN word: left for "may not follow"
    assert split_rcpt_dsn(["NOTIFY=SUCCESS"], False)[0] == ["NOTIFY=SUCCESS"]
    assert split_rcpt_dsn(["NOTIFY=SUCCESS", "RET=HDRS"], True)[0] == \
        ["NOTIFY=SUCCESS", "RET=HDRS"]


@pytest.mark.parametrize("words, error", [
    (["NOTIFY=FOO"], "Invalid value for NOTIFY parameter"),
    (["NOTIFY"], "Invalid value for NOTIFY parameter"),
    (["NOTIFY=NEVER,SUCCESS"], "Invalid value for NOTIFY parameter"),
    (["NOTIFY=SUCCESS", "NOTIFY=DELAY"], "NOTIFY can be specified once only"),
    (["ORCPT=a", "ORCPT=b"], "ORCPT can be specified once only")])
def test_rcpt_dsn_errors(words, error):
    with pytest.raises(DsnSyntaxError, match=error):
        split_rcpt_dsn(words, True)


def _server(offered: bool) -> tuple[SmtpServer, Recorder]:
    h = Recorder()
    s = SmtpServer("test.example", h, host_address="127.0.0.1", max_synprot_errors=100)
    s.dsn_offered = offered
    s.greet("test.example ESMTP")
    return s, h


def test_server_advertises_dsn_where_exim_does():
    s, _ = _server(True)
    out = lines(s.feed(b"EHLO c\r\n"))
    assert out[1:4] == ["250-SIZE", "250-8BITMIME", "250-DSN"]
    s, _ = _server(False)
    assert "250-DSN" not in lines(s.feed(b"EHLO c\r\n"))


def test_server_replies_as_exim_with_dsn():
    s, h = _server(True)
    s.feed(b"EHLO c\r\n")
    assert lines(s.feed(b"MAIL FROM:<a@b.c> RET=FOO\r\n")) == ["501 Value for RET is invalid"]
    assert lines(s.feed(b"MAIL FROM:<a@b.c> RET= ENVID=\r\n")) == [
        "501 <a@b.c> RET=: malformed address: RET= may not follow <a@b.c> "]
    got = {}
    h.on_mail = lambda addr, params: got.update(params)   # type: ignore[method-assign]
    assert lines(s.feed(b"MAIL FROM:<a@b.c> ret=hdrs ENVID=x+2B\r\n")) == ["250 OK"]
    assert got == {"RET": "HDRS", "ENVID": "x+2B"}
    assert lines(s.feed(b"RCPT TO:<u@x> NOTIFY=SUCCESS NOTIFY=DELAY\r\n")) == [
        "501 NOTIFY can be specified once only"]
    assert lines(s.feed(b"RCPT TO:<u@x> NOTIFY=success,,delay\r\n")) == [
        "501 Invalid value for NOTIFY parameter"]
    assert lines(s.feed(b"RCPT TO:<u@x> RET=HDRS\r\n")) == [
        "501 <u@x> RET=HDRS: malformed address: RET=HDRS may not follow <u@x> "]
    assert lines(s.feed(b"RCPT TO:<u@x> NOTIFY=SUCCESS ORCPT=rfc822;u@x\r\n")) == [
        "250 Accepted"]


def test_server_without_dsn_drops_mail_parameters_and_refuses_rcpt_ones():
    s, _ = _server(False)
    s.feed(b"EHLO c\r\n")
    assert lines(s.feed(b"MAIL FROM:<a@b.c> RET=bogus ENVID=x\r\n")) == ["250 OK"]
    assert lines(s.feed(b"RCPT TO:<u@x> NOTIFY=SUCCESS\r\n")) == [
        "501 <u@x> NOTIFY=SUCCESS: malformed address: NOTIFY=SUCCESS may not follow <u@x> "]
    # after HELO there are no ESMTP parameters at all
    s, _ = _server(True)
    s.feed(b"HELO c\r\n")
    assert lines(s.feed(b"MAIL FROM:<a@b.c> RET=HDRS\r\n")) == [
        "501 <a@b.c> RET=HDRS: malformed address: RET=HDRS may not follow <a@b.c> "]


# Recipient lines exactly as Exim 4.96 wrote them for
#   RCPT TO:<u@x.test> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;u+40x.test
#   RCPT TO:<v@x.test> NOTIFY=NEVER
#   RCPT TO:<w@x.test>
@pytest.mark.parametrize("line, rcpt", [
    ("u@x.test rfc822;u+40x.test 17,20  0,-1#3",
     SpoolRecipient("u@x.test", orcpt="rfc822;u+40x.test", dsn_flags=20)),
    ("v@x.test  0,2  0,-1#3", SpoolRecipient("v@x.test", dsn_flags=2)),
    ("w@x.test", SpoolRecipient("w@x.test")),
    ("c@x.test  0,0 e@x.test 8,0#3", SpoolRecipient("c@x.test", errors_to="e@x.test", pno=0)),
    ("\"a b\"@x.test rfc822;a+20b@x 14,8  0,-1#3",
     SpoolRecipient("\"a b\"@x.test", orcpt="rfc822;a+20b@x", dsn_flags=8)),
])
def test_spool_recipient_lines_as_exim(line, rcpt):
    reader = files._Reader(b"", "-H")
    assert files._parse_recipient(reader, line) == rcpt
    assert files._format_recipient(rcpt) == line + "\n"


def test_spool_keeps_an_orcpt_without_notify():
    # Exim 4.96 writes this recipient as a bare address (and so loses its ORCPT); the
    # extended form is read back the same by both.
    r = SpoolRecipient("o@x.test", orcpt="rfc822;o@x.test")
    line = files._format_recipient(r)
    assert line == "o@x.test rfc822;o@x.test 15,0  0,-1#3\n"
    assert files._parse_recipient(files._Reader(b"", "-H"), line.rstrip("\n")) == r


@pytest.mark.parametrize("envid, line", [
    ("QQ+2Bid", "Original-Envelope-ID: QQ+id\n"),
    ("a+C3+A9", "Original-Envelope-ID: a+C3+A9\n"),          # 8-bit: left encoded
    ("bad+", "X-Original-Envelope-ID: error decoding xtext formatted ENVID\n"),
    ("a=b", "X-Original-Envelope-ID: error decoding xtext formatted ENVID\n")])
def test_envelope_id_field(envid, line):
    msg = SpoolMessage("1abcde-000001-00", "u", 0, 0, "s@x", 0, variables={"dsn_envid": envid})
    assert envelope_id_lines(msg) == [line]
    assert envelope_id_lines(SpoolMessage("1abcde-000001-00", "u", 0, 0, "s@x", 0)) == []


def test_headers_only_is_ret_hdrs():
    msg = SpoolMessage("1abcde-000001-00", "u", 0, 0, "s@x", 0, variables={"dsn_ret": "2"})
    assert headers_only(msg)
    msg.variables["dsn_ret"] = "1"
    assert not headers_only(msg)
