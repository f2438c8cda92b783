"""receive_message: spool image, local fixups, size limit and the <= log line."""
import re
import types

import pytest

from pymta import __version__
from pymta.message.receive import Envelope, MessageTooBig, receive_message
from pymta.message.received import DEFAULT_RECEIVED_HEADER_TEXT
from pymta.spool import files
from pymta.taint import is_tainted, taint


class Log:
    def __init__(self):
        self.main_lines = []
        self.msglog_lines = []

    def main(self, text, msgid=None):
        self.main_lines.append((msgid, text))

    def msglog(self, spool_dir, msgid, text):
        self.msglog_lines.append((msgid, text))


# Exim 4.96's own default received_header_text (pymta's names pymta instead): the
# tests that compare with what Exim wrote use it
EXIM_RECEIVED_HEADER_TEXT = DEFAULT_RECEIVED_HEADER_TEXT.replace(
    f"(pymta {__version__})", "(Exim $version_number)")


def config(tmp_path, **opts):
    values = dict(spool_directory=str(tmp_path), primary_hostname="test.example",
                  message_size_limit=0)
    values.update(opts)
    main = types.SimpleNamespace(**values)
    return types.SimpleNamespace(main=main)


def exim_config(tmp_path):
    """config() with Exim's own Received: text, to compare with what Exim wrote."""
    return config(tmp_path, received_header_text=EXIM_RECEIVED_HEADER_TEXT)


def smtp_envelope(**kw):
    base = dict(sender="s@remote.example", recipients=["u@test.example", "v@test.example"],
                protocol="esmtp", host_address="192.0.2.1", host_port=4567,
                host_name="rhost.example", helo_name="client.example",
                interface_address="192.0.2.2", interface_port=25, ident="root",
                acl_vars={"acl_c0": "conn value", "acl_m_foo": "multi\nline"},
                extra_headers=["X-Added: yes"], originator_login="root",
                originator_uid=0, originator_gid=0)
    base.update(kw)
    return Envelope(**base)


DATE = re.compile(r"\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}")


def normalise(h: bytes, mid: str) -> str:
    text = h.decode().replace(mid, "ID")
    text = re.sub(r"-received_time_usec \.\d{6}", "-received_time_usec .U", text)
    text = re.sub(r"-received_time_complete \d+\.\d{6}", "-received_time_complete T.U", text)
    text = re.sub(r"\n\d{10} 0\n", "\nT 0\n", text)
    return DATE.sub("DATE", text)


def test_smtp_message_spooled_like_exim(tmp_path):
    log = Log()
    data = b"Subject: smtp\nMessage-ID: <abc@remote>\n\nhello\n"
    # the recording's addresses were given with -oMa/-oMi: the caller's word, tainted
    env = smtp_envelope(host_address=taint("192.0.2.1"), interface_address=taint("192.0.2.2"))
    mid = receive_message(exim_config(tmp_path), env, data, log)
    h = open(files.header_path(str(tmp_path), mid), "rb").read()
    # Exim 4.96's -H for the same input (tests/data/spool), ids/times normalised; Exim
    # wrote "-ident" untainted only because that test session was a local -bs
    assert normalise(h, mid) == (
        "ID-H\nroot 0 0\n<s@remote.example>\nT 0\n-received_time_usec .U\n"
        "-received_time_complete T.U\n--helo_name client.example\n"
        "--host_address [192.0.2.1]:4567\n--host_name rhost.example\n"
        "--interface_address [192.0.2.2]:25\n--ident root\n-received_protocol esmtp\n"
        "-aclc 0 10\nconn value\n-aclm _foo 10\nmulti\nline\n-body_linecount 1\n"
        "-max_received_linelength 24\n-deliver_firsttime\nXX\n2\nu@test.example\n"
        "v@test.example\n\n"
        "206P Received: from rhost.example\n\t([192.0.2.1] helo=client.example ident=root)\n"
        "\tby test.example with esmtp (Exim 4.96)\n\t(envelope-from <s@remote.example>)\n"
        "\tid ID;\n\tDATE\n014  Subject: smtp\n025I Message-ID: <abc@remote>\n"
        "013  X-Added: yes\n")
    assert files.read_body(str(tmp_path), mid) == b"hello\n"
    assert log.main_lines == [(mid, "<= s@remote.example H=rhost.example (client.example) "
                                    "[192.0.2.1] U=root P=esmtp S=265 id=abc@remote")]
    assert log.msglog_lines == [(mid, "Received from s@remote.example H=rhost.example "
                                      "(client.example) [192.0.2.1] U=root P=esmtp S=265 "
                                      "id=abc@remote")]
    m = files.read_header(str(tmp_path), mid)
    assert is_tainted(m.variables["host_address"])


def test_addresses_of_a_real_connection_are_not_tainted(tmp_path):
    # Exim 4.96 writes "-host_address" and "-interface_address" for a connection its
    # daemon accepted (tests/data/ident/exim-answered.H); the HELO name stays tainted
    mid = receive_message(exim_config(tmp_path), smtp_envelope(), b"Subject: s\n\nx\n", Log())
    h = open(files.header_path(str(tmp_path), mid), "rb").read().decode()
    assert "\n--helo_name client.example\n-host_address [192.0.2.1]:4567\n" in h
    assert "\n-interface_address [192.0.2.2]:25\n" in h
    m = files.read_header(str(tmp_path), mid)
    assert not is_tainted(m.variables["host_address"])
    assert is_tainted(m.variables["helo_name"])


