"""Mail loops are stopped, end to end with the real daemon.

Like Exim 4.96, a message with more Received: headers than received_headers_max (30)
is accepted (Exim's ``-bh`` and ``-bs`` answer 250 too) but each recipient fails at
delivery with 'Too many "Received" headers - suspected mail loop' and is bounced, so
it is never relayed again.  Routing to this host itself is caught by the router's
``self`` option (default freeze).
"""
from __future__ import annotations

from tests.integration.conftest import BASE_CONFIG, maildir_messages, wait_for
from tests.support.daemon import PymtaDaemon

LOOP = 'Too many "Received" headers - suspected mail loop'
# remote.example is routed to the daemon's own port: every delivery comes back.
LOOP_CONFIG = BASE_CONFIG.replace("127.0.0.1::SINK_PORT", "127.0.0.1::SMTP_PORT")


def _received(n: int) -> bytes:
    return b"".join(b"Received: from hop%d.example by relay.example; "
                    b"Thu, 1 Jan 2026 00:00:00 +0000\r\n" % i for i in range(n))


def _send(d, rcpt: str, received: int, subject: str) -> str:
    with d.client() as c:
        c.banner()
        c.ehlo()
        assert c.cmd("MAIL FROM:<alice@test.example>")[0] == 250
        assert c.cmd(f"RCPT TO:<{rcpt}>")[0] == 250
        code, text = c.data(_received(received) + b"Subject: " + subject.encode()
                            + b"\r\n\r\nbody\r\n")
        assert code == 250, text
        c.quit()
    return text.split("=", 1)[1]


def _bounces(tmp_path) -> list[bytes]:
    return [m for m in maildir_messages(tmp_path, "alice")
            if b"Mail delivery failed" in m]


def test_too_many_received_headers_fail_and_bounce(pymta_daemon, tmp_path):
    d = pymta_daemon()
    # 29 + ours = 30: still delivered.  30 + ours = 31 > received_headers_max.
    ok = _send(d, "bob@test.example", 29, "thirty")
    looped = _send(d, "bob@test.example", 30, "thirty-one")
    d.wait_for_log(rf"{looped} \*\* bob@test\.example: {LOOP}")
    assert wait_for(lambda: _bounces(tmp_path))
    assert d.wait_for_log(rf"{ok} => bob")
    bob = maildir_messages(tmp_path, "bob")
    assert len(bob) == 1 and b"Subject: thirty\n" in bob[0]
    assert LOOP.encode() in _bounces(tmp_path)[0]
    assert wait_for(lambda: looped not in d.queue())


def test_locally_submitted_message_with_too_many_received_is_not_relayed(pymta_daemon,
                                                                        tmp_path):
    d = pymta_daemon()
    msg = _received(31).replace(b"\r\n", b"\n") + b"Subject: local\n\nbody\n"
    proc = d.run("-odi", "-f", "alice@test.example", "-i", "x@remote.example", input=msg)
    assert proc.returncode == 0, proc.stderr
    d.wait_for_log(rf"\*\* x@remote\.example: {LOOP}")
    assert "=> x@remote.example" not in d.log() and "== x@remote.example" not in d.log()
    assert wait_for(lambda: _bounces(tmp_path))


def test_message_looping_through_this_host_is_stopped(tmp_path):
    # self = send: each hop adds our Received: header until the limit fails it.  The
    # hops reuse one connection, so lift the per-connection immediate-delivery limit.
    macros = {"SINK_PORT": "0", "EXTRA_MAIN": "smtp_accept_queue_per_connection = 0"}
    with PymtaDaemon(LOOP_CONFIG, tmp_path, macros=macros) as d:
        (tmp_path / "users").write_text("alice: alice\nbob: bob\n")
        _send(d, "x@remote.example", 0, "loop")
        d.wait_for_log(rf"\*\* x@remote\.example: {LOOP}", timeout=30)
        assert wait_for(lambda: _bounces(tmp_path), timeout=30)
        relayed = [ln for ln in d.log().splitlines() if "=> x@remote.example" in ln]
        # Our Received: counts 1 on arrival; the copy holding 31 is the one that fails.
        assert len(relayed) == 30
        assert wait_for(lambda: d.queue() == [])


def test_routing_to_this_host_freezes_by_default(tmp_path):
    config = LOOP_CONFIG.replace("  self = send\n", "")
    with PymtaDaemon(config, tmp_path, macros={"SINK_PORT": "0"}) as d:
        (tmp_path / "users").write_text("alice: alice\nbob: bob\n")
        msgid = _send(d, "x@remote.example", 0, "self")
        d.wait_for_log(rf"{msgid} == x@remote\.example R=remote defer \(-1\): "
                       r"remote host address is the local host")
        d.wait_for_log(rf"{msgid} Frozen")
        assert d.queue() == [msgid]
        assert "=> x@remote.example" not in d.log()


def test_configured_received_headers_max_is_the_limit(pymta_daemon, tmp_path):
    d = pymta_daemon(macros={"EXTRA_MAIN": "received_headers_max = 3"})
    ok = _send(d, "bob@test.example", 2, "three")          # 2 + ours = 3: delivered
    looped = _send(d, "bob@test.example", 3, "four")       # 3 + ours = 4 > 3
    d.wait_for_log(rf"{looped} \*\* bob@test\.example: {LOOP}")
    assert d.wait_for_log(rf"{ok} => bob")
    bob = maildir_messages(tmp_path, "bob")
    assert len(bob) == 1 and b"Subject: three\n" in bob[0]
