"""ACL controls over SMTP: fakereject, fakedefer, no_multiline_responses, enforce_sync,
caseful_local_part / caselower_local_part, allow_auth_unadvertised, no_mbox_unspool,
and the ACLs each may be used in; a -bh transcript compared with Exim 4.96's."""
from __future__ import annotations

import re
import time
from pathlib import Path

from tests.integration.conftest import BASE_CONFIG, maildir_messages, wait_for
from tests.support.daemon import run_pymta
from tests.support.sink import SmtpSink
from tests.support.smtp import SmtpTestClient

DATA = Path(__file__).resolve().parent.parent / "data" / "controls"
_ID = r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}"


def test_bh_fake_replies_and_local_part_case_match_exim(tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()
    conf = tmp_path / "pymta.conf"
    conf.write_text((DATA / "fake.conf").read_text().replace("SPOOL", str(spool)))
    proc = run_pymta(["-bh", "1.2.3.4"], conf, input=(DATA / "fake.in").read_bytes())
    assert proc.returncode == 0, proc.stderr

    def replies(text: str) -> list[str]:
        return [ln for ln in text.replace("\r\n", "\n").split("\n")
                if re.match(r"[2-5]\d\d[ -]", ln) and not ln.startswith(("220 ", "250-"))]

    def logs(text: str) -> list[str]:
        out = []
        for ln in text.splitlines():
            if ln.startswith("LOG:"):
                ln = re.sub(rf"^LOG: {_ID} ", "LOG: ", ln)
                out.append(re.sub(r" S=\d+$", "", ln))     # Received: names pymta
        return out
    assert replies(proc.stdout) == replies((DATA / "fake.exim.out").read_text())
    assert logs(proc.stderr) == logs((DATA / "fake.exim.log").read_text())


ACLS = r"""
acl_conn:
  accept  hosts = 127.0.0.2
          control = enforce_sync
          control = no_multiline_responses
          control = allow_auth_unadvertised
          control = no_delay_flush
  accept

acl_rcpt:
  warn    logwrite = RCPT lp=$local_part
  warn    control = caseful_local_part
          logwrite = RCPT caseful=$local_part
  accept  local_parts = slow
          delay = 2s
  deny    local_parts = multi
          message = first line\nsecond line
  require verify = sender
  accept  local_parts = alice
          control = caselower_local_part
          logwrite = RCPT lower=$local_part
  accept

acl_data:
  accept  condition = ${if match{$h_subject:}{fakereject}}
          control = fakereject
  accept  condition = ${if match{$h_subject:}{fakedefer}}
          control = fakedefer/please send this again later
  accept  condition = ${if match{$h_subject:}{keep}}
          regex = keep
          control = no_mbox_unspool
  accept

acl_helo:
  accept  condition = ${if eq{$sender_helo_name}{wrong.place}}
          control = fakereject
  accept

acl_mime:
  accept  decode = default
"""

AUTH = """
begin authenticators

plain:
  driver = plaintext
  public_name = PLAIN
  server_prompts = :
  server_condition = ${if and {{eq{$auth2}{alice}}{eq{$auth3}{secret}}}}
  server_set_id = $auth2
"""


def _config() -> str:
    return (BASE_CONFIG.replace(
        "acl_smtp_rcpt = acl_check_rcpt\n",
        "acl_smtp_rcpt = acl_rcpt\nacl_smtp_connect = acl_conn\nacl_smtp_data = acl_data\n"
        "acl_smtp_helo = acl_helo\nacl_smtp_mime = acl_mime\nsmtp_enforce_sync = false\n"
        "auth_advertise_hosts = :\n")
        .replace("begin acl\n", "begin acl\n" + ACLS) + AUTH)


def _message(subject: str) -> bytes:
    return (f"Subject: {subject}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n"
            f"\r\nkeep this\r\n").encode()


def test_fakereject_and_fakedefer_deliver_all_the_same(pymta_daemon, tmp_path):
    d = pymta_daemon(config=_config())
    with d.client() as c:
        assert c.send_message("bob@test.example", "alice@test.example",
                              _message("fakereject")) == (
            550, "Your message has been rejected but is being kept for evaluation.\n"
                 "If it was a legitimate message, it may still be delivered to the target\n"
                 "recipient(s).")
        assert c.send_message("bob@test.example", "alice@test.example",
                              _message("fakedefer")) == \
            (450, "please send this again later")
        assert c.send_message("bob@test.example", "alice@test.example",
                              _message("plain"))[0] == 250
        c.quit()
    assert len(wait_for(lambda: len(maildir_messages(tmp_path, "alice")) == 3 and
                        maildir_messages(tmp_path, "alice"))) == 3
    log = d.log()
    assert len(re.findall(r" \(= bob@test\.example ", log)) == 1
    assert len(re.findall(r" <= bob@test\.example ", log)) == 2


def test_no_multiline_responses_and_enforce_sync_per_host(pymta_daemon):
    d = pymta_daemon(config=_config())
    # 127.0.0.1: no controls; multi-line replies and no synchronisation check
    with d.client() as c:
        c.banner()
        c.ehlo()
        assert c.cmd("MAIL FROM:<nobody@test.example>")[0] == 250
        assert c.cmd("RCPT TO:<multi@test.example>") == (550, "first line\nsecond line")
        assert c.cmd("RCPT TO:<alice@test.example>") == (
            550, "Verification failed for <nobody@test.example>\nUnrouteable address\n"
                 "Sender verify failed")
        c.quit()
    with SmtpTestClient(d.port, source="127.0.0.2") as c:
        c.banner()
        c.ehlo()
        assert c.cmd("MAIL FROM:<nobody@test.example>")[0] == 250
        assert c.cmd("RCPT TO:<multi@test.example>") == (550, "first line")
        assert c.cmd("RCPT TO:<alice@test.example>") == (550, "Sender verify failed")
        c.quit()
    # enforce_sync from the connect ACL although smtp_enforce_sync is false
    # (HELO itself is no synchronisation point: PIPECONNECT is offered by default)
    with SmtpTestClient(d.port, source="127.0.0.2") as c:
        c.banner()
        assert c.cmd("HELO a")[0] == 250                             # no PIPELINING
        c.send_raw(b"MAIL FROM:<bob@test.example>\r\nRCPT TO:<alice@test.example>\r\n")
        code, _ = c.read_reply()
        assert code == 554
    with d.client() as c:
        c.banner()
        assert c.cmd("HELO a")[0] == 250
        c.send_raw(b"MAIL FROM:<bob@test.example>\r\nRCPT TO:<alice@test.example>\r\n")
        assert c.read_reply()[0] == 250 and c.read_reply()[0] == 250
        c.quit()
    d.wait_for_log(r"SMTP protocol synchronization error", name="main")


def test_local_part_case_in_the_rcpt_acl(pymta_daemon, tmp_path):
    d = pymta_daemon(config=_config())
    with d.client() as c:
        assert c.send_message("bob@test.example", ["AliCe@Test.Example", "BoB@test.example"],
                              _message("plain"))[0] == 250
        c.quit()
    lines = d.wait_for_log(r"RCPT (lp|caseful|lower)=", count=5)
    assert [ln.split(" RCPT ")[1] for ln in lines] == [
        "lp=alice", "caseful=AliCe", "lower=alice", "lp=bob", "caseful=BoB"]
    assert wait_for(lambda: maildir_messages(tmp_path, "alice"))   # routed and delivered


def test_allow_auth_unadvertised(pymta_daemon):
    d = pymta_daemon(config=_config())
    with d.client() as c:                              # not advertised: refused
        c.banner()
        c.ehlo()
        assert "AUTH" not in "".join(c.extensions())
        assert c.auth_plain("alice", "secret")[0] == 503
        c.quit()
    with SmtpTestClient(d.port, source="127.0.0.2") as c:
        c.banner()
        assert c.cmd("HELO client.test")[0] == 250     # even after HELO
        assert c.auth_plain("alice", "secret")[0] == 235
        c.quit()


def test_no_mbox_unspool_keeps_decoded_files(pymta_daemon):
    d = pymta_daemon(config=_config())
    with d.client() as c:
        assert c.send_message("bob@test.example", "alice@test.example",
                              _message("plain"))[0] == 250
        assert c.send_message("bob@test.example", "alice@test.example",
                              _message("keep"))[0] == 250
        c.quit()
    kept = list((d.spool / "scan").glob("*/*"))
    assert len(kept) == 1
    assert kept[0].read_bytes().rstrip(b"\r\n") == b"keep this"


def test_control_in_the_wrong_acl_is_an_acl_error(pymta_daemon):
    d = pymta_daemon(config=_config())
    with d.client() as c:
        c.banner()
        assert c.cmd("EHLO wrong.place")[0] == 451
        c.quit()
    d.wait_for_log(r'cannot use "control=fakereject" in EHLO or HELO ACL', name="reject")


def _mail_reply_waits(d, rcpt: str) -> dict[str, float]:
    """Seconds until the reply to a pipelined MAIL, per client address, when the RCPT
    sent with it makes the ACL wait (127.0.0.2 has a no_*_flush control)."""
    waited = {}
    for source in ("127.0.0.1", "127.0.0.2"):
        with SmtpTestClient(d.port, source=source) as c:
            c.banner()
            c.ehlo()
            start = time.monotonic()
            c.send_raw(f"MAIL FROM:<bob@test.example>\r\nRCPT TO:<{rcpt}>\r\n".encode())
            assert c.read_reply()[0] == 250
            waited[source] = time.monotonic() - start
            assert c.read_reply()[0] == 250
            c.quit()
    return waited


def test_delay_sends_pipelined_replies_first_unless_no_delay_flush(pymta_daemon):
    waited = _mail_reply_waits(pymta_daemon(config=_config()), "slow@test.example")
    assert waited["127.0.0.1"] < 1.5           # the MAIL reply came before the delay
    assert waited["127.0.0.2"] >= 1.9          # ... or only after it


def test_callout_sends_pipelined_replies_first_unless_no_callout_flush(pymta_daemon):
    """Exim flushes the pipelined replies before it calls out, so a client does not
    time out waiting for its MAIL reply; control = no_callout_flush stops that."""
    config = BASE_CONFIG.replace("acl_smtp_rcpt = acl_check_rcpt", (
        "acl_smtp_rcpt = acl_check_rcpt\nacl_smtp_connect = acl_conn")).replace(
        "begin acl\n", "begin acl\n\nacl_conn:\n  accept  hosts = 127.0.0.2\n"
        "          control = no_callout_flush\n  accept\n\n").replace(
        "  accept  domains = remote.example\n",
        "  accept  domains = remote.example\n          verify = recipient/callout=10s,no_cache\n")
    with SmtpSink(banner_delay=2.0) as sink:          # a slow callout target
        d = pymta_daemon(config=config, macros={"SINK_PORT": str(sink.port)})
        waited = _mail_reply_waits(d, "someone@remote.example")
    assert waited["127.0.0.1"] < 1.5           # the MAIL reply came before the callout
    assert waited["127.0.0.2"] >= 1.9          # ... or only after it
