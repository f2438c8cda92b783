"""Tests for the SMTP sink, SMTP test client and port helper in tests/support."""

import smtplib
import socket
import threading

import pytest

from tests.support import SmtpSink, SmtpTestClient, SmtpTestError, free_port


def test_free_port_is_bindable():
    port = free_port()
    assert 1024 <= port <= 65535
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_accept_records_envelope_and_unstuffed_data():
    with SmtpSink() as sink:
        with SmtpTestClient(sink.port) as c:
            assert c.banner()[0] == 220
            code, _ = c.ehlo("me.test")
            assert code == 250
            assert {"PIPELINING", "SIZE", "8BITMIME"} <= c.extensions()
            code, _ = c.send_message("a@x.test", ["b@y.test", "c@y.test"],
                                     b"Subject: hi\n\n.leading dot\n..two\nend\n")
            assert code == 250
        assert sink.wait_for(1, 5)
        msg = sink.messages[0]
        assert msg.sender == "a@x.test"
        assert msg.recipients == ["b@y.test", "c@y.test"]
        assert msg.data == b"Subject: hi\r\n\r\n.leading dot\r\n..two\r\nend\r\n"
        assert msg.helo == "me.test"
        assert msg.header("subject") == "hi"


def test_stdlib_smtplib_can_deliver_to_sink():
    with SmtpSink() as sink:
        with smtplib.SMTP("127.0.0.1", sink.port, timeout=5) as s:
            s.sendmail("", ["x@y.test"], b"Subject: t\r\n\r\nbody\r\n")
        assert sink.wait_for(1, 5)
        assert sink.messages[0].sender == ""
        assert sink.messages[0].lf_data.endswith(b"body\n")


def test_null_sender_and_mail_params():
    with SmtpSink() as sink, SmtpTestClient(sink.port) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<> SIZE=10 BODY=8BITMIME")[0] == 250
        assert c.cmd("RCPT TO:<u@d.test>")[0] == 250
        assert c.data(b"x\n")[0] == 250
        assert sink.wait_for(1, 5)
        assert sink.messages[0].mail_params == ["SIZE=10", "BODY=8BITMIME"]


def test_rcpt_mode_rejects_all_recipients():
    with SmtpSink(mode="rcpt", code=550, text="no such user") as sink, \
            SmtpTestClient(sink.port) as c:
        c.ehlo()
        c.cmd("MAIL FROM:<a@x.test>")
        assert c.cmd("RCPT TO:<b@y.test>") == (550, "no such user")
        assert c.cmd("DATA")[0] == 554
        assert c.cmd("RSET")[0] == 250
        with pytest.raises(SmtpTestError) as exc:
            c.send_message("a@x.test", ["c@y.test"], b"x\n")
        assert exc.value.code == 550
    assert sink.messages == []


def test_per_recipient_replies_only_affect_listed_addresses():
    replies = {"Temp@Y.test": (451, "try later")}
    with SmtpSink(rcpt_replies=replies) as sink, SmtpTestClient(sink.port) as c:
        c.ehlo()
        c.cmd("MAIL FROM:<a@x.test>")
        assert c.cmd("RCPT TO:<temp@y.test>") == (451, "try later")
        assert c.cmd("RCPT TO:<ok@y.test>")[0] == 250
        assert c.data(b"hello\n")[0] == 250
        assert sink.wait_for(1, 5)
        assert sink.messages[0].recipients == ["ok@y.test"]


def test_rcpt_handler_callable():
    def handler(addr):
        return (452, "full") if addr.startswith("full") else None

    with SmtpSink(rcpt_handler=handler) as sink, SmtpTestClient(sink.port) as c:
        c.ehlo()
        c.cmd("MAIL FROM:<a@x.test>")
        assert c.cmd("RCPT TO:<full@y.test>")[0] == 452
        assert c.cmd("RCPT TO:<empty@y.test>")[0] == 250


