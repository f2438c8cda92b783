"""The ratelimit ACL condition over SMTP: rates kept in spool/db/ratelimit across many
connections (served by different receiver processes), every per_* kind, the update modes,
$sender_rate* in messages, and a -bh transcript compared with Exim 4.96's.
"""
from __future__ import annotations

import re
import threading
from pathlib import Path

from pymta.hints.ratelimit import RatelimitDB
from tests.integration.conftest import BASE_CONFIG
from tests.support.daemon import run_pymta
from tests.support.smtp import SmtpTestClient

DATA = Path(__file__).resolve().parent.parent / "data" / "ratelimit"
_ID = re.compile(r"^LOG: [0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2} ")

ACLS = """\
acl_conn_ro:
  warn    ratelimit = 0 / 1h / per_rcpt / readonly / alice-key
          logwrite = stored alice-key rate $sender_rate
  accept

acl_conn:
  defer   ratelimit = 3 / 1h / per_conn / strict
          message = too many connections: $sender_rate/$sender_rate_period \\
                    (max $sender_rate_limit)
  accept

acl_mail:
  deny    senders = flood@remote.example
          ratelimit = 1.5 / 1h / per_mail / strict / $sender_address
          message = sender rate $sender_rate exceeds $sender_rate_limit
  accept

acl_rcpt:
  deny    local_parts = ^addr-
          ratelimit = 2 / 1h / per_addr
          message = too many different recipients ($sender_rate)
  deny    local_parts = alice
          ratelimit = 2.5 / 1h / per_rcpt / alice-key
          message = recipient rate $sender_rate
  accept  domains = +local_domains
  deny    message = relay not permitted

acl_data:
  deny    ratelimit = 100 / 1h / per_byte / strict / bytes
          message = byte rate $sender_rate per $sender_rate_period
  accept

acl_bad:
  warn    ratelimit = ${if eq{$sender_address}{bad@remote.example}{abc}{100}} / 1h
  accept
"""


def _config(**acls: str) -> str:
    options = "".join(f"acl_smtp_{k} = {v}\n" for k, v in acls.items())
    return (BASE_CONFIG.replace("acl_smtp_rcpt = acl_check_rcpt\n", options)
            .replace("begin acl\n", "begin acl\n\n" + ACLS)
            .replace("local_parts = lsearch;DIR/users", "local_parts = *"))


def test_per_conn_limit_across_connections(pymta_daemon):
    d = pymta_daemon(config=_config(connect="acl_conn", rcpt="acl_rcpt"))
    # from 127.0.0.2: the daemon fixture's readiness probe comes from 127.0.0.1
    for _ in range(3):
        with SmtpTestClient(d.port, source="127.0.0.2") as c:
            assert c.banner()[0] == 220
            c.quit()
    with SmtpTestClient(d.port, source="127.0.0.2") as c:
        assert c.read_reply() == (451, "too many connections: 4.0/1h (max 3)")
    d.wait_for_log(r"H=\[127\.0\.0\.2\] rejected connection in \"connect\" ACL: "
                   r"too many connections: 4\.0/1h \(max 3\)", name="reject")
    rec = RatelimitDB(str(d.spool)).get("1h/per_conn/127.0.0.2")
    assert rec is not None and 3.9 < rec.rate < 4.0


def test_per_rcpt_leaky_per_addr_and_readonly(pymta_daemon):
    d = pymta_daemon(config=_config(connect="acl_conn_ro", rcpt="acl_rcpt"))
    replies = []
    for _ in range(2):
        with d.client() as c:
            c.banner()
            c.ehlo()
            assert c.cmd("MAIL FROM:<x@remote.example>")[0] == 250
            replies += [c.cmd("RCPT TO:<alice@test.example>") for _ in range(2)]
            c.quit()
    # per_rcpt, leaky: two accepted, then refused; refusals do not raise the rate
    assert [r[0] for r in replies] == [250, 250, 550, 550]
    assert re.fullmatch(r"recipient rate 3\.0", replies[2][1])
    rec = RatelimitDB(str(d.spool)).get("1h/per_rcpt/alice-key")
    assert rec is not None and 1.9 < rec.rate < 2.0
    # per_addr counts different recipients: repeating one costs nothing
    with d.client() as c:
        c.banner()
        c.ehlo()
        assert c.cmd("MAIL FROM:<x@remote.example>")[0] == 250
        assert [c.cmd(f"RCPT TO:<{a}@test.example>")[0]
                for a in ("addr-1", "addr-1", "addr-2", "addr-1", "addr-3")] == \
            [250, 250, 250, 250, 550]
        c.quit()
    with d.client() as c:              # another connection, another receiver maybe
        c.banner()
        c.ehlo()
        assert c.cmd("MAIL FROM:<x@remote.example>")[0] == 250
        assert c.cmd("RCPT TO:<addr-2@test.example>")[0] == 250
        assert c.cmd("RCPT TO:<addr-4@test.example>") == \
            (550, "too many different recipients (3.0)")
        c.quit()
    # readonly in the connect ACL reads what the RCPT ACLs stored, and changes nothing
    rates = re.findall(r"stored alice-key rate (\S+)", d.log())
    # (the daemon fixture's readiness probe and the first session found no record)
    assert rates[:2] == ["0.0", "0.0"] and rates[2:] == ["2.0"] * 3, rates
    rec = RatelimitDB(str(d.spool)).get("1h/per_rcpt/alice-key")
    assert rec is not None and 1.9 < rec.rate < 2.0