def test_local_message_gets_fixups(tmp_path):
    log = Log()
    env = Envelope(sender="root@test.example", recipients=["x@y.example"], protocol="local",
                   is_local_submission=True, originator_login="root", originator_uid=0,
                   originator_gid=0, originator_name="root")
    mid = receive_message(exim_config(tmp_path), env, b"Subject: two\n\nbody\n", log)
    h = normalise(open(files.header_path(str(tmp_path), mid), "rb").read(), mid)
    assert h.endswith(
        "-ident root\n-received_protocol local\n-body_linecount 1\n"
        "-max_received_linelength 12\n-auth_id root\n-auth_sender root@test.example\n"
        "-allow_unqualified_recipient\n-allow_unqualified_sender\n-deliver_firsttime\n"
        "-local\nXX\n1\nx@y.example\n\n"
        "168P Received: from root by test.example with local (Exim 4.96)\n"
        "\t(envelope-from <root@test.example>)\n\tid ID\n\tfor x@y.example;\n\tDATE\n"
        "013  Subject: two\n045I Message-Id: <EID@test.example>\n"
        "031F From: root <root@test.example>\n038  Date: DATE\n")
    assert log.main_lines == [(mid, "<= root@test.example U=root P=local S=301")]


def test_local_message_with_sender_from_caller(tmp_path):
    env = Envelope(sender="a@b.example", recipients=["x@y.example", "y@z.example"],
                   protocol="local", is_local_submission=True, sender_set_by_caller=True,
                   originator_login="root", originator_uid=0, originator_gid=0)
    log = Log()
    mid = receive_message(exim_config(tmp_path), env, b"Subject: hi\n\nbody line\nsecond\n", log)
    m = files.read_header(str(tmp_path), mid)
    assert [h.text.split(":")[0] for h in m.headers] == [
        "Received", "Subject", "Message-Id", "From", "Date"]
    assert m.headers[3].text == "From: a@b.example\n"
    assert "local" not in m.flags and "auth_id" not in m.variables
    assert log.main_lines == [(mid, "<= a@b.example U=root P=local S=276")]   # Exim: 276


def test_existing_headers_are_kept_and_message_id_domain(tmp_path):
    # a trusted caller: an untrusted one would get a Sender: line (From: is not u's)
    env = Envelope(sender="a@b.example", recipients=["x@y.example"], protocol="local",
                   is_local_submission=True, originator_login="u", originator_uid=1,
                   originator_gid=1, trusted_caller=True)
    data = b"From: me <me@x>\nDate: whenever\nMessage-ID: <k@x>\n\nb\n"
    log = Log()
    mid = receive_message(config(tmp_path), env, data, log)
    m = files.read_header(str(tmp_path), mid)
    assert [h.flag for h in m.headers] == ["P", "F", " ", "I"]
    assert log.main_lines[0][1].endswith(" S=%d id=k@x" % m.message_size(2))


def test_smtp_messages_get_no_fixups_and_tls_auth_fields(tmp_path):
    env = smtp_envelope(recipients=["one@test.example"], ident=None, host_name=None,
                        protocol="esmtpsa", tls_cipher="TLS1.3:TLS_AES_256_GCM_SHA384:256",
                        authenticator="plain", authenticated_id="joe", extra_headers=[])
    log = Log()
    mid = receive_message(config(tmp_path), env, b"no headers here\n", log)
    m = files.read_header(str(tmp_path), mid)
    assert [h.flag for h in m.headers] == ["P"]
    assert m.headers[0].text.startswith(
        "Received: from [192.0.2.1] (helo=client.example)\n\tby test.example with esmtpsa")
    assert "\n\tfor one@test.example;\n" in m.headers[0].text
    assert files.read_body(str(tmp_path), mid) == b"no headers here\n"
    assert m.variables["host_auth"] == "plain" and m.variables["auth_id"] == "joe"
    assert log.main_lines[0][1] == (
        "<= s@remote.example H=(client.example) [192.0.2.1] P=esmtpsa "
        "X=TLS1.3:TLS_AES_256_GCM_SHA384:256 CV=no A=plain:joe S=%d" % m.message_size(16))


def test_bounce_sender_logged_as_empty(tmp_path):
    env = Envelope(sender="", recipients=["x@y.example"], protocol="local",
                   is_local_submission=True, sender_set_by_caller=True,
                   originator_login="mail", originator_uid=8, originator_gid=8,
                   bounce_reference="1xUsgH-0001Zt-1R")
    log = Log()
    mid = receive_message(config(tmp_path), env, b"Subject: b\n\nx\n", log)
    assert log.main_lines[0][1].startswith("<= <> R=1xUsgH-0001Zt-1R U=mail P=local S=")
    assert files.read_header(str(tmp_path), mid).sender == ""


def test_size_limit(tmp_path):
    with pytest.raises(MessageTooBig):
        receive_message(config(tmp_path, message_size_limit=10), smtp_envelope(),
                        b"Subject: x\n\n0123456789\n", Log())
    assert not (tmp_path / "input").exists()
    mid = receive_message(config(tmp_path, message_size_limit=25), smtp_envelope(),
                          b"Subject: x\n\n0123456789\n", Log())      # exactly 24 bytes
    assert files.read_body(str(tmp_path), mid) == b"0123456789\n"


def test_failure_leaves_nothing_behind(tmp_path, monkeypatch):
    import pymta.spool.files as f

    def boom(*a):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(f, "_fsync_dir", boom)
    with pytest.raises(OSError):
        receive_message(config(tmp_path), smtp_envelope(), b"Subject: x\n\nb\n", Log())
    assert list((tmp_path / "input").iterdir()) == []