def test_data_mode_rejects_after_dot_and_records_nothing():
    with SmtpSink(mode="data", code=452, text="disk full") as sink, \
            SmtpTestClient(sink.port) as c:
        code, text = c.send_message("a@x.test", "b@y.test", b"x\n")
        assert (code, text) == (452, "disk full")
        # the session continues after a rejected message
        assert c.cmd("NOOP")[0] == 250
    assert sink.messages == []


@pytest.mark.parametrize("stage", ["connect", "ehlo", "mail", "rcpt", "data", "dot"])
def test_close_mode_drops_connection_at_stage(stage):
    with SmtpSink(mode="close", close_at=stage) as sink:
        c = SmtpTestClient(sink.port)
        try:
            with pytest.raises(SmtpTestError):
                c.banner()
                c.ehlo()
                c.cmd("MAIL FROM:<a@x.test>")
                c.cmd("RCPT TO:<b@y.test>")
                code, _ = c.cmd("DATA")
                assert code == 354
                c.send_raw(b"x\r\n.\r\n")
                c.read_reply()
        finally:
            c.close()
        assert sink.messages == []


def test_banner_override_refuses_session():
    with SmtpSink(banner=(421, "go away")) as sink:
        c = SmtpTestClient(sink.port)
        assert c.banner() == (421, "go away")
        with pytest.raises((SmtpTestError, OSError)):
            c.cmd("EHLO x")
        c.close()


def test_sequence_errors_and_rset():
    with SmtpSink() as sink, SmtpTestClient(sink.port) as c:
        c.ehlo()
        assert c.cmd("RCPT TO:<b@y.test>")[0] == 503
        assert c.cmd("MAIL FROM:<a@x.test>")[0] == 250
        assert c.cmd("MAIL FROM:<a@x.test>")[0] == 503
        assert c.cmd("RSET")[0] == 250
        assert c.cmd("MAIL FROM:<a@x.test>")[0] == 250
        assert c.cmd("BOGUS")[0] == 500
        assert c.quit()[0] == 221