def test_per_mail_keyed_on_sender_and_per_byte(pymta_daemon):
    d = pymta_daemon(config=_config(mail="acl_mail", rcpt="acl_rcpt", data="acl_data"))
    codes = []
    for _ in range(3):
        with d.client() as c:
            c.banner()
            c.ehlo()
            codes.append(c.cmd("MAIL FROM:<flood@remote.example>"))
            codes.append(c.cmd("MAIL FROM:<other@remote.example>"))
            c.quit()
    assert [r[0] for r in codes] == [250, 503, 550, 250, 550, 250]
    assert codes[2][1] == "sender rate 2.0 exceeds 1.5"
    keys = dict(RatelimitDB(str(d.spool)).items())
    assert "1h/per_mail/flood@remote.example" in keys
    assert "1h/per_mail/other@remote.example" not in keys
    body = b"Subject: bytes\r\n\r\n" + b"x" * 40 + b"\r\n"     # 60 bytes
    with d.client() as c:
        assert c.send_message("a@remote.example", "bob@test.example", body)[0] == 250
        assert c.cmd("MAIL FROM:<a@remote.example>")[0] == 250
        assert c.cmd("RCPT TO:<bob@test.example>")[0] == 250
        code, text = c.data(body)
        assert (code, re.sub(r"\d+\.\d", "N", text)) == (550, "byte rate N per 1h")
        assert float(text.split()[2]) > 100
        c.quit()
    d.wait_for_log(r"rejected after DATA: byte rate \d+\.\d per 1h", name="reject")


def test_bad_arguments_are_an_acl_error(pymta_daemon):
    d = pymta_daemon(config=_config(mail="acl_bad"))
    with d.client() as c:
        c.banner()
        c.ehlo()
        assert c.cmd("MAIL FROM:<bad@remote.example>") == \
            (451, "Temporary local problem - please try later")
        assert c.cmd("MAIL FROM:<good@remote.example>")[0] == 250
        c.quit()
    d.wait_for_log(r'temporarily rejected MAIL <bad@remote\.example>: error in arguments '
                   r'to "ratelimit" condition: "abc" is not a positive number')


def test_bh_session_matches_exim(tmp_path):
    """session.conf/session.in through -bh: the logwrite lines (rates, limits, periods)
    are Exim 4.96's (session.exim.log; Exim prefixes the message id once it has one)."""
    spool = tmp_path / "spool"
    spool.mkdir()
    conf = tmp_path / "pymta.conf"
    conf.write_text((DATA / "session.conf").read_text().replace("SPOOL", str(spool)))
    proc = run_pymta(["-bh", "1.2.3.4"], conf, input=(DATA / "session.in").read_bytes())
    assert proc.returncode == 0, proc.stderr

    def lines(text: str) -> list[str]:
        return [_ID.sub("LOG: ", ln) for ln in text.splitlines()
                if ln.startswith("LOG:") and " <= " not in ln]
    assert lines(proc.stderr) == lines((DATA / "session.exim.log").read_text())


def test_concurrent_connections_lose_no_update(pymta_daemon):
    """Twenty connections at once, served by several receiver processes, each counted
    once: the read-update-write of a rate is one LMDB write transaction."""
    config = _config(connect="acl_count").replace(
        "begin acl\n\n", "begin acl\n\nacl_count:\n"
        "  warn ratelimit = 1000 / 1d / per_conn / strict / together\n  accept\n\n")
    d = pymta_daemon(config=config)
    barrier = threading.Barrier(20)
    codes: list[int] = []

    def connect() -> None:
        barrier.wait()
        with SmtpTestClient(d.port, source="127.0.0.2") as c:
            codes.append(c.banner()[0])
            c.quit()
    threads = [threading.Thread(target=connect) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert codes == [220] * 20
    rec = RatelimitDB(str(d.spool)).get("1d/per_conn/together")
    probes = 1      # the fixture's readiness probe (from 127.0.0.1) is counted too
    assert rec is not None and 20 + probes - 0.01 < rec.rate <= 20 + probes