def test_pipelined_transaction():
    with SmtpSink() as sink, SmtpTestClient(sink.port) as c:
        c.ehlo()
        c.send_raw(b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nRCPT TO:<c@y.test>\r\nDATA\r\n")
        assert [c.read_reply()[0] for _ in range(4)] == [250, 250, 250, 354]
        c.send_raw(b"line\r\n.\r\n")
        assert c.read_reply()[0] == 250
        assert sink.wait_for(1, 5)
        assert sink.messages[0].recipients == ["b@y.test", "c@y.test"]


def test_size_limit_enforced():
    with SmtpSink(max_size=100) as sink, SmtpTestClient(sink.port) as c:
        c.ehlo()
        assert "SIZE 100" in c.ehlo_reply[1]
        assert c.cmd("MAIL FROM:<a@x.test> SIZE=1000")[0] == 552
        code, _ = c.send_message("a@x.test", "b@y.test", b"x" * 200 + b"\n")
        assert code == 552
    assert sink.messages == []


def test_concurrent_sessions_and_wait_for():
    with SmtpSink() as sink:
        def one(i):
            with SmtpTestClient(sink.port) as c:
                c.send_message(f"s{i}@x.test", f"r{i}@y.test", b"m\n")

        threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        assert sink.wait_for(8, 10)
        for t in threads:
            t.join()
        assert sink.connections == 8
        assert sorted(m.sender for m in sink.received()) == sorted(f"s{i}@x.test" for i in range(8))
        assert sink.wait_for(9, 0.1) is False


def test_stop_closes_listener_and_fixed_port():
    port = free_port()
    sink = SmtpSink(port=port).start()
    assert sink.port == port
    c = SmtpTestClient(port)
    assert c.banner()[0] == 220
    sink.stop()
    c.close()
    with pytest.raises(OSError):
        SmtpTestClient(port, timeout=1)


def test_invalid_mode_rejected():
    with pytest.raises(ValueError):
        SmtpSink(mode="bounce")


# -- TLS and AUTH ---------------------------------------------------------------

@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    from tests.support.certs import make_cert
    return make_cert(tmp_path_factory.mktemp("certs"), "sink.test")


def test_starttls_then_message_records_tls(certs):
    from tests.support.certs import client_context, server_context
    with SmtpSink(tls_context=server_context(certs)) as sink, SmtpTestClient(sink.port) as c:
        c.ehlo()
        assert "STARTTLS" in c.extensions()
        assert c.starttls(client_context(certs.ca), server_hostname="sink.test")[0] == 220
        assert c.tls_version and c.tls_version.startswith("TLS")
        c.ehlo()
        assert "STARTTLS" not in c.extensions()
        assert c.send_message("a@x.test", "b@y.test", b"secret\n")[0] == 250
        assert sink.wait_for(1, 5)
        assert sink.messages[0].tls == c.tls_version


def test_certificate_verifies_against_ca_only(certs, tmp_path):
    import ssl

    from tests.support.certs import client_context, make_ca, server_context
    other_ca = make_ca(tmp_path, "other CA")
    with SmtpSink(tls_context=server_context(certs)) as sink, SmtpTestClient(sink.port) as c:
        c.ehlo()
        with pytest.raises(ssl.SSLError):
            c.starttls(client_context(other_ca.cert), server_hostname="sink.test")


def test_plain_sink_does_not_offer_starttls_or_auth():
    with SmtpSink() as sink, SmtpTestClient(sink.port) as c:
        c.ehlo()
        assert not {"STARTTLS", "AUTH"} & c.extensions()
        assert c.cmd("STARTTLS")[0] == 503
        assert c.cmd("AUTH PLAIN AGZvbwBiYXI=")[0] == 503


@pytest.mark.parametrize("method", ["auth_plain", "auth_login"])
def test_auth_success_and_failure(method):
    with SmtpSink(auth={"user": "pw"}) as sink:
        with SmtpTestClient(sink.port) as c:
            c.ehlo()
            assert "AUTH" in c.extensions()
            assert getattr(c, method)("user", "wrong")[0] == 535
            assert getattr(c, method)("user", "pw")[0] == 235
            assert c.send_message("a@x.test", "b@y.test", b"x\n")[0] == 250
        assert sink.wait_for(1, 5)
        assert sink.messages[0].auth_user == "user"
        assert sink.messages[0].tls is None


# -- LMTP -----------------------------------------------------------------------

def test_lmtp_gives_one_reply_per_recipient():
    replies = {"full@y.test": (452, "mailbox full")}
    with SmtpSink(lmtp=True, lmtp_data_replies=replies) as sink, \
            SmtpTestClient(sink.port) as c:
        assert c.ehlo()[0] == 500
        assert c.lhlo()[0] == 250
        assert "PIPELINING" in c.extensions()
        c.cmd("MAIL FROM:<a@x.test>")
        for r in ("ok@y.test", "full@y.test", "two@y.test"):
            assert c.cmd(f"RCPT TO:<{r}>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send_raw(c.dot_stuff(b"hi\n"))
        assert [c.read_reply()[0] for _ in range(3)] == [250, 452, 250]
        assert sink.wait_for(1, 5)
        assert sink.messages[0].recipients == ["ok@y.test", "two@y.test"]


def test_lmtp_data_mode_refuses_every_recipient():
    with SmtpSink(lmtp=True, mode="data", code=550, text="no") as sink, \
            SmtpTestClient(sink.port) as c:
        c.lhlo()
        c.cmd("MAIL FROM:<a@x.test>")
        c.cmd("RCPT TO:<a@y.test>")
        c.cmd("RCPT TO:<b@y.test>")
        c.cmd("DATA")
        c.send_raw(c.dot_stuff(b"x\n"))
        assert [c.read_reply() for _ in range(2)] == [(550, "no"), (550, "no")]
    assert sink.messages == []
